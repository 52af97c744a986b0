//! `/metrics`, and the middleware that measures every request and tags its response with the
//! request id that its log lines carry.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;
use tracing_actix_web::RequestId;

use crate::app::AppState;

pub async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let mut response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    crate::metrics::record_request(&route, &method, status, elapsed.as_secs_f64());
    // One line per request, inside the request's span (so it carries the request id). Never
    // the query string or a header: they could hold a token.
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(status, elapsed_ms, route = %route, "request failed");
    } else {
        tracing::info!(status, elapsed_ms, route = %route, "request served");
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), id);
    }
    Ok(response)
}

/// Prometheus text; behind `Authorization: Bearer $LANYARD_METRICS_TOKEN` when that is set.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(expected) = &state.settings.metrics_token {
        use secrecy::ExposeSecret;
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("metrics need the bearer token of LANYARD_METRICS_TOKEN\n");
        }
    }
    let pool = state.db.pool().state();
    let body = crate::metrics::render(pool.connections, pool.idle_connections, state.db.pool().max_size());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
