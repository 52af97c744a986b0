//! `GET /api/export`: the caller's configurations without any key, as Lanyard's own JSON, an
//! OpenHands `config.toml` or a LiteLLM proxy `config.yaml` (runtimes.md).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::Scope;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::Caller;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::services::import;
use crate::services::runtime_exports::{self, ExportFormat};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `json` (Lanyard's own export, the default), `openhands` (a `config.toml` with one
    /// `[llm.<name>]` per active configuration and `[llm]` for the default) or `litellm` (a
    /// proxy `config.yaml` `model_list`). Keys are placeholders: `${LANYARD_KEY_<NAME>}`,
    /// `os.environ/LANYARD_KEY_<NAME>`.
    format: Option<String>,
}

#[utoipa::path(
    get, path = "/api/export", tag = "configurations",
    description = "The caller's own configurations without any key, in Lanyard's JSON or for OpenHands or \
                   LiteLLM; each re-imports to the same configurations (`lanyard import`). Scope: `read`.",
    params(ExportQuery),
    responses(
        (status = 200, description = "The document", content((Object = "application/json"), (String = "application/toml"), (String = "application/yaml"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    let format = match query.format.as_deref() {
        None => ExportFormat::Json,
        Some(raw) => ExportFormat::parse(raw.trim()).map_err(|message| AppError::validation("format", message))?,
    };
    let document = caller
        .run(&state.db, Scope::Read, move |conn, principal| {
            let owner = principal.user_id;
            let document = match format {
                ExportFormat::Json => serde_json::to_string_pretty(&import::export(conn, owner)?)
                    .map_err(|error| AppError::Internal(format!("could not serialise the export: {error}")))?,
                ExportFormat::OpenHands => runtime_exports::openhands(conn, owner)?,
                ExportFormat::Litellm => runtime_exports::litellm(conn, owner)?,
            };
            Ok::<_, AppError>(document)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(format!("{}; charset=utf-8", format.content_type()))
        .body(document))
}
