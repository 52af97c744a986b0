//! Resolve's writes in group commits: the use counters and the reveal audit of many resolves
//! share one transaction, written by one thread of their own, and each resolve's answer leaves
//! only once the commit that holds its rows has returned, so no key leaves without its audit line.
//!
//! A transaction per resolve made resolves queue for SQLite's one write lock (and pay a commit
//! each on PostgreSQL); here a resolve that arrives while a commit runs simply joins the next one.
//! Nothing waits on purpose: a lone resolve commits at once, a crowd shares the cost.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::NaiveDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::db::key_reveals::RevealRow;
use crate::db::organisation_reveals::OrganisationRevealRow;
use crate::db::{self, Database, DbConnection, DbError, DbId, key_reveals, llm_configurations, organisation_reveals};
use crate::domain::Owner;

/// Resolves waiting for a commit, at most; beyond, a resolve waits for room (back-pressure).
const QUEUE_CAPACITY: usize = 4096;

/// Resolves per commit, at most: enough to carry any burst, small enough that one commit's
/// statements stay well inside the backends' limits on bound parameters.
const MOST_PER_COMMIT: usize = 256;

/// What one resolve writes.
#[derive(Debug)]
pub enum Entry {
    /// A key handed out.
    Reveal(Box<Reveal>),
    /// A conditional resolve answered 304: `last_used_at` refreshed, unless it was refreshed
    /// since `not_since`.
    Touch {
        configuration: ConfigurationUse,
        not_since: NaiveDateTime,
    },
}

/// A key handed out: the configuration's use (none for the instance fallback) and the audit
/// lines.
#[derive(Debug)]
pub struct Reveal {
    pub configuration: Option<ConfigurationUse>,
    pub audit: RevealRow,
    pub organisation_audit: Option<OrganisationRevealRow>,
}

/// A configuration and its owner (each write is scoped by it), and when it was used.
#[derive(Debug, Clone, Copy)]
pub struct ConfigurationUse {
    pub id: DbId,
    pub owner: Owner,
    pub at: NaiveDateTime,
}

/// What the commit tells a resolve: the configuration's use count including its own use (as if
/// the resolves of one commit had run one after another), when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub use_count: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the resolve journal is not running")]
    Stopped,
    #[error("the resolve could not be recorded: {0}")]
    Failed(String),
}

struct Request {
    entry: Entry,
    done: oneshot::Sender<Result<Recorded, JournalError>>,
}

/// The door to the journal's thread; cheap to clone. The thread ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct ResolveJournal {
    sender: mpsc::Sender<Request>,
}

impl ResolveJournal {
    /// Starts the thread that writes for `database`. It draws a connection from the pool for each
    /// commit, so that a lost connection is replaced like any other.
    pub fn start(database: Database) -> std::io::Result<ResolveJournal> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("resolve-journal".into())
            .spawn(move || write_until_closed(&database, receiver))?;
        Ok(ResolveJournal { sender })
    }

    /// Hands `entry` to the next commit and waits (without a thread or a connection) until it is
    /// committed.
    pub async fn record(&self, entry: Entry) -> Result<Recorded, JournalError> {
        let (done, committed) = oneshot::channel();
        self.sender
            .send(Request { entry, done })
            .await
            .map_err(|_| JournalError::Stopped)?;
        committed.await.map_err(|_| JournalError::Stopped)?
    }
}

fn write_until_closed(database: &Database, mut receiver: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MOST_PER_COMMIT);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MOST_PER_COMMIT {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // A panic fails this batch's resolves (their senders are dropped), not every later one.
        if catch_unwind(AssertUnwindSafe(|| commit_and_answer(database, &mut batch))).is_err() {
            tracing::error!("the resolve journal's commit panicked");
        }
        batch.clear();
    }
}

