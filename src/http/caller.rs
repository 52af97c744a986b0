//! Who is calling: a bearer token (checked against the database inside the handler's own
//! database task) or a browser session, as one `Caller`.

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload};

use super::api_error::ApiError;
use super::auth::{self, SignedIn};
use crate::db;
use crate::domain::Scope;
use crate::error::AppError;
use crate::services::{Authenticated, Credential, Principal, tokens};

/// Who is calling, as far as the request itself tells without the database: a bearer token
/// still to be checked, or a browser session (already loaded by the session middleware). A
/// request with neither is refused (401) here.
///
/// Handlers check the token inside the same blocking database task as their own work
/// ([`Caller::authorize`]), so a request costs one trip to the blocking pool, not two.
#[derive(Clone)]
pub enum Caller {
    Token(String),
    /// Boxed: a caller is held by every request in flight, and most are tokens.
    Session(Box<Principal>),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = bearer_token(req.headers()).map(str::to_owned);
        std::future::ready(match presented {
            Some(token) => Ok(Caller::Token(token)),
            None => match session_principal(req) {
                Ok(Some(principal)) => Ok(Caller::Session(Box::new(principal))),
                Ok(None) => Err(AppError::Unauthorized.into()),
                Err(error) => Err(error.into()),
            },
        })
    }
}

/// The token of an `Authorization: Bearer …` header, if the request has one.
pub fn bearer_token(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
}

impl Caller {
    /// Checks the credential (a token against the database) and that it grants `scope`. An
    /// organisation's service token is refused (403): it has no user to act as.
    pub fn authorize(self, conn: &mut db::DbConnection, scope: Scope) -> Result<Principal, AppError> {
        let principal = self.authorize_any(conn, scope)?.into_user()?;
        Ok(principal)
    }

    /// The same, also accepting an organisation's service token: for the few routes that serve
    /// one (resolving for a member, its organisation's listings).
    pub fn authorize_any(self, conn: &mut db::DbConnection, scope: Scope) -> Result<Authenticated, AppError> {
        let authenticated = match self {
            Caller::Token(token) => tokens::authenticate(conn, &token, db::now())?,
            Caller::Session(principal) => Authenticated::User(*principal),
        };
        authenticated.require(scope)?;
        Ok(authenticated)
    }

    /// Checks the credential for `scope` and runs `work` with the caller, all in one database
    /// task: the shape of a handler whose work is one unit of work.
    pub async fn run<T: Send + 'static>(
        self,
        database: &db::Database,
        scope: Scope,
        work: impl FnOnce(&mut db::DbConnection, Principal) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        database
            .run(move |conn| {
                let principal = self.authorize(conn, scope)?;
                work(conn, principal)
            })
            .await
    }

    /// The same for work that needs only the caller's user id and answers with a service's own
    /// error (mapped once, at the edge, by its `From`).
    pub async fn run_for_user<T: Send + 'static, E: Into<AppError>>(
        self,
        database: &db::Database,
        scope: Scope,
        work: impl FnOnce(&mut db::DbConnection, uuid::Uuid) -> Result<T, E> + Send + 'static,
    ) -> Result<T, AppError> {
        self.run(database, scope, move |conn, principal| {
            work(conn, principal.user_id).map_err(Into::into)
        })
        .await
    }

    /// The same, in a blocking task of its own, for handlers whose work is not one database task.
    pub async fn authorize_async(self, database: &db::Database, scope: Scope) -> Result<Principal, AppError> {
        match self {
            Caller::Session(principal) => {
                principal.require(scope)?;
                Ok(*principal)
            }
            token => database.run(move |conn| token.authorize(conn, scope)).await,
        }
    }
}

/// The browser session's user, if any. Unsafe methods must carry the session's CSRF token in
/// `X-CSRF-Token` and come from the instance's own origin (403 otherwise).
fn session_principal(req: &HttpRequest) -> Result<Option<Principal>, AppError> {
    let session = req.get_session();
    let Some(user) = SignedIn::from_session(session.clone())? else {
        return Ok(None);
    };
    // Bearer tokens are not confined: only a session without its required second factor is.
    if user.second_factor_missing {
        return Err(AppError::SecondFactorRequired);
    }
    if !req.method().is_safe() {
        auth::check_request(req, &session, None)?;
    }
    Ok(Some(Principal {
        user_id: user.user_id,
        role: user.role,
        credential: Credential::Session,
        listing_version: None,
    }))
}
