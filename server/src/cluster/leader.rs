//! Cluster-wide leader election for the random broadcaster: the instance
//! holding a PostgreSQL session-level advisory lock on its own dedicated
//! connection broadcasts; the others retry every second. If the leader dies
//! its session ends and the lock is released at once; if it loses its
//! connection it stops broadcasting before trying again. So exactly one
//! instance broadcasts and another takes over within about a second.

use std::{sync::Arc, time::Duration};

use app::domain::RoomId;
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

use super::broadcaster;
use crate::store::Store;

/// Advisory lock key: "chatbcst" as a big-endian i64.
const LOCK_KEY: i64 = 0x6368_6174_6263_7374;
const RETRY: Duration = Duration::from_secs(1);
const CHECK: Duration = Duration::from_secs(1);

pub async fn run(
    options: PgConnectOptions,
    store: Arc<dyn Store>,
    room: RoomId,
    interval: broadcaster::Interval,
) {
    metrics::gauge!("broadcast_leader").set(0.0);
    loop {
        let mut conn = match PgConnection::connect_with(&options).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "leader election: cannot connect");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        loop {
            let acquired = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut conn)
                .await;
            match acquired {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(RETRY).await,
                Err(_) => break,
            }
        }
        if conn.ping().await.is_err() {
            continue;
        }
        tracing::info!("became the broadcast leader");
        metrics::gauge!("broadcast_leader").set(1.0);
        let lead = broadcaster::run(store.clone(), room.clone(), interval);
        let watch = async {
            loop {
                tokio::time::sleep(CHECK).await;
                if conn.ping().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = lead => {}
            _ = watch => {}
        }
        metrics::gauge!("broadcast_leader").set(0.0);
        tracing::warn!("lost the broadcast leader lock connection; stepped down");
        drop(conn);
    }
}
