//! Renders an `AppError` as the JSON error body of `api.md`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, FieldErrors};

/// `{"error": "validation_failed", "message": "…", "fields": {"name": ["…"]}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `reauthentication_required`
    /// (403: the current password is missing or wrong), `not_found`, `conflict`,
    /// `key_unreadable`, `last_owner`, `payload_too_large`, `validation_failed`, `rate_limited`,
    /// `unavailable`, `internal`; 409 `in_use` (a connection still used by configurations) and
    /// `connection_shared` (a configuration's connection is used by others: change the connection).
    pub error: String,
    pub message: String,
    /// Messages by field name, for validation errors and one-field conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub fields: Option<FieldErrors>,
}

/// An `AppError` on its way out of an `/api` handler.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(detail) = &self.0 {
            tracing::error!(%detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        match &self.0 {
            AppError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            AppError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.0.code().to_owned(),
            message: self.0.to_string(),
            fields: self.0.fields().cloned(),
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A query string that does not parse: 400, for pages and the API alike.
pub fn invalid_query(error: &actix_web::error::QueryPayloadError) -> AppError {
    AppError::BadRequest(format!("the query string is invalid: {error}"))
}
