//! How a process learns that something a resolution reads has changed, whichever process wrote
//! it (migration 000024): on PostgreSQL the `lanyard_resolve` notifications, naming each user
//! whose answer may have changed, on one long-lived connection; on SQLite the
//! `resolve_generation` instance setting, which the triggers raise. Blocking: run
//! [`follow`] on a thread of its own.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use uuid::Uuid;

use super::{ConnectionManager, DatabaseUrl, DbConnection, instance_settings};

/// The channel the PostgreSQL triggers notify on; each payload is one user id.
const CHANNEL: &str = "lanyard_resolve";
/// The SQLite counter the triggers raise.
const GENERATION_SETTING: &str = "resolve_generation";
/// How often the listener looks for notifications (PostgreSQL) or reads the counter (SQLite):
/// a change reaches a waiting request within this plus one resolve.
const POLL: Duration = Duration::from_millis(200);
/// How often the PostgreSQL listener proves its connection alive with a query: a connection cut
/// without a word (a dropped network path) shows no error to a mere read of what has arrived.
const PROBE: Duration = Duration::from_secs(5);
/// The longest pause between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How the listener's connection shows in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "lanyard-resolve-listener";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The answers of these users may have changed (none: nothing changed, still listening).
    Users(Vec<Uuid>),
    /// Anyone's answer may have changed: SQLite's counter moved, or the listener (re)connected
    /// and may have missed notifications meanwhile.
    Everyone,
}

/// Follows the database's changes, handing each to `deliver` (also an empty `Users` every
/// poll), until `deliver` answers `false`: nobody listens any more. Reconnects when the
/// connection fails, and then delivers `Everyone` once.
pub fn follow(url: &DatabaseUrl, mut deliver: impl FnMut(Change) -> bool) {
    let manager = ConnectionManager::new(url.clone());
    let mut backoff = POLL;
    loop {
        let connected = r2d2::ManageConnection::connect(&manager).and_then(|mut conn| {
            if let DbConnection::Postgres(pg) = &mut conn {
                pg.batch_execute(&format!(
                    "SET application_name = '{LISTENER_APPLICATION_NAME}'; LISTEN {CHANNEL}"
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            }
            Ok(conn)
        });
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "cannot follow resolve changes; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if !deliver(Change::Users(Vec::new())) {
                    return;
                }
                continue;
            }
        };
        backoff = POLL;
        // Whatever changed before this connection listened went unheard: everyone looks again.
        if !deliver(Change::Everyone) {
            return;
        }
        let lost = match &mut conn {
            DbConnection::Postgres(pg) => listen(pg, &mut deliver),
            DbConnection::Sqlite(_) => watch_generation(&mut conn, &mut deliver),
        };
        match lost {
            Some(error) => tracing::warn!(%error, "lost the connection that follows resolve changes; reconnecting"),
            None => return,
        }
    }
}

/// Hands on the notifications as they arrive; `None` when nobody listens any more, else why
/// the connection was lost.
fn listen(conn: &mut diesel::PgConnection, deliver: &mut impl FnMut(Change) -> bool) -> Option<diesel::result::Error> {
    let mut probed = Instant::now();
    loop {
        std::thread::sleep(POLL);
        let mut users = Vec::new();
        for notification in conn.notifications_iter() {
            match notification {
                Ok(notification) => users.extend(Uuid::parse_str(&notification.payload).ok()),
                Err(error) => return Some(error),
            }
        }
        if !deliver(Change::Users(users)) {
            return None;
        }
        if probed.elapsed() >= PROBE {
            probed = Instant::now();
            if let Err(error) = diesel::sql_query("SELECT 1").execute(conn) {
                return Some(error);
            }
        }
    }
}

/// Reads SQLite's counter every poll; `Everyone` when it moved.
fn watch_generation(
    conn: &mut DbConnection,
    deliver: &mut impl FnMut(Change) -> bool,
) -> Option<diesel::result::Error> {
    let mut seen = None;
    loop {
        let generation = match instance_settings::get(conn, GENERATION_SETTING) {
            Ok(generation) => generation,
            Err(error) => return Some(error),
        };
        let change = if seen.as_ref().is_some_and(|seen| *seen != generation) {
            Change::Everyone
        } else {
            Change::Users(Vec::new())
        };
        seen = Some(generation);
        if !deliver(change) {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
