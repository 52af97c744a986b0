//! OpenAI and every provider that speaks its API: `GET {base}/models` with a bearer key.

use crate::egress::header::HeaderName;

pub const PATH: &str = "/models";

pub fn auth_headers(api_key: Option<&str>) -> Vec<(HeaderName, String)> {
    api_key
        .map(|key| vec![(crate::egress::header::AUTHORIZATION, format!("Bearer {key}"))])
        .unwrap_or_default()
}

pub fn model_ids(value: &serde_json::Value) -> Option<Vec<String>> {
    super::data_ids(value)
}