/// Commits the batch and answers each of its resolves. When the batch fails, each resolve is
/// tried alone, so that one bad entry (its user deleted meanwhile, say) fails only itself.
fn commit_and_answer(database: &Database, batch: &mut Vec<Request>) {
    let entries: Vec<&Entry> = batch.iter().map(|request| &request.entry).collect();
    match write(database, &entries) {
        Ok(recorded) => {
            for (request, recorded) in batch.drain(..).zip(recorded) {
                // A resolve whose client went away is recorded all the same.
                let _ = request.done.send(Ok(recorded));
            }
        }
        Err(error) if batch.len() == 1 => {
            tracing::error!(%error, "recording a resolve failed");
            for request in batch.drain(..) {
                let _ = request.done.send(Err(JournalError::Failed(error.to_string())));
            }
        }
        Err(error) => {
            tracing::warn!(%error, resolves = batch.len(), "a group commit failed: recording each resolve alone");
            for request in batch.drain(..) {
                let alone = write(database, &[&request.entry]).map(|mut recorded| recorded.remove(0));
                if let Err(error) = &alone {
                    tracing::error!(%error, "recording a resolve failed");
                }
                let _ = request
                    .done
                    .send(alone.map_err(|error| JournalError::Failed(error.to_string())));
            }
        }
    }
}

/// Writes `entries` in one transaction; one `Recorded` per entry, in order.
fn write(database: &Database, entries: &[&Entry]) -> Result<Vec<Recorded>, DbError> {
    let mut conn = database.connection()?;
    let written = db::durable_write_transaction(&mut conn, |conn| write_entries(conn, entries));
    if written.is_err() {
        database.discard_if_lost(&mut conn);
    }
    written
}

fn write_entries(conn: &mut DbConnection, entries: &[&Entry]) -> Result<Vec<Recorded>, DbError> {
    // Uses per configuration, in the order they arrived: one statement per configuration.
    let mut uses: Vec<(ConfigurationUse, i64)> = Vec::new();
    let mut index_of: HashMap<DbId, usize> = HashMap::new();
    let mut audit = Vec::new();
    let mut organisation_audit = Vec::new();
    for entry in entries {
        match entry {
            Entry::Reveal(reveal) => {
                let Reveal {
                    configuration,
                    audit: line,
                    organisation_audit: organisation_line,
                } = reveal.as_ref();
                if let Some(used) = configuration {
                    let index = *index_of.entry(used.id).or_insert_with(|| {
                        uses.push((*used, 0));
                        uses.len() - 1
                    });
                    let (latest, count) = &mut uses[index];
                    *count += 1;
                    latest.at = latest.at.max(used.at);
                }
                audit.push(line.clone());
                organisation_audit.extend(organisation_line.iter().cloned());
            }
            Entry::Touch { .. } => {}
        }
    }
    let mut counted: HashMap<DbId, Option<i64>> = HashMap::with_capacity(uses.len());
    for (used, count) in &uses {
        let after = llm_configurations::record_uses(conn, used.owner, used.id, *count, used.at)?;
        // The first of this commit's uses of the configuration counts from the count before it.
        counted.insert(used.id, after.map(|after| after - count));
    }
    key_reveals::insert_many(conn, &audit)?;
    organisation_reveals::insert_many(conn, &organisation_audit)?;
    for entry in entries {
        if let Entry::Touch {
            configuration,
            not_since,
        } = entry
        {
            llm_configurations::touch_last_used(
                conn,
                configuration.owner,
                configuration.id,
                configuration.at,
                *not_since,
            )?;
        }
    }
    Ok(entries
        .iter()
        .map(|entry| {
            let used = match entry {
                Entry::Reveal(reveal) => reveal.configuration.as_ref(),
                Entry::Touch { .. } => None,
            };
            let use_count = used.and_then(|used| {
                let before = counted.get_mut(&used.id)?.as_mut()?;
                *before += 1;
                Some(*before)
            });
            Recorded { use_count }
        })
        .collect())
}
