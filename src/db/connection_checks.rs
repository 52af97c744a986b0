//! Scheduled checks in the database: when each connection is next due (`connections`'
//! `next_check_at`, `check_claimed_at`, `check_failures`), the claims instances take on due
//! connections, and the history of checks (`connection_checks`). The claim is the only thing
//! that decides which instance checks what: no instance-local timer decides alone.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::connection_checks as checks;
use super::schema::connections as cn;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId};
use crate::domain::{CheckRecord, CheckStatus, CheckTrigger, Owner, TestStatus};

/// How many checks each connection keeps in its history.
pub const HISTORY_KEPT: i64 = 200;

/// One history row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = checks)]
pub struct CheckRow {
    pub id: DbId,
    pub connection_id: DbId,
    #[diesel(deserialize_as = Stamp)]
    pub checked_at: NaiveDateTime,
    pub trigger: CheckTrigger,
    pub status: CheckStatus,
    pub code: String,
    pub latency_ms: Option<i64>,
}

impl From<CheckRow> for CheckRecord {
    fn from(row: CheckRow) -> Self {
        CheckRecord {
            checked_at: row.checked_at,
            trigger: row.trigger,
            status: row.status,
            code: row.code,
            latency_ms: row.latency_ms,
        }
    }
}

/// A connection not scheduled yet, with what its first check is counted from.
#[derive(Debug, Clone, Queryable)]
pub struct Unscheduled {
    pub id: DbId,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub tested_at: Option<NaiveDateTime>,
}

/// Up to `limit` connections that have no `next_check_at` yet.
pub fn unscheduled(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Unscheduled>> {
    cn::table
        .filter(cn::next_check_at.is_null())
        .order(cn::id)
        .limit(limit)
        .select((cn::id, cn::created_at, cn::tested_at))
        .load(conn)
}

/// Schedules a connection that is still unscheduled (a concurrent schedule wins as it is).
pub fn schedule(conn: &mut DbConnection, id: DbId, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(cn::table.filter(cn::id.eq(id)).filter(cn::next_check_at.is_null()))
        .set(cn::next_check_at.eq(at))
        .execute(conn)
        .map(|_| ())
}

/// Whether any connection is due at `now` or waits to be scheduled (a read, so that an idle
/// instance takes no write lock).
pub fn anything_to_do(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<bool> {
    cn::table
        .filter(cn::next_check_at.is_null().or(cn::next_check_at.le(now)))
        .select(cn::id)
        .first::<DbId>(conn)
        .optional()
        .map(|found| found.is_some())
}

/// A connection this instance claimed: check it, then [`finish_claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: DbId,
    pub owner: Owner,
    /// When it was due (the slot its next check is counted from).
    pub due_at: NaiveDateTime,
    pub claimed_at: NaiveDateTime,
    /// Answers in a row that gave no verdict (for the back-off).
    pub failures: i64,
}

/// Claims up to `limit` connections due at `now`, oldest first: each one's `next_check_at`
/// becomes `expires` (the claim lapses then if this instance never finishes it) and
/// `check_claimed_at` is `now`. Call inside a write transaction: on PostgreSQL the due rows are
/// locked with `SKIP LOCKED`, so that instances claiming at once take different connections;
/// SQLite's immediate transaction admits one claimer at a time.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    expires: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Claim>> {
    type Due = (DbId, Option<DbId>, Option<DbId>, Option<NaiveDateTime>, i64);
    let due = cn::table
        .filter(cn::next_check_at.le(now))
        .order(cn::next_check_at)
        .limit(limit)
        .select((
            cn::id,
            cn::owner_user_id,
            cn::organisation_id,
            cn::next_check_at,
            cn::check_failures,
        ));
    let rows: Vec<Due> = match conn {
        DbConnection::Postgres(pg) => due.for_update().skip_locked().load(pg)?,
        DbConnection::Sqlite(sqlite) => due
            .load::<(DbId, Option<DbId>, Option<DbId>, MaybeStamp, i64)>(sqlite)?
            .into_iter()
            .map(|(id, user, organisation, at, failures)| (id, user, organisation, at.into(), failures))
            .collect(),
    };
    let mut claims = Vec::with_capacity(rows.len());
    for (id, user, organisation, due_at, failures) in rows {
        let Some(owner) = Owner::from_columns(user.map(|id| id.0), organisation.map(|id| id.0)) else {
            continue;
        };
        diesel::update(cn::table.filter(cn::id.eq(id)))
            .set((cn::next_check_at.eq(expires), cn::check_claimed_at.eq(now)))
            .execute(conn)?;
        claims.push(Claim {
            id,
            owner,
            due_at: due_at.unwrap_or(now),
            claimed_at: now,
            failures,
        });
    }
    Ok(claims)
}

