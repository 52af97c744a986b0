//! The tags of `GET /api/resolve` (runtimes.md): an HMAC-SHA256, under an instance-wide secret,
//! of what a runtime acts on (the key among it), so that an unchanged answer has the same tag on
//! every instance and a tag says nothing about the key. The secret is kept sealed in the
//! database like any key (`services::resolve_tags`); `rotate-keys` re-seals it, so no tag
//! changes with the master key.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// How long the secret is.
pub const TAG_SECRET_LEN: usize = 32;
/// How much of the HMAC a tag shows: 128 bits, plenty to tell answers apart.
const TAG_BYTES: usize = 16;

/// The instance's tag secret. Redacted in `Debug`.
pub struct ResolveTagSecret(Zeroizing<[u8; TAG_SECRET_LEN]>);

impl ResolveTagSecret {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; TAG_SECRET_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        ResolveTagSecret(bytes)
    }

    /// The secret as opened from its sealed form; `None` unless it is exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; TAG_SECRET_LEN] = bytes.try_into().ok()?;
        Some(ResolveTagSecret(Zeroizing::new(array)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// A strong ETag (quoted) over `parts`, each length-prefixed so that no two different
    /// lists of parts read as the same bytes.
    pub fn tag<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> String {
        // HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.as_bytes()) else {
            return String::new();
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..TAG_BYTES].iter().map(|byte| format!("{byte:02x}")).collect();
        format!("\"{hex}\"")
    }
}

impl fmt::Debug for ResolveTagSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResolveTagSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_depends_on_the_secret_and_on_every_part_and_its_boundaries() {
        let secret = ResolveTagSecret::generate();
        let parts: [&[u8]; 2] = [b"default", b"sk-key"];
        let tag = secret.tag(parts);
        assert_eq!(tag, secret.tag(parts), "the same answer, the same tag");
        assert_eq!(tag.len(), 2 + 2 * TAG_BYTES);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(tag, secret.tag([b"default".as_slice(), b"sk-kez"]));
        assert_ne!(tag, secret.tag([b"defaults".as_slice(), b"k-key"]), "boundaries count");
        assert_ne!(tag, ResolveTagSecret::generate().tag(parts), "another instance secret");
        let reopened = ResolveTagSecret::from_bytes(secret.as_bytes()).unwrap();
        assert_eq!(tag, reopened.tag(parts));
        assert!(ResolveTagSecret::from_bytes(&[0; 31]).is_none());
        assert_eq!(format!("{secret:?}"), "ResolveTagSecret(…)");
    }
}
