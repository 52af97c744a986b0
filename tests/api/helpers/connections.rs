//! Connections as the tests create and address them: the typed resource the API answers with,
//! where it lives, request bodies and the calls that must succeed. A test about the wire format
//! itself reads the raw JSON instead.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use wiremock::MockServer;

use crate::helpers::TestApp;
use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::providers::{GOOD_KEY, openai_base};

pub const CONNECTIONS: &str = "/api/connections";

/// A connection as the API shows it. Fields the API adds later land in `other` (never refused).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Connection {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub base_url: Option<String>,
    pub api_key_masked: Option<String>,
    pub has_api_key: bool,
    pub test_status: String,
    pub test_code: Option<String>,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<String>,
    pub models_fetched_at: Option<String>,
    pub model_count: i64,
    pub configuration_count: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Connection {
    /// `/api/connections/{id}`.
    pub fn path(&self) -> String {
        connection_path(&self.id.to_string())
    }

    /// `/connections/{id}{suffix}`: its page (`""`) or a page action (`/test`, `/delete`…).
    pub fn page(&self, suffix: &str) -> String {
        format!("/connections/{}{suffix}", self.id)
    }
}

/// The path of a connection resource (or of any id).
pub fn connection_path(id: &str) -> String {
    format!("{CONNECTIONS}/{id}")
}

/// An OpenAI connection body with `key`, pointed at `base_url` when given.
pub fn openai_connection(name: &str, key: &str, base_url: Option<&str>) -> Value {
    json!({"name": name, "provider": "openai", "api_key": key, "base_url": base_url})
}

/// Creates a connection; panics unless 201 with a `Location` naming it.
pub async fn create_connection(app: &TestApp, token: &str, body: Value) -> Connection {
    let response = app.post_json(CONNECTIONS, token, &body).await;
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let created: Connection = expect_json(response, 201, "create connection").await;
    assert_eq!(location, Some(created.path()));
    created
}

/// An OpenAI connection named `name` with `key`, at the provider's default address.
pub async fn create_openai_connection(app: &TestApp, token: &str, name: &str, key: &str) -> Connection {
    create_connection(app, token, openai_connection(name, key, None)).await
}

/// `GET /api/connections` for `token`; panics unless 200.
pub async fn list_connections(app: &TestApp, token: &str) -> Vec<Connection> {
    expect_json(app.get(CONNECTIONS, token).await, 200, "list connections").await
}

/// The names of `token`'s connections, in the order the list gives them.
pub async fn connection_names(app: &TestApp, token: &str) -> Vec<String> {
    list_connections(app, token)
        .await
        .into_iter()
        .map(|connection| connection.name)
        .collect()
}

/// `GET /api/connections/{id}`; panics unless 200.
pub async fn fetch_connection(app: &TestApp, token: &str, id: Uuid) -> Connection {
    expect_json(
        app.get(&connection_path(&id.to_string()), token).await,
        200,
        "get connection",
    )
    .await
}

/// A configuration on `connection` with `model`; panics unless 201.
pub async fn create_on(app: &TestApp, token: &str, name: &str, connection: &Connection, model: &str) -> Configuration {
    app.create_configuration(
        token,
        json!({"name": name, "connection_id": connection.id, "model": model}),
    )
    .await
}

/// `PUT /api/connections/{id}` with `body`; panics unless 200.
pub async fn update_connection(app: &TestApp, token: &str, connection: &Connection, body: Value) -> Connection {
    expect_json(
        app.put_json(&connection.path(), token, &body).await,
        200,
        "update connection",
    )
    .await
}

/// An OpenAI connection named `name` with the fake provider's good key, pointed at `server`.
pub async fn create_connection_to(app: &TestApp, token: &str, name: &str, server: &MockServer) -> Connection {
    create_connection(
        app,
        token,
        openai_connection(name, GOOD_KEY, Some(&openai_base(server))),
    )
    .await
}

/// `GET /api/connections/{id}/models`: the stored catalogue as the wire carries it; panics
/// unless 200.
pub async fn models_of(app: &TestApp, token: &str, connection: &Connection) -> Value {
    let response = app.get(&format!("{}/models", connection.path()), token).await;
    expect_json(response, 200, "models").await
}
