//! `/api/llm-configurations`: list, create, get, get default, update, delete, set default.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Wire, parse_id, read_request};
use super::wire::{OwnerResource, Rfc3339, json_array, json_ok};
use crate::domain::{Configuration, FieldErrors, Ownership, Parameters, Provider, Scope};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::listing_cache::View;
use crate::http::{Caller, JsonObject};
use crate::services::Authenticated;
use crate::services::configuration_input::{ConfigurationInput, NewConfigurationInput, Sent};
use crate::services::configurations::{self, KeyRule};

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
    /// Passed to the runtime with the configuration; `{}` when none is set.
    pub parameters: Parameters,
    /// `ok`, `failing` or `unchecked` (its connection's last check), or `model_missing` (the
    /// model is not in the connection's latest catalogue).
    #[schema(value_type = String)]
    pub health: &'static str,
    /// Whose it is: the caller's own, or an organisation's they belong to.
    pub owner: OwnerResource,
    /// Whether the caller may change it (their own, or as the organisation's admin or owner).
    pub can_edit: bool,
    /// Only on an organisation's configuration: `use` (members choose it, never read its key) or
    /// `reveal` (members' own resolve tokens receive the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub member_access: Option<&'static str>,
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
            parameters: row.parameters,
            health: row.health.as_str(),
            owner: OwnerResource::from(&row.ownership),
            can_edit: row.ownership.can_edit(),
            member_access: match row.ownership {
                Ownership::Own => None,
                Ownership::Organisation { .. } => Some(row.member_access.as_str()),
            },
        }
    }
}

/// The body of `POST /api/llm-configurations`: either `connection_id` (one of the caller's
/// connections), or `provider`, `api_key` and `base_url`, which make a connection of its own
/// named after the configuration; both at once are refused. Unknown and read-only fields are
/// refused.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateConfigurationRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    name: Wire<String>,
    /// One of the caller's connections, instead of `provider`, `api_key` and `base_url`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    connection_id: Wire<String>,
    /// One of the ids of `GET /api/providers` (required without `connection_id`).
    #[serde(default)]
    #[schema(value_type = Option<Provider>)]
    provider: Wire<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Wire<String>,
    /// Required unless the provider needs no key. A value that looks masked is refused.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Wire<SecretString>,
    /// An absolute https URL; `null` for the provider's default.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = "^https://")]
    base_url: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    is_default: Wire<bool>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    is_active: Wire<bool>,
    /// Every member optional; unknown members are refused.
    #[serde(default)]
    #[schema(value_type = Option<Parameters>)]
    parameters: Wire<serde_json::Value>,
}

/// The body of `PUT /api/llm-configurations/{id}`: any subset of the fields. A missing or null
/// `api_key` keeps the stored key; `""` removes it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateConfigurationRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    name: Wire<String>,
    /// Move to another of the caller's connections (not together with `provider`, `api_key` or
    /// `base_url`, which change the connection itself: refused with 409 `connection_shared`
    /// while other configurations use it).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    connection_id: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<Provider>)]
    provider: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Wire<String>,
    /// A new key, `""` to remove it, or absent/`null` to keep the stored one.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 4096, pattern = r"^[^\s…•*]*$")]
    api_key: Wire<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = "^https://")]
    base_url: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    is_active: Wire<bool>,
    /// Replaces the stored parameters as a whole; `null` removes them all.
    #[serde(default)]
    #[schema(value_type = Option<Parameters>)]
    parameters: Wire<serde_json::Value>,
    /// Only on an organisation's configuration (its admins): `use` or `reveal`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(use|reveal)$")]
    member_access: Wire<String>,
}

/// The body of `POST /api/organisations/{id}/llm-configurations`: a configuration's fields
/// (`connection_id` names one of the organisation's connections) without `is_default`, which is
/// each member's own choice, plus `member_access`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrganisationConfigurationRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    name: Wire<String>,
    /// One of the organisation's connections, instead of `provider`, `api_key` and `base_url`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    connection_id: Wire<String>,
    /// One of the ids of `GET /api/providers` (required without `connection_id`).
    #[serde(default)]
    #[schema(value_type = Option<Provider>)]
    provider: Wire<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Wire<String>,
    /// Required unless the provider needs no key. A value that looks masked is refused.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Wire<SecretString>,
    /// An absolute https URL; `null` for the provider's default.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = "^https://")]
    base_url: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    is_active: Wire<bool>,
    /// Every member optional; unknown members are refused.
    #[serde(default)]
    #[schema(value_type = Option<Parameters>)]
    parameters: Wire<serde_json::Value>,
    /// `use` (the default: members choose it, never read its key) or `reveal`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(use|reveal)$")]
    member_access: Wire<String>,
}

impl CreateOrganisationConfigurationRequest {
    fn read(body: JsonObject) -> Result<ConfigurationInput, AppError> {
        let mut read_only = READ_ONLY.to_vec();
        // A member's own choice: never set for everyone at creation.
        read_only.push("is_default");
        let (request, mut refused): (Self, _) = read_request(body, &read_only)?;
        let member_access = request.member_access.sent("member_access", &mut refused);
        let fields = CreateConfigurationRequest {
            name: request.name,
            connection_id: request.connection_id,
            provider: request.provider,
            model: request.model,
            api_key: request.api_key,
            base_url: request.base_url,
            is_default: Wire::Absent,
            is_active: request.is_active,
            parameters: request.parameters,
        };
        Ok(ConfigurationInput {
            member_access,
            ..fields.into_input(refused)
        })
    }
}

