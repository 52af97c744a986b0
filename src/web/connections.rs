//! The connections page: every provider account of the user (masked key, last test, model
//! count, how many configurations use it) with **Test**, **Refresh models**, **Edit** and
//! **Delete**, the form to add one, and one connection's own page (its configurations, its last
//! test, its models, and the edit form). Every action is a plain form post (303) and, with
//! `HX-Request`, the fragment that changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::check_strip::CheckStrip;
use super::respond::{private_html, see_other};
use super::views::{HtmlId, Layout, ProviderOption, display_time, provider_options};
use crate::domain::{ApiKey, BaseUrl, CheckRecord, ConfigName, Configuration, Connection, PlainHttpHosts, Provider};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn, is_htmx};
use crate::http::page_error::PageResult;
use crate::services::configurations::{self, KeyChange};
use crate::services::connection_tests::TestSubject;
use crate::services::connections::{self, ConnectionError, ConnectionUpdate, NewConnection};
use crate::services::scheduled_checks;

const PAGE: &str = "/connections";

/// A page id that is not a UUID names nothing: 404, like a missing one (or someone else's).
fn page_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

/// A connection as the page shows it: never the key, only its mask.
pub struct ConnectionView {
    pub id: HtmlId,
    pub name: String,
    pub provider_label: &'static str,
    pub base_url: Option<String>,
    pub masked_key: Option<String>,
    pub test_status: &'static str,
    pub status_label: &'static str,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<String>,
    pub model_count: i64,
    pub models_fetched_at: Option<String>,
    pub configuration_count: i64,
    /// When the key expires, as its owner said.
    pub expires_at: Option<String>,
    /// Why the last **Refresh models** stored nothing (shown once, in the row it answered).
    pub refresh_failure: Option<String>,
    /// Whether the caller may change it (a member of its organisation only sees it).
    pub can_edit: bool,
    /// The organisation it belongs to (`None`: the caller's own); its page is where the
    /// connection's actions lead back to.
    pub organisation_id: Option<HtmlId>,
}

impl ConnectionView {
    /// The list this connection is shown in: `/connections`, or its organisation's page.
    pub fn list_href(&self) -> String {
        match self.organisation_id {
            None => PAGE.to_owned(),
            Some(organisation) => format!("/organisations/{organisation}"),
        }
    }
}

/// Where an action on `connection` leads back to without htmx.
fn list_of(connection: &Connection) -> String {
    match connection.ownership.organisation_id() {
        None => PAGE.to_owned(),
        Some(organisation) => format!("/organisations/{organisation}"),
    }
}

impl From<Connection> for ConnectionView {
    fn from(row: Connection) -> Self {
        ConnectionView {
            id: HtmlId(row.id),
            provider_label: row.provider.label(),
            name: row.name,
            base_url: row.base_url,
            masked_key: row.api_key_hint,
            test_status: row.test_status.as_str(),
            status_label: row.test_status.label(),
            test_message: row.test_message,
            test_latency_ms: row.test_latency_ms,
            tested_at: row.tested_at.map(display_time),
            model_count: row.model_count,
            models_fetched_at: row.models_fetched_at.map(display_time),
            configuration_count: row.configuration_count,
            expires_at: row.expires_at.map(display_time),
            refresh_failure: None,
            can_edit: row.ownership.can_edit(),
            organisation_id: row.ownership.organisation_id().map(HtmlId),
        }
    }
}

pub(super) fn connection_views(rows: Vec<Connection>) -> Vec<ConnectionView> {
    rows.into_iter().map(ConnectionView::from).collect()
}

/// The add and edit forms' state (never the key).
pub struct ConnectionForm {
    pub name: String,
    pub provider: String,
    pub base_url: String,
    pub key_hint: Option<String>,
    pub errors: FieldErrors,
    pub providers: Vec<ProviderOption>,
}

impl ConnectionForm {
    pub(super) fn empty() -> Self {
        ConnectionForm {
            name: String::new(),
            provider: Provider::Openai.id().to_owned(),
            base_url: String::new(),
            key_hint: None,
            errors: FieldErrors::new(),
            providers: provider_options(),
        }
    }

