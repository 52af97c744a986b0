//! A connection's check history (`GET /api/connections/{id}/checks`): manual tests and
//! scheduled checks, newest first; a provider that answers 429/5xx changes no status. The
//! scheduler across several instances is `tests/scheduled_checks.rs`.

use std::time::Duration;

use lanyard::config::Settings;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::configurations::CONFIGURATIONS;
use crate::helpers::connections::{connection_path, create_connection, create_on, openai_connection};
use crate::helpers::providers::{GOOD_KEY, fake_openai, loopback_allowed, openai_base, provider_answering};
use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(settings(loopback_allowed):
    manual_tests_are_kept_in_the_history_newest_first,
    the_connection_page_draws_the_history_as_an_svg_strip_without_inline_style,
    a_configuration_whose_model_left_the_catalogue_reports_model_missing_and_the_page_says_so,
);

on_both_backends!(settings(checked_every_five_seconds):
    a_scheduled_check_the_provider_refuses_with_503_changes_no_status,
    a_scheduled_check_records_a_refused_key_like_a_manual_test,
);

fn checked_every_five_seconds(settings: &mut Settings) {
    loopback_allowed(settings);
    settings.checks.interval = Some(Duration::from_secs(5));
}

async fn history(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let response = app.get(&format!("{path}/checks"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls the history until it holds a check (a scheduled one comes one interval after creation).
async fn first_check(app: &TestApp, token: &str, path: &str) -> Value {
    for _ in 0..100 {
        if let Some(check) = history(app, token, path).await.into_iter().next() {
            return check;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no scheduled check within 20 s");
}

async fn manual_tests_are_kept_in_the_history_newest_first(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("checked", GOOD_KEY, Some(&openai_base(&server))),
    )
    .await;
    let path = connection.path();
    assert_eq!(history(&app, &user.token, &path).await, Vec::<Value>::new());

    let test = app.post_json(&format!("{path}/test"), &user.token, &json!({})).await;
    assert_eq!(test.status(), 200);
    let changed = app
        .put_json(&path, &user.token, &json!({"api_key": "sk-revoked-key-0002"}))
        .await;
    assert_eq!(changed.status(), 200);
    let test = app.post_json(&format!("{path}/test"), &user.token, &json!({})).await;
    assert_eq!(test.status(), 200);

    let checks = history(&app, &user.token, &path).await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(checks[0]["trigger"], "manual");
    assert_eq!(checks[0]["status"], "failed");
    assert_eq!(checks[0]["code"], "invalid_key");
    assert_eq!(checks[1]["status"], "ok");
    assert_eq!(checks[1]["code"], "ok");
    for check in &checks {
        assert!(
            check["checked_at"].as_str().is_some_and(|at| at.ends_with('Z')),
            "{check}"
        );
        assert!(check["latency_ms"].is_i64(), "{check}");
        let mut fields: Vec<&String> = check.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["checked_at", "code", "latency_ms", "status", "trigger"]);
    }
    assert!(checks[0]["checked_at"].as_str() >= checks[1]["checked_at"].as_str());

    let stranger = app.user().await;
    assert_error(
        app.get(&format!("{path}/checks"), &stranger.token).await,
        404,
        "not_found",
    )
    .await;
}

async fn a_scheduled_check_the_provider_refuses_with_503_changes_no_status(app: TestApp) {
    let user = app.user().await;
    let server = provider_answering(ResponseTemplate::new(503)).await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("busy", GOOD_KEY, Some(&openai_base(&server))),
    )
    .await;
    let path = connection.path();
    let check = first_check(&app, &user.token, &path).await;
    assert_eq!(check["trigger"], "scheduled");
    assert_eq!(check["status"], "unavailable");
    assert_eq!(check["code"], "provider_error");
    let after: Value = app.get(&path, &user.token).await.json().await.unwrap();
    assert_eq!(
        after["test_status"], "untested",
        "a 503 says nothing about the key: {after}"
    );
}

async fn a_scheduled_check_records_a_refused_key_like_a_manual_test(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("revoked", "sk-revoked-key-0003", Some(&openai_base(&server))),
    )
    .await;
    let path = connection.path();
    let check = first_check(&app, &user.token, &path).await;
    assert_eq!(check["trigger"], "scheduled");
    assert_eq!(check["status"], "failed");
    assert_eq!(check["code"], "invalid_key");
    let after: Value = app.get(&path, &user.token).await.json().await.unwrap();
    assert_eq!(after["test_status"], "failed", "{after}");
    assert_eq!(after["test_code"], "invalid_key", "{after}");
}

async fn the_connection_page_draws_the_history_as_an_svg_strip_without_inline_style(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("drawn", GOOD_KEY, Some(&openai_base(&server))),
    )
    .await;
    let id = connection.id.to_string();
    let page = browser.page(&format!("/connections/{id}")).await;
    assert!(page.contains("id=\"check-history\""), "{page}");
    assert!(!page.contains("class=\"check-strip\""), "no checks yet, no strip");

    let path = connection_path(&id);
    for _ in 0..2 {
        let test = app.post_json(&format!("{path}/test"), &user.token, &json!({})).await;
        assert_eq!(test.status(), 200);
    }
    let page = browser.page(&format!("/connections/{id}")).await;
    let start = page.find("<svg class=\"check-strip\"").expect("the strip is drawn");
    let strip = &page[start..start + page[start..].find("</svg>").unwrap()];
    assert_eq!(strip.matches("<rect ").count(), 2, "{strip}");
    assert!(strip.contains("fill=\"#2e7d32\""), "ok checks are green: {strip}");
    assert!(strip.contains("manual: ok"), "each bar says what it was: {strip}");
    assert!(!strip.contains("style"), "the CSP forbids inline style: {strip}");
}

