//! The management page: the table of configurations, the add/edit form (in a dialog with htmx,
//! its own page without), and the row actions. Every action works as a plain form post (303)
//! and, with `HX-Request`, answers with the fragment that changed.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::respond::{private_html, see_other};
use super::views::{ConfigurationView, Layout, ProviderOption, configuration_views_with_connections, provider_options};
use crate::domain::{
    ApiKey, BaseUrl, ConfigName, Configuration, Connection, ModelId, PlainHttpHosts, Provider, UserCaps,
};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn, is_htmx};
use crate::http::page_error::PageResult;
use crate::services::Work;
use crate::services::configurations::{
    self, ConfigurationUpdate, KeyChange, NewConfiguration, NewConfigurationOnConnection,
};
use crate::services::connection_tests::{self, SavedSubject, TestOutcome, TestTarget};
use crate::services::connections;

const PAGE: &str = "/llm-configurations";

/// A page id that is not a UUID names nothing: 404, like a missing one.
fn page_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[derive(Template)]
#[template(path = "llm_configurations/page.html")]
struct ManagementPage {
    layout: Layout,
    configurations: Vec<ConfigurationView>,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "llm_configurations/_table.html")]
struct TableFragment {
    configurations: Vec<ConfigurationView>,
    csrf_token: String,
}

/// The owner's configurations as the table shows them, each with its connection's name.
fn table_rows(conn: &mut Work, owner: Uuid) -> Result<Vec<ConfigurationView>, AppError> {
    let rows = configurations::list(conn, owner)?;
    let connections = connections::list(conn, owner)?;
    Ok(configuration_views_with_connections(rows, &connections))
}

fn table_fragment(rows: Vec<ConfigurationView>, user: &SignedIn) -> Result<HttpResponse, AppError> {
    let fragment = TableFragment {
        configurations: rows,
        csrf_token: user.csrf_token.clone(),
    };
    Ok(private_html(StatusCode::OK, fragment.render()?))
}

pub async fn page(state: web::Data<AppState>, user: SignedIn) -> PageResult {
    let owner = user.user_id;
    let rows = state.db.run(move |conn| table_rows(conn, owner)).await?;
    let page = ManagementPage {
        layout: Layout::signed_in("LLM configurations", "configurations", &user),
        configurations: rows,
        csrf_token: user.csrf_token.clone(),
    };
    Ok(private_html(StatusCode::OK, page.render().map_err(AppError::from)?))
}

/// The add/edit form's state.
pub struct FormView {
    pub action: String,
    pub id: String,
    pub is_edit: bool,
    pub in_dialog: bool,
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub base_url_placeholder: String,
    pub is_active: bool,
    pub key_hint: Option<String>,
    pub errors: FieldErrors,
    pub providers: Vec<ProviderOption>,
    /// The picker's choice: a connection's id, or `new`.
    pub connection_id: String,
    /// On the edit form, the connection the configuration uses now (its fields stay editable
    /// there); empty on the add form.
    pub current_connection_id: String,
    pub connections: Vec<ConnectionOption>,
    /// The chosen connection's model catalogue, for the model field's `<datalist>`.
    pub models: Vec<String>,
}

/// One of the user's connections in the form's picker.
pub struct ConnectionOption {
    pub id: String,
    pub label: String,
}

/// What the picker offers and the chosen connection's models.
pub struct Picker {
    connections: Vec<Connection>,
    models: Vec<String>,
}

/// The owner's connections and, when one is chosen, its catalogue (someone else's is 404).
fn picker(conn: &mut Work, owner: Uuid, chosen: Option<Uuid>) -> Result<Picker, AppError> {
    let models = match chosen {
        Some(id) => connections::catalogue(conn, owner, id)?.models,
        None => Vec::new(),
    };
    Ok(Picker {
        connections: connections::list(conn, owner)?,
        models,
    })
}

/// The picker's value as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    /// No picker in the request (a client of the form as it was): the old fields decide.
    Unspecified,
    /// "A new connection": provider, key and base URL from the same form.
    New,
    Existing(Uuid),
    Invalid,
}

