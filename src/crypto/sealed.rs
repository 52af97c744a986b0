//! AES-256-GCM sealing of API keys, each ciphertext bound to its row.
//!
//! Stored format (version 1), self-describing so that rotation and the start-up check can read
//! which master key sealed a value without trying them all:
//!
//! ```text
//! [0x01 version][key id length: 1 byte][key id: ASCII][12-byte random nonce][ciphertext ‖ 16-byte tag]
//! ```
//!
//! The associated data is a purpose label, the header above, and the binding: for a stored key,
//! the owner's id and the connection's id. A ciphertext copied into another row or another
//! user's row therefore fails to open.
//!
//! Purpose labels (each ends in a NUL byte):
//! - `lanyard/connection/api-key`: a provider key on a user's connection (owner, connection);
//! - `lanyard/organisation-connection/api-key`: a provider key on an organisation's connection
//!   (organisation, connection), so that it never opens as a user's key, nor the reverse;
//! - `lanyard/llm-configuration/api-key`: a key as the release before connections sealed it on
//!   its configuration (owner, configuration). Only upgraded connections still hold such keys,
//!   until the start-up re-seal moves them to the connection's binding; new keys never use it;
//! - `lanyard/master-key-canary`: the start-up canary of one master key;
//! - `lanyard/webhook/secret`: a webhook's signing secret (webhook);
//! - `lanyard/second-factor/totp`: a user's one-time-password secret (user);
//! - `lanyard/second-factor/pending`: a secret offered on the enrolment page and not yet
//!   confirmed, carried in the form itself (user), so that it never opens as a confirmed one.
//! - `lanyard/resolve-tag-secret`: the instance's secret for resolve's tags (no row to bind).
//! - `lanyard/single-sign-on/pending`: a sign-in begun at the identity provider, carried in the
//!   browser's cookie until its callback (no row to bind; its `state` is single-use by a row).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::keyring::{MasterKey, MasterKeyring};

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What a ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowBinding {
    /// An API key on a user's connection: its owner and the connection.
    Connection { owner: Uuid, connection: Uuid },
    /// An API key on an organisation's connection: the organisation and the connection.
    OrganisationConnection { organisation: Uuid, connection: Uuid },
    /// An API key sealed by the release before connections: its owner and the configuration it
    /// was stored on. Read only for upgraded keys not yet re-sealed.
    Configuration { owner: Uuid, configuration: Uuid },
    /// The start-up canary of one master key.
    Canary,
    /// A webhook's signing secret: the webhook.
    Webhook { webhook: Uuid },
    /// A user's confirmed second-factor secret: the user.
    SecondFactor { user: Uuid },
    /// A second-factor secret offered to a user and not yet confirmed: the user.
    PendingSecondFactor { user: Uuid },
    /// The instance's secret for resolve's tags (one per instance).
    ResolveTagSecret,
    /// A single sign-on begun and not yet come back (the browser's cookie).
    PendingSingleSignOn,
}

impl RowBinding {
    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + header.len());
        match self {
            RowBinding::Connection { owner, connection } => {
                aad.extend_from_slice(b"lanyard/connection/api-key\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(owner.as_bytes());
                aad.extend_from_slice(connection.as_bytes());
            }
            RowBinding::OrganisationConnection {
                organisation,
                connection,
            } => {
                aad.extend_from_slice(b"lanyard/organisation-connection/api-key\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(organisation.as_bytes());
                aad.extend_from_slice(connection.as_bytes());
            }
            RowBinding::Configuration { owner, configuration } => {
                aad.extend_from_slice(b"lanyard/llm-configuration/api-key\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(owner.as_bytes());
                aad.extend_from_slice(configuration.as_bytes());
            }
            RowBinding::Canary => {
                aad.extend_from_slice(b"lanyard/master-key-canary\0");
                aad.extend_from_slice(header);
            }
            RowBinding::Webhook { webhook } => {
                aad.extend_from_slice(b"lanyard/webhook/secret\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(webhook.as_bytes());
            }
            RowBinding::SecondFactor { user } => {
                aad.extend_from_slice(b"lanyard/second-factor/totp\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(user.as_bytes());
            }
            RowBinding::PendingSecondFactor { user } => {
                aad.extend_from_slice(b"lanyard/second-factor/pending\0");
                aad.extend_from_slice(header);
                aad.extend_from_slice(user.as_bytes());
            }
            RowBinding::ResolveTagSecret => {
                aad.extend_from_slice(b"lanyard/resolve-tag-secret\0");
                aad.extend_from_slice(header);
            }
            RowBinding::PendingSingleSignOn => {
                aad.extend_from_slice(b"lanyard/single-sign-on/pending\0");
                aad.extend_from_slice(header);
            }
        }
        aad
    }
}

/// A sealed value and the id of the master key that sealed it (kept in its own column too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub bytes: Vec<u8>,
    pub key_id: String,
}

/// Why a stored value could not be opened. None of these carry key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored value is truncated or not in a known format")]
    Malformed,
    #[error("the stored value was sealed under master key `{0}`, which is not configured")]
    UnknownKeyId(String),
    #[error("the stored value does not decrypt (tampered, moved, or a different master key)")]
    Undecryptable,
}

fn header(key_id: &str) -> Vec<u8> {
    let mut header = Vec::with_capacity(2 + key_id.len());
    header.push(FORMAT_VERSION);
    // Key ids are at most 32 ASCII characters (`KeyId::parse`).
    header.push(key_id.len() as u8);
    header.extend_from_slice(key_id.as_bytes());
    header
}

impl MasterKey {
    /// Seals `plaintext` under this key with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], binding: RowBinding) -> Sealed {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes()));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let header = header(self.id().as_str());
        let aad = binding.associated_data(&header);
        // Encryption with a valid key and nonce cannot fail for inputs this size; an empty
        // ciphertext would only make `open` report the value unreadable.
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut bytes = header;
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            bytes,
            key_id: self.id().to_string(),
        }
    }

    fn open_parts(
        &self,
        header: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
        binding: RowBinding,
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes()));
        let aad = binding.associated_data(header);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Undecryptable)
    }
}

