//! Webhooks as the tests create them, a local receiver that records what reaches it, and the
//! signature check a receiver makes (written here independently of Lanyard's own code).

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use lanyard::config::Settings;
use lanyard::domain::RetrySchedule;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::configurations::expect_json;
use crate::helpers::providers::loopback_allowed;
use crate::helpers::{TestApp, egress_policy};

pub const WEBHOOKS: &str = "/api/webhooks";

/// A webhook as the API shows it; `secret` only in the answers that carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub is_active: bool,
    pub organisation_id: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Webhook {
    pub fn path(&self) -> String {
        format!("{WEBHOOKS}/{}", self.id)
    }

    pub fn action(&self, action: &str) -> String {
        format!("{WEBHOOKS}/{}/{action}", self.id)
    }

    pub fn secret(&self) -> &str {
        self.secret.as_deref().expect("the answer carries the secret")
    }
}

/// Deliveries reach the loopback (listed in the webhook allow list), retried after 1 s and 2 s;
/// provider tests reach the loopback too.
pub fn webhooks_to_loopback(settings: &mut Settings) {
    loopback_allowed(settings);
    settings.webhooks.policy = egress_policy("127.0.0.1/32", "public");
    settings.webhooks.retry = RetrySchedule::parse("1s,2s").unwrap();
}

/// `POST /api/webhooks` to `url` for `events`; panics unless 201 with a `Location` naming it.
pub async fn create_webhook(app: &TestApp, token: &str, url: &str, events: Value) -> Webhook {
    create_webhook_at(app, token, WEBHOOKS, json!({"url": url, "events": events})).await
}

/// A POST of `body` to `collection` (the user's or an organisation's); panics unless 201.
pub async fn create_webhook_at(app: &TestApp, token: &str, collection: &str, body: Value) -> Webhook {
    let response = app.post_json(collection, token, &body).await;
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let created: Webhook = expect_json(response, 201, "create webhook").await;
    assert_eq!(location, Some(created.path()));
    created
}

/// `GET /api/webhooks/{id}/deliveries`; panics unless 200.
pub async fn deliveries(app: &TestApp, token: &str, webhook: &Webhook) -> Vec<Value> {
    expect_json(app.get(&webhook.action("deliveries"), token).await, 200, "deliveries").await
}

/// Polls the deliveries log until `done` holds of it (20 s at most).
pub async fn deliveries_until(
    app: &TestApp,
    token: &str,
    webhook: &Webhook,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = deliveries(app, token, webhook).await;
        if done(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "the deliveries log never got there: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A receiver on the loopback that answers `template` to every POST and records them.
pub async fn receiver(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(template).mount(&server).await;
    server
}

pub fn hook_url(server: &MockServer) -> String {
    format!("{}/hooks/lanyard", server.uri())
}

/// What reached a receiver, oldest first.
pub async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("wiremock records requests")
}

/// The received deliveries whose body's `type` is `kind`.
pub async fn received_of(server: &MockServer, kind: &str) -> Vec<Request> {
    received(server)
        .await
        .into_iter()
        .filter(|request| body_of(request)["type"] == kind)
        .collect()
}

/// Waits (up to `within`) until the receiver holds at least `count` deliveries of `kind`.
pub async fn wait_for(server: &MockServer, kind: &str, count: usize, within: Duration) -> Vec<Request> {
    let deadline = Instant::now() + within;
    loop {
        let found = received_of(server, kind).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{count} `{kind}` deliveries did not arrive within {within:?}; received: {:?}",
            received(server)
                .await
                .iter()
                .map(|request| body_of(request)["type"].clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

pub fn header_of(request: &Request, name: &str) -> String {
    request
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// What a receiver checks: `Lanyard-Signature: t=<unix>,v1=<hex>` is the HMAC-SHA256, keyed
/// with the secret's UTF-8 bytes, of `"<t>.<body>"` over the exact bytes received.
pub fn signature_verifies(request: &Request, secret: &str) -> bool {
    let header = header_of(request, "lanyard-signature");
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = Some(value.to_owned()),
            Some(("v1", value)) => signature = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let Ok(unix) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - unix).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    expected == signature
}
