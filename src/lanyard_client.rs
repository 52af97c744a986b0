//! The command line's client of a Lanyard server: `lanyard exec` resolves over the HTTP API like
//! any runtime (runtimes.md). This is the one HTTP client outside `egress`, because it talks to
//! Lanyard itself, at an address the operator gives (`LANYARD_URL`), not to a provider; it
//! follows no redirect, so the token goes only where it was sent.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::domain::{Parameters, Provider, RuntimeConfiguration};

/// Longer than any answer of `/api/resolve` takes; a server that does not answer is a failure.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A resolve answer is a few kilobytes; more is not Lanyard.
const MAX_BODY: usize = 1024 * 1024;

/// What to resolve, as `lanyard exec` was asked.
pub struct ResolveRequest<'a> {
    pub server: &'a Url,
    pub token: &'a SecretString,
    pub conversation_id: Option<&'a str>,
    /// For a service token: the member to resolve for.
    pub user: Option<&'a str>,
}

/// Why no configuration came back; worded for one line on standard error, without the token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach Lanyard at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("Lanyard answered {status} {code}: {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("Lanyard's answer could not be read: {0}")]
    Unreadable(String),
}

/// `GET /api/resolve` with the token; the configuration, key included, or why not.
pub async fn resolve(request: &ResolveRequest<'_>) -> Result<RuntimeConfiguration, ClientError> {
    let mut url = request
        .server
        .join("api/resolve")
        .map_err(|error| ClientError::Usage(format!("LANYARD_URL cannot be used: {error}")))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(conversation) = request.conversation_id {
            query.append_pair("conversation_id", conversation);
        }
        if let Some(user) = request.user {
            query.append_pair("user", user);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|error| ClientError::Unreachable {
            server: request.server.to_string(),
            reason: error.to_string(),
        })?;
    let unreachable = |error: reqwest::Error| ClientError::Unreachable {
        server: request.server.to_string(),
        // Without the URL: the error's own text would repeat it, query included.
        reason: error.without_url().to_string(),
    };
    let response = client
        .get(url)
        .bearer_auth(request.token.expose_secret())
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if body.len() > MAX_BODY {
        return Err(ClientError::Unreadable("the answer is larger than 1 MiB".into()));
    }
    if status != StatusCode::OK {
        return Err(refusal(status, &body));
    }
    read_configuration(&body)
}

/// The error body of `api.md` (`error`, `message`), or the bare status when it is not one.
fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        message: String,
    }
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => (body.error, body.message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "_"),
            "not an answer of Lanyard's API".to_owned(),
        ),
    };
    ClientError::Refused {
        status: status.as_u16(),
        code,
        message,
    }
}

fn read_configuration(body: &[u8]) -> Result<RuntimeConfiguration, ClientError> {
    #[derive(Deserialize)]
    struct Answer {
        configuration: Resolved,
    }
    #[derive(Deserialize)]
    struct Resolved {
        provider: String,
        model: String,
        base_url: Option<String>,
        effective_base_url: Option<String>,
        api_key: Option<SecretString>,
        #[serde(default)]
        parameters: Value,
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|error| ClientError::Unreadable(json_problem(&error).to_owned()))?;
    let resolved = answer.configuration;
    let provider = Provider::parse(&resolved.provider)
        .ok_or_else(|| ClientError::Unreadable(format!("unknown provider `{}`", resolved.provider)))?;
    let parameters = if resolved.parameters.is_null() {
        Parameters::default()
    } else {
        Parameters::from_json(&resolved.parameters).map_err(|errors| {
            let members: Vec<_> = errors.into_iter().map(|error| error.member).collect();
            ClientError::Unreadable(format!("parameters not understood: {}", members.join(", ")))
        })?
    };
    Ok(RuntimeConfiguration {
        provider,
        model: resolved.model,
        base_url: resolved.base_url,
        effective_base_url: resolved.effective_base_url,
        api_key: resolved.api_key,
        parameters,
    })
}

/// Names the kind of a JSON error without quoting the input (which holds the key).
fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "it broke off",
        serde_json::error::Category::Syntax => "it is not JSON",
        serde_json::error::Category::Data => "it is not a resolved configuration",
        serde_json::error::Category::Eof => "it ended early",
    }
}
