//! `/api/llm-configurations`: list, create, get, get default, update, delete, set default.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Field, FieldReader, parse_id};
use super::wire::{Rfc3339, json_array, json_ok};
use crate::domain::{ApiKey, BaseUrl, ConfigName, Configuration, ModelId, PlainHttpHosts, Provider, Scope};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::{Caller, JsonObject};
use crate::services::configurations::{
    self, ConfigurationUpdate, KeyChange, NewConfiguration, NewConfigurationOnConnection,
};

/// An LLM configuration as the API shows it: never the key, only its mask.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationResource {
    pub id: uuid::Uuid,
    /// The connection it uses: `provider`, `base_url`, the key and the test fields are the
    /// connection's.
    pub connection_id: uuid::Uuid,
    pub name: String,
    #[schema(value_type = String)]
    pub provider: &'static str,
    pub model: String,
    /// `null` means the provider's default.
    pub base_url: Option<String>,
    /// The key's known prefix and last four characters, e.g. `sk-…x7Qa`; `null` without a key.
    pub api_key_masked: Option<String>,
    pub has_api_key: bool,
    pub is_default: bool,
    pub is_active: bool,
    /// `untested`, `ok` or `failed`.
    #[schema(value_type = String)]
    pub test_status: &'static str,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub tested_at: Option<Rfc3339>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Rfc3339>,
    pub use_count: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Rfc3339,
}

impl From<Configuration> for ConfigurationResource {
    fn from(row: Configuration) -> Self {
        ConfigurationResource {
            id: row.id,
            connection_id: row.connection_id,
            name: row.name,
            provider: row.provider.id(),
            model: row.model,
            base_url: row.base_url,
            has_api_key: row.api_key_hint.is_some(),
            api_key_masked: row.api_key_hint,
            is_default: row.is_default,
            is_active: row.is_active,
            test_status: row.test_status.as_str(),
            test_message: row.test_message,
            test_latency_ms: row.test_latency_ms,
            tested_at: row.tested_at.map(Rfc3339),
            last_used_at: row.last_used_at.map(Rfc3339),
            use_count: row.use_count,
            created_at: Rfc3339(row.created_at),
            updated_at: Rfc3339(row.updated_at),
        }
    }
}

/// The body of `POST /api/llm-configurations`: either `connection_id` (one of the caller's
/// connections), or `provider`, `api_key` and `base_url`, which make a connection of its own
/// named after the configuration; both at once are refused. Unknown and read-only fields are
/// refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_new` reads it field by field
pub struct CreateConfigurationRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// One of the caller's connections, instead of `provider`, `api_key` and `base_url`.
    #[schema(format = Uuid)]
    connection_id: Option<String>,
    /// One of the ids of `GET /api/providers` (required without `connection_id`).
    provider: Option<Provider>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: String,
    /// Required unless the provider needs no key. A value that looks masked is refused.
    #[schema(min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Option<String>,
    /// An absolute https URL; `null` for the provider's default.
    #[schema(max_length = 2048, pattern = "^https://")]
    base_url: Option<String>,
    is_default: Option<bool>,
    is_active: Option<bool>,
}

/// The body of `PUT /api/llm-configurations/{id}`: any subset of the fields. A missing or null
/// `api_key` keeps the stored key; `""` removes it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_update` reads it field by field
pub struct UpdateConfigurationRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: Option<String>,
    /// Move to another of the caller's connections (not together with `provider`, `api_key` or
    /// `base_url`, which change the connection itself: refused with 409 `connection_shared`
    /// when other configurations use it).
    #[schema(format = Uuid)]
    connection_id: Option<String>,
    provider: Option<Provider>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Option<String>,
    /// A new key, `""` to remove it, or absent/`null` to keep the stored one.
    #[schema(max_length = 4096, pattern = r"^[^\s…•*]*$")]
    api_key: Option<String>,
    #[schema(max_length = 2048, pattern = "^https://")]
    base_url: Option<String>,
    is_active: Option<bool>,
}

/// Fields a client can see but never set.
const READ_ONLY: [&str; 12] = [
    "id",
    "api_key_masked",
    "has_api_key",
    "test_status",
    "test_message",
    "test_latency_ms",
    "tested_at",
    "last_used_at",
    "use_count",
    "created_at",
    "updated_at",
    "user_id",
];

fn parse_provider(raw: &str) -> Result<Provider, String> {
    Provider::parse(raw).ok_or_else(|| {
        format!(
            "unknown provider `{}`; see GET /api/providers",
            raw.chars().take(40).collect::<String>()
        )
    })
}

/// A create request, the new way or the old.
enum CreateRequest {
    OnConnection(NewConfigurationOnConnection),
    WithOwnConnection(NewConfiguration),
}

