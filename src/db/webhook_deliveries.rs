//! The `webhook_deliveries` table: the outbox. An event is written here, one row per webhook
//! that wants it, in the same transaction as the check that caused it; the delivery worker of
//! any instance claims due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the immediate
//! transaction on SQLite), so that one instance at a time attempts each.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::webhook_deliveries as dl;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId};
use crate::domain::{DeliveryState, EventType};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dl)]
pub struct DeliveryRow {
    pub id: DbId,
    pub webhook_id: DbId,
    pub event_id: String,
    pub event_type: EventType,
    /// The exact bytes every attempt sends.
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
    pub state: DeliveryState,
    #[diesel(deserialize_as = MaybeStamp)]
    pub next_attempt_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub claimed_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &DeliveryRow) -> QueryResult<()> {
    diesel::insert_into(dl::table).values(row).execute(conn).map(|_| ())
}

/// Whether any delivery is due at `now` (a read, so that an idle instance takes no write lock).
pub fn anything_due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<bool> {
    dl::table
        .filter(dl::state.eq(DeliveryState::Pending))
        .filter(dl::next_attempt_at.le(now))
        .select(dl::id)
        .first::<DbId>(conn)
        .optional()
        .map(|found| found.is_some())
}

/// Claims up to `limit` deliveries due at `now`, oldest first: each one's `next_attempt_at`
/// becomes `lapses` (another instance takes it then if this one never finishes it) and
/// `claimed_at` is `now`. Call inside a write transaction.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lapses: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let due = dl::table
        .filter(dl::state.eq(DeliveryState::Pending))
        .filter(dl::next_attempt_at.le(now))
        .order(dl::next_attempt_at)
        .limit(limit)
        .select(dl::id);
    // Locked on PostgreSQL (instances claiming at once take different rows); SQLite's
    // immediate transaction admits one claimer at a time.
    let ids: Vec<DbId> = match conn {
        DbConnection::Postgres(pg) => due.for_update().skip_locked().load(pg)?,
        DbConnection::Sqlite(sqlite) => due.load(sqlite)?,
    };
    let mut rows: Vec<DeliveryRow> = dl::table
        .filter(dl::id.eq_any(&ids))
        .order(dl::next_attempt_at)
        .select(DeliveryRow::as_select())
        .load(conn)?;
    for row in &mut rows {
        diesel::update(dl::table.filter(dl::id.eq(row.id)))
            .set((dl::next_attempt_at.eq(lapses), dl::claimed_at.eq(now)))
            .execute(conn)?;
        row.claimed_at = Some(now);
    }
    Ok(rows)
}

/// Ends a claim: the delivery is `state` after `attempts` attempts, next due at `next` (while
/// pending). Only the claim's holder finishes it (`false` when it lapsed and another took it).
pub fn finish(
    conn: &mut DbConnection,
    claim: &DeliveryRow,
    state: DeliveryState,
    attempts: i64,
    next: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    diesel::update(
        dl::table
            .filter(dl::id.eq(claim.id))
            .filter(dl::claimed_at.eq(claim.claimed_at)),
    )
    .set((
        dl::state.eq(state),
        dl::attempts.eq(attempts),
        dl::next_attempt_at.eq(next),
        dl::claimed_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// Forgets finished deliveries created before `before` (their attempts stay in the log).
pub fn purge_finished(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        dl::table
            .filter(dl::state.ne(DeliveryState::Pending))
            .filter(dl::created_at.lt(before)),
    )
    .execute(conn)
}

/// Every delivery, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<DeliveryRow>> {
    dl::table.order(dl::id).select(DeliveryRow::as_select()).load(conn)
}
