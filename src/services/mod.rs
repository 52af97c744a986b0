//! Use cases. They take a database connection and validated domain values, and know nothing of
//! HTTP: the same functions serve the JSON API, the pages and the command line. Each service
//! names what went wrong in an error enum of its own; the edge (`http::service_errors`) gives
//! those a status and a code, once.

pub mod accounts;
pub mod admin;
pub mod configuration_input;
pub mod configurations;
pub mod connection_tests;
pub mod connections;
pub mod conversations;
pub mod events;
pub mod import;
pub mod master_keys;
pub mod operations;
pub mod organisations;
pub mod resolve_tags;
pub mod runtime_exports;
pub mod scheduled_checks;
pub mod tokens;
pub mod webhook_deliveries;
pub mod webhooks;

use uuid::Uuid;

/// One unit of work: a database connection lent to use cases for the length of one blocking
/// task (see `db::Database::run`). Pages and the API name it only to pass it on.
pub type Work = crate::db::DbConnection;

use crate::domain::{Role, Scope, Scopes};

/// `From<diesel::result::Error>` for a service error whose `Store` variant holds a `DbError`, so
/// that `?` on a query and `db::write_transaction` work inside the service.
macro_rules! store_error {
    ($error:ty) => {
        impl From<diesel::result::Error> for $error {
            fn from(error: diesel::result::Error) -> Self {
                Self::Store(crate::db::DbError::Query(error))
            }
        }
    };
}
pub(crate) use store_error;

/// Who is making a request, and through what.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub credential: Credential,
    /// The user's listing version as read together with a token (`db::users::listing_version`);
    /// `None` for a session, which reads no row of the user per request.
    pub listing_version: Option<i64>,
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

    /// Refuses a credential that lacks `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AccessError> {
        match &self.credential {
            Credential::Token { scopes, .. } if scopes.grants(scope) => Ok(()),
            Credential::Token { .. } => Err(AccessError::MissingScope(scope)),
            Credential::Session if scope != Scope::Resolve => Ok(()),
            Credential::Session => Err(AccessError::SessionCannotResolve),
        }
    }
}

/// A credential that does not reach what it asks for.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("this token lacks the `{}` scope", .0.as_str())]
    MissingScope(Scope),
    #[error("a browser session cannot use the `resolve` scope; use an API token")]
    SessionCannotResolve,
}
