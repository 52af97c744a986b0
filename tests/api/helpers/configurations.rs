//! Configurations as the tests create and address them: where they live in the API, their ids,
//! request bodies, and what the database stores for them.

use diesel::prelude::*;
use lanyard::db::DbId;
use lanyard::db::schema::connections;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

pub const CONFIGURATIONS: &str = "/api/llm-configurations";

/// The `id` of a configuration resource.
pub fn id_of(configuration: &Value) -> &str {
    configuration["id"].as_str().unwrap()
}

/// The `id` of a configuration resource as the database keys it.
pub fn db_id_of(configuration: &Value) -> DbId {
    DbId(Uuid::parse_str(id_of(configuration)).unwrap())
}

/// `/api/llm-configurations/{id}`.
pub fn path_of(configuration: &Value) -> String {
    format!("{CONFIGURATIONS}/{}", id_of(configuration))
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

/// The `connection_id` of a configuration resource as the database keys it.
pub fn connection_db_id_of(configuration: &Value) -> DbId {
    DbId(Uuid::parse_str(configuration["connection_id"].as_str().unwrap()).unwrap())
}

/// The stored ciphertext of a configuration (on its connection), read straight from the database.
pub async fn stored_ciphertext(app: &TestApp, configuration: &Value) -> Option<Vec<u8>> {
    let id = connection_db_id_of(configuration);
    app.with_db(move |conn| {
        connections::table
            .find(id)
            .select(connections::api_key_encrypted)
            .first::<Option<Vec<u8>>>(conn)
            .unwrap()
    })
    .await
}
