//! actix-session over a store kept in the database, so that logout, a password change or a
//! disabled account end sessions on every instance at once.
//!
//! The cookie carries a random 256-bit key (signed); the table stores only its SHA-256. Idle
//! sessions expire after 12 hours, every session after 7 days; the idle expiry is pushed
//! forward at most once a minute, while the session is loaded, in the same blocking task.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_session::{SessionMiddleware, config::PersistentSession};
use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use chrono::Duration;

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

pub fn middleware(store: DbSessionStore, key: Key, secure: bool) -> SessionMiddleware<DbSessionStore> {
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
