//! The `auth_failures` table: failed logins and registrations, for rate limiting.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::auth_failures;
use super::{DbConnection, DbId};

pub fn record(conn: &mut DbConnection, account_key: &str, client_address: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(auth_failures::table)
        .values((
            auth_failures::id.eq(DbId(uuid::Uuid::now_v7())),
            auth_failures::account_key.eq(account_key),
            auth_failures::client_address.eq(client_address),
            auth_failures::failed_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Failures since `since`: for this (account, address) pair, and for this address in all.
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
