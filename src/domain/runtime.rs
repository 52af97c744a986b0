//! What an agent runtime is handed (runtimes.md): a resolved configuration written as the
//! environment variables a runtime or SDK reads, in one of the formats of `lanyard exec`.

use secrecy::{ExposeSecret, SecretString};

use super::parameters::Parameters;
use super::provider::Provider;

/// The variable names `lanyard exec` writes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeFormat {
    /// OpenHands' `LLM_*` variables, as its `LLM.load_from_env()` reads them (the default).
    #[default]
    OpenHands,
    /// The OpenAI SDKs' `OPENAI_*` variables.
    Openai,
    /// The Anthropic SDKs' `ANTHROPIC_*` variables.
    Anthropic,
    /// The provider's own variables as LiteLLM reads them, plus `LITELLM_MODEL`.
    Litellm,
}

impl RuntimeFormat {
    pub const ALL: [RuntimeFormat; 4] = [
        RuntimeFormat::OpenHands,
        RuntimeFormat::Openai,
        RuntimeFormat::Anthropic,
        RuntimeFormat::Litellm,
    ];

    pub fn parse(raw: &str) -> Result<RuntimeFormat, String> {
        RuntimeFormat::ALL
            .into_iter()
            .find(|format| format.as_str() == raw)
            .ok_or_else(|| "must be openhands, openai, anthropic or litellm".to_owned())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeFormat::OpenHands => "openhands",
            RuntimeFormat::Openai => "openai",
            RuntimeFormat::Anthropic => "anthropic",
            RuntimeFormat::Litellm => "litellm",
        }
    }
}

/// A configuration as `GET /api/resolve` hands it to a runtime: the key in clear (redacted in
/// `Debug` by its type).
#[derive(Debug)]
pub struct RuntimeConfiguration {
    pub provider: Provider,
    pub model: String,
    /// As stored: `None` means the provider's default.
    pub base_url: Option<String>,
    /// Where requests go: `base_url` or the provider's default.
    pub effective_base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub parameters: Parameters,
}

/// One variable of the command's environment; the key's value stays a secret until the
/// command is started with it.
#[derive(Debug)]
pub struct RuntimeVariable {
    pub name: &'static str,
    pub value: SecretString,
}

impl RuntimeVariable {
    fn plain(name: &'static str, value: impl Into<String>) -> RuntimeVariable {
        RuntimeVariable {
            name,
            value: SecretString::from(value.into()),
        }
    }

    fn secret(name: &'static str, value: &SecretString) -> RuntimeVariable {
        RuntimeVariable {
            name,
            value: SecretString::from(value.expose_secret().to_owned()),
        }
    }
}

