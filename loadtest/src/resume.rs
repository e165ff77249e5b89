//! Resume storm: clients that were away reconnect at once with
//! `after=<last seq>`; how long until each has every missed message.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{future::join_all, SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    cli::ResumeArgs,
    client::{self, Frame},
    hist::Latency,
    net,
    stats::{ClientStats, Rng},
};

/// What one reconnecting client saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Reconnect start -> every missed message and `ready`, µs.
    converged_us: Option<u64>,
    /// Reconnect start -> upgrade answered, µs.
    handshake_us: Option<u64>,
    /// Reconnect start -> `ready`, µs.
    ready_us: Option<u64>,
    received: u64,
    /// `more` frames (replay pages beyond the first).
    pages: u64,
    duplicates: u64,
    out_of_order: u64,
    missing: u64,
    error: Option<String>,
}

pub async fn resume_mode(a: &ResumeArgs) -> u8 {
    let mut rng = Rng::seeded();
    let urls = a.target.urls();
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("resume-{:08x}", rng.next_u64() as u32));
    let http = match net::http_client(a.posters) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return 2;
        }
    };
    println!(
        "loadtest resume url={} room={room} clients={} missed={} window={}s seed={}",
        urls.join(","),
        a.clients,
        a.missed,
        a.window,
        a.seed
    );

    // 1. Seed the room.
    let (seeded, errors) =
        net::post_many(&http, &urls[0], &room, a.seed, a.posters, "seed", &mut rng).await;
    if !errors.is_empty() {
        eprintln!("loadtest: seeding failed: {} x {}", errors.len(), errors[0]);
        net::rate_limit_notice();
        return 2;
    }
    println!(
        "seed        {} messages (head {})",
        seeded.len(),
        seeded.last().map_or(0, |m| m.seq)
    );

    // 2. Connect every client (no backlog) and remember its head.
    let connect_started = Instant::now();
    let slots = Arc::new(Semaphore::new(a.connect.connect_concurrency));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        tokio::time::sleep_until(
            start + Duration::from_secs_f64(i as f64 / a.connect.connect_rate),
        )
        .await;
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let url = net::ws_url(&urls[i % urls.len()], &room, None);
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let r =
                tokio::time::timeout(client::CONNECT_TIMEOUT, client::connect_ready(&url, &room))
                    .await
                    .unwrap_or_else(|_| Err("timed out before ready".into()));
            drop(permit);
            r.map(|(ws, head)| (i, ws, head))
        }));
    }
    let mut sockets = Vec::with_capacity(a.clients);
    let mut connect_errors: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => sockets.push(v),
            Ok(Err(e)) => *connect_errors.entry(e).or_default() += 1,
            Err(e) => {
                *connect_errors
                    .entry(format!("task failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    println!(
        "connect     {}/{} ready in {:.2} s ({} failed)",
        sockets.len(),
        a.clients,
        connect_started.elapsed().as_secs_f64(),
        a.clients - sockets.len()
    );
    for (e, n) in &connect_errors {
        println!("error       {n} x {e} (first connect)");
    }
    if sockets.is_empty() {
        eprintln!(
            "loadtest: no client connected; is the server at {} up?",
            urls[0]
        );
        net::rate_limit_notice();
        return 2;
    }

    // 3. Disconnect them all. (client index, its last seq)
    let lasts: Vec<(usize, i64)> = sockets.iter().map(|(i, _, head)| (*i, *head)).collect();
    join_all(sockets.into_iter().map(|(_, mut ws, _)| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }))
    .await;
    println!("disconnect  {} clients closed", lasts.len());

    // 4. Post what they miss.
    let post_started = Instant::now();
    let (acks, post_errors) = net::post_many(
        &http, &urls[0], &room, a.missed, a.posters, "missed", &mut rng,
    )
    .await;
    let head = acks.last().map_or(0, |m| m.seq);
    let first_last = lasts.iter().map(|(_, l)| *l).min().unwrap_or(0);
    println!(
        "missed      {} posted in {:.2} s ({} failed); head {first_last} -> {head}",
        acks.len(),
        post_started.elapsed().as_secs_f64(),
        post_errors.len()
    );
    let mut post_error_counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in &post_errors {
        *post_error_counts.entry(e.clone()).or_default() += 1;
    }
    for (e, n) in &post_error_counts {
        println!("post error  {n} x {e}");
    }

    // 5. The storm: every client reconnects within --window, after its last seq.
    let n = lasts.len();
    let storm = tokio::time::Instant::now();
    let timeout = Duration::from_secs_f64(a.timeout);
    let tasks: Vec<_> = lasts
        .iter()
        .enumerate()
        .map(|(k, &(i, last))| {
            let offset = if n > 1 {
                a.window * k as f64 / (n - 1) as f64
            } else {
                0.0
            };
            let url = net::ws_url(&urls[i % urls.len()], &room, Some(last));
            let room = room.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(storm + Duration::from_secs_f64(offset)).await;
                resume_one(&url, &room, last, head, timeout).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(n);
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| Outcome {
            error: Some(format!("task failed: {e}")),
            ..Outcome::default()
        }));
    }
    let storm_secs = storm.elapsed().as_secs_f64();

    // --- report ---
    let mut converge = Latency::new();
    let mut handshake = Latency::new();
    let mut ready = Latency::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        if let Some(us) = o.converged_us {
            converge.record(us);
        }
        if let Some(us) = o.handshake_us {
            handshake.record(us);
        }
        if let Some(us) = o.ready_us {
            ready.record(us);
        }
        if let Some(e) = &o.error {
            *errors.entry(e.clone()).or_default() += 1;
        }
    }
    let converged = converge.len() as usize;
    let received: u64 = outcomes.iter().map(|o| o.received).sum();
    let expected: u64 = lasts.iter().map(|(_, l)| (head - l).max(0) as u64).sum();
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    let out_of_order: u64 = outcomes.iter().map(|o| o.out_of_order).sum();
    let missing: u64 = outcomes.iter().map(|o| o.missing).sum();
    let pages: u64 = outcomes.iter().map(|o| o.pages).sum();
    println!("--- results ---");
    if n == 1 {
        println!("reconnect   1 client, done after {storm_secs:.2} s");
    } else {
        println!(
            "reconnect   {n} clients started within {:.2} s, all done after {storm_secs:.2} s",
            a.window
        );
    }
    println!(
        "converged   {converged}/{n} (every missed message and ready within {} s)",
        a.timeout
    );
    println!(
        "converge    {} (reconnect start -> all missed + ready)",
        converge.spread()
    );
    println!("handshake   {}", handshake.spread());
    println!("ready       {}", ready.spread());
    println!(
        "replayed    {received}/{expected} messages  missing {missing}  duplicates {duplicates}  out-of-order {out_of_order}  ({pages} `more` pages asked for)"
    );
    for (e, count) in &errors {
        println!("error       {count} x {e}");
    }
    if n == 1 {
        println!(
            "single      replay of {} messages to one client: {} (target < 100 ms)",
            expected,
            crate::hist::ms(converge.max())
        );
    }
    let p99_ok = match (a.max_p99_ms, converge.ms(99.0)) {
        (Some(max), Some(v)) => v <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let error_count =
        errors.values().sum::<usize>() + post_errors.len() + connect_errors.values().sum::<usize>();
    let pass = converged == a.clients
        && error_count == 0
        && duplicates == 0
        && out_of_order == 0
        && missing == 0
        && p99_ok;
    println!(
        "SUMMARY mode=resume clients={} missed={} window={}s converged={converged}/{} p50={} p99={} max={} replayed={received}/{expected} dup={duplicates} ooo={out_of_order} errors={error_count} {}result={}",
        a.clients,
        a.missed,
        a.window,
        a.clients,
        converge.key(50.0),
        converge.key(99.0),
        converge.key_max(),
        a.max_p99_ms
            .map_or(String::new(), |m| format!("target_p99<={m}ms ")),
        if pass { "PASS" } else { "FAIL" }
    );
    net::rate_limit_notice();
    u8::from(!pass)
}

