//! Start-up: load the master keyring and prove it matches what the database holds, read-only,
//! before any migration or write; then record a canary for each configured key.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::config::MasterKeySource;
use crate::crypto::{self, KeyId, MasterKey, MasterKeyring, RowBinding};
use crate::db::connections::{self as connection_store, ResealSelection};
use crate::db::{self, DbConnection, instance_settings, llm_configurations, master_key_canaries, second_factors};
use crate::services::connections;
use crate::services::resolve_tags::{self, Resealed};

/// The plaintext every canary seals.
const CANARY_PLAINTEXT: &[u8] = b"lanyard master key canary v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error("invalid master key configuration in {origin}: {error}")]
    Keyring {
        /// `LANYARD_MASTER_KEYS`, or the key file's path.
        origin: String,
        error: crate::crypto::KeyringError,
    },
    #[error(
        "the database holds {count} API key(s) encrypted under master key id `{key_id}`, which is not configured; \
         add that key to LANYARD_MASTER_KEYS (the first entry encrypts, all decrypt) and start again"
    )]
    UnknownKeyId { key_id: String, count: i64 },
    #[error(
        "master key `{0}` does not match the key this database was encrypted with (its canary does not decrypt); \
         configure the original key under that id"
    )]
    WrongKey(String),
    #[error(
        "the master key file {path} is missing, but the database already holds encrypted data \
         (master key id(s): {key_ids}); restore the file or set LANYARD_MASTER_KEYS"
    )]
    MissingKeyFile { path: PathBuf, key_ids: String },
    #[error("cannot read or create the master key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("{0}")]
    Passphrase(String),
    #[error("this database has no passphrase salt yet: start Lanyard once with LANYARD_MASTER_PASSPHRASE set")]
    NoPassphraseSalt,
    #[error("database error during the master-key check: {0}")]
    Database(String),
}

/// For keyrings Lanyard builds itself (a derived or a freshly generated key), whose errors name
/// no configured text.
impl From<crate::crypto::KeyringError> for KeyCheckError {
    fn from(error: crate::crypto::KeyringError) -> Self {
        KeyCheckError::Keyring {
            origin: "the master keys".into(),
            error,
        }
    }
}

impl From<diesel::result::Error> for KeyCheckError {
    fn from(error: diesel::result::Error) -> Self {
        KeyCheckError::Database(error.to_string())
    }
}

/// What the database holds, read without writing anything.
#[derive(Debug, Default)]
pub struct StoredKeyState {
    /// Encrypted API keys per master key id.
    pub keys_by_id: BTreeMap<String, i64>,
    /// Canary ciphertext per master key id.
    pub canaries: BTreeMap<String, Vec<u8>>,
    /// The salt a passphrase-derived master key is stretched under, once there is one.
    pub passphrase_salt: Option<String>,
}

/// The instance setting that keeps the passphrase salt.
pub const PASSPHRASE_SALT_SETTING: &str = "master_passphrase_salt";
/// The id of a passphrase-derived master key (one per database: its salt is the database's).
pub const PASSPHRASE_KEY_ID: &str = "passphrase";
const MIN_PASSPHRASE_CHARS: usize = 12;