/// Fields a client can see but never set.
const READ_ONLY: [&str; 15] = [
    "id",
    "owner",
    "can_edit",
    "health",
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

impl CreateConfigurationRequest {
    fn read(body: JsonObject) -> Result<ConfigurationInput, AppError> {
        let (request, refused): (Self, _) = read_request(body, &READ_ONLY)?;
        Ok(request.into_input(refused))
    }

    /// The fields as sent; a value of the wrong type joins what reading already `refused`.
    fn into_input(self, mut refused: FieldErrors) -> ConfigurationInput {
        ConfigurationInput {
            name: self.name.sent("name", &mut refused),
            connection_id: self.connection_id.sent("connection_id", &mut refused),
            provider: self.provider.sent("provider", &mut refused),
            model: self.model.sent("model", &mut refused),
            api_key: self.api_key.sent("api_key", &mut refused),
            base_url: self.base_url.sent("base_url", &mut refused),
            is_default: self.is_default.sent("is_default", &mut refused),
            is_active: self.is_active.sent("is_active", &mut refused),
            parameters: self.parameters.sent("parameters", &mut refused),
            member_access: Sent::Absent,
            refused,
        }
    }
}

impl UpdateConfigurationRequest {
    fn read(body: JsonObject) -> Result<ConfigurationInput, AppError> {
        let mut read_only = READ_ONLY.to_vec();
        read_only.push("is_default");
        let (request, mut refused): (Self, _) = read_request(body, &read_only)?;
        let member_access = request.member_access.sent("member_access", &mut refused);
        // A creation's fields but `is_default`, which only `set-default` changes.
        let fields = CreateConfigurationRequest {
            name: request.name,
            connection_id: request.connection_id,
            provider: request.provider,
            model: request.model,
            api_key: request.api_key,
            base_url: request.base_url,
            is_default: Wire::Absent,
            is_active: request.is_active,
            parameters: request.parameters,
        };
        Ok(ConfigurationInput {
            member_access,
            ..fields.into_input(refused)
        })
    }
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
    let listings = state.listings.clone();
    let body = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Read)?;
            let owner = principal.user_id;
            let version = match principal.listing_version {
                Some(version) => version,
                None => configurations::listing_version(conn, owner)?,
            };
            if let Some(body) = listings.get(owner, &View::Json, version) {
                return Ok(body);
            }
            let rows = configurations::list(conn, owner)?;
            let resources: Vec<_> = rows.into_iter().map(ConfigurationResource::from).collect();
            // About 500 bytes each with typical names and no test message.
            let body = web::Bytes::from(json_array(&resources, 512)?);
            listings.put(owner, View::Json, version, body.clone());
            Ok::<_, AppError>(body)
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
    let new = CreateConfigurationRequest::read(body)?
        .into_create(&state.settings.egress)
        .map_err(AppError::Validation)?;
    let keyring = state.keyring.clone();
    let cap = state.settings.caps.configurations;
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| match new {
            NewConfigurationInput::WithOwnConnection(new) => {
                configurations::create(conn, &keyring, owner, new, cap, KeyRule::Required)
            }
            NewConfigurationInput::OnConnection(new) => configurations::create_on_connection(conn, owner, new, cap),
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
    let row = caller
        .run_for_user(&state.db, Scope::Read, configurations::find_default)
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
    let row = caller
        .run_for_user(&state.db, Scope::Read, move |conn, owner| {
            configurations::find(conn, owner, id)
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
    let update = UpdateConfigurationRequest::read(body)?
        .into_update(&state.settings.egress)
        .map_err(AppError::Validation)?;
    let keyring = state.keyring.clone();
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            configurations::update(conn, &keyring, owner, id, update)
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
    caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            configurations::delete(conn, owner, id)
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
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            configurations::set_default(conn, owner, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConfigurationResource::from(row)))
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/llm-configurations", tag = "organisations",
    description = "The organisation's configurations, by name, for its members (masked keys only; \
                   `is_default` is the caller's own choice), and for the organisation's own service token \
                   with `read`. Anyone else: 404. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [ConfigurationResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_for_organisation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let organisation = parse_id(&path)?;
    let body = state
        .db
        .run(move |conn| {
            let rows = match caller.authorize_any(conn, Scope::Read)? {
                Authenticated::User(principal) => {
                    configurations::list_for_organisation(conn, principal.user_id, organisation)?
                }
                // A service token reads its own organisation's; any other id is a missing one.
                Authenticated::Service(service) if service.organisation_id == organisation => {
                    configurations::list_for_service_token(conn, organisation)?
                }
                Authenticated::Service(_) => return Err(AppError::NotFound),
            };
            let resources: Vec<_> = rows.into_iter().map(ConfigurationResource::from).collect();
            json_array(&resources, 640)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/llm-configurations", tag = "organisations",
    description = "Create one of the organisation's configurations (its admins and owners; a member: 403 \
                   `forbidden`; anyone else: 404): on one of its connections (`connection_id`), or with \
                   `provider`, `api_key` and `base_url`, which make a connection of its own. `is_default` is \
                   refused (each member chooses their own default); `member_access` says whether members' own \
                   resolve tokens may read its key. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = CreateOrganisationConfigurationRequest,
    responses(
        (status = 201, body = ConfigurationResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_for_organisation(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let organisation = parse_id(&path)?;
    let new = CreateOrganisationConfigurationRequest::read(body)?
        .into_create(&state.settings.egress)
        .map_err(AppError::Validation)?;
    let keyring = state.keyring.clone();
    let cap = state.settings.caps.configurations;
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| match new {
            NewConfigurationInput::WithOwnConnection(new) => {
                configurations::create_for_organisation(conn, &keyring, user, organisation, new, cap)
            }
            NewConfigurationInput::OnConnection(new) => {
                configurations::create_on_organisation_connection(conn, user, organisation, new, cap)
            }
        })
        .await?;
    let location = format!("/api/llm-configurations/{}", row.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(ConfigurationResource::from(row)))
}