fn chosen(raw: Option<&str>) -> Chosen {
    match raw.map(str::trim) {
        None | Some("") => Chosen::Unspecified,
        Some("new") => Chosen::New,
        Some(raw) => Uuid::parse_str(raw).map_or(Chosen::Invalid, Chosen::Existing),
    }
}

const NEW_CONNECTION: &str = "new";

impl FormView {
    fn new_configuration(in_dialog: bool) -> Self {
        FormView {
            action: PAGE.to_owned(),
            id: String::new(),
            is_edit: false,
            in_dialog,
            name: String::new(),
            provider: Provider::Openai.id().to_owned(),
            model: String::new(),
            base_url: String::new(),
            base_url_placeholder: Provider::Openai.suggested_base_url().unwrap_or("").to_owned(),
            is_active: true,
            key_hint: None,
            errors: FieldErrors::new(),
            providers: provider_options(),
            connection_id: NEW_CONNECTION.to_owned(),
            current_connection_id: String::new(),
            connections: Vec::new(),
            models: Vec::new(),
        }
    }

    fn edit(row: &Configuration, in_dialog: bool) -> Self {
        FormView {
            action: format!("{PAGE}/{}", row.id),
            id: row.id.to_string(),
            is_edit: true,
            in_dialog,
            name: row.name.clone(),
            provider: row.provider.id().to_owned(),
            model: row.model.clone(),
            base_url: row.base_url.clone().unwrap_or_default(),
            base_url_placeholder: row.provider.suggested_base_url().unwrap_or("").to_owned(),
            is_active: row.is_active,
            key_hint: row.api_key_hint.clone(),
            errors: FieldErrors::new(),
            providers: provider_options(),
            connection_id: row.connection_id.to_string(),
            current_connection_id: row.connection_id.to_string(),
            connections: Vec::new(),
            models: Vec::new(),
        }
    }

    /// The picker's options (each connection with its provider) and the chosen one's models.
    fn with_picker(mut self, picker: Picker) -> Self {
        self.connections = picker
            .connections
            .into_iter()
            .map(|connection| ConnectionOption {
                id: connection.id.to_string(),
                label: format!("{} ({})", connection.name, connection.provider.label()),
            })
            .collect();
        self.models = picker.models;
        self
    }

    /// The submitted values, re-shown with their errors (never the key).
    fn resubmitted(mut self, fields: &ConfigurationFields, errors: FieldErrors) -> Self {
        self.name = fields.name.clone();
        self.provider = fields.provider.clone();
        self.model = fields.model.clone();
        self.base_url = fields.base_url.clone();
        self.is_active = fields.is_active.is_some();
        if let Some(choice) = fields
            .connection_id
            .as_deref()
            .filter(|choice| !choice.trim().is_empty())
        {
            self.connection_id = choice.trim().to_owned();
        }
        self.errors = errors;
        self
    }
}

#[derive(Template)]
#[template(path = "llm_configurations/_form.html")]
struct FormFragment {
    form: FormView,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "llm_configurations/form_page.html")]
struct FormPage {
    layout: Layout,
    form: FormView,
    csrf_token: String,
}

/// The form as a dialog fragment (htmx) or its own page.
fn render_form(form: FormView, user: &SignedIn, status: StatusCode) -> Result<HttpResponse, AppError> {
    let body = if form.in_dialog {
        FormFragment {
            form,
            csrf_token: user.csrf_token.clone(),
        }
        .render()?
    } else {
        let title = if form.is_edit {
            "Edit configuration"
        } else {
            "Add configuration"
        };
        FormPage {
            layout: Layout::signed_in(title, "configurations", user),
            form,
            csrf_token: user.csrf_token.clone(),
        }
        .render()?
    };
    Ok(private_html(status, body))
}

/// `?connection_id=…` preselects one of the user's connections in the picker.
#[derive(Debug, Deserialize)]
pub struct PickerQuery {
    #[serde(default)]
    connection_id: String,
}

