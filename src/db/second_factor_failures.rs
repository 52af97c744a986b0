//! The `second_factor_failures` table: second-factor codes tried against an account, from every
//! address together, for the per-account limit. Like `auth_failures`, an attempt is recorded
//! before its code is judged (inside the transaction that counted the earlier ones) and deleted
//! again when the code was right.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::second_factor_failures;
use super::{DbConnection, DbId};

pub fn record(conn: &mut DbConnection, user_id: DbId, now: NaiveDateTime) -> QueryResult<DbId> {
    let id = DbId(uuid::Uuid::now_v7());
    diesel::insert_into(second_factor_failures::table)
        .values((
            second_factor_failures::id.eq(id),
            second_factor_failures::user_id.eq(user_id),
            second_factor_failures::failed_at.eq(now),
        ))
        .execute(conn)
        .map(|_| id)
}

/// Takes turns with every other transaction counting codes for this account (PostgreSQL: an
/// advisory lock on the account; SQLite's write transactions already serialise writers).
pub fn lock_account(conn: &mut DbConnection, user_id: DbId) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(format!("lanyard:second_factor_failures:{}", user_id.0))
            .execute(pg)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Attempts for this account since `since`, and the oldest of them.
pub fn count_since(
    conn: &mut DbConnection,
    user_id: DbId,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let recent = second_factor_failures::table
        .filter(second_factor_failures::user_id.eq(user_id))
        .filter(second_factor_failures::failed_at.gt(since));
    let count: i64 = recent.count().get_result(conn)?;
    let oldest: Option<NaiveDateTime> = recent
        .select(diesel::dsl::min(second_factor_failures::failed_at))
        .first(conn)?;
    Ok((count, oldest))
}

pub fn delete(conn: &mut DbConnection, id: DbId) -> QueryResult<usize> {
    diesel::delete(second_factor_failures::table.find(id)).execute(conn)
}

pub fn purge_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(second_factor_failures::table.filter(second_factor_failures::failed_at.le(before))).execute(conn)
}