fn parse_connection_id(raw: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| "must be a connection id (a UUID)".to_owned())
}

/// `connection_id` picks the new way; any of the old connection fields beside it is refused,
/// each named.
fn parse_create(body: JsonObject, policy: &impl PlainHttpHosts) -> Result<CreateRequest, AppError> {
    if !body.0.contains_key("connection_id") {
        return parse_new(body, policy).map(CreateRequest::WithOwnConnection);
    }
    let mixed: Vec<&str> = ["provider", "api_key", "base_url"]
        .into_iter()
        .filter(|field| body.0.contains_key(*field))
        .collect();
    if !mixed.is_empty() {
        let mut errors = crate::error::FieldErrors::new();
        let message = "give either connection_id or provider, api_key and base_url (a connection of its own), not both";
        errors.add("connection_id", message);
        for field in mixed {
            errors.add(field, message);
        }
        return Err(AppError::Validation(errors));
    }
    let allowed = ["name", "connection_id", "model", "is_default", "is_active"];
    let mut reader = FieldReader::new(body.0, &allowed, &READ_ONLY);
    let name = reader.required_string("name");
    let name = reader.parsed("name", name, ConfigName::parse);
    let connection_id = reader.required_string("connection_id");
    let connection_id = reader.parsed("connection_id", connection_id, parse_connection_id);
    let model = reader.required_string("model");
    let model = reader.parsed("model", model, ModelId::parse);
    let is_default = matches!(reader.boolean("is_default"), Field::Value(true));
    let is_active = !matches!(reader.boolean("is_active"), Field::Value(false));
    let errors_before = reader.errors.clone();
    reader.finish()?;
    match (name, connection_id, model) {
        (Some(name), Some(connection_id), Some(model)) => {
            Ok(CreateRequest::OnConnection(NewConfigurationOnConnection {
                name,
                connection_id,
                model,
                is_default,
                is_active,
            }))
        }
        // Every missing piece recorded an error above.
        _ => Err(AppError::Validation(errors_before)),
    }
}

fn parse_new(body: JsonObject, policy: &impl PlainHttpHosts) -> Result<NewConfiguration, AppError> {
    let allowed = [
        "name",
        "provider",
        "model",
        "api_key",
        "base_url",
        "is_default",
        "is_active",
    ];
    let mut reader = FieldReader::new(body.0, &allowed, &READ_ONLY);
    let name = reader.required_string("name");
    let name = reader.parsed("name", name, ConfigName::parse);
    let provider = reader.required_string("provider");
    let provider = reader.parsed("provider", provider, parse_provider);
    let model = reader.required_string("model");
    let model = reader.parsed("model", model, ModelId::parse);
    let api_key = match reader.secret("api_key") {
        Field::Value(key) if !key.expose_secret().is_empty() => reader.parsed_secret("api_key", &key, ApiKey::parse),
        _ => None,
    };
    let base_url = match reader.string("base_url") {
        Field::Value(url) if !url.trim().is_empty() => {
            reader.parsed("base_url", Some(url), |raw| BaseUrl::parse(raw, policy))
        }
        _ => None,
    };
    let is_default = matches!(reader.boolean("is_default"), Field::Value(true));
    let is_active = !matches!(reader.boolean("is_active"), Field::Value(false));
    let errors_before = reader.errors.clone();
    reader.finish()?;
    match (name, provider, model) {
        (Some(name), Some(provider), Some(model)) => Ok(NewConfiguration {
            name,
            provider,
            model,
            api_key,
            base_url,
            is_default,
            is_active,
        }),
        // Every missing piece recorded an error above.
        _ => Err(AppError::Validation(errors_before)),
    }
}

