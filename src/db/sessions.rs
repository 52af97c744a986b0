//! The `sessions` table: server-side browser sessions, keyed by the SHA-256 of the cookie's key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{second_factors, sessions, users};
use super::sql_types::Stamp;
use super::{DbConnection, DbId, on_backend};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub key_hash: Vec<u8>,
    pub user_id: Option<DbId>,
    pub state: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub refreshed_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub idle_expires_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub absolute_expires_at: NaiveDateTime,
}

/// What a request needs to know about a session's user, read in the same round trip.
#[derive(Debug, Clone, Queryable)]
pub struct SessionOwner {
    pub role: Role,
    pub is_disabled: bool,
    pub has_second_factor: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionInsert<'a> {
    pub key_hash: &'a [u8],
    pub user_id: Option<DbId>,
    pub state: &'a str,
    pub created_at: NaiveDateTime,
    pub refreshed_at: NaiveDateTime,
    pub idle_expires_at: NaiveDateTime,
    pub absolute_expires_at: NaiveDateTime,
}

/// The unexpired session with this key hash and its owner (if it belongs to a user).
pub fn find_live(
    conn: &mut DbConnection,
    key_hash: &[u8],
    now: NaiveDateTime,
) -> QueryResult<Option<(SessionRow, Option<SessionOwner>)>> {
    // At most one row: key_hash is the primary key (and `first` would bind a LIMIT).
    on_backend!(conn, |backend| {
        sessions::table
            .left_join(users::table)
            .filter(sessions::key_hash.eq(key_hash))
            .filter(sessions::idle_expires_at.gt(now))
            .filter(sessions::absolute_expires_at.gt(now))
            .select((
                SessionRow::as_select(),
                (
                    users::role,
                    users::is_disabled,
                    diesel::dsl::exists(second_factors::table.filter(second_factors::user_id.eq(users::id))),
                )
                    .nullable(),
            ))
            .get_results(backend)
    })
    .map(|rows| rows.into_iter().next())
}

pub fn insert(conn: &mut DbConnection, row: &SessionInsert<'_>) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Replaces the state (and the user it belongs to) and pushes the idle expiry forward.
pub fn update_state(
    conn: &mut DbConnection,
    key_hash: &[u8],
    user_id: Option<DbId>,
    state: &str,
    now: NaiveDateTime,
    idle_expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(key_hash))
        .set((
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::refreshed_at.eq(now),
            sessions::idle_expires_at.eq(idle_expires_at),
        ))
        .execute(conn)
}

/// Pushes the idle expiry forward.
pub fn refresh(
    conn: &mut DbConnection,
    key_hash: &[u8],
    now: NaiveDateTime,
    idle_expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(key_hash))
        .set((
            sessions::refreshed_at.eq(now),
            sessions::idle_expires_at.eq(idle_expires_at),
        ))
        .execute(conn)
}

pub fn delete(conn: &mut DbConnection, key_hash: &[u8]) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(key_hash)).execute(conn)
}

/// Ends every session of a user, except `keep` (the one making the request) when given.
pub fn delete_for_user(conn: &mut DbConnection, user_id: DbId, keep: Option<&[u8]>) -> QueryResult<usize> {
    let mut query = diesel::delete(sessions::table)
        .filter(sessions::user_id.eq(user_id))
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(sessions::key_hash.ne(keep));
    }
    query.execute(conn)
}

pub fn purge_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table)
        .filter(
            sessions::idle_expires_at
                .le(now)
                .or(sessions::absolute_expires_at.le(now)),
        )
        .execute(conn)
}
