//! Randomness, from the operating system only.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use rand::RngCore;

/// `N` bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// 256 random bits as 43 URL-safe base64 characters (no padding): session keys, CSRF tokens
/// and the body of API tokens all look like this.
pub fn random_url_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A fresh CSRF token (a session's, or the signed cookie's before signing in).
pub fn new_csrf_token() -> String {
    random_url_token()
}

/// 16 random bytes as standard base64 without padding (22 characters): the salt a passphrase
/// is stretched under.
pub fn new_passphrase_salt() -> String {
    STANDARD_NO_PAD.encode(random_bytes::<16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_salts_have_their_documented_lengths_and_differ() {
        let token = random_url_token();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, random_url_token());
        assert_eq!(new_passphrase_salt().len(), 22);
        assert_ne!(new_passphrase_salt(), new_passphrase_salt());
    }
}