    fn of(row: &Connection) -> Self {
        ConnectionForm {
            name: row.name.clone(),
            provider: row.provider.id().to_owned(),
            base_url: row.base_url.clone().unwrap_or_default(),
            key_hint: row.api_key_hint.clone(),
            errors: FieldErrors::new(),
            providers: provider_options(),
        }
    }

    /// The submitted values, re-shown with their errors (never the key).
    pub(super) fn resubmitted(mut self, fields: &ConnectionFields, errors: FieldErrors) -> Self {
        self.name = fields.name.clone();
        self.provider = fields.provider.clone();
        self.base_url = fields.base_url.clone();
        self.errors = errors;
        self
    }
}

/// The list, the add form and a notice (such as a refused delete): what `#connections` holds.
#[derive(Template)]
#[template(path = "connections/_content.html")]
struct ContentFragment {
    connections: Vec<ConnectionView>,
    form: ConnectionForm,
    notice: Option<String>,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "connections/page.html")]
struct ConnectionsPage {
    layout: Layout,
    connections: Vec<ConnectionView>,
    form: ConnectionForm,
    notice: Option<String>,
    csrf_token: String,
}

/// The page (or, with htmx, the `#connections` fragment) with `status`.
fn render_content(
    htmx: bool,
    user: &SignedIn,
    status: StatusCode,
    connections: Vec<Connection>,
    form: ConnectionForm,
    notice: Option<String>,
) -> Result<HttpResponse, AppError> {
    let connections = connection_views(connections);
    let csrf_token = user.csrf_token.clone();
    let body = if htmx {
        ContentFragment {
            connections,
            form,
            notice,
            csrf_token,
        }
        .render()?
    } else {
        ConnectionsPage {
            layout: Layout::signed_in("Connections", "connections", user),
            connections,
            form,
            notice,
            csrf_token,
        }
        .render()?
    };
    Ok(private_html(status, body))
}

pub async fn page(state: web::Data<AppState>, req: HttpRequest, user: SignedIn) -> PageResult {
    let owner = user.user_id;
    let rows = state.db.run(move |conn| connections::list(conn, owner)).await?;
    Ok(render_content(
        is_htmx(&req),
        &user,
        StatusCode::OK,
        rows,
        ConnectionForm::empty(),
        None,
    )?)
}

#[derive(Debug, Deserialize)]
pub struct ConnectionFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider: String,
    /// A secret type from the moment the form is read: zeroised on drop, redacted in `Debug`.
    #[serde(default = "no_key")]
    api_key: SecretString,
    #[serde(default)]
    base_url: String,
}

fn no_key() -> SecretString {
    SecretString::from(String::new())
}

/// The form's fields, parsed; `None` where a field's error was recorded (an empty key and an
/// empty base URL are `None` without an error).
pub(super) struct ParsedConnection {
    pub name: Option<ConfigName>,
    pub provider: Option<Provider>,
    pub api_key: Option<ApiKey>,
    pub base_url: Option<BaseUrl>,
}

pub(super) fn parse_connection(
    fields: &ConnectionFields,
    policy: &impl PlainHttpHosts,
    errors: &mut FieldErrors,
) -> ParsedConnection {
    let name = ConfigName::parse(&fields.name).map_err(|m| errors.add("name", m)).ok();
    let provider = Provider::parse(&fields.provider);
    if provider.is_none() {
        errors.add("provider", "choose a provider from the list");
    }
    let key = fields.api_key.expose_secret();
    let api_key = if key.is_empty() {
        None
    } else {
        ApiKey::parse(key).map_err(|m| errors.add("api_key", m)).ok()
    };
    let base_url = if fields.base_url.trim().is_empty() {
        None
    } else {
        BaseUrl::parse(&fields.base_url, policy)
            .map_err(|m| errors.add("base_url", m))
            .ok()
    };
    ParsedConnection {
        name,
        provider,
        api_key,
        base_url,
    }
}

