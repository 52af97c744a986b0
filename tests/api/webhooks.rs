//! Webhooks (monitoring.md): managed per user and per organisation with the secret shown once;
//! deliveries signed as the spec says, retried, logged, never following a redirect and never
//! reaching an address the webhook allow list does not open; events on transitions only, from
//! scheduled checks and manual tests alike (`connection.failed`, `connection.recovered`,
//! `configuration.model_missing`, `connection.expiring`). Restarts and several instances are
//! `tests/webhook_deliveries.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lanyard::config::Settings;
use lanyard::domain::RetrySchedule;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::egress::FakeNameServer;
use crate::helpers::configurations::CONFIGURATIONS;
use crate::helpers::connections::{create_connection, create_on, openai_connection};
use crate::helpers::providers::{GOOD_KEY, connection_counter, fake_openai, loopback_allowed, openai_base};
use crate::helpers::webhooks::{
    WEBHOOKS, Webhook, body_of, create_webhook, create_webhook_at, deliveries_until, header_of, hook_url, received,
    received_of, receiver, signature_verifies, wait_for, webhooks_to_loopback,
};
use crate::helpers::{Backend, TestApp, assert_error, egress_policy, location, spawn_app_with};
use crate::on_both_backends;
use crate::organisations::{create_organisation, join};

on_both_backends!(settings(webhooks_to_loopback):
    a_webhook_shows_its_secret_once_and_only_its_owner_manages_it,
    events_must_be_a_non_empty_subset_or_star,
    a_ping_reaches_the_receiver_signed_with_the_secret_from_the_answer,
    a_failing_receiver_is_retried_on_the_schedule_and_every_attempt_is_logged,
    a_receiver_that_redirects_is_not_followed,
    organisation_webhooks_are_managed_by_its_admins_and_owners,
    a_manual_test_is_a_check_too_and_fires_on_transitions,
    an_organisation_connection_notifies_the_organisations_webhooks,
    expiry_is_announced_once_seven_days_before_and_once_one_day_before,
    the_settings_page_manages_webhooks_with_javascript_off,
    rotating_the_master_key_re_seals_webhook_secrets,
    a_model_that_leaves_the_catalogue_on_a_refresh_is_announced_once,
);

on_both_backends!(settings(inside_open_to_provider_tests_only):
    webhook_urls_pointing_inside_are_refused_even_when_provider_tests_may_reach_them,
);

on_both_backends!(settings(inside_open_to_webhooks):
    webhook_urls_the_operator_lists_for_webhooks_are_accepted,
);

on_both_backends!(settings(checked_every_five_seconds):
    a_refused_key_sends_one_connection_failed_then_one_connection_recovered,
    a_model_leaving_the_catalogue_sends_one_configuration_model_missing,
);

on_both_backends!(backend:
    a_name_resolving_to_a_blocked_address_fails_the_delivery_without_connecting,
);

const INSIDE: [&str; 3] = [
    "http://169.254.169.254/latest/meta-data",
    "http://localhost/hook",
    "http://10.0.0.1/hook",
];

fn inside_open_to_provider_tests_only(settings: &mut Settings) {
    settings.egress = egress_policy("169.254.169.254, localhost, 10.0.0.1", "allowlist");
}

fn inside_open_to_webhooks(settings: &mut Settings) {
    settings.webhooks.policy = egress_policy("169.254.169.254, localhost, 10.0.0.1", "public");
}

fn checked_every_five_seconds(settings: &mut Settings) {
    webhooks_to_loopback(settings);
    settings.checks.interval = Some(Duration::from_secs(5));
}

/// One check interval (the next check comes at most one interval after the last), and some
/// slack for a busy machine.
const WITHIN_AN_INTERVAL: Duration = Duration::from_secs(8);

