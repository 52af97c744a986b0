//! `/api/connections/{id}/checks`: a connection's latest checks, scheduled and manual.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::parse_id;
use super::wire::Rfc3339;
use crate::domain::{CheckRecord, Scope};
use crate::error::AppError;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::{AppState, Caller};
use crate::services::scheduled_checks;

/// One check of a connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResource {
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: Rfc3339,
    /// `scheduled` or `manual`.
    #[schema(value_type = String)]
    pub trigger: &'static str,
    /// `ok`, `failed`, or `unavailable` (the provider answered 429 or 5xx, or not in time: no
    /// verdict on the key, nothing changed).
    #[schema(value_type = String)]
    pub status: &'static str,
    /// The test's outcome code (`ok`, `invalid_key`, `rate_limited`, …).
    pub code: String,
    pub latency_ms: Option<i64>,
}

impl From<CheckRecord> for CheckResource {
    fn from(record: CheckRecord) -> Self {
        CheckResource {
            checked_at: Rfc3339(record.checked_at),
            trigger: record.trigger.as_str(),
            status: record.status.as_str(),
            code: record.code,
            latency_ms: record.latency_ms,
        }
    }
}

#[utoipa::path(
    get, path = "/api/connections/{id}/checks", tag = "connections",
    description = "The connection's last 50 checks (scheduled and manual), newest first. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The connection's id")),
    responses(
        (status = 200, body = [CheckResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let history = state
        .db
        .run(move |conn| {
            let principal = caller.authorize(conn, Scope::Read)?;
            Ok::<_, AppError>(scheduled_checks::history(conn, principal.user_id, id)?)
        })
        .await?;
    let resources: Vec<CheckResource> = history.into_iter().map(CheckResource::from).collect();
    Ok(HttpResponse::Ok().json(resources))
}
