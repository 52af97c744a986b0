//! How values look on the wire, written without intermediate allocations: a listing serialises
//! four timestamps per row, and formatting each into its own `String` first showed in profiles.

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use chrono::{Datelike, NaiveDateTime, Timelike};
use serde::{Serialize, Serializer};

use crate::error::AppError;

/// `items` as a JSON array, written once into a buffer sized for it (`HttpResponse::json` starts
/// small and copies the whole body again at every doubling).
///
/// Listings call this inside their database task: the rows are then freed on the thread that
/// allocated them, which glibc's per-thread arenas handle far better than hundreds of frees from
/// another thread (the listing slowed down over time without it).
/// Serialises a secret in clear: for the one field of the one response that hands a key out
/// (`/api/resolve`). Everywhere else a secret stays redacted.
pub fn expose_secret<S: Serializer>(secret: &Option<secrecy::SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

pub fn json_array<T: Serialize>(items: &[T], bytes_per_item: usize) -> Result<Vec<u8>, AppError> {
    let mut body = Vec::with_capacity(2 + items.len() * bytes_per_item);
    serde_json::to_writer(&mut body, items)
        .map_err(|error| AppError::Internal(format!("could not serialise a response: {error}")))?;
    Ok(body)
}

/// A 200 with a JSON body made by [`json_array`].
pub fn json_ok(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(body)
}

/// A timestamp serialised as RFC 3339 in UTC, e.g. `2026-11-26T10:00:00Z` or
/// `2026-11-26T10:00:00.123456Z`: the same text as chrono's
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub NaiveDateTime);

impl Rfc3339 {
    /// Writes the text into `buffer` and returns it (at most 30 bytes).
    fn write<'b>(&self, buffer: &'b mut [u8; 30]) -> &'b str {
        let at = self.0;
        let mut out = Cursor { buffer, length: 0 };
        // Years outside 0..=9999 do not occur (timestamps come from the clock); clamping keeps
        // the output well-formed rather than panicking if one ever did.
        out.digits(at.year().clamp(0, 9999).unsigned_abs(), 4);
        out.byte(b'-');
        out.digits(at.month(), 2);
        out.byte(b'-');
        out.digits(at.day(), 2);
        out.byte(b'T');
        out.digits(at.hour(), 2);
        out.byte(b':');
        out.digits(at.minute(), 2);
        out.byte(b':');
        out.digits(at.second(), 2);
        let nanos = at.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            out.byte(b'.');
            if nanos.is_multiple_of(1_000_000) {
                out.digits(nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                out.digits(nanos / 1_000, 6);
            } else {
                out.digits(nanos, 9);
            }
        }
        out.byte(b'Z');
        let length = out.length;
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&buffer[..length]).unwrap_or_default()
    }
}

struct Cursor<'b> {
    buffer: &'b mut [u8; 30],
    length: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, byte: u8) {
        self.buffer[self.length] = byte;
        self.length += 1;
    }

    /// `value` zero-padded to exactly `width` digits.
    fn digits(&mut self, value: u32, width: u32) {
        for position in (0..width).rev() {
            self.byte(b'0' + (value / 10u32.pow(position) % 10) as u8);
        }
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.write(&mut [0; 30]))
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.write(&mut [0; 30]))
    }
}

#[cfg(test)]
mod tests {
    use super::Rfc3339;
    use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

    #[test]
    fn timestamps_format_like_chrono_in_utc() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        for at in [
            day.and_hms_opt(10, 0, 0).unwrap(),
            day.and_hms_opt(23, 59, 59).unwrap(),
            day.and_hms_milli_opt(10, 0, 0, 120).unwrap(),
            day.and_hms_micro_opt(10, 0, 0, 123_456).unwrap(),
            day.and_hms_micro_opt(1, 2, 3, 1).unwrap(),
            day.and_hms_nano_opt(10, 0, 0, 123_456_789).unwrap(),
            day.and_hms_nano_opt(10, 0, 0, 1).unwrap(),
            NaiveDate::from_ymd_opt(999, 1, 2)
                .unwrap()
                .and_hms_opt(3, 4, 5)
                .unwrap(),
        ] {
            let expected =
                DateTime::<Utc>::from_naive_utc_and_offset(at, Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true);
            assert_eq!(Rfc3339(at).to_string(), expected);
            assert_eq!(serde_json::to_string(&Rfc3339(at)).unwrap(), format!("\"{expected}\""));
        }
    }
}

/// Whose a connection or configuration is: `{"kind": "user"}` (the caller's own) or
/// `{"kind": "organisation", "id": "…", "name": "…"}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OwnerResource {
    User,
    Organisation { id: uuid::Uuid, name: String },
}

impl From<&crate::domain::Ownership> for OwnerResource {
    fn from(ownership: &crate::domain::Ownership) -> Self {
        match ownership {
            crate::domain::Ownership::Own => OwnerResource::User,
            crate::domain::Ownership::Organisation { id, name, .. } => OwnerResource::Organisation {
                id: *id,
                name: name.clone(),
            },
        }
    }
}
