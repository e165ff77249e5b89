//! The router: the Leptos pages and server functions, the JSON API, the
//! WebSocket, health and metrics, behind one `ServiceBuilder` of middleware.

use std::sync::LazyLock;

use app::{api::SharedBackend, shell, App};
use axum::http::{header, HeaderValue, StatusCode};
use axum::{
    extract::FromRef,
    routing::{get, patch, post, put},
    Router,
};
use leptos::prelude::{provide_context, LeptosOptions};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use server::{realtime::socket, Chat};
use tower::ServiceBuilder;
use tower_http::{
    compression::{predicate::DefaultPredicate, CompressionLayer, Predicate},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    identity::{self, Identify},
    metrics,
    net::{self, TrustedHops},
    page_frames::FrameLayer,
    routes::{self, trust},
    security::{self, SecuritySettings},
};

/// Largest request body accepted (a 2000-character message is < 8 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// The state every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub chat: Chat,
}

/// How the router treats requests.
#[derive(Clone)]
pub struct RouterSettings {
    /// Serve `/metrics` here (false when it has an address of its own).
    pub with_metrics: bool,
    pub trusted_hops: TrustedHops,
    /// Longest time for any request but the WebSocket.
    pub request_timeout: std::time::Duration,
    pub hsts_max_age_secs: u64,
    pub allowed_origins: Vec<String>,
    /// How callers are identified.
    pub identify: Identify,
}

/// The app's page routes, listed once per process by rendering the app.
/// Once, not per router: while Leptos lists them, every `Resource` first
/// polled anywhere in the process stays pending for good (a process-wide
/// flag, leptos-rs/leptos#4773), so a router built beside one that serves
/// (the tests' many servers, a cluster test's instances) could hang a page
/// of the other. With the list built before any router exists, no render
/// can overlap it.
static PAGE_ROUTES: LazyLock<Vec<AxumRouteListing>> = LazyLock::new(|| generate_route_list(App));

/// The app's routes. `/metrics` is among them unless it has an address of
/// its own ([`metrics_router`]).
pub fn router(state: AppState, settings: &RouterSettings) -> Router {
    let routes = PAGE_ROUTES.clone();
    // The endpoints a plain HTML form reaches: every server function,
    // the older form post and the room form.
    let mut form_paths: std::collections::HashSet<String> =
        leptos::server_fn::axum::server_fn_paths()
            .map(|(path, _)| path.to_owned())
            .collect();
    form_paths.extend(["/create/".to_owned(), "/join".to_owned()]);
    let security = std::sync::Arc::new(SecuritySettings {
        hsts_max_age_secs: settings.hsts_max_age_secs,
        allowed_origins: settings.allowed_origins.clone(),
        form_paths: std::sync::Arc::new(form_paths),
    });
    let options = state.leptos_options.clone();
    // Server functions see the backend only through `app`'s seam.
    let backend: SharedBackend = std::sync::Arc::new(state.chat.clone());
    let frames = FrameLayer::new(backend.clone());
    let context = move || provide_context(backend.clone());
    let hops = settings.trusted_hops;
    let mut router = Router::new()
        .route(
            "/api/messages",
            get(routes::list_messages).post(routes::post_message),
        )
        .route("/api/openapi.json", get(routes::openapi))
        .route("/api/sessions", post(trust::create_session))
        .route("/api/session", get(trust::whoami))
        .route("/api/session/name", put(trust::set_name))
        .route(
            "/api/messages/{id}",
            patch(trust::edit_message).delete(trust::delete_message),
        )
        .route("/api/messages/{id}/reactions", post(trust::react))
        .route("/api/bans", post(trust::ban))
        .route("/health", get(routes::health))
        .route("/ws", get(socket::handler))
        // Compatibility with the systems this app replaces.
        .route(
            "/messages",
            get(routes::list_messages).post(routes::post_message),
        )
        .route("/create/", post(routes::create_form))
        .route("/health/", get(routes::health))
        .route("/join", get(routes::join))
        .route("/", get(routes::home));
    if settings.with_metrics {
        router = router.route("/metrics", get(metrics::render));
    }
    // The pages, room pages filled into kept frames where they can be.
    let pages = Router::new()
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            shell(options.clone())
        })
        .layer(frames);
    router
        .nest_service("/pkg", assets(&state.leptos_options))
        .merge(pages)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(axum::middleware::from_fn_with_state(
            settings.identify.clone(),
            identity::identify,
        ))
        .layer(axum::middleware::from_fn_with_state(
            security.clone(),
            security::same_site_forms,
        ))
        .layer(axum::middleware::from_fn_with_state(
            security,
            security::headers,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .map_request(move |mut req: axum::http::Request<axum::body::Body>| {
                    let peer = net::peer(
                        crate::serve::peer_addr(&req)
                            .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                        req.headers(),
                        hops,
                    );
                    req.extensions_mut().insert(peer);
                    req
                })
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &axum::http::Request<_>| {
                            let request_id = req
                                .extensions()
                                .get::<RequestId>()
                                .and_then(|id| id.header_value().to_str().ok())
                                .unwrap_or_default();
                            let client = req
                                .extensions()
                                .get::<app::api::http::Peer>()
                                .map(|p| p.ip.to_string())
                                .unwrap_or_default();
                            // The path only: query strings may carry drafts.
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id,
                                client
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                // Pages and API answers are current on every request; assets
                // say otherwise themselves ([`assets`]).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                ))
                // Pages and JSON on the fly (assets come precompressed); not
                // the WebSocket upgrade, whose answer has no body.
                .layer(
                    CompressionLayer::new().compress_when(DefaultPredicate::new().and(
                        |status: StatusCode, _, _: &_, _: &_| {
                            status != StatusCode::SWITCHING_PROTOCOLS
                        },
                    )),
                )
                .layer(axum::middleware::from_fn(security::readable_errors))
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
                // A WebSocket answers its upgrade at once, so this bounds
                // every plain request (reading its body included) without
                // touching sockets.
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                )),
        )
        .with_state(state)
}

/// `/pkg`: the WASM, its loader and the stylesheet, as the brotli or gzip
/// files the release build wrote beside them when the browser takes them.
/// Their names carry a content hash when the build made one (`hash.txt`),
/// so a browser may keep them for a year; without it they are checked on
/// every use. A miss is never cached.
fn assets(options: &LeptosOptions) -> Router {
    let dir = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let cache = HeaderValue::from_static(if options.hash_files {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    });
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new().fallback_service(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                move |res: &axum::http::Response<_>| {
                    res.status().is_success().then(|| cache.clone())
                },
            ))
            .service(files),
    )
}

/// Just `/metrics`, for `METRICS_ADDR`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}