/// Ends a claim: the connection is next due at `next_check_at`, with `failures` answers in a
/// row without a verdict. Only the claim's holder finishes it: a claim that lapsed and was
/// taken again by another instance is left to that one (returns `false`).
pub fn finish_claim(
    conn: &mut DbConnection,
    claim: &Claim,
    next_check_at: NaiveDateTime,
    failures: i64,
) -> QueryResult<bool> {
    diesel::update(
        cn::table
            .filter(cn::id.eq(claim.id))
            .filter(cn::check_claimed_at.eq(claim.claimed_at)),
    )
    .set((
        cn::next_check_at.eq(next_check_at),
        cn::check_claimed_at.eq(None::<NaiveDateTime>),
        cn::check_failures.eq(failures),
    ))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// After a manual test the next scheduled check is one interval later: the connection goes
/// back to unscheduled (unless a scheduled check of it is running, which reschedules it).
pub fn unschedule(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<()> {
    diesel::update(
        cn::table
            .filter(cn::id.eq(id))
            .filter(super::connections::owned_by(owner))
            .filter(cn::check_claimed_at.is_null()),
    )
    .set((
        cn::next_check_at.eq(None::<NaiveDateTime>),
        cn::check_failures.eq(0_i64),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Adds a check to a connection's history and forgets all but its latest [`HISTORY_KEPT`].
pub fn record(conn: &mut DbConnection, row: &CheckRow) -> QueryResult<()> {
    diesel::insert_into(checks::table).values(row).execute(conn)?;
    let oldest_kept: Option<NaiveDateTime> = checks::table
        .filter(checks::connection_id.eq(row.connection_id))
        .order((checks::checked_at.desc(), checks::id.desc()))
        .offset(HISTORY_KEPT - 1)
        .select(checks::checked_at)
        .first::<Stamp>(conn)
        .optional()?
        .map(Into::into);
    if let Some(oldest_kept) = oldest_kept {
        diesel::delete(
            checks::table
                .filter(checks::connection_id.eq(row.connection_id))
                .filter(checks::checked_at.lt(oldest_kept)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The owner's connection's latest `limit` checks, newest first.
pub fn recent(conn: &mut DbConnection, owner: Owner, id: DbId, limit: i64) -> QueryResult<Vec<CheckRow>> {
    checks::table
        .inner_join(cn::table)
        .filter(super::connections::owned_by(owner))
        .filter(checks::connection_id.eq(id))
        .order((checks::checked_at.desc(), checks::id.desc()))
        .limit(limit)
        .select(CheckRow::as_select())
        .load(conn)
}

/// Every history row, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<CheckRow>> {
    checks::table.order(checks::id).select(CheckRow::as_select()).load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &CheckRow) -> QueryResult<()> {
    diesel::insert_into(checks::table).values(row).execute(conn).map(|_| ())
}

/// How many connections have each test status.
pub fn count_by_status(conn: &mut DbConnection) -> QueryResult<Vec<(TestStatus, i64)>> {
    cn::table
        .group_by(cn::test_status)
        .select((cn::test_status, diesel::dsl::count_star()))
        .load(conn)
}
