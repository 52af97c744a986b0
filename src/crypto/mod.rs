//! Keys at rest: the master keyring, sealing and opening API keys bound to their row, and the
//! mask that is all anyone ever sees of a stored key.

mod keyring;
mod mask;
mod sealed;

pub use keyring::{KeyId, KeyringError, MasterKey, MasterKeyring};
pub use mask::{MASK_RULE_VERSION, mask_api_key};
pub use sealed::{OpenError, RowBinding, Sealed};