/// The environment variables of `format` for `configuration`; a variable whose value the
/// configuration does not have is left out (never set to an empty string).
pub fn runtime_environment(format: RuntimeFormat, configuration: &RuntimeConfiguration) -> Vec<RuntimeVariable> {
    let mut variables = Vec::new();
    let key = configuration.api_key.as_ref();
    match format {
        RuntimeFormat::OpenHands => {
            variables.push(RuntimeVariable::plain(
                "LLM_MODEL",
                configuration.provider.litellm_model(&configuration.model),
            ));
            variables.extend(key.map(|key| RuntimeVariable::secret("LLM_API_KEY", key)));
            variables.extend(
                configuration
                    .base_url
                    .as_ref()
                    .map(|url| RuntimeVariable::plain("LLM_BASE_URL", url)),
            );
            let parameters = &configuration.parameters;
            let numbers = [
                ("LLM_TEMPERATURE", parameters.temperature.map(|v| v.to_string())),
                ("LLM_TOP_P", parameters.top_p.map(|v| v.to_string())),
                (
                    "LLM_MAX_OUTPUT_TOKENS",
                    parameters.max_output_tokens.map(|v| v.to_string()),
                ),
                ("LLM_TIMEOUT", parameters.timeout_seconds.map(|v| v.to_string())),
                ("LLM_API_VERSION", parameters.api_version.clone()),
                (
                    "LLM_REASONING_EFFORT",
                    parameters.reasoning_effort.map(|v| v.as_str().to_owned()),
                ),
            ];
            for (name, value) in numbers {
                variables.extend(value.map(|value| RuntimeVariable::plain(name, value)));
            }
            if !parameters.extra_headers.is_empty() {
                let headers = serde_json::to_string(&parameters.extra_headers).unwrap_or_else(|_| "{}".to_owned());
                variables.push(RuntimeVariable::plain("LLM_EXTRA_HEADERS", headers));
            }
        }
        RuntimeFormat::Openai => {
            variables.extend(key.map(|key| RuntimeVariable::secret("OPENAI_API_KEY", key)));
            variables.extend(
                configuration
                    .effective_base_url
                    .as_ref()
                    .map(|url| RuntimeVariable::plain("OPENAI_BASE_URL", url)),
            );
            variables.push(RuntimeVariable::plain("OPENAI_MODEL", &configuration.model));
        }
        RuntimeFormat::Anthropic => {
            variables.extend(key.map(|key| RuntimeVariable::secret("ANTHROPIC_API_KEY", key)));
            // Anthropic's SDKs add `/v1` themselves: only a base URL the user set is passed on.
            variables.extend(
                configuration
                    .base_url
                    .as_ref()
                    .map(|url| RuntimeVariable::plain("ANTHROPIC_BASE_URL", url)),
            );
            variables.push(RuntimeVariable::plain("ANTHROPIC_MODEL", &configuration.model));
        }
        RuntimeFormat::Litellm => {
            let (key_name, base_name) = litellm_variables(configuration.provider);
            if let (Some(name), Some(key)) = (key_name, key) {
                variables.push(RuntimeVariable::secret(name, key));
            }
            if let (Some(name), Some(url)) = (base_name, configuration.base_url.as_ref()) {
                variables.push(RuntimeVariable::plain(name, url));
            }
            if configuration.provider == Provider::AzureOpenai {
                variables.extend(
                    configuration
                        .parameters
                        .api_version
                        .as_ref()
                        .map(|version| RuntimeVariable::plain("AZURE_API_VERSION", version)),
                );
            }
            variables.push(RuntimeVariable::plain(
                "LITELLM_MODEL",
                configuration.provider.litellm_model(&configuration.model),
            ));
        }
    }
    variables
}

