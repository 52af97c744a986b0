//! `/metrics`, the middleware that measures every request and tags its response with the
//! request id that its log lines carry, and the span those log lines belong to.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, web};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use super::AppState;
use crate::crypto;
use crate::metrics::{UNMATCHED_ROUTE, method_label};

/// The span every log line of a request is written in. Unlike tracing-actix-web's default, it
/// carries the path without its query string (which may hold a token) and the client address
/// from `web::client` (which believes `X-Forwarded-For` only from a trusted proxy), and it
/// never reads `Forwarded`/`X-Forwarded-*` headers for the host or scheme.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let route = request.match_pattern();
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route.as_deref().unwrap_or(UNMATCHED_ROUTE),
            http.target = %request.path(),
            http.client_ip = super::client::client_ip(request.request()).map(tracing::field::display),
            // Quoted and escaped: whoever sends the request writes it.
            http.user_agent = ?user_agent,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = request_id.map(tracing::field::display),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
pub async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // Labels from fixed sets only (a stranger's made-up method or path adds no series).
    let method = method_label(req.method());
    let request_id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    let matched = response.request().match_pattern();
    let route = matched.as_deref().unwrap_or(UNMATCHED_ROUTE);
    let status_code = response.status();
    let status = status_code.as_u16();
    let elapsed = started.elapsed();
    crate::metrics::record_request(route, method, status_code.as_str(), elapsed.as_secs_f64());
    // One line per request, inside the request's span (so it carries the request id). Never
    // the query string or a header: they could hold a token.
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(status, elapsed_ms, route = %route, "request failed");
    } else {
        tracing::info!(status, elapsed_ms, route = %route, "request served");
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
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
        if !crypto::constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes()) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("metrics need the bearer token of LANYARD_METRICS_TOKEN\n");
        }
    }
    let counted = state
        .db
        .run(crate::services::scheduled_checks::publish_connection_counts)
        .await;
    if let Err(error) = counted {
        tracing::debug!(%error, "counting connections for the metrics failed");
    }
    let pool = state.db.pool().state();
    let body = crate::metrics::render(pool.connections, pool.idle_connections, state.db.pool().max_size());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