async fn health(app: &TestApp, token: &str, configuration: uuid::Uuid) -> String {
    let resource: Value = app
        .get(&format!("{CONFIGURATIONS}/{configuration}"), token)
        .await
        .json()
        .await
        .unwrap();
    resource["health"].as_str().unwrap().to_owned()
}

async fn a_configuration_whose_model_left_the_catalogue_reports_model_missing_and_the_page_says_so(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let connection = create_connection(
        &app,
        &user.token,
        openai_connection("drifting", GOOD_KEY, Some(&openai_base(&server))),
    )
    .await;
    let listed = create_on(&app, &user.token, "listed", &connection, "gpt-4o").await;
    let retired = create_on(&app, &user.token, "retired", &connection, "gpt-3-retired").await;
    assert_eq!(health(&app, &user.token, listed.id).await, "unchecked");
    assert_eq!(
        health(&app, &user.token, retired.id).await,
        "unchecked",
        "no catalogue yet"
    );
    let page = browser.page("/llm-configurations").await;
    assert!(!page.contains("id=\"health-banner\""), "nothing to report yet");

    let path = connection.path();
    let test = app.post_json(&format!("{path}/test"), &user.token, &json!({})).await;
    assert_eq!(test.status(), 200);
    assert_eq!(health(&app, &user.token, listed.id).await, "ok");
    assert_eq!(health(&app, &user.token, retired.id).await, "model_missing");
    let listing: Vec<Value> = app.get(CONFIGURATIONS, &user.token).await.json().await.unwrap();
    let healths: Vec<(&str, &str)> = listing
        .iter()
        .map(|row| (row["name"].as_str().unwrap(), row["health"].as_str().unwrap()))
        .collect();
    assert_eq!(healths, [("listed", "ok"), ("retired", "model_missing")]);

    let page = browser.page("/llm-configurations").await;
    assert!(page.contains("id=\"health-banner\""), "the banner says so: {page}");
    assert_eq!(
        page.matches("data-badge=\"model-missing\"").count(),
        1,
        "on the retired row only"
    );

    // Health follows every change of the model, of the connection and of the catalogue.
    let late = create_on(&app, &user.token, "late", &connection, "gpt-late").await;
    assert_eq!(late.other["health"], "model_missing", "created on a known catalogue");
    let moved = app
        .update_configuration(&user.token, &retired, json!({"model": "gpt-4o-mini"}))
        .await;
    assert_eq!(moved.other["health"], "ok", "its new model is listed");
    assert_eq!(health(&app, &user.token, retired.id).await, "ok");
    let elsewhere = create_connection(
        &app,
        &user.token,
        openai_connection("uncatalogued", GOOD_KEY, Some(&openai_base(&server))),
    )
    .await;
    let moved = app
        .update_configuration(&user.token, &listed, json!({"connection_id": elsewhere.id}))
        .await;
    assert_eq!(
        moved.other["health"], "unchecked",
        "the new connection has no catalogue yet"
    );
    let test = app
        .post_json(&format!("{}/test", elsewhere.path()), &user.token, &json!({}))
        .await;
    assert_eq!(test.status(), 200);
    assert_eq!(health(&app, &user.token, listed.id).await, "ok");
}
