//! A connection as its owner sees it: a provider account (provider, base URL, key) that
//! configurations use, with its last test and its model catalogue's size.

use super::{Provider, TestStatus};

/// Every field but the key, of which only the stored hint (the mask) is shown.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: uuid::Uuid,
    pub name: String,
    pub provider: Provider,
    /// `None` means the provider's default.
    pub base_url: Option<String>,
    /// The mask computed when the key was saved; `None` without a key.
    pub api_key_hint: Option<String>,
    pub test_status: TestStatus,
    pub test_code: Option<String>,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<chrono::NaiveDateTime>,
    pub models_fetched_at: Option<chrono::NaiveDateTime>,
    pub model_count: i64,
    /// How many configurations use it.
    pub configuration_count: i64,
    /// Made the old way, for one configuration: deleted with it when nothing else uses it.
    pub is_implicit: bool,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// Whose it is, as the caller sees it (and so whether the caller may change it).
    pub ownership: super::Ownership,
    /// When the key stops working, as its owner said; `None` when unknown.
    pub expires_at: Option<chrono::NaiveDateTime>,
}

/// Reads an `expires_at` as the API takes it: RFC 3339 with an offset, stored in UTC to the
/// microsecond (a date in the past is accepted: the key has expired).
pub fn parse_expiry(raw: &str) -> Result<chrono::NaiveDateTime, String> {
    use chrono::{Datelike, SubsecRound};
    let parsed = chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| "must be an RFC 3339 date and time, e.g. 2027-01-31T00:00:00Z".to_owned())?;
    let utc = parsed.naive_utc().trunc_subsecs(6);
    // An offset can carry year 9999 past its end, which no column type round-trips.
    if !(1..=9999).contains(&utc.year()) {
        return Err("must be between the years 1 and 9999".into());
    }
    Ok(utc)
}

/// A connection's model catalogue: the ids its provider listed, sorted, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCatalogue {
    pub fetched_at: Option<chrono::NaiveDateTime>,
    pub models: Vec<String>,
}

/// The most model ids a catalogue keeps.
pub const MAX_CATALOGUE_MODELS: usize = 2000;

impl ModelCatalogue {
    /// Sorted (by bytes, the same on both databases), without duplicates, at most
    /// [`MAX_CATALOGUE_MODELS`].
    pub fn normalise(mut models: Vec<String>) -> Vec<String> {
        models.sort_unstable();
        models.dedup();
        models.truncate(MAX_CATALOGUE_MODELS);
        models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_is_sorted_deduplicated_and_capped() {
        let models = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(ModelCatalogue::normalise(models), ["a", "b"]);
        let many: Vec<String> = (0..2500).map(|i| format!("m{i:05}")).rev().collect();
        let kept = ModelCatalogue::normalise(many);
        assert_eq!(kept.len(), MAX_CATALOGUE_MODELS);
        assert_eq!(kept[0], "m00000");
    }
}