pub async fn new_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    query: web::Query<PickerQuery>,
) -> PageResult {
    let preselected = match chosen(Some(&query.connection_id)) {
        Chosen::Unspecified | Chosen::New => None,
        Chosen::Existing(id) => Some(id),
        Chosen::Invalid => return Err(AppError::NotFound.into()),
    };
    let owner = user.user_id;
    let picker = state.db.run(move |conn| picker(conn, owner, preselected)).await?;
    let mut form = FormView::new_configuration(is_htmx(&req)).with_picker(picker);
    if let Some(id) = preselected {
        form.connection_id = id.to_string();
    }
    Ok(render_form(form, &user, StatusCode::OK)?)
}

#[derive(Template)]
#[template(path = "llm_configurations/_models.html")]
struct ModelsFragment {
    models: Vec<String>,
}

/// The model field's `<datalist>` for the connection the picker shows (htmx swaps it in place);
/// empty for a new connection.
pub async fn models(state: web::Data<AppState>, user: SignedIn, query: web::Query<PickerQuery>) -> PageResult {
    let models = match chosen(Some(&query.connection_id)) {
        Chosen::Unspecified | Chosen::New => Vec::new(),
        Chosen::Existing(id) => {
            let owner = user.user_id;
            state
                .db
                .run(move |conn| connections::catalogue(conn, owner, id))
                .await?
                .models
        }
        Chosen::Invalid => return Err(AppError::NotFound.into()),
    };
    Ok(private_html(
        StatusCode::OK,
        ModelsFragment { models }.render().map_err(AppError::from)?,
    ))
}

pub async fn edit_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    let (row, picker) = state
        .db
        .run(move |conn| {
            let row = configurations::find(conn, owner, id)?;
            let picker = picker(conn, owner, Some(row.connection_id))?;
            Ok::<_, AppError>((row, picker))
        })
        .await?;
    Ok(render_form(
        FormView::edit(&row, is_htmx(&req)).with_picker(picker),
        &user,
        StatusCode::OK,
    )?)
}

#[derive(Debug, Deserialize)]
pub struct ConfigurationFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    model: String,
    /// A secret type from the moment the form is read: zeroised on drop, redacted in `Debug`.
    #[serde(default = "no_key")]
    api_key: SecretString,
    #[serde(default)]
    base_url: String,
    is_active: Option<String>,
    /// The picker: one of the user's connections, or `new`; absent, the old fields decide.
    connection_id: Option<String>,
}

fn no_key() -> SecretString {
    SecretString::from(String::new())
}

/// The form's fields, parsed; `None` where a field's error was recorded.
struct ParsedFields {
    name: Option<ConfigName>,
    provider: Option<Provider>,
    model: Option<ModelId>,
    api_key: Option<ApiKey>,
    base_url: Option<BaseUrl>,
}

fn parse_fields(fields: &ConfigurationFields, policy: &impl PlainHttpHosts, errors: &mut FieldErrors) -> ParsedFields {
    let mut record = |field: &str, message: String| errors.add(field, message);
    let name = ConfigName::parse(&fields.name).map_err(|m| record("name", m)).ok();
    let provider = Provider::parse(&fields.provider);
    if provider.is_none() {
        record("provider", "choose a provider from the list".into());
    }
    let model = ModelId::parse(&fields.model).map_err(|m| record("model", m)).ok();
    let api_key = (!fields.api_key.expose_secret().is_empty())
        .then(|| {
            ApiKey::parse(fields.api_key.expose_secret())
                .map_err(|m| record("api_key", m))
                .ok()
        })
        .flatten();
    let base_url = (!fields.base_url.trim().is_empty())
        .then(|| {
            BaseUrl::parse(&fields.base_url, policy)
                .map_err(|m| record("base_url", m))
                .ok()
        })
        .flatten();
    ParsedFields {
        name,
        provider,
        model,
        api_key,
        base_url,
    }
}

