//! The `key_reveals` table: the audit of every key handed out by `GET /api/resolve`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{key_reveals, users};
use super::{DbConnection, DbId, on_backend};

/// Many audit lines in one statement (resolve's group commits).
pub fn insert_many(conn: &mut DbConnection, rows: &[RevealRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    on_backend!(conn, |backend| diesel::insert_into(key_reveals::table)
        .values(rows)
        .execute(backend)
        .map(|_| ()))
}

/// One stored audit line.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_reveals)]
pub struct RevealRow {
    pub id: DbId,
    pub user_id: DbId,
    pub token_id: Option<DbId>,
    pub configuration_id: Option<DbId>,
    pub configuration_name: String,
    pub conversation_id: Option<String>,
    pub source: String,
    pub revealed_at: NaiveDateTime,
}

/// The latest audit lines, each with the user's email (for admins).
pub fn recent(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(RevealRow, String)>> {
    key_reveals::table
        .inner_join(users::table)
        .order((key_reveals::revealed_at.desc(), key_reveals::id.desc()))
        .limit(limit)
        .select((RevealRow::as_select(), users::email))
        .load(conn)
}
