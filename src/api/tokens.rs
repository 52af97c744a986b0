//! `/api/tokens`: the signed-in browser session lists, creates and revokes its API tokens.
//! Tokens cannot manage tokens (403).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Field, FieldReader, parse_id};
use super::wire::{Rfc3339, json_array, json_ok};
use crate::domain::{Scope, Scopes};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::client_address;
use crate::http::{Caller, JsonObject};
use crate::services::{Principal, accounts, tokens};

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResource {
    pub id: uuid::Uuid,
    pub name: String,
    /// `read`, `write` and/or `resolve`.
    pub scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Rfc3339>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Rfc3339>,
    pub revoked: bool,
}

/// The 201 body: the resource plus the token itself, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenResource {
    #[serde(flatten)]
    pub resource: TokenResource,
    /// `lny_…`: store it now; it is never shown again.
    pub token: String,
}

/// The body of `POST /api/tokens`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `create` reads it field by field
pub struct CreateTokenRequest {
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    scopes: Vec<String>,
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
    /// The signed-in user's current password: required when `scopes` contains `resolve` (such a
    /// token can reveal keys); 403 `reauthentication_required` when missing or wrong, and a wrong
    /// one counts against the login limits.
    #[schema(format = Password)]
    current_password: Option<String>,
    /// A code from the user's authenticator app (or an unused recovery code): required with
    /// `current_password` for a `resolve` token when the account has a second factor; a wrong
    /// one counts against the login limits.
    #[schema(format = Password)]
    totp_code: Option<String>,
}

/// The session's user; a (valid) token is refused with 403.
pub(super) async fn session_only(state: &AppState, caller: Caller) -> Result<Principal, AppError> {
    let principal = caller.authorize_async(&state.db, Scope::Read).await?;
    if principal.is_session() {
        Ok(principal)
    } else {
        Err(AppError::Forbidden(
            "tokens cannot manage tokens; sign in to the settings page".into(),
        ))
    }
}

/// A new token's fields as both token routes read them (`scopes` a list or a comma-separated
/// string, parsed by `parse_scopes`; absent: `default`, or refused when there is none), and the
/// `current_password` sent with it.
/// A token's creation as the API reads it: the token and the re-authentication sent with it.
pub(super) struct NewTokenRequest {
    pub new: tokens::NewToken,
    pub current_password: Option<String>,
    pub totp_code: Option<String>,
}

pub(super) fn read_new_token(
    body: JsonObject,
    parse_scopes: fn(&str) -> Result<Scopes, String>,
    default: Option<Scopes>,
) -> Result<NewTokenRequest, AppError> {
    let mut reader = FieldReader::new(
        body.0,
        &["name", "scopes", "expires_in_days", "current_password", "totp_code"],
        &["id", "token", "created_at"],
    );
    let name = reader.required_string("name");
    let name = reader.parsed("name", name, tokens::parse_token_name);
    let scopes = match reader.take("scopes") {
        Some(serde_json::Value::Array(items)) => {
            let names: Option<Vec<String>> = items.into_iter().map(|item| item.as_str().map(str::to_owned)).collect();
            match names {
                Some(names) => reader.parsed("scopes", Some(names.join(",")), parse_scopes),
                None => {
                    reader.errors.add("scopes", "must be a list of scope names");
                    None
                }
            }
        }
        Some(serde_json::Value::String(list)) => reader.parsed("scopes", Some(list), parse_scopes),
        None | Some(serde_json::Value::Null) => match default {
            Some(default) => Some(default),
            None => {
                reader.errors.add("scopes", "name at least one scope");
                None
            }
        },
        Some(_) => {
            reader.errors.add("scopes", "must be a list of scope names");
            None
        }
    };
    let expires_in_days = match reader.integer("expires_in_days") {
        Field::Value(days) => reader.parsed("expires_in_days", Some(days.to_string()), |raw| {
            raw.parse::<i64>()
                .map_err(|_| "must be a whole number".to_owned())
                .and_then(tokens::parse_expiry_days)
        }),
        Field::Absent | Field::Null => None,
    };
    let current_password = match reader.string("current_password") {
        Field::Value(password) => Some(password),
        Field::Absent | Field::Null => None,
    };
    let totp_code = match reader.string("totp_code") {
        Field::Value(code) => Some(code),
        Field::Absent | Field::Null => None,
    };
    let errors = reader.errors.clone();
    reader.finish()?;
    let new = tokens::NewToken::from_parsed(name, scopes, expires_in_days, errors)?;
    Ok(NewTokenRequest {
        new,
        current_password,
        totp_code,
    })
}

pub(super) fn resource(token: tokens::TokenSummary) -> TokenResource {
    TokenResource {
        id: token.id,
        name: token.name,
        scopes: token.scopes.split(',').map(str::to_owned).collect(),
        created_at: Rfc3339(token.created_at),
        last_used_at: token.last_used_at.map(Rfc3339),
        expires_at: token.expires_at.map(Rfc3339),
        revoked: token.is_revoked,
    }
}

#[utoipa::path(
    get, path = "/api/tokens", tag = "tokens",
    description = "The signed-in user's API tokens (never the tokens themselves). Browser session only.",
    responses((status = 200, body = [TokenResource]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("session" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let body = state
        .db
        .run(move |conn| {
            let resources: Vec<_> = tokens::list(conn, principal.user_id)?
                .into_iter()
                .map(resource)
                .collect();
            json_array(&resources, 240)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/tokens", tag = "tokens",
    description = "Create a token; the 201 body carries it once. Browser session only (with X-CSRF-Token). \
        A token with the `resolve` scope needs `current_password`, plus `totp_code` when the account has a second \
        factor (403 `reauthentication_required` otherwise).",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, body = CreatedTokenResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden` (not a browser session) or `reauthentication_required`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "too many wrong passwords; see `Retry-After`", body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let default_scopes = Scopes::from_list(vec![Scope::Read, Scope::Write]).ok();
    let NewTokenRequest {
        new,
        current_password,
        totp_code,
    } = read_new_token(body, Scopes::parse, default_scopes)?;
    let client = client_address(&req);
    let cap = state.settings.caps.tokens;
    let keyring = state.keyring.clone();
    let created = state
        .db
        .run(move |conn| {
            let proof = accounts::Reauthentication {
                current_password: current_password.as_deref(),
                totp_code: totp_code.as_deref(),
                single_sign_on: false,
            };
            tokens::create_for_session(conn, &keyring, principal.user_id, &new, cap, &proof, &client)
        })
        .await?;
    let secret = created.secret.expose().to_owned();
    let body = CreatedTokenResource {
        resource: resource(tokens::TokenSummary {
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
    delete, path = "/api/tokens/{id}", tag = "tokens",
    description = "Revoke a token. Browser session only (with X-CSRF-Token).",
    params(("id" = uuid::Uuid, Path, description = "The token's id")),
    responses(
        (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("session" = []))
)]
pub async fn revoke(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let principal = session_only(&state, caller).await?;
    let id = parse_id(&path)?;
    state
        .db
        .run(move |conn| tokens::revoke(conn, principal.user_id, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
