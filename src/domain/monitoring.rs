//! Scheduled checks (monitoring.md): how often and how many at once, what started a check, what
//! it found, and the history a connection keeps of them.

use std::time::Duration;

use super::TestStatus;

/// The shortest interval `LANYARD_CHECK_INTERVAL` accepts.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The longest a connection backs off after answers that say nothing about its key.
pub const MAX_CHECK_BACKOFF: Duration = Duration::from_secs(3600);

/// When and how many connections an instance checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSchedule {
    /// `None`: scheduled checks are off.
    pub interval: Option<Duration>,
    /// At most this many checks at once per instance.
    pub concurrency: usize,
}

impl Default for CheckSchedule {
    fn default() -> Self {
        CheckSchedule {
            interval: Some(Duration::from_secs(6 * 3600)),
            concurrency: 4,
        }
    }
}

impl CheckSchedule {
    /// `raw` is a duration such as `30s`, `15m`, `6h` (at least 5 s), or `off`.
    pub fn parse_interval(raw: &str) -> Result<Option<Duration>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let interval = humantime::parse_duration(raw)
            .map_err(|_| format!("`{raw}` must be a duration such as 30s, 15m or 6h, or `off`"))?;
        if interval < MIN_CHECK_INTERVAL {
            return Err(format!("`{raw}` is shorter than the minimum of 5s"));
        }
        Ok(Some(interval))
    }

    /// `raw` is a whole number from 1 to 64.
    pub fn parse_concurrency(raw: &str) -> Result<usize, String> {
        raw.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("`{raw}` must be a whole number from 1 to 64"))
    }

    /// How long a connection waits after `failures` answers in a row that said nothing about its
    /// key (429, 5xx, timeouts): the interval doubled per failure, up to an hour (or the
    /// interval itself, when that is longer).
    pub fn backoff(interval: Duration, failures: u32) -> Duration {
        let ceiling = interval.max(MAX_CHECK_BACKOFF);
        let factor = 1_u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        interval.checked_mul(factor).map_or(ceiling, |delay| delay.min(ceiling))
    }
}

/// What started a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum CheckTrigger {
    Scheduled,
    Manual,
}

impl CheckTrigger {
    pub const ALL: [CheckTrigger; 2] = [CheckTrigger::Scheduled, CheckTrigger::Manual];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckTrigger::Scheduled => "scheduled",
            CheckTrigger::Manual => "manual",
        }
    }

    pub fn parse(raw: &str) -> Option<CheckTrigger> {
        CheckTrigger::ALL.into_iter().find(|trigger| trigger.as_str() == raw)
    }
}

/// What a check found: the key works, it does not, or the provider gave no verdict (429, 5xx,
/// no answer in time), which changes nothing but the back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum CheckStatus {
    Ok,
    Failed,
    Unavailable,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 3] = [CheckStatus::Ok, CheckStatus::Failed, CheckStatus::Unavailable];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Failed => "failed",
            CheckStatus::Unavailable => "unavailable",
        }
    }

    pub fn parse(raw: &str) -> Option<CheckStatus> {
        CheckStatus::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

/// How a configuration stands: its connection's last check, unless its model has left the
/// connection's latest catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigurationHealth {
    Ok,
    Failing,
    Unchecked,
    ModelMissing,
}

impl ConfigurationHealth {
    /// `catalogue_fetched`: the connection has a catalogue; `model_listed`: the model is in it.
    pub fn of(test_status: TestStatus, catalogue_fetched: bool, model_listed: bool) -> ConfigurationHealth {
        if catalogue_fetched && !model_listed {
            return ConfigurationHealth::ModelMissing;
        }
        match test_status {
            TestStatus::Ok => ConfigurationHealth::Ok,
            TestStatus::Failed => ConfigurationHealth::Failing,
            TestStatus::Untested => ConfigurationHealth::Unchecked,
        }
    }

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigurationHealth::Ok => "ok",
            ConfigurationHealth::Failing => "failing",
            ConfigurationHealth::Unchecked => "unchecked",
            ConfigurationHealth::ModelMissing => "model_missing",
        }
    }

    /// Whether the management page's banner should say so.
    pub fn needs_attention(self) -> bool {
        matches!(self, ConfigurationHealth::Failing | ConfigurationHealth::ModelMissing)
    }
}

/// One check in a connection's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub checked_at: chrono::NaiveDateTime,
    pub trigger: CheckTrigger,
    pub status: CheckStatus,
    pub code: String,
    pub latency_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_as_durations_or_off_with_a_floor() {
        assert_eq!(
            CheckSchedule::parse_interval("6h"),
            Ok(Some(Duration::from_secs(21_600)))
        );
        assert_eq!(CheckSchedule::parse_interval("5s"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(CheckSchedule::parse_interval("off"), Ok(None));
        assert!(CheckSchedule::parse_interval("4s").is_err());
        assert!(CheckSchedule::parse_interval("soon").is_err());
        assert!(CheckSchedule::parse_concurrency("0").is_err());
        assert_eq!(CheckSchedule::parse_concurrency("4"), Ok(4));
    }

    #[test]
    fn back_off_doubles_up_to_an_hour() {
        let five = Duration::from_secs(5);
        assert_eq!(CheckSchedule::backoff(five, 1), Duration::from_secs(10));
        assert_eq!(CheckSchedule::backoff(five, 3), Duration::from_secs(40));
        assert_eq!(CheckSchedule::backoff(five, 30), MAX_CHECK_BACKOFF);
        let six_hours = Duration::from_secs(21_600);
        assert_eq!(CheckSchedule::backoff(six_hours, 2), six_hours);
    }
}
