//! Persistence: the connection enum over SQLite and PostgreSQL, the pool, migrations, and one
//! module per table holding its queries. Nothing outside this module writes SQL.

pub mod api_tokens;
pub mod auth_failures;
pub mod connection_checks;
pub mod connections;
pub mod conversation_overrides;
pub mod copy;
pub mod instance_settings;
pub mod invitations;
pub mod key_reveals;
pub mod llm_configurations;
pub mod login_challenges;
pub mod master_key_canaries;
pub mod memberships;
pub mod migrations;
pub mod organisation_reveals;
pub mod organisations;
pub mod provider_test_runs;
pub mod recovery_codes;
pub mod resolve_feed;
pub mod schema;
pub mod second_factor_failures;
pub mod second_factors;
pub mod security_events;
pub mod service_tokens;
pub mod sessions;
pub mod single_sign_on_states;
pub mod sql_types;
pub mod user_defaults;
pub mod users;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::Error as DieselError;

pub use migrations::run_pending_migrations;
pub use sql_types::DbId;

/// One connection to whichever database the URL names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Runs a query on the concrete backend connection instead of through [`DbConnection`], for
/// the queries every request makes (finding the token or session, listing configurations).
///
/// diesel's multi-backend connection renders a query's SQL text again on every execution (to
/// decide whether the cached statement may be reused and to collect its binds), which cost
/// about a tenth of a listing's CPU; the concrete connections find their cached statement by
/// the query's type. The body is compiled once per backend, so it must be backend-generic
/// diesel code.
macro_rules! on_backend {
    ($conn:expr, |$backend:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($backend) => $body,
            $crate::db::DbConnection::Sqlite($backend) => $body,
        }
    };
}
pub(crate) use on_backend;

/// The pool every request and command draws from.
pub type DbPool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Which backend a `DATABASE_URL` names, decided by its scheme alone.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

/// Never prints a PostgreSQL password (settings and errors may be debug-printed).
impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            DatabaseUrl::Postgres(raw) => {
                let shown = match url::Url::parse(raw) {
                    Ok(mut url) if url.password().is_some() => {
                        let _ = url.set_password(Some("[redacted]"));
                        url.to_string()
                    }
                    Ok(url) => url.to_string(),
                    Err(_) => "[unparsable URL]".to_owned(),
                };
                f.debug_tuple("Postgres").field(&shown).finish()
            }
        }
    }
}

impl DatabaseUrl {
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `postgres://…` or `postgresql://…`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(raw.to_owned()))
        } else if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("DATABASE_URL `sqlite://` needs a file path, e.g. sqlite://lanyard-data/lanyard.db".into());
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else {
            Err("DATABASE_URL must start with sqlite://, postgres:// or postgresql://".into())
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

/// Opens connections by the URL's scheme, so that an unreachable PostgreSQL reports its real
/// error (diesel's derived `establish` would try every backend and hide it).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

/// Run on every new SQLite connection.
const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url).map(DbConnection::Postgres),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers proceed while one writer writes; NORMAL is durable in WAL mode
                // except for the last transactions before a power loss.
                // `batch_execute`, not `sql_query`: a prepared statement runs only the first of
                // several statements, and these settings were once silently lost that way.
                conn.batch_execute(SQLITE_CONNECTION_PRAGMAS)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Postgres(pg) => diesel::r2d2::R2D2Connection::is_broken(pg),
            DbConnection::Sqlite(sqlite) => diesel::r2d2::R2D2Connection::is_broken(sqlite),
        }
    }
}

/// Builds the pool without connecting: the application can start while the database is down
/// and become ready when it answers.
pub fn build_pool(url: &DatabaseUrl, max_size: u32) -> Result<DbPool, std::io::Error> {
    if let DatabaseUrl::Sqlite(path) = url
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    Ok(r2d2::Pool::builder()
        .max_size(max_size)
        // No idle connections kept in reserve: r2d2 would open them on its own threads, and a
        // command or a refused start that exits while one is half-open crashes in libpq/OpenSSL
        // (SIGSEGV in their exit handlers). Connections are opened when asked for.
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(5))
        // Not tested on checkout: `Database::run` discards a connection that fails and no longer
        // answers, so that service resumes by itself when a restarted server is back.
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(url.clone())))
}

/// SQLite write transactions of this process take turns here (see [`write_transaction`]).
static SQLITE_WRITERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `work` in one write transaction. On SQLite it begins `IMMEDIATE`, taking the write lock
/// up front (a deferred transaction that reads and then writes fails at once under concurrency);
/// on PostgreSQL it is an ordinary transaction, and callers lock the rows they depend on.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    // Inside another write transaction, `work` simply joins it (an import of many
    // configurations commits or rolls back as one).
    if Manager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some()
    {
        return work(conn);
    }
    // SQLite admits one writer at a time, and a writer that finds the lock taken sleeps in
    // growing steps (busy_timeout), which turns contention into long latency tails. Writers of
    // this process queue here instead, and take the database lock only when it is free.
    let _writer_turn = match conn {
        DbConnection::Sqlite(_) => Some(SQLITE_WRITERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
        DbConnection::Postgres(_) => None,
    };
    match conn {
        DbConnection::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?,
        DbConnection::Postgres(_) => Manager::begin_transaction(conn)?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The work's error is the one worth reporting; a failed rollback marks the
            // connection broken and r2d2 discards it.
            if let Err(rollback_error) = Manager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback_error, "rollback failed");
            }
            Err(error)
        }
    }
}

