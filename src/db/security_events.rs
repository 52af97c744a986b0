//! The `security_events` table: what was done to an account and by whom (disabling, enabling,
//! an admin's password reset). Users read their own; admins read everyone's.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{security_events, users};
use super::sql_types::Stamp;
use super::{DbConnection, DbId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = security_events)]
pub struct EventRow {
    pub id: DbId,
    pub user_id: DbId,
    pub event: String,
    /// The admin who acted, while their account exists; `None` for the command line or once
    /// the admin was deleted (`actor` still names them).
    pub actor_id: Option<DbId>,
    /// Who acted, in words, as recorded at the time: an admin's e-mail or `the command line`.
    pub actor: String,
    pub sessions_ended: i64,
    pub tokens_revoked: i64,
    #[diesel(deserialize_as = Stamp)]
    pub occurred_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The user's own events, newest first.
pub fn list_for_user(conn: &mut DbConnection, user_id: DbId, limit: i64) -> QueryResult<Vec<EventRow>> {
    security_events::table
        .filter(security_events::user_id.eq(user_id))
        .order((security_events::occurred_at.desc(), security_events::id.desc()))
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
}

/// Everyone's events with the affected user's e-mail, newest first (for admins).
pub fn recent(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(EventRow, String)>> {
    security_events::table
        .inner_join(users::table)
        .order((security_events::occurred_at.desc(), security_events::id.desc()))
        .limit(limit)
        .select((EventRow::as_select(), users::email))
        .load(conn)
}
