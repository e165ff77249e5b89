//! The PostgreSQL commit bus: LISTENs on the channel every insert NOTIFYs
//! (delivered at commit, in commit order) and feeds the hub, so a message
//! posted on any instance reaches the sockets of every instance.
//!
//! NOTIFYs sent while the listening connection is down are lost for good, so
//! after every (re)connect the hub re-reads each active room after the last
//! seq it delivered before going live again. The same connection carries
//! the instances' presence and typing announcements to `presence.rs`.

use std::time::Duration;

use sqlx::{postgres::PgListener, PgPool};

use super::{
    hub::Hub,
    presence::{Presence, EPHEMERAL_CHANNEL},
    store::postgres::{Notice, CHANNEL},
};
use crate::domain::RoomId;

const RETRY: Duration = Duration::from_millis(500);

/// Runs forever: listen, feed the hub, recover after every interruption.
/// `ready` is told once the first LISTEN is in place.
pub async fn run(
    pool: PgPool,
    hub: Hub,
    presence: Presence,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut first = true;
    loop {
        let mut listener = match listen(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "commit bus: cannot listen; retrying");
                metrics::gauge!("bus_connected").set(0.0);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        metrics::gauge!("bus_connected").set(1.0);
        // Listening again: whatever was committed meanwhile is in the table.
        let recovered = hub.resync().await;
        if !first {
            metrics::counter!("bus_recoveries_total").increment(1);
            metrics::counter!("bus_recovered_messages_total").increment(recovered as u64);
            tracing::warn!(
                recovered,
                "commit bus reconnected; resynced active rooms from the database"
            );
        }
        first = false;
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == EPHEMERAL_CHANNEL => presence.receive(n.payload()),
                Ok(Some(n)) => feed(&hub, n.payload()),
                Ok(None) => {
                    tracing::warn!("commit bus: connection lost");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "commit bus: error");
                    break;
                }
            }
        }
        metrics::gauge!("bus_connected").set(0.0);
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, EPHEMERAL_CHANNEL]).await?;
    Ok(listener)
}

fn feed(hub: &Hub, payload: &str) {
    match serde_json::from_str::<Notice>(payload) {
        Ok(Notice::Full(message)) => hub.publish(message),
        Ok(Notice::Ref { room, seq }) => match RoomId::parse(&room) {
            Ok(room) => hub.publish_ref(room, seq),
            Err(_) => tracing::warn!("commit bus: bad room in notice"),
        },
        Err(e) => tracing::warn!(error = %e, "commit bus: unreadable notice"),
    }
}