/// Stretches a passphrase into a master key: Argon2id, 64 MiB, 3 passes, under `salt`
/// (base64). A weak passphrase is a weak key: the stretching only slows guessing down.
pub fn passphrase_key(passphrase: &str, salt: &str) -> Result<MasterKey, KeyCheckError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyCheckError::Passphrase(format!(
            "LANYARD_MASTER_PASSPHRASE must be at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    let bytes = crypto::stretch_passphrase(passphrase, salt).map_err(KeyCheckError::Passphrase)?;
    Ok(MasterKey::new(KeyId::parse(PASSPHRASE_KEY_ID)?, *bytes))
}

/// A new random master key as an `ID:BASE64` entry, under `id` or a random one.
pub fn new_key_entry(id: Option<&str>) -> Result<String, crate::crypto::KeyringError> {
    let id = match id {
        Some(id) => KeyId::parse(id)?,
        None => KeyId::generate(),
    };
    Ok(MasterKey::generate(id).to_entry())
}

/// The `passphrase:BASE64` entry that `passphrase` stretches to under this database's salt.
pub fn passphrase_entry(conn: &mut DbConnection, passphrase: &str) -> Result<String, KeyCheckError> {
    let salt = StoredKeyState::read(conn)?
        .passphrase_salt
        .ok_or(KeyCheckError::NoPassphraseSalt)?;
    Ok(passphrase_key(passphrase, &salt)?.to_entry())
}

fn new_salt() -> String {
    crypto::new_passphrase_salt()
}

impl StoredKeyState {
    pub fn read(conn: &mut DbConnection) -> Result<Self, KeyCheckError> {
        if !db::migrations::vault_tables_exist(conn)? {
            return Ok(StoredKeyState::default());
        }
        // Before migrations: a database the release before connections wrote keeps its keys on
        // the configurations.
        let mut keys_by_id: BTreeMap<String, i64> = if connection_store::table_exists(conn)? {
            connection_store::count_keys_by_key_id(conn)?
        } else {
            llm_configurations::legacy_count_keys_by_key_id(conn)?
        }
        .into_iter()
        .collect();
        // Second-factor secrets are sealed too: a master key they need must be configured.
        if second_factors::table_exists(conn)? {
            for (key_id, count) in second_factors::count_by_key_id(conn)? {
                *keys_by_id.entry(key_id).or_default() += count;
            }
        }
        let canaries = master_key_canaries::list(conn)?
            .into_iter()
            .map(|row| (row.key_id, row.canary))
            .collect();
        let passphrase_salt = instance_settings::get(conn, PASSPHRASE_SALT_SETTING)?;
        Ok(StoredKeyState {
            keys_by_id,
            canaries,
            passphrase_salt,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys_by_id.is_empty() && self.canaries.is_empty()
    }
}

/// The outcome of loading the keyring.
pub struct LoadedKeyring {
    pub keyring: MasterKeyring,
    /// Set when a new key file was written (the caller logs it).
    pub created_key_file: Option<PathBuf>,
    /// A passphrase salt made for this database, to store once migrations have run.
    pub new_passphrase_salt: Option<String>,
}

/// Loads the keyring from its source. A missing key file is created (mode 0600) only when the
/// database holds no encrypted data at all.
pub fn load_keyring(source: &MasterKeySource, stored: &StoredKeyState) -> Result<LoadedKeyring, KeyCheckError> {
    match source {
        MasterKeySource::Entries(entries) => Ok(LoadedKeyring {
            keyring: MasterKeyring::parse(entries.expose_secret()).map_err(|error| KeyCheckError::Keyring {
                origin: "LANYARD_MASTER_KEYS".into(),
                error,
            })?,
            created_key_file: None,
            new_passphrase_salt: None,
        }),
        MasterKeySource::Passphrase(passphrase) => {
            let (salt, new_passphrase_salt) = match &stored.passphrase_salt {
                Some(salt) => (salt.clone(), None),
                None => {
                    let salt = new_salt();
                    (salt.clone(), Some(salt))
                }
            };
            let key = passphrase_key(passphrase.expose_secret(), &salt)?;
            Ok(LoadedKeyring {
                keyring: MasterKeyring::new(vec![key])?,
                created_key_file: None,
                new_passphrase_salt,
            })
        }
        MasterKeySource::KeyFile(path) => {
            if path.exists() {
                let contents =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| KeyCheckError::KeyFile {
                        path: path.clone(),
                        detail: error.to_string(),
                    })?);
                return Ok(LoadedKeyring {
                    keyring: MasterKeyring::parse(&contents).map_err(|error| KeyCheckError::Keyring {
                        origin: format!("the master key file {}", path.display()),
                        error,
                    })?,
                    created_key_file: None,
                    new_passphrase_salt: None,
                });
            }
            if !stored.is_empty() {
                let key_ids: Vec<&str> = stored
                    .keys_by_id
                    .keys()
                    .chain(stored.canaries.keys())
                    .map(String::as_str)
                    .collect();
                return Err(KeyCheckError::MissingKeyFile {
                    path: path.clone(),
                    key_ids: key_ids.join(", "),
                });
            }
            let key = MasterKey::generate(KeyId::generate());
            write_key_file(path, &key)?;
            Ok(LoadedKeyring {
                keyring: MasterKeyring::new(vec![key])?,
                created_key_file: Some(path.clone()),
                new_passphrase_salt: None,
            })
        }
    }
}

fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), KeyCheckError> {
    let fail = |error: std::io::Error| KeyCheckError::KeyFile {
        path: path.to_owned(),
        detail: error.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    let entry = zeroize::Zeroizing::new(key.to_entry());
    writeln!(
        file,
        "# Lanyard master key: it decrypts every stored API key. Keep it out of database backups.\n{}",
        entry.as_str()
    )
    .map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Refuses a keyring that cannot read what the database holds: a key id in use that is not
/// configured, or a configured key whose canary does not decrypt. Reads nothing but `stored`.
pub fn check_keyring(keyring: &MasterKeyring, stored: &StoredKeyState) -> Result<(), KeyCheckError> {
    if let Some((key_id, count)) = stored
        .keys_by_id
        .iter()
        .find(|(key_id, _)| keyring.get(key_id).is_none())
    {
        return Err(KeyCheckError::UnknownKeyId {
            key_id: key_id.clone(),
            count: *count,
        });
    }
    check_canaries(keyring, &stored.canaries)
}

/// Every configured key that has a canary must open it.
fn check_canaries(keyring: &MasterKeyring, canaries: &BTreeMap<String, Vec<u8>>) -> Result<(), KeyCheckError> {
    for key in keyring.keys() {
        if let Some(canary) = canaries.get(key.id().as_str()) {
            let opened = keyring.open(canary, RowBinding::Canary);
            if !matches!(opened, Ok(ref plaintext) if plaintext.as_slice() == CANARY_PLAINTEXT) {
                return Err(KeyCheckError::WrongKey(key.id().to_string()));
            }
        }
    }
    Ok(())
}

/// What one run of `lanyard rotate-keys` did.
#[derive(Debug, Default)]
pub struct RotationReport {
    pub re_encrypted: usize,
    /// Keys that could not be decrypted with any configured key (left as they are).
    pub unreadable: usize,
    /// Keys changed by someone else while this run read them (left as they are; run again).
    pub changed_meanwhile: usize,
    /// Stored keys still sealed under each key id other than the active one.
    pub remaining: Vec<(String, i64)>,
}

/// Re-encrypts every stored key under the active master key (and under its connection's own
/// binding), `batch_size` at a time, each batch its own transaction, writing only where the
/// stored value is still the one it read. Safe to interrupt and to run again.
pub fn rotate(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    batch_size: i64,
) -> Result<RotationReport, KeyCheckError> {
    let active = keyring.active().id().to_string();
    let mut report = reseal(
        conn,
        keyring,
        ResealSelection::NotUnder { active: &active },
        batch_size,
        |_| {},
    )?;
    reseal_webhook_secrets(conn, keyring, &active, &mut report)?;
    reseal_second_factors(conn, keyring, &active, &mut report)?;
    // The tag secret keeps its bytes: no resolve tag changes with the master key. It is not one
    // of the keys the report counts; one no key opens is replaced at the next start.
    if resolve_tags::reseal(conn, keyring).map_err(|error| KeyCheckError::Database(error.to_string()))?
        == Resealed::Unreadable
    {
        tracing::warn!("the resolve tag secret does not open with the configured master keys");
    }
    let mut remaining: BTreeMap<String, i64> = connection_store::count_keys_by_key_id(conn)?
        .into_iter()
        .filter(|(id, _)| *id != active)
        .collect();
    for webhook in crate::db::webhooks::all(conn)? {
        if webhook.key_id != active {
            *remaining.entry(webhook.key_id).or_default() += 1;
        }
    }
    for (key_id, count) in second_factors::count_by_key_id(conn)? {
        if key_id != active {
            *remaining.entry(key_id).or_default() += count;
        }
    }
    report.remaining = remaining.into_iter().collect();
    Ok(report)
}

/// Webhook signing secrets are sealed too: each one not under the active master key is sealed
/// again under it (compare-and-swap, like the API keys). They are few; one transaction.
fn reseal_webhook_secrets(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    active: &str,
    report: &mut RotationReport,
) -> Result<(), KeyCheckError> {
    let stale: Vec<_> = crate::db::webhooks::all(conn)?
        .into_iter()
        .filter(|webhook| webhook.key_id != active)
        .collect();
    db::write_transaction(conn, |conn| {
        for webhook in &stale {
            let binding = RowBinding::Webhook { webhook: webhook.id.0 };
            let Ok(plain) = keyring.open(&webhook.secret_encrypted, binding) else {
                report.unreadable += 1;
                continue;
            };
            let resealed = keyring.seal(&plain, binding);
            if crate::db::webhooks::replace_sealed_secret(
                conn,
                webhook.id,
                &webhook.secret_encrypted,
                &resealed.bytes,
                &resealed.key_id,
            )? {
                report.re_encrypted += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// Second-factor secrets, sealed to their user: each one not under the active master key is
/// sealed again under it (compare-and-swap). One per user who turned it on; one transaction.
fn reseal_second_factors(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    active: &str,
    report: &mut RotationReport,
) -> Result<(), KeyCheckError> {
    let stale: Vec<_> = second_factors::all(conn)?
        .into_iter()
        .filter(|factor| factor.key_id != active)
        .collect();
    db::write_transaction(conn, |conn| {
        for factor in &stale {
            let binding = RowBinding::SecondFactor { user: factor.user_id.0 };
            let Ok(plain) = keyring.open(&factor.secret_encrypted, binding) else {
                report.unreadable += 1;
                continue;
            };
            let resealed = keyring.seal(&plain, binding);
            if second_factors::replace_sealed_secret(
                conn,
                factor.user_id,
                &factor.secret_encrypted,
                &resealed.bytes,
                &resealed.key_id,
            )? {
                report.re_encrypted += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// The upgrade to connections, after migrations: every key the migration moved onto a
/// connection is still sealed under its configuration's binding; this re-seals each under the
/// connection's, in batches of `batch_size` (each its own transaction, compare-and-swap, the
/// upgrade marker cleared with it). Interrupted, the next start carries on where it stopped;
/// with nothing left it changes nothing. Logs counts only, never a key. `pause` waits between
/// batches.
pub fn reseal_upgraded_keys(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    batch_size: i64,
    pause: std::time::Duration,
) -> Result<RotationReport, KeyCheckError> {
    let total = connection_store::count_upgraded_keys(conn)?;
    if total == 0 {
        return Ok(RotationReport::default());
    }
    tracing::info!(
        keys = total,
        "upgrade to connections: re-sealing keys under their connections"
    );
    let report = reseal(conn, keyring, ResealSelection::Upgraded, batch_size, |report| {
        tracing::info!(
            re_sealed = report.re_encrypted,
            of = total,
            "upgrade to connections: batch committed"
        );
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    })?;
    let left = connection_store::count_upgraded_keys(conn)?;
    tracing::info!(
        re_sealed = report.re_encrypted,
        unreadable = report.unreadable,
        changed_meanwhile = report.changed_meanwhile,
        left,
        "upgrade to connections: done"
    );
    Ok(report)
}

/// Opens each selected key under the binding it is sealed under and seals it again under the
/// active master key and its connection's binding; `after_batch` runs after each commit.
fn reseal(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    selection: ResealSelection<'_>,
    batch_size: i64,
    mut after_batch: impl FnMut(&RotationReport),
) -> Result<RotationReport, KeyCheckError> {
    let mut report = RotationReport::default();
    let mut after = None;
    loop {
        let batch = connection_store::sealed_keys(conn, selection, after, batch_size)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        db::write_transaction(conn, |conn| {
            for key in &batch {
                let Some(owner) = key.owner() else {
                    report.unreadable += 1;
                    continue;
                };
                let binding = connections::key_binding(owner, key.id.0, key.legacy_configuration_id.map(|id| id.0));
                let Ok(plain) = keyring.open(&key.sealed, binding) else {
                    report.unreadable += 1;
                    continue;
                };
                let resealed = keyring.seal(&plain, connections::own_binding(owner, key.id.0));
                if connection_store::replace_sealed_key(conn, key.id, &key.sealed, &resealed.bytes, &resealed.key_id)? {
                    report.re_encrypted += 1;
                } else {
                    report.changed_meanwhile += 1;
                }
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        after_batch(&report);
    }
    Ok(report)
}

/// After migrations: stores a new passphrase salt, and records a canary for every configured
/// key that has none yet.
pub fn record_canaries(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    new_passphrase_salt: Option<&str>,
) -> Result<usize, KeyCheckError> {
    db::write_transaction(conn, |conn| {
        // Instances starting together on one database take turns from here on.
        master_key_canaries::lock_for_recording(conn)?;
        if let Some(salt) = new_passphrase_salt {
            match instance_settings::get(conn, PASSPHRASE_SALT_SETTING)? {
                None => instance_settings::set(conn, PASSPHRASE_SALT_SETTING, salt)?,
                Some(stored) if stored == salt => {}
                Some(_) => {
                    return Err(KeyCheckError::Passphrase(
                        "another instance set up the passphrase salt at the same moment; start Lanyard again".into(),
                    ));
                }
            }
        }
        let existing: BTreeMap<String, Vec<u8>> = master_key_canaries::list(conn)?
            .into_iter()
            .map(|row| (row.key_id, row.canary))
            .collect();
        // A canary recorded since the start-up check (by an instance starting at the same
        // moment) must match this instance's key too.
        check_canaries(keyring, &existing)?;
        let mut added = 0;
        for key in keyring.keys().filter(|key| !existing.contains_key(key.id().as_str())) {
            let sealed = key.seal(CANARY_PLAINTEXT, RowBinding::Canary);
            master_key_canaries::insert(
                conn,
                &master_key_canaries::CanaryRow {
                    key_id: sealed.key_id,
                    canary: sealed.bytes,
                    created_at: db::now(),
                },
            )?;
            added += 1;
        }
        Ok(added)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> MasterKey {
        MasterKey::generate(KeyId::parse(id).unwrap())
    }

    #[test]
    fn a_matching_keyring_passes_and_a_different_key_under_the_same_id_fails() {
        let original = key("k1");
        let entry = original.to_entry();
        let mut stored = StoredKeyState::default();
        stored
            .canaries
            .insert("k1".into(), original.seal(CANARY_PLAINTEXT, RowBinding::Canary).bytes);
        stored.keys_by_id.insert("k1".into(), 3);
        assert!(check_keyring(&MasterKeyring::parse(&entry).unwrap(), &stored).is_ok());
        let impostor = MasterKeyring::new(vec![key("k1")]).unwrap();
        assert!(matches!(check_keyring(&impostor, &stored), Err(KeyCheckError::WrongKey(id)) if id == "k1"));
    }

    #[test]
    fn keys_under_an_unconfigured_id_are_refused_by_name() {
        let mut stored = StoredKeyState::default();
        stored.keys_by_id.insert("old".into(), 5);
        let ring = MasterKeyring::new(vec![key("new")]).unwrap();
        let error = check_keyring(&ring, &stored).unwrap_err();
        assert!(error.to_string().contains("`old`"), "{error}");
    }

    #[test]
    fn a_key_file_is_created_only_for_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let source = MasterKeySource::KeyFile(path.clone());
        let mut stored = StoredKeyState::default();
        stored.keys_by_id.insert("k1".into(), 1);
        assert!(matches!(
            load_keyring(&source, &stored),
            Err(KeyCheckError::MissingKeyFile { .. })
        ));
        assert!(!path.exists());

        let loaded = load_keyring(&source, &StoredKeyState::default()).unwrap();
        assert_eq!(loaded.created_key_file.as_deref(), Some(path.as_path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let reloaded = load_keyring(&source, &stored).unwrap();
        assert_eq!(reloaded.keyring.active().id(), loaded.keyring.active().id());
        assert!(reloaded.created_key_file.is_none());
    }
}
