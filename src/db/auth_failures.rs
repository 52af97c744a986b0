//! The `auth_failures` table: password attempts that count against the login limits (failed
//! logins, wrong current passwords, registration attempts), for rate limiting.
//!
//! An attempt is recorded *before* its password is judged, inside the transaction that counted
//! the earlier ones, so that concurrent attempts cannot all see room for one more; an attempt
//! that turns out right is deleted again (see `services::accounts`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::auth_failures;
use super::{DbConnection, DbId};

/// Records an attempt and returns its id (to delete it should the password be right).
pub fn record(
    conn: &mut DbConnection,
    account_key: &str,
    client_address: &str,
    now: NaiveDateTime,
) -> QueryResult<DbId> {
    let id = DbId(uuid::Uuid::now_v7());
    diesel::insert_into(auth_failures::table)
        .values((
            auth_failures::id.eq(id),
            auth_failures::account_key.eq(account_key),
            auth_failures::client_address.eq(client_address),
            auth_failures::failed_at.eq(now),
        ))
        .execute(conn)
        .map(|_| id)
}

/// Takes turns with every other transaction counting attempts from `client_address`, until the
/// transaction ends. PostgreSQL: an advisory lock on a hash of the address (computed by the server) (the address has no
/// row of its own to lock, and read-committed transactions would otherwise both count 9 and
/// both insert); SQLite's `IMMEDIATE` write transactions already serialise every writer. The
/// per-(account, address) count is a subset of the per-address one, so one lock covers both.
pub fn lock_client_address(conn: &mut DbConnection, client_address: &str) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(format!("lanyard:auth_failures:{client_address}"))
            .execute(pg)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Deletes one recorded attempt (its password was right).
pub fn delete(conn: &mut DbConnection, id: DbId) -> QueryResult<usize> {
    diesel::delete(auth_failures::table.find(id)).execute(conn)
}

/// Attempts since `since`: for this (account, address) pair, and for this address in all.
pub fn count_since(
    conn: &mut DbConnection,
    account_key: &str,
    client_address: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, i64, Option<NaiveDateTime>)> {
    let recent = auth_failures::table
        .filter(auth_failures::client_address.eq(client_address))
        .filter(auth_failures::failed_at.gt(since));
    let by_address: i64 = recent.count().get_result(conn)?;
    let by_pair: i64 = recent
        .filter(auth_failures::account_key.eq(account_key))
        .count()
        .get_result(conn)?;
    let oldest: Option<NaiveDateTime> = recent.select(diesel::dsl::min(auth_failures::failed_at)).first(conn)?;
    Ok((by_pair, by_address, oldest))
}

pub fn purge_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(auth_failures::table.filter(auth_failures::failed_at.le(before))).execute(conn)
}
