//! The `master_key_canaries` table: one sealed known value per master key id.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::master_key_canaries;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = master_key_canaries)]
pub struct CanaryRow {
    pub key_id: String,
    pub canary: Vec<u8>,
    pub created_at: NaiveDateTime,
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<CanaryRow>> {
    master_key_canaries::table
        .order(master_key_canaries::key_id)
        .select(CanaryRow::as_select())
        .load(conn)
}

/// Inside a write transaction: makes instances that record canaries at the same moment take
/// turns, so that each sees what the others recorded. SQLite's `IMMEDIATE` transactions already
/// serialise writers; PostgreSQL needs a lock that conflicts with itself (reads stay allowed).
pub fn lock_for_recording(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => diesel::sql_query("LOCK TABLE master_key_canaries IN SHARE ROW EXCLUSIVE MODE")
            .execute(pg)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

pub fn insert(conn: &mut DbConnection, row: &CanaryRow) -> QueryResult<()> {
    diesel::insert_into(master_key_canaries::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}