/// After a successful save: the table (htmx, retargeted from the dialog's form, which the
/// `configuration-saved` event closes) or a redirect to the page.
fn after_save(htmx: bool, rows: Vec<ConfigurationView>, user: &SignedIn) -> Result<HttpResponse, AppError> {
    if !htmx {
        return Ok(see_other(PAGE));
    }
    let mut response = table_fragment(rows, user)?;
    let headers = response.headers_mut();
    headers.insert(
        header::HeaderName::from_static("hx-retarget"),
        header::HeaderValue::from_static("#configurations"),
    );
    headers.insert(
        header::HeaderName::from_static("hx-reswap"),
        header::HeaderValue::from_static("innerHTML"),
    );
    headers.insert(
        header::HeaderName::from_static("hx-trigger"),
        header::HeaderValue::from_static("configuration-saved"),
    );
    Ok(response)
}

/// Validation errors and field-level conflicts (a taken name, a shared connection's fields)
/// re-render the form (422); others are errors.
fn form_errors(error: AppError) -> Result<FieldErrors, AppError> {
    match error {
        AppError::Validation(errors) => Ok(errors.rename(UserCaps::default().configurations.variable, "form")),
        AppError::Conflict { fields, .. } | AppError::Refused { fields, .. } if !fields.is_empty() => Ok(fields),
        other => Err(other),
    }
}

/// Only the errors of `fields` (on an existing connection, the new-connection fields are
/// not used, so neither are their errors).
fn errors_of(errors: &FieldErrors, fields: &[&str]) -> FieldErrors {
    let mut kept = FieldErrors::new();
    for (field, messages) in errors.iter() {
        if fields.contains(&field) {
            for message in messages {
                kept.add(field, message.clone());
            }
        }
    }
    kept
}

fn choose_from_the_list() -> AppError {
    AppError::validation("connection_id", "choose one of your connections, or a new connection")
}

/// The form re-rendered with its errors (422), its picker as submitted.
async fn rerender(
    state: &AppState,
    user: &SignedIn,
    form: FormView,
    fields: &ConfigurationFields,
    errors: FieldErrors,
) -> PageResult {
    let owner = user.user_id;
    let choice = match chosen(fields.connection_id.as_deref()) {
        Chosen::Existing(id) => Some(id),
        _ => None,
    };
    // A choice that is not the user's shows no models (its error says why).
    let picker = state
        .db
        .run(move |conn| match picker(conn, owner, choice) {
            Err(AppError::NotFound) => picker(conn, owner, None),
            other => other,
        })
        .await?;
    let form = form.with_picker(picker).resubmitted(fields, errors);
    Ok(render_form(form, user, StatusCode::UNPROCESSABLE_ENTITY)?)
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<ConfigurationFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let fields = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_fields(&fields, &state.settings.egress, &mut errors);
    let owner = user.user_id;
    let cap = state.settings.caps.configurations;
    let is_active = fields.is_active.is_some();
    let outcome = match (chosen(fields.connection_id.as_deref()), parsed) {
        (Chosen::Invalid, _) => Err(choose_from_the_list()),
        (
            Chosen::Existing(connection_id),
            ParsedFields {
                name: Some(name),
                model: Some(model),
                ..
            },
        ) if errors_of(&errors, &["name", "model"]).is_empty() => {
            let new = NewConfigurationOnConnection {
                name,
                connection_id,
                model,
                is_default: false,
                is_active,
            };
            state
                .db
                .run(move |conn| {
                    configurations::create_on_connection(conn, owner, new, cap)?;
                    table_rows(conn, owner)
                })
                .await
        }
        (Chosen::Existing(_), _) => Err(AppError::Validation(errors_of(&errors, &["name", "model"]))),
        (
            Chosen::Unspecified | Chosen::New,
            ParsedFields {
                name: Some(name),
                provider: Some(provider),
                model: Some(model),
                api_key,
                base_url,
            },
        ) if errors.is_empty() => {
            let new = NewConfiguration {
                name,
                provider,
                model,
                api_key,
                base_url,
                is_default: false,
                is_active,
            };
            let keyring = state.keyring.clone();
            state
                .db
                .run(move |conn| {
                    configurations::create(conn, &keyring, owner, new, cap)?;
                    table_rows(conn, owner)
                })
                .await
        }
        _ => Err(AppError::Validation(errors)),
    };
    match outcome {
        Ok(rows) => Ok(after_save(htmx, rows, &user)?),
        Err(error) => {
            let errors = form_errors(error)?;
            rerender(&state, &user, FormView::new_configuration(htmx), &fields, errors).await
        }
    }
}

pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<ConfigurationFields>,
) -> PageResult {
    let htmx = is_htmx(&req);
    let id = page_id(&path)?;
    let owner = user.user_id;
    // Someone else's configuration is a 404 before anything is read from the form.
    let row = state.db.run(move |conn| configurations::find(conn, owner, id)).await?;
    let fields = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_fields(&fields, &state.settings.egress, &mut errors);
    let keyring = state.keyring.clone();
    let is_active = Some(fields.is_active.is_some());
    let outcome = match chosen(fields.connection_id.as_deref()) {
        Chosen::Invalid => Err(choose_from_the_list()),
        // Another of the user's connections: the configuration moves there.
        Chosen::Existing(connection_id) if connection_id != row.connection_id => {
            let errors = errors_of(&errors, &["name", "model"]);
            if errors.is_empty() {
                let update = ConfigurationUpdate {
                    name: parsed.name,
                    connection_id: Some(connection_id),
                    model: parsed.model,
                    is_active,
                    ..ConfigurationUpdate::default()
                };
                state
                    .db
                    .run(move |conn| {
                        configurations::update(conn, &keyring, owner, id, update)?;
                        table_rows(conn, owner)
                    })
                    .await
            } else {
                Err(AppError::Validation(errors))
            }
        }
        // A new connection from the form's provider, key and base URL.
        Chosen::New => match parsed {
            ParsedFields {
                provider: Some(provider),
                api_key,
                base_url,
                name,
                model,
            } if errors.is_empty() => {
                let update = ConfigurationUpdate {
                    name,
                    model,
                    is_active,
                    ..ConfigurationUpdate::default()
                };
                state
                    .db
                    .run(move |conn| {
                        configurations::update_onto_new_connection(
                            conn,
                            &keyring,
                            owner,
                            id,
                            (provider, api_key, base_url),
                            update,
                        )?;
                        table_rows(conn, owner)
                    })
                    .await
            }
            _ => Err(AppError::Validation(errors)),
        },
        // The connection it uses (or no picker at all): its fields change that connection, as
        // before connections existed (refused while other configurations share it).
        Chosen::Unspecified | Chosen::Existing(_) => {
            if errors.is_empty() {
                let update = ConfigurationUpdate {
                    name: parsed.name,
                    connection_id: None,
                    provider: parsed.provider,
                    model: parsed.model,
                    // An empty key field keeps the stored key.
                    api_key: parsed.api_key.map_or(KeyChange::Keep, KeyChange::Replace),
                    base_url: Some(parsed.base_url),
                    is_active,
                };
                state
                    .db
                    .run(move |conn| {
                        configurations::update(conn, &keyring, owner, id, update)?;
                        table_rows(conn, owner)
                    })
                    .await
            } else {
                Err(AppError::Validation(errors))
            }
        }
    };
    match outcome {
        Ok(rows) => Ok(after_save(htmx, rows, &user)?),
        Err(error) => {
            let errors = form_errors(error)?;
            rerender(&state, &user, FormView::edit(&row, htmx), &fields, errors).await
        }
    }
}

/// A row action's answer: the table (htmx) or back to the page.
fn after_action(htmx: bool, rows: Vec<ConfigurationView>, user: &SignedIn) -> PageResult {
    if htmx {
        Ok(table_fragment(rows, user)?)
    } else {
        Ok(see_other(PAGE))
    }
}

/// Runs a row action for the signed-in user, then answers with the table (htmx) or sends the
/// browser back to the page.
async fn row_action(
    state: web::Data<AppState>,
    req: &HttpRequest,
    user: &SignedIn,
    path: &str,
    action: impl FnOnce(&mut Work, Uuid, Uuid) -> Result<(), AppError> + Send + 'static,
) -> PageResult {
    let id = page_id(path)?;
    let owner = user.user_id;
    let rows = state
        .db
        .run(move |conn| {
            action(conn, owner, id)?;
            table_rows(conn, owner)
        })
        .await?;
    after_action(is_htmx(req), rows, user)
}

