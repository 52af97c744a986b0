//! `/api/connections`: list, create, get, update, delete; test; the model catalogue and its
//! refresh.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::connection_tests::TestResultResource;
use super::extract::{Field, FieldReader, parse_id};
use super::wire::{OwnerResource, Rfc3339, json_array, json_ok};
use crate::domain::{
    ApiKey, BaseUrl, ConfigName, Connection, ModelCatalogue, PlainHttpHosts, Provider, Scope, parse_expiry,
};
use crate::error::AppError;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::{AppState, Caller, JsonObject};
use crate::services::Authenticated;
use crate::services::configuration_input::parse_provider;
use crate::services::configurations::KeyChange;
use crate::services::connection_tests::TestSubject;
use crate::services::connections::{self, ConnectionUpdate, NewConnection};

/// A connection as the API shows it: never the key, only its mask.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResource {
    pub id: uuid::Uuid,
    pub name: String,
    #[schema(value_type = String)]
    pub provider: &'static str,
    /// `null` means the provider's default.
    pub base_url: Option<String>,
    /// The key's known prefix and last four characters, e.g. `sk-…x7Qa`; `null` without a key.
    pub api_key_masked: Option<String>,
    pub has_api_key: bool,
    /// `untested`, `ok` or `failed`.
    #[schema(value_type = String)]
    pub test_status: &'static str,
    /// The last test's code (`ok`, `invalid_key`, …); `null` before the first test.
    pub test_code: Option<String>,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub tested_at: Option<Rfc3339>,
    /// When the model catalogue was last fetched; `null` before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub models_fetched_at: Option<Rfc3339>,
    pub model_count: i64,
    /// How many of the owner's configurations use it.
    pub configuration_count: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Rfc3339,
    /// Whose it is: the caller's own, or an organisation's they belong to.
    pub owner: OwnerResource,
    /// Whether the caller may change it (their own, or as the organisation's admin or owner).
    pub can_edit: bool,
    /// When the key stops working, as its owner said; `null` when not set. `connection.expiring`
    /// fires 7 days and 1 day before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Rfc3339>,
}

impl From<Connection> for ConnectionResource {
    fn from(row: Connection) -> Self {
        ConnectionResource {
            id: row.id,
            name: row.name,
            provider: row.provider.id(),
            base_url: row.base_url,
            has_api_key: row.api_key_hint.is_some(),
            api_key_masked: row.api_key_hint,
            test_status: row.test_status.as_str(),
            test_code: row.test_code,
            test_message: row.test_message,
            test_latency_ms: row.test_latency_ms,
            tested_at: row.tested_at.map(Rfc3339),
            models_fetched_at: row.models_fetched_at.map(Rfc3339),
            model_count: row.model_count,
            configuration_count: row.configuration_count,
            created_at: Rfc3339(row.created_at),
            updated_at: Rfc3339(row.updated_at),
            can_edit: row.ownership.can_edit(),
            owner: OwnerResource::from(&row.ownership),
            expires_at: row.expires_at.map(Rfc3339),
        }
    }
}

/// The body of `POST /api/connections`. Unknown and read-only fields are refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_new` reads it field by field
pub struct CreateConnectionRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// One of the ids of `GET /api/providers`.
    provider: Provider,
    /// Required unless the provider needs no key. A value that looks masked is refused.
    #[schema(min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Option<String>,
    /// An absolute https URL; `null` for the provider's default.
    #[schema(max_length = 2048, pattern = "^https://")]
    base_url: Option<String>,
    /// When the key stops working (RFC 3339); `null` or absent when unknown.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// The body of `PUT /api/connections/{id}`: any subset of the fields. A missing or null
/// `api_key` keeps the stored key; `""` removes it. Changing `provider` or `base_url` of a
/// connection with a key needs `api_key` in the same request.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_update` reads it field by field
pub struct UpdateConnectionRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: Option<String>,
    provider: Option<Provider>,
    /// A new key, `""` to remove it, or absent/`null` to keep the stored one.
    #[schema(max_length = 4096, pattern = r"^[^\s…•*]*$")]
    api_key: Option<String>,
    #[schema(max_length = 2048, pattern = "^https://")]
    base_url: Option<String>,
    /// When the key stops working (RFC 3339); `null` clears it, absent keeps it.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
}

/// One model id of a catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelResource {
    pub id: String,
}

