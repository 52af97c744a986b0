//! actix-session over a store kept in the database, so that logout, a password change or a
//! disabled account end sessions on every instance at once.
//!
//! The cookie carries a random 256-bit key (signed); the table stores only its SHA-256. Idle
//! sessions expire after 12 hours, every session after 7 days; the idle expiry is pushed
//! forward at most once a minute, while the session is loaded, in the same blocking task.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use std::rc::Rc;

use actix_session::{SessionMiddleware, config::PersistentSession};
use actix_web::body::MessageBody;
use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderMap};
use chrono::Duration;
use futures_util::future::{Either, LocalBoxFuture};

use crate::crypto::{self, MasterKeyring, hash_session_key, new_session_key};
use crate::db::{self, Database, DbId, sessions};
use crate::services::two_factor;

pub const COOKIE_NAME: &str = "lanyard_session";
pub const IDLE_TIMEOUT: Duration = Duration::hours(12);
pub const ABSOLUTE_LIFETIME: Duration = Duration::days(7);
const REFRESH_GRANULARITY: Duration = Duration::minutes(1);

/// Session-state entries Lanyard writes. Values are JSON, as actix-session stores them.
pub const USER_ID: &str = "user_id";
pub const CSRF_TOKEN: &str = "csrf_token";
pub const EMAIL: &str = "email";
/// Filled in on every load from the users table (never stored): the user's current role.
pub const ROLE: &str = "_role";
/// Filled in on every load (never stored): the admin requires a second factor and this password
/// account has none, so only its set-up page is open.
pub const SECOND_FACTOR_MISSING: &str = "_second_factor_missing";
/// Set on load (never stored) when the database could not be reached.
pub const UNAVAILABLE: &str = "_unavailable";

#[derive(Clone)]
pub struct DbSessionStore {
    db: Database,
}

impl DbSessionStore {
    pub fn new(db: Database) -> Self {
        DbSessionStore { db }
    }
}

/// The user a state belongs to, and the state as stored (without the derived entries).
fn stored_form(mut state: HashMap<String, String>) -> Result<(Option<DbId>, String), serde_json::Error> {
    state.retain(|name, _| !name.starts_with('_'));
    let user_id = state
        .get(USER_ID)
        .and_then(|value| serde_json::from_str::<uuid::Uuid>(value).ok())
        .map(DbId);
    Ok((user_id, serde_json::to_string(&state)?))
}

fn insert_new(conn: &mut db::DbConnection, user_id: Option<DbId>, state: &str) -> Result<String, db::DbError> {
    let key = new_session_key();
    let now = db::now();
    sessions::insert(
        conn,
        &sessions::SessionInsert {
            key_hash: &hash_session_key(&key),
            user_id,
            state,
            created_at: now,
            refreshed_at: now,
            idle_expires_at: now + IDLE_TIMEOUT,
            absolute_expires_at: now + ABSOLUTE_LIFETIME,
        },
    )?;
    Ok(key)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let key_hash = hash_session_key(session_key.as_ref());
        self.db
            .run(move |conn| {
                let now = db::now();
                let Some((row, owner)) = sessions::find_live(conn, &key_hash, now)? else {
                    return Ok(None);
                };
                let mut state: HashMap<String, String> =
                    serde_json::from_str(&row.state).map_err(|error| db::DbError::Unavailable(error.to_string()))?;
                match owner {
                    Some(owner) if owner.is_disabled => return Ok(None),
                    Some(owner) => {
                        state.insert(
                            ROLE.to_owned(),
                            serde_json::Value::from(owner.role.as_str()).to_string(),
                        );
                        if let Some(user_id) = row.user_id
                            && two_factor::setup_required(conn, user_id.0, owner.has_second_factor)?
                        {
                            state.insert(SECOND_FACTOR_MISSING.to_owned(), "true".to_owned());
                        }
                    }
                    None if row.user_id.is_some() => return Ok(None),
                    None => {}
                }
                if now - row.refreshed_at >= REFRESH_GRANULARITY {
                    sessions::refresh(conn, &key_hash, now, now + IDLE_TIMEOUT)?;
                }
                Ok(Some(state))
            })
            .await
            .or_else(|error: db::DbError| match error {
                // The database is down: mark the session so that pages and the API answer 503
                // (actix-session would turn a load error into a 500).
                db::DbError::Unavailable(_) => Ok(Some(HashMap::from([(UNAVAILABLE.to_owned(), "true".to_owned())]))),
                db::DbError::Query(error) => Err(LoadError::Other(anyhow::anyhow!("{error}"))),
            })
    }

    async fn save(&self, state: HashMap<String, String>, _ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        let (user_id, state) = stored_form(state).map_err(|error| SaveError::Serialization(error.into()))?;
        let key = self
            .db
            .run(move |conn| insert_new(conn, user_id, &state))
            .await
            .map_err(|error| SaveError::Other(anyhow::anyhow!("{error}")))?;
        SessionKey::try_from(key).map_err(|error| SaveError::Other(error.into()))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: HashMap<String, String>,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let (user_id, state) = stored_form(state).map_err(|error| UpdateError::Serialization(error.into()))?;
        let key: String = session_key.into();
        let key_hash = hash_session_key(&key);
        let key = self
            .db
            .run(move |conn| {
                let now = db::now();
                let updated = sessions::update_state(conn, &key_hash, user_id, &state, now, now + IDLE_TIMEOUT)?;
                // The session ended meanwhile (expired, or ended elsewhere): start a fresh one
                // rather than revive it.
                if updated == 0 {
                    insert_new(conn, None, "{}")
                } else {
                    Ok(key)
                }
            })
            .await
            .map_err(|error| UpdateError::Other(anyhow::anyhow!("{error}")))?;
        SessionKey::try_from(key).map_err(|error| UpdateError::Other(error.into()))
    }

    async fn update_ttl(&self, _session_key: &SessionKey, _ttl: &CookieDuration) -> Result<(), anyhow::Error> {
        // `load` already pushes the idle expiry forward (at most once a minute).
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let key_hash = hash_session_key(session_key.as_ref());
        self.db
            .run(move |conn| sessions::delete(conn, &key_hash).map_err(db::DbError::from))
            .await
            .map(|_| ())
            .map_err(|error| anyhow::anyhow!("{error}"))
    }
}

