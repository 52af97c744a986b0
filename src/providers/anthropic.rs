//! Anthropic: `GET {base}/v1/models` with `x-api-key` and the API version header.

use crate::egress::header::HeaderName;

pub const PATH: &str = "/v1/models";
const API_VERSION: &str = "2023-06-01";

pub fn auth_headers(api_key: Option<&str>) -> Vec<(HeaderName, String)> {
    let mut headers = vec![super::header("anthropic-version", API_VERSION.to_owned())];
    if let Some(key) = api_key {
        headers.push(super::header("x-api-key", key.to_owned()));
    }
    headers
}
