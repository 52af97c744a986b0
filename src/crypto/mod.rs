//! Every secret Lanyard makes, keeps or checks: the master keyring, sealing and opening API
//! keys bound to their row, the mask that is all anyone ever sees of a stored key, password and
//! passphrase hashing, token and session-key digests, constant-time comparison and randomness.
//! No other room uses a cryptographic crate (`tests/architecture.rs` checks it).

mod compare;
mod keyring;
mod mask;
mod passphrase;
mod password;
mod random;
mod resolve_tag;
mod sealed;
mod session;
mod single_sign_on;
mod tokens;
mod totp;
mod webhook_signature;

pub use compare::constant_time_eq;
pub use keyring::{KeyId, KeyringError, MasterKey, MasterKeyring};
pub use mask::{MASK_RULE_VERSION, mask_api_key};
pub use passphrase::stretch_passphrase;
pub use password::{PasswordHashError, dummy_password_hash, hash_password, verify_password};
pub use random::{new_csrf_token, new_passphrase_salt, random_bytes, random_url_token};
pub use resolve_tag::ResolveTagSecret;
pub use sealed::{OpenError, RowBinding, Sealed};
pub use session::{anonymous_csrf_signing_key, hash_session_key, new_session_key, session_cookie_signing_key};
pub use single_sign_on::{hash_sign_in_state, open_pending_sign_in, seal_pending_sign_in};
pub use tokens::{TokenSecret, hash_setup_token, hash_token, new_setup_token};
pub use totp::{
    RECOVERY_CODES, TOTP_STEP_SECONDS, TotpSecret, decode_from_form, encode_for_form, hash_login_challenge,
    hash_recovery_code, looks_like_recovery_code, new_login_challenge, new_recovery_code, parse_pending_plaintext,
    pending_plaintext, qr_code_svg,
};
pub use webhook_signature::WebhookSecret;
