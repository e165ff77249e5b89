//! The server: wires configuration, storage, the hub, the broadcaster and
//! the HTTP routes together. `main.rs` only parses config and calls [`run`];
//! tests call [`start`] with a listener on port 0.

pub mod config;
pub mod healthcheck;
pub mod metrics;
pub mod routes;
pub mod telemetry;

use std::{future::Future, sync::Arc, time::Duration};

use app::{
    domain::RoomId,
    server::{
        broadcaster, bus,
        hub::{self, Hub},
        leader,
        presence::Presence,
        store::{self, Opened, PoolOptions, StoreError},
        ws, AppState, ChatConfig,
    },
    shell, App,
};
use axum::{
    routing::{get, post},
    Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

pub use config::Config;

/// Largest request body accepted (a 2000-character message is < 8 KiB).
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the database {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("chat")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .reload_port(
            std::env::var("LEPTOS_RELOAD_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(3001),
        )
        .build()
}

/// Opens the store (running migrations), starts the hub and broadcaster, and
/// builds the router.
pub async fn build(config: &Config) -> Result<(Router, AppState), StartError> {
    metrics::handle();
    let pool = PoolOptions {
        max_connections: config.db_max_connections,
        acquire_timeout: config.db_acquire_timeout,
    };
    let opened = store::open(&config.database_url, &pool)
        .await
        .map_err(|source| StartError::Database {
            url: config::redact_url(&config.database_url),
            source,
        })?;
    let store = opened.store();
    let hub = Hub::new(store.clone(), hub::DEFAULT_CAPACITY);
    let bus = match &opened {
        Opened::Postgres(pg) => Some(pg.pool().clone()),
        Opened::Sqlite(_) => None,
    };
    let presence = Presence::new(hub.clone(), bus, config.presence_ttl);
    let interval = config
        .broadcast
        .and_then(|(min, max)| broadcaster::Interval::new(min, max));
    match &opened {
        // Many instances may share PostgreSQL: commits reach every hub through
        // LISTEN/NOTIFY, and one elected instance broadcasts.
        Opened::Postgres(pg) => {
            let (ready, listening) = tokio::sync::oneshot::channel();
            tokio::spawn(bus::run(
                pg.pool().clone(),
                hub.clone(),
                presence.clone(),
                ready,
            ));
            if tokio::time::timeout(Duration::from_secs(10), listening)
                .await
                .is_err()
            {
                tracing::warn!("commit bus not listening yet; continuing (it keeps retrying)");
            }
            if let Some(interval) = interval {
                let options = pg.pool().connect_options().as_ref().clone();
                let room = RoomId::announcements();
                tokio::spawn(leader::run(
                    options,
                    store.clone(),
                    hub.clone(),
                    room,
                    interval,
                ));
            }
        }
        // SQLite is single-instance: this process is the only broadcaster.
        Opened::Sqlite(_) => {
            if let Some(interval) = interval {
                let room = RoomId::announcements();
                tokio::spawn(broadcaster::run(store.clone(), hub.clone(), room, interval));
            }
        }
    }
    let state = AppState {
        leptos_options: leptos_options(config),
        store,
        hub,
        presence,
        config: Arc::new(ChatConfig {
            allowed_origins: config.allowed_origins.clone(),
            ws_ping_interval: config.ws_ping_interval,
        }),
        shutdown: CancellationToken::new(),
    };
    Ok((router(state.clone(), config.metrics_addr.is_none()), state))
}

/// The app's routes. `/metrics` is among them unless it has an address of
/// its own ([`metrics_router`]).
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let mut router = Router::new()
        .route(
            "/api/messages",
            get(routes::list_messages).post(routes::post_message),
        )
        .route("/api/openapi.json", get(routes::openapi))
        .route("/health", get(routes::health))
        .route("/ws", get(ws::ws_handler))
        // Compatibility with the systems this app replaces.
        .route(
            "/messages",
            get(routes::list_messages).post(routes::post_message),
        )
        .route("/create/", post(routes::create_form))
        .route("/health/", get(routes::health))
        .route("/join", get(routes::join))
        .route("/", get(routes::home));
    if with_metrics {
        router = router.route("/metrics", get(metrics::render));
    }
    router
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &axum::http::Request<_>| {
                            let request_id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            // The path only: query strings may carry drafts.
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT)),
        )
        .with_state(state)
}

/// Just `/metrics`, for `METRICS_ADDR`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartError::Serve)
}

/// Starts everything and serves until SIGINT/SIGTERM, then shuts down
/// gracefully (see [`shut_down`]).
pub async fn run(config: Config) -> Result<(), StartError> {
    // Migrations run inside `build`, before the port is bound.
    let (router, state) = build(&config).await?;
    if let Some(addr) = config.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        tracing::info!(%addr, "metrics on a separate address");
        tokio::spawn(serve(
            listener,
            metrics_router(state.clone()),
            std::future::pending(),
        ));
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    tracing::info!(addr = %config.addr, config = ?config, "listening");

    let (signalled, signal) = tokio::sync::oneshot::channel();
    let stop_accepting = shut_down(state.clone(), config.shutdown_drain, signalled);
    let server = serve(listener, router, stop_accepting);
    tokio::pin!(server);
    // Serve until the shutdown sequence lets the server finish, bounded by
    // the grace period once a signal has arrived.
    let deadline = async {
        if signal.await.is_ok() {
            tokio::time::sleep(config.shutdown_grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = &mut server => result?,
        _ = deadline => {
            tracing::warn!(grace = ?config.shutdown_grace, "grace period over; exiting with requests in flight");
            return Ok(());
        }
    }
    // Sockets were told to close (1001); give them the rest of the grace.
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    while state.hub.connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The shutdown sequence, resolved when the server should stop accepting:
/// on SIGTERM or SIGINT, `/health` turns 503 and every WebSocket is closed
/// with 1001 (clients reconnect elsewhere and resume); after SIGTERM the
/// instance keeps serving for `drain` so the load balancer sees the 503 and
/// stops sending; then new connections are refused while in-flight requests
/// finish.
async fn shut_down(state: AppState, drain: Duration, signalled: tokio::sync::oneshot::Sender<()>) {
    let signal = shutdown_signal().await;
    let _ = signalled.send(());
    tracing::info!(
        signal,
        ?drain,
        "shutting down: health 503, closing websockets"
    );
    state.shutdown.cancel();
    if signal == "SIGTERM" {
        tokio::time::sleep(drain).await;
    }
    tracing::info!("no longer accepting connections; finishing in-flight requests");
}

async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}