pub async fn set_default(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    row_action(state, &req, &user, &path, |conn, owner, id| {
        configurations::set_default(conn, owner, id).map(|_| ())
    })
    .await
}

#[derive(Deserialize)]
pub struct ActiveField {
    #[serde(default)]
    is_active: String,
}

pub async fn set_active(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<ActiveField>,
) -> PageResult {
    let is_active = match form.fields.is_active.as_str() {
        "true" | "on" => true,
        "false" | "" => false,
        _ => return Err(AppError::validation("is_active", "must be true or false").into()),
    };
    let keyring = state.keyring.clone();
    row_action(state, &req, &user, &path, move |conn, owner, id| {
        let update = ConfigurationUpdate {
            is_active: Some(is_active),
            ..ConfigurationUpdate::default()
        };
        configurations::update(conn, &keyring, owner, id, update).map(|_| ())
    })
    .await
}

#[derive(Template)]
#[template(path = "llm_configurations/delete_confirm.html")]
struct DeleteConfirmPage {
    layout: Layout,
    id: String,
    name: String,
}

/// Without JavaScript, Delete leads here to confirm.
pub async fn delete_confirm(state: web::Data<AppState>, user: SignedIn, path: web::Path<String>) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    let row = state.db.run(move |conn| configurations::find(conn, owner, id)).await?;
    let page = DeleteConfirmPage {
        layout: Layout::signed_in("Delete configuration", "configurations", &user),
        id: row.id.to_string(),
        name: row.name,
    };
    Ok(private_html(StatusCode::OK, page.render().map_err(AppError::from)?))
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    row_action(state, &req, &user, &path, configurations::delete).await
}

#[derive(Template)]
#[template(path = "llm_configurations/_row.html")]
struct RowFragment {
    c: ConfigurationView,
    csrf_token: String,
}

