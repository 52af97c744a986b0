//! The management page: the table of configurations, the add/edit form (in a dialog with htmx,
//! its own page without), and the row actions. Every action works as a plain form post (303)
//! and, with `HX-Request`, answers with the fragment that changed.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::respond::{private_html, see_other};
use super::views::{
    ConfigurationGroup, ConfigurationView, HtmlId, Layout, ProviderOption, configuration_views_with_connections,
    group_by_owner, provider_options,
};
use crate::domain::{Configuration, Connection, MemberAccess, Parameters, Provider, ReasoningEffort};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{ProtectedForm, SignedIn, is_htmx};
use crate::http::listing_cache::View;
use crate::http::page_error::PageResult;
use crate::services::Work;
use crate::services::configuration_input::{ConfigurationInput, NewConfigurationInput, Sent, TestInput};
use crate::services::configurations::{self, ConfigurationError, ConfigurationUpdate, KeyChange, KeyRule};
use crate::services::connection_tests::{TestError, TestOutcome, TestSubject};
use crate::services::connections::{self, ConnectionError};

const PAGE: &str = "/llm-configurations";

/// A page id that is not a UUID names nothing: 404, like a missing one.
fn page_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[derive(Template)]
#[template(path = "llm_configurations/page.html")]
struct ManagementPage {
    layout: Layout,
    /// The caller's own first, then a section per organisation.
    groups: Vec<ConfigurationGroup>,
    csrf_token: String,
    /// A connection is failing or a model is missing.
    attention: bool,
}

#[derive(Template)]
#[template(path = "llm_configurations/_table.html")]
struct TableFragment {
    groups: Vec<ConfigurationGroup>,
    csrf_token: String,
}

/// The owner's configurations as the table shows them, each with its connection's name.
fn table_rows(conn: &mut Work, owner: Uuid) -> Result<Vec<ConfigurationView>, ConfigurationError> {
    Ok(configuration_views_with_connections(configurations::list(conn, owner)?))
}

fn table_fragment(rows: Vec<ConfigurationView>, user: &SignedIn) -> Result<HttpResponse, AppError> {
    let fragment = TableFragment {
        groups: group_by_owner(rows),
        csrf_token: user.csrf_token.clone(),
    };
    Ok(private_html(StatusCode::OK, fragment.render()?))
}

/// The management page: rendered from the listing and the session's user, and served again
/// while neither changed (`http::ListingCache`).
pub async fn page(state: web::Data<AppState>, user: SignedIn) -> PageResult {
    let owner = user.user_id;
    let layout = Layout::signed_in("LLM configurations", "configurations", &user);
    let view = View::Page {
        email: user.email.clone(),
        is_admin: user.is_admin(),
        csrf_token: user.csrf_token.clone(),
    };
    let listings = state.listings.clone();
    let body = state
        .db
        .run(move |conn| {
            let version = configurations::listing_version(conn, owner)?;
            if let Some(body) = listings.get(owner, &view, version) {
                return Ok(body);
            }
            let rows = table_rows(conn, owner)?;
            let page = ManagementPage {
                attention: rows.iter().any(|row| row.needs_attention),
                csrf_token: layout.csrf_token.clone(),
                layout,
                groups: group_by_owner(rows),
            };
            let body = web::Bytes::from(page.render()?);
            listings.put(owner, view, version, body.clone());
            Ok::<_, AppError>(body)
        })
        .await?;
    Ok(private_html(StatusCode::OK, body))
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
    pub parameters: ParameterFields,
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
    /// On an organisation's configuration: the organisation (whose connections the picker
    /// offers) and the `member_access` choice the form shows.
    pub organisation_id: Option<HtmlId>,
    pub member_access: Option<&'static str>,
    /// With htmx outside the dialog (the organisation's page): the element the answer replaces.
    pub hx_target: Option<String>,
    /// Where "Manage connections" and "Cancel" lead.
    pub connections_href: String,
    pub cancel_href: String,
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

/// The connections a configuration of the caller's own (`organisation` `None`) or of the
/// organisation may use and, when one is chosen, its catalogue (someone else's: not found).
pub(super) fn picker(
    conn: &mut Work,
    caller: Uuid,
    organisation: Option<Uuid>,
    chosen: Option<Uuid>,
) -> Result<Picker, ConnectionError> {
    let models = match chosen {
        Some(id) => connections::catalogue(conn, caller, id)?.models,
        None => Vec::new(),
    };
    let connections = match organisation {
        None => connections::list(conn, caller)?,
        Some(organisation) => connections::list_for_organisation(conn, caller, organisation)?,
    };
    Ok(Picker { connections, models })
}

/// The picker's value as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chosen {
    /// No picker in the request (a client of the form as it was): the old fields decide.
    Unspecified,
    /// "A new connection": provider, key and base URL from the same form.
    New,
    Existing(Uuid),
    Invalid,
}