/// The parts of a stored value, checked for shape only.
struct Parts<'a> {
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn split(stored: &[u8]) -> Result<Parts<'_>, OpenError> {
    let (&version, rest) = stored.split_first().ok_or(OpenError::Malformed)?;
    if version != FORMAT_VERSION {
        return Err(OpenError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(OpenError::Malformed)?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let (id_bytes, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(id_bytes).map_err(|_| OpenError::Malformed)?;
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Ok(Parts {
        header: &stored[..2 + id_len],
        key_id,
        nonce,
        ciphertext,
    })
}

impl MasterKeyring {
    /// Seals under the active key.
    pub fn seal(&self, plaintext: &[u8], binding: RowBinding) -> Sealed {
        self.active().seal(plaintext, binding)
    }

    /// Opens a stored value with whichever configured key sealed it.
    pub fn open(&self, stored: &[u8], binding: RowBinding) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let parts = split(stored)?;
        let key = self
            .get(parts.key_id)
            .ok_or_else(|| OpenError::UnknownKeyId(parts.key_id.to_owned()))?;
        key.open_parts(parts.header, parts.nonce, parts.ciphertext, binding)
    }

    /// The master key id recorded in a stored value, if it is well formed.
    pub fn key_id_of(stored: &[u8]) -> Result<&str, OpenError> {
        split(stored).map(|parts| parts.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keyring::KeyId;
    use std::collections::HashSet;

    fn ring(ids: &[&str]) -> MasterKeyring {
        MasterKeyring::new(
            ids.iter()
                .map(|id| MasterKey::generate(KeyId::parse(id).unwrap()))
                .collect(),
        )
        .unwrap()
    }

    fn binding() -> RowBinding {
        RowBinding::Configuration {
            owner: Uuid::new_v4(),
            configuration: Uuid::new_v4(),
        }
    }

    #[test]
    fn a_sealed_key_opens_to_the_same_bytes() {
        let ring = ring(&["k1"]);
        let row = binding();
        let sealed = ring.seal(b"sk-secret-value-123456", row);
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(MasterKeyring::key_id_of(&sealed.bytes).unwrap(), "k1");
        assert_eq!(
            ring.open(&sealed.bytes, row).unwrap().as_slice(),
            b"sk-secret-value-123456"
        );
        assert!(!sealed.bytes.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn any_tampered_byte_fails_to_open() {
        let ring = ring(&["k1"]);
        let row = binding();
        let sealed = ring.seal(b"sk-secret-value-123456", row);
        for index in 0..sealed.bytes.len() {
            let mut tampered = sealed.bytes.clone();
            tampered[index] ^= 0x01;
            assert!(ring.open(&tampered, row).is_err(), "byte {index} was not protected");
        }
    }

    #[test]
    fn truncated_values_are_malformed_or_undecryptable_never_a_panic() {
        let ring = ring(&["k1"]);
        let row = binding();
        let sealed = ring.seal(b"sk-secret-value-123456", row);
        for len in 0..sealed.bytes.len() {
            assert!(ring.open(&sealed.bytes[..len], row).is_err());
        }
        assert_eq!(ring.open(&[], row).unwrap_err(), OpenError::Malformed);
        assert_eq!(ring.open(&[9, 0, 0], row).unwrap_err(), OpenError::Malformed);
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_user_fails() {
        let ring = ring(&["k1"]);
        let owner = Uuid::new_v4();
        let configuration = Uuid::new_v4();
        let sealed = ring.seal(
            b"sk-secret-value-123456",
            RowBinding::Configuration { owner, configuration },
        );
        let other_row = RowBinding::Configuration {
            owner,
            configuration: Uuid::new_v4(),
        };
        let other_user = RowBinding::Configuration {
            owner: Uuid::new_v4(),
            configuration,
        };
        assert_eq!(
            ring.open(&sealed.bytes, other_row).unwrap_err(),
            OpenError::Undecryptable
        );
        assert_eq!(
            ring.open(&sealed.bytes, other_user).unwrap_err(),
            OpenError::Undecryptable
        );
        assert_eq!(
            ring.open(&sealed.bytes, RowBinding::Canary).unwrap_err(),
            OpenError::Undecryptable
        );
    }

    #[test]
    fn an_organisation_key_opens_only_under_its_organisation_and_connection() {
        let ring = ring(&["k1"]);
        let organisation = Uuid::new_v4();
        let id = Uuid::new_v4();
        let binding = RowBinding::OrganisationConnection {
            organisation,
            connection: id,
        };
        let sealed = ring.seal(b"sk-team-secret-123456", binding);
        assert_eq!(
            ring.open(&sealed.bytes, binding).unwrap().as_slice(),
            b"sk-team-secret-123456"
        );
        // The same ids as a user's connection, another organisation, another connection.
        for other in [
            RowBinding::Connection {
                owner: organisation,
                connection: id,
            },
            RowBinding::OrganisationConnection {
                organisation: Uuid::new_v4(),
                connection: id,
            },
            RowBinding::OrganisationConnection {
                organisation,
                connection: Uuid::new_v4(),
            },
        ] {
            assert_eq!(ring.open(&sealed.bytes, other).unwrap_err(), OpenError::Undecryptable);
        }
    }

    #[test]
    fn a_key_sealed_for_a_connection_opens_only_there() {
        let ring = ring(&["k1"]);
        let owner = Uuid::new_v4();
        let id = Uuid::new_v4();
        let connection = RowBinding::Connection { owner, connection: id };
        let sealed = ring.seal(b"sk-secret-value-123456", connection);
        assert_eq!(
            ring.open(&sealed.bytes, connection).unwrap().as_slice(),
            b"sk-secret-value-123456"
        );
        // The same ids under the old purpose, another connection, another owner: all refused.
        for other in [
            RowBinding::Configuration {
                owner,
                configuration: id,
            },
            RowBinding::Connection {
                owner,
                connection: Uuid::new_v4(),
            },
            RowBinding::Connection {
                owner: Uuid::new_v4(),
                connection: id,
            },
        ] {
            assert_eq!(ring.open(&sealed.bytes, other).unwrap_err(), OpenError::Undecryptable);
        }
        let legacy = ring.seal(
            b"sk-secret-value-123456",
            RowBinding::Configuration {
                owner,
                configuration: id,
            },
        );
        assert_eq!(
            ring.open(&legacy.bytes, connection).unwrap_err(),
            OpenError::Undecryptable
        );
    }

    #[test]
    fn an_unknown_key_id_is_reported_by_name() {
        let old = ring(&["old"]);
        let new = ring(&["new"]);
        let row = binding();
        let sealed = old.seal(b"sk-secret-value-123456", row);
        assert_eq!(
            new.open(&sealed.bytes, row).unwrap_err(),
            OpenError::UnknownKeyId("old".into())
        );
    }

    #[test]
    fn a_different_key_under_the_same_id_fails() {
        let a = ring(&["k1"]);
        let b = ring(&["k1"]);
        let row = binding();
        let sealed = a.seal(b"sk-secret-value-123456", row);
        assert_eq!(b.open(&sealed.bytes, row).unwrap_err(), OpenError::Undecryptable);
    }

    #[test]
    fn every_key_decrypts_and_the_first_encrypts() {
        let old = MasterKey::generate(KeyId::parse("old").unwrap());
        let old_entry = old.to_entry();
        let row = binding();
        let sealed_old = old.seal(b"sk-secret-value-123456", row);
        let new_entry = MasterKey::generate(KeyId::parse("new").unwrap()).to_entry();
        let both = MasterKeyring::parse(&format!("{new_entry},{old_entry}")).unwrap();
        assert_eq!(
            both.open(&sealed_old.bytes, row).unwrap().as_slice(),
            b"sk-secret-value-123456"
        );
        assert_eq!(both.seal(b"x", row).key_id, "new");
    }

    #[test]
    fn nonces_are_unique_over_many_encryptions() {
        let ring = ring(&["k1"]);
        let row = binding();
        let header_len = 2 + "k1".len();
        let nonces: HashSet<Vec<u8>> = (0..10_000)
            .map(|_| ring.seal(b"same plaintext", row).bytes[header_len..header_len + NONCE_LEN].to_vec())
            .collect();
        assert_eq!(nonces.len(), 10_000);
    }
}
