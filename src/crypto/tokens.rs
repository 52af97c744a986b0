//! Bearer secrets and their stored digests: API tokens (`lny_` + 43 characters, stored as the
//! 32 raw bytes of their SHA-256) and the one-time setup token (43 characters, stored as the
//! lowercase hex of its SHA-256).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::random::random_url_token;

/// A freshly made token: `lny_` followed by 43 URL-safe characters (32 random bytes). Shown to
/// its owner once; only its SHA-256 is stored.
pub struct TokenSecret(SecretString);

impl TokenSecret {
    pub const PREFIX: &'static str = "lny_";

    pub fn generate() -> Self {
        TokenSecret(SecretString::from(format!("{}{}", Self::PREFIX, random_url_token())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> [u8; 32] {
        hash_token(self.expose())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// The stored form of a presented token.
pub fn hash_token(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

/// A fresh one-time setup token: the body of an API token, without its prefix.
pub fn new_setup_token() -> String {
    random_url_token()
}

/// The stored form of a setup token: the lowercase hex of its SHA-256.
pub fn hash_setup_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert!(a.expose().starts_with("lny_"));
        assert!(a.expose().len() >= 4 + 32);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), hash_token(a.expose()));
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
    }

    #[test]
    fn setup_tokens_are_stored_as_hex_sha256() {
        assert_eq!(
            hash_setup_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(new_setup_token().len(), 43);
    }
}
