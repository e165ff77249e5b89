//! The one shared application state, handed to axum and to server functions.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;
use leptos::prelude::{use_context, LeptosOptions};
use tokio_util::sync::CancellationToken;

use super::{hub::Hub, presence::Presence, store::Store};
use crate::api::ApiError;

/// Run-time settings the request handlers need (parsed from the environment
/// by the server binary).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Origins allowed to open `/ws` besides the page's own host.
    pub allowed_origins: Vec<String>,
    /// How often the server pings each WebSocket; a peer silent for two
    /// intervals is dropped.
    pub ws_ping_interval: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            ws_ping_interval: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub presence: Presence,
    pub config: Arc<ChatConfig>,
    /// Cancelled when the instance starts shutting down: `/health` turns
    /// 503, sockets close with 1001, new sockets are refused.
    pub shutdown: CancellationToken,
}

/// The state inside a server function (leptos_axum provides it as context).
pub fn state() -> Result<AppState, ApiError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        ApiError::Internal
    })
}
