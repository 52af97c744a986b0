//! The `single_sign_on_states` table: sign-ins begun and not yet come back, keyed by the
//! SHA-256 of their `state`, so that each callback is accepted at most once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::single_sign_on_states;

pub fn insert(conn: &mut DbConnection, state_hash: &[u8], expires_at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(single_sign_on_states::table)
        .values((
            single_sign_on_states::state_hash.eq(state_hash),
            single_sign_on_states::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Takes the unexpired state with this hash: `true` for exactly one caller.
pub fn take_live(conn: &mut DbConnection, state_hash: &[u8], now: NaiveDateTime) -> QueryResult<bool> {
    diesel::delete(
        single_sign_on_states::table
            .filter(single_sign_on_states::state_hash.eq(state_hash))
            .filter(single_sign_on_states::expires_at.gt(now)),
    )
    .execute(conn)
    .map(|deleted| deleted == 1)
}

pub fn purge_before(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(single_sign_on_states::table.filter(single_sign_on_states::expires_at.le(now))).execute(conn)
}
