//! Preparing the database before serving, in the order `security.md` gives: connect, check the
//! master keys read-only, migrate, then record canaries, finish the upgrade to connections (the
//! keys still sealed under their configuration's binding), and recompute stale key hints. Every
//! command that needs the database goes through here, so nothing serves before it ends.

use std::sync::Arc;

use crate::config::{MasterKeySource, UpgradePace};
use crate::crypto::MasterKeyring;
use crate::db::{self, Database, DatabaseUrl};
use crate::services::connections;
use crate::services::master_keys::{self, KeyCheckError, StoredKeyState};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot prepare the database location: {0}")]
    Location(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error(transparent)]
    MasterKeys(#[from] KeyCheckError),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("recomputing the stored key hints failed: {0}")]
    KeyHints(diesel::result::Error),
    #[error("{0}")]
    Settings(String),
}

/// A database prepared for a command: connected, master keys checked, migrated.
pub struct Prepared {
    pub database: Database,
    pub keyring: Arc<MasterKeyring>,
}

/// Connects with at most `pool_size` connections, checking and writing nothing (connections are
/// opened when asked for).
pub fn connect(url: &DatabaseUrl, pool_size: u32) -> Result<Database, StartupError> {
    let pool = db::build_pool(url, pool_size).map_err(|error| StartupError::Location(error.to_string()))?;
    Ok(Database::new(pool))
}

/// Connects and prepares the database exactly as `serve` does (key check, then migrations).
pub fn open(url: &DatabaseUrl, source: &MasterKeySource, pool_size: u32) -> Result<Prepared, StartupError> {
    let database = connect(url, pool_size)?;
    let keyring = prepare_database(&database, source)?;
    Ok(Prepared { database, keyring })
}

/// Runs the start-up sequence on one connection and returns the checked keyring. Blocking.
pub fn prepare_database(database: &Database, source: &MasterKeySource) -> Result<Arc<MasterKeyring>, StartupError> {
    let pace = UpgradePace::from_env().map_err(|error| StartupError::Settings(error.0))?;
    let mut conn = database
        .connection()
        .map_err(|error| StartupError::Connect(error.to_string()))?;
    let stored = StoredKeyState::read(&mut conn)?;
    let loaded = master_keys::load_keyring(source, &stored)?;
    if let Some(path) = &loaded.created_key_file {
        tracing::warn!(
            path = %path.display(),
            "created a new master key file (mode 0600): it decrypts every stored API key; back it up separately \
             and keep it out of database backups"
        );
    }
    master_keys::check_keyring(&loaded.keyring, &stored)?;
    let applied = db::run_pending_migrations(&mut conn).map_err(StartupError::Migrate)?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    master_keys::record_canaries(&mut conn, &loaded.keyring, loaded.new_passphrase_salt.as_deref())?;
    master_keys::reseal_upgraded_keys(&mut conn, &loaded.keyring, pace.batch_size, pace.pause)?;
    let hints = connections::recompute_key_hints(&mut conn, &loaded.keyring).map_err(StartupError::KeyHints)?;
    if hints > 0 {
        tracing::info!(hints, "stored key hints recomputed under the current masking rule");
    }
    Ok(Arc::new(loaded.keyring))
}

/// The keyring when it can be known without the database: configured entries, or an existing
/// key file. (A missing key file, or a passphrase, depends on what the database holds.)
pub fn keyring_without_database(source: &MasterKeySource) -> Result<Option<Arc<MasterKeyring>>, StartupError> {
    match source {
        MasterKeySource::Entries(_) => {}
        MasterKeySource::KeyFile(path) if path.exists() => {}
        MasterKeySource::KeyFile(_) | MasterKeySource::Passphrase(_) => return Ok(None),
    }
    let loaded = master_keys::load_keyring(source, &StoredKeyState::default())?;
    Ok(Some(Arc::new(loaded.keyring)))
}