/// Refusals of the input go next to their fields (422), a cap's at the top of the form; others
/// are errors.
pub(super) fn form_errors(error: ConnectionError) -> Result<FieldErrors, ConnectionError> {
    match error {
        ConnectionError::Invalid(errors) => Ok(errors),
        ConnectionError::NameTaken => Ok(FieldErrors::single("name", error.to_string())),
        ConnectionError::CapReached(cap) => Ok(FieldErrors::single("form", cap.describe())),
        other => Err(other),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<ConnectionFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let fields = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_connection(&fields, &state.settings.egress, &mut errors);
    let owner = user.user_id;
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
                .run(move |conn| {
                    connections::create(conn, &keyring, owner, new, cap)?;
                    connections::list(conn, owner)
                })
                .await
        }
        _ => Err(ConnectionError::Invalid(errors)),
    };
    match outcome {
        Ok(_) if !htmx => Ok(see_other(PAGE)),
        Ok(rows) => Ok(render_content(
            true,
            &user,
            StatusCode::OK,
            rows,
            ConnectionForm::empty(),
            None,
        )?),
        Err(error) => {
            let errors = form_errors(error)?;
            let rows = state.db.run(move |conn| connections::list(conn, owner)).await?;
            let form = ConnectionForm::empty().resubmitted(&fields, errors);
            Ok(render_content(
                htmx,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                rows,
                form,
                None,
            )?)
        }
    }
}

/// One connection's own page: its details, its configurations, its models, the edit form.
#[derive(Template)]
#[template(path = "connections/detail.html")]
struct DetailPage {
    layout: Layout,
    c: ConnectionView,
    configurations: Vec<(HtmlId, String, String)>,
    models: Vec<String>,
    form: ConnectionForm,
    csrf_token: String,
    checks: CheckStrip,
}

struct Detail {
    connection: Connection,
    configurations: Vec<Configuration>,
    models: Vec<String>,
    checks: Vec<CheckRecord>,
}

async fn load_detail(state: &AppState, owner: Uuid, id: Uuid) -> Result<Detail, AppError> {
    state
        .db
        .run(move |conn| {
            let connection = connections::find(conn, owner, id)?;
            let models = connections::catalogue(conn, owner, id)?.models;
            let checks = scheduled_checks::history(conn, owner, id)?;
            let configurations: Vec<Configuration> = configurations::list(conn, owner)?;
            let configurations = configurations
                .into_iter()
                .filter(|configuration| configuration.connection_id == id)
                .collect();
            Ok::<_, AppError>(Detail {
                connection,
                configurations,
                models,
                checks,
            })
        })
        .await
}

fn render_detail(
    detail: Detail,
    form: Option<ConnectionForm>,
    user: &SignedIn,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let form = form.unwrap_or_else(|| ConnectionForm::of(&detail.connection));
    let page = DetailPage {
        layout: Layout::signed_in(format!("Connection {}", detail.connection.name), "connections", user),
        c: ConnectionView::from(detail.connection),
        configurations: detail
            .configurations
            .into_iter()
            .map(|configuration| (HtmlId(configuration.id), configuration.name, configuration.model))
            .collect(),
        models: detail.models,
        form,
        csrf_token: user.csrf_token.clone(),
        checks: CheckStrip::of(&detail.checks),
    };
    Ok(private_html(status, page.render()?))
}

pub async fn detail(state: web::Data<AppState>, user: SignedIn, path: web::Path<String>) -> PageResult {
    let id = page_id(&path)?;
    let detail = load_detail(&state, user.user_id, id).await?;
    Ok(render_detail(detail, None, &user, StatusCode::OK)?)
}

