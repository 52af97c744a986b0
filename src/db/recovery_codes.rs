//! The `recovery_codes` table: a second factor's single-use recovery codes, as digests.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::recovery_codes;
use super::sql_types::MaybeStamp;
use super::{DbConnection, DbId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_codes)]
pub struct RecoveryCodeRow {
    pub id: DbId,
    pub user_id: DbId,
    pub code_hash: Vec<u8>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub used_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &RecoveryCodeRow) -> QueryResult<()> {
    diesel::insert_into(recovery_codes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Marks the user's unused code with this digest used; returns whether there was one (so that
/// of two requests with the same code, exactly one succeeds).
pub fn use_code(conn: &mut DbConnection, user_id: DbId, code_hash: &[u8], now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(conn)
    .map(|updated| updated >= 1)
}

/// How many of the user's codes are still unused.
pub fn count_unused(conn: &mut DbConnection, user_id: DbId) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

pub fn delete_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<usize> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)
}

/// Every code (for copying).
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<RecoveryCodeRow>> {
    recovery_codes::table
        .select(RecoveryCodeRow::as_select())
        .order(recovery_codes::id)
        .load(conn)
}
