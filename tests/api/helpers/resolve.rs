//! Resolving and pinning conversations over the API: the typed answers of `GET /api/resolve`
//! and of pinning.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::{TestApp, TestUser};

/// What `GET /api/resolve` answers: where the configuration came from, and the configuration
/// with its key in the clear.
#[derive(Debug, Clone, Deserialize)]
pub struct Resolution {
    /// `default`, `override` or `fallback`.
    pub source: String,
    pub configuration: Resolved,
}

/// The resolved configuration; `id` is `None` for the instance fallback. Fields the tests do
/// not name are ignored, never refused.
#[derive(Debug, Clone, Deserialize)]
pub struct Resolved {
    pub id: Option<Uuid>,
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub effective_base_url: Option<String>,
    pub api_key: Option<String>,
    pub use_count: i64,
    pub last_used_at: Option<String>,
    /// `{}` when none is set (and for the fallback).
    pub parameters: Value,
    /// Fields the tests above do not name (`connection_id`…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A conversation pinned to a configuration, as `PUT …/llm-configuration` and the list answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Override {
    pub conversation_id: String,
    pub configuration_id: Uuid,
    pub updated_at: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

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

/// A resolution that must succeed.
pub async fn resolved(app: &TestApp, token: &str, conversation: Option<&str>) -> Resolution {
    expect_json(resolve(app, token, conversation).await, 200, "resolve").await
}

/// Pins `conversation` to `configuration`; panics unless 200.
pub async fn pin(app: &TestApp, token: &str, conversation: &str, configuration: &Configuration) -> Override {
    let body = json!({"configuration_id": configuration.id});
    expect_json(
        app.put_json(&override_path(conversation), token, &body).await,
        200,
        "pin",
    )
    .await
}

/// A user with a `read,write` token and a `resolve` token.
pub async fn user_and_resolver(app: &TestApp) -> (TestUser, String) {
    let user = app.user().await;
    let resolver = app.token_for(&user, "resolve").await;
    (user, resolver)
}
