//! Prometheus metrics: one global recorder (the `metrics` crate family),
//! the HTTP timing middleware, and the `/metrics` handler. Metric names are
//! listed in docs/operations.md.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 5.0, 20.0, 100.0, 500.0, 2000.0, 10000.0];

/// The process-wide recorder (installed on first use).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_messages".into()), COUNT_BUCKETS)
                })
                .expect("valid buckets")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Records `http_request_duration_seconds{method, route, status}`. The
/// route is the matched pattern (never the raw path, which is unbounded).
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics` in the Prometheus text format. Gauges that are read rather
/// than counted (the pool) are refreshed here.
pub async fn render(State(state): State<AppState>) -> Response {
    if let Some((size, idle)) = state.chat.store.pool_stats() {
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size - idle));
        metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
        .into_response()
}
