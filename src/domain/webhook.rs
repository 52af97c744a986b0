//! Webhooks (monitoring.md): the events Lanyard announces, which of them a webhook wants, where
//! a webhook may point, the retry schedule, and the read models the webhook services return.

use std::time::Duration;

use chrono::NaiveDateTime;
use url::{Host, Url};
use uuid::Uuid;

use super::PlainHttpHosts;

/// What happened. Everything but `ping` fires on transitions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum EventType {
    /// Was `ok` or unchecked, now failing.
    ConnectionFailed,
    /// Was failing, now `ok`.
    ConnectionRecovered,
    /// A configuration's model left its connection's catalogue.
    ConfigurationModelMissing,
    /// The connection's `expires_at` is 7 days away, then 1 day away.
    ConnectionExpiring,
    /// `POST /api/webhooks/{id}/ping`: sent to that webhook only, whatever it subscribes to.
    Ping,
}

impl EventType {
    /// The events a webhook can subscribe to.
    pub const SUBSCRIBABLE: [EventType; 4] = [
        EventType::ConnectionFailed,
        EventType::ConnectionRecovered,
        EventType::ConfigurationModelMissing,
        EventType::ConnectionExpiring,
    ];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConnectionFailed => "connection.failed",
            EventType::ConnectionRecovered => "connection.recovered",
            EventType::ConfigurationModelMissing => "configuration.model_missing",
            EventType::ConnectionExpiring => "connection.expiring",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(raw: &str) -> Option<EventType> {
        EventType::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::Ping])
            .find(|event| event.as_str() == raw)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DeliveryState {
    /// Due at its `next_attempt_at`, or being attempted by the instance that claimed it.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt of the retry schedule failed (or the webhook went away or was switched off).
    GivenUp,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::GivenUp];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::GivenUp => "given_up",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|state| state.as_str() == raw)
    }
}

/// Which events a webhook wants: all (`["*"]`) or a non-empty set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    All,
    Only(Vec<EventType>),
}

impl EventSelection {
    /// From the wire's list of names: `["*"]`, or a non-empty list of subscribable events
    /// (duplicates dropped, in the canonical order).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<EventSelection, String> {
        let names: Vec<&str> = names.into_iter().collect();
        if names.is_empty() {
            return Err("must name at least one event, or be [\"*\"] for all".into());
        }
        if names.contains(&"*") {
            return if names.iter().all(|name| *name == "*") {
                Ok(EventSelection::All)
            } else {
                Err("`*` stands alone: it already means every event".into())
            };
        }
        let mut chosen = Vec::new();
        for name in names {
            match EventType::parse(name).filter(|event| *event != EventType::Ping) {
                Some(event) => chosen.push(event),
                None => {
                    return Err(format!(
                        "`{}` is not an event; use {} or \"*\"",
                        name.chars().take(64).collect::<String>(),
                        EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                    ));
                }
            }
        }
        Ok(EventSelection::Only(
            EventType::SUBSCRIBABLE
                .into_iter()
                .filter(|event| chosen.contains(event))
                .collect(),
        ))
    }

    /// The stored form: `*`, or the names joined by commas.
    pub fn to_stored(&self) -> String {
        self.names().join(",")
    }

    /// Reads the stored form; anything unknown in it is skipped.
    pub fn from_stored(stored: &str) -> EventSelection {
        if stored.trim() == "*" {
            return EventSelection::All;
        }
        EventSelection::Only(
            stored
                .split(',')
                .filter_map(|name| EventType::parse(name.trim()))
                .collect(),
        )
    }

    /// The wire form.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            EventSelection::All => vec!["*"],
            EventSelection::Only(events) => events.iter().map(|event| event.as_str()).collect(),
        }
    }

    pub fn wants(&self, event: EventType) -> bool {
        match self {
            EventSelection::All => true,
            EventSelection::Only(events) => events.contains(&event),
        }
    }
}