/// Reconnects with `after=last` and reads until it has `last+1..=head` and
/// `ready` (or fails, or `timeout` passes).
async fn resume_one(url: &str, room: &str, last: i64, head: i64, timeout: Duration) -> Outcome {
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Outcome::default();
    let mut ws = match tokio::time::timeout_at(deadline, client::connect(url)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            out.error = Some(e);
            return out;
        }
        Err(_) => {
            out.error = Some("timed out connecting".into());
            return out;
        }
    };
    out.handshake_us = Some(t0.elapsed().as_micros() as u64);
    let mut st = ClientStats::new(last);
    let mut got_ready = false;
    loop {
        if got_ready && st.missing(head) == 0 {
            out.converged_us = Some(t0.elapsed().as_micros() as u64);
            break;
        }
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(m) => m,
            Err(_) => {
                out.error = Some(format!(
                    "not converged in {:.0} s ({}ready)",
                    timeout.as_secs_f64(),
                    if got_ready { "" } else { "no " }
                ));
                break;
            }
        };
        match client::text_of(msg) {
            Ok(Some(text)) => {
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                    continue;
                };
                if frame.room.as_deref().is_some_and(|r| r != room) {
                    continue;
                }
                match frame.ty.as_ref() {
                    "message" => st.record(frame.seq, None),
                    // A backlog longer than the server's WS_REPLAY_MAX comes
                    // in pages: ask again from where this one ended.
                    "more" => {
                        out.pages += 1;
                        let after = frame.after.unwrap_or(st.max_seq);
                        let ask =
                            format!(r#"{{"type":"subscribe","room":"{room}","after":{after}}}"#);
                        if let Err(e) = ws.send(Message::Text(ask.into())).await {
                            out.error = Some(format!("send subscribe after more: {e}"));
                            break;
                        }
                    }
                    "ready" => {
                        got_ready = true;
                        out.ready_us = Some(t0.elapsed().as_micros() as u64);
                    }
                    _ => {}
                }
            }
            Ok(None) => {}
            Err(why) => {
                out.error = Some(why);
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    out.received = st.distinct;
    out.duplicates = st.duplicates;
    out.out_of_order = st.out_of_order;
    out.missing = st.missing(head);
    out
}
