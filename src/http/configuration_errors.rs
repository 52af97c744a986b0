//! How the configuration services' errors reach a client: each variant mapped once, here, to
//! the status, code and fields of `api.md` (pages render the same `AppError`).

use crate::error::AppError;
use crate::services::configurations::ConfigurationError;
use crate::services::connection_tests::TestError;

impl From<ConfigurationError> for AppError {
    fn from(error: ConfigurationError) -> Self {
        match error {
            ConfigurationError::NotFound => AppError::NotFound,
            ConfigurationError::NameTaken => AppError::conflict(Some("name"), error.to_string()),
            ConfigurationError::InactiveDefault => AppError::conflict(None, error.to_string()),
            ConfigurationError::CapReached(cap) => AppError::cap_reached(&cap),
            ConfigurationError::Invalid(fields) => AppError::Validation(fields),
            ConfigurationError::Store(error) => AppError::from(error),
        }
    }
}

impl From<TestError> for AppError {
    fn from(error: TestError) -> Self {
        match error {
            TestError::NotFound => AppError::NotFound,
            TestError::Invalid(fields) => AppError::Validation(fields),
            TestError::RateLimited { retry_after_secs } => AppError::RateLimited { retry_after_secs },
            TestError::Store(error) => AppError::from(error),
        }
    }
}
