//! The commit feed: the one way committed messages reach this instance's
//! hub, whoever posted them. On SQLite (one instance) the store hands each
//! commit over in process. On PostgreSQL this LISTENs on the channel every
//! insert NOTIFYs (delivered at commit, in commit order), so a message
//! posted on any instance reaches the sockets of every instance, this one's
//! own included.
//!
//! NOTIFYs sent while the listening connection is down are lost for good, so
//! after every (re)connect the hub re-reads each active room after the last
//! seq it delivered before going live again. The same connection carries
//! the instances' presence and typing announcements to `presence.rs`.

use std::time::Duration;

use app::domain::RoomId;
use sqlx::{postgres::PgListener, PgPool};

use crate::wire::{Ephemeral, Notice, EPHEMERAL_CHANNEL, MESSAGES_CHANNEL};
use crate::{
    identity::Bans,
    realtime::{hub::Hub, presence::Presence},
    store::Commits,
};

const RETRY: Duration = Duration::from_millis(500);
/// How long startup waits for the first LISTEN before going on without it.
const FIRST_LISTEN: Duration = Duration::from_secs(10);

/// Starts feeding `hub` from `commits`. On PostgreSQL it waits (up to 10 s)
/// until the first LISTEN is in place, so nothing committed after startup
/// is missed.
pub async fn start(commits: Commits, hub: Hub, presence: Presence, bans: Bans) {
    match commits {
        Commits::Local(mut rx) => {
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    hub.publish(message);
                }
            });
        }
        Commits::Notify(pool) => {
            let (ready, listening) = tokio::sync::oneshot::channel();
            tokio::spawn(listen_forever(pool, hub, presence, bans, ready));
            if tokio::time::timeout(FIRST_LISTEN, listening).await.is_err() {
                tracing::warn!("commit feed not listening yet; continuing (it keeps retrying)");
            }
        }
    }
}

/// Runs forever: listen, feed the hub, recover after every interruption.
/// `ready` is told once the first LISTEN is in place.
async fn listen_forever(
    pool: PgPool,
    hub: Hub,
    presence: Presence,
    bans: Bans,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut first = true;
    loop {
        let mut listener = match listen(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "commit feed: cannot listen; retrying");
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
                "commit feed reconnected; resynced active rooms from the database"
            );
        }
        first = false;
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == EPHEMERAL_CHANNEL => {
                    match Ephemeral::decode(n.payload()) {
                        Ok(Ephemeral::Ban { author }) => bans.add(&author),
                        Ok(e) => presence.receive(e),
                        Err(e) => tracing::debug!(error = %e, "unreadable ephemeral notice"),
                    }
                }
                Ok(Some(n)) => feed(&hub, n.payload()),
                Ok(None) => {
                    tracing::warn!("commit feed: connection lost");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "commit feed: error");
                    break;
                }
            }
        }
        metrics::gauge!("bus_connected").set(0.0);
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([MESSAGES_CHANNEL, EPHEMERAL_CHANNEL])
        .await?;
    Ok(listener)
}

fn feed(hub: &Hub, payload: &str) {
    match Notice::decode(payload) {
        Ok(Notice::Full(message)) => hub.publish(message),
        Ok(Notice::Ref { room, seq }) => match RoomId::parse(&room) {
            Ok(room) => hub.publish_ref(room, seq),
            Err(_) => tracing::warn!("commit feed: bad room in notice"),
        },
        Err(e) => tracing::warn!(error = %e, "commit feed: unreadable notice"),
    }
}
