//! Resolving and pinning conversations over the API.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser};

/// A conversation id as one path segment.
pub fn segment(conversation: &str) -> String {
    url::form_urlencoded::byte_serialize(conversation.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub fn override_path(conversation: &str) -> String {
    format!("/api/conversations/{}/llm-configuration", segment(conversation))
}

/// `GET /api/resolve`, with `conversation_id` when given.
pub async fn resolve(app: &TestApp, token: &str, conversation: Option<&str>) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    if let Some(conversation) = conversation {
        url.query_pairs_mut().append_pair("conversation_id", conversation);
    }
    app.client.get(url).bearer_auth(token).send().await.unwrap()
}

/// A resolution that must succeed; returns its body.
pub async fn resolved(app: &TestApp, token: &str, conversation: Option<&str>) -> Value {
    let response = resolve(app, token, conversation).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "resolve failed: {body}");
    body
}

/// Pins `conversation` to `configuration_id`; panics unless 200.
pub async fn pin(app: &TestApp, token: &str, conversation: &str, configuration_id: &str) -> Value {
    let response = app
        .put_json(
            &override_path(conversation),
            token,
            &json!({"configuration_id": configuration_id}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "pinning failed: {body}");
    body
}

pub async fn configuration(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get(&format!("/api/llm-configurations/{id}"), token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "GET configuration failed: {body}");
    body
}

pub async fn update(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let response = app
        .put_json(&format!("/api/llm-configurations/{id}"), token, &body)
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "update failed: {body}");
    body
}

/// A user with a `read,write` token and a `resolve` token.
pub async fn user_and_resolver(app: &TestApp) -> (TestUser, String) {
    let user = app.user().await;
    let resolver = app.token_for(&user, "resolve").await;
    (user, resolver)
}
