//! How the configuration and connection services' errors reach a client: each variant mapped
//! once, here, to the status, code and fields of `api.md` and `connections.md` (pages render the
//! same `AppError`).

use crate::error::AppError;
use crate::services::configurations::ConfigurationError;
use crate::services::connection_tests::TestError;
use crate::services::connections::ConnectionError;

impl From<ConfigurationError> for AppError {
    fn from(error: ConfigurationError) -> Self {
        match error {
            ConfigurationError::NotFound => AppError::NotFound,
            ConfigurationError::Forbidden => AppError::Forbidden(error.to_string()),
            ConfigurationError::NameTaken => AppError::conflict(Some("name"), error.to_string()),
            ConfigurationError::InactiveDefault => AppError::conflict(None, error.to_string()),
            ConfigurationError::CapReached(cap) => AppError::cap_reached(&cap),
            ConfigurationError::Invalid(fields) => AppError::Validation(fields),
            ConfigurationError::ConnectionShared { ref fields, .. } => {
                AppError::refused("connection_shared", error.to_string(), fields.clone())
            }
            ConfigurationError::Store(error) => AppError::from(error),
        }
    }
}

impl From<ConnectionError> for AppError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::NotFound => AppError::NotFound,
            ConnectionError::Forbidden => AppError::Forbidden(error.to_string()),
            ConnectionError::NameTaken => AppError::conflict(Some("name"), error.to_string()),
            ConnectionError::CapReached(cap) => AppError::cap_reached(&cap),
            ConnectionError::Invalid(fields) => AppError::Validation(fields),
            ConnectionError::InUse(_) => AppError::refused("in_use", error.to_string(), Default::default()),
            ConnectionError::Store(error) => AppError::from(error),
        }
    }
}

impl From<TestError> for AppError {
    fn from(error: TestError) -> Self {
        match error {
            TestError::NotFound => AppError::NotFound,
            TestError::Forbidden => AppError::Forbidden(error.to_string()),
            TestError::Invalid(fields) => AppError::Validation(fields),
            TestError::RateLimited { retry_after_secs } => AppError::RateLimited { retry_after_secs },
            TestError::Store(error) => AppError::from(error),
        }
    }
}
