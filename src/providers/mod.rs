//! How each provider family is tested: the one free, read-only request its API offers (list
//! the models), and how its answer is read. Keys always travel in headers, never in a URL.

mod anthropic;
mod azure;
mod gemini;
mod ollama;
mod openai_compatible;

use crate::egress::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::domain::Provider;

/// At most this many model ids are kept from a listing.
pub const MAX_MODELS: usize = 500;

/// The request a test makes.
pub struct ModelListRequest {
    pub url: Url,
    pub headers: HeaderMap,
}

/// Why a model-listing request cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The base URL and the provider's path do not form a URL.
    BaseUrl,
    /// The key holds characters no HTTP header can carry.
    KeyNotSendable,
}

/// Builds the model-listing request for `provider` at `base_url` (already without a trailing
/// slash) with `api_key`, if any.
pub fn model_list_request(
    provider: Provider,
    base_url: &str,
    api_key: Option<&str>,
) -> Result<ModelListRequest, RequestError> {
    let (path, auth) = match provider {
        Provider::Anthropic => (anthropic::PATH, anthropic::auth_headers(api_key)),
        Provider::Gemini => (gemini::PATH, gemini::auth_headers(api_key)),
        Provider::AzureOpenai => (azure::PATH, azure::auth_headers(api_key)),
        Provider::Ollama => (ollama::PATH, Vec::new()),
        Provider::Openai
        | Provider::Mistral
        | Provider::Groq
        | Provider::Openrouter
        | Provider::Deepseek
        | Provider::Together
        | Provider::Xai
        | Provider::OpenaiCompatible => (openai_compatible::PATH, openai_compatible::auth_headers(api_key)),
    };
    let url = Url::parse(&format!("{base_url}{path}")).map_err(|_| RequestError::BaseUrl)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        crate::egress::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in auth {
        let mut value = HeaderValue::from_str(&value).map_err(|_| RequestError::KeyNotSendable)?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(ModelListRequest { url, headers })
}

/// The model ids in a successful listing (at most [`MAX_MODELS`]); `None` if the body is not
/// the shape the provider documents.
pub fn parse_models(provider: Provider, body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut models = match provider {
        Provider::Gemini => gemini::model_ids(&value)?,
        Provider::Ollama => ollama::model_ids(&value)?,
        _ => openai_compatible::model_ids(&value)?,
    };
    models.truncate(MAX_MODELS);
    Some(models)
}

/// Every model id in a successful listing, sorted, without duplicates, at most 2,000: what a
/// connection keeps as its catalogue. `None` if the body is not the shape the provider documents.
pub fn parse_catalogue(provider: Provider, body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let models = match provider {
        Provider::Gemini => gemini::model_ids(&value)?,
        Provider::Ollama => ollama::model_ids(&value)?,
        _ => openai_compatible::model_ids(&value)?,
    };
    Some(crate::domain::ModelCatalogue::normalise(models))
}

/// Is `model` among `listed`? Ollama's `llama3` matches its `llama3:latest`.
pub fn model_is_listed(provider: Provider, model: &str, listed: &[String]) -> bool {
    listed
        .iter()
        .any(|id| id == model || (provider == Provider::Ollama && id.strip_suffix(":latest") == Some(model)))
}

fn header(name: &'static str, value: String) -> (HeaderName, String) {
    (HeaderName::from_static(name), value)
}

/// `data[].id`, the OpenAI list shape (also Anthropic's and Azure's).
fn data_ids(value: &serde_json::Value) -> Option<Vec<String>> {
    let data = value.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|item| item.get("id")?.as_str().map(str::to_owned))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_gets_the_request_its_api_expects() {
        let openai = model_list_request(Provider::Openai, "https://api.openai.com/v1", Some("sk-test")).unwrap();
        assert_eq!(openai.url.as_str(), "https://api.openai.com/v1/models");
        assert_eq!(openai.headers["authorization"], "Bearer sk-test");

        let anthropic = model_list_request(Provider::Anthropic, "https://api.anthropic.com", Some("sk-ant-x")).unwrap();
        assert_eq!(anthropic.url.as_str(), "https://api.anthropic.com/v1/models");
        assert_eq!(anthropic.headers["x-api-key"], "sk-ant-x");
        assert_eq!(anthropic.headers["anthropic-version"], "2023-06-01");

        let gemini = model_list_request(Provider::Gemini, "https://g.example", Some("AIza-key")).unwrap();
        assert_eq!(gemini.url.as_str(), "https://g.example/v1beta/models");
        assert_eq!(gemini.headers["x-goog-api-key"], "AIza-key");
        assert!(gemini.url.query().is_none(), "the key never goes in the URL");

        let azure = model_list_request(Provider::AzureOpenai, "https://res.openai.azure.com", Some("az-key")).unwrap();
        assert_eq!(
            azure.url.as_str(),
            "https://res.openai.azure.com/openai/models?api-version=2024-10-21"
        );
        assert_eq!(azure.headers["api-key"], "az-key");

        let ollama = model_list_request(Provider::Ollama, "http://127.0.0.1:11434", None).unwrap();
        assert_eq!(ollama.url.as_str(), "http://127.0.0.1:11434/api/tags");
        assert!(ollama.headers.get("authorization").is_none());
    }

    #[test]
    fn listings_are_read_in_each_shape() {
        let data = br#"{"data":[{"id":"gpt-4o"},{"id":"gpt-4o-mini"}]}"#;
        assert_eq!(parse_models(Provider::Openai, data).unwrap(), ["gpt-4o", "gpt-4o-mini"]);
        let gemini = br#"{"models":[{"name":"models/gemini-1.5-pro"}]}"#;
        assert_eq!(parse_models(Provider::Gemini, gemini).unwrap(), ["gemini-1.5-pro"]);
        let ollama = br#"{"models":[{"name":"llama3:latest","model":"llama3:latest"}]}"#;
        assert_eq!(parse_models(Provider::Ollama, ollama).unwrap(), ["llama3:latest"]);
        assert!(model_is_listed(Provider::Ollama, "llama3", &["llama3:latest".into()]));
        assert!(parse_models(Provider::Openai, b"<html>").is_none());
        let many = format!(
            r#"{{"data":[{}]}}"#,
            (0..600)
                .map(|i| format!(r#"{{"id":"m{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(
            parse_models(Provider::Openai, many.as_bytes()).unwrap().len(),
            MAX_MODELS
        );
    }
}
