//! `POST /api/llm-configurations/test` and `POST /api/llm-configurations/{id}/test`.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Wire, parse_id, read_request};
use crate::domain::{Provider, Scope};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::Caller;
use crate::http::JsonObject;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::services::configuration_input::{Sent, TestInput};
use crate::services::connection_tests::{TestOutcome, TestSubject};

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
#[derive(Debug, Deserialize, ToSchema)]
pub struct TestRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    id: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    connection_id: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<Provider>)]
    provider: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, pattern = r"^\S+$")]
    model: Wire<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 8, max_length = 4096, pattern = r"^[^\s…•*]+$")]
    api_key: Wire<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = "^https://")]
    base_url: Wire<String>,
}

impl TestRequest {
    fn read(body: JsonObject) -> Result<TestInput, AppError> {
        // `{"id"}` and `{"connection_id"}` stand alone but for `model`: any other field beside
        // them is refused as unknown.
        let read_only: &[&str] = &[];
        let by_id = body.0.contains_key("id");
        let by_connection = body.0.contains_key("connection_id");
        let (request, mut refused): (Self, _) = read_request(body, read_only)?;
        if by_id || by_connection {
            let beside = [
                ("connection_id", !by_id || matches!(request.connection_id, Wire::Absent)),
                ("provider", matches!(request.provider, Wire::Absent)),
                ("api_key", matches!(request.api_key, Wire::Absent)),
                ("base_url", matches!(request.base_url, Wire::Absent)),
            ];
            for (field, _) in beside.into_iter().filter(|(_, absent)| !absent) {
                refused.add(field, "is not a known field");
            }
            let model = request.model.sent("model", &mut refused);
            return Ok(if by_id {
                TestInput {
                    id: request.id.sent("id", &mut refused),
                    model,
                    refused,
                    ..TestInput::default()
                }
            } else {
                TestInput {
                    connection_id: request.connection_id.sent("connection_id", &mut refused),
                    model,
                    refused,
                    ..TestInput::default()
                }
            });
        }
        let model = request.model.sent("model", &mut refused);
        // The API's test of values names its model (the page may leave it out, to see what the
        // provider offers).
        if model == Sent::Absent && !refused.has("model") {
            refused.add("model", "is required");
        }
        Ok(TestInput {
            id: Sent::Absent,
            connection_id: Sent::Absent,
            provider: request.provider.sent("provider", &mut refused),
            model,
            api_key: request.api_key.sent("api_key", &mut refused),
            base_url: request.base_url.sent("base_url", &mut refused),
            refused,
        })
    }
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
    let subject = TestRequest::read(body)?
        .parse(state.outbound.policy())
        .map_err(AppError::Validation)?;
    let outcome = state.tester().test(principal.user_id, subject).await?;
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
    let outcome = state
        .tester()
        .test(principal.user_id, TestSubject::Saved { id, model: None })
        .await?;
    Ok(HttpResponse::Ok().json(TestResultResource::from(outcome)))
}