/// The cookie-signing key, derived from the active master key so that every instance agrees.
pub fn cookie_key(keyring: &MasterKeyring) -> Key {
    Key::from(&crypto::session_cookie_signing_key(keyring))
}

/// The session middleware, for the requests that can have a session: see [`SessionsWhereUsed`].
pub fn middleware(store: DbSessionStore, key: Key, secure: bool) -> SessionsWhereUsed {
    SessionsWhereUsed {
        sessions: session_middleware(store, key, secure),
    }
}

fn session_middleware(store: DbSessionStore, key: Key, secure: bool) -> SessionMiddleware<DbSessionStore> {
    SessionMiddleware::builder(store, key)
        .cookie_name(COOKIE_NAME.to_owned())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Strict)
        .cookie_secure(secure)
        .cookie_path("/".to_owned())
        .session_lifecycle(
            PersistentSession::default().session_ttl(CookieDuration::seconds(ABSOLUTE_LIFETIME.num_seconds())),
        )
        .build()
}

/// actix-session around the requests that can have a session, and not around a request that
/// presents a bearer token without a session cookie: a token is its caller ([`super::Caller`]
/// prefers it to a session), and such a request can neither read a session nor start one.
/// Runtimes call with tokens, thousands of waiting resolves at once (runtimes.md): each would
/// otherwise carry the session middleware's state for as long as it waits (BENCHMARKS.md).
pub struct SessionsWhereUsed {
    sessions: SessionMiddleware<DbSessionStore>,
}

impl<S, B> Transform<S, ServiceRequest> for SessionsWhereUsed
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = SessionsWhereUsedService<S>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let without_sessions = Rc::new(service);
        let with_sessions = self.sessions.new_transform(without_sessions.clone());
        Box::pin(async move {
            Ok(SessionsWhereUsedService {
                with_sessions: with_sessions.await?,
                without_sessions,
            })
        })
    }
}

type WithSessions<S> = <SessionMiddleware<DbSessionStore> as Transform<Rc<S>, ServiceRequest>>::Transform;

/// The application's service twice over: through the session middleware, and bare.
pub struct SessionsWhereUsedService<S>
where
    S: Service<ServiceRequest>,
    SessionMiddleware<DbSessionStore>: Transform<Rc<S>, ServiceRequest>,
{
    with_sessions: WithSessions<S>,
    without_sessions: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for SessionsWhereUsedService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Either<<WithSessions<S> as Service<ServiceRequest>>::Future, S::Future>;

    actix_web::dev::forward_ready!(with_sessions);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if token_without_session(req.headers()) {
            Either::Right(self.without_sessions.call(req))
        } else {
            Either::Left(self.with_sessions.call(req))
        }
    }
}

/// A bearer token and no session cookie. A `Cookie` header that so much as mentions the
/// session cookie's name counts as a session: in doubt, the session middleware runs.
fn token_without_session(headers: &HeaderMap) -> bool {
    super::caller::bearer_token(headers).is_some()
        && !headers.get_all(header::COOKIE).any(|cookies| {
            cookies
                .as_bytes()
                .windows(COOKIE_NAME.len())
                .any(|name| name == COOKIE_NAME.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_a_token_without_a_session_cookie_goes_without_sessions() {
        assert!(token_without_session(&headers(&[("authorization", "Bearer lny_abc")])));
        assert!(token_without_session(&headers(&[
            ("authorization", "bearer lny_abc"),
            ("cookie", "theme=dark"),
        ])));
        assert!(!token_without_session(&headers(&[])));
        assert!(!token_without_session(&headers(&[("cookie", "lanyard_session=x")])));
        assert!(!token_without_session(&headers(&[("authorization", "Basic YTpi")])));
        assert!(!token_without_session(&headers(&[
            ("authorization", "Bearer lny_abc"),
            ("cookie", "theme=dark"),
            ("cookie", "lanyard_session=x"),
        ])));
    }
}
