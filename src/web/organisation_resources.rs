//! An organisation's own resources on its page `/organisations/{id}`: its connections and
//! configurations (every member sees them, keys masked; admins and owners get the forms that add
//! them, and change each on the item pages of `/connections` and `/llm-configurations`, which
//! serve an organisation's resources by role) and, for admins, its webhooks. Each section is a
//! template of its own, rendered into the page and answered alone to htmx. Every form is a plain
//! post (303, or the page again with 422 and the errors beside the fields) and, with
//! `HX-Request`, the section that changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use uuid::Uuid;

use super::connections::{
    ConnectionFields, ConnectionForm, ConnectionView, ParsedConnection, connection_views, parse_connection,
};
use super::llm_configurations::{Chosen, ConfigurationFields, FormView, choose_from_the_list, chosen, picker};
use super::organisations::{path_id, render_with_resource_forms};
use super::respond::{private_html, see_other};
use super::settings::{
    WebhookFields, WebhookFormView, WebhookSection, WebhooksFragment, create_webhook_for, load_webhooks,
    parse_webhook_form,
};
use super::views::{ConfigurationView, CreatedWebhookView, HtmlId, configuration_views_with_connections};
use crate::domain::{FieldErrors, OrganisationRole, Owner};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn, is_htmx};
use crate::http::page_error::PageResult;
use crate::services::configuration_input::NewConfigurationInput;
use crate::services::connections::{self, ConnectionError, NewConnection};
use crate::services::organisations::{self, OrganisationsError};
use crate::services::{Work, configurations, webhooks};

/// The sections of `organisations/detail.html` that htmx swaps (the forms name their own
/// target in their templates; these are for the answers that refresh the other one too).
const CONNECTIONS_SECTION: &str = "#organisation-connections";
const CONFIGURATIONS_SECTION: &str = "#organisation-configurations";

#[derive(Template)]
#[template(path = "organisations/_connections.html")]
struct ConnectionsSection {
    id: HtmlId,
    csrf_token: String,
    is_admin: bool,
    connections: Vec<ConnectionView>,
    form: ConnectionForm,
}

#[derive(Template)]
#[template(path = "organisations/_configurations.html")]
struct ConfigurationsSection {
    csrf_token: String,
    is_admin: bool,
    configurations: Vec<ConfigurationView>,
    /// The add form (`llm_configurations/_form.html`, on the organisation's connections).
    form: FormView,
}

/// Who the sections are rendered for (what of the session a database task may hold).
pub struct Viewer {
    pub user_id: Uuid,
    pub csrf_token: String,
}

impl Viewer {
    pub fn of(user: &SignedIn) -> Self {
        Viewer {
            user_id: user.user_id,
            csrf_token: user.csrf_token.clone(),
        }
    }
}

/// The sections as the page embeds them (each rendered by its own template, HTML-escaped there).
pub struct OrganisationSections {
    pub connections: String,
    pub configurations: String,
    /// Admins and owners only.
    pub webhooks: Option<String>,
}

/// The forms as a refused post left them; `None`: empty.
#[derive(Default)]
pub struct ResourceForms {
    connection: Option<ConnectionForm>,
    /// The configuration form and the connection its picker shows.
    configuration: Option<(FormView, Option<Uuid>)>,
    webhook: Option<WebhookOutcome>,
}

/// A webhook post's answer: the secret shown once, or the refusal and the form as sent.
struct WebhookOutcome {
    created: Option<CreatedWebhookView>,
    errors: FieldErrors,
    form: WebhookFormView,
}

fn page_of(organisation: Uuid) -> String {
    format!("/organisations/{organisation}")
}

fn webhooks_base(organisation: Uuid) -> String {
    format!("/organisations/{organisation}/webhooks")
}

