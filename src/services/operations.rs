//! The operator's chores: copying a whole vault into an empty PostgreSQL database, and the
//! periodic purge of what has expired. The command line and the server call these as the pages
//! call the other services.

use chrono::Duration;

use crate::db::{self, Database, DatabaseUrl, DbError};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target's URL does not parse.
    #[error("{0}")]
    TargetUrl(String),
    #[error("the target must be a postgres:// or postgresql:// URL")]
    TargetNotPostgres,
    #[error("the target is the database Lanyard is configured with; name an empty PostgreSQL database")]
    TargetIsSource,
    #[error("cannot prepare the target: {0}")]
    TargetPool(String),
    #[error("cannot read the source database: {0}")]
    Read(String),
    #[error("cannot connect to the target: {0}")]
    Connect(String),
    #[error("the target database already holds users; copy-database only fills an empty database")]
    TargetNotEmpty,
    #[error("migrating the target failed: {0}")]
    Migrate(String),
    #[error("copying failed; the target is unchanged: {0}")]
    Write(String),
    #[error("the counts differ after copying (expected {expected:?}, found {found:?})")]
    CountsDiffer {
        expected: Vec<(&'static str, i64)>,
        found: Vec<(&'static str, i64)>,
    },
}

/// Where `copy-database` writes: an empty PostgreSQL database other than the source.
pub struct CopyTarget(Database);

impl CopyTarget {
    /// Checks the target's URL against the source's; connects to nothing yet.
    pub fn parse(raw: &str, source: &DatabaseUrl) -> Result<Self, CopyError> {
        let url = DatabaseUrl::parse(raw).map_err(CopyError::TargetUrl)?;
        if !url.is_postgres() {
            return Err(CopyError::TargetNotPostgres);
        }
        if url == *source {
            return Err(CopyError::TargetIsSource);
        }
        let pool = db::build_pool(&url, 1).map_err(|error| CopyError::TargetPool(error.to_string()))?;
        Ok(CopyTarget(Database::new(pool)))
    }
}

/// Copies every row of `source` into `target` (migrated first, and refused unless it holds no
/// user) in one transaction, then checks the counts table by table. Returns them.
pub fn copy_database(
    source: &Database,
    CopyTarget(target): &CopyTarget,
) -> Result<Vec<(&'static str, i64)>, CopyError> {
    let snapshot = {
        let mut conn = source
            .connection()
            .map_err(|error| CopyError::Read(error.to_string()))?;
        db::copy::Snapshot::read(&mut conn).map_err(|error| CopyError::Read(error.to_string()))?
    };
    let mut conn = target
        .connection()
        .map_err(|error| CopyError::Connect(error.to_string()))?;
    let holds_users = db::migrations::vault_tables_exist(&mut conn)
        .map_err(|error| CopyError::Connect(error.to_string()))?
        && db::users::count(&mut conn).map_err(|error| CopyError::Connect(error.to_string()))? > 0;
    if holds_users {
        return Err(CopyError::TargetNotEmpty);
    }
    db::run_pending_migrations(&mut conn).map_err(CopyError::Migrate)?;
    db::write_transaction(&mut conn, |conn| snapshot.write(conn))
        .map_err(|error| CopyError::Write(error.to_string()))?;
    let found = db::copy::count_rows(&mut conn).map_err(|error| CopyError::Write(error.to_string()))?;
    let expected = snapshot.counts();
    if found != expected {
        return Err(CopyError::CountsDiffer { expected, found });
    }
    Ok(expected)
}

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub login_attempts: usize,
    pub test_runs: usize,
}

/// Deletes expired sessions, and login attempts and provider-test runs older than the windows
/// their limits look at.
pub fn purge_expired(conn: &mut db::DbConnection) -> Result<Purged, DbError> {
    let now = db::now();
    Ok(Purged {
        sessions: db::sessions::purge_expired(conn, now)?,
        login_attempts: db::auth_failures::purge_before(conn, now - Duration::minutes(5))?,
        test_runs: db::provider_test_runs::purge_before(conn, now - Duration::minutes(1))?,
    })
}