/// Why a refresh stored nothing new (the catalogue shown is the one kept from before).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshFailure {
    /// A test code: `invalid_key`, `not_found`, `timeout`, …
    pub code: String,
    pub message: String,
}

/// A connection's model catalogue: the ids its provider listed, sorted (at most 2,000).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCatalogueResource {
    /// When the list was fetched; `null` before the first test or refresh that listed models.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub fetched_at: Option<Rfc3339>,
    pub models: Vec<ModelResource>,
    /// Only on a refresh that could not fetch the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RefreshFailure>,
}

impl From<ModelCatalogue> for ModelCatalogueResource {
    fn from(catalogue: ModelCatalogue) -> Self {
        ModelCatalogueResource {
            fetched_at: catalogue.fetched_at.map(Rfc3339),
            models: catalogue.models.into_iter().map(|id| ModelResource { id }).collect(),
            failure: None,
        }
    }
}

/// Fields a client can see but never set.
const READ_ONLY: [&str; 16] = [
    "id",
    "owner",
    "can_edit",
    "api_key_masked",
    "has_api_key",
    "test_status",
    "test_code",
    "test_message",
    "test_latency_ms",
    "tested_at",
    "models_fetched_at",
    "model_count",
    "configuration_count",
    "created_at",
    "updated_at",
    "user_id",
];

fn parse_new(body: JsonObject, policy: &impl PlainHttpHosts) -> Result<NewConnection, AppError> {
    let mut reader = FieldReader::new(
        body.0,
        &["name", "provider", "api_key", "base_url", "expires_at"],
        &READ_ONLY,
    );
    let name = reader.required_string("name");
    let name = reader.parsed("name", name, ConfigName::parse);
    let provider = reader.required_string("provider");
    let provider = reader.parsed("provider", provider, parse_provider);
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
    let expires_at = match reader.string("expires_at") {
        Field::Value(raw) => reader.parsed("expires_at", Some(raw), parse_expiry),
        Field::Null | Field::Absent => None,
    };
    let errors = reader.errors.clone();
    reader.finish()?;
    match (name, provider) {
        (Some(name), Some(provider)) => Ok(NewConnection {
            name,
            provider,
            api_key,
            base_url,
            expires_at,
        }),
        // Every missing piece recorded an error above.
        _ => Err(AppError::Validation(errors)),
    }
}

fn parse_update(body: JsonObject, policy: &impl PlainHttpHosts) -> Result<ConnectionUpdate, AppError> {
    let mut reader = FieldReader::new(
        body.0,
        &["name", "provider", "api_key", "base_url", "expires_at"],
        &READ_ONLY,
    );
    let mut update = ConnectionUpdate::default();
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
    let provider = reader.string("provider");
    let provider = not_null(&mut reader, "provider", provider);
    update.provider = reader.parsed("provider", provider, parse_provider);
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
    update.expires_at = match reader.string("expires_at") {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Value(raw) => reader.parsed("expires_at", Some(raw), parse_expiry).map(Some),
    };
    reader.finish()?;
    Ok(update)
}

#[utoipa::path(
    get, path = "/api/connections", tag = "connections",
    description = "The caller's connections, by name. Scope: `read`.",
    responses(
        (status = 200, body = [ConnectionResource]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let rows = caller.run_for_user(&state.db, Scope::Read, connections::list).await?;
    let resources: Vec<_> = rows.into_iter().map(ConnectionResource::from).collect();
    Ok(json_ok(json_array(&resources, 512)?))
}

#[utoipa::path(
    post, path = "/api/connections", tag = "connections",
    description = "Create a connection: `name`, `provider`, `api_key` (unless the provider needs none), \
                   `base_url`, `expires_at` (optional). Scope: `write`.",
    request_body = CreateConnectionRequest,
    responses(
        (status = 201, body = ConnectionResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonObject) -> ApiResult<HttpResponse> {
    let new = parse_new(body, &state.settings.egress)?;
    let keyring = state.keyring.clone();
    let cap = state.settings.caps.connections;
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            connections::create(conn, &keyring, owner, new, cap)
        })
        .await?;
    let location = format!("/api/connections/{}", row.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(ConnectionResource::from(row)))
}

#[utoipa::path(
    get, path = "/api/connections/{id}", tag = "connections",
    description = "One of the caller's connections. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, body = ConnectionResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let row = caller
        .run_for_user(&state.db, Scope::Read, move |conn, owner| {
            connections::find(conn, owner, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionResource::from(row)))
}