/// The edit form's post: every field as shown; an empty key keeps the stored one.
pub async fn update(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<ConnectionFields>,
) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    // Someone else's connection is a 404 before anything is read from the form.
    let detail = load_detail(&state, owner, id).await?;
    let fields = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_connection(&fields, &state.settings.egress, &mut errors);
    let outcome = if errors.is_empty() {
        let update = ConnectionUpdate {
            name: parsed.name,
            provider: parsed.provider,
            api_key: parsed.api_key.map_or(KeyChange::Keep, KeyChange::Replace),
            base_url: Some(parsed.base_url),
            // The form does not carry it: the expiry stays as it is.
            expires_at: None,
        };
        let keyring = state.keyring.clone();
        state
            .db
            .run(move |conn| connections::update(conn, &keyring, owner, id, update))
            .await
    } else {
        Err(ConnectionError::Invalid(errors))
    };
    match outcome {
        Ok(saved) => Ok(see_other(&list_of(&saved))),
        Err(error) => {
            let errors = form_errors(error)?;
            let form = ConnectionForm::of(&detail.connection).resubmitted(&fields, errors);
            Ok(render_detail(
                detail,
                Some(form),
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
            )?)
        }
    }
}

/// Delete: the list again (the fragment with htmx), or, while configurations use the
/// connection, the list with the refusal naming them (409).
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let id = page_id(&path)?;
    let owner = user.user_id;
    // Where the browser goes back to is the list the connection was in (its organisation's page
    // for an organisation's); someone else's is a 404 here already.
    let connection = state.db.run(move |conn| connections::find(conn, owner, id)).await?;
    let back = list_of(&connection);
    let deleted = state.db.run(move |conn| connections::delete(conn, owner, id)).await;
    let (status, notice) = match deleted {
        Ok(()) if !htmx => return Ok(see_other(&back)),
        Ok(()) => (StatusCode::OK, None),
        Err(error @ ConnectionError::InUse(_)) if connection.ownership.organisation_id().is_some() => {
            // The organisation's page shows the refusal beside its connections.
            return Err(AppError::from(error).into());
        }
        Err(error @ ConnectionError::InUse(_)) => (StatusCode::CONFLICT, Some(error.to_string())),
        Err(other) => return Err(other.into()),
    };
    let rows = state.db.run(move |conn| connections::list(conn, owner)).await?;
    Ok(render_content(
        htmx,
        &user,
        status,
        rows,
        ConnectionForm::empty(),
        notice,
    )?)
}

#[derive(Template)]
#[template(path = "connections/_row.html")]
struct RowFragment {
    c: ConnectionView,
    csrf_token: String,
}

async fn row_fragment(state: &AppState, user: &SignedIn, id: Uuid, refresh_failure: Option<String>) -> PageResult {
    let owner = user.user_id;
    let row = state.db.run(move |conn| connections::find(conn, owner, id)).await?;
    let fragment = RowFragment {
        c: ConnectionView {
            refresh_failure,
            ..ConnectionView::from(row)
        },
        csrf_token: user.csrf_token.clone(),
    };
    Ok(private_html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

/// Without htmx, a row action leads back to the list the connection is in.
async fn back_to_list(state: &AppState, user: &SignedIn, id: Uuid) -> PageResult {
    let owner = user.user_id;
    let connection = state.db.run(move |conn| connections::find(conn, owner, id)).await?;
    Ok(see_other(&list_of(&connection)))
}

/// **Test**: one free request to the provider, recorded on the connection (and its models
/// stored); the row with htmx, back to the list without.
pub async fn test(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = page_id(&path)?;
    state
        .tester()
        .test(user.user_id, TestSubject::Connection { id, model: None })
        .await?;
    if !is_htmx(&req) {
        return back_to_list(&state, &user, id).await;
    }
    row_fragment(&state, &user, id, None).await
}

/// **Refresh models**: the provider's model list fetched now and stored; the row with htmx
/// (saying why when nothing could be fetched), back to the list without.
pub async fn refresh_models(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = page_id(&path)?;
    let refreshed = state.tester().refresh_models(user.user_id, id).await?;
    if !is_htmx(&req) {
        return back_to_list(&state, &user, id).await;
    }
    let failure = refreshed
        .err()
        .map(|outcome| format!("Models not refreshed: {}", outcome.message));
    row_fragment(&state, &user, id, failure).await
}
