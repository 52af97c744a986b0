//! Configurations as the tests create and address them.

use diesel::prelude::*;
use lanyard::db::DbId;
use lanyard::db::schema::llm_configurations;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

pub fn db_id_of(configuration: &Value) -> DbId {
    DbId(Uuid::parse_str(configuration["id"].as_str().unwrap()).unwrap())
}

pub fn openai_keyed_by_name(name: &str) -> Value {
    json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": format!("sk-{name}-key-0123456789")})
}

pub fn id_of(configuration: &Value) -> &str {
    configuration["id"].as_str().unwrap()
}

pub fn openai_with_key(name: &str, key: &str) -> Value {
    json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": key})
}

pub const CONFIGURATIONS: &str = "/api/llm-configurations";

pub fn path_of(configuration: &Value) -> String {
    format!("{CONFIGURATIONS}/{}", configuration["id"].as_str().unwrap())
}

pub fn openai(name: &str) -> Value {
    json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": "sk-valid-key-0123456789"})
}

/// The stored ciphertext of a configuration, read straight from the database.
pub async fn stored_ciphertext(app: &TestApp, configuration: &Value) -> Option<Vec<u8>> {
    let id = DbId(Uuid::parse_str(configuration["id"].as_str().unwrap()).unwrap());
    app.with_db(move |conn| {
        llm_configurations::table
            .find(id)
            .select(llm_configurations::api_key_encrypted)
            .first::<Option<Vec<u8>>>(conn)
            .unwrap()
    })
    .await
}
