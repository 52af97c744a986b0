//! Configurations as the tests create and address them: the typed resource the API answers with,
//! where it lives, request bodies, the calls that must succeed, and what the database stores.
//! A test that is about the wire format itself (field names, status codes, error bodies) reads
//! the raw JSON instead.

use diesel::prelude::*;
use lanyard::db::DbId;
use lanyard::db::schema::connections;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

pub const CONFIGURATIONS: &str = "/api/llm-configurations";

pub const DEFAULT_CONFIGURATION: &str = "/api/llm-configurations/default";

/// A configuration as the API shows it. Fields the API adds later land in `other` (never
/// refused), so two `Configuration`s are equal exactly when their JSON is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Configuration {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key_masked: Option<String>,
    pub has_api_key: bool,
    pub is_default: bool,
    pub is_active: bool,
    pub test_status: String,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<String>,
    pub last_used_at: Option<String>,
    pub use_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub connection_id: Uuid,
    /// `{}` when none is set.
    pub parameters: Value,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Configuration {
    /// `/api/llm-configurations/{id}`.
    pub fn path(&self) -> String {
        format!("{CONFIGURATIONS}/{}", self.id)
    }

    /// `/api/llm-configurations/{id}/{action}` (`test`, `set-default`).
    pub fn action(&self, action: &str) -> String {
        format!("{}/{action}", self.path())
    }

    /// `/llm-configurations/{id}/{page}`: the page for `edit`, `delete`, `test`….
    pub fn page(&self, page: &str) -> String {
        format!("/llm-configurations/{}/{page}", self.id)
    }

    /// The id as the database keys it.
    pub fn db_id(&self) -> DbId {
        DbId(self.id)
    }

    /// Its connection's id as the database keys it.
    pub fn connection_db_id(&self) -> DbId {
        DbId(self.connection_id)
    }
}

/// Reads an answer that must have `status`; the body parsed as `T`.
pub async fn expect_json<T: serde::de::DeserializeOwned>(response: reqwest::Response, status: u16, what: &str) -> T {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{what}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{what}: {error} in {text}"))
}

/// A valid OpenAI configuration named `name` with `key`.
pub fn openai_with_key(name: &str, key: &str) -> Value {
    json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": key})
}

/// A valid OpenAI configuration named `name`, all with the same key.
pub fn openai(name: &str) -> Value {
    openai_with_key(name, "sk-valid-key-0123456789")
}

/// A valid OpenAI configuration named `name`, with a key of its own derived from the name.
pub fn openai_keyed_by_name(name: &str) -> Value {
    openai_with_key(name, &format!("sk-{name}-key-0123456789"))
}

/// An OpenAI-compatible configuration (model `llama3`) at `base_url`, with `key` when given.
pub fn compatible(name: &str, base_url: &str, key: Option<&str>) -> Value {
    let body = json!({"name": name, "provider": "openai_compatible", "model": "llama3", "base_url": base_url});
    match key {
        Some(key) => with(body, "api_key", json!(key)),
        None => body,
    }
}

/// `body` with `field` set to `value`.
pub fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

impl TestApp {
    /// Creates a configuration; panics unless 201.
    pub async fn create_configuration(&self, token: &str, body: Value) -> Configuration {
        expect_json(self.post_json(CONFIGURATIONS, token, &body).await, 201, "create").await
    }

    /// An OpenAI configuration named `name` with key `key`.
    pub async fn create_openai(&self, token: &str, name: &str, key: &str) -> Configuration {
        self.create_configuration(token, openai_with_key(name, key)).await
    }

    /// `GET /api/llm-configurations`; panics unless 200.
    pub async fn configurations(&self, token: &str) -> Vec<Configuration> {
        expect_json(self.get(CONFIGURATIONS, token).await, 200, "list").await
    }

    /// The names of the configurations, in the order the list gives them.
    pub async fn configuration_names(&self, token: &str) -> Vec<String> {
        self.configurations(token).await.into_iter().map(|c| c.name).collect()
    }

    /// `GET /api/llm-configurations/{id}`; panics unless 200.
    pub async fn configuration(&self, token: &str, id: Uuid) -> Configuration {
        let response = self.get(&format!("{CONFIGURATIONS}/{id}"), token).await;
        expect_json(response, 200, "get").await
    }

    /// The configuration as it is stored now.
    pub async fn refetch(&self, token: &str, configuration: &Configuration) -> Configuration {
        self.configuration(token, configuration.id).await
    }

    /// `PUT /api/llm-configurations/{id}` with `body`; panics unless 200.
    pub async fn update_configuration(&self, token: &str, configuration: &Configuration, body: Value) -> Configuration {
        let response = self.put_json(&configuration.path(), token, &body).await;
        expect_json(response, 200, "update").await
    }

    /// `PUT /api/llm-configurations/{id}/set-default`; the answer as it came.
    pub async fn put_set_default(&self, token: &str, configuration: &Configuration) -> reqwest::Response {
        self.put_json(&configuration.action("set-default"), token, &json!({}))
            .await
    }

    /// `PUT /api/llm-configurations/{id}/set-default`; panics unless 200.
    pub async fn set_default(&self, token: &str, configuration: &Configuration) -> Configuration {
        expect_json(self.put_set_default(token, configuration).await, 200, "set-default").await
    }

    /// The stored ciphertext of a configuration (on its connection), read straight from the
    /// database.
    pub async fn stored_ciphertext(&self, configuration: &Configuration) -> Option<Vec<u8>> {
        let id = configuration.connection_db_id();
        self.with_db(move |conn| {
            connections::table
                .find(id)
                .select(connections::api_key_encrypted)
                .first::<Option<Vec<u8>>>(conn)
                .unwrap()
        })
        .await
    }
}
