//! `POST /api/llm-configurations/test` and `POST /api/llm-configurations/{id}/test`.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Field, FieldReader, parse_id};
use crate::domain::{ApiKey, BaseUrl, ModelId, Provider, Scope};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::Caller;
use crate::http::JsonObject;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::services::connection_tests::{self, SavedSubject, TestOutcome, TestTarget};

/// A test's result. A test that reached the provider and failed is still HTTP 200.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResultResource {
    /// `ok` or `failed`.
    pub status: String,
    /// `ok`, `invalid_key`, `forbidden`, `not_found`, `rate_limited`, `timeout`, `unreachable`,
    /// `tls_error`, `blocked_address`, `provider_error` or `key_unreadable`.
    pub code: String,
    pub message: String,
    pub latency_ms: Option<i64>,
    /// The model ids the provider listed (at most 500).
    pub models: Vec<String>,
    /// e.g. `model_not_listed`.
    pub warnings: Vec<String>,
}

impl From<TestOutcome> for TestResultResource {
    fn from(outcome: TestOutcome) -> Self {
        TestResultResource {
            status: outcome.status().to_owned(),
            code: outcome.code.to_owned(),
            message: outcome.message,
            latency_ms: outcome.latency_ms,
            models: outcome.models,
            warnings: outcome.warnings.into_iter().map(str::to_owned).collect(),
        }
    }
}

/// The body of `POST /api/llm-configurations/test`: unsaved values; or `{"id": "…"}` to test a
/// saved configuration, or `{"connection_id": "…"}` to test a saved connection, recording the
/// result on the connection (beside either, only `model` may be given: the model to look for).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `test_unsaved` reads it field by field
pub struct TestRequest {
    #[schema(format = Uuid)]
    id: Option<String>,
    #[schema(format = Uuid)]
    connection_id: Option<String>,
    provider: Option<Provider>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Option<String>,
    #[schema(min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Option<String>,
    #[schema(max_length = 2048, pattern = "^https://")]
    base_url: Option<String>,
}

async fn saved(state: &AppState, owner: uuid::Uuid, id: uuid::Uuid) -> Result<TestOutcome, AppError> {
    connection_tests::test_saved(
        &state.db,
        &state.keyring,
        &state.outbound,
        owner,
        id,
        state.settings.test_rate_per_minute,
    )
    .await
}

/// `{"id"}` or `{"connection_id"}`, each with an optional `model` and nothing else.
async fn saved_from_body(state: &AppState, owner: uuid::Uuid, body: JsonObject) -> Result<TestOutcome, AppError> {
    let field = if body.0.contains_key("id") {
        "id"
    } else {
        "connection_id"
    };
    let mut reader = FieldReader::new(body.0, &[field, "model"], &[]);
    let id = reader.required_string(field);
    let id = reader.parsed(field, id, |raw| {
        uuid::Uuid::parse_str(raw).map_err(|_| "must be a UUID".to_owned())
    });
    let model = match reader.string("model") {
        Field::Value(model) => reader.parsed("model", Some(model), ModelId::parse),
        Field::Null | Field::Absent => None,
    };
    reader.finish()?;
    let id = id.ok_or_else(|| AppError::validation(field, "must be a UUID"))?;
    let subject = if field == "id" {
        if model.is_none() {
            return saved(state, owner, id).await;
        }
        SavedSubject::Configuration {
            id,
            model: model.as_ref(),
        }
    } else {
        SavedSubject::Connection {
            id,
            model: model.as_ref(),
        }
    };
    connection_tests::test_saved_subject(
        &state.db,
        &state.keyring,
        &state.outbound,
        owner,
        subject,
        state.settings.test_rate_per_minute,
    )
    .await
}

#[utoipa::path(
    post, path = "/api/llm-configurations/test", tag = "tests",
    description = "Test unsaved values against the provider (one free, read-only request), or `{\"id\"}` \
                   to test a saved configuration, or `{\"connection_id\"}` a saved connection, and record the \
                   result on the connection (beside either, only `model` may stand). Scope: `write`.",
    request_body = TestRequest,
    responses(
        (status = 200, body = TestResultResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test_unsaved(state: web::Data<AppState>, caller: Caller, body: JsonObject) -> ApiResult<HttpResponse> {
    let principal = caller.authorize_async(&state.db, Scope::Write).await?;
    let owner = principal.user_id;
    if body.0.contains_key("id") || body.0.contains_key("connection_id") {
        let outcome = saved_from_body(&state, owner, body).await?;
        return Ok(HttpResponse::Ok().json(TestResultResource::from(outcome)));
    }
    let mut reader = FieldReader::new(body.0, &["provider", "model", "api_key", "base_url"], &[]);
    let provider = reader.required_string("provider");
    let provider = reader.parsed("provider", provider, |raw| {
        Provider::parse(raw).ok_or_else(|| "unknown provider; see GET /api/providers".to_owned())
    });
    let model = reader.required_string("model");
    let model = reader.parsed("model", model, ModelId::parse);
    let api_key = match reader.secret("api_key") {
        Field::Value(key) if !key.expose_secret().is_empty() => reader.parsed_secret("api_key", &key, ApiKey::parse),
        _ => None,
    };
    let policy = state.outbound.policy().clone();
    let base_url = match reader.string("base_url") {
        Field::Value(url) if !url.trim().is_empty() => {
            reader.parsed("base_url", Some(url), |raw| BaseUrl::parse(raw, &policy))
        }
        _ => None,
    };
    let errors = reader.errors.clone();
    reader.finish()?;
    let (Some(provider), Some(model)) = (provider, model) else {
        return Err(AppError::Validation(errors).into());
    };
    let target = TestTarget::new(provider, Some(&model), base_url.as_ref(), api_key.as_ref())?;
    let outcome = connection_tests::test_unsaved(
        &state.db,
        &state.outbound,
        owner,
        target,
        state.settings.test_rate_per_minute,
    )
    .await?;
    Ok(HttpResponse::Ok().json(TestResultResource::from(outcome)))
}

#[utoipa::path(
    post, path = "/api/llm-configurations/{id}/test", tag = "tests",
    description = "Test a saved configuration against its provider and record the result. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The configuration's id")),
    responses(
        (status = 200, body = TestResultResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test_saved(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let principal = caller.authorize_async(&state.db, Scope::Write).await?;
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(TestResultResource::from(saved(&state, principal.user_id, id).await?)))
}
