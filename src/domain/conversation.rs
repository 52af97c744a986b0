//! A conversation's id, as the agent runtime names it, and what resolution falls back to when a
//! user has no configuration.

use secrecy::SecretString;

use super::Provider;

/// 1 to 200 printable characters (no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationId(String);

impl ConversationId {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!("must be 1 to {} characters", Self::MAX_CHARS));
        }
        if raw.chars().any(char::is_control) {
            return Err("must contain only printable characters".into());
        }
        Ok(ConversationId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A conversation pinned to one of its owner's configurations.
#[derive(Debug, Clone)]
pub struct ConversationOverride {
    pub conversation_id: String,
    pub configuration_id: uuid::Uuid,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// The instance-wide configuration (`LANYARD_FALLBACK_*`) for users who have none.
#[derive(Debug, Clone)]
pub struct FallbackConfiguration {
    pub provider: Provider,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
}

#[cfg(test)]
mod tests {
    use super::ConversationId;

    #[test]
    fn conversation_ids_are_1_to_200_printable_characters() {
        assert!(ConversationId::parse("conv-42").is_ok());
        assert!(ConversationId::parse(&"c".repeat(200)).is_ok());
        assert!(ConversationId::parse(&"c".repeat(201)).is_err());
        assert!(ConversationId::parse("").is_err());
        assert!(ConversationId::parse("bad\nid").is_err());
    }
}
