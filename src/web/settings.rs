//! `/settings`: the default selector, API tokens, webhooks, the password, and the account's
//! security events.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::accounts::sign_in;
use super::respond::{html, private_html, see_other};
use super::views::{
    ConfigurationGroup, ConfigurationView, CreatedTokenView, CreatedWebhookView, Layout, SecurityEventView, TokenView,
    WebhookView, configuration_views, grouped_where,
};
use crate::domain::{EventSelection, Owner, Password, Scopes, WebhookUrl};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn, is_htmx};
use crate::http::client_address;
use crate::http::page_error::PageResult;
use crate::services::accounts::{self, AccountsError, SignedInUser};
use crate::services::tokens::TokensError;
use crate::services::webhooks::{self, NewWebhook, WebhooksError, parse_description};
use crate::services::{Work, configurations, single_sign_on, tokens, two_factor};

const PAGE: &str = "/settings";

/// Everything the settings page shows, loaded in one blocking task.
struct SettingsData {
    configurations: Vec<ConfigurationView>,
    tokens: Vec<TokenView>,
    webhooks: Vec<WebhookView>,
    security_events: Vec<SecurityEventView>,
    /// Whether the account has a second factor (the token form then asks for a code).
    two_factor_on: bool,
    /// Whether single sign-on is linked, and whether the account has a password.
    link: single_sign_on::LinkStatus,
    /// The single sign-on's label, when the operator configured it.
    single_sign_on_name: Option<String>,
}

/// What the page shows, with the instance's single sign-on.
async fn load_for(state: &AppState, owner: Uuid) -> Result<SettingsData, AppError> {
    let mut data = state.db.run(move |conn| load(conn, owner)).await?;
    data.single_sign_on_name = state.single_sign_on.as_ref().map(|sso| sso.name().to_owned());
    Ok(data)
}

/// How many recent attempts the page shows under each webhook.
const ATTEMPTS_SHOWN: usize = 5;

/// The webhooks of `owner` (the user's own, or an organisation's they manage), each with its
/// latest attempts.
pub(super) fn load_webhooks(conn: &mut Work, user_id: Uuid, owner: Owner) -> Result<Vec<WebhookView>, AppError> {
    let mut views = Vec::new();
    for webhook in webhooks::list(conn, user_id, owner)? {
        let attempts = webhooks::deliveries(conn, user_id, webhook.id)?;
        views.push(WebhookView::new(
            webhook,
            attempts.into_iter().take(ATTEMPTS_SHOWN).collect(),
        ));
    }
    Ok(views)
}

fn load(conn: &mut Work, user_id: Uuid) -> Result<SettingsData, AppError> {
    // Only to show which tokens have expired.
    let now = chrono::Utc::now().naive_utc();
    Ok(SettingsData {
        configurations: configuration_views(configurations::list(conn, user_id)?),
        tokens: tokens::list(conn, user_id)?
            .into_iter()
            .map(|token| TokenView::new(token, now))
            .collect(),
        webhooks: load_webhooks(conn, user_id, Owner::User(user_id))?,
        security_events: accounts::security_events_of(conn, user_id)?
            .into_iter()
            .map(SecurityEventView::new)
            .collect(),
        two_factor_on: two_factor::is_on(conn, user_id)?,
        link: single_sign_on::link_status(conn, user_id)?,
        single_sign_on_name: None,
    })
}

#[derive(Template)]
#[template(path = "settings/page.html")]
struct SettingsPage {
    layout: Layout,
    email: String,
    is_admin: bool,
    csrf_token: String,
    default_groups: Vec<ConfigurationGroup>,
    default_configuration: Option<ConfigurationView>,
    default_errors: FieldErrors,
    tokens: Vec<TokenView>,
    created_token: Option<CreatedTokenView>,
    token_errors: FieldErrors,
    hooks: WebhookSection,
    password_errors: FieldErrors,
    password_changed: bool,
    security_events: Vec<SecurityEventView>,
    two_factor_on: bool,
    /// The account signs in by single sign-on alone: `resolve` tokens need a re-authentication
    /// by single sign-on instead of a password.
    sso_only: bool,
    single_sign_on_name: Option<String>,
    single_sign_on_linked: bool,
    has_password: bool,
}

