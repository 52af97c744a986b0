//! The fields of an LLM configuration, each parsed once.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// A configuration's display name: trimmed, 1 to 64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigName(String);

impl ConfigName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        if has_control(name) {
            return Err("must not contain control characters".into());
        }
        Ok(ConfigName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and ordering use, computed here so that both
    /// databases agree.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A provider's model id: trimmed, 1 to 200 characters, no whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelId(String);

impl ModelId {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let model = raw.trim();
        let chars = model.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        if model.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace or control characters".into());
        }
        Ok(ModelId(model.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A provider API key. Held as a secret: `Debug` prints a placeholder and the memory is zeroed
/// on drop.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 4096;

    /// Rejects anything that looks like a mask, so that a masked value shown on a page or in
    /// JSON can never be saved over the real key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(format!("must be {} to {} characters", Self::MIN_CHARS, Self::MAX_CHARS));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace or control characters".into());
        }
        if raw.contains('…') || raw.contains("***") || raw.contains('•') {
            return Err(
                "looks like a masked key; enter the full key, or leave the field out to keep the stored one".into(),
            );
        }
        Ok(ApiKey(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// An absolute base URL for a provider: `https` (plain `http` only for hosts the egress policy
/// allows), no user-info, no query, no fragment, at most 2048 characters. Kept without a
/// trailing slash so that request paths append cleanly.
///
/// Which hosts may be reached over plain `http` is the operator's to say, not the domain's: the
/// parser is handed that rule.
/// The rule for plain `http` base URLs: `https` is always accepted, `http` only for the hosts
/// this allows.
pub trait PlainHttpHosts {
    fn allows_plain_http(&self, url: &Url) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub const MAX_CHARS: usize = 2048;

    /// `plain_http` decides which hosts may be reached without TLS (the operator's egress
    /// allow list, in practice).
    pub fn parse(raw: &str, plain_http: &impl PlainHttpHosts) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let url = Url::parse(raw).map_err(|error| format!("must be an absolute URL ({error})"))?;
        if url.host().is_none() {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".into());
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment (#…)".into());
        }
        if url.query().is_some() {
            return Err("must not contain a query string (?…)".into());
        }
        match url.scheme() {
            "https" => {}
            "http" if plain_http.allows_plain_http(&url) => {}
            "http" => {
                return Err(
                    "must use https; plain http is allowed only for hosts the operator lists in LANYARD_EGRESS_ALLOW"
                        .into(),
                );
            }
            _ => return Err("must be an https URL".into()),
        }
        Ok(BaseUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outcome of a configuration's last provider test, stored as `untested`, `ok` or `failed`
/// (the text mapping is in `db/sql_types.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum TestStatus {
    Untested,
    Ok,
    Failed,
}

impl TestStatus {
    pub const ALL: [TestStatus; 3] = [TestStatus::Untested, TestStatus::Ok, TestStatus::Failed];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Untested => "untested",
            TestStatus::Ok => "ok",
            TestStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<TestStatus> {
        TestStatus::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// How pages name it.
    pub fn label(self) -> &'static str {
        match self {
            TestStatus::Untested => "Untested",
            TestStatus::Ok => "OK",
            TestStatus::Failed => "Failed",
        }
    }
}

/// What an organisation's members may do with the key of one of its configurations (the text
/// mapping is in `db/sql_types.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum MemberAccess {
    /// Choose it, pin it, test it; never read the key (the default).
    #[default]
    Use,
    /// Also receive the key through their own `resolve` tokens (audited).
    Reveal,
}

impl MemberAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberAccess::Use => "use",
            MemberAccess::Reveal => "reveal",
        }
    }

    pub fn parse(raw: &str) -> Option<MemberAccess> {
        match raw {
            "use" => Some(MemberAccess::Use),
            "reveal" => Some(MemberAccess::Reveal),
            _ => None,
        }
    }
}

/// A configuration as its owner sees it: every field but the key, of which only the stored
/// hint (the mask) is shown. What the services return and the pages and the API render.
#[derive(Debug, Clone)]
pub struct Configuration {
    pub id: uuid::Uuid,
    /// The connection it uses (provider, base URL, key and last test are the connection's).
    pub connection_id: uuid::Uuid,
    /// That connection's name.
    pub connection_name: String,
    pub name: String,
    pub provider: super::Provider,
    pub model: String,
    /// The mask computed when the key was saved; `None` without a key.
    pub api_key_hint: Option<String>,
    pub base_url: Option<String>,
    /// Whether it is the caller's default (a per-user choice).
    pub is_default: bool,
    pub is_active: bool,
    pub test_status: TestStatus,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<chrono::NaiveDateTime>,
    pub last_used_at: Option<chrono::NaiveDateTime>,
    pub use_count: i64,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    pub parameters: super::Parameters,
    /// Its connection's last check, or its model missing from the connection's catalogue.
    pub health: super::ConfigurationHealth,
    /// Whose it is, as the caller sees it (and so whether the caller may change it).
    pub ownership: super::Ownership,
    /// What an organisation's members may do with its key (`Use` on a personal one).
    pub member_access: MemberAccess,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_access_reads_back_what_it_stores() {
        for access in [MemberAccess::Use, MemberAccess::Reveal] {
            assert_eq!(MemberAccess::parse(access.as_str()), Some(access));
        }
        assert_eq!(MemberAccess::parse("Reveal"), None);
    }

    #[test]
    fn test_statuses_read_back_what_they_store() {
        for status in TestStatus::ALL {
            assert_eq!(TestStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TestStatus::parse("OK"), None);
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(ConfigName::parse("  work-gpt ").unwrap().as_str(), "work-gpt");
        assert_eq!(ConfigName::parse("Work GPT").unwrap().key(), "work gpt");
        assert!(ConfigName::parse("   ").is_err());
        assert!(ConfigName::parse(&"x".repeat(65)).is_err());
        assert!(ConfigName::parse(&"é".repeat(64)).is_ok());
        assert!(ConfigName::parse("bad\u{7}name").is_err());
        assert!(ConfigName::parse("<img src=x onerror=alert(1)>").is_ok());
    }

    #[test]
    fn models_have_no_inner_whitespace() {
        assert_eq!(ModelId::parse(" gpt-4o ").unwrap().as_str(), "gpt-4o");
        assert!(ModelId::parse("gpt 4o").is_err());
        assert!(ModelId::parse("").is_err());
        assert!(ModelId::parse(&"m".repeat(201)).is_err());
        assert!(ModelId::parse("anthropic/claude-3.5").is_ok());
    }

    #[test]
    fn keys_that_look_masked_are_refused() {
        assert!(ApiKey::parse("sk-…x7Qa-and-more").is_err());
        assert!(ApiKey::parse("sk-***-0123456").is_err());
        assert!(ApiKey::parse("••••••••").is_err());
        assert!(ApiKey::parse("short").is_err());
        assert!(ApiKey::parse("sk-with space-123").is_err());
        assert!(ApiKey::parse(&"k".repeat(4097)).is_err());
        let key = ApiKey::parse("sk-test-0123456789").unwrap();
        assert_eq!(key.expose(), "sk-test-0123456789");
        assert!(!format!("{key:?}").contains("0123456789"));
    }

    #[test]
    fn base_urls_must_be_https_without_credentials_or_fragments() {
        let policy = HttpsOnly;
        assert_eq!(
            BaseUrl::parse("https://api.example.com/v1/", &policy).unwrap().as_str(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            BaseUrl::parse("https://Example.COM", &policy).unwrap().as_str(),
            "https://example.com"
        );
        assert!(BaseUrl::parse("http://api.example.com", &policy).is_err());
        assert!(BaseUrl::parse("ftp://api.example.com", &policy).is_err());
        assert!(BaseUrl::parse("https://user:pw@api.example.com", &policy).is_err());
        assert!(BaseUrl::parse("https://api.example.com/#frag", &policy).is_err());
        assert!(BaseUrl::parse("https://api.example.com/?q=1", &policy).is_err());
        assert!(BaseUrl::parse("/relative", &policy).is_err());
        assert!(BaseUrl::parse(&format!("https://e.com/{}", "a".repeat(2048)), &policy).is_err());
    }

    /// No host may be reached over plain http.
    struct HttpsOnly;

    impl PlainHttpHosts for HttpsOnly {
        fn allows_plain_http(&self, _: &Url) -> bool {
            false
        }
    }
}
