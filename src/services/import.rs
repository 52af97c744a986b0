//! Bringing configurations in (OpenHands' `config.toml`, a LiteLLM proxy `config.yaml`, or
//! Lanyard's own export) and taking them out (without any secret). An import is one
//! transaction: all of it or nothing. A key written as a placeholder (`${VAR}` in OpenHands,
//! `os.environ/VAR` in LiteLLM, as Lanyard's own exports write them) is read from the importing
//! environment, never stored as the key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::crypto::MasterKeyring;
use crate::db::{self, DbConnection, DbError, DbId, llm_configurations};
use crate::domain::{Parameters, Provider, UserCap};
use crate::egress::EgressPolicy;
use crate::services::configuration_input::{ConfigurationInput, Sent};
use crate::services::configurations::{self, ConfigurationError, KeyRule, NewConfiguration};

/// A configuration read from a file, validated.
#[derive(Debug)]
pub struct Draft {
    pub origin: String,
    pub configuration: NewConfiguration,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub created: Vec<String>,
    /// Names that already existed, left untouched.
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not valid {format}: {detail}")]
    Malformed { format: &'static str, detail: String },
    #[error("{origin}: {detail}")]
    Invalid { origin: String, detail: String },
    #[error(transparent)]
    Configuration(#[from] ConfigurationError),
    #[error("the export could not be written as {0}")]
    Encoding(&'static str),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// Where an import reads the variables its placeholders name: the importing process's
/// environment, given by the edge (services read no environment themselves).
pub type Environment<'a> = &'a dyn Fn(&str) -> Option<SecretString>;

/// The key a file gives: a placeholder's variable from `environment` (absent when unset), or
/// the text itself.
fn key_from_file(value: &str, placeholder: fn(&str) -> Option<&str>, environment: Environment) -> Sent<SecretString> {
    match placeholder(value.trim()) {
        Some(variable) => environment(variable).map_or(Sent::Absent, Sent::Value),
        None => Sent::Value(SecretString::from(value.to_owned())),
    }
}

/// `${VAR}`: OpenHands' way (and Lanyard's export's) to name a variable.
fn shell_placeholder(value: &str) -> Option<&str> {
    value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|name| is_variable_name(name))
}

/// `os.environ/VAR`: LiteLLM's.
fn litellm_placeholder(value: &str) -> Option<&str> {
    value.strip_prefix("os.environ/").filter(|name| is_variable_name(name))
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl From<diesel::result::Error> for ImportError {
    fn from(error: diesel::result::Error) -> Self {
        ImportError::Store(DbError::Query(error))
    }
}

const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// OpenHands' names for the parameters Lanyard keeps, and Lanyard's name for each.
const OPENHANDS_PARAMETERS: [(&str, &str); 7] = [
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("max_output_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning_effort"),
    ("timeout", "timeout_seconds"),
    ("api_version", "api_version"),
    ("extra_headers", "extra_headers"),
];

/// LiteLLM's names for them (in `litellm_params`).
const LITELLM_PARAMETERS: [(&str, &str); 7] = [
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning_effort"),
    ("timeout", "timeout_seconds"),
    ("api_version", "api_version"),
    ("extra_headers", "extra_headers"),
];

/// The provider a LiteLLM model string names, and the model id as that provider knows it (the
/// prefix stripped; OpenRouter's own ids keep their vendor part, e.g. `anthropic/claude-3.5`).
pub fn provider_from_litellm(model: &str, base_url: Option<&str>) -> (Provider, String) {
    let custom_base = base_url.is_some_and(|url| url.trim_end_matches('/') != OPENAI_BASE_URL);
    for (prefix, provider) in Provider::LITELLM_PREFIXES {
        if let Some(rest) = model.strip_prefix(prefix) {
            let provider = if provider == Provider::Openai && custom_base {
                Provider::OpenaiCompatible
            } else {
                provider
            };
            return (provider, rest.to_owned());
        }
    }
    let provider = if custom_base {
        Provider::OpenaiCompatible
    } else {
        Provider::Openai
    };
    (provider, model.to_owned())
}

/// A parsed TOML document whose strings are wiped when it is dropped: it holds the file's keys
/// in clear until the drafts have taken them into secret types.
struct WipedOnDrop(toml::Table);

impl std::ops::Deref for WipedOnDrop {
    type Target = toml::Table;

    fn deref(&self) -> &toml::Table {
        &self.0
    }
}

impl Drop for WipedOnDrop {
    fn drop(&mut self) {
        fn wipe(value: &mut toml::Value) {
            match value {
                toml::Value::String(text) => zeroize::Zeroize::zeroize(text),
                toml::Value::Array(items) => items.iter_mut().for_each(wipe),
                toml::Value::Table(table) => table.iter_mut().for_each(|(_, value)| wipe(value)),
                _ => {}
            }
        }
        self.0.iter_mut().for_each(|(_, value)| wipe(value));
    }
}

/// A LiteLLM `model_list` whose strings are wiped when it is dropped, like [`WipedOnDrop`].
struct WipedEntriesOnDrop(Vec<Map<String, Value>>);

impl std::ops::Deref for WipedEntriesOnDrop {
    type Target = [Map<String, Value>];

    fn deref(&self) -> &[Map<String, Value>] {
        &self.0
    }
}

impl Drop for WipedEntriesOnDrop {
    fn drop(&mut self) {
        fn wipe(value: &mut Value) {
            match value {
                Value::String(text) => zeroize::Zeroize::zeroize(text),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(members) => members.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.iter_mut().flat_map(|entry| entry.values_mut()).for_each(wipe);
    }
}

/// Where a TOML file stops parsing, and that it is a syntax error. The parser's own message is
/// left out: with its excerpt of the line it may quote a key.
fn toml_error_position(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |start| start.chars().count()) + 1;
            format!("line {line}, column {column}: a syntax error")
        }
        None => "a syntax error".to_owned(),
    }
}

/// Where a JSON file stops parsing, and what kind of problem it is. serde_json's own message
/// may quote a value ("invalid type: string \"sk-…\""), so it is left out.
fn json_error_position(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let problem = match error.classify() {
        Category::Syntax => "a syntax error",
        Category::Eof => "the file ends too early",
        Category::Data => "a field is unknown, missing or of the wrong type for a Lanyard export",
        Category::Io => "it cannot be read",
    };
    format!("line {}, column {}: {problem}", error.line(), error.column())
}

fn invalid(origin: &str, field: &str, message: impl std::fmt::Display) -> ImportError {
    ImportError::Invalid {
        origin: origin.to_owned(),
        detail: format!("{field} {message}"),
    }
}

/// A configuration read from a file, through the parser every configuration's input goes
/// through; its refusals name the file's fields (`name_field` is what the file calls the name).
fn draft(
    origin: &str,
    name_field: &str,
    input: ConfigurationInput,
    policy: &EgressPolicy,
) -> Result<Draft, ImportError> {
    let configuration = input.into_new(policy).map_err(|errors| ImportError::Invalid {
        origin: origin.to_owned(),
        detail: errors
            .rename("name", name_field)
            .iter()
            .flat_map(|(field, messages)| messages.iter().map(move |message| format!("{field} {message}")))
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    Ok(Draft {
        origin: origin.to_owned(),
        configuration,
    })
}

/// Reads OpenHands' `config.toml`: `[llm]` becomes `openhands-default`, each `[llm.NAME]`
/// becomes `NAME`; an `[llm]` identical to a named group (as Lanyard's export writes the
/// default) is not imported twice, it makes that group the default. Other settings are ignored.
pub fn parse_openhands(text: &str, policy: &EgressPolicy, environment: Environment) -> Result<Vec<Draft>, ImportError> {
    let document = WipedOnDrop(text.parse().map_err(|error: toml::de::Error| ImportError::Malformed {
        format: "TOML",
        detail: toml_error_position(text, &error),
    })?);
    let Some(llm) = document.get("llm") else {
        return Err(ImportError::Malformed {
            format: "OpenHands configuration",
            detail: "there is no [llm] section".into(),
        });
    };
    let llm = llm.as_table().ok_or_else(|| ImportError::Malformed {
        format: "OpenHands configuration",
        detail: "`llm` is not a table".into(),
    })?;
    // A named group is a table under `[llm]`, except the settings that are tables themselves.
    let group = |name: &str, value: &toml::Value| -> Option<toml::Table> {
        value.as_table().filter(|_| name != "extra_headers").cloned()
    };
    // `[llm]`'s own settings: every member that is not a named group.
    let top: toml::Table = llm
        .iter()
        .filter(|(name, value)| group(name, value).is_none())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let default_group = llm
        .iter()
        .find(|(name, value)| group(name, value).as_ref() == Some(&top))
        .map(|(name, _)| name.clone());
    let mut drafts = Vec::new();
    if top.contains_key("model") && default_group.is_none() {
        drafts.push(openhands_group(
            "[llm]",
            "openhands-default",
            &top,
            policy,
            environment,
        )?);
    }
    for (name, value) in llm {
        if let Some(group) = group(name, value) {
            let mut draft = openhands_group(&format!("[llm.{name}]"), name, &group, policy, environment)?;
            draft.configuration.is_default =
                default_group.as_deref() == Some(name.as_str()) && draft.configuration.is_active;
            drafts.push(draft);
        }
    }
    if drafts.is_empty() {
        return Err(ImportError::Malformed {
            format: "OpenHands configuration",
            detail: "no [llm] group has a model".into(),
        });
    }
    Ok(drafts)
}

fn openhands_group(
    origin: &str,
    name: &str,
    group: &toml::Table,
    policy: &EgressPolicy,
    environment: Environment,
) -> Result<Draft, ImportError> {
    let text = |field: &str| -> Result<Option<String>, ImportError> {
        match group.get(field) {
            None => Ok(None),
            Some(toml::Value::String(value)) if value.trim().is_empty() => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(invalid(origin, field, "must be a string")),
        }
    };
    let model = text("model")?.ok_or_else(|| invalid(origin, "model", "is missing"))?;
    let base_url = text("base_url")?;
    // Taken from the document straight into a secret type (the document is wiped on drop).
    let api_key = match group.get("api_key") {
        None => Sent::Absent,
        Some(toml::Value::String(value)) if value.trim().is_empty() => Sent::Absent,
        Some(toml::Value::String(value)) => key_from_file(value, shell_placeholder, environment),
        Some(_) => return Err(invalid(origin, "api_key", "must be a string")),
    };
    // The parameters under OpenHands' names, checked by the same rules as any other input.
    let parameters: Map<String, Value> = OPENHANDS_PARAMETERS
        .into_iter()
        .filter_map(|(theirs, ours)| {
            let value = group.get(theirs)?;
            let value = serde_json::to_value(value).unwrap_or_else(|_| Value::String(value.type_str().to_owned()));
            Some((ours.to_owned(), value))
        })
        .collect();
    litellm_style_draft(origin, name, &model, base_url, api_key, parameters, policy)
}

/// A configuration named by a LiteLLM model string (as OpenHands and LiteLLM both write it).
fn litellm_style_draft(
    origin: &str,
    name: &str,
    model: &str,
    base_url: Option<String>,
    api_key: Sent<SecretString>,
    parameters: Map<String, Value>,
    policy: &EgressPolicy,
) -> Result<Draft, ImportError> {
    let (provider, model) = provider_from_litellm(model, base_url.as_deref());
    let input = ConfigurationInput {
        name: Sent::Value(name.to_owned()),
        provider: Sent::Value(provider.id().to_owned()),
        model: Sent::Value(model),
        api_key,
        base_url: base_url.map_or(Sent::Absent, Sent::Value),
        parameters: Sent::Value(Value::Object(parameters)),
        ..ConfigurationInput::default()
    };
    let mut draft = draft(origin, "the group name", input, policy)?;
    let configuration = &mut draft.configuration;
    // A key for a provider that takes none is dropped; one that needs a key and has none
    // arrives inactive.
    if !provider.accepts_api_key() {
        configuration.api_key = None;
    }
    configuration.is_active = configuration.api_key.is_some() || !provider.needs_api_key();
    Ok(draft)
}

/// Reads a LiteLLM proxy `config.yaml`: each `model_list` entry becomes a configuration named
/// by its `model_name`, from its `litellm_params` (`model`, `api_base`, `api_key`, the
/// parameters under LiteLLM's names). Other settings are ignored.
pub fn parse_litellm(text: &str, policy: &EgressPolicy, environment: Environment) -> Result<Vec<Draft>, ImportError> {
    #[derive(Deserialize)]
    struct Document {
        model_list: Option<Vec<Map<String, Value>>>,
    }
    let document: Document = serde_saphyr::from_str(text).map_err(|error| ImportError::Malformed {
        format: "YAML",
        // The parser's own message may quote the line (and a key on it): only where.
        detail: match error.location() {
            Some(location) => format!("line {}: a syntax error or an unexpected structure", location.line()),
            None => "a syntax error or an unexpected structure".to_owned(),
        },
    })?;
    let entries = WipedEntriesOnDrop(document.model_list.unwrap_or_default());
    if entries.is_empty() {
        return Err(ImportError::Malformed {
            format: "LiteLLM configuration",
            detail: "there is no model_list entry".into(),
        });
    }
    let mut drafts = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let origin = format!("model_list[{index}]");
        let name = entry
            .get("model_name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&origin, "model_name", "is missing"))?;
        let empty = Map::new();
        let params = match entry.get("litellm_params") {
            Some(Value::Object(params)) => params,
            None => &empty,
            Some(_) => return Err(invalid(&origin, "litellm_params", "must be a mapping")),
        };
        let text = |field: &str| -> Result<Option<String>, ImportError> {
            match params.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(value)) if value.trim().is_empty() => Ok(None),
                Some(Value::String(value)) => Ok(Some(value.clone())),
                Some(_) => Err(invalid(&origin, &format!("litellm_params.{field}"), "must be a string")),
            }
        };
        let model = text("model")?.ok_or_else(|| invalid(&origin, "litellm_params.model", "is missing"))?;
        let base_url = text("api_base")?;
        let api_key = match params.get("api_key") {
            None | Some(Value::Null) => Sent::Absent,
            Some(Value::String(value)) if value.trim().is_empty() => Sent::Absent,
            Some(Value::String(value)) => key_from_file(value, litellm_placeholder, environment),
            Some(_) => return Err(invalid(&origin, "litellm_params.api_key", "must be a string")),
        };
        let parameters: Map<String, Value> = LITELLM_PARAMETERS
            .into_iter()
            .filter_map(|(theirs, ours)| Some((ours.to_owned(), params.get(theirs)?.clone())))
            .collect();
        drafts.push(litellm_style_draft(
            &origin, name, &model, base_url, api_key, parameters, policy,
        )?);
    }
    Ok(drafts)
}

/// Lanyard's export format: configurations without any secret.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportDocument {
    pub lanyard_export: u32,
    pub configurations: Vec<ExportedConfiguration>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedConfiguration {
    pub name: String,
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub has_api_key: bool,
    /// As the API shows them; left out by exports made before parameters existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

fn default_true() -> bool {
    true
}

pub const EXPORT_VERSION: u32 = 1;

/// Every configuration of `owner`, without keys or masks.
pub fn export(conn: &mut DbConnection, owner: Uuid) -> Result<ExportDocument, ImportError> {
    let configurations = llm_configurations::list_for_user(conn, DbId(owner))?
        .into_iter()
        // Only the caller's own: an organisation's configurations are the organisation's to move.
        .filter(|row| row.summary.organisation_id.is_none())
        .map(|row| (row.seen.is_default, row.summary))
        .map(|(is_default, row)| ExportedConfiguration {
            has_api_key: row.api_key_hint.is_some(),
            name: row.name,
            provider: row.provider.id().to_owned(),
            model: row.model,
            base_url: row.base_url,
            is_default,
            is_active: row.is_active,
            parameters: Some(Value::Object(Parameters::from_stored(&row.parameters).to_json())),
        })
        .collect();
    Ok(ExportDocument {
        lanyard_export: EXPORT_VERSION,
        configurations,
    })
}

/// Reads an export: the configurations arrive inactive and without keys, until a key is entered.
pub fn parse_export(text: &str, policy: &EgressPolicy) -> Result<Vec<Draft>, ImportError> {
    let document: ExportDocument = serde_json::from_str(text).map_err(|error| ImportError::Malformed {
        format: "Lanyard export (JSON)",
        detail: json_error_position(&error),
    })?;
    if document.lanyard_export != EXPORT_VERSION {
        return Err(ImportError::Malformed {
            format: "Lanyard export (JSON)",
            detail: format!(
                "version {} is not supported (expected {EXPORT_VERSION})",
                document.lanyard_export
            ),
        });
    }
    document
        .configurations
        .into_iter()
        .enumerate()
        .map(|(index, exported)| {
            let input = ConfigurationInput {
                name: Sent::Value(exported.name),
                provider: Sent::Value(exported.provider),
                model: Sent::Value(exported.model),
                base_url: exported.base_url.map_or(Sent::Absent, Sent::Value),
                is_active: Sent::Value(false),
                parameters: exported.parameters.map_or(Sent::Absent, Sent::Value),
                ..ConfigurationInput::default()
            };
            draft(&format!("configurations[{index}]"), "name", input, policy)
        })
        .collect()
}

/// Creates the drafts for `owner` in one transaction; names that exist are skipped and reported.
pub fn import(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    drafts: Vec<Draft>,
    cap: UserCap,
) -> Result<ImportReport, ImportError> {
    db::write_transaction(conn, |conn| {
        let mut report = ImportReport::default();
        for draft in drafts {
            let name = draft.configuration.name.as_str().to_owned();
            if llm_configurations::name_key_taken(
                conn,
                crate::domain::Owner::User(owner),
                &draft.configuration.name.key(),
                None,
            )? {
                report.skipped.push(name);
                continue;
            }
            configurations::create(conn, keyring, owner, draft.configuration, cap, KeyRule::MayLack).map_err(
                |error| match error.into_field_errors() {
                    Ok(fields) => ImportError::Invalid {
                        origin: draft.origin.clone(),
                        detail: fields.summary().join("; "),
                    },
                    Err(other) => ImportError::Configuration(other),
                },
            )?;
            report.created.push(name);
        }
        Ok(report)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_prefixes_name_the_provider_and_are_stripped() {
        assert_eq!(
            provider_from_litellm("anthropic/claude-3-5-sonnet", None),
            (Provider::Anthropic, "claude-3-5-sonnet".into())
        );
        assert_eq!(
            provider_from_litellm("gemini/gemini-1.5-pro", None),
            (Provider::Gemini, "gemini-1.5-pro".into())
        );
        assert_eq!(
            provider_from_litellm("openrouter/anthropic/claude-3.5", None),
            (Provider::Openrouter, "anthropic/claude-3.5".into())
        );
        assert_eq!(
            provider_from_litellm("together_ai/meta-llama/Llama-3", None),
            (Provider::Together, "meta-llama/Llama-3".into())
        );
        assert_eq!(
            provider_from_litellm("ollama/llama3", Some("http://127.0.0.1:11434")),
            (Provider::Ollama, "llama3".into())
        );
        assert_eq!(
            provider_from_litellm("gpt-4o", None),
            (Provider::Openai, "gpt-4o".into())
        );
        assert_eq!(
            provider_from_litellm("gpt-4o", Some("https://api.openai.com/v1/")),
            (Provider::Openai, "gpt-4o".into())
        );
        assert_eq!(
            provider_from_litellm("my-model", Some("https://llm.example.com/v1")),
            (Provider::OpenaiCompatible, "my-model".into())
        );
        assert_eq!(
            provider_from_litellm("openai/my-model", Some("https://llm.example.com/v1")),
            (Provider::OpenaiCompatible, "my-model".into())
        );
    }

    #[test]
    fn an_openhands_file_yields_one_draft_per_group() {
        let text = r#"
[core]
workspace_base = "./workspace"

[llm]
model = "anthropic/claude-3-5-sonnet-20241022"
api_key = "sk-ant-api03-abcdefghijklmnop"
temperature = 0.0

[llm.gpt4o]
model = "gpt-4o"
api_key = "sk-proj-abcdefghijklmnop"

[llm.local]
model = "ollama/llama3"
base_url = "https://ollama.example.com"
"#;
        let drafts = parse_openhands(text, &EgressPolicy::default(), &|_| None).unwrap();
        let summary: Vec<(String, Provider, String)> = drafts
            .iter()
            .map(|d| {
                (
                    d.configuration.name.as_str().to_owned(),
                    d.configuration.provider,
                    d.configuration.model.as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "openhands-default".to_owned(),
                    Provider::Anthropic,
                    "claude-3-5-sonnet-20241022".to_owned()
                ),
                ("gpt4o".to_owned(), Provider::Openai, "gpt-4o".to_owned()),
                ("local".to_owned(), Provider::Ollama, "llama3".to_owned()),
            ]
        );
    }

    #[test]
    fn malformed_files_say_where() {
        let error = parse_openhands("[llm\nmodel = 1", &EgressPolicy::default(), &|_| None).unwrap_err();
        assert!(error.to_string().contains("TOML"), "{error}");
        let error = parse_openhands("[llm.x]\nmodel = 5", &EgressPolicy::default(), &|_| None).unwrap_err();
        assert!(error.to_string().contains("[llm.x]"), "{error}");
        assert!(
            parse_export(
                "{\"lanyard_export\": 1, \"configurations\": [{}]}",
                &EgressPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn a_syntax_error_names_the_line_and_never_the_value() {
        let key = "sk-proj-0123456789abcdefSECRET";
        let toml_cases = [
            format!("[llm]\nmodel = \"gpt-4o\"\napi_key = \"{key}\n"),
            format!("[llm]\nmodel = \"gpt-4o\"\napi_key = {key}\n"),
            format!("[llm]\nmodel = \"gpt-4o\"\n{key}\n"),
        ];
        for text in toml_cases {
            let error = parse_openhands(&text, &EgressPolicy::default(), &|_| None)
                .unwrap_err()
                .to_string();
            assert!(error.contains("line 3"), "{error}");
            assert!(!error.contains("SECRET"), "{error}");
        }
        let json_cases = [
            format!("{{\"lanyard_export\": 1,\n\"configurations\": [{{\"name\": \"{key}\", }}]}}"),
            format!("{{\"lanyard_export\": 1,\n\"configurations\": [{{\"name\": 5, \"provider\": \"{key}\"}}]}}"),
            format!("{{\"lanyard_export\": 1,\n\"configurations\": [{{\"{key}\": 1}}]}}"),
            format!("{{\"lanyard_export\": 1,\n\"configurations\": \"{key}"),
        ];
        for text in json_cases {
            let error = parse_export(&text, &EgressPolicy::default()).unwrap_err().to_string();
            assert!(error.contains("line 2"), "{error}");
            assert!(!error.contains("SECRET"), "{error}");
        }
    }
}
