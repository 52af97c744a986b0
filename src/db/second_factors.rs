//! The `second_factors` table: one time-based one-time password per user, its secret sealed
//! (bound to the user), and the last time step accepted (replay protection).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::second_factors;
use super::sql_types::Stamp;
use super::{DbConnection, DbId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = second_factors)]
pub struct SecondFactorRow {
    pub user_id: DbId,
    pub secret_encrypted: Vec<u8>,
    pub key_id: String,
    pub last_used_step: i64,
    #[diesel(deserialize_as = Stamp)]
    pub enabled_at: NaiveDateTime,
}

/// The user's second factor, if they have one.
pub fn find(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Option<SecondFactorRow>> {
    second_factors::table
        .find(user_id)
        .select(SecondFactorRow::as_select())
        .first(conn)
        .optional()
}

pub fn exists(conn: &mut DbConnection, user_id: DbId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(second_factors::table.find(user_id))).get_result(conn)
}

pub fn insert(conn: &mut DbConnection, row: &SecondFactorRow) -> QueryResult<()> {
    diesel::insert_into(second_factors::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Records `step` as used, only if it is later than every step used before (compare-and-swap:
/// of two requests presenting the same code, exactly one wins). Returns whether it did.
pub fn advance_step(conn: &mut DbConnection, user_id: DbId, step: i64) -> QueryResult<bool> {
    diesel::update(
        second_factors::table
            .find(user_id)
            .filter(second_factors::last_used_step.lt(step)),
    )
    .set(second_factors::last_used_step.eq(step))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// Removes the user's second factor; returns whether there was one.
pub fn delete(conn: &mut DbConnection, user_id: DbId) -> QueryResult<bool> {
    diesel::delete(second_factors::table.find(user_id))
        .execute(conn)
        .map(|deleted| deleted == 1)
}

/// Every second factor (for rotation and copying; one row per user who turned it on).
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<SecondFactorRow>> {
    second_factors::table
        .select(SecondFactorRow::as_select())
        .order(second_factors::user_id)
        .load(conn)
}

/// Sealed secrets per master key id.
pub fn count_by_key_id(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    second_factors::table
        .group_by(second_factors::key_id)
        .select((second_factors::key_id, diesel::dsl::count_star()))
        .order(second_factors::key_id)
        .load(conn)
}

/// Replaces a sealed secret only where it is still `old` (rotation's compare-and-swap).
pub fn replace_sealed_secret(
    conn: &mut DbConnection,
    user_id: DbId,
    old: &[u8],
    new: &[u8],
    key_id: &str,
) -> QueryResult<bool> {
    diesel::update(
        second_factors::table
            .find(user_id)
            .filter(second_factors::secret_encrypted.eq(old)),
    )
    .set((
        second_factors::secret_encrypted.eq(new),
        second_factors::key_id.eq(key_id),
    ))
    .execute(conn)
    .map(|updated| updated == 1)
}

/// Whether the table exists yet (the start-up key check runs before migrations).
pub fn table_exists(conn: &mut DbConnection) -> QueryResult<bool> {
    super::migrations::table_exists(conn, "second_factors")
}
