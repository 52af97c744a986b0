//! Connections as the tests create and address them.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::configurations::Configuration;

pub const CONNECTIONS: &str = "/api/connections";

/// The path of a connection resource (or of any id).
pub fn connection_path(id: &str) -> String {
    format!("{CONNECTIONS}/{id}")
}

/// The `id` of a resource, as a string.
pub fn id_str(resource: &Value) -> String {
    resource["id"].as_str().unwrap().to_owned()
}

/// An OpenAI connection body with `key`, pointed at `base_url` when given.
pub fn openai_connection(name: &str, key: &str, base_url: Option<&str>) -> Value {
    json!({"name": name, "provider": "openai", "api_key": key, "base_url": base_url})
}

/// Creates a connection; panics unless 201 with a `Location` naming it.
pub async fn create_connection(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_json(CONNECTIONS, token, &body).await;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "create connection failed: {body}");
    assert_eq!(location, Some(connection_path(&id_str(&body))));
    body
}

/// `GET /api/connections` for `token`; panics unless 200.
pub async fn list_connections(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get(CONNECTIONS, token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A configuration on `connection` with `model`; panics unless 201.
pub async fn create_on(app: &TestApp, token: &str, name: &str, connection: &Value, model: &str) -> Configuration {
    app.create_configuration(
        token,
        json!({"name": name, "connection_id": connection["id"], "model": model}),
    )
    .await
}
