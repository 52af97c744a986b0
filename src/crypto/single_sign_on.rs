//! The cookie of a single sign-on in progress: its content sealed under the active master key
//! (purpose `lanyard/single-sign-on/pending`), as URL-safe base64; and the digest under which
//! its `state` is remembered until its callback.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::keyring::MasterKeyring;
use super::sealed::RowBinding;

/// Seals a pending sign-in for its cookie.
pub fn seal_pending_sign_in(keyring: &MasterKeyring, plaintext: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(keyring.seal(plaintext, RowBinding::PendingSingleSignOn).bytes)
}

/// Opens a cookie made by [`seal_pending_sign_in`]; `None` for anything else.
pub fn open_pending_sign_in(keyring: &MasterKeyring, cookie: &str) -> Option<Zeroizing<Vec<u8>>> {
    let stored = URL_SAFE_NO_PAD.decode(cookie.trim()).ok()?;
    keyring.open(&stored, RowBinding::PendingSingleSignOn).ok()
}

/// The stored form of a sign-in's `state`.
pub fn hash_sign_in_state(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyId, MasterKey};

    #[test]
    fn a_pending_sign_in_opens_only_as_itself() {
        let keyring = MasterKeyring::new(vec![MasterKey::generate(KeyId::parse("k1").unwrap())]).unwrap();
        let sealed = seal_pending_sign_in(&keyring, b"{\"state\":\"s\"}");
        assert_eq!(
            open_pending_sign_in(&keyring, &sealed).unwrap().as_slice(),
            b"{\"state\":\"s\"}"
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(open_pending_sign_in(&keyring, &String::from_utf8(tampered).unwrap()).is_none());
        // Another purpose's ciphertext does not open as a pending sign-in.
        let other = keyring.seal(b"x", RowBinding::ResolveTagSecret);
        assert!(open_pending_sign_in(&keyring, &URL_SAFE_NO_PAD.encode(other.bytes)).is_none());
    }
}
