//! The `login_challenges` table: the pending second step of a login whose password was right,
//! keyed by the SHA-256 of the random token the browser holds in a cookie.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::login_challenges;
use super::{DbConnection, DbId};

pub fn insert(conn: &mut DbConnection, token_hash: &[u8], user_id: DbId, expires_at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(login_challenges::table)
        .values((
            login_challenges::token_hash.eq(token_hash),
            login_challenges::user_id.eq(user_id),
            login_challenges::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The user of the unexpired challenge with this token hash.
pub fn find_live(conn: &mut DbConnection, token_hash: &[u8], now: NaiveDateTime) -> QueryResult<Option<DbId>> {
    login_challenges::table
        .find(token_hash)
        .filter(login_challenges::expires_at.gt(now))
        .select(login_challenges::user_id)
        .first(conn)
        .optional()
}

/// Ends a challenge (its second step succeeded); returns whether it was still there, so that
/// one challenge signs in at most once.
pub fn delete(conn: &mut DbConnection, token_hash: &[u8]) -> QueryResult<bool> {
    diesel::delete(login_challenges::table.find(token_hash))
        .execute(conn)
        .map(|deleted| deleted == 1)
}

pub fn purge_before(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_challenges::table.filter(login_challenges::expires_at.le(now))).execute(conn)
}
