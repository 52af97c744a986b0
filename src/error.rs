//! What a client is told: a status, a stable code, a message and the fields it names.
//! `http::ApiError` renders it as JSON and `http::PageError` as a page; each service's own error
//! becomes one in `http::service_errors`. (The configuration services still return it directly,
//! until their rework.)

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbError;
/// A domain type; re-exported here for the callers that still name it through `error`.
pub use crate::domain::FieldErrors;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// The action reveals keys and needs the current password in the same request (absent or
    /// wrong); pages show it under `current_password`.
    #[error("this can reveal keys: confirm it with your current password in `current_password`")]
    ReauthenticationRequired,
    /// The admin requires a second factor and this password account, signed in by session,
    /// has none yet: only its set-up page is open to it.
    #[error("set up two-factor authentication first, at /settings/two-factor")]
    SecondFactorRequired,
    #[error("not found")]
    NotFound,
    /// A member's own `resolve` token landed on an organisation's configuration whose key its
    /// members may not read (`organisations.md`).
    #[error("{0}")]
    OrganisationKey(String),
    #[error("{message}")]
    Conflict { message: String, fields: FieldErrors },
    /// A 409 with its own code (`in_use`, `connection_shared`): the request is valid, but the
    /// state of something else forbids it.
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    #[error("the stored API key cannot be decrypted; re-enter the key")]
    KeyUnreadable,
    /// The change would leave an organisation without an owner (`organisations.md`).
    #[error("{0}")]
    LastOwner(String),
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("the request is invalid")]
    Validation(FieldErrors),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// A bug. The detail goes to the log (never a secret in it), not to the client.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        AppError::Validation(FieldErrors::single(field, message))
    }

    /// A per-user cap reached: 422, the cap's variable named as the field.
    pub fn cap_reached(cap: &crate::domain::UserCap) -> Self {
        AppError::validation(cap.variable, cap.describe())
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        let fields = field
            .map(|field| FieldErrors::single(field, message.clone()))
            .unwrap_or_default();
        AppError::Conflict { message, fields }
    }

    pub fn refused(code: &'static str, message: impl Into<String>, fields: FieldErrors) -> Self {
        AppError::Refused {
            code,
            message: message.into(),
            fields,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest(_) => 400,
            AppError::Unauthorized => 401,
            AppError::Forbidden(_)
            | AppError::ReauthenticationRequired
            | AppError::SecondFactorRequired
            | AppError::OrganisationKey(_) => 403,
            AppError::NotFound => 404,
            AppError::Conflict { .. } | AppError::Refused { .. } | AppError::KeyUnreadable | AppError::LastOwner(_) => {
                409
            }
            AppError::PayloadTooLarge => 413,
            AppError::Validation(_) => 422,
            AppError::RateLimited { .. } => 429,
            AppError::Internal(_) => 500,
            AppError::Unavailable => 503,
        }
    }

    /// The stable `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::ReauthenticationRequired => "reauthentication_required",
            AppError::SecondFactorRequired => "second_factor_required",
            AppError::NotFound => "not_found",
            AppError::OrganisationKey(_) => "organisation_key",
            AppError::Conflict { .. } => "conflict",
            AppError::Refused { code, .. } => code,
            AppError::KeyUnreadable => "key_unreadable",
            AppError::LastOwner(_) => "last_owner",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::Validation(_) => "validation_failed",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn fields(&self) -> Option<&FieldErrors> {
        match self {
            AppError::Validation(fields) => Some(fields),
            AppError::Conflict { fields, .. } | AppError::Refused { fields, .. } if !fields.is_empty() => Some(fields),
            _ => None,
        }
    }
}

/// Whatever a validation refused: 422 with the fields.
impl From<FieldErrors> for AppError {
    fn from(errors: FieldErrors) -> Self {
        AppError::Validation(errors)
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                AppError::Unavailable
            }
            DbError::Query(error) => AppError::from(error),
        }
    }
}

impl From<DieselError> for AppError {
    fn from(error: DieselError) -> Self {
        match &error {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => {
                tracing::warn!(%error, "database connection lost");
                AppError::Unavailable
            }
            // The owner lock makes the services' own checks authoritative; a constraint that
            // still fires means a conflict, never a server error.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                AppError::conflict(None, "the change conflicts with existing data; reload and try again")
            }
            // Diesel's messages name tables and constraints, never bound values.
            _ => AppError::Internal(format!("database error: {error}")),
        }
    }
}
