//! The instance's secret for resolve's tags (runtimes.md): made by the first instance that
//! starts, kept sealed in `instance_settings` like any key, read by every instance, so that an
//! unchanged answer has the same tag everywhere. `rotate-keys` re-seals it (the tags stay).

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::{MasterKeyring, OpenError, ResolveTagSecret, RowBinding};
use crate::db::{self, DbConnection, DbError, instance_settings};

const SETTING: &str = "resolve_tag_secret";

/// The secret, read from the database by the first resolve that needs it (a server may start
/// before its database answers), then kept for the life of the process: it never changes.
#[derive(Debug, Default)]
pub struct TagSecretCell(OnceLock<ResolveTagSecret>);

impl TagSecretCell {
    pub fn get(&self, conn: &mut DbConnection, keyring: &MasterKeyring) -> Result<&ResolveTagSecret, DbError> {
        if let Some(secret) = self.0.get() {
            return Ok(secret);
        }
        let loaded = load_or_create(conn, keyring)?;
        // Two first resolves at once load the same stored secret; either copy will do.
        Ok(self.0.get_or_init(|| loaded))
    }
}

/// The stored secret, or a new one stored now. One that no configured master key opens (its
/// key was dropped without `rotate-keys`) is replaced: tags then change once, which only costs
/// runtimes one full answer.
pub fn load_or_create(conn: &mut DbConnection, keyring: &MasterKeyring) -> Result<ResolveTagSecret, DbError> {
    for _ in 0..3 {
        let stored = instance_settings::get(conn, SETTING)?;
        if let Some(stored) = &stored
            && let Ok(secret) = open(keyring, stored)
        {
            return Ok(secret);
        }
        let secret = ResolveTagSecret::generate();
        let sealed = STANDARD.encode(keyring.seal(secret.as_bytes(), RowBinding::ResolveTagSecret).bytes);
        let stored_now = db::write_transaction(conn, |conn| match &stored {
            None => instance_settings::insert_if_absent(conn, SETTING, &sealed),
            Some(unreadable) => {
                tracing::warn!("the resolve tag secret does not open with the configured master keys: replaced");
                instance_settings::replace(conn, SETTING, unreadable, &sealed)
            }
        })?;
        if stored_now {
            return Ok(secret);
        }
        // Another instance stored one meanwhile: read that one.
    }
    Err(DbError::Unavailable(
        "the resolve tag secret kept changing while it was read".into(),
    ))
}

fn open(keyring: &MasterKeyring, stored: &str) -> Result<ResolveTagSecret, OpenError> {
    let sealed = STANDARD.decode(stored).map_err(|_| OpenError::Malformed)?;
    let plain = keyring.open(&sealed, RowBinding::ResolveTagSecret)?;
    ResolveTagSecret::from_bytes(&plain).ok_or(OpenError::Malformed)
}

/// What `rotate-keys` did with the secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Resealed {
    /// Under the active key already, or no secret yet.
    Unchanged,
    Resealed,
    /// No configured key opens it (it will be replaced at the next start).
    Unreadable,
    /// Another instance replaced it meanwhile.
    ChangedMeanwhile,
}

/// Seals the secret again under the active master key, with the same bytes (so no tag changes).
pub fn reseal(conn: &mut DbConnection, keyring: &MasterKeyring) -> Result<Resealed, DbError> {
    let Some(stored) = instance_settings::get(conn, SETTING)? else {
        return Ok(Resealed::Unchanged);
    };
    let active = keyring.active().id().to_string();
    let under_active = STANDARD
        .decode(&stored)
        .ok()
        .and_then(|sealed| MasterKeyring::key_id_of(&sealed).ok().map(|id| id == active));
    if under_active == Some(true) {
        return Ok(Resealed::Unchanged);
    }
    let Ok(secret) = open(keyring, &stored) else {
        return Ok(Resealed::Unreadable);
    };
    let sealed = STANDARD.encode(keyring.seal(secret.as_bytes(), RowBinding::ResolveTagSecret).bytes);
    let replaced = db::write_transaction(conn, |conn| instance_settings::replace(conn, SETTING, &stored, &sealed))?;
    Ok(if replaced {
        Resealed::Resealed
    } else {
        Resealed::ChangedMeanwhile
    })
}
