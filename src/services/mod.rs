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
pub mod resolve_journal;
pub mod resolve_tags;
pub mod resolve_waits;
pub mod runtime_exports;
pub mod scheduled_checks;
pub mod service_tokens;
pub mod single_sign_on;
pub mod tokens;
pub mod two_factor;
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

/// An organisation's service token: no user stands behind it, so it is no [`Principal`] and no
/// use case that takes one can be reached with it. Only `GET /api/resolve` (for a member) and
/// its organisation's configuration and connection listings accept it.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub token_id: Uuid,
    /// For the organisation's audit.
    pub token_name: String,
    pub organisation_id: Uuid,
    pub scopes: Scopes,
}

/// A checked credential: a user's (session or personal token) or an organisation's service token.
#[derive(Debug, Clone)]
pub enum Authenticated {
    User(Principal),
    Service(ServicePrincipal),
}

impl Authenticated {
    /// Refuses a credential that lacks `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AccessError> {
        match self {
            Authenticated::User(principal) => principal.require(scope),
            Authenticated::Service(service) if service.scopes.grants(scope) => Ok(()),
            Authenticated::Service(_) => Err(AccessError::MissingScope(scope)),
        }
    }

    /// The user behind it; a service token is refused (403) wherever a user is needed.
    pub fn into_user(self) -> Result<Principal, AccessError> {
        match self {
            Authenticated::User(principal) => Ok(principal),
            Authenticated::Service(_) => Err(AccessError::ServiceToken),
        }
    }
}

/// A credential that does not reach what it asks for.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "a service token may only resolve for its organisation's members and list its configurations and connections"
    )]
    ServiceToken,
    #[error("this token lacks the `{}` scope", .0.as_str())]
    MissingScope(Scope),
    #[error("a browser session cannot use the `resolve` scope; use an API token")]
    SessionCannotResolve,
}
