//! Fake providers on loopback and the test endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lanyard::config::Settings;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::configurations::Configuration;
use crate::helpers::{TestApp, egress_policy};

/// A loopback port that counts the connections made to it.
pub async fn connection_counter(bind: &str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

/// The operator allows the fake providers' address, and nothing else.
pub fn loopback_allowed(settings: &mut Settings) {
    settings.egress = egress_policy("127.0.0.1/32", "allowlist");
    settings.test_rate_per_minute = 100;
}

pub const GOOD_KEY: &str = "sk-good-key-0001";

pub const PROVIDER_SECRET: &str = "SECRET-PROVIDER-BODY";

pub fn openai_models() -> Value {
    json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "owned_by": "system"},
        {"id": "gpt-4o-mini", "object": "model", "owned_by": "system"},
    ]})
}

/// A fake OpenAI at `{uri}/v1`: the good key gets the model list, any other key a 401.
pub async fn fake_openai() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_models()))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"message": format!("Incorrect API key provided: {PROVIDER_SECRET}")}})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// A fake provider that answers `template` to anything.
pub async fn provider_answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    server
}

pub fn openai_base(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

pub fn openai_values(server: &MockServer, key: &str, model: &str) -> Value {
    json!({"provider": "openai", "model": model, "api_key": key, "base_url": openai_base(server)})
}

pub async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("wiremock records requests")
}

/// `POST /api/llm-configurations/test` that must answer 200; the test result.
pub async fn test_values(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post_json("/api/llm-configurations/test", token, body).await;
    checked_test_result(response, &body.to_string()).await
}

/// `POST /api/llm-configurations/{id}/test` that must answer 200; the test result.
pub async fn test_saved(app: &TestApp, token: &str, saved: &Configuration) -> Value {
    checked_test_result(
        app.post_json(&saved.action("test"), token, &json!({})).await,
        &saved.name,
    )
    .await
}

/// A test result that came with 200 and holds nothing of the provider's own body.
async fn checked_test_result(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "test of {what}: {text}");
    assert!(!text.contains(PROVIDER_SECRET), "the provider's body leaked: {text}");
    serde_json::from_str(&text).unwrap()
}

/// A configuration named `name` of the fake OpenAI at `server`, with the good key.
pub fn openai_at(server: &MockServer, name: &str) -> Value {
    let mut body = openai_values(server, GOOD_KEY, "gpt-4o");
    body["name"] = json!(name);
    body
}

pub fn assert_ok(result: &Value, models: &[&str]) {
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["code"], "ok", "{result}");
    assert_eq!(result["models"], json!(models), "{result}");
    assert_eq!(result["warnings"], json!([]), "{result}");
    assert!(result["latency_ms"].as_i64().is_some_and(|ms| ms >= 0), "{result}");
    assert!(result["message"].is_string(), "{result}");
}

pub fn assert_failed(result: &Value, code: &str) {
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["code"], code, "{result}");
    assert_eq!(result["models"], json!([]), "{result}");
    assert!(result["message"].as_str().is_some_and(|m| !m.is_empty()), "{result}");
}
