//! Scheduled checks (monitoring.md): every connection is checked once per
//! `LANYARD_CHECK_INTERVAL` however many instances share the database, with the free test call
//! of [`connection_tests`](super::connection_tests), at most `LANYARD_CHECK_CONCURRENCY` at once
//! per instance. Instances take claims in the database (`db::connection_checks`); each check
//! runs on a tokio task of its own, its database work on the blocking pool like the rest, and
//! never on the request path's threads.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::crypto::MasterKeyring;
use crate::db::connection_checks::{self as store, CheckRow, Claim};
use crate::db::connections as connection_store;
use crate::db::{self, Database, DbConnection, DbError, DbId};
use crate::domain::{CheckRecord, CheckSchedule, CheckStatus, CheckTrigger, Owner, TestStatus};
use crate::egress::OutboundClient;
use crate::services::connection_tests::{TestOutcome, check_saved};
use crate::services::connections::{self, ConnectionError};
use crate::services::events;

/// How many checks `GET /api/connections/{id}/checks` shows.
pub const HISTORY_SHOWN: i64 = 50;
/// A claim lapses after 80 % of the interval (so that no two claims of a connection are closer
/// than that), and never sooner than this, so that a slow check is not taken over mid-way.
const MIN_CLAIM: Duration = Duration::from_secs(30);
/// How many unscheduled connections one pass schedules.
const SCHEDULE_BATCH: i64 = 500;

