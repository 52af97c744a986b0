//! The `webhook_attempts` table: every attempt at a delivery, what the receiver answered or why
//! there was no answer. Each webhook keeps its latest few hundred.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::webhook_attempts as at;
use super::schema::webhooks as wh;
use super::sql_types::Stamp;
use super::webhooks::owned_by;
use super::{DbConnection, DbId};
use crate::domain::{EventType, Owner};

/// How many attempts each webhook keeps in its log.
pub const KEPT: i64 = 300;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = at)]
pub struct AttemptRow {
    pub id: DbId,
    pub webhook_id: DbId,
    pub delivery_id: DbId,
    pub event_id: String,
    pub event_type: EventType,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    #[diesel(deserialize_as = Stamp)]
    pub attempted_at: NaiveDateTime,
}

/// Logs an attempt and forgets all but the webhook's latest [`KEPT`].
pub fn record(conn: &mut DbConnection, row: &AttemptRow) -> QueryResult<()> {
    diesel::insert_into(at::table).values(row).execute(conn)?;
    let oldest_kept: Option<NaiveDateTime> = at::table
        .filter(at::webhook_id.eq(row.webhook_id))
        .order((at::attempted_at.desc(), at::id.desc()))
        .offset(KEPT - 1)
        .select(at::attempted_at)
        .first::<Stamp>(conn)
        .optional()?
        .map(Into::into);
    if let Some(oldest_kept) = oldest_kept {
        diesel::delete(
            at::table
                .filter(at::webhook_id.eq(row.webhook_id))
                .filter(at::attempted_at.lt(oldest_kept)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The owner's webhook's latest `limit` attempts, newest first.
pub fn recent(conn: &mut DbConnection, owner: Owner, webhook: DbId, limit: i64) -> QueryResult<Vec<AttemptRow>> {
    at::table
        .inner_join(wh::table)
        .filter(at::webhook_id.eq(webhook))
        .filter(owned_by(owner))
        .order((at::attempted_at.desc(), at::id.desc()))
        .limit(limit)
        .select(AttemptRow::as_select())
        .load(conn)
}

/// Every attempt, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<AttemptRow>> {
    at::table.order(at::id).select(AttemptRow::as_select()).load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &AttemptRow) -> QueryResult<()> {
    diesel::insert_into(at::table).values(row).execute(conn).map(|_| ())
}