fn parse_update(body: JsonObject, policy: &impl PlainHttpHosts) -> Result<ConfigurationUpdate, AppError> {
    let allowed = [
        "name",
        "connection_id",
        "provider",
        "model",
        "api_key",
        "base_url",
        "is_active",
    ];
    let mut read_only = READ_ONLY.to_vec();
    read_only.push("is_default");
    let mut reader = FieldReader::new(body.0, &allowed, &read_only);
    let mut update = ConfigurationUpdate::default();
    let not_null = |reader: &mut FieldReader, field: &str, value: Field<String>| match value {
        Field::Value(value) => Some(value),
        Field::Null => {
            reader.errors.add(field, "must not be null");
            None
        }
        Field::Absent => None,
    };
    let name = reader.string("name");
    let name = not_null(&mut reader, "name", name);
    update.name = reader.parsed("name", name, ConfigName::parse);
    let connection_id = reader.string("connection_id");
    let connection_id = not_null(&mut reader, "connection_id", connection_id);
    update.connection_id = reader.parsed("connection_id", connection_id, parse_connection_id);
    let provider = reader.string("provider");
    let provider = not_null(&mut reader, "provider", provider);
    update.provider = reader.parsed("provider", provider, parse_provider);
    let model = reader.string("model");
    let model = not_null(&mut reader, "model", model);
    update.model = reader.parsed("model", model, ModelId::parse);
    update.api_key = match reader.secret("api_key") {
        Field::Absent | Field::Null => KeyChange::Keep,
        Field::Value(key) if key.expose_secret().is_empty() => KeyChange::Remove,
        Field::Value(key) => reader
            .parsed_secret("api_key", &key, ApiKey::parse)
            .map_or(KeyChange::Keep, KeyChange::Replace),
    };
    update.base_url = match reader.string("base_url") {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Value(url) if url.trim().is_empty() => Some(None),
        Field::Value(url) => reader
            .parsed("base_url", Some(url), |raw| BaseUrl::parse(raw, policy))
            .map(Some),
    };
    update.is_active = match reader.boolean("is_active") {
        Field::Value(active) => Some(active),
        Field::Null => {
            reader.errors.add("is_active", "must be true or false");
            None
        }
        Field::Absent => None,
    };
    reader.finish()?;
    Ok(update)
}

#[utoipa::path(
    get, path = "/api/llm-configurations", tag = "configurations",
    description = "The caller's configurations, default first, then by name. Scope: `read`.",
    responses(
        (status = 200, body = [ConfigurationResource]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let body = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Read)?;
            let rows = configurations::list(conn, principal.user_id)?;
            let resources: Vec<_> = rows.into_iter().map(ConfigurationResource::from).collect();
            // About 400 bytes each with typical names and no test message.
            json_array(&resources, 512)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/llm-configurations", tag = "configurations",
    description = "Create a configuration on one of the caller's connections (`connection_id`), or with \
                   `provider`, `api_key` and `base_url`, which make a connection of its own named after it. \
                   The first active configuration becomes the default. Scope: `write`.",
    request_body = CreateConfigurationRequest,
    responses(
        (status = 201, body = ConfigurationResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonObject) -> ApiResult<HttpResponse> {
    let new = parse_create(body, &state.settings.egress)?;
    let keyring = state.keyring.clone();
    let cap = state.settings.caps.configurations;
    let row = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Write)?;
            match new {
                CreateRequest::WithOwnConnection(new) => {
                    configurations::create(conn, &keyring, principal.user_id, new, cap)
                }
                CreateRequest::OnConnection(new) => {
                    configurations::create_on_connection(conn, principal.user_id, new, cap)
                }
            }
        })
        .await?;
    let location = format!("/api/llm-configurations/{}", row.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(ConfigurationResource::from(row)))
}

#[utoipa::path(
    get, path = "/api/llm-configurations/default", tag = "configurations",
    description = "The caller's default configuration. Scope: `read`.",
    responses(
        (status = 200, body = ConfigurationResource),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_default(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let row = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Read)?;
            configurations::find_default(conn, principal.user_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConfigurationResource::from(row)))
}

#[utoipa::path(
    get, path = "/api/llm-configurations/{id}", tag = "configurations",
    description = "One of the caller's configurations. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The configuration's id")),
    responses(
        (status = 200, body = ConfigurationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let row = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Read)?;
            configurations::find(conn, principal.user_id, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConfigurationResource::from(row)))
}

#[utoipa::path(
    put, path = "/api/llm-configurations/{id}", tag = "configurations",
    description = "Update any subset of the fields. Changing `provider` or `base_url` of a configuration \
                   that has a key requires `api_key` in the same request. `provider`, `base_url` and `api_key` \
                   belong to the configuration's connection: while other configurations use it they are \
                   refused with 409 `connection_shared`. `connection_id` moves it to another connection. \
                   Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The configuration's id")),
    request_body = UpdateConfigurationRequest,
    responses(
        (status = 200, body = ConfigurationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let update = parse_update(body, &state.settings.egress)?;
    let keyring = state.keyring.clone();
    let row = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Write)?;
            configurations::update(conn, &keyring, principal.user_id, id, update)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConfigurationResource::from(row)))
}

#[utoipa::path(
    delete, path = "/api/llm-configurations/{id}", tag = "configurations",
    description = "Delete a configuration; if it was the default, the most recently used active one \
                   becomes the default. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The configuration's id")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Write)?;
            configurations::delete(conn, principal.user_id, id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put, path = "/api/llm-configurations/{id}/set-default", tag = "configurations",
    description = "Make this configuration the default, atomically. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The configuration's id")),
    responses(
        (status = 200, body = ConfigurationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_default(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let row = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Write)?;
            configurations::set_default(conn, principal.user_id, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConfigurationResource::from(row)))
}