/// [`write_transaction`], whose commit is on disk when it returns, on SQLite too: its
/// connections otherwise sync the log only at checkpoints (`synchronous = NORMAL`), which keeps
/// every commit through a crash of the process but may lose the last ones to a power loss.
/// For writes that must outlive anything once acknowledged (resolve's audit); one sync per
/// commit, so they are worth grouping. PostgreSQL syncs every commit already.
pub fn durable_write_transaction<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    if let DbConnection::Sqlite(sqlite) = conn {
        sqlite.batch_execute("PRAGMA synchronous = FULL")?;
    }
    let written = write_transaction(conn, work);
    if let DbConnection::Sqlite(sqlite) = conn
        && let Err(error) = sqlite.batch_execute("PRAGMA synchronous = NORMAL")
    {
        // Only slower: the connection keeps syncing every commit.
        tracing::warn!(%error, "cannot set synchronous = NORMAL again");
    }
    written
}

/// The current time as stored: UTC, truncated to microseconds so values round-trip exactly on
/// both backends.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// What went wrong below the services.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] DieselError),
}

/// The pool plus a way to run blocking diesel work off the async workers.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    /// Whether the start-up sequence (key check, migrations) has completed; until then no
    /// request touches the database.
    prepared: Arc<AtomicBool>,
}

impl Database {
    /// A database that is ready to serve (prepared, or used by a command that prepares it).
    pub fn new(pool: DbPool) -> Self {
        Database {
            pool,
            prepared: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A database whose start-up sequence has not run yet: requests answer 503 until
    /// [`Database::mark_prepared`].
    pub fn awaiting_preparation(pool: DbPool) -> Self {
        Database {
            pool,
            prepared: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn mark_prepared(&self) {
        self.prepared.store(true, Ordering::Release);
    }

    pub fn is_prepared(&self) -> bool {
        self.prepared.load(Ordering::Acquire)
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Checks out a connection; a pool that cannot produce one within its timeout means the
    /// database is unreachable.
    pub fn connection(&self) -> Result<PooledConnection, DbError> {
        self.pool.get().map_err(|error| DbError::Unavailable(error.to_string()))
    }

    /// Runs `work` with a connection on tokio's blocking pool.
    pub async fn run<T, E>(&self, work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if !self.is_prepared() {
            return Err(E::from(DbError::Unavailable(
                "the database has not been prepared yet".into(),
            )));
        }
        let pool = self.pool.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|error| DbError::Unavailable(error.to_string()))?;
            let result = work(&mut conn);
            if result.is_err() && discard_if_lost(&mut conn) {
                return Err(E::from(DbError::Unavailable("the database connection was lost".into())));
            }
            result
        })
        .await;
        match joined {
            Ok(result) => result,
            // A panic inside the work: surface it as an internal error rather than unwinding
            // through the request.
            Err(join_error) => Err(E::from(DbError::Unavailable(format!(
                "database task failed: {join_error}"
            )))),
        }
    }

    /// After a failure on a connection of this pool: whether the connection was lost (then the
    /// pool discards it).
    pub fn discard_if_lost(&self, conn: &mut PooledConnection) -> bool {
        discard_if_lost(conn)
    }

    /// Is the database answering right now?
    pub fn is_ready(&self) -> bool {
        if !self.is_prepared() {
            return false;
        }
        match self.pool.get() {
            Ok(mut conn) => diesel::sql_query("SELECT 1").execute(&mut *conn).is_ok(),
            Err(_) => false,
        }
    }
}

/// Connections are not tested on checkout (that would cost a round trip per request): after a
/// failure, a connection that no longer answers (its server restarted, say) is marked broken so
/// that the pool discards it, and the failure is an outage.
fn discard_if_lost(conn: &mut PooledConnection) -> bool {
    if diesel::sql_query("SELECT 1").execute(&mut **conn).is_ok() {
        return false;
    }
    <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(&mut **conn).set_in_error();
    true
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_url_never_prints_its_password() {
        let url = DatabaseUrl::parse("postgres://lanyard:s3cret-pw@db.example.com/lanyard").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("db.example.com"), "{shown}");
    }

    /// `.cargo/config.toml` builds the bundled SQLite with these options; without them every
    /// cached statement was parsed again on every execution (see the comment there).
    #[test]
    fn the_bundled_sqlite_keeps_plans_stable_and_skips_per_call_mutexes() {
        use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

        #[derive(QueryableByName)]
        struct CompileOption {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|option| option.compile_options)
            .collect();
        assert!(options.iter().any(|option| option == "ENABLE_QPSG"), "{options:?}");
        assert!(options.iter().any(|option| option == "THREADSAFE=2"), "{options:?}");
    }

    /// Every SQLite connection runs in WAL mode with `synchronous = NORMAL`, a busy timeout and
    /// foreign keys: all four settings, not only the first.
    #[test]
    fn sqlite_connections_get_every_setting() {
        use diesel::{QueryableByName, RunQueryDsl};
        use r2d2::ManageConnection;

        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }

        let directory = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!("sqlite://{}", directory.path().join("settings.db").display())).unwrap();
        let mut conn = super::ConnectionManager::new(url).connect().unwrap();
        let mut setting = |pragma: &str| -> String {
            diesel::sql_query(format!("SELECT CAST((SELECT * FROM pragma_{pragma}) AS TEXT) AS value"))
                .get_result::<Setting>(&mut conn)
                .unwrap()
                .value
        };
        assert_eq!(setting("journal_mode"), "wal");
        assert_eq!(setting("synchronous"), "1", "NORMAL");
        assert_eq!(setting("busy_timeout"), "5000");
        assert_eq!(setting("foreign_keys"), "1");
    }
}