/// The names LiteLLM reads a provider's key and base URL from.
fn litellm_variables(provider: Provider) -> (Option<&'static str>, Option<&'static str>) {
    match provider {
        Provider::Openai | Provider::OpenaiCompatible => (Some("OPENAI_API_KEY"), Some("OPENAI_API_BASE")),
        Provider::Anthropic => (Some("ANTHROPIC_API_KEY"), Some("ANTHROPIC_API_BASE")),
        Provider::Gemini => (Some("GEMINI_API_KEY"), None),
        Provider::AzureOpenai => (Some("AZURE_API_KEY"), Some("AZURE_API_BASE")),
        Provider::Mistral => (Some("MISTRAL_API_KEY"), None),
        Provider::Groq => (Some("GROQ_API_KEY"), None),
        Provider::Openrouter => (Some("OPENROUTER_API_KEY"), Some("OPENROUTER_API_BASE")),
        Provider::Deepseek => (Some("DEEPSEEK_API_KEY"), None),
        Provider::Together => (Some("TOGETHERAI_API_KEY"), None),
        Provider::Xai => (Some("XAI_API_KEY"), None),
        Provider::Ollama => (None, Some("OLLAMA_API_BASE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(provider: Provider, base_url: Option<&str>) -> RuntimeConfiguration {
        RuntimeConfiguration {
            provider,
            model: "some-model".into(),
            base_url: base_url.map(str::to_owned),
            effective_base_url: Some(base_url.unwrap_or("https://api.example.com/v1").to_owned()),
            api_key: Some(SecretString::from("sk-test-0123456789")),
            parameters: Parameters::default(),
        }
    }

    fn as_pairs(variables: &[RuntimeVariable]) -> Vec<(&'static str, String)> {
        variables
            .iter()
            .map(|variable| (variable.name, variable.value.expose_secret().to_owned()))
            .collect()
    }

    #[test]
    fn openhands_gets_the_litellm_model_name_the_key_and_only_the_parameters_that_are_set() {
        let mut anthropic = configuration(Provider::Anthropic, None);
        anthropic.parameters.temperature = Some(0.25);
        anthropic.parameters.max_output_tokens = Some(4096);
        anthropic.parameters.extra_headers.insert("X-Team".into(), "eng".into());
        assert_eq!(
            as_pairs(&runtime_environment(RuntimeFormat::OpenHands, &anthropic)),
            [
                ("LLM_MODEL", "anthropic/some-model".to_owned()),
                ("LLM_API_KEY", "sk-test-0123456789".to_owned()),
                ("LLM_TEMPERATURE", "0.25".to_owned()),
                ("LLM_MAX_OUTPUT_TOKENS", "4096".to_owned()),
                ("LLM_EXTRA_HEADERS", r#"{"X-Team":"eng"}"#.to_owned()),
            ]
        );
    }

    #[test]
    fn a_compatible_endpoint_is_openai_style_with_its_base_url() {
        let compatible = configuration(Provider::OpenaiCompatible, Some("http://127.0.0.1:9/v1"));
        let pairs = as_pairs(&runtime_environment(RuntimeFormat::OpenHands, &compatible));
        assert!(
            pairs.contains(&("LLM_MODEL", "openai/some-model".to_owned())),
            "{pairs:?}"
        );
        assert!(
            pairs.contains(&("LLM_BASE_URL", "http://127.0.0.1:9/v1".to_owned())),
            "{pairs:?}"
        );
        let litellm = as_pairs(&runtime_environment(RuntimeFormat::Litellm, &compatible));
        assert!(
            litellm.contains(&("OPENAI_API_BASE", "http://127.0.0.1:9/v1".to_owned())),
            "{litellm:?}"
        );
        assert!(
            litellm.contains(&("LITELLM_MODEL", "openai/some-model".to_owned())),
            "{litellm:?}"
        );
    }

    #[test]
    fn azure_under_litellm_carries_key_base_and_api_version() {
        let mut azure = configuration(Provider::AzureOpenai, Some("https://team.openai.azure.com"));
        azure.parameters.api_version = Some("2024-06-01".into());
        let pairs = as_pairs(&runtime_environment(RuntimeFormat::Litellm, &azure));
        for expected in [
            ("AZURE_API_KEY", "sk-test-0123456789"),
            ("AZURE_API_BASE", "https://team.openai.azure.com"),
            ("AZURE_API_VERSION", "2024-06-01"),
            ("LITELLM_MODEL", "azure/some-model"),
        ] {
            assert!(
                pairs.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {pairs:?}"
            );
        }
    }

    #[test]
    fn openai_and_anthropic_formats_name_their_sdks_variables() {
        let openai = as_pairs(&runtime_environment(
            RuntimeFormat::Openai,
            &configuration(Provider::Groq, None),
        ));
        assert_eq!(
            openai,
            [
                ("OPENAI_API_KEY", "sk-test-0123456789".to_owned()),
                ("OPENAI_BASE_URL", "https://api.example.com/v1".to_owned()),
                ("OPENAI_MODEL", "some-model".to_owned()),
            ]
        );
        let anthropic = as_pairs(&runtime_environment(
            RuntimeFormat::Anthropic,
            &configuration(Provider::Anthropic, None),
        ));
        assert_eq!(
            anthropic,
            [
                ("ANTHROPIC_API_KEY", "sk-test-0123456789".to_owned()),
                ("ANTHROPIC_MODEL", "some-model".to_owned()),
            ]
        );
    }

    #[test]
    fn formats_parse_from_their_names_only() {
        for format in RuntimeFormat::ALL {
            assert_eq!(RuntimeFormat::parse(format.as_str()), Ok(format));
        }
        assert!(RuntimeFormat::parse("OpenHands").is_err());
    }
}
