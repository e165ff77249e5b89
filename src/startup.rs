//! Startup: build the backend and the router from the configuration, bind,
//! serve, and shut down gracefully.

use std::future::Future;

use leptos::prelude::LeptosOptions;
use server::{
    limits::LimitSettings, store::PoolOptions, Chat, Settings, SocketSettings, TrustSettings,
};
use tokio::net::TcpListener;

use std::sync::Arc;

use server::auth::alb::{AlbConfig, AlbVerifier};

use crate::{
    config::{self, Config},
    identity::{Auth, Identify},
    metrics,
    net::TrustedHops,
    router::{metrics_router, router, AppState, RouterSettings},
    serve::ServeSettings,
    shutdown,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the database {url}: {source}")]
    Database {
        url: String,
        source: server::store::StoreError,
    },
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    #[error("sign-in through the load balancer cannot start: {0}")]
    Auth(String),
}

fn leptos_options(config: &Config) -> LeptosOptions {
    let options = LeptosOptions::builder()
        .output_name("chat")
        .site_root(config.leptos_site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr())
        .reload_port(u32::from(config.leptos_reload_port));
    match hash_file(&config.leptos_site_root) {
        Some(path) => options
            .hash_files(true)
            .hash_file(std::sync::Arc::from(path.to_string_lossy().as_ref()))
            .build(),
        None => options.build(),
    }
}

/// The file naming the content hashes cargo-leptos put into the asset
/// names (`hash-files = true`): in the site root (where the Dockerfile puts
/// it) or beside the binary (where cargo-leptos writes it). Without one the
/// assets have plain names (`/pkg/chat.wasm`).
fn hash_file(site_root: &str) -> Option<std::path::PathBuf> {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(HASH_FILE)));
    [
        Some(std::path::Path::new(site_root).join(HASH_FILE)),
        beside_binary,
    ]
    .into_iter()
    .flatten()
    .find(|path| path.is_file())
    .and_then(|path| std::path::absolute(path).ok())
}

const HASH_FILE: &str = "hash.txt";

/// What the backend needs from the configuration.
pub fn settings(config: &Config) -> Settings {
    Settings {
        database_url: config.database_url.clone(),
        pool: PoolOptions {
            max_connections: config.database_max_connections,
            acquire_timeout: config.database_timeout_secs,
        },
        broadcast: config.broadcast(),
        presence_ttl: config.presence_ttl_secs,
        max_rooms: config.max_rooms as usize,
        sockets: SocketSettings {
            allowed_origins: config.allowed_origins.clone(),
            ping_interval: config.ws_ping_secs,
            send_timeout: config.ws_send_timeout_secs,
            replay_limit: config.ws_replay_max,
        },
        limits: LimitSettings {
            posts_per_ip: config.rate_posts_per_ip.0,
            posts_per_sender: config.rate_posts_per_sender.0,
            connects_per_ip: config.rate_ws_connects_per_ip.0,
            frames_per_socket: config.rate_ws_frames.0,
            control_frames_per_socket: config.rate_ws_control_frames.0,
        },
        trust: TrustSettings {
            edit_window: config.edit_window_secs,
            name_hold: config.name_hold_days,
            // Signed-in mode has no guests.
            allow_guests: config.allow_guests && config.auth == config::AuthMode::Sessions,
            moderator_token: config.moderator_token.clone(),
            moderators: config.moderators.clone(),
        },
    }
}

/// What the accept loop needs from the configuration.
pub fn serve_settings(config: &Config) -> ServeSettings {
    ServeSettings {
        max_connections: config.max_connections as usize,
        header_read_timeout: config.header_read_timeout_secs,
    }
}

/// Starts the backend (opening the store and running migrations) and builds
/// the router.
pub async fn build(config: &Config) -> Result<(axum::Router, AppState), StartError> {
    metrics::handle();
    let chat = Chat::start(&settings(config))
        .await
        .map_err(|source| StartError::Database {
            url: config::redact_url(&config.database_url),
            source,
        })?;
    let state = AppState {
        leptos_options: leptos_options(config),
        chat,
    };
    let auth = match config.auth {
        config::AuthMode::Sessions => Auth::Sessions,
        config::AuthMode::AlbOidc => {
            let verifier = AlbVerifier::new(AlbConfig {
                key_url: config.alb_key_url.clone().unwrap_or_default(),
                expected_signer: config.alb_signer.clone().unwrap_or_default(),
                leeway: std::time::Duration::from_secs(60),
            })
            .map_err(|e| StartError::Auth(e.to_string()))?;
            Auth::AlbOidc(Arc::new(verifier))
        }
    };
    let identify = Identify {
        auth,
        sessions: state.chat.identities.clone(),
        trust: state.chat.trust.clone(),
    };
    let settings = RouterSettings {
        identify,
        with_metrics: config.metrics_addr.is_none(),
        trusted_hops: TrustedHops(config.trusted_proxy_hops),
        request_timeout: config.request_timeout_secs,
        hsts_max_age_secs: config.hsts_max_age_secs,
        allowed_origins: config.allowed_origins.clone(),
    };
    Ok((router(state.clone(), &settings), state))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    crate::serve::serve(listener, router, settings, shutdown)
        .await
        .map_err(StartError::Serve)
}

/// Starts everything and serves until SIGINT/SIGTERM, then shuts down
/// gracefully (see `shutdown.rs`).
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
            ServeSettings::default(),
            std::future::pending(),
        ));
    }
    let addr = config.addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!(%addr, config = ?config, "listening");

    let grace = config.shutdown_grace_secs;
    let (signalled, signal) = tokio::sync::oneshot::channel();
    let stop_accepting =
        shutdown::stop_accepting(state.chat.clone(), config.shutdown_drain(), signalled);
    let server = serve(listener, router, serve_settings(&config), stop_accepting);
    tokio::pin!(server);
    // Serve until the shutdown sequence lets the server finish, bounded by
    // the grace period once a signal has arrived.
    let deadline = async {
        if signal.await.is_ok() {
            let deadline = tokio::time::Instant::now() + grace;
            tokio::time::sleep_until(deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = &mut server => result?,
        _ = deadline => {
            tracing::warn!(?grace, "grace period over; exiting with requests in flight");
            return Ok(());
        }
    }
    // Sockets were told to close (1001); give them the rest of the grace.
    let deadline = tokio::time::Instant::now() + grace;
    if !shutdown::sessions_finished(&state.chat, deadline).await {
        tracing::warn!("grace period over; exiting with sockets still open");
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_file_in_the_site_root_names_the_assets() {
        let site = std::env::temp_dir().join(format!("chat-site-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&site).unwrap();
        let root = site.to_str().unwrap();
        // No hash file anywhere (test binaries have none beside them).
        assert_eq!(hash_file(root), None);
        std::fs::write(site.join(HASH_FILE), "js: a\nwasm: b\ncss: c\n").unwrap();
        let found = hash_file(root).expect("found in the site root");
        assert!(found.is_absolute());
        assert_eq!(found, site.join(HASH_FILE));
        std::fs::remove_dir_all(&site).unwrap();
    }
}
