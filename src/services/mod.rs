//! Use cases. They take a database connection and validated domain values, and know nothing of
//! HTTP: the same functions serve the JSON API, the pages and the command line.

pub mod accounts;
pub mod admin;
pub mod configuration_input;
pub mod configurations;
pub mod connection_tests;
pub mod connections;
pub mod conversations;
pub mod import;
pub mod master_keys;
pub mod operations;
pub mod tokens;

use uuid::Uuid;

/// One unit of work: a database connection lent to use cases for the length of one blocking
/// task (see `db::Database::run`). Pages and the API name it only to pass it on.
pub type Work = crate::db::DbConnection;

use crate::domain::{Role, Scope, Scopes};
use crate::error::AppError;

/// Who is making a request, and through what.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub credential: Credential,
}

#[derive(Debug, Clone)]
pub enum Credential {
    Token {
        id: Uuid,
        scopes: Scopes,
    },
    /// A browser session: what `read` and `write` allow, never `resolve`.
    Session,
}

impl Principal {
    pub fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session)
    }

    /// Refuses (403) a credential that lacks `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        match &self.credential {
            Credential::Token { scopes, .. } if scopes.grants(scope) => Ok(()),
            Credential::Token { .. } => Err(AppError::Forbidden(format!(
                "this token lacks the `{}` scope",
                scope.as_str()
            ))),
            Credential::Session if scope != Scope::Resolve => Ok(()),
            Credential::Session => Err(AppError::Forbidden(
                "a browser session cannot use the `resolve` scope; use an API token".into(),
            )),
        }
    }
}