/// The running scheduler of this instance; stopping it (or dropping it) ends its checks, whose
/// claims then lapse for another instance to take.
pub struct Scheduler {
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts checking, unless `schedule` says checks are off.
    pub fn start(
        database: Database,
        keyring: Arc<MasterKeyring>,
        client: OutboundClient,
        schedule: CheckSchedule,
    ) -> Option<Scheduler> {
        let interval = schedule.interval?;
        let checker = Checker {
            database,
            keyring,
            client,
            interval,
        };
        let task = tokio::spawn(checker.run(schedule.concurrency));
        Some(Scheduler { task })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Checker {
    database: Database,
    keyring: Arc<MasterKeyring>,
    client: OutboundClient,
    interval: Duration,
}

impl Checker {
    async fn run(self, concurrency: usize) {
        // Looks for due connections ten times per interval (between 0.25 s and 5 s).
        let tick = (self.interval / 10).clamp(Duration::from_millis(250), Duration::from_secs(5));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut running = JoinSet::new();
        loop {
            ticker.tick().await;
            while running.try_join_next().is_some() {}
            let free = concurrency.saturating_sub(running.len());
            if free == 0 || !self.database.is_prepared() {
                continue;
            }
            let interval = self.interval;
            let claims = self
                .database
                .run(move |conn| claim(conn, db::now(), interval, free))
                .await;
            match claims {
                Ok(claims) => {
                    for claim in claims {
                        running.spawn(self.clone().check(claim));
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming scheduled checks failed"),
            }
        }
    }

    async fn check(self, claim: Claim) {
        let (owner, id) = (claim.owner, claim.id.0);
        let row = self
            .database
            .run(move |conn| connections::find_row(conn, owner, id))
            .await;
        let outcome = match row {
            Ok(row) => check_saved(&self.keyring, &self.client, &row).await,
            // Deleted since the claim: nothing to record.
            Err(ConnectionError::NotFound) => return,
            Err(error) => {
                tracing::warn!(%error, "reading a connection to check failed");
                return;
            }
        };
        if let Some(outcome) = &outcome {
            crate::metrics::record_check(outcome.check_status().as_str());
        }
        let interval = self.interval;
        let finished = self
            .database
            .run(move |conn| finish(conn, &claim, outcome.as_ref(), interval, db::now()))
            .await;
        if let Err(error) = finished {
            tracing::warn!(%error, "recording a scheduled check failed");
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Schedules what is unscheduled, then claims up to `limit` due connections.
fn claim(conn: &mut DbConnection, now: NaiveDateTime, interval: Duration, limit: usize) -> Result<Vec<Claim>, DbError> {
    if !store::anything_to_do(conn, now)? {
        return Ok(Vec::new());
    }
    let lapses = now + chrono_duration((interval * 4 / 5).max(MIN_CLAIM));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    db::write_transaction(conn, |conn| {
        for unscheduled in store::unscheduled(conn, SCHEDULE_BATCH)? {
            let since = unscheduled
                .tested_at
                .map_or(unscheduled.created_at, |tested| tested.max(unscheduled.created_at));
            let at = first_check_at(unscheduled.id.0, since, now, interval);
            store::schedule(conn, unscheduled.id, at)?;
        }
        Ok::<_, DbError>(store::claim_due(conn, now, lapses, limit)?)
    })
}

/// One interval after `since` (creation or the last test); when that has passed already (an
/// upgrade, or checks just switched on), somewhere in the next interval, spread by the id so
/// that many connections are not all checked at once.
fn first_check_at(id: Uuid, since: NaiveDateTime, now: NaiveDateTime, interval: Duration) -> NaiveDateTime {
    let due = since + chrono_duration(interval);
    if due > now {
        return due;
    }
    let span = interval.as_millis().max(1);
    let offset = u64::try_from(id.as_u128() % span).unwrap_or(0);
    now + chrono_duration(Duration::from_millis(offset))
}

/// When a connection checked in its slot `due_at` is next due: one interval after the slot, so
/// that checks do not drift, unless the check ran so late that this would come sooner than
/// 80 % of an interval after the claim; then one interval after the claim.
fn next_regular_check(claim: &Claim, interval: Duration) -> NaiveDateTime {
    let interval = chrono_duration(interval);
    let by_slot = claim.due_at + interval;
    if by_slot >= claim.claimed_at + interval * 4 / 5 {
        by_slot
    } else {
        claim.claimed_at + interval
    }
}

/// Records a scheduled check and ends its claim, and queues the events it caused in the same
/// transaction. A provider that gave no verdict (429, 5xx, no answer in time) changes no
/// status: the check is kept in the history and the connection backs off.
fn finish(
    conn: &mut DbConnection,
    claim: &Claim,
    outcome: Option<&TestOutcome>,
    interval: Duration,
    now: NaiveDateTime,
) -> Result<(), ConnectionError> {
    db::write_transaction(conn, |conn| {
        let status = outcome.map(TestOutcome::check_status);
        let (next, failures) = match status {
            Some(CheckStatus::Unavailable) => {
                let failures = claim.failures.saturating_add(1);
                let delay = CheckSchedule::backoff(interval, u32::try_from(failures).unwrap_or(u32::MAX));
                (now + chrono_duration(delay), failures)
            }
            _ => (next_regular_check(claim, interval), 0),
        };
        store::finish_claim(conn, claim, next, failures)?;
        let Some(outcome) = outcome else {
            return Ok(());
        };
        let before = events::Observation::read(conn, claim.owner, claim.id.0)?;
        record(conn, claim.id, CheckTrigger::Scheduled, outcome, now)?;
        if status != Some(CheckStatus::Unavailable) {
            connection_store::record_test_result(
                conn,
                claim.owner,
                claim.id,
                outcome.test_status(),
                outcome.code,
                Some(&outcome.message),
                outcome.latency_ms,
                now,
            )?;
            if let Some(catalogue) = outcome.catalogue.clone() {
                connections::store_catalogue(conn, claim.owner, claim.id.0, catalogue)?;
            }
        }
        if let Some(before) = before {
            events::after_check(conn, &before, outcome, now)?;
        }
        Ok(())
    })
}

fn record(
    conn: &mut DbConnection,
    id: DbId,
    trigger: CheckTrigger,
    outcome: &TestOutcome,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    store::record(
        conn,
        &CheckRow {
            id: DbId(Uuid::now_v7()),
            connection_id: id,
            checked_at: at,
            trigger,
            status: outcome.check_status(),
            code: outcome.code.to_owned(),
            latency_ms: outcome.latency_ms,
        },
    )?;
    Ok(())
}

/// A manual test of `owner`'s connection `id`: kept in its history, and its next scheduled
/// check is one interval from now.
pub fn record_manual(conn: &mut DbConnection, owner: Owner, id: Uuid, outcome: &TestOutcome) -> Result<(), DbError> {
    record(conn, DbId(id), CheckTrigger::Manual, outcome, db::now())?;
    store::unschedule(conn, owner, DbId(id))?;
    Ok(())
}

/// The latest checks of a connection the caller may see, newest first.
pub fn history(conn: &mut DbConnection, caller: Uuid, id: Uuid) -> Result<Vec<CheckRecord>, ConnectionError> {
    let (row, _) = connections::find_visible_row(conn, caller, id)?;
    let owner = row.owner().ok_or(ConnectionError::NotFound)?;
    Ok(store::recent(conn, owner, DbId(id), HISTORY_SHOWN)?
        .into_iter()
        .map(CheckRecord::from)
        .collect())
}

/// Publishes how many connections are `ok`, `failing` and `unchecked` to the metrics.
pub fn publish_connection_counts(conn: &mut DbConnection) -> Result<(), DbError> {
    let (mut ok, mut failing, mut unchecked) = (0, 0, 0);
    for (status, count) in store::count_by_status(conn)? {
        match status {
            TestStatus::Ok => ok += count,
            TestStatus::Failed => failing += count,
            TestStatus::Untested => unchecked += count,
        }
    }
    crate::metrics::set_connections(ok, failing, unchecked);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .map(|at| at.naive_utc())
            .unwrap_or_default()
    }

    fn claim(due: i64, claimed: i64) -> Claim {
        Claim {
            id: DbId(Uuid::nil()),
            owner: Owner::User(Uuid::nil()),
            due_at: at(due),
            claimed_at: at(claimed),
            failures: 0,
        }
    }

    #[test]
    fn checks_keep_to_their_slots_and_never_come_closer_than_four_fifths() {
        let five = Duration::from_secs(5);
        assert_eq!(next_regular_check(&claim(0, 0), five), at(5));
        assert_eq!(
            next_regular_check(&claim(0, 1), five),
            at(5),
            "a late claim does not drift"
        );
        assert_eq!(next_regular_check(&claim(0, 2), five), at(7), "but keeps 80 % apart");
    }

    #[test]
    fn the_first_check_is_one_interval_after_creation_or_spread_when_that_passed() {
        let hour = Duration::from_secs(3600);
        let id = Uuid::new_v4();
        assert_eq!(first_check_at(id, at(0), at(10), hour), at(3600));
        let spread = first_check_at(id, at(0), at(7200), hour);
        assert!(spread >= at(7200) && spread < at(7200 + 3600), "{spread}");
    }
}
