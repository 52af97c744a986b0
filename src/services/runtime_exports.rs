//! Exports for other tools (runtimes.md): an OpenHands `config.toml` and a LiteLLM proxy
//! `config.yaml` of a user's active configurations, **without keys**: each configuration's key
//! is a placeholder naming an environment variable (`LANYARD_KEY_<NAME>`) for the operator to
//! fill, which both imports read back from the importing environment.

use std::collections::BTreeSet;

use serde::Serialize;
use uuid::Uuid;

use crate::db::{DbConnection, DbId, llm_configurations};
use crate::domain::{Parameters, Provider};
use crate::services::import::ImportError;

/// The formats of `GET /api/export` and `lanyard export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Lanyard's own JSON export (every configuration, none of their keys).
    Json,
    OpenHands,
    Litellm,
}

impl ExportFormat {
    pub fn parse(raw: &str) -> Result<ExportFormat, String> {
        match raw {
            "json" => Ok(ExportFormat::Json),
            "openhands" => Ok(ExportFormat::OpenHands),
            "litellm" => Ok(ExportFormat::Litellm),
            _ => Err("must be json, openhands or litellm".to_owned()),
        }
    }

    /// The media type of the document.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::OpenHands => "application/toml",
            ExportFormat::Litellm => "application/yaml",
        }
    }
}

/// One active configuration as the runtime formats carry it.
struct Exported {
    name: String,
    provider: Provider,
    model: String,
    base_url: Option<String>,
    parameters: Parameters,
    is_default: bool,
    /// The variable its key is read from; `None` for a provider that takes no key.
    key_variable: Option<String>,
}

/// The caller's own active configurations (an organisation's are the organisation's to move),
/// each with the name of its key's variable.
fn exported(conn: &mut DbConnection, owner: Uuid) -> Result<Vec<Exported>, ImportError> {
    let rows = llm_configurations::list_for_user(conn, DbId(owner))?;
    let mut taken = BTreeSet::new();
    Ok(rows
        .into_iter()
        .filter(|row| row.summary.organisation_id.is_none() && row.summary.is_active)
        .map(|row| {
            let summary = row.summary;
            let key_variable = summary
                .provider
                .accepts_api_key()
                .then(|| unique(&mut taken, key_variable(&summary.name)));
            Exported {
                provider: summary.provider,
                parameters: Parameters::from_stored(&summary.parameters),
                name: summary.name,
                model: summary.model,
                base_url: summary.base_url,
                is_default: row.seen.is_default,
                key_variable,
            }
        })
        .collect())
}

/// `LANYARD_KEY_` and the name in upper snake case: letters and digits kept, everything else one
/// `_` between words.
pub fn key_variable(name: &str) -> String {
    let mut words = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            words.push(c.to_ascii_uppercase());
        } else if !words.is_empty() && !words.ends_with('_') {
            words.push('_');
        }
    }
    let words = words.trim_end_matches('_');
    let words = if words.is_empty() { "CONFIGURATION" } else { words };
    format!("LANYARD_KEY_{words}")
}