/// The "Webhooks" section (`settings/_webhooks.html`), the user's own on `/settings` or an
/// organisation's on its page: the list, a secret shown once, the create form.
pub struct WebhookSection {
    /// Where the section's forms post: `/settings/webhooks` or `/organisations/{id}/webhooks`.
    pub base: String,
    pub webhooks: Vec<WebhookView>,
    pub created: Option<CreatedWebhookView>,
    pub errors: FieldErrors,
    pub form: WebhookFormView,
}

impl WebhookSection {
    pub fn new(base: String, webhooks: Vec<WebhookView>) -> Self {
        WebhookSection {
            base,
            webhooks,
            created: None,
            errors: FieldErrors::new(),
            form: WebhookFormView::default(),
        }
    }

    fn personal(webhooks: Vec<WebhookView>) -> Self {
        WebhookSection::new(WEBHOOKS.to_owned(), webhooks)
    }
}

const WEBHOOKS: &str = "/settings/webhooks";

#[derive(Template)]
#[template(path = "settings/_webhooks.html")]
pub(super) struct WebhooksFragment {
    pub csrf_token: String,
    pub hooks: WebhookSection,
}

/// What the create form shows again after a refusal.
#[derive(Default, Clone)]
pub struct WebhookFormView {
    pub url: String,
    pub description: String,
    /// The events ticked (`*` for all).
    pub events: Vec<String>,
}

impl WebhookFormView {
    pub fn ticked(&self, event: &str) -> bool {
        self.events.iter().any(|chosen| chosen == event)
    }

    /// Every event the form offers.
    pub fn offered(&self) -> Vec<&'static str> {
        crate::domain::EventType::SUBSCRIBABLE
            .map(crate::domain::EventType::as_str)
            .to_vec()
    }
}

#[derive(Template)]
#[template(path = "settings/_default.html")]
struct DefaultFragment {
    csrf_token: String,
    default_groups: Vec<ConfigurationGroup>,
    default_configuration: Option<ConfigurationView>,
    default_errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "settings/_tokens.html")]
struct TokensFragment {
    csrf_token: String,
    tokens: Vec<TokenView>,
    created_token: Option<CreatedTokenView>,
    token_errors: FieldErrors,
    two_factor_on: bool,
    sso_only: bool,
}

/// What the default selector offers (the active configurations: the user's own, then an
/// `<optgroup>` per organisation) and the default now.
fn split_default(configurations: Vec<ConfigurationView>) -> (Vec<ConfigurationGroup>, Option<ConfigurationView>) {
    let default = configurations.iter().find(|c| c.is_default).cloned();
    (grouped_where(&configurations, |c| c.is_active), default)
}

/// What differs between renders of the settings page.
#[derive(Default)]
struct PageState {
    default_errors: FieldErrors,
    created_token: Option<CreatedTokenView>,
    token_errors: FieldErrors,
    created_webhook: Option<CreatedWebhookView>,
    webhook_errors: FieldErrors,
    webhook_form: WebhookFormView,
    password_errors: FieldErrors,
    password_changed: bool,
}

