//! Session keys and the keys that sign Lanyard's cookies.
//!
//! A session cookie carries a random 256-bit key (43 URL-safe characters); the sessions table
//! stores only its SHA-256. Cookie-signing keys are derived from the active master key, each
//! under its own label, so that every instance agrees and no cookie can stand in for another:
//! `SHA-512("lanyard/<label>/v1\0" || active key id || derive_material(<purpose>))`.

use sha2::{Digest, Sha256, Sha512};

use super::keyring::MasterKeyring;
use super::random::random_url_token;

/// A fresh session key, as the cookie carries it.
pub fn new_session_key() -> String {
    random_url_token()
}

/// The stored form of a session key.
pub fn hash_session_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The 64 bytes that sign the session cookie.
pub fn session_cookie_signing_key(keyring: &MasterKeyring) -> [u8; 64] {
    cookie_signing_key(keyring, b"lanyard/session-cookie-signing/v1\0", b"session-cookie")
}

/// The 64 bytes that sign the CSRF cookie of the sign-in forms.
pub fn anonymous_csrf_signing_key(keyring: &MasterKeyring) -> [u8; 64] {
    cookie_signing_key(
        keyring,
        b"lanyard/anonymous-csrf-cookie-signing/v1\0",
        b"anonymous-csrf-cookie",
    )
}

fn cookie_signing_key(keyring: &MasterKeyring, label: &[u8], purpose: &[u8]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    hasher.update(label);
    hasher.update(keyring.active().id().as_str().as_bytes());
    hasher.update(keyring.active().derive_material(purpose));
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyId, MasterKey};

    #[test]
    fn cookie_keys_differ_by_purpose_and_are_stable() {
        let keyring = MasterKeyring::new(vec![MasterKey::new(KeyId::parse("k1").unwrap(), [7u8; 32])]).unwrap();
        let session = session_cookie_signing_key(&keyring);
        assert_eq!(session, session_cookie_signing_key(&keyring));
        assert_ne!(session, anonymous_csrf_signing_key(&keyring));
        assert_eq!(hash_session_key("abc").len(), 32);
        assert_ne!(new_session_key(), new_session_key());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The derivations pinned to values computed outside Lanyard (Python's hashlib, from the
    /// formula in the module comment): a change of label or order would sign every cookie anew.
    #[test]
    fn cookie_keys_and_session_digests_keep_their_documented_values() {
        let keyring = MasterKeyring::new(vec![MasterKey::new(KeyId::parse("k1").unwrap(), [7u8; 32])]).unwrap();
        assert_eq!(
            hex(&session_cookie_signing_key(&keyring)),
            "3f27814cdafbd44724613a6055ef8f968305a85cd5b6aa88c64ad330898d8616\
             acc05ce38e5768aeea03fe0f985c510d818ff60cc7775b51e8ad0f9befa93c7d"
        );
        assert_eq!(
            hex(&anonymous_csrf_signing_key(&keyring)),
            "69940dd230af871abf7ddda8ee9249904c39ab8b018e34b1aff7ed9b08270435\
             5e97ee441cdd8c1f5d9efb03dfdd86ff0609fa0f796335553aa11a629b87e191"
        );
        assert_eq!(
            hex(&hash_session_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
