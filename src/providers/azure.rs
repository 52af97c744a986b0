//! Azure OpenAI: `GET {resource endpoint}/openai/models?api-version=…` with the `api-key` header.

use crate::egress::header::HeaderName;

pub const PATH: &str = "/openai/models?api-version=2024-10-21";

pub fn auth_headers(api_key: Option<&str>) -> Vec<(HeaderName, String)> {
    api_key
        .map(|key| vec![super::header("api-key", key.to_owned())])
        .unwrap_or_default()
}
