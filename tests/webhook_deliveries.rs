//! Webhook deliveries across restarts and instances (issue 15, Must show 4): deliveries are
//! queued in the database, so an instance restarted between two attempts loses none, and with
//! two instances on one database every delivery is sent once (claims in the database, as for
//! scheduled checks). Runs the real `lanyard serve` processes against a local receiver, on
//! SQLite and, when LANYARD_TEST_POSTGRES_URL is set, on PostgreSQL.
//!
//! Its own test binary: it starts and kills servers, which the in-process suite cannot do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod instances;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use instances::{Instance, Site, TestDatabase};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn post(client: &reqwest::Client, instance: &Instance, path: &str, token: &str, body: Value) -> Value {
    let response = client
        .post(instance.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {answer}");
    answer
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

async fn until_received(server: &MockServer, count: usize, within: Duration) -> Vec<Request> {
    let deadline = Instant::now() + within;
    loop {
        let requests = received(server).await;
        if requests.len() >= count {
            return requests;
        }
        assert!(
            Instant::now() < deadline,
            "{count} deliveries did not arrive within {within:?} (got {})",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries_log(client: &reqwest::Client, instance: &Instance, webhook: &str, token: &str) -> Vec<Value> {
    client
        .get(instance.url(&format!("/api/webhooks/{webhook}/deliveries")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn event_id(request: &Request) -> String {
    request.headers["lanyard-event-id"].to_str().unwrap().to_owned()
}

/// The receiver answers 500 once; the instance that tried is stopped before the retry is due,
/// and a restarted one sends it.
async fn an_instance_restarted_between_attempts_loses_no_delivery(postgres: bool) {
    let Some(database) = TestDatabase::create(postgres, "lanyard_hooks") else {
        return;
    };
    let site = Site::new(
        database,
        "hooks1",
        vec![
            ("LANYARD_WEBHOOK_ALLOW", "127.0.0.1/32".into()),
            ("LANYARD_WEBHOOK_RETRY_SCHEDULE", "3s,3s".into()),
            ("LANYARD_CHECK_INTERVAL", "off".into()),
        ],
    );
    let token = site.token("hooks@example.com");
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let client = reqwest::Client::new();

    let first = site.serving("serve-first").await;
    let webhook = post(
        &client,
        &first,
        "/api/webhooks",
        &token,
        json!({"url": format!("{}/hook", receiver.uri())}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let ping = post(&client, &first, &format!("/api/webhooks/{id}/ping"), &token, json!({})).await;
    until_received(&receiver, 1, Duration::from_secs(10)).await;
    // Between attempts: the first one is recorded (an instance killed while sending leaves its
    // claim to lapse instead, a minute later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries_log(&client, &first, &id, &token).await.is_empty() {
        assert!(Instant::now() < deadline, "the first attempt was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(first);

    // The retry falls due while no instance runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(received(&receiver).await.len(), 1);
    let second = site.serving("serve-second").await;
    let requests = until_received(&receiver, 2, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(event_id(request), ping["event_id"].as_str().unwrap());
    }
    let log = deliveries_log(&client, &second, &id, &token).await;
    let attempts: Vec<(i64, i64)> = log
        .iter()
        .map(|entry| {
            (
                entry["attempt"].as_i64().unwrap(),
                entry["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(2, 200), (1, 500)], "{log:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        received(&receiver).await.len(),
        2,
        "a delivered event is not sent again"
    );
}

/// Two instances share the queue: forty pings queued through both arrive once each.
async fn two_instances_send_every_delivery_once(postgres: bool) {
    const PINGS: usize = 40;
    let Some(database) = TestDatabase::create(postgres, "lanyard_hooks") else {
        return;
    };
    let site = Site::new(
        database,
        "hooks1",
        vec![
            ("LANYARD_WEBHOOK_ALLOW", "127.0.0.1/32".into()),
            ("LANYARD_WEBHOOK_RETRY_SCHEDULE", "1s,2s".into()),
            ("LANYARD_CHECK_INTERVAL", "off".into()),
        ],
    );
    let token = site.token("hooks@example.com");
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(50)))
        .mount(&receiver)
        .await;
    let client = reqwest::Client::new();
    let instances = [site.serving("serve-a").await, site.serving("serve-b").await];
    let webhook = post(
        &client,
        &instances[0],
        "/api/webhooks",
        &token,
        json!({"url": format!("{}/hook", receiver.uri())}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let mut queued = HashSet::new();
    for n in 0..PINGS {
        let ping = post(
            &client,
            &instances[n % 2],
            &format!("/api/webhooks/{id}/ping"),
            &token,
            json!({}),
        )
        .await;
        queued.insert(ping["event_id"].as_str().unwrap().to_owned());
    }
    until_received(&receiver, PINGS, Duration::from_secs(30)).await;
    // Anything sent twice would arrive meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = received(&receiver).await;
    let ids: Vec<String> = requests.iter().map(event_id).collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), PINGS, "sent {} deliveries for {PINGS} events", ids.len());
    assert_eq!(unique, queued, "each event once");
    drop(instances);
}

/// The runs start and stop servers: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_attempts_loses_no_delivery_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    an_instance_restarted_between_attempts_loses_no_delivery(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_attempts_loses_no_delivery_on_postgresql() {
    let _turn = ONE_AT_A_TIME.lock().await;
    an_instance_restarted_between_attempts_loses_no_delivery(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_sqlite_send_every_delivery_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    two_instances_send_every_delivery_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_send_every_delivery_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    two_instances_send_every_delivery_once(true).await;
}
