//! Stretching an operator's passphrase into master-key bytes: Argon2id, 64 MiB, 3 passes,
//! 1 lane, 32 bytes of output, under the database's salt (its base64 text, used as bytes).
//! Changing any of these would make every key sealed under a passphrase unreadable.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// The 32 key bytes for `passphrase` under `salt`. A weak passphrase is a weak key: the
/// stretching only slows guessing down.
pub fn stretch_passphrase(passphrase: &str, salt: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = Params::new(64 * 1024, 3, 1, Some(32)).map_err(|error| error.to_string())?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt.as_bytes(), bytes.as_mut())
        .map_err(|error| error.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned: a change of any parameter would make every passphrase-sealed key unreadable.
    #[test]
    fn a_passphrase_stretches_to_the_same_key_as_always() {
        let bytes = stretch_passphrase("correct horse battery staple", "c2FsdHNhbHRzYWx0c2FsdA").unwrap();
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "be6f22f240c30d29a523e7304636e384b5843ce896207094eef4dae1527b2ba0");
        assert_ne!(
            *stretch_passphrase("correct horse battery staplE", "c2FsdHNhbHRzYWx0c2FsdA").unwrap(),
            *bytes
        );
    }
}