async fn a_webhook_shows_its_secret_once_and_only_its_owner_manages_it(app: TestApp) {
    let user = app.user().await;
    let created = create_webhook(&app, &user.token, "https://hooks.example.com/lanyard", json!(["*"])).await;
    let secret = created.secret().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(secret.len(), 6 + 32);
    assert!(secret[6..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created.events, ["*"]);
    assert!(created.is_active);
    assert_eq!(created.organisation_id, None);
    assert_eq!(created.url, "https://hooks.example.com/lanyard");
    assert!(created.other.is_empty(), "{:?}", created.other);
    assert!(created.created_at.ends_with('Z') && created.updated_at.ends_with('Z'));

    let fetched = app.get(&created.path(), &user.token).await.text().await.unwrap();
    assert!(!fetched.contains(&secret), "the secret is shown once: {fetched}");
    assert!(!fetched.contains("\"secret\""), "{fetched}");
    let listed = app.get(WEBHOOKS, &user.token).await.text().await.unwrap();
    assert!(!listed.contains(&secret[6..]), "{listed}");
    let listed: Vec<Webhook> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1);

    let updated: Webhook = app
        .put_json(
            &created.path(),
            &user.token,
            &json!({"events": ["connection.recovered", "connection.failed"], "description": "pager", "is_active": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated.events, ["connection.failed", "connection.recovered"]);
    assert_eq!(updated.description, "pager");
    assert!(!updated.is_active);

    let rotated: Webhook = app
        .post_json(&created.action("rotate-secret"), &user.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(rotated.secret().starts_with("whsec_"));
    assert_ne!(rotated.secret(), secret);

    let reader = app.token_for(&user, "read").await;
    assert_eq!(app.get(&created.path(), &reader).await.status(), 200);
    assert_error(
        app.post_json(WEBHOOKS, &reader, &json!({"url": "https://hooks.example.com/x"}))
            .await,
        403,
        "forbidden",
    )
    .await;

    let stranger = app.user().await;
    assert_error(app.get(&created.path(), &stranger.token).await, 404, "not_found").await;
    assert_error(
        app.put_json(&created.path(), &stranger.token, &json!({"description": "mine"}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json(&created.action("rotate-secret"), &stranger.token, &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&created.action("deliveries"), &stranger.token).await,
        404,
        "not_found",
    )
    .await;
    assert_error(app.delete(&created.path(), &stranger.token).await, 404, "not_found").await;
    let theirs: Vec<Value> = app.get(WEBHOOKS, &stranger.token).await.json().await.unwrap();
    assert!(theirs.is_empty());

    assert_eq!(app.delete(&created.path(), &user.token).await.status(), 204);
    assert_error(app.get(&created.path(), &user.token).await, 404, "not_found").await;
}

async fn events_must_be_a_non_empty_subset_or_star(app: TestApp) {
    let user = app.user().await;
    for events in [
        json!([]),
        json!(["connection.nope"]),
        json!(["*", "connection.failed"]),
        json!("connection.failed"),
        json!(["ping"]),
    ] {
        let body = assert_error(
            app.post_json(
                WEBHOOKS,
                &user.token,
                &json!({"url": "https://hooks.example.com/x", "events": events}),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        assert!(body["fields"]["events"].is_array(), "{events}: {body}");
    }
    let body = assert_error(
        app.post_json(
            WEBHOOKS,
            &user.token,
            &json!({"url": "https://hooks.example.com/x", "secret": "whsec_mine"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["fields"]["secret"].is_array(), "{body}");
    let chosen = create_webhook(
        &app,
        &user.token,
        "https://hooks.example.com/y",
        json!(["configuration.model_missing", "connection.expiring"]),
    )
    .await;
    assert_eq!(chosen.events, ["configuration.model_missing", "connection.expiring"]);
}

async fn a_ping_reaches_the_receiver_signed_with_the_secret_from_the_answer(app: TestApp) {
    let user = app.user().await;
    let server = receiver(ResponseTemplate::new(204)).await;
    let webhook = create_webhook(&app, &user.token, &hook_url(&server), json!(["connection.failed"])).await;
    let response = app.post_json(&webhook.action("ping"), &user.token, &json!({})).await;
    assert_eq!(response.status(), 202);
    let ping: Value = response.json().await.unwrap();
    let event_id = ping["event_id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"), "{ping}");

    let arrived = wait_for(&server, "ping", 1, Duration::from_secs(10)).await;
    let request = &arrived[0];
    assert_eq!(request.url.path(), "/hooks/lanyard");
    assert_eq!(header_of(request, "content-type"), "application/json");
    assert_eq!(header_of(request, "lanyard-event-id"), event_id);
    assert!(
        signature_verifies(request, webhook.secret()),
        "the signature verifies with the secret of the 201 answer: {}",
        header_of(request, "lanyard-signature")
    );
    let body = body_of(request);
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "ping");
    assert!(
        body["occurred_at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{body}"
    );

    let log = deliveries_until(&app, &user.token, &webhook, |log| !log.is_empty()).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["event_id"], event_id.as_str());
    assert_eq!(log[0]["type"], "ping");
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["status_code"], 204);
    assert!(log[0]["error"].is_null());
    let mut fields: Vec<&String> = log[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["attempt", "attempted_at", "error", "event_id", "status_code", "type"]
    );

    // After a rotation the next delivery is signed with the new secret only.
    let rotated: Webhook = app
        .post_json(&webhook.action("rotate-secret"), &user.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.post_json(&webhook.action("ping"), &user.token, &json!({}))
            .await
            .status(),
        202
    );
    let arrived = wait_for(&server, "ping", 2, Duration::from_secs(10)).await;
    assert!(signature_verifies(&arrived[1], rotated.secret()));
    assert!(!signature_verifies(&arrived[1], webhook.secret()));

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lanyard_webhook_deliveries_total{result=\"delivered\"}"),
        "{metrics}"
    );
}

async fn a_failing_receiver_is_retried_on_the_schedule_and_every_attempt_is_logged(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let webhook = create_webhook(&app, &user.token, &hook_url(&server), json!(["*"])).await;
    let ping: Value = app
        .post_json(&webhook.action("ping"), &user.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let log = deliveries_until(&app, &user.token, &webhook, |log| log.len() >= 3).await;
    assert_eq!(log.len(), 3, "{log:?}");
    // Newest first.
    let attempts: Vec<(i64, Option<i64>, Option<&str>)> = log
        .iter()
        .map(|entry| {
            (
                entry["attempt"].as_i64().unwrap(),
                entry["status_code"].as_i64(),
                entry["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (3, Some(200), None),
            (2, Some(500), Some("http_status")),
            (1, Some(500), Some("http_status"))
        ]
    );
    assert!(log.iter().all(|entry| entry["event_id"] == ping["event_id"]));
    let requests = received(&server).await;
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|request| header_of(request, "lanyard-event-id") == ping["event_id"].as_str().unwrap()),
        "every attempt carries the same event id"
    );
    let at: Vec<chrono::DateTime<chrono::FixedOffset>> = log
        .iter()
        .rev()
        .map(|entry| chrono::DateTime::parse_from_rfc3339(entry["attempted_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(at[1] - at[0] >= chrono::Duration::milliseconds(900), "1 s: {at:?}");
    assert!(
        at[2] - at[1] >= chrono::Duration::milliseconds(1900),
        "then 2 s: {at:?}"
    );
    // Done: nothing more is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(received(&server).await.len(), 3);
}

async fn a_receiver_that_redirects_is_not_followed(app: TestApp) {
    let user = app.user().await;
    let elsewhere = receiver(ResponseTemplate::new(200)).await;
    let server = receiver(ResponseTemplate::new(302).insert_header("location", hook_url(&elsewhere).as_str())).await;
    let webhook = create_webhook(&app, &user.token, &hook_url(&server), json!(["*"])).await;
    assert_eq!(
        app.post_json(&webhook.action("ping"), &user.token, &json!({}))
            .await
            .status(),
        202
    );
    let log = deliveries_until(&app, &user.token, &webhook, |log| !log.is_empty()).await;
    assert_eq!(log[0]["status_code"], 302, "{log:?}");
    assert_eq!(log[0]["error"], "redirect_not_followed", "{log:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(received(&elsewhere).await.is_empty(), "the redirect was followed");
}

async fn webhook_urls_pointing_inside_are_refused_even_when_provider_tests_may_reach_them(app: TestApp) {
    let user = app.user().await;
    for url in INSIDE
        .iter()
        .map(|url| url.to_string())
        .chain(INSIDE.iter().map(|url| url.replacen("http://", "https://", 1)))
        .chain(["http://hooks.example.com/x".to_owned(), "https://[::1]/x".to_owned()])
    {
        let body = assert_error(
            app.post_json(WEBHOOKS, &user.token, &json!({"url": url})).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(body["fields"]["url"].is_array(), "{url}: {body}");
    }
    // Nor can an existing webhook be moved there.
    let webhook = create_webhook(&app, &user.token, "https://hooks.example.com/x", json!(["*"])).await;
    for url in INSIDE {
        let body = assert_error(
            app.put_json(&webhook.path(), &user.token, &json!({"url": url})).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(body["fields"]["url"].is_array(), "{url}: {body}");
    }
}

async fn webhook_urls_the_operator_lists_for_webhooks_are_accepted(app: TestApp) {
    let user = app.user().await;
    for url in INSIDE {
        let created = create_webhook(&app, &user.token, url, json!(["*"])).await;
        assert!(created.url.starts_with("http://"), "{created:?}");
    }
}

async fn a_name_resolving_to_a_blocked_address_fails_the_delivery_without_connecting(backend: Backend) {
    let (port, connections) = connection_counter("127.0.0.1:0").await;
    let name = format!("hooks.r{}.lanyard.test", uuid::Uuid::new_v4().simple());
    let mut answers = HashMap::new();
    answers.insert(name.clone(), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    let name_server = FakeNameServer::start(answers).await;
    let name_servers = name_server.address.to_string();
    let Some(app) = spawn_app_with(backend, move |settings| {
        // Provider tests may reach the loopback; webhooks may not.
        loopback_allowed(settings);
        settings.webhooks.policy = egress_policy("", "public").with_nameservers(&name_servers).unwrap();
        settings.webhooks.retry = RetrySchedule::parse("1s").unwrap();
    })
    .await
    else {
        return;
    };
    let user = app.user().await;
    let webhook = create_webhook(&app, &user.token, &format!("https://{name}:{port}/hook"), json!(["*"])).await;
    assert_eq!(
        app.post_json(&webhook.action("ping"), &user.token, &json!({}))
            .await
            .status(),
        202
    );
    let log = deliveries_until(&app, &user.token, &webhook, |log| log.len() >= 2).await;
    for entry in &log {
        assert_eq!(entry["error"], "blocked_address", "{log:?}");
        assert!(entry["status_code"].is_null(), "{log:?}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a blocked delivery connected");
}

async fn organisation_webhooks_are_managed_by_its_admins_and_owners(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let member = app.user().await;
    let outsider = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "Hooked").await;
    join(&app, &owner, &organisation, &admin, "admin").await;
    join(&app, &owner, &organisation, &member, "member").await;
    let collection = format!("/api/organisations/{organisation}/webhooks");

    let created = create_webhook_at(
        &app,
        &admin.token,
        &collection,
        json!({"url": "https://hooks.example.com/team", "events": ["connection.failed"], "description": "team"}),
    )
    .await;
    assert_eq!(
        created.organisation_id.map(|id| id.to_string()),
        Some(organisation.clone())
    );
    assert!(created.secret().starts_with("whsec_"));

    for manager in [&owner, &admin] {
        let listed: Vec<Webhook> = app.get(&collection, &manager.token).await.json().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(app.get(&created.path(), &manager.token).await.status(), 200);
    }
    let updated: Webhook = app
        .put_json(&created.path(), &owner.token, &json!({"description": "the team's"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated.description, "the team's");
    // Not the owner's own webhooks.
    let own: Vec<Value> = app.get(WEBHOOKS, &owner.token).await.json().await.unwrap();
    assert!(own.is_empty(), "{own:?}");

    assert_error(app.get(&collection, &member.token).await, 403, "forbidden").await;
    assert_error(
        app.post_json(
            &collection,
            &member.token,
            &json!({"url": "https://hooks.example.com/m"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_error(app.get(&created.path(), &member.token).await, 404, "not_found").await;
    assert_error(app.delete(&created.path(), &member.token).await, 404, "not_found").await;
    assert_error(app.get(&collection, &outsider.token).await, 404, "not_found").await;
    assert_error(
        app.post_json(
            &collection,
            &outsider.token,
            &json!({"url": "https://hooks.example.com/o"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_error(app.get(&created.path(), &outsider.token).await, 404, "not_found").await;
    assert_error(
        app.get(
            &format!("/api/organisations/{}/webhooks", uuid::Uuid::new_v4()),
            &owner.token,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    assert_eq!(app.delete(&created.path(), &admin.token).await.status(), 204);
    let listed: Vec<Value> = app.get(&collection, &owner.token).await.json().await.unwrap();
    assert!(listed.is_empty());
}

/// A receiver for every event, and the user's webhook to it.
async fn subscribed(app: &TestApp, token: &str) -> (MockServer, Webhook) {
    let server = receiver(ResponseTemplate::new(200)).await;
    let webhook = create_webhook(app, token, &hook_url(&server), json!(["*"])).await;
    (server, webhook)
}

/// No key of `keys`, nor its mask, nor the mask's field, is in any delivery.
async fn assert_no_key_in_deliveries(server: &MockServer, keys: &[&str]) {
    for request in received(server).await {
        let body = String::from_utf8_lossy(&request.body).to_string();
        assert!(!body.contains("api_key_masked"), "{body}");
        for key in keys {
            assert!(!body.contains(key), "a key in a delivery: {body}");
            let tail = &key[key.len() - 4..];
            assert!(!body.contains(&format!("…{tail}")), "a mask in a delivery: {body}");
        }
    }
}

async fn a_manual_test_is_a_check_too_and_fires_on_transitions(app: TestApp) {
    let user = app.user().await;
    let (server, _webhook) = subscribed(&app, &user.token).await;
    let provider = fake_openai().await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("manual", "sk-revoked-key-0042", Some(&openai_base(&provider))),
    )
    .await;
    let test_path = format!("{}/test", connection.path());
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    let failed = wait_for(&server, "connection.failed", 1, Duration::from_secs(10)).await;
    let body = body_of(&failed[0]);
    assert_eq!(body["data"]["connection"]["id"], connection.id.to_string());
    assert_eq!(body["data"]["result"]["code"], "invalid_key", "{body}");
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    let changed = app
        .put_json(&connection.path(), &user.token, &json!({"api_key": GOOD_KEY}))
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    wait_for(&server, "connection.recovered", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        received_of(&server, "connection.failed").await.len(),
        1,
        "a second failure is no transition"
    );
    assert_eq!(received_of(&server, "connection.recovered").await.len(), 1);
    assert_no_key_in_deliveries(&server, &["sk-revoked-key-0042", GOOD_KEY]).await;
}

async fn expiry_is_announced_once_seven_days_before_and_once_one_day_before(app: TestApp) {
    let user = app.user().await;
    let (server, _webhook) = subscribed(&app, &user.token).await;
    let provider = fake_openai().await;
    let in_three_days = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let mut body = openai_connection("expiring", GOOD_KEY, Some(&openai_base(&provider)));
    body["expires_at"] = json!(in_three_days);
    let connection = create_connection(&app, &user.token, body).await;
    let shown = connection.other["expires_at"].as_str().unwrap().to_owned();
    assert!(shown.ends_with('Z'), "{shown}");
    let test_path = format!("{}/test", connection.path());
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    let expiring = wait_for(&server, "connection.expiring", 1, Duration::from_secs(10)).await;
    assert_eq!(
        body_of(&expiring[0])["data"]["connection"]["expires_at"],
        shown.as_str()
    );
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);

    // Inside the last day: announced once more, at the next check.
    let in_twelve_hours = (chrono::Utc::now() + chrono::Duration::hours(12)).to_rfc3339();
    let moved: Value = app
        .put_json(&connection.path(), &user.token, &json!({"expires_at": in_twelve_hours}))
        .await
        .json()
        .await
        .unwrap();
    assert!(moved["expires_at"].is_string(), "{moved}");
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    wait_for(&server, "connection.expiring", 2, Duration::from_secs(10)).await;
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received_of(&server, "connection.expiring").await.len(), 2);

    let page = app.get(&connection.path(), &user.token).await;
    assert_eq!(page.status(), 200);
    let cleared: Value = app
        .put_json(&connection.path(), &user.token, &json!({"expires_at": null}))
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["expires_at"].is_null(), "{cleared}");
    let refused = assert_error(
        app.put_json(&connection.path(), &user.token, &json!({"expires_at": "next tuesday"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["expires_at"].is_array(), "{refused}");
}

async fn a_refused_key_sends_one_connection_failed_then_one_connection_recovered(app: TestApp) {
    let user = app.user().await;
    let (server, webhook) = subscribed(&app, &user.token).await;
    let key = "sk-flaky-key-7d3a";
    let provider = MockServer::start().await;
    let accept = || {
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "gpt-4o"}]})))
    };
    accept().mount(&provider).await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("flaky", key, Some(&openai_base(&provider))),
    )
    .await;
    let first = app
        .post_json(&format!("{}/test", connection.path()), &user.token, &json!({}))
        .await;
    assert_eq!(first.status(), 200);

    // The provider starts refusing the key.
    provider.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&provider)
        .await;
    let failed = wait_for(&server, "connection.failed", 1, WITHIN_AN_INTERVAL).await;
    let request = &failed[0];
    assert!(
        signature_verifies(request, webhook.secret()),
        "the signature verifies with the secret of the 201 answer"
    );
    let body = body_of(request);
    assert_eq!(body["data"]["connection"]["test_status"], "failed", "{body}");
    assert_eq!(body["data"]["result"]["code"], "invalid_key", "{body}");
    assert!(body["data"]["connection"].get("api_key_masked").is_none(), "{body}");
    assert_eq!(header_of(request, "lanyard-event-id"), body["id"].as_str().unwrap());

    // The next failing checks send nothing more.
    let checks_before = checks_of(&app, &user.token, &connection.path()).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        checks_of(&app, &user.token, &connection.path()).await > checks_before,
        "another check ran"
    );
    assert_eq!(received_of(&server, "connection.failed").await.len(), 1);

    // The key works again.
    provider.reset().await;
    accept().mount(&provider).await;
    wait_for(&server, "connection.recovered", 1, WITHIN_AN_INTERVAL).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(received_of(&server, "connection.recovered").await.len(), 1);
    assert_eq!(received_of(&server, "connection.failed").await.len(), 1);
    assert_no_key_in_deliveries(&server, &[key]).await;
}

async fn checks_of(app: &TestApp, token: &str, connection: &str) -> usize {
    let checks: Vec<Value> = app
        .get(&format!("{connection}/checks"), token)
        .await
        .json()
        .await
        .unwrap();
    checks.len()
}

/// A provider's answer to `GET /v1/models` listing `models`.
fn listing(models: &[&str]) -> Mock {
    let data: Vec<Value> = models.iter().map(|id| json!({"id": id, "object": "model"})).collect();
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data})))
}

async fn a_model_leaving_the_catalogue_sends_one_configuration_model_missing(app: TestApp) {
    let user = app.user().await;
    let (server, _webhook) = subscribed(&app, &user.token).await;
    let provider = MockServer::start().await;
    listing(&["gpt-4o", "gpt-4o-mini"]).mount(&provider).await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("drifting", GOOD_KEY, Some(&openai_base(&provider))),
    )
    .await;
    let kept = create_on(&app, &user.token, "kept", &connection, "gpt-4o").await;
    let retired = create_on(&app, &user.token, "retired", &connection, "gpt-4o-mini").await;
    let test = app
        .post_json(&format!("{}/test", connection.path()), &user.token, &json!({}))
        .await;
    assert_eq!(test.status(), 200);

    // The provider drops a model from its list.
    provider.reset().await;
    listing(&["gpt-4o"]).mount(&provider).await;
    let missing = wait_for(&server, "configuration.model_missing", 1, WITHIN_AN_INTERVAL).await;
    let body = body_of(&missing[0]);
    assert_eq!(
        body["data"]["configurations"],
        json!([{"id": retired.id, "name": "retired"}]),
        "{body}"
    );
    let health = |id: uuid::Uuid| {
        let path = format!("{CONFIGURATIONS}/{id}");
        let token = user.token.clone();
        let app = &app;
        async move {
            let resource: Value = app.get(&path, &token).await.json().await.unwrap();
            resource["health"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(health(retired.id).await, "model_missing");
    assert_eq!(health(kept.id).await, "ok");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        received_of(&server, "configuration.model_missing").await.len(),
        1,
        "once"
    );
    assert!(received_of(&server, "connection.failed").await.is_empty());
}

async fn the_settings_page_manages_webhooks_with_javascript_off(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = receiver(ResponseTemplate::new(200)).await;
    let page = browser.page("/settings").await;
    assert!(page.contains("id=\"webhooks-section\""), "{page}");
    let csrf = browser.csrf().await;

    let refused = browser
        .post_form(
            "/settings/webhooks",
            &[("csrf_token", csrf.as_str()), ("url", "http://10.0.0.1/hook")],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("id=\"webhook-url-error\""), "{refused}");

    let url = hook_url(&server);
    let created = browser
        .post_form(
            "/settings/webhooks",
            &[
                ("csrf_token", csrf.as_str()),
                ("url", url.as_str()),
                ("events", "connection.failed"),
                ("events", "connection.recovered"),
                ("description", "pager"),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let created = created.text().await.unwrap();
    let marker = "id=\"new-webhook-secret\">";
    let start = created.find(marker).expect("the secret is shown once") + marker.len();
    let secret = &created[start..start + created[start..].find('<').unwrap()];
    assert!(secret.starts_with("whsec_") && secret.len() == 38, "{secret}");
    assert!(!browser.page("/settings").await.contains(secret), "shown once only");

    let listed: Vec<Webhook> = app.get(WEBHOOKS, &user.token).await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].events, ["connection.failed", "connection.recovered"]);
    assert_eq!(listed[0].description, "pager");
    let id = listed[0].id;

    let without_csrf = browser.post_form(&format!("/settings/webhooks/{id}/ping"), &[]).await;
    assert_eq!(without_csrf.status(), 403);
    let pinged = browser
        .post_form(
            &format!("/settings/webhooks/{id}/ping"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(pinged.status(), 303);
    assert_eq!(location(&pinged), "/settings");
    let arrived = wait_for(&server, "ping", 1, Duration::from_secs(10)).await;
    assert!(
        signature_verifies(&arrived[0], secret),
        "the page's secret signs deliveries"
    );
    deliveries_until(&app, &user.token, &listed[0], |log| !log.is_empty()).await;
    let page = browser.page("/settings").await;
    assert!(
        page.contains("ping #1: HTTP 200"),
        "recent deliveries are shown: {page}"
    );

    let stranger = app.user().await;
    let other_browser = app.login(&stranger.email, crate::helpers::TEST_PASSWORD).await;
    let other_csrf = other_browser.csrf().await;
    let theirs = other_browser
        .post_form(
            &format!("/settings/webhooks/{id}/delete"),
            &[("csrf_token", other_csrf.as_str())],
        )
        .await;
    assert_eq!(theirs.status(), 404);

    let deleted = browser
        .post_form(
            &format!("/settings/webhooks/{id}/delete"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    let listed: Vec<Value> = app.get(WEBHOOKS, &user.token).await.json().await.unwrap();
    assert!(listed.is_empty());
    assert!(browser.page("/settings").await.contains("No webhooks yet."));
}

async fn rotating_the_master_key_re_seals_webhook_secrets(app: TestApp) {
    let user = app.user().await;
    let webhook = create_webhook(&app, &user.token, "https://hooks.example.com/sealed", json!(["*"])).await;
    let stored = app.with_db(|conn| lanyard::db::webhooks::all(conn).unwrap()).await;
    assert_eq!(stored.len(), 1);
    assert!(
        !String::from_utf8_lossy(&stored[0].secret_encrypted).contains(&webhook.secret()[6..]),
        "the secret is stored sealed"
    );
    assert_eq!(stored[0].key_id, "test-key");

    let next = crate::helpers::master_key_entry("next");
    let both = lanyard::crypto::MasterKeyring::parse(&format!("{next},{}", app.master_keys)).unwrap();
    let report = app
        .with_db(move |conn| lanyard::services::master_keys::rotate(conn, &both, 100).unwrap())
        .await;
    assert_eq!(report.re_encrypted, 1, "{report:?}");
    assert!(report.remaining.is_empty(), "{report:?}");
    let stored = app.with_db(|conn| lanyard::db::webhooks::all(conn).unwrap()).await;
    assert_eq!(stored[0].key_id, "next");
    let only_next = lanyard::crypto::MasterKeyring::parse(&next).unwrap();
    let opened = lanyard::services::webhooks::open_secret(&only_next, &stored[0]).expect("opens under the new key");
    assert_eq!(opened.expose(), webhook.secret());
}

async fn a_model_that_leaves_the_catalogue_on_a_refresh_is_announced_once(app: TestApp) {
    let user = app.user().await;
    let (server, _webhook) = subscribed(&app, &user.token).await;
    let provider = MockServer::start().await;
    listing(&["gpt-4o", "gpt-4o-mini"]).mount(&provider).await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("refreshed", GOOD_KEY, Some(&openai_base(&provider))),
    )
    .await;
    let retired = create_on(&app, &user.token, "retired", &connection, "gpt-4o-mini").await;
    let test_path = format!("{}/test", connection.path());
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);

    provider.reset().await;
    listing(&["gpt-4o"]).mount(&provider).await;
    let refreshed = app
        .post_json(
            &format!("{}/models/refresh", connection.path()),
            &user.token,
            &json!({}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let missing = wait_for(&server, "configuration.model_missing", 1, Duration::from_secs(10)).await;
    assert_eq!(
        body_of(&missing[0])["data"]["configurations"],
        json!([{"id": retired.id, "name": "retired"}])
    );
    assert_eq!(app.post_json(&test_path, &user.token, &json!({})).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(received_of(&server, "configuration.model_missing").await.len(), 1);
}

async fn an_organisation_connection_notifies_the_organisations_webhooks(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let member = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "Notified").await;
    join(&app, &owner, &organisation, &admin, "admin").await;
    join(&app, &owner, &organisation, &member, "member").await;
    let team_receiver = receiver(ResponseTemplate::new(200)).await;
    create_webhook_at(
        &app,
        &admin.token,
        &format!("/api/organisations/{organisation}/webhooks"),
        json!({"url": hook_url(&team_receiver), "events": ["*"]}),
    )
    .await;
    let (members_receiver, _) = subscribed(&app, &member.token).await;

    let provider = fake_openai().await;
    let created = app
        .post_json(
            &format!("/api/organisations/{organisation}/connections"),
            &admin.token,
            &openai_connection("team", "sk-revoked-key-0077", Some(&openai_base(&provider))),
        )
        .await;
    assert_eq!(created.status(), 201);
    let connection: Value = created.json().await.unwrap();
    let test_path = format!("/api/connections/{}/test", connection["id"].as_str().unwrap());
    assert_eq!(app.post_json(&test_path, &member.token, &json!({})).await.status(), 200);
    let failed = wait_for(&team_receiver, "connection.failed", 1, Duration::from_secs(10)).await;
    assert_eq!(body_of(&failed[0])["data"]["connection"]["id"], connection["id"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        received_of(&members_receiver, "connection.failed").await.is_empty(),
        "a member's own webhooks hear only of their own connections"
    );
    assert_no_key_in_deliveries(&team_receiver, &["sk-revoked-key-0077"]).await;
}
