//! The provider catalogue.

use serde::Serialize;

// Stored as its `Provider::id` (the text mapping is in `db/sql_types.rs`). A plain comment: a doc
// comment here would become the OpenAPI schema's description.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    Anthropic,
    Gemini,
    AzureOpenai,
    Mistral,
    Groq,
    Openrouter,
    Deepseek,
    Together,
    Xai,
    Ollama,
    OpenaiCompatible,
}

/// Whether a provider needs an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRequirement {
    Required,
    Optional,
    None,
}

impl Provider {
    pub const ALL: [Provider; 12] = [
        Provider::Openai,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::AzureOpenai,
        Provider::Mistral,
        Provider::Groq,
        Provider::Openrouter,
        Provider::Deepseek,
        Provider::Together,
        Provider::Xai,
        Provider::Ollama,
        Provider::OpenaiCompatible,
    ];

    /// LiteLLM's model prefixes (as OpenHands and LiteLLM write them) and the provider each
    /// names; an OpenAI-compatible endpoint is `openai/` with a base URL.
    pub const LITELLM_PREFIXES: [(&'static str, Provider); 11] = [
        ("anthropic/", Provider::Anthropic),
        ("gemini/", Provider::Gemini),
        ("azure/", Provider::AzureOpenai),
        ("openrouter/", Provider::Openrouter),
        ("mistral/", Provider::Mistral),
        ("groq/", Provider::Groq),
        ("deepseek/", Provider::Deepseek),
        ("together_ai/", Provider::Together),
        ("xai/", Provider::Xai),
        ("ollama/", Provider::Ollama),
        ("openai/", Provider::Openai),
    ];

    /// The model as LiteLLM (and so OpenHands) names it: `anthropic/claude-sonnet-4-5`,
    /// `openai/gpt-4o`, `openai/<model>` for an OpenAI-compatible endpoint.
    pub fn litellm_model(self, model: &str) -> String {
        let provider = match self {
            Provider::OpenaiCompatible => Provider::Openai,
            other => other,
        };
        let prefix = Provider::LITELLM_PREFIXES
            .iter()
            .find(|(_, named)| *named == provider)
            .map_or("openai/", |(prefix, _)| prefix);
        format!("{prefix}{model}")
    }

    pub fn parse(id: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|provider| provider.id() == id)
    }

    pub fn id(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::AzureOpenai => "azure_openai",
            Provider::Mistral => "mistral",
            Provider::Groq => "groq",
            Provider::Openrouter => "openrouter",
            Provider::Deepseek => "deepseek",
            Provider::Together => "together",
            Provider::Xai => "xai",
            Provider::Ollama => "ollama",
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::Openai => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Gemini => "Google Gemini",
            Provider::AzureOpenai => "Azure OpenAI",
            Provider::Mistral => "Mistral",
            Provider::Groq => "Groq",
            Provider::Openrouter => "OpenRouter",
            Provider::Deepseek => "DeepSeek",
            Provider::Together => "Together AI",
            Provider::Xai => "xAI",
            Provider::Ollama => "Ollama",
            Provider::OpenaiCompatible => "Custom (OpenAI-compatible)",
        }
    }

    pub fn key_requirement(self) -> KeyRequirement {
        match self {
            Provider::Ollama => KeyRequirement::None,
            Provider::OpenaiCompatible => KeyRequirement::Optional,
            _ => KeyRequirement::Required,
        }
    }

    pub fn needs_api_key(self) -> bool {
        self.key_requirement() == KeyRequirement::Required
    }

    /// Whether a configuration of this provider may hold a key at all.
    pub fn accepts_api_key(self) -> bool {
        self.key_requirement() != KeyRequirement::None
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Openai => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com"),
            Provider::Mistral => Some("https://api.mistral.ai/v1"),
            Provider::Groq => Some("https://api.groq.com/openai/v1"),
            Provider::Openrouter => Some("https://openrouter.ai/api/v1"),
            Provider::Deepseek => Some("https://api.deepseek.com/v1"),
            Provider::Together => Some("https://api.together.xyz/v1"),
            Provider::Xai => Some("https://api.x.ai/v1"),
            Provider::AzureOpenai | Provider::Ollama | Provider::OpenaiCompatible => None,
        }
    }

    pub fn needs_base_url(self) -> bool {
        self.default_base_url().is_none()
    }

    /// What the form suggests for a base URL the provider has no default for.
    pub fn suggested_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Ollama => Some("http://127.0.0.1:11434"),
            Provider::AzureOpenai => Some("https://YOUR-RESOURCE.openai.azure.com"),
            _ => self.default_base_url(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_parses_back_to_its_provider() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.id()), Some(provider));
        }
        assert_eq!(Provider::parse("OpenAI"), None);
        assert_eq!(Provider::parse(""), None);
    }

    #[test]
    fn base_urls_are_required_exactly_where_there_is_no_default() {
        let needing: Vec<_> = Provider::ALL
            .into_iter()
            .filter(|p| p.needs_base_url())
            .map(Provider::id)
            .collect();
        assert_eq!(needing, ["azure_openai", "ollama", "openai_compatible"]);
        assert!(!Provider::Ollama.accepts_api_key());
        assert!(Provider::OpenaiCompatible.accepts_api_key() && !Provider::OpenaiCompatible.needs_api_key());
    }
}
