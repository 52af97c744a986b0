//! Second factors: time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps, through `totp-rs`), the `otpauth://` URI and its QR code as SVG, recovery codes and
//! the pending login step's token.
//!
//! Recovery codes and challenge tokens are stored as plain SHA-256 digests: each carries 80 or
//! more random bits, so a fast hash cannot be reversed by guessing (as for API tokens), and a
//! login can check a code with one indexed look-up instead of ten Argon2 verifications.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use qrcode::QrCode;
use qrcode::render::svg;
use rand::Rng;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use super::compare::constant_time_eq;
use super::random::random_bytes;

/// RFC 6238's defaults, which every authenticator app reads without being told.
pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Bytes of secret (160 bits: RFC 4226's recommendation for HMAC-SHA-1).
const SECRET_BYTES: usize = 20;

/// A one-time-password secret in clear: zeroed on drop, redacted in `Debug`.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(••••)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        TotpSecret(Zeroizing::new(random_bytes::<SECRET_BYTES>().to_vec()))
    }

    /// A secret as opened from its sealed form.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        TotpSecret(bytes)
    }

    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it typed in: unpadded RFC 4648 base32.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// `otpauth://totp/Lanyard:<account>?secret=…&issuer=Lanyard&…`, what the QR code holds.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        // `byte_serialize` writes spaces as `+`, which a path must not hold.
        let label = format!("{}:{}", encode(issuer), encode(account)).replace('+', "%20");
        Zeroizing::new(format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}",
            self.base32().as_str(),
            encode(issuer).replace('+', "%20"),
        ))
    }

    /// The time step whose code `code` is, among the step of `unix_seconds` and one step either
    /// side of it; `None` when it is none of them (or not six digits).
    pub fn matching_step(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        if code.len() != TOTP_DIGITS || !code.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp()?;
        let now = unix_seconds / TOTP_STEP_SECONDS;
        // Every candidate is computed and compared, so the time taken does not say which matched.
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let expected = totp.generate(step * TOTP_STEP_SECONDS);
            if constant_time_eq(code.as_bytes(), expected.as_bytes()) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }

    fn totp(&self) -> Option<TOTP> {
        TOTP::new(Algorithm::SHA1, TOTP_DIGITS, 1, TOTP_STEP_SECONDS, self.0.to_vec()).ok()
    }
}

/// Unpadded RFC 4648 base32 (A–Z, 2–7).
fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// `text` as a QR code, an inline `<svg>` element (no XML prolog, no script, no style).
pub fn qr_code_svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let start = image.find("<svg")?;
    Some(image[start..].to_owned())
}

/// How many recovery codes a second factor comes with.
pub const RECOVERY_CODES: usize = 10;

/// A new recovery code: 16 characters of a 31-letter alphabet without look-alikes (79 bits),
/// shown in groups of four.
pub fn new_recovery_code() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    let groups: Vec<String> = chars.chunks(4).map(|group| group.iter().collect()).collect();
    Zeroizing::new(groups.join("-"))
}

/// The digest a recovery code is stored as; the code is read as typed, in any case, with or
/// without its dashes and spaces.
pub fn hash_recovery_code(presented: &str) -> [u8; 32] {
    let normalised: Zeroizing<String> = Zeroizing::new(
        presented
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect(),
    );
    Sha256::digest(format!("lanyard recovery code:{}", normalised.as_str()).as_bytes()).into()
}

/// Whether an entry in the code field looks like a recovery code rather than a six-digit code.
pub fn looks_like_recovery_code(presented: &str) -> bool {
    presented.trim().len() > TOTP_DIGITS
}

/// A new random token for a pending login step (the cookie's value), and its stored digest.
pub fn new_login_challenge() -> (String, [u8; 32]) {
    let token = super::random::random_url_token();
    let hash = hash_login_challenge(&token);
    (token, hash)
}

pub fn hash_login_challenge(token: &str) -> [u8; 32] {
    Sha256::digest(format!("lanyard login challenge:{token}").as_bytes()).into()
}

/// A secret offered for enrolment, with when it was offered (unix seconds), as the bytes to
/// seal into the enrolment form.
pub fn pending_plaintext(secret: &TotpSecret, offered_at: i64) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(8 + SECRET_BYTES));
    bytes.extend_from_slice(&offered_at.to_be_bytes());
    bytes.extend_from_slice(secret.expose_bytes());
    bytes
}

/// The secret and offer time back from [`pending_plaintext`]'s bytes.
pub fn parse_pending_plaintext(bytes: &[u8]) -> Option<(TotpSecret, i64)> {
    let (time, secret) = bytes.split_at_checked(8)?;
    let offered_at = i64::from_be_bytes(time.try_into().ok()?);
    if secret.len() != SECRET_BYTES {
        return None;
    }
    Some((TotpSecret(Zeroizing::new(secret.to_vec())), offered_at))
}

/// Sealed bytes as form text, and back.
pub fn encode_for_form(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub fn decode_from_form(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_match() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890" (its 8-digit codes' last six).
        let secret = TotpSecret(Zeroizing::new(b"12345678901234567890".to_vec()));
        assert_eq!(secret.matching_step("287082", 59), Some(1));
        assert_eq!(secret.matching_step("081804", 1_111_111_109), Some(1_111_111_109 / 30));
        assert_eq!(secret.matching_step("287082", 59 + 90), None);
        assert_eq!(secret.matching_step("28708", 59), None);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"f"), "MY");
    }

    #[test]
    fn recovery_codes_hash_alike_however_typed() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        assert_eq!(
            hash_recovery_code(&code),
            hash_recovery_code(&code.replace('-', " ").to_uppercase())
        );
        assert_ne!(hash_recovery_code(&code), hash_recovery_code(&new_recovery_code()));
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_and_the_uri_names_issuer_and_account() {
        let secret = TotpSecret::generate();
        let uri = secret.otpauth_uri("Lanyard", "a b@example.com");
        assert!(uri.starts_with("otpauth://totp/Lanyard:a%20b%40example.com?secret="));
        assert!(uri.contains("&issuer=Lanyard"));
        let svg = qr_code_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("<script") && !svg.contains("style="));
    }

    #[test]
    fn a_pending_secret_round_trips_through_its_plaintext() {
        let secret = TotpSecret::generate();
        let bytes = pending_plaintext(&secret, 1234);
        let (back, at) = parse_pending_plaintext(&bytes).unwrap();
        assert_eq!(back.expose_bytes(), secret.expose_bytes());
        assert_eq!(at, 1234);
    }
}
