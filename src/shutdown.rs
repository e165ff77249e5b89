//! Graceful shutdown. On SIGTERM or SIGINT `/health` turns 503 and every
//! WebSocket is closed with 1001 (clients reconnect elsewhere and resume);
//! after SIGTERM the instance keeps serving for the drain time so the load
//! balancer sees the 503 and stops sending; then new connections are
//! refused while in-flight requests and socket sessions finish, all within
//! the grace period.

use std::time::Duration;

use server::Chat;
use tokio::sync::oneshot;

/// Resolves when the server should stop accepting connections; tells
/// `signalled` the moment a signal arrives (the grace period starts then).
pub async fn stop_accepting(chat: Chat, drain: Duration, signalled: oneshot::Sender<()>) {
    let signal = signal().await;
    let _ = signalled.send(());
    tracing::info!(
        signal,
        ?drain,
        "shutting down: health 503, closing websockets"
    );
    chat.shutdown.cancel();
    if signal == "SIGTERM" {
        tokio::time::sleep(drain).await;
    }
    tracing::info!("no longer accepting connections; finishing in-flight requests");
}

/// Waits (at most until `deadline`) for every socket session to end.
pub async fn sessions_finished(chat: &Chat, deadline: tokio::time::Instant) -> bool {
    chat.socket_tasks.close();
    tokio::time::timeout_at(deadline, chat.socket_tasks.wait())
        .await
        .is_ok()
}

async fn signal() -> &'static str {
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