fn render_page(user: &SignedIn, data: SettingsData, state: PageState, status: StatusCode) -> PageResult {
    let (default_groups, default_configuration) = split_default(data.configurations);
    let page = SettingsPage {
        layout: Layout::signed_in("Settings", "settings", user),
        email: user.email.clone(),
        is_admin: user.is_admin(),
        csrf_token: user.csrf_token.clone(),
        default_groups,
        default_configuration,
        default_errors: state.default_errors,
        tokens: data.tokens,
        created_token: state.created_token,
        token_errors: state.token_errors,
        hooks: WebhookSection {
            created: state.created_webhook,
            errors: state.webhook_errors,
            form: state.webhook_form,
            ..WebhookSection::personal(data.webhooks)
        },
        password_errors: state.password_errors,
        password_changed: state.password_changed,
        security_events: data.security_events,
        two_factor_on: data.two_factor_on,
        sso_only: !data.link.has_password && data.link.linked,
        single_sign_on_name: data.single_sign_on_name,
        single_sign_on_linked: data.link.linked,
        has_password: data.link.has_password,
    };
    Ok(private_html(status, page.render().map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct PageQuery {
    password_changed: Option<String>,
}

pub async fn page(state: web::Data<AppState>, user: SignedIn, query: web::Query<PageQuery>) -> PageResult {
    let owner = user.user_id;
    let data = load_for(&state, owner).await?;
    let page_state = PageState {
        password_changed: query.password_changed.is_some(),
        ..PageState::default()
    };
    render_page(&user, data, page_state, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct DefaultField {
    #[serde(default)]
    configuration_id: String,
}

pub async fn set_default(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<DefaultField>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let owner = user.user_id;
    let chosen = Uuid::parse_str(form.fields.configuration_id.trim());
    let outcome = match chosen {
        Ok(id) => {
            state
                .db
                .run(move |conn| {
                    configurations::set_default(conn, owner, id)
                        .map(|_| ())
                        .map_err(AppError::from)
                })
                .await
        }
        Err(_) => Err(AppError::validation(
            "configuration_id",
            "choose one of your active configurations",
        )),
    };
    let default_errors = match outcome {
        Ok(()) if !htmx => return Ok(see_other(PAGE)),
        Ok(()) => FieldErrors::new(),
        Err(AppError::Validation(errors)) => errors,
        Err(AppError::NotFound) | Err(AppError::Conflict { .. }) => {
            FieldErrors::single("configuration_id", "choose one of your active configurations")
        }
        Err(other) => return Err(other.into()),
    };
    let status = if default_errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let data = load_for(&state, owner).await?;
    if htmx {
        let (default_groups, default_configuration) = split_default(data.configurations);
        let fragment = DefaultFragment {
            csrf_token: user.csrf_token.clone(),
            default_groups,
            default_configuration,
            default_errors,
        };
        return Ok(html(status, fragment.render().map_err(AppError::from)?));
    }
    render_page(
        &user,
        data,
        PageState {
            default_errors,
            ..PageState::default()
        },
        status,
    )
}

/// Token fields; `scopes` may repeat, so it is read from the raw pairs.
#[derive(Deserialize)]
pub struct TokenFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
    /// Needed for the `resolve` scope only.
    #[serde(default)]
    current_password: String,
    /// Needed for the `resolve` scope when the account has a second factor.
    #[serde(default)]
    totp_code: String,
}

pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<TokenFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let mut errors = FieldErrors::new();
    let name = tokens::parse_token_name(&form.fields.name)
        .map_err(|m| errors.add("name", m))
        .ok();
    let scope_names: Vec<&str> = form
        .pairs
        .iter()
        .filter(|(field, _)| field == "scopes")
        .map(|(_, value)| value.as_str())
        .collect();
    let scopes = Scopes::parse(&scope_names.join(","))
        .map_err(|m| errors.add("scopes", m))
        .ok();
    let expires_raw = form.fields.expires_in_days.trim();
    let expires_in_days = if expires_raw.is_empty() {
        None
    } else {
        match expires_raw
            .parse::<i64>()
            .map_err(|_| "must be a whole number of days".to_owned())
            .and_then(tokens::parse_expiry_days)
        {
            Ok(days) => Some(days),
            Err(message) => {
                errors.add("expires_in_days", message);
                None
            }
        }
    };
    let owner = user.user_id;
    let client = client_address(&req);
    let current_password = form.fields.current_password.clone();
    let totp_code = form.fields.totp_code.clone();
    let single_sign_on = super::single_sign_on::recently_reauthenticated(&state, &req, user.user_id);
    let keyring = state.keyring.clone();
    let created = match tokens::NewToken::from_parsed(name, scopes, expires_in_days, std::mem::take(&mut errors)) {
        Err(refused) => {
            errors = refused;
            None
        }
        Ok(new) => {
            let cap = state.settings.caps.tokens;
            let outcome = state
                .db
                .run(move |conn| {
                    let proof = accounts::Reauthentication {
                        current_password: Some(current_password.as_str()),
                        totp_code: Some(totp_code.as_str()),
                        single_sign_on,
                    };
                    tokens::create_for_session(conn, &keyring, owner, &new, cap, &proof, &client)
                })
                .await;
            match outcome {
                Ok(created) => Some(CreatedTokenView {
                    name: created.name.clone(),
                    secret: created.secret.expose().to_owned(),
                }),
                Err(TokensError::Account(AccountsError::ReauthenticationRequired)) => {
                    errors.add(
                        "current_password",
                        "enter your current password (and a code from your authenticator app, when two-factor \
                         authentication is on) to create a token with the resolve scope",
                    );
                    None
                }
                // The cap concerns the token being named: shown beside its name.
                Err(TokensError::CapReached(cap)) => {
                    errors.add("name", cap.describe());
                    None
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let data = load_for(&state, owner).await?;
    // The token is shown in this one response and never again; without htmx the page is
    // rendered directly (not redirected), since a redirect would have to carry the secret.
    if htmx {
        let fragment = TokensFragment {
            csrf_token: user.csrf_token.clone(),
            tokens: data.tokens,
            created_token: created,
            token_errors: errors,
            two_factor_on: data.two_factor_on,
            sso_only: !data.link.has_password && data.link.linked,
        };
        return Ok(private_html(status, fragment.render().map_err(AppError::from)?));
    }
    render_page(
        &user,
        data,
        PageState {
            created_token: created,
            token_errors: errors,
            ..PageState::default()
        },
        status,
    )
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = Uuid::parse_str(&path).map_err(|_| AppError::NotFound)?;
    let owner = user.user_id;
    state.db.run(move |conn| tokens::revoke(conn, owner, id)).await?;
    if !is_htmx(&req) {
        return Ok(see_other(PAGE));
    }
    let data = load_for(&state, owner).await?;
    let fragment = TokensFragment {
        csrf_token: user.csrf_token.clone(),
        tokens: data.tokens,
        created_token: None,
        token_errors: FieldErrors::new(),
        two_factor_on: data.two_factor_on,
        sso_only: !data.link.has_password && data.link.linked,
    };
    Ok(html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct PasswordFields {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<PasswordFields>,
) -> PageResult {
    let PasswordFields {
        current_password,
        new_password,
    } = form.fields;
    let owner = user.user_id;
    let client = client_address(&req);
    let password_errors = match Password::parse(&new_password) {
        Err(message) => FieldErrors::single("new_password", message),
        Ok(new) => {
            let outcome = state
                .db
                .run(move |conn| accounts::change_password(conn, owner, &current_password, &new, &client))
                .await;
            match outcome {
                Ok(()) => {
                    // Every session of the user was ended; this one continues under a new id.
                    sign_in(
                        &user.session,
                        &SignedInUser {
                            id: user.user_id,
                            email: user.email.clone(),
                            role: user.role,
                        },
                    )?;
                    return Ok(see_other("/settings?password_changed=1"));
                }
                Err(error @ AccountsError::WrongPassword) => FieldErrors::single("current_password", error.to_string()),
                Err(other) => return Err(other.into()),
            }
        }
    };
    let data = load_for(&state, owner).await?;
    render_page(
        &user,
        data,
        PageState {
            password_errors,
            ..PageState::default()
        },
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// The webhook form's fields; `events` may repeat, so it is read from the raw pairs.
#[derive(Deserialize)]
pub struct WebhookFields {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
}

/// The webhook form as submitted: the webhook to create, or the refusals beside their fields;
/// and what the form shows again after a refusal.
pub(super) fn parse_webhook_form(
    form: &ProtectedForm<WebhookFields>,
    policy: &impl crate::domain::PlainHttpHosts,
) -> (Result<NewWebhook, FieldErrors>, WebhookFormView) {
    let mut errors = FieldErrors::new();
    let chosen: Vec<String> = form
        .pairs
        .iter()
        .filter(|(field, _)| field == "events")
        .map(|(_, value)| value.clone())
        .collect();
    let url = WebhookUrl::parse(&form.fields.url, policy)
        .map_err(|message| errors.add("url", message))
        .ok();
    // Nothing ticked means every event, as `*` does.
    let events = if chosen.is_empty() {
        Some(EventSelection::All)
    } else {
        EventSelection::parse(chosen.iter().map(String::as_str))
            .map_err(|message| errors.add("events", message))
            .ok()
    };
    let description = parse_description(&form.fields.description)
        .map_err(|message| errors.add("description", message))
        .ok();
    let shown = WebhookFormView {
        url: form.fields.url.clone(),
        description: form.fields.description.clone(),
        events: chosen,
    };
    let parsed = match (url, events, description) {
        (Some(url), Some(events), Some(description)) if errors.is_empty() => Ok(NewWebhook {
            url,
            events,
            description,
            is_active: true,
        }),
        _ => Err(errors),
    };
    (parsed, shown)
}

/// Creates `owner`'s webhook as `user` from the parsed form: the secret to show once, or the
/// refusal beside its field (a cap); anything else is an error.
pub(super) async fn create_webhook_for(
    state: &AppState,
    user: Uuid,
    owner: Owner,
    parsed: Result<NewWebhook, FieldErrors>,
) -> Result<(Option<CreatedWebhookView>, FieldErrors), AppError> {
    let new = match parsed {
        Ok(new) => new,
        Err(errors) => return Ok((None, errors)),
    };
    let keyring = state.keyring.clone();
    let outcome = state
        .db
        .run(move |conn| webhooks::create(conn, &keyring, user, owner, new))
        .await;
    match outcome {
        Ok(with_secret) => Ok((
            Some(CreatedWebhookView {
                url: with_secret.webhook.url.clone(),
                secret: with_secret.secret.expose().to_owned(),
            }),
            FieldErrors::new(),
        )),
        Err(error @ WebhooksError::CapReached) => Ok((None, FieldErrors::single("url", error.to_string()))),
        Err(other) => Err(AppError::from(other)),
    }
}

/// `POST /settings/webhooks`: creates a webhook and shows its secret in this one response.
pub async fn create_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<WebhookFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let (parsed, webhook_form) = parse_webhook_form(&form, &state.settings.webhooks.policy);
    let owner = user.user_id;
    let (created, errors) = create_webhook_for(&state, owner, Owner::User(owner), parsed).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let webhook_form = if errors.is_empty() {
        WebhookFormView::default()
    } else {
        webhook_form
    };
    let data = load_for(&state, owner).await?;
    // Like a new token, the secret is shown in this response only: never a redirect.
    if htmx {
        let fragment = WebhooksFragment {
            csrf_token: user.csrf_token.clone(),
            hooks: WebhookSection {
                created,
                errors,
                form: webhook_form,
                ..WebhookSection::personal(data.webhooks)
            },
        };
        return Ok(private_html(status, fragment.render().map_err(AppError::from)?));
    }
    render_page(
        &user,
        data,
        PageState {
            created_webhook: created,
            webhook_errors: errors,
            webhook_form,
            ..PageState::default()
        },
        status,
    )
}

/// `POST /settings/webhooks/{id}/delete` and `/settings/webhooks/{id}/ping`.
async fn webhook_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    ping: bool,
) -> PageResult {
    let id = Uuid::parse_str(&path).map_err(|_| AppError::NotFound)?;
    let owner = user.user_id;
    state
        .db
        .run(move |conn| {
            if ping {
                webhooks::ping(conn, owner, id).map(|_| ())
            } else {
                webhooks::delete(conn, owner, id)
            }
            .map_err(AppError::from)
        })
        .await?;
    if !is_htmx(&req) {
        return Ok(see_other(PAGE));
    }
    let data = load_for(&state, owner).await?;
    let fragment = WebhooksFragment {
        csrf_token: user.csrf_token.clone(),
        hooks: WebhookSection::personal(data.webhooks),
    };
    Ok(html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

pub async fn delete_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    webhook_action(state, req, user, path, false).await
}

pub async fn ping_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    webhook_action(state, req, user, path, true).await
}