/// The connections section: every member sees the list, admins the form.
fn connections_section(
    conn: &mut Work,
    organisation: Uuid,
    viewer: &Viewer,
    is_admin: bool,
    form: Option<ConnectionForm>,
) -> Result<ConnectionsSection, AppError> {
    let rows = connections::list_for_organisation(conn, viewer.user_id, organisation)?;
    Ok(ConnectionsSection {
        id: HtmlId(organisation),
        csrf_token: viewer.csrf_token.clone(),
        is_admin,
        connections: connection_views(rows),
        form: form.unwrap_or_else(ConnectionForm::empty),
    })
}

/// The configurations section: every member sees the list, admins the form (whose picker offers
/// the organisation's connections).
fn configurations_section(
    conn: &mut Work,
    organisation: Uuid,
    viewer: &Viewer,
    is_admin: bool,
    form: Option<(FormView, Option<Uuid>)>,
) -> Result<ConfigurationsSection, AppError> {
    let caller = viewer.user_id;
    let rows = configurations::list_for_organisation(conn, caller, organisation)?;
    let (form, choice) = form.unwrap_or_else(|| {
        (
            FormView::new_for_organisation(organisation, CONFIGURATIONS_SECTION),
            None,
        )
    });
    let form = if is_admin {
        // A choice that is not the organisation's shows no models (its error says why).
        let offered = match picker(conn, caller, Some(organisation), choice) {
            Err(ConnectionError::NotFound) => picker(conn, caller, Some(organisation), None),
            other => other,
        }?;
        form.with_picker(offered)
    } else {
        form
    };
    Ok(ConfigurationsSection {
        csrf_token: viewer.csrf_token.clone(),
        is_admin,
        configurations: configuration_views_with_connections(rows),
        form,
    })
}

fn webhooks_section(
    conn: &mut Work,
    organisation: Uuid,
    viewer: &Viewer,
    outcome: Option<WebhookOutcome>,
) -> Result<WebhooksFragment, AppError> {
    let webhooks = load_webhooks(conn, viewer.user_id, Owner::Organisation(organisation))?;
    let mut hooks = WebhookSection::new(webhooks_base(organisation), webhooks);
    if let Some(outcome) = outcome {
        hooks.created = outcome.created;
        hooks.errors = outcome.errors;
        hooks.form = outcome.form;
    }
    Ok(WebhooksFragment {
        csrf_token: viewer.csrf_token.clone(),
        hooks,
    })
}

/// Inside the page's database task: the organisation's sections for a member (`is_admin`: with
/// the forms and the webhooks).
pub fn load(
    conn: &mut Work,
    organisation: Uuid,
    viewer: &Viewer,
    is_admin: bool,
    forms: ResourceForms,
) -> Result<OrganisationSections, AppError> {
    let connections = connections_section(conn, organisation, viewer, is_admin, forms.connection)?.render()?;
    let configurations = configurations_section(conn, organisation, viewer, is_admin, forms.configuration)?.render()?;
    let webhooks = if is_admin {
        Some(webhooks_section(conn, organisation, viewer, forms.webhook)?.render()?)
    } else {
        None
    };
    Ok(OrganisationSections {
        connections,
        configurations,
        webhooks,
    })
}

/// The answer to a post on the organisation's page: with htmx the section `render` makes, else
/// the whole page (with `forms` as the post left them).
async fn answer(
    state: &AppState,
    user: &SignedIn,
    organisation: Uuid,
    htmx: bool,
    status: StatusCode,
    forms: ResourceForms,
    render: impl FnOnce(&mut Work, &Viewer, ResourceForms) -> Result<String, AppError> + Send + 'static,
) -> PageResult {
    if !htmx {
        return render_with_resource_forms(state, user, organisation, status, forms).await;
    }
    let viewer = Viewer::of(user);
    let body = state.db.run(move |conn| render(conn, &viewer, forms)).await?;
    Ok(private_html(status, body))
}

/// Only the organisation's admins and owners post its forms: a member is refused (403) before
/// anything of the form is read, anyone else gets the 404 of a missing organisation.
async fn require_admin(state: &AppState, user: &SignedIn, organisation: Uuid) -> Result<(), AppError> {
    let caller = user.user_id;
    let role = state
        .db
        .run(move |conn| organisations::get(conn, organisation, caller))
        .await?
        .role;
    if role.includes(OrganisationRole::Admin) {
        Ok(())
    } else {
        Err(AppError::from(OrganisationsError::Forbidden))
    }
}