/// The Test button: with htmx, the row with its new status; without, back to the page.
pub async fn test_saved(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    connection_tests::test_saved(
        &state.db,
        &state.keyring,
        &state.outbound,
        owner,
        id,
        state.settings.test_rate_per_minute,
    )
    .await?;
    if !is_htmx(&req) {
        return Ok(see_other(PAGE));
    }
    let row = state
        .db
        .run(move |conn| {
            let row = configurations::find(conn, owner, id)?;
            let connection = connections::find(conn, owner, row.connection_id)?;
            Ok::<_, AppError>(configuration_views_with_connections(vec![row], &[connection]))
        })
        .await?;
    let Some(row) = row.into_iter().next() else {
        return Err(AppError::NotFound.into());
    };
    let fragment = RowFragment {
        c: row,
        csrf_token: user.csrf_token.clone(),
    };
    Ok(private_html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

/// A test result as the form shows it.
pub struct TestResultView {
    pub ok: bool,
    pub status: &'static str,
    pub code: &'static str,
    pub message: String,
    pub latency_ms: Option<i64>,
    pub models: Vec<String>,
    pub warnings: Vec<&'static str>,
}

impl From<TestOutcome> for TestResultView {
    fn from(outcome: TestOutcome) -> Self {
        TestResultView {
            ok: outcome.ok,
            status: outcome.status(),
            code: outcome.code,
            message: outcome.message,
            latency_ms: outcome.latency_ms,
            models: outcome.models,
            warnings: outcome.warnings,
        }
    }
}

#[derive(Template)]
#[template(path = "llm_configurations/_test_result.html")]
struct TestResultFragment {
    result: TestResultView,
}

#[derive(Debug, Deserialize)]
pub struct UnsavedTestFields {
    #[serde(flatten)]
    fields: ConfigurationFields,
    #[serde(default)]
    configuration_id: String,
}

/// "Test before saving": tests the form's values. On the edit form an empty key field uses the
/// stored key, but only while provider and base URL are unchanged (else it asks for the key).
pub async fn test_unsaved(
    state: web::Data<AppState>,
    user: SignedIn,
    form: ProtectedForm<UnsavedTestFields>,
) -> PageResult {
    let UnsavedTestFields {
        fields,
        configuration_id,
    } = form.fields;
    let mut errors = FieldErrors::new();
    let parsed = parse_fields(&fields, &state.settings.egress, &mut errors);
    // A test needs neither a name nor a model (without one it shows what the provider offers):
    // every other error stops it.
    let model_is_empty = fields.model.trim().is_empty();
    let blocking = |field: &str| field != "name" && !(field == "model" && model_is_empty);
    // A connection picked in the form (other than the one the edited configuration uses, whose
    // fields stay editable) is tested as it is stored, for the form's model.
    if let Chosen::Existing(connection_id) = chosen(fields.connection_id.as_deref()) {
        let owner = user.user_id;
        let limit = state.settings.test_rate_per_minute;
        let stored_id = Uuid::parse_str(configuration_id.trim()).ok();
        let current = match stored_id {
            Some(id) => Some(
                state
                    .db
                    .run(move |conn| configurations::find(conn, owner, id))
                    .await?
                    .connection_id,
            ),
            None => None,
        };
        if current != Some(connection_id) {
            if errors.has("model") && !model_is_empty {
                return Ok(test_form_errors(errors_of(&errors, &["model"]))?);
            }
            let outcome = connection_tests::test_saved_subject(
                &state.db,
                &state.keyring,
                &state.outbound,
                owner,
                SavedSubject::Connection {
                    id: connection_id,
                    model: parsed.model.as_ref(),
                },
                limit,
            )
            .await?;
            let fragment = TestResultFragment {
                result: TestResultView::from(outcome),
            };
            return Ok(private_html(StatusCode::OK, fragment.render().map_err(AppError::from)?));
        }
    }
    let Some(provider) = parsed.provider else {
        return Ok(test_form_errors(errors)?);
    };
    if errors.iter().any(|(field, _)| blocking(field)) {
        return Ok(test_form_errors(errors)?);
    }
    let model = parsed.model;
    let owner = user.user_id;
    let limit = state.settings.test_rate_per_minute;
    let stored_id = Uuid::parse_str(configuration_id.trim()).ok();
    let outcome = match (parsed.api_key, stored_id) {
        (None, Some(id)) => {
            let tested = connection_tests::test_edit_with_stored_key(
                &state.db,
                &state.keyring,
                &state.outbound,
                owner,
                id,
                provider,
                parsed.base_url.as_ref(),
                model.as_ref(),
                limit,
            )
            .await;
            match tested {
                Ok(outcome) => outcome,
                Err(AppError::Validation(errors)) => return Ok(test_form_errors(errors)?),
                Err(other) => return Err(other.into()),
            }
        }
        (api_key, _) => {
            let target = match TestTarget::new(provider, model.as_ref(), parsed.base_url.as_ref(), api_key.as_ref()) {
                Ok(target) => target,
                Err(AppError::Validation(errors)) => return Ok(test_form_errors(errors)?),
                Err(other) => return Err(other.into()),
            };
            connection_tests::test_unsaved(&state.db, &state.outbound, owner, target, limit).await?
        }
    };
    let fragment = TestResultFragment {
        result: TestResultView::from(outcome),
    };
    Ok(private_html(StatusCode::OK, fragment.render().map_err(AppError::from)?))
}

/// A test that cannot run: the reasons, in the result area (422, which htmx swaps).
fn test_form_errors(errors: FieldErrors) -> Result<HttpResponse, AppError> {
    let result = TestResultView {
        ok: false,
        status: "failed",
        code: "validation_failed",
        message: format!("Cannot test yet: {}.", errors.summary().join("; ")),
        latency_ms: None,
        models: Vec::new(),
        warnings: Vec::new(),
    };
    Ok(private_html(
        StatusCode::UNPROCESSABLE_ENTITY,
        TestResultFragment { result }.render()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::ConfigurationFields;

    #[test]
    fn a_submitted_key_is_redacted_when_the_form_is_formatted() {
        let key = "sk-proj-form0123456789abcdefSECRET";
        let fields: ConfigurationFields =
            serde_urlencoded::from_str(&format!("name=n&provider=openai&model=m&api_key={key}")).unwrap();
        let shown = format!("{fields:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("provider"), "{shown}");
    }
}
