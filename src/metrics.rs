//! Prometheus metrics: requests by route and status, a latency histogram, pool state, and
//! provider-test outcomes by code. Labels carry route patterns, never ids or values.

use std::sync::LazyLock;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub pool: IntGaugeVec,
    pub provider_tests: IntCounterVec,
    pub checks: IntCounterVec,
    pub connections: IntGaugeVec,
    pub webhook_deliveries: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("lanyard".into()), None)?;
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by route pattern, method and status",
        ),
        &["route", "method", "status"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route pattern").buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["route"],
    )?;
    let pool = IntGaugeVec::new(
        Opts::new("db_pool_connections", "Database pool connections by state"),
        &["state"],
    )?;
    let provider_tests = IntCounterVec::new(
        Opts::new("provider_tests_total", "Provider tests by outcome code"),
        &["code"],
    )?;
    let checks = IntCounterVec::new(
        Opts::new("checks_total", "Scheduled connection checks by result"),
        &["result"],
    )?;
    let connections = IntGaugeVec::new(
        Opts::new("connections", "Connections by the status of their last check"),
        &["status"],
    )?;
    let webhook_deliveries = IntCounterVec::new(
        Opts::new("webhook_deliveries_total", "Webhook delivery attempts by result"),
        &["result"],
    )?;
    registry.register(Box::new(webhook_deliveries.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(checks.clone()))?;
    registry.register(Box::new(connections.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(pool.clone()))?;
    registry.register(Box::new(provider_tests.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        latency,
        pool,
        provider_tests,
        checks,
        connections,
        webhook_deliveries,
    })
}

/// The process-wide metrics (one registry per process, as Prometheus scrapes a process).
pub static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match build() {
    Ok(metrics) => Some(metrics),
    Err(error) => {
        tracing::error!(%error, "metrics are unavailable");
        None
    }
});

/// The `route` label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `method` label: the standard methods by name, anything else as `OTHER`, so that made-up
/// methods cannot add label values (and the label is never allocated).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// `route` is a matched route pattern or `UNMATCHED_ROUTE`, `method` from `method_label`,
/// `status` the three digits.
pub fn record_request(route: &str, method: &'static str, status: &str, seconds: f64) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.requests.with_label_values(&[route, method, status]).inc();
        metrics.latency.with_label_values(&[route]).observe(seconds);
    }
}

pub fn record_provider_test(code: &str) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.provider_tests.with_label_values(&[code]).inc();
    }
}

/// `result`: `ok`, `failed` or `unavailable`.
pub fn record_check(result: &str) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.checks.with_label_values(&[result]).inc();
    }
}

/// `result`: `delivered`, `retrying` (failed, another attempt is scheduled) or `given_up`.
pub fn record_webhook_delivery(result: &str) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.webhook_deliveries.with_label_values(&[result]).inc();
    }
}

/// How many connections are `ok`, `failing` and `unchecked`, as of now.
pub fn set_connections(ok: i64, failing: i64, unchecked: i64) {
    if let Some(metrics) = METRICS.as_ref() {
        for (status, count) in [("ok", ok), ("failing", failing), ("unchecked", unchecked)] {
            metrics.connections.with_label_values(&[status]).set(count);
        }
    }
}

/// The text exposition, with the pool's state as of now.
pub fn render(pool_connections: u32, pool_idle: u32, pool_max: u32) -> String {
    let Some(metrics) = METRICS.as_ref() else {
        return String::new();
    };
    metrics
        .pool
        .with_label_values(&["open"])
        .set(i64::from(pool_connections));
    metrics.pool.with_label_values(&["idle"]).set(i64::from(pool_idle));
    metrics.pool.with_label_values(&["max"]).set(i64::from(pool_max));
    let mut buffer = Vec::new();
    if TextEncoder::new()
        .encode(&metrics.registry.gather(), &mut buffer)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(buffer).unwrap_or_default()
}