/// `name`, or `name_2`, `name_3`… when an earlier configuration mapped to it.
fn unique(taken: &mut BTreeSet<String>, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// An OpenHands `config.toml`: `[llm.<name>]` per active configuration and `[llm]` for the
/// default, the model in LiteLLM style, the key as `${LANYARD_KEY_<NAME>}`.
pub fn openhands(conn: &mut DbConnection, owner: Uuid) -> Result<String, ImportError> {
    let configurations = exported(conn, owner)?;
    let mut llm = toml::Table::new();
    if let Some(default) = configurations.iter().find(|c| c.is_default) {
        llm.extend(openhands_group(default));
    }
    for configuration in &configurations {
        llm.insert(
            configuration.name.clone(),
            toml::Value::Table(openhands_group(configuration)),
        );
    }
    let mut document = toml::Table::new();
    document.insert("llm".to_owned(), toml::Value::Table(llm));
    let body = toml::to_string(&document).map_err(|_| ImportError::Encoding("TOML"))?;
    Ok(format!(
        "# Exported by Lanyard without keys: set each LANYARD_KEY_* variable below before use.\n{body}"
    ))
}

fn openhands_group(configuration: &Exported) -> toml::Table {
    let mut group = toml::Table::new();
    let text = |value: &str| toml::Value::String(value.to_owned());
    group.insert(
        "model".into(),
        text(&configuration.provider.litellm_model(&configuration.model)),
    );
    if let Some(variable) = &configuration.key_variable {
        group.insert("api_key".into(), text(&format!("${{{variable}}}")));
    }
    if let Some(url) = &configuration.base_url {
        group.insert("base_url".into(), text(url));
    }
    let parameters = &configuration.parameters;
    if let Some(version) = &parameters.api_version {
        group.insert("api_version".into(), text(version));
    }
    if let Some(value) = parameters.temperature {
        group.insert("temperature".into(), toml::Value::Float(value));
    }
    if let Some(value) = parameters.top_p {
        group.insert("top_p".into(), toml::Value::Float(value));
    }
    if let Some(value) = parameters.max_output_tokens {
        group.insert("max_output_tokens".into(), toml::Value::Integer(value.into()));
    }
    if let Some(value) = parameters.reasoning_effort {
        group.insert("reasoning_effort".into(), text(value.as_str()));
    }
    if let Some(value) = parameters.timeout_seconds {
        group.insert("timeout".into(), toml::Value::Integer(value.into()));
    }
    if !parameters.extra_headers.is_empty() {
        let headers = parameters
            .extra_headers
            .iter()
            .map(|(name, value)| (name.clone(), text(value)))
            .collect();
        group.insert("extra_headers".into(), toml::Value::Table(headers));
    }
    group
}

/// A LiteLLM proxy `config.yaml`: `model_list` with one entry per active configuration, the key
/// as `os.environ/LANYARD_KEY_<NAME>`.
pub fn litellm(conn: &mut DbConnection, owner: Uuid) -> Result<String, ImportError> {
    #[derive(Serialize)]
    struct Document {
        model_list: Vec<Entry>,
    }
    #[derive(Serialize)]
    struct Entry {
        model_name: String,
        litellm_params: LitellmParams,
    }
    let model_list = exported(conn, owner)?
        .into_iter()
        .map(|configuration| Entry {
            litellm_params: LitellmParams::from(&configuration),
            model_name: configuration.name,
        })
        .collect();
    let body = serde_saphyr::to_string(&Document { model_list }).map_err(|_| ImportError::Encoding("YAML"))?;
    Ok(format!(
        "# Exported by Lanyard without keys: set each LANYARD_KEY_* variable below before use.\n{body}"
    ))
}

/// A configuration under LiteLLM's names (`api_base`, `max_tokens`, `timeout`).
#[derive(Serialize)]
struct LitellmParams {
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u32>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extra_headers: std::collections::BTreeMap<String, String>,
}

impl From<&Exported> for LitellmParams {
    fn from(configuration: &Exported) -> Self {
        let parameters = &configuration.parameters;
        LitellmParams {
            model: configuration.provider.litellm_model(&configuration.model),
            api_base: configuration.base_url.clone(),
            api_version: parameters.api_version.clone(),
            api_key: configuration
                .key_variable
                .as_ref()
                .map(|variable| format!("os.environ/{variable}")),
            temperature: parameters.temperature,
            top_p: parameters.top_p,
            max_tokens: parameters.max_output_tokens,
            reasoning_effort: parameters.reasoning_effort.map(|effort| effort.as_str()),
            timeout: parameters.timeout_seconds,
            extra_headers: parameters.extra_headers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_variables_are_upper_snake_case_and_unique() {
        assert_eq!(key_variable("work gpt-4o"), "LANYARD_KEY_WORK_GPT_4O");
        assert_eq!(key_variable("  Claude (team)  "), "LANYARD_KEY_CLAUDE_TEAM");
        assert_eq!(key_variable("Ünïcode ✓"), "LANYARD_KEY_N_CODE");
        assert_eq!(key_variable("✓✓"), "LANYARD_KEY_CONFIGURATION");
        let mut taken = BTreeSet::new();
        assert_eq!(unique(&mut taken, key_variable("a b")), "LANYARD_KEY_A_B");
        assert_eq!(unique(&mut taken, key_variable("a-b")), "LANYARD_KEY_A_B_2");
        assert_eq!(unique(&mut taken, key_variable("a.b")), "LANYARD_KEY_A_B_3");
    }

    #[test]
    fn formats_parse_from_their_names() {
        assert_eq!(ExportFormat::parse("openhands"), Ok(ExportFormat::OpenHands));
        assert_eq!(ExportFormat::parse("litellm"), Ok(ExportFormat::Litellm));
        assert_eq!(ExportFormat::parse("json"), Ok(ExportFormat::Json));
        assert!(ExportFormat::parse("yaml").is_err());
    }
}
