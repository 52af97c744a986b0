//! A vault of stored keys pinned to conversations, to check after restarts and rotations.

use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::distinctive_key;

/// A stored key, and the conversation pinned to its configuration.
pub struct Pinned {
    pub conversation: String,
    pub id: String,
    pub key: String,
}

/// Five configurations of five providers, each pinned to a conversation of its own; the first
/// is the default.
pub async fn fill_vault(server: &Server, write_token: &str) -> Vec<Pinned> {
    let mut vault = Vec::new();
    for (index, (provider, model, prefix)) in [
        ("openai", "gpt-4o", "sk-proj-"),
        ("anthropic", "claude-sonnet-4", "sk-ant-"),
        ("groq", "llama-3.3-70b", "gsk_"),
        ("openrouter", "openai/gpt-4o", "sk-or-v1-"),
        ("xai", "grok-2", "xai-"),
    ]
    .into_iter()
    .enumerate()
    {
        let key = distinctive_key(prefix);
        let created = server
            .create(
                write_token,
                json!({"name": format!("{provider} key"), "provider": provider, "model": model, "api_key": key}),
            )
            .await;
        let id = created.id.to_string();
        let conversation = format!("conversation-{index}");
        let pinned = server
            .send_json(
                reqwest::Method::PUT,
                &format!("/api/conversations/{conversation}/llm-configuration"),
                write_token,
                &json!({"configuration_id": id}),
            )
            .await;
        assert_eq!(pinned.status(), 200);
        vault.push(Pinned { conversation, id, key });
    }
    vault
}

/// Every stored key resolves, byte for byte: the default, and each configuration through the
/// conversation pinned to it.
pub async fn assert_every_key_resolves(server: &Server, resolve_token: &str, vault: &[Pinned]) {
    let response = server.get("/api/resolve", resolve_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a resolution");
    assert_eq!(body["source"], "default");
    assert_eq!(body["configuration"]["id"], vault[0].id.as_str());
    assert_eq!(body["configuration"]["api_key"], vault[0].key.as_str());
    for pinned in vault {
        let response = server
            .get(
                &format!("/api/resolve?conversation_id={}", pinned.conversation),
                resolve_token,
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("a resolution");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["source"], "override");
        assert_eq!(body["configuration"]["id"], pinned.id.as_str());
        assert_eq!(
            body["configuration"]["api_key"].as_str(),
            Some(pinned.key.as_str()),
            "the key of {} resolves unchanged",
            pinned.id
        );
    }
}