#[utoipa::path(
    put, path = "/api/connections/{id}", tag = "connections",
    description = "Update any subset of `name`, `provider`, `api_key`, `base_url`, `expires_at`. Changing `provider` or \
                   `base_url` of a connection with a key requires `api_key` in the same request. A new key \
                   is what every configuration of the connection resolves to from the next request on. \
                   Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    request_body = UpdateConnectionRequest,
    responses(
        (status = 200, body = ConnectionResource),
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
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            connections::update(conn, &keyring, owner, id, update)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionResource::from(row)))
}

#[utoipa::path(
    delete, path = "/api/connections/{id}", tag = "connections",
    description = "Delete a connection; 409 `in_use` (naming the configurations) while a configuration \
                   uses it. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    caller
        .run_for_user(&state.db, Scope::Write, move |conn, owner| {
            connections::delete(conn, owner, id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/connections/{id}/test", tag = "connections",
    description = "Test the connection against its provider (one free, read-only request), record the \
                   result, and refresh the model catalogue when the provider listed models. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, body = TestResultResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let principal = caller.authorize_async(&state.db, Scope::Write).await?;
    let id = parse_id(&path)?;
    let outcome = state
        .tester()
        .test(principal.user_id, TestSubject::Connection { id, model: None })
        .await?;
    Ok(HttpResponse::Ok().json(TestResultResource::from(outcome)))
}

#[utoipa::path(
    get, path = "/api/connections/{id}/models", tag = "connections",
    description = "The connection's model catalogue as last fetched (sorted, at most 2,000 ids). Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, body = ModelCatalogueResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn models(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let catalogue = caller
        .run_for_user(&state.db, Scope::Read, move |conn, owner| {
            connections::catalogue(conn, owner, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ModelCatalogueResource::from(catalogue)))
}

#[utoipa::path(
    post, path = "/api/connections/{id}/models/refresh", tag = "connections",
    description = "Fetch the model list from the provider now and store it (counts against the test budget). \
                   When the provider lists nothing readable, the catalogue kept from before is answered with \
                   `failure`. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, body = ModelCatalogueResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn refresh_models(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let principal = caller.authorize_async(&state.db, Scope::Write).await?;
    let id = parse_id(&path)?;
    let owner = principal.user_id;
    let refreshed = state.tester().refresh_models(owner, id).await?;
    let resource = match refreshed {
        Ok(catalogue) => ModelCatalogueResource::from(catalogue),
        Err(outcome) => {
            let kept = state
                .db
                .run(move |conn| connections::catalogue(conn, owner, id).map_err(AppError::from))
                .await?;
            ModelCatalogueResource {
                failure: Some(RefreshFailure {
                    code: outcome.code.to_owned(),
                    message: outcome.message,
                }),
                ..ModelCatalogueResource::from(kept)
            }
        }
    };
    Ok(HttpResponse::Ok().json(resource))
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/connections", tag = "organisations",
    description = "The organisation's connections, by name, for its members (masked keys only), and for the \
                   organisation's own service token with `read`. Anyone else: 404. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [ConnectionResource]),
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
    let rows = state
        .db
        .run(move |conn| match caller.authorize_any(conn, Scope::Read)? {
            Authenticated::User(principal) => Ok(connections::list_for_organisation(
                conn,
                principal.user_id,
                organisation,
            )?),
            // A service token reads its own organisation's; any other id is a missing one.
            Authenticated::Service(service) if service.organisation_id == organisation => {
                Ok(connections::list_for_service_token(conn, organisation)?)
            }
            Authenticated::Service(_) => Err(AppError::NotFound),
        })
        .await?;
    let resources: Vec<_> = rows.into_iter().map(ConnectionResource::from).collect();
    Ok(json_ok(json_array(&resources, 640)?))
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/connections", tag = "organisations",
    description = "Create one of the organisation's connections (its admins and owners; a member: 403 \
                   `forbidden`; anyone else: 404): `name`, `provider`, `api_key` (unless the provider needs \
                   none), `base_url`. Its key is sealed with the organisation as owner. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = CreateConnectionRequest,
    responses(
        (status = 201, body = ConnectionResource, headers(("Location" = String))),
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
    let new = parse_new(body, &state.settings.egress)?;
    let keyring = state.keyring.clone();
    let cap = state.settings.caps.connections;
    let row = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            connections::create_for_organisation(conn, &keyring, user, organisation, new, cap)
        })
        .await?;
    let location = format!("/api/connections/{}", row.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(ConnectionResource::from(row)))
}
