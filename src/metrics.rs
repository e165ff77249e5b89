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

use app::domain::MessageKind;

use crate::AppState;

const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 5.0, 20.0, 100.0, 500.0, 2000.0, 10000.0];

/// The process-wide recorder (installed on first use), with every
/// documented series registered at zero, so an alert on one sees 0 from the
/// first scrape rather than no data.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_messages".into()), COUNT_BUCKETS)
                })
                .expect("valid buckets")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            register_at_zero();
            handle
        })
        .clone()
}

/// Every series with a fixed set of labels, at zero.
fn register_at_zero() {
    use metrics::{counter, gauge, histogram};
    for name in [
        "websocket_connects_total",
        "websocket_resumes_total",
        "bus_recoveries_total",
        "bus_recovered_messages_total",
        "http_connections_refused_total",
        "cross_site_requests_refused_total",
        "page_frames_rendered_total",
    ] {
        counter!(name).absolute(0);
    }
    for reason in server::realtime::socket::End::ALL {
        counter!("websocket_disconnects_total", "reason" => reason.as_str()).absolute(0);
    }
    for kind in [MessageKind::User, MessageKind::Broadcast] {
        counter!("messages_processed_total", "kind" => kind.as_str()).absolute(0);
    }
    for limit in ["post", "ws_connect", "ws_frame"] {
        counter!("rate_limited_total", "limit" => limit).absolute(0);
    }
    for name in [
        "websocket_connections_active",
        "broadcast_leader",
        "bus_connected",
    ] {
        gauge!(name).set(0.0);
    }
    for state in ["in_use", "idle"] {
        gauge!("db_pool_connections", "state" => state).set(0.0);
    }
    // Histograms appear with their buckets, all at zero.
    let _ = histogram!("fanout_latency_seconds");
    let _ = histogram!("websocket_resume_replayed_messages");
}

/// HTTP methods as a fixed set of label values.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records `http_request_duration_seconds{method, route, status}`. Every
/// label comes from a fixed set: the method (others are "other"), the
/// matched route pattern (never the raw path; "unmatched" otherwise) and
/// the status code.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
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
