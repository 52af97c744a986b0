//! A configuration's parameters: the settings a runtime passes to the model with it (sampling,
//! limits, the API version, extra headers), each optional and each checked once, here. They are
//! not secret: shown and exported like the model.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// How hard a reasoning model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub const ALL: [ReasoningEffort; 3] = [ReasoningEffort::Low, ReasoningEffort::Medium, ReasoningEffort::High];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        ReasoningEffort::ALL.into_iter().find(|effort| effort.as_str() == raw)
    }
}

/// Settings a runtime passes with the configuration; every member is optional (`{}` when none
/// is set). Serialised with only the members that are set, in a fixed order: the stored form is
/// canonical.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// `[0-9A-Za-z.-]`, as Azure OpenAI names its API versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 32, pattern = r"^[0-9A-Za-z.-]+$")]
    pub api_version: Option<String>,
    /// At most 20 headers sent with every request; credentials (`Authorization`, `Cookie`,
    /// `api-key`, …) and `Host` are refused: keys belong in the key field.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub extra_headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
}

/// One refusal: the member it concerns (`""` for the whole object) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterError {
    pub member: String,
    pub message: String,
}

/// Header names that carry credentials or route the request: a key belongs in the key field,
/// where it is sealed, never in a header shown and exported in clear.
const REFUSED_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
];
const MAX_HEADERS: usize = 20;
const MAX_HEADER_NAME: usize = 64;
const MAX_HEADER_VALUE: usize = 1024;

/// RFC 9110's token characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn number(value: &Value, min: f64, max: f64) -> Result<f64, String> {
    let refusal = || format!("must be a number from {min} to {max}");
    let number = value.as_f64().ok_or_else(refusal)?;
    if (min..=max).contains(&number) {
        Ok(number)
    } else {
        Err(refusal())
    }
}

fn whole_number(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    let refusal = || format!("must be a whole number from {min} to {max}");
    value
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .filter(|number| (min..=max).contains(number))
        .ok_or_else(refusal)
}

fn api_version(value: &Value) -> Result<String, String> {
    let refusal = || "must be 1 to 32 characters of 0-9, A-Z, a-z, `.` and `-`".to_owned();
    let text = value.as_str().ok_or_else(refusal)?;
    let fits = (1..=32).contains(&text.chars().count())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if fits { Ok(text.to_owned()) } else { Err(refusal()) }
}