/// Where a webhook may point: an absolute `https` URL, or `http` for a host the operator listed
/// in `LANYARD_WEBHOOK_ALLOW`; an IP literal or `localhost` only when listed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub const MAX_CHARS: usize = 2048;

    /// `listed` is the webhook allow list (never the provider tests' one).
    pub fn parse(raw: &str, listed: &impl PlainHttpHosts) -> Result<WebhookUrl, String> {
        let raw = raw.trim();
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        let url = Url::parse(raw)
            .map_err(|_| "must be an absolute URL such as https://hooks.example.com/lanyard".to_owned())?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("must be an https URL".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        let is_listed = listed.allows_plain_http(&url);
        let literal_or_local = match url.host() {
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => true,
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            None => return Err("must name a host".into()),
        };
        if literal_or_local && !is_listed {
            return Err(
                "may not point at an IP address or localhost unless the operator lists it in \
                        LANYARD_WEBHOOK_ALLOW"
                    .into(),
            );
        }
        if url.scheme() == "http" && !is_listed {
            return Err("must be https (plain http only for hosts the operator lists in LANYARD_WEBHOOK_ALLOW)".into());
        }
        Ok(WebhookUrl(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `LANYARD_WEBHOOK_RETRY_SCHEDULE`: how long after each failed attempt the next one comes;
/// after the last, the delivery is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(
            [60, 300, 1800, 7200, 21_600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// Comma-separated durations such as `1m,5m,30m,2h,6h` (at most 20, each from 1 s to 7 days).
    pub fn parse(raw: &str) -> Result<RetrySchedule, String> {
        let delays = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                humantime::parse_duration(entry)
                    .ok()
                    .filter(|delay| *delay >= Duration::from_secs(1) && *delay <= Duration::from_secs(7 * 86_400))
                    .ok_or_else(|| format!("entry `{entry}` must be a duration from 1s to 7d, such as 30s, 5m or 2h"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > 20 {
            return Err("must have at most 20 entries".into());
        }
        Ok(RetrySchedule(delays))
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones; `None`: give up.
    pub fn delay_after(&self, attempts: usize) -> Option<Duration> {
        attempts.checked_sub(1).and_then(|index| self.0.get(index)).copied()
    }
}

/// A webhook as its owner sees it (never its secret).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: Uuid,
    pub owner: super::Owner,
    pub url: String,
    pub events: EventSelection,
    pub description: String,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// One attempt at a delivery, as the deliveries log shows it.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub status_code: Option<i64>,
    /// Why there was no 2xx: `blocked_address`, `timeout`, `unreachable`, `tls_error`,
    /// `http_status`, `secret_unreadable`, …
    pub error: Option<String>,
    pub attempted_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Listed(&'static [&'static str]);

    impl PlainHttpHosts for Listed {
        fn allows_plain_http(&self, url: &Url) -> bool {
            url.host_str().is_some_and(|host| self.0.contains(&host))
        }
    }

    #[test]
    fn webhook_urls_are_https_and_never_an_unlisted_address_or_localhost() {
        let none = Listed(&[]);
        assert!(WebhookUrl::parse("https://hooks.example.com/x", &none).is_ok());
        for refused in [
            "http://hooks.example.com/x",
            "http://169.254.169.254/latest",
            "https://169.254.169.254/latest",
            "http://localhost/x",
            "https://localhost/x",
            "http://10.0.0.1/x",
            "https://[::1]/x",
            "ftp://hooks.example.com",
            "https://user:pw@hooks.example.com",
            "hooks.example.com",
        ] {
            assert!(WebhookUrl::parse(refused, &none).is_err(), "{refused}");
        }
        let listed = Listed(&["127.0.0.1", "localhost"]);
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", &listed).is_ok());
        assert!(WebhookUrl::parse("http://localhost/hook", &listed).is_ok());
        assert!(WebhookUrl::parse("http://10.0.0.1/hook", &listed).is_err());
    }

    #[test]
    fn events_are_a_non_empty_subset_or_star() {
        assert_eq!(EventSelection::parse(["*"]), Ok(EventSelection::All));
        assert!(EventSelection::parse([]).is_err());
        assert!(EventSelection::parse(["*", "connection.failed"]).is_err());
        assert!(EventSelection::parse(["ping"]).is_err());
        assert!(EventSelection::parse(["connection.nope"]).is_err());
        let chosen = EventSelection::parse(["connection.recovered", "connection.failed", "connection.failed"]).unwrap();
        assert_eq!(chosen.names(), ["connection.failed", "connection.recovered"]);
        assert_eq!(EventSelection::from_stored(&chosen.to_stored()), chosen);
        assert!(chosen.wants(EventType::ConnectionFailed));
        assert!(!chosen.wants(EventType::ConnectionExpiring));
    }

    #[test]
    fn the_retry_schedule_parses_durations_and_gives_up_after_the_last() {
        let schedule = RetrySchedule::parse("1s, 2s").unwrap();
        assert_eq!(schedule.delay_after(1), Some(Duration::from_secs(1)));
        assert_eq!(schedule.delay_after(2), Some(Duration::from_secs(2)));
        assert_eq!(schedule.delay_after(3), None);
        assert_eq!(RetrySchedule::default().0.len(), 5);
        assert!(RetrySchedule::parse("soon").is_err());
        assert!(RetrySchedule::parse("0s").is_err());
    }
}
