//! Password hashing: Argon2id at the OWASP minimum (19 MiB, 2 iterations, 1 lane), stored as
//! the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`), so that a future change of
//! parameters still verifies the hashes already stored.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Decimal, Ident, Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

/// Hashing failed (only a bug in the parameters or the library can cause it).
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("argon2 params: {0}")]
    Params(String),
    #[error("argon2 hashing failed: {0}")]
    Hashing(String),
}

fn params() -> Result<Params, PasswordHashError> {
    Params::new(19 * 1024, 2, 1, None).map_err(|error| PasswordHashError::Params(error.to_string()))
}

/// Argon2 as the `argon2` crate computes it, with its working memory (19 MiB) in a block that
/// goes back to the system when the hash is done.
///
/// The crate's own `Vec` of that size is returned the first time (glibc maps it), but freeing it
/// raises glibc's dynamic mmap threshold above it: every later one comes from a malloc arena and
/// stays resident, one per thread that ever checked a password (tens of MiB after a few logins
/// and token creations). A reservation above glibc's largest threshold (32 MiB on 64-bit) is
/// always mapped and unmapped, and only the 19 MiB Argon2 writes are ever resident.
struct Argon2ReturningMemory;

/// Above glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit), in 1 KiB blocks.
const ALWAYS_MAPPED_BLOCKS: usize = 32 * 1024 + 1;

impl PasswordHasher for Argon2ReturningMemory {
    type Params = Params;

    fn hash_password<'a>(
        &self,
        password: &[u8],
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        let params = params().map_err(|_| argon2::password_hash::Error::ParamsMaxExceeded)?;
        self.hash_password_customized(password, None, None, params, salt)
    }

    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> argon2::password_hash::Result<PasswordHash<'a>> {
        // As `argon2::Argon2`'s own `PasswordHasher` does it, but for where the memory lives.
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?.unwrap_or_default();
        let version = version.map(Version::try_from).transpose()?.unwrap_or_default();
        let salt = salt.into();
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buffer)?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut memory: Vec<Block> = Vec::with_capacity(ALWAYS_MAPPED_BLOCKS.max(params.block_count()));
        memory.resize(params.block_count(), Block::default());
        let output = Output::init_with(output_len, |out| {
            Ok(argon.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..])?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(output),
        })
    }
}

/// The PHC string of `password` under a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    params()?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2ReturningMemory
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordHashError::Hashing(error.to_string()))
}

/// Whether `password` matches the stored PHC string `hash`; a malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2ReturningMemory
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the account is unknown, so that an unknown account and a
/// wrong password take as long as each other. Made once per process.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("lanyard-dummy-password-for-timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert!(!verify_password(dummy_password_hash(), "correct horse battery"));
    }

    #[test]
    fn hashes_are_the_argon2_crates_own_both_ways() {
        let standard = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = standard
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let ours = Argon2ReturningMemory
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ours, theirs, "the same salt gives the same PHC string");
        assert!(verify_password(&theirs, "correct horse battery"));
        assert!(!verify_password(&theirs, "correct horse batterY"));
        let mine = hash_password("another password").unwrap();
        let parsed = PasswordHash::new(&mine).unwrap();
        assert!(standard.verify_password(b"another password", &parsed).is_ok());
        // Another cost, as a hash stored under earlier parameters would carry: still verified.
        let cheaper = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let older = cheaper.hash_password(b"old password", &salt).unwrap().to_string();
        assert!(verify_password(&older, "old password"));
        assert!(!verify_password(&older, "old passwort"));
    }
}