fn extra_headers(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let headers = value.as_object().ok_or("must be an object of header names to values")?;
    if headers.len() > MAX_HEADERS {
        return Err(format!("must hold at most {MAX_HEADERS} headers"));
    }
    let mut folded_names = std::collections::BTreeSet::new();
    let mut read = BTreeMap::new();
    for (name, value) in headers {
        if !(1..=MAX_HEADER_NAME).contains(&name.chars().count()) || !name.chars().all(is_token_char) {
            let shown: String = name.chars().take(MAX_HEADER_NAME).collect();
            return Err(format!(
                "`{shown}` is not a header name (1 to {MAX_HEADER_NAME} letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let folded = name.to_ascii_lowercase();
        if REFUSED_HEADERS.contains(&folded.as_str()) {
            return Err(format!(
                "`{name}` is not allowed: a key belongs in the API key field, where it is sealed"
            ));
        }
        if !folded_names.insert(folded) {
            return Err(format!("`{name}` is given twice (header names ignore case)"));
        }
        let value = value
            .as_str()
            .filter(|text| {
                (1..=MAX_HEADER_VALUE).contains(&text.chars().count()) && text.chars().all(|c| (' '..='~').contains(&c))
            })
            .ok_or_else(|| format!("the value of `{name}` must be 1 to {MAX_HEADER_VALUE} printable characters"))?;
        read.insert(name.clone(), value.to_owned());
    }
    Ok(read)
}

impl Parameters {
    /// Reads a JSON object of parameters. Every member is optional (`null` is the same as left
    /// out); an unknown member is refused, and so is anything but an object.
    pub fn from_json(value: &Value) -> Result<Parameters, Vec<ParameterError>> {
        let Some(members) = value.as_object() else {
            return Err(vec![ParameterError {
                member: String::new(),
                message: "must be an object".into(),
            }]);
        };
        let mut parameters = Parameters::default();
        let mut errors = Vec::new();
        for (member, value) in members {
            if value.is_null() {
                if !Parameters::MEMBERS.contains(&member.as_str()) {
                    errors.push(ParameterError {
                        member: member.clone(),
                        message: "is not a known parameter".into(),
                    });
                }
                continue;
            }
            let read = match member.as_str() {
                "temperature" => number(value, 0.0, 2.0).map(|v| parameters.temperature = Some(v)),
                "top_p" => number(value, 0.0, 1.0).map(|v| parameters.top_p = Some(v)),
                "max_output_tokens" => {
                    whole_number(value, 1, 1_000_000).map(|v| parameters.max_output_tokens = Some(v))
                }
                "reasoning_effort" => value
                    .as_str()
                    .and_then(ReasoningEffort::parse)
                    .map(|v| parameters.reasoning_effort = Some(v))
                    .ok_or_else(|| "must be \"low\", \"medium\" or \"high\"".to_owned()),
                "timeout_seconds" => whole_number(value, 1, 3600).map(|v| parameters.timeout_seconds = Some(v)),
                "api_version" => api_version(value).map(|v| parameters.api_version = Some(v)),
                "extra_headers" => extra_headers(value).map(|v| parameters.extra_headers = v),
                _ => Err("is not a known parameter".to_owned()),
            };
            if let Err(message) = read {
                errors.push(ParameterError {
                    member: member.clone(),
                    message,
                });
            }
        }
        if errors.is_empty() { Ok(parameters) } else { Err(errors) }
    }

    /// The members a parameters object may hold.
    pub const MEMBERS: [&'static str; 7] = [
        "temperature",
        "top_p",
        "max_output_tokens",
        "reasoning_effort",
        "timeout_seconds",
        "api_version",
        "extra_headers",
    ];

    pub fn is_empty(&self) -> bool {
        *self == Parameters::default()
    }

    /// The canonical JSON text: set members only, in a fixed order (`{}` when none is set).
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(members)) => members,
            _ => Map::new(),
        }
    }

    /// Reads the stored text, which only [`Parameters::to_json_text`] writes; anything else
    /// reads as no parameters.
    pub fn from_stored(text: &str) -> Parameters {
        if text == "{}" {
            return Parameters::default();
        }
        serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|value| Parameters::from_json(&value).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(value: Value) -> Vec<String> {
        Parameters::from_json(&value)
            .unwrap_err()
            .into_iter()
            .map(|error| error.member)
            .collect()
    }

    #[test]
    fn every_member_is_accepted_at_its_bounds() {
        for value in [
            json!({}),
            json!({"temperature": 0, "top_p": 0, "max_output_tokens": 1, "timeout_seconds": 1}),
            json!({"temperature": 2.0, "top_p": 1, "max_output_tokens": 1_000_000, "timeout_seconds": 3600}),
            json!({"reasoning_effort": "low", "api_version": "2024-10-21", "extra_headers": {"X-Team": "a b"}}),
            json!({"api_version": "a".repeat(32), "temperature": null}),
        ] {
            assert!(Parameters::from_json(&value).is_ok(), "{value}");
        }
    }

    #[test]
    fn every_member_is_refused_just_past_its_bounds() {
        assert_eq!(refused(json!({"temperature": 2.01})), ["temperature"]);
        assert_eq!(refused(json!({"temperature": -0.01})), ["temperature"]);
        assert_eq!(refused(json!({"top_p": 1.01})), ["top_p"]);
        assert_eq!(refused(json!({"max_output_tokens": 0})), ["max_output_tokens"]);
        assert_eq!(refused(json!({"max_output_tokens": 1_000_001})), ["max_output_tokens"]);
        assert_eq!(refused(json!({"max_output_tokens": 1.5})), ["max_output_tokens"]);
        assert_eq!(refused(json!({"timeout_seconds": 3601})), ["timeout_seconds"]);
        assert_eq!(refused(json!({"reasoning_effort": "HIGH"})), ["reasoning_effort"]);
        assert_eq!(refused(json!({"api_version": ""})), ["api_version"]);
        assert_eq!(refused(json!({"api_version": "a".repeat(33)})), ["api_version"]);
        assert_eq!(refused(json!({"api_version": "2024/10"})), ["api_version"]);
        assert_eq!(refused(json!({"seed": 1})), ["seed"]);
        assert_eq!(refused(json!([1])), [""]);
    }

    #[test]
    fn credential_headers_and_malformed_ones_are_refused() {
        for name in [
            "Authorization",
            "AUTHORIZATION",
            "x-api-key",
            "Cookie",
            "Host",
            "X-Goog-Api-Key",
        ] {
            assert_eq!(
                refused(json!({"extra_headers": {name: "v"}})),
                ["extra_headers"],
                "{name}"
            );
        }
        let too_many: Map<String, Value> = (0..21).map(|i| (format!("X-{i}"), json!("v"))).collect();
        for headers in [
            Value::Object(too_many),
            json!({"X A": "v"}),
            json!({"": "v"}),
            json!({"x".repeat(65): "v"}),
            json!({"X-A": ""}),
            json!({"X-A": "a\nb"}),
            json!({"X-A": "x".repeat(1025)}),
            json!({"X-A": 1}),
            json!({"X-A": "1", "x-a": "2"}),
            json!("X-A: 1"),
        ] {
            assert_eq!(
                refused(json!({ "extra_headers": headers })),
                ["extra_headers"],
                "{headers}"
            );
        }
    }

    #[test]
    fn the_stored_form_is_canonical_and_reads_back() {
        let parameters = Parameters::from_json(&json!({
            "top_p": 0.5, "temperature": 0.7, "extra_headers": {"X-B": "2", "X-A": "1"}
        }))
        .unwrap();
        let text = parameters.to_json_text();
        assert_eq!(
            text,
            r#"{"extra_headers":{"X-A":"1","X-B":"2"},"temperature":0.7,"top_p":0.5}"#
        );
        assert_eq!(Parameters::from_stored(&text), parameters);
        assert_eq!(Parameters::default().to_json_text(), "{}");
        assert!(Parameters::from_stored("{}").is_empty());
    }
}
