//! Google Gemini: `GET {base}/v1beta/models` with the key in `x-goog-api-key` (never in the
//! URL, where it would end up in logs). Models are named `models/<id>`.

use crate::egress::header::HeaderName;

pub const PATH: &str = "/v1beta/models";

pub fn auth_headers(api_key: Option<&str>) -> Vec<(HeaderName, String)> {
    api_key
        .map(|key| vec![super::header("x-goog-api-key", key.to_owned())])
        .unwrap_or_default()
}

pub fn model_ids(value: &serde_json::Value) -> Option<Vec<String>> {
    let models = value.get("models")?.as_array()?;
    Some(
        models
            .iter()
            .filter_map(|model| model.get("name")?.as_str())
            .map(|name| name.strip_prefix("models/").unwrap_or(name).to_owned())
            .collect(),
    )
}