pub(super) fn chosen(raw: Option<&str>) -> Chosen {
    match raw.map(str::trim) {
        None | Some("") => Chosen::Unspecified,
        Some("new") => Chosen::New,
        Some(raw) => Uuid::parse_str(raw).map_or(Chosen::Invalid, Chosen::Existing),
    }
}

pub(super) fn choose_from_the_list() -> FieldErrors {
    FieldErrors::single("connection_id", "choose one of your connections, or a new connection")
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
            parameters: ParameterFields::default(),
            errors: FieldErrors::new(),
            providers: provider_options(),
            connection_id: NEW_CONNECTION.to_owned(),
            current_connection_id: String::new(),
            connections: Vec::new(),
            models: Vec::new(),
            organisation_id: None,
            member_access: None,
            hx_target: None,
            connections_href: "/connections".to_owned(),
            cancel_href: PAGE.to_owned(),
        }
    }

    /// The form that adds a configuration to an organisation, on its page (htmx swaps the
    /// section `hx_target`).
    pub(super) fn new_for_organisation(organisation: Uuid, hx_target: &str) -> Self {
        let page = format!("/organisations/{organisation}");
        FormView {
            action: format!("{page}/llm-configurations"),
            organisation_id: Some(HtmlId(organisation)),
            member_access: Some(MemberAccess::Use.as_str()),
            hx_target: Some(hx_target.to_owned()),
            connections_href: format!("{page}#connections-heading"),
            cancel_href: page,
            ..FormView::new_configuration(false)
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
            parameters: ParameterFields::from(&row.parameters),
            errors: FieldErrors::new(),
            providers: provider_options(),
            connection_id: row.connection_id.to_string(),
            current_connection_id: row.connection_id.to_string(),
            connections: Vec::new(),
            models: Vec::new(),
            organisation_id: row.ownership.organisation_id().map(HtmlId),
            member_access: row.ownership.organisation_id().map(|_| row.member_access.as_str()),
            hx_target: None,
            connections_href: match row.ownership.organisation_id() {
                Some(organisation) => format!("/organisations/{organisation}#connections-heading"),
                None => "/connections".to_owned(),
            },
            cancel_href: PAGE.to_owned(),
        }
    }

    /// The picker's options (each connection with its provider) and the chosen one's models.
    pub(super) fn with_picker(mut self, picker: Picker) -> Self {
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
    pub(super) fn resubmitted(mut self, fields: &ConfigurationFields, errors: FieldErrors) -> Self {
        if self.member_access.is_some() {
            self.member_access = Some(
                MemberAccess::parse(fields.member_access.as_deref().unwrap_or_default())
                    .unwrap_or(MemberAccess::Use)
                    .as_str(),
            );
        }
        self.name = fields.name.clone();
        self.provider = fields.provider.clone();
        self.model = fields.model.clone();
        self.base_url = fields.base_url.clone();
        self.is_active = fields.is_active.is_some();
        self.parameters = fields.parameters.clone();
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

    /// The closed "Parameters" section opens itself when it holds an error.
    pub fn parameters_have_errors(&self) -> bool {
        self.errors.iter().any(|(field, _)| field.starts_with("parameters"))
    }

    /// The choices of the reasoning effort `<select>` (the empty one: not set).
    pub fn reasoning_efforts(&self) -> [&'static str; 3] {
        ReasoningEffort::ALL.map(ReasoningEffort::as_str)
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
    let picker = state.db.run(move |conn| picker(conn, owner, None, preselected)).await?;
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
            // A member of its organisation may use it, not change it.
            if !row.ownership.can_edit() {
                return Err(AppError::from(ConfigurationError::Forbidden));
            }
            let picker = picker(conn, owner, row.ownership.organisation_id(), Some(row.connection_id))?;
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
    /// On an organisation's configuration only: `use` or `reveal`.
    member_access: Option<String>,
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
    pub(super) connection_id: Option<String>,
    #[serde(flatten)]
    parameters: ParameterFields,
}

/// The form's "Parameters" section: one input per parameter, named `parameters.<name>`, and
/// the extra headers as one `Name: value` per line. An empty input means "not set".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ParameterFields {
    #[serde(default, rename = "parameters.temperature")]
    pub temperature: String,
    #[serde(default, rename = "parameters.top_p")]
    pub top_p: String,
    #[serde(default, rename = "parameters.max_output_tokens")]
    pub max_output_tokens: String,
    #[serde(default, rename = "parameters.reasoning_effort")]
    pub reasoning_effort: String,
    #[serde(default, rename = "parameters.timeout_seconds")]
    pub timeout_seconds: String,
    #[serde(default, rename = "parameters.api_version")]
    pub api_version: String,
    #[serde(default, rename = "parameters.extra_headers")]
    pub extra_headers: String,
}

impl From<&Parameters> for ParameterFields {
    fn from(parameters: &Parameters) -> Self {
        let text = |value: Option<String>| value.unwrap_or_default();
        ParameterFields {
            temperature: text(parameters.temperature.map(|value| value.to_string())),
            top_p: text(parameters.top_p.map(|value| value.to_string())),
            max_output_tokens: text(parameters.max_output_tokens.map(|value| value.to_string())),
            reasoning_effort: text(parameters.reasoning_effort.map(|effort| effort.as_str().to_owned())),
            timeout_seconds: text(parameters.timeout_seconds.map(|value| value.to_string())),
            api_version: text(parameters.api_version.clone()),
            extra_headers: parameters
                .extra_headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl ParameterFields {
    /// The inputs as a parameters object for the one parser: empty inputs left out, numbers as
    /// JSON numbers (text that is not one is passed on, for the parser to refuse by name). A
    /// header line without `:` is refused here, under `parameters.extra_headers`.
    fn to_json(&self, refused: &mut FieldErrors) -> Value {
        let mut members = Map::new();
        let mut put = |member: &str, text: &str, numeric: bool| {
            let text = text.trim();
            if text.is_empty() {
                return;
            }
            let value = match serde_json::from_str::<serde_json::Number>(text) {
                Ok(number) if numeric => Value::Number(number),
                _ => Value::String(text.to_owned()),
            };
            members.insert(member.to_owned(), value);
        };
        put("temperature", &self.temperature, true);
        put("top_p", &self.top_p, true);
        put("max_output_tokens", &self.max_output_tokens, true);
        put("reasoning_effort", &self.reasoning_effort, false);
        put("timeout_seconds", &self.timeout_seconds, true);
        put("api_version", &self.api_version, false);
        let mut headers = Map::new();
        for (index, line) in self.extra_headers.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let field = "parameters.extra_headers";
            match line.split_once(':') {
                Some((name, value)) => {
                    let name = name.trim();
                    if headers
                        .insert(name.to_owned(), Value::String(value.trim().to_owned()))
                        .is_some()
                    {
                        refused.add(field, format!("line {}: `{name}` is given twice", index + 1));
                    }
                }
                None => refused.add(field, format!("line {}: write one `Name: value` per line", index + 1)),
            }
        }
        if !headers.is_empty() {
            members.insert("extra_headers".to_owned(), Value::Object(headers));
        }
        Value::Object(members)
    }
}

fn no_key() -> SecretString {
    SecretString::from(String::new())
}

/// A form field as sent: an HTML form cannot leave a field out, so an empty one means "not
/// set" where that is what the field allows.
fn filled(value: &str) -> Sent<String> {
    if value.trim().is_empty() {
        Sent::Absent
    } else {
        Sent::Value(value.to_owned())
    }
}

impl ConfigurationFields {
    /// The form as the one configuration parser reads it. An empty key field sends no key (on
    /// the edit form: keeps the stored one); the checkbox and the parameters (which replace the
    /// stored ones) are sent either way.
    pub(super) fn input(&self) -> ConfigurationInput {
        let api_key = self.api_key.expose_secret();
        let mut refused = FieldErrors::new();
        let parameters = Sent::Value(self.parameters.to_json(&mut refused));
        ConfigurationInput {
            connection_id: Sent::Absent,
            name: Sent::Value(self.name.clone()),
            provider: Sent::Value(self.provider.clone()),
            model: Sent::Value(self.model.clone()),
            api_key: if api_key.is_empty() {
                Sent::Absent
            } else {
                Sent::Value(SecretString::from(api_key.to_owned()))
            },
            base_url: Sent::Value(self.base_url.clone()),
            is_default: Sent::Absent,
            is_active: Sent::Value(self.is_active.is_some()),
            parameters,
            member_access: self.member_access.as_deref().map_or(Sent::Absent, filled),
            refused,
        }
    }

    /// The form on the picked connection `id`: its provider, key and base URL fields are not
    /// the configuration's to send (they describe a new connection).
    pub(super) fn input_on(&self, id: Uuid) -> ConfigurationInput {
        ConfigurationInput {
            connection_id: Sent::Value(id.to_string()),
            provider: Sent::Absent,
            api_key: Sent::Absent,
            base_url: Sent::Absent,
            ..self.input()
        }
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

/// Refusals of the input re-render the form (422), a cap's at the top of the form; others are
/// errors.
pub(super) fn form_errors(error: ConfigurationError) -> Result<FieldErrors, ConfigurationError> {
    match error {
        ConfigurationError::CapReached(cap) => Ok(FieldErrors::single("form", cap.describe())),
        other => other.into_field_errors(),
    }
}

/// Saves parsed form input with `save` in one database task, then lists the owner's rows; a
/// refusal of the input (the parser's or the service's) is handed back for the form.
async fn save<T: Send + 'static>(
    state: &AppState,
    owner: Uuid,
    parsed: Result<T, FieldErrors>,
    save: impl FnOnce(&mut Work, T) -> Result<Configuration, ConfigurationError> + Send + 'static,
) -> Result<Result<Vec<ConfigurationView>, FieldErrors>, ConfigurationError> {
    let outcome = match parsed {
        Ok(input) => {
            state
                .db
                .run(move |conn| {
                    save(conn, input)?;
                    table_rows(conn, owner)
                })
                .await
        }
        Err(errors) => Err(ConfigurationError::Invalid(errors)),
    };
    match outcome {
        Ok(rows) => Ok(Ok(rows)),
        Err(error) => form_errors(error).map(Err),
    }
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
    let organisation = form.organisation_id.map(|id| id.0);
    let choice = match chosen(fields.connection_id.as_deref()) {
        Chosen::Existing(id) => Some(id),
        _ => None,
    };
    // A choice that is not the user's shows no models (its error says why).
    let picker = state
        .db
        .run(move |conn| match picker(conn, owner, organisation, choice) {
            Err(ConnectionError::NotFound) => picker(conn, owner, organisation, None),
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
    let (keyring, owner, cap) = (state.keyring.clone(), user.user_id, state.settings.caps.configurations);
    // On a picked connection, or (a new connection, or no picker) with one of its own.
    let parsed = match chosen(fields.connection_id.as_deref()) {
        Chosen::Invalid => Err(choose_from_the_list()),
        Chosen::Existing(id) => fields.input_on(id).into_create(&state.settings.egress),
        Chosen::New | Chosen::Unspecified => fields.input().into_create(&state.settings.egress),
    };
    let saved = save(&state, owner, parsed, move |conn, new| match new {
        NewConfigurationInput::OnConnection(new) => configurations::create_on_connection(conn, owner, new, cap),
        NewConfigurationInput::WithOwnConnection(new) => {
            configurations::create(conn, &keyring, owner, new, cap, KeyRule::Required)
        }
    })
    .await?;
    match saved {
        Ok(rows) => Ok(after_save(htmx, rows, &user)?),
        Err(errors) => rerender(&state, &user, FormView::new_configuration(htmx), &fields, errors).await,
    }
}

/// What an edit does: the old fields on the connection it uses, a move to another connection,
/// or a move onto a new one made from the form's provider, key and base URL.
enum Edit {
    Update(ConfigurationUpdate),
    OntoNewConnection(ConfigurationUpdate),
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
    let fields = form.fields;
    let (keyring, owner) = (state.keyring.clone(), user.user_id);
    // Someone else's configuration is a 404 before anything is read from the form.
    let row = state.db.run(move |conn| configurations::find(conn, owner, id)).await?;
    let policy = &state.settings.egress;
    let parsed = match chosen(fields.connection_id.as_deref()) {
        Chosen::Invalid => Err(choose_from_the_list()),
        Chosen::Existing(target) if target != row.connection_id => {
            fields.input_on(target).into_update(policy).map(Edit::Update)
        }
        Chosen::New => fields.input().into_update(policy).map(Edit::OntoNewConnection),
        Chosen::Existing(_) | Chosen::Unspecified => fields.input().into_update(policy).map(Edit::Update),
    };
    let saved = save(&state, owner, parsed, move |conn, edit| match edit {
        Edit::Update(update) => configurations::update(conn, &keyring, owner, id, update),
        Edit::OntoNewConnection(update) => {
            let Some(provider) = update.provider else {
                return Err(ConfigurationError::Invalid(FieldErrors::single(
                    "provider",
                    "choose the new connection's provider",
                )));
            };
            let api_key = match &update.api_key {
                KeyChange::Replace(key) => Some(key.clone()),
                KeyChange::Keep | KeyChange::Remove => None,
            };
            let base_url = update.base_url.clone().flatten();
            let rest = ConfigurationUpdate {
                provider: None,
                api_key: KeyChange::Keep,
                base_url: None,
                ..update
            };
            configurations::update_onto_new_connection(conn, &keyring, owner, id, (provider, api_key, base_url), rest)
        }
    })
    .await?;
    match saved {
        Ok(rows) => Ok(after_save(htmx, rows, &user)?),
        Err(errors) => rerender(&state, &user, FormView::edit(&row, htmx), &fields, errors).await,
    }
}

/// A row action's `back`: `organisation` (sent by the forms of an organisation's page) leads
/// the browser back to the page of the organisation the configuration belongs to, instead of
/// the management page. Only ever that page, never a URL from the form.
#[derive(Debug, Default, Deserialize)]
pub struct BackField {
    #[serde(default)]
    back: String,
}

impl BackField {
    fn to_organisation(&self) -> bool {
        self.back == "organisation"
    }
}

/// Where a row action without htmx leads: the page of the organisation `organisation` (when the
/// form asked for it and the configuration is one), else the management page.
fn back_to(organisation: Option<Uuid>) -> String {
    organisation.map_or_else(|| PAGE.to_owned(), |id| format!("/organisations/{id}"))
}

/// The organisation of the configuration `id`, read when the form asked to go back to it.
fn organisation_of(conn: &mut Work, owner: Uuid, id: Uuid, wanted: bool) -> Option<Uuid> {
    if !wanted {
        return None;
    }
    configurations::find(conn, owner, id)
        .ok()
        .and_then(|row| row.ownership.organisation_id())
}

/// Runs a row action for the signed-in user, then answers with the table (htmx) or sends the
/// browser back to the page (or, with `back`, to the configuration's organisation's page).
async fn row_action(
    state: web::Data<AppState>,
    req: &HttpRequest,
    user: &SignedIn,
    path: &str,
    back: &BackField,
    action: impl FnOnce(&mut Work, Uuid, Uuid) -> Result<(), ConfigurationError> + Send + 'static,
) -> PageResult {
    let id = page_id(path)?;
    let owner = user.user_id;
    let htmx = is_htmx(req);
    let wanted = !htmx && back.to_organisation();
    let (rows, organisation) = state
        .db
        .run(move |conn| {
            let organisation = organisation_of(conn, owner, id, wanted);
            action(conn, owner, id)?;
            let rows = if htmx { table_rows(conn, owner)? } else { Vec::new() };
            Ok::<_, ConfigurationError>((rows, organisation))
        })
        .await?;
    if htmx {
        Ok(table_fragment(rows, user)?)
    } else {
        Ok(see_other(&back_to(organisation)))
    }
}

pub async fn set_default(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<BackField>,
) -> PageResult {
    row_action(state, &req, &user, &path, &form.fields, |conn, owner, id| {
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
    row_action(
        state,
        &req,
        &user,
        &path,
        &BackField::default(),
        move |conn, owner, id| {
            let update = ConfigurationUpdate {
                is_active: Some(is_active),
                ..ConfigurationUpdate::default()
            };
            configurations::update(conn, &keyring, owner, id, update).map(|_| ())
        },
    )
    .await
}

#[derive(Template)]
#[template(path = "llm_configurations/delete_confirm.html")]
struct DeleteConfirmPage {
    layout: Layout,
    id: String,
    name: String,
    /// Confirmed from an organisation's page: back there afterwards (and on Cancel).
    back_to_organisation: Option<HtmlId>,
}

/// Without JavaScript, Delete leads here to confirm (`?back=organisation` from an
/// organisation's page).
pub async fn delete_confirm(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<BackField>,
) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    let row = state.db.run(move |conn| configurations::find(conn, owner, id)).await?;
    let page = DeleteConfirmPage {
        layout: Layout::signed_in("Delete configuration", "configurations", &user),
        id: row.id.to_string(),
        back_to_organisation: row
            .ownership
            .organisation_id()
            .filter(|_| query.to_organisation())
            .map(HtmlId),
        name: row.name,
    };
    Ok(private_html(StatusCode::OK, page.render().map_err(AppError::from)?))
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<BackField>,
) -> PageResult {
    row_action(state, &req, &user, &path, &form.fields, configurations::delete).await
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
    form: ProtectedForm<BackField>,
) -> PageResult {
    let id = page_id(&path)?;
    let owner = user.user_id;
    state
        .tester()
        .test(owner, TestSubject::Saved { id, model: None })
        .await?;
    if !is_htmx(&req) {
        let wanted = form.fields.to_organisation();
        let organisation = state
            .db
            .run(move |conn| Ok::<_, AppError>(organisation_of(conn, owner, id, wanted)))
            .await?;
        return Ok(see_other(&back_to(organisation)));
    }
    let row = state
        .db
        .run(move |conn| {
            let row = configurations::find(conn, owner, id)?;
            Ok::<_, AppError>(configuration_views_with_connections(vec![row]))
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
/// stored key, but only while provider and base URL are unchanged (else it asks for the key). A
/// test needs neither a name nor a model (without one it shows what the provider offers).
pub async fn test_unsaved(
    state: web::Data<AppState>,
    user: SignedIn,
    form: ProtectedForm<UnsavedTestFields>,
) -> PageResult {
    let UnsavedTestFields {
        fields,
        configuration_id,
    } = form.fields;
    // A connection picked in the form (other than the one the edited configuration uses, whose
    // fields stay editable) is tested as it is stored, for the form's model.
    let picked = match chosen(fields.connection_id.as_deref()) {
        Chosen::Existing(connection_id) => match Uuid::parse_str(configuration_id.trim()) {
            Ok(id) => {
                let owner = user.user_id;
                let current = state
                    .db
                    .run(move |conn| configurations::find(conn, owner, id))
                    .await?
                    .connection_id;
                (current != connection_id).then_some(connection_id)
            }
            Err(_) => Some(connection_id),
        },
        _ => None,
    };
    let input = match picked {
        Some(connection_id) => TestInput {
            connection_id: Sent::Value(connection_id.to_string()),
            id: Sent::Absent,
            provider: Sent::Absent,
            model: filled(&fields.model),
            api_key: Sent::Absent,
            base_url: Sent::Absent,
            refused: FieldErrors::new(),
        },
        None => {
            let ConfigurationInput {
                provider,
                api_key,
                base_url,
                ..
            } = fields.input();
            TestInput {
                connection_id: Sent::Absent,
                id: filled(&configuration_id),
                provider,
                model: filled(&fields.model),
                api_key,
                base_url,
                refused: FieldErrors::new(),
            }
        }
    };
    let subject = match input.parse(&state.settings.egress) {
        Ok(subject) => subject,
        Err(errors) => return Ok(test_form_errors(errors)?),
    };
    let outcome = match state.tester().test(user.user_id, subject).await {
        Ok(outcome) => outcome,
        Err(TestError::Invalid(errors)) => return Ok(test_form_errors(errors)?),
        Err(other) => return Err(AppError::from(other).into()),
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