fn saved(status: StatusCode) -> bool {
    status == StatusCode::OK
}

/// `inner` for htmx to swap into `target` besides the answer's own target (an out-of-band swap).
fn out_of_band(target: &str, inner: &str) -> String {
    format!(r#"<div hx-swap-oob="innerHTML:{target}">{inner}</div>"#)
}

fn status_of(errors: &FieldErrors) -> StatusCode {
    if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// `POST /organisations/{id}/connections`: adds one of the organisation's connections (its
/// admins and owners; a member: 403; anyone else: 404).
pub async fn create_connection(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<ConnectionFields>,
) -> PageResult {
    let organisation = path_id(&path)?;
    require_admin(&state, &user, organisation).await?;
    let htmx = is_htmx(&req);
    let fields = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_connection(&fields, &state.settings.egress, &mut errors);
    let caller = user.user_id;
    let cap = state.settings.caps.connections;
    let outcome = match parsed {
        ParsedConnection {
            name: Some(name),
            provider: Some(provider),
            api_key,
            base_url,
        } if errors.is_empty() => {
            let new = NewConnection {
                name,
                provider,
                api_key,
                base_url,
                expires_at: None,
            };
            let keyring = state.keyring.clone();
            state
                .db
                .run(move |conn| connections::create_for_organisation(conn, &keyring, caller, organisation, new, cap))
                .await
                .map(|_| ())
        }
        _ => Err(ConnectionError::Invalid(errors)),
    };
    let errors = match outcome {
        Ok(()) if !htmx => return Ok(see_other(&format!("{}?done=saved", page_of(organisation)))),
        Ok(()) => FieldErrors::new(),
        // A member's post is 403 and an outsider's 404 (error pages), whatever the form held.
        Err(error) => super::connections::form_errors(error)?,
    };
    let status = status_of(&errors);
    let forms = ResourceForms {
        connection: (!errors.is_empty()).then(|| ConnectionForm::empty().resubmitted(&fields, errors)),
        ..ResourceForms::default()
    };
    let added = saved(status);
    answer(
        &state,
        &user,
        organisation,
        htmx,
        status,
        forms,
        move |conn, viewer, forms| {
            let mut body = connections_section(conn, organisation, viewer, true, forms.connection)?.render()?;
            if added {
                // The configuration form's picker offers the new connection at once.
                let configurations = configurations_section(conn, organisation, viewer, true, None)?.render()?;
                body.push_str(&out_of_band(CONFIGURATIONS_SECTION, &configurations));
            }
            Ok(body)
        },
    )
    .await
}

/// `POST /organisations/{id}/llm-configurations`: adds one of the organisation's configurations
/// on one of its connections, or with a provider and key of its own, exactly as the API does
/// (`member_access` `use` or `reveal`; nobody's default until a member chooses it).
pub async fn create_configuration(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<ConfigurationFields>,
) -> PageResult {
    let organisation = path_id(&path)?;
    require_admin(&state, &user, organisation).await?;
    let htmx = is_htmx(&req);
    let fields = form.fields;
    let policy = &state.settings.egress;
    let choice = chosen(fields.connection_id.as_deref());
    let parsed = match choice {
        Chosen::Invalid => Err(choose_from_the_list()),
        Chosen::Existing(id) => fields.input_on(id).into_create(policy),
        Chosen::New | Chosen::Unspecified => fields.input().into_create(policy),
    };
    let (keyring, caller, cap) = (state.keyring.clone(), user.user_id, state.settings.caps.configurations);
    let outcome = match parsed {
        Ok(new) => state
            .db
            .run(move |conn| match new {
                NewConfigurationInput::WithOwnConnection(new) => {
                    configurations::create_for_organisation(conn, &keyring, caller, organisation, new, cap)
                }
                NewConfigurationInput::OnConnection(new) => {
                    configurations::create_on_organisation_connection(conn, caller, organisation, new, cap)
                }
            })
            .await
            .map(|_| ()),
        Err(errors) => Err(configurations::ConfigurationError::Invalid(errors)),
    };
    let errors = match outcome {
        Ok(()) if !htmx => return Ok(see_other(&format!("{}?done=saved", page_of(organisation)))),
        Ok(()) => FieldErrors::new(),
        Err(error) => super::llm_configurations::form_errors(error)?,
    };
    let status = status_of(&errors);
    let picked = match choice {
        Chosen::Existing(id) => Some(id),
        _ => None,
    };
    let forms = ResourceForms {
        configuration: (!errors.is_empty()).then(|| {
            let form =
                FormView::new_for_organisation(organisation, CONFIGURATIONS_SECTION).resubmitted(&fields, errors);
            (form, picked)
        }),
        ..ResourceForms::default()
    };
    let added = saved(status);
    answer(
        &state,
        &user,
        organisation,
        htmx,
        status,
        forms,
        move |conn, viewer, forms| {
            let mut body = configurations_section(conn, organisation, viewer, true, forms.configuration)?.render()?;
            if added {
                // Its connection's "Used by" count (or its new connection) shows at once.
                let connections = connections_section(conn, organisation, viewer, true, None)?.render()?;
                body.push_str(&out_of_band(CONNECTIONS_SECTION, &connections));
            }
            Ok(body)
        },
    )
    .await
}

/// `POST /organisations/{id}/webhooks`: adds a webhook of the organisation (its admins and
/// owners) and shows its secret in this one response, never a redirect.
pub async fn create_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<WebhookFields>,
) -> PageResult {
    let organisation = path_id(&path)?;
    require_admin(&state, &user, organisation).await?;
    let htmx = is_htmx(&req);
    let (parsed, shown) = parse_webhook_form(&form, &state.settings.webhooks.policy);
    let owner = Owner::Organisation(organisation);
    let (created, errors) = create_webhook_for(&state, user.user_id, owner, parsed).await?;
    let status = status_of(&errors);
    let form = if errors.is_empty() {
        WebhookFormView::default()
    } else {
        shown
    };
    let forms = ResourceForms {
        webhook: Some(WebhookOutcome { created, errors, form }),
        ..ResourceForms::default()
    };
    answer(
        &state,
        &user,
        organisation,
        htmx,
        status,
        forms,
        move |conn, viewer, forms| Ok(webhooks_section(conn, organisation, viewer, forms.webhook)?.render()?),
    )
    .await
}

/// Deletes or pings the organisation's webhook: the webhooks section (htmx) or back to the page.
async fn webhook_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<(String, String)>,
    ping: bool,
) -> PageResult {
    let organisation = path_id(&path.0)?;
    let webhook = path_id(&path.1)?;
    let caller = user.user_id;
    state
        .db
        .run(move |conn| {
            // Another organisation's webhook (even one the caller manages) is not this page's.
            if webhooks::get(conn, caller, webhook)?.owner != Owner::Organisation(organisation) {
                return Err(AppError::NotFound);
            }
            if ping {
                webhooks::ping(conn, caller, webhook)?;
            } else {
                webhooks::delete(conn, caller, webhook)?;
            }
            Ok(())
        })
        .await?;
    if !is_htmx(&req) {
        return Ok(see_other(&format!(
            "{}?done=saved#webhooks-heading",
            page_of(organisation)
        )));
    }
    answer(
        &state,
        &user,
        organisation,
        true,
        StatusCode::OK,
        ResourceForms::default(),
        move |conn, viewer, _| Ok(webhooks_section(conn, organisation, viewer, None)?.render()?),
    )
    .await
}

pub async fn delete_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<(String, String)>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    webhook_action(state, req, user, path, false).await
}

pub async fn ping_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<(String, String)>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    webhook_action(state, req, user, path, true).await
}
