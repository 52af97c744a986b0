//! Webhook secrets and signatures (monitoring.md): a secret is `whsec_` followed by 32 random
//! alphanumeric characters, shown to its owner once and kept sealed; every delivery carries
//! `Lanyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
//! secret's UTF-8 bytes, `whsec_` included.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A webhook's signing secret. Redacted in `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";
    /// How many random characters follow the prefix.
    pub const RANDOM_CHARS: usize = 32;

    pub fn generate() -> Self {
        let random: String = rand::rngs::OsRng
            .sample_iter(&Alphanumeric)
            .take(Self::RANDOM_CHARS)
            .map(char::from)
            .collect();
        WebhookSecret(SecretString::from(format!("{}{random}", Self::PREFIX)))
    }

    /// A secret as stored (after opening its sealed form).
    pub fn from_stored(secret: String) -> Self {
        WebhookSecret(SecretString::from(secret))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The `Lanyard-Signature` header's value for `body` sent at `timestamp` (unix seconds).
    pub fn signature_header(&self, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", self.sign(timestamp, body))
    }

    /// The lowercase hex of HMAC-SHA256 over `"<timestamp>.<body>"`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.expose().as_bytes()) else {
            return String::new();
        };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_alphanumerics_and_hidden_in_debug() {
        let secret = WebhookSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(text.len(), 6 + 32);
        assert!(text[6..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(text, WebhookSecret::generate().expose());
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body_keyed_with_the_whole_secret() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test'
        let secret = WebhookSecret::from_stored("whsec_test".to_owned());
        let header = secret.signature_header(1_700_000_000, br#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
