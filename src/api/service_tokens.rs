//! `/api/organisations/{id}/tokens` (an organisation's service tokens, managed by its admins
//! from a browser session) and `/api/organisations/{id}/audit` (its reveals).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::parse_id;
use super::tokens::{CreatedTokenResource, NewTokenRequest, TokenResource, read_new_token, resource, session_only};
use super::wire::{Rfc3339, json_array, json_ok};
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::client_address;
use crate::http::{Caller, JsonObject};
use crate::services::accounts::Reauthentication;
use crate::services::service_tokens;
use crate::services::tokens::TokenSummary;

/// The body of `POST /api/organisations/{id}/tokens`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `create` reads it field by field
pub struct CreateServiceTokenRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// `read` and/or `resolve` (anything else is 422).
    scopes: Vec<String>,
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
    /// The signed-in admin's current password: required when `scopes` contains `resolve`; 403
    /// `reauthentication_required` when missing or wrong, and a wrong one counts against the
    /// login limits.
    #[schema(format = Password)]
    current_password: Option<String>,
}

/// The token that revealed a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditToken {
    pub id: uuid::Uuid,
    /// Its name when it revealed the key.
    pub name: String,
}

/// The member a key was revealed for.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditMember {
    pub id: uuid::Uuid,
    pub email: String,
}

/// The configuration revealed; `id` is null for the instance fallback.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditConfiguration {
    pub id: Option<uuid::Uuid>,
    pub name: String,
}

/// One reveal in an organisation's audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryResource {
    #[schema(value_type = String, format = DateTime)]
    pub at: Rfc3339,
    pub token: AuditToken,
    /// `null` once the member's account is deleted.
    pub member: Option<AuditMember>,
    pub configuration: AuditConfiguration,
}

impl From<service_tokens::AuditEntry> for AuditEntryResource {
    fn from(entry: service_tokens::AuditEntry) -> Self {
        AuditEntryResource {
            at: Rfc3339(entry.at),
            token: AuditToken {
                id: entry.token_id,
                name: entry.token_name,
            },
            member: entry.member.map(|(id, email)| AuditMember { id, email }),
            configuration: AuditConfiguration {
                id: entry.configuration_id,
                name: entry.configuration_name,
            },
        }
    }
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/tokens", tag = "organisations",
    description = "The organisation's service tokens (never the tokens themselves), newest first. Its \
                   admins and owners, browser session only; a member: 403; anyone else: 404.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [TokenResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let organisation = parse_id(&path)?;
    let body = state
        .db
        .run(move |conn| {
            let resources: Vec<_> = service_tokens::list(conn, principal.user_id, organisation)?
                .into_iter()
                .map(resource)
                .collect();
            json_array(&resources, 240)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/tokens", tag = "organisations",
    description = "Create a service token (scopes `read` and/or `resolve`); the 201 body carries it once. \
        Its admins and owners, browser session only (with X-CSRF-Token). A token with `resolve` needs \
        `current_password` (403 `reauthentication_required` otherwise).",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = CreateServiceTokenRequest,
    responses(
        (status = 201, body = CreatedTokenResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden` (not a browser session, or not an admin) or `reauthentication_required`", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "too many wrong passwords; see `Retry-After`", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let organisation = parse_id(&path)?;
    let NewTokenRequest {
        new,
        current_password,
        totp_code,
    } = match read_new_token(body, service_tokens::parse_scopes, None) {
        Ok(parsed) => parsed,
        Err(refused) => {
            // A member or an outsider learns where they stand (403, 404), not what the form lacks.
            let user_id = principal.user_id;
            state
                .db
                .run(move |conn| service_tokens::require_admin(conn, organisation, user_id))
                .await?;
            return Err(refused.into());
        }
    };
    let client = client_address(&req);
    let cap = state.settings.caps.tokens;
    let keyring = state.keyring.clone();
    let created = state
        .db
        .run(move |conn| {
            let proof = Reauthentication {
                current_password: current_password.as_deref(),
                totp_code: totp_code.as_deref(),
                single_sign_on: false,
            };
            service_tokens::create(
                conn,
                &keyring,
                principal.user_id,
                organisation,
                &new,
                cap,
                &proof,
                &client,
            )
        })
        .await?;
    let secret = created.secret.expose().to_owned();
    let body = CreatedTokenResource {
        resource: resource(TokenSummary {
            id: created.id,
            name: created.name,
            scopes: created.scopes.to_stored(),
            created_at: created.created_at,
            last_used_at: None,
            expires_at: created.expires_at,
            is_revoked: false,
        }),
        token: secret,
    };
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[utoipa::path(
    delete, path = "/api/organisations/{id}/tokens/{token_id}", tag = "organisations",
    description = "Revoke a service token. Its admins and owners, browser session only (with X-CSRF-Token).",
    params(
        ("id" = uuid::Uuid, Path, description = "The organisation's id"),
        ("token_id" = uuid::Uuid, Path, description = "The service token's id"),
    ),
    responses(
        (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let organisation = parse_id(&path.0)?;
    let id = parse_id(&path.1)?;
    state
        .db
        .run(move |conn| service_tokens::revoke(conn, principal.user_id, organisation, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/audit", tag = "organisations",
    description = "The organisation's reveals, newest first (at most 500): through its service tokens, and of \
                   its configurations by a member's own token. Its admins and owners; a member: 403; anyone \
                   else: 404. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [AuditEntryResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn audit(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let organisation = parse_id(&path)?;
    let entries = caller
        .run_for_user(&state.db, crate::domain::Scope::Read, move |conn, user| {
            service_tokens::audit(conn, user, organisation)
        })
        .await?;
    let resources: Vec<_> = entries.into_iter().map(AuditEntryResource::from).collect();
    Ok(json_ok(json_array(&resources, 240)?))
}
