//! `GET /api/providers`: the catalogue.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Provider, Scope};
use crate::http::AppState;
use crate::http::Caller;
use crate::http::api_error::{ApiResult, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResource {
    pub id: &'static str,
    pub label: &'static str,
    pub needs_api_key: bool,
    pub needs_base_url: bool,
    pub default_base_url: Option<&'static str>,
}

impl From<Provider> for ProviderResource {
    fn from(provider: Provider) -> Self {
        ProviderResource {
            id: provider.id(),
            label: provider.label(),
            needs_api_key: provider.needs_api_key(),
            needs_base_url: provider.needs_base_url(),
            default_base_url: provider.default_base_url(),
        }
    }
}

#[utoipa::path(
    get, path = "/api/providers", tag = "providers",
    description = "The providers Lanyard knows. Scope: `read`.",
    responses((status = 200, body = [ProviderResource]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.authorize_async(&state.db, Scope::Read).await?;
    Ok(HttpResponse::Ok().json(
        Provider::ALL
            .into_iter()
            .map(ProviderResource::from)
            .collect::<Vec<_>>(),
    ))
}
