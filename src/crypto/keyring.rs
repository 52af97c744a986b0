//! Master keys by id: the first configured key encrypts, every configured key decrypts.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

/// A master key's id: 1 to 32 characters of `A-Z a-z 0-9 . _ -`; stored beside every ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(raw: &str) -> Result<Self, KeyringError> {
        let valid = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(KeyId(raw.to_owned()))
        } else {
            // Never echoed: a key pasted where its id belongs would end up on a terminal.
            Err(KeyringError::InvalidId)
        }
    }

    /// A fresh id such as `mk-3fa9c2d1`.
    pub fn generate() -> Self {
        KeyId(format!("mk-{:08x}", rand::rngs::OsRng.next_u32()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One 256-bit master key. Its bytes live in a secret box: never printed, zeroed on drop.
pub struct MasterKey {
    id: KeyId,
    bytes: SecretBox<[u8; 32]>,
}

impl MasterKey {
    pub fn new(id: KeyId, bytes: [u8; 32]) -> Self {
        MasterKey {
            id,
            bytes: SecretBox::new(Box::new(bytes)),
        }
    }

    pub fn generate(id: KeyId) -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        MasterKey::new(id, bytes)
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        self.bytes.expose_secret()
    }

    /// Key material for another purpose (e.g. signing cookies), derived one-way from this key so
    /// that the master key itself never leaves the keyring.
    pub fn derive_material(&self, purpose: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"lanyard/derived-key/v1\0");
        hasher.update(purpose);
        hasher.update([0u8]);
        hasher.update(self.bytes());
        hasher.finalize().into()
    }

    /// The `ID:BASE64` entry for `LANYARD_MASTER_KEYS` or the key file.
    pub fn to_entry(&self) -> String {
        format!("{}:{}", self.id, BASE64.encode(self.bytes()))
    }

    /// Parses one `ID:BASE64` entry (standard base64 of exactly 32 bytes).
    pub fn parse_entry(entry: &str) -> Result<Self, KeyringError> {
        let (id, encoded) = entry.trim().split_once(':').ok_or(KeyringError::MalformedEntry)?;
        let id = KeyId::parse(id.trim())?;
        let decoded = zeroize::Zeroizing::new(
            BASE64
                .decode(encoded.trim())
                .map_err(|_| KeyringError::BadKey(id.clone()))?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyringError::BadKey(id.clone()))?;
        Ok(MasterKey::new(id, bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

/// What is wrong with the master keys. No variant carries the text of an entry: it may be a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("a master key entry must look like ID:BASE64 (generate one with `lanyard keygen`)")]
    MalformedEntry,
    #[error("a master key id must be 1 to 32 letters, digits, '.', '_' or '-'")]
    InvalidId,
    /// Where in the configured text an entry failed (1-based), and why.
    #[error("entry {entry} (line {line}): {problem}")]
    InEntry {
        line: usize,
        entry: usize,
        problem: Box<KeyringError>,
    },
    #[error("master key `{0}` is not 32 bytes of standard base64 (generate one with `lanyard keygen`)")]
    BadKey(KeyId),
    #[error("master key id `{0}` is configured twice")]
    DuplicateId(KeyId),
    #[error("no master key is configured")]
    Empty,
}

/// The configured master keys, in order: the first encrypts, all decrypt.
#[derive(Debug)]
pub struct MasterKeyring {
    keys: Vec<MasterKey>,
}

impl MasterKeyring {
    pub fn new(keys: Vec<MasterKey>) -> Result<Self, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        for (index, key) in keys.iter().enumerate() {
            if keys[..index].iter().any(|earlier| earlier.id == key.id) {
                return Err(KeyringError::DuplicateId(key.id.clone()));
            }
        }
        Ok(MasterKeyring { keys })
    }

    /// Parses `ID:BASE64` entries separated by commas or newlines (blank lines and `#` comments
    /// are allowed, for key files).
    /// A failed entry is reported by its position, never its text.
    pub fn parse(entries: &str) -> Result<Self, KeyringError> {
        let keys = entries
            .lines()
            .enumerate()
            .flat_map(|(index, line)| line.split(',').map(move |entry| (index + 1, entry.trim())))
            .filter(|(_, entry)| !entry.is_empty() && !entry.starts_with('#'))
            .enumerate()
            .map(|(index, (line, entry))| {
                MasterKey::parse_entry(entry).map_err(|problem| KeyringError::InEntry {
                    line,
                    entry: index + 1,
                    problem: Box::new(problem),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        MasterKeyring::new(keys)
    }

    /// The key that encrypts.
    pub fn active(&self) -> &MasterKey {
        // `new` refuses an empty keyring.
        &self.keys[0]
    }

    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id.as_str() == id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_never_prints_its_bytes() {
        let key = MasterKey::generate(KeyId::parse("k1").unwrap());
        let entry = key.to_entry();
        let parsed = MasterKey::parse_entry(&entry).unwrap();
        assert_eq!(parsed.bytes(), key.bytes());
        let encoded = entry.split_once(':').unwrap().1;
        assert!(!format!("{key:?}").contains(encoded));
    }

    #[test]
    fn the_first_key_encrypts_and_ids_must_be_unique() {
        let a = MasterKey::generate(KeyId::parse("a").unwrap()).to_entry();
        let b = MasterKey::generate(KeyId::parse("b").unwrap()).to_entry();
        let ring = MasterKeyring::parse(&format!("{b},{a}")).unwrap();
        assert_eq!(ring.active().id().as_str(), "b");
        assert!(ring.get("a").is_some());
        assert_eq!(
            MasterKeyring::parse(&format!("{a}\n{a}")).unwrap_err(),
            KeyringError::DuplicateId(KeyId::parse("a").unwrap())
        );
    }

    #[test]
    fn malformed_entries_are_refused_with_a_reason() {
        assert_eq!(MasterKeyring::parse("").unwrap_err(), KeyringError::Empty);
        assert_eq!(
            MasterKey::parse_entry("nocolon").unwrap_err(),
            KeyringError::MalformedEntry
        );
        assert!(matches!(
            MasterKey::parse_entry("bad id:AAAA"),
            Err(KeyringError::InvalidId)
        ));
        assert!(matches!(MasterKey::parse_entry("k:AAAA"), Err(KeyringError::BadKey(_))));
        assert!(matches!(
            MasterKey::parse_entry("k:not base64!"),
            Err(KeyringError::BadKey(_))
        ));
    }

    #[test]
    fn a_malformed_entry_is_reported_by_position_never_by_its_text() {
        let good = MasterKey::generate(KeyId::parse("good").unwrap()).to_entry();
        let secret = MasterKey::generate(KeyId::parse("x").unwrap()).to_entry();
        let encoded = secret.split_once(':').unwrap().1.to_owned();
        // The key pasted where the id belongs, the key without its id, and a broken key.
        for (configured, line, entry) in [
            (format!("{good},{encoded}:x"), 1, 2),
            (format!("{good}\n# a comment\n{encoded}"), 3, 2),
            (format!("{encoded}x:{encoded}"), 1, 1),
            (format!("k:{encoded}!"), 1, 1),
        ] {
            let error = MasterKeyring::parse(&configured).unwrap_err();
            let shown = error.to_string();
            assert!(shown.starts_with(&format!("entry {entry} (line {line}): ")), "{shown}");
            assert!(!shown.contains(&encoded[..12]), "{shown}");
            assert!(!format!("{error:?}").contains(&encoded[..12]));
        }
    }
}
