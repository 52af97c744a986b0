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

pub fn insert(conn: &mut DbConnection, row: &CanaryRow) -> QueryResult<()> {
    diesel::insert_into(master_key_canaries::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}
