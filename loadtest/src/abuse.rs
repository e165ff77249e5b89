//! Abuse: a flooder beside a well-behaved client.
//!
//! The flooder posts as fast as the server answers (`--flood-concurrency`
//! requests in flight, no pacing, a different sender name every time) and,
//! with `--frame-flood`, hammers WebSockets with frames. The well-behaved
//! client follows its room on one socket (`after=0`) and posts `--rate`
//! messages/s in it. The tool plays the load balancer: every request
//! carries `X-Forwarded-For`, so a server with `TRUSTED_PROXY_HOPS=1` sees
//! two clients with different addresses. The question is whether the
//! server's limits hold the flooder back without the well-behaved client
//! noticing: its posts all accepted and quick, its messages all delivered
//! once and in order, `/health` green throughout.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::{sync::watch, task::JoinHandle};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    cli::AbuseArgs,
    client::{self, Frame, Ws},
    hist::Latency,
    net,
    stats::Rng,
    sys,
};

/// The frame the frame flood sends (the protocol's own no-op).
const PING_FRAME: &str = r#"{"type":"ping"}"#;
/// The well-behaved client's name (2 posts/s is far below the per-name limit).
const CALM_SENDER: &str = "calm";

// ------------------------------------------------------------ pure parts

/// Content of the well-behaved client's post `n`: `ab:<tag>:<send µs>:<n>`.
fn calm_content(tag: &str, sent_us: u64, n: u64) -> String {
    format!("ab:{tag}:{sent_us}:{n}")
}

/// `(n, send µs)` from a well-behaved post of this run; `None` otherwise.
fn parse_calm(tag: &str, content: &str) -> Option<(u64, u64)> {
    let rest = content.strip_prefix("ab:")?.strip_prefix(tag)?;
    let mut it = rest.strip_prefix(':')?.split(':');
    let sent = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    it.next().is_none().then_some((n, sent))
}

/// The body of the flooder's `n`-th post from task `task`: a new sender
/// name every time, so only the per-address limit can stop it.
fn flood_body(task: usize, n: u64, room: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "sender": format!("flood-{task}-{n}"),
        "content": format!("flood {task} {n}"),
        "room": room,
    }))
    .expect("serialisable")
}

/// The flooder's answers.
#[derive(Debug, Default)]
struct FloodTally {
    requests: u64,
    created: u64,
    limited: u64,
    /// Anything else, by status or failure.
    other: BTreeMap<String, u64>,
    latency: Latency,
}

impl FloodTally {
    /// One answer: an HTTP status, or why there was none.
    fn add(&mut self, outcome: Result<u16, String>, us: u64) {
        self.requests += 1;
        match outcome {
            Ok(201) => self.created += 1,
            Ok(429) => self.limited += 1,
            Ok(code) => *self.other.entry(format!("HTTP {code}")).or_default() += 1,
            Err(why) => *self.other.entry(why).or_default() += 1,
        }
        if us > 0 {
            self.latency.record(us);
        }
    }

    fn merge(&mut self, o: FloodTally) {
        self.requests += o.requests;
        self.created += o.created;
        self.limited += o.limited;
        for (k, n) in o.other {
            *self.other.entry(k).or_default() += n;
        }
        self.latency.merge(&o.latency);
    }

    fn others(&self) -> u64 {
        self.other.values().sum()
    }
}

/// Everything the well-behaved socket received, checked as it arrives.
#[derive(Debug, Default)]
struct Deliveries {
    /// Room seqs received (any sender).
    seen: HashSet<i64>,
    max_seq: i64,
    frames: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Own post `n` -> (times received, seq of the first).
    own: HashMap<u64, (u32, i64)>,
    /// Own posts: POST issued -> frame read, first delivery only.
    latency: Latency,
}

impl Deliveries {
    /// A message frame of the room; `own` is `(n, send µs)` for the
    /// well-behaved client's own posts.
    fn message(&mut self, seq: i64, own: Option<(u64, u64)>, now_us: u64) {
        self.frames += 1;
        if !self.seen.insert(seq) {
            self.duplicates += 1;
        } else if seq < self.max_seq {
            self.out_of_order += 1;
        }
        self.max_seq = self.max_seq.max(seq);
        if let Some((n, sent)) = own {
            let e = self.own.entry(n).or_insert((0, seq));
            e.0 += 1;
            if e.0 == 1 {
                self.latency.record(now_us.saturating_sub(sent));
            }
        }
    }

    /// Seqs in `1..=head` never received (the socket started at `after=0`).
    fn missing(&self, head: i64) -> u64 {
        (1..=head).filter(|s| !self.seen.contains(s)).count() as u64
    }

    /// Checks the acknowledged own posts (`n` -> acked seq) against what
    /// arrived: (lost, duplicated, arrived under another seq).
    fn own_check(&self, acked: &[(u64, i64)]) -> (u64, u64, u64) {
        let (mut lost, mut dup, mut wrong) = (0, 0, 0);
        for (n, seq) in acked {
            match self.own.get(n) {
                None => lost += 1,
                Some(&(count, got)) => {
                    dup += u64::from(count - 1);
                    if got != *seq {
                        wrong += 1;
                    }
                }
            }
        }
        (lost, dup, wrong)
    }
}

/// What the well-behaved client saw, for the verdict.
#[derive(Debug, Default)]
struct CalmResult {
    sent: u64,
    created: u64,
    failures: BTreeMap<String, u64>,
    latency: Latency,
    own_lost: u64,
    own_dup: u64,
    own_wrong_seq: u64,
    room_missing: u64,
    room_dup: u64,
    room_ooo: u64,
    socket_error: Option<String>,
}

/// Why the run fails; empty: PASS.
fn verdict(c: &CalmResult, health_failures: u64, max_p99_ms: f64) -> Vec<String> {
    let mut why = Vec::new();
    if c.sent == 0 || c.created < c.sent {
        why.push(format!(
            "{} of {} well-behaved posts refused or failed",
            c.sent - c.created,
            c.sent
        ));
    }
    let p99 = c.latency.ms(99.0);
    if p99.is_none_or(|p| p > max_p99_ms) {
        why.push(format!(
            "well-behaved post p99 {} above {max_p99_ms} ms",
            c.latency.key(99.0)
        ));
    }
    for (n, what) in [
        (c.own_lost, "own messages never delivered"),
        (c.own_dup, "own messages delivered twice"),
        (c.own_wrong_seq, "own messages delivered under another seq"),
        (c.room_missing, "room seqs missing on the socket"),
        (c.room_dup, "duplicate frames"),
        (c.room_ooo, "frames out of order"),
    ] {
        if n > 0 {
            why.push(format!("{n} {what}"));
        }
    }
    if let Some(e) = &c.socket_error {
        why.push(format!("well-behaved socket ended: {e}"));
    }
    if health_failures > 0 {
        why.push(format!("{health_failures} /health probes failed"));
    }
    why
}

/// The frame flood's counts.
#[derive(Debug, Default)]
struct FrameTally {
    connects: u64,
    /// Refused or failed connects, by cause.
    refused: BTreeMap<String, u64>,
    frames_written: u64,
    error_frames: u64,
    /// Error frames with `retry_after_ms` (refused for rate).
    rate_errors: u64,
    /// How the sockets ended, by close code.
    closes: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct ErrorFrame {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// `Some(rate limited?)` for an `error` frame, `None` for anything else.
fn error_frame(text: &str) -> Option<bool> {
    let f: ErrorFrame = serde_json::from_str(text).ok()?;
    (f.ty == "error").then_some(f.retry_after_ms.is_some())
}

// ------------------------------------------------------------ the run

#[derive(Debug, Default)]
struct Health {
    probes: u64,
    ok: u64,
    failures: BTreeMap<String, u64>,
    latency: Latency,
    rss_peak_kib: Option<u64>,
}

fn sum_kib(pids: &[String], key: &str) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| sys::status_kib(p, key)).sum()
}

fn sum_ticks(pids: &[String]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| sys::cpu_ticks(p)).sum()
}

pub async fn abuse_mode(a: &AbuseArgs) -> u8 {
    let mut rng = Rng::seeded();
    let base = a.target.urls().remove(0);
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("calm-{:08x}", rng.next_u64() as u32));
    let flood_room = a.flood_room.clone().unwrap_or_else(|| room.clone());
    let tag = format!("{:08x}", rng.next_u64() as u32);
    let pids: Vec<String> = a.target.pid.iter().map(u32::to_string).collect();
    println!(
        "loadtest abuse url={base} room={room} well-behaved={} ({} posts/s for {} s) \
         flood={} ({} in flight, into {}){}",
        a.client_ip,
        a.rate,
        a.duration,
        a.flood_ip,
        a.flood_concurrency,
        if flood_room == room {
            "the same room".to_owned()
        } else {
            flood_room.clone()
        },
        a.frame_flood
            .map_or(String::new(), |n| format!(" frame-flood={n} sockets")),
    );
    println!(
        "            addresses travel as X-Forwarded-For: the server must run with \
         TRUSTED_PROXY_HOPS=1 and its rate limits on"
    );
    for pid in &pids {
        if sys::status_kib(pid, "VmRSS").is_none() {
            eprintln!("loadtest: no process {pid} (or /proc/{pid} is not readable)");
            return 2;
        }
    }
    let (probe, calm_http, flood_http) = match (
        net::http_client(2),
        net::http_client(4),
        net::http_client(a.flood_concurrency),
    ) {
        (Ok(p), Ok(c), Ok(f)) => (p, c, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("loadtest: {e}");
            return 2;
        }
    };
    if let Err(e) = probe.get(format!("{base}/health")).send().await {
        eprintln!(
            "loadtest: {base} does not answer: {}",
            net::request_error(&e)
        );
        return 2;
    }

    let epoch = Instant::now();
    let now_us = move || epoch.elapsed().as_micros() as u64;

    // The well-behaved socket: everything in the room from seq 1 on.
    let ws = match tokio::time::timeout(
        client::CONNECT_TIMEOUT,
        client::connect_from(&net::ws_url(&base, &room, Some(0)), a.client_ip),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            eprintln!("loadtest: the well-behaved socket could not connect: {e}");
            return 2;
        }
        Err(_) => {
            eprintln!("loadtest: the well-behaved socket timed out connecting");
            return 2;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (seq_tx, mut seq_rx) = watch::channel(0i64);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(calm_reader(
        ws,
        room.clone(),
        tag.clone(),
        epoch,
        ready_tx,
        seq_tx,
        stop_rx.clone(),
    ));
    match tokio::time::timeout(client::CONNECT_TIMEOUT, ready_rx).await {
        Ok(Ok(head)) => println!("calm socket ready in {room} at head {head}"),
        _ => {
            eprintln!("loadtest: the well-behaved socket got no `ready`");
            let _ = stop_tx.send(true);
            return 2;
        }
    }

    // The health sampler (and the server's peak memory).
    let health = tokio::spawn(health_loop(
        probe.clone(),
        format!("{base}/health"),
        Duration::from_millis(a.health_every_ms),
        pids.clone(),
        stop_rx.clone(),
    ));

    // The flood.
    let rss_before = sum_kib(&pids, "VmRSS");
    let cpu0 = sum_ticks(&pids);
    let tool0 = sys::cpu_ticks("self");
    let flood_started = Instant::now();
    let flooding = Arc::new(AtomicBool::new(true));
    let flood_count = Arc::new(AtomicU64::new(0));
    let flood_url = format!("{base}/api/messages");
    let flooders: Vec<JoinHandle<FloodTally>> = (0..a.flood_concurrency)
        .map(|task| {
            tokio::spawn(flood_task(
                task,
                flood_http.clone(),
                flood_url.clone(),
                flood_room.clone(),
                a.flood_ip,
                flooding.clone(),
                flood_count.clone(),
            ))
        })
        .collect();
    let frame_tally = Arc::new(Mutex::new(FrameTally::default()));
    let frame_flooders: Vec<JoinHandle<()>> = (0..a.frame_flood.unwrap_or(0))
        .map(|_| {
            tokio::spawn(frame_flood_task(
                net::ws_url(&base, &flood_room, None),
                a.flood_ip,
                stop_rx.clone(),
                frame_tally.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(a.lead)).await;

    // The well-behaved poster: open loop, `--rate` per second.
    let total = (a.rate * a.duration).round().max(1.0) as u64;
    let started = tokio::time::Instant::now();
    let mut posts = Vec::with_capacity(total as usize);
    let mut last_report = Instant::now();
    for n in 0..total {
        tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / a.rate)).await;
        let (http, base, room) = (calm_http.clone(), base.clone(), room.clone());
        let (id, ip, tag) = (rng.uuid_v4(), a.client_ip, tag.clone());
        posts.push(tokio::spawn(async move {
            let sent = now_us();
            let content = calm_content(&tag, sent, n);
            let r = net::post_message_as(&http, &base, CALM_SENDER, &room, &content, &id, Some(ip))
                .await;
            (n, r, now_us() - sent)
        }));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let secs = flood_started.elapsed().as_secs_f64();
            eprintln!(
                "  {n} well-behaved posts sent; flood {} requests ({:.0}/s)",
                flood_count.load(Ordering::Relaxed),
                flood_count.load(Ordering::Relaxed) as f64 / secs
            );
        }
    }
    let mut calm = CalmResult::default();
    let mut acked: Vec<(u64, i64)> = Vec::new();
    for p in posts {
        calm.sent += 1;
        match p.await {
            Ok((n, Ok(ack), us)) => {
                calm.created += 1;
                calm.latency.record(us);
                acked.push((n, ack.seq));
            }
            Ok((_, Err(e), _)) => *calm.failures.entry(e).or_default() += 1,
            Err(e) => {
                *calm
                    .failures
                    .entry(format!("task failed: {e}"))
                    .or_default() += 1
            }
        }
    }

    // Stop the flood.
    flooding.store(false, Ordering::Relaxed);
    let mut flood = FloodTally::default();
    for f in flooders {
        if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(15), f).await {
            flood.merge(t);
        }
    }
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let server_cpu = match (cpu0, sum_ticks(&pids)) {
        (Some(x), Some(y)) => Some((y - x) as f64 / sys::clk_tck() / flood_secs * 100.0),
        _ => None,
    };
    let tool_cpu = match (tool0, sys::cpu_ticks("self")) {
        (Some(x), Some(y)) => Some((y - x) as f64 / sys::clk_tck() / flood_secs * 100.0),
        _ => None,
    };
    let rss_after = sum_kib(&pids, "VmRSS");

    // Drain: the socket should reach the room's head.
    let head = match room_head(&probe, &base, &room).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("loadtest: cannot read the room's head: {e}");
            -1
        }
    };
    let _ = tokio::time::timeout(
        Duration::from_secs_f64(a.drain),
        seq_rx.wait_for(|s| *s >= head),
    )
    .await;
    let _ = stop_tx.send(true);
    for f in frame_flooders {
        let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
    }
    let (deliveries, socket_error) = match reader.await {
        Ok(r) => r,
        Err(e) => (Deliveries::default(), Some(format!("reader failed: {e}"))),
    };
    let health = health.await.unwrap_or_default();

    let (lost, dup, wrong) = deliveries.own_check(&acked);
    calm.own_lost = lost;
    calm.own_dup = dup;
    calm.own_wrong_seq = wrong;
    calm.room_missing = if head >= 0 {
        deliveries.missing(head)
    } else {
        0
    };
    calm.room_dup = deliveries.duplicates;
    calm.room_ooo = deliveries.out_of_order;
    calm.socket_error = socket_error;
    let health_failures = health.probes - health.ok;
    let why = verdict(&calm, health_failures, a.max_p99_ms);

    // ---- report
    println!("--- results ---");
    println!(
        "calm posts  sent {}  201 {}  refused/failed {}  ({} posts/s for {} s, from {})",
        calm.sent,
        calm.created,
        calm.sent - calm.created,
        a.rate,
        a.duration,
        a.client_ip
    );
    for (e, n) in &calm.failures {
        println!("calm error  {n} x {e}");
    }
    println!("calm post   {}  (issue -> response)", calm.latency.spread());
    println!(
        "calm socket own messages {}/{} delivered, lost {}, duplicated {}, wrong seq {}; \
         room seqs 1..{head}: missing {}, duplicates {}, out of order {} ({} frames)",
        acked.len() as u64 - lost,
        acked.len(),
        lost,
        dup,
        wrong,
        calm.room_missing,
        calm.room_dup,
        calm.room_ooo,
        deliveries.frames
    );
    println!(
        "calm deliv  {}  (POST issued -> frame read)",
        deliveries.latency.spread()
    );
    if let Some(e) = &calm.socket_error {
        println!("calm socket ended early: {e}");
    }
    println!(
        "flood posts {} requests in {flood_secs:.1} s = {:.0}/s; 201 {}  429 {}  other {} (from {})",
        flood.requests,
        flood.requests as f64 / flood_secs,
        flood.created,
        flood.limited,
        flood.others(),
        a.flood_ip
    );
    for (e, n) in &flood.other {
        println!("flood other {n} x {e}");
    }
    println!("flood http  {}", flood.latency.spread());
    if a.frame_flood.is_some() {
        let f = std::mem::take(&mut *frame_tally.lock().unwrap());
        let closes: Vec<String> = f.closes.iter().map(|(k, n)| format!("{n} x {k}")).collect();
        let refused: Vec<String> = f
            .refused
            .iter()
            .map(|(k, n)| format!("{n} x {k}"))
            .collect();
        println!(
            "frame flood {} connects ok, refused: {}; {} frames written; {} error frames \
             ({} with retry_after_ms); ends: {}",
            f.connects,
            if refused.is_empty() {
                "none".into()
            } else {
                refused.join(", ")
            },
            f.frames_written,
            f.error_frames,
            f.rate_errors,
            if closes.is_empty() {
                "none".into()
            } else {
                closes.join(", ")
            }
        );
    }
    println!(
        "health      {} probes every {} ms: {} x 200, {} failed; {}",
        health.probes,
        a.health_every_ms,
        health.ok,
        health_failures,
        health.latency.spread()
    );
    for (e, n) in &health.failures {
        println!("health fail {n} x {e}");
    }
    let kib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} KiB"));
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
    if !pids.is_empty() {
        println!(
            "server      cpu {} of one core over the flood; VmRSS before {}, peak {}, after {}",
            cpu(server_cpu),
            kib(rss_before),
            kib(health.rss_peak_kib.max(rss_after)),
            kib(rss_after)
        );
    }
    println!("loadtest    cpu {} of one core", cpu(tool_cpu));
    if flood.limited == 0 {
        println!(
            "NOTE        the flood was never refused (no 429): the server's post limits look \
             off (RATE_POSTS_PER_IP); this mode is meant for the default limits"
        );
    }
    if calm.failures.keys().any(|k| k.contains("429")) {
        println!(
            "NOTE        the well-behaved client was rate-limited: either the server does not \
             trust X-Forwarded-For (start it with TRUSTED_PROXY_HOPS=1, or both clients share \
             one address) or --rate is above the per-name/per-address limits"
        );
    }
    for w in &why {
        println!("FAIL        {w}");
    }
    let pass = why.is_empty();
    println!(
        "SUMMARY mode=abuse flood_concurrency={} rate={}/s duration={}s calm_ok={}/{} \
         calm_p50={} calm_p99={} calm_max={} lost={} dup={} ooo={} missing={} deliv_p99={} \
         flood_rps={:.0} flood_201={} flood_429={} flood_other={} health_fail={} \
         server_cpu={} rss_before_kib={} rss_after_kib={} result={}",
        a.flood_concurrency,
        a.rate,
        a.duration,
        calm.created,
        calm.sent,
        calm.latency.key(50.0),
        calm.latency.key(99.0),
        calm.latency.key_max(),
        calm.own_lost,
        calm.own_dup + calm.room_dup,
        calm.room_ooo,
        calm.room_missing,
        deliveries.latency.key(99.0),
        flood.requests as f64 / flood_secs,
        flood.created,
        flood.limited,
        flood.others(),
        health_failures,
        cpu(server_cpu),
        rss_before.map_or("-".into(), |v| v.to_string()),
        rss_after.map_or("-".into(), |v| v.to_string()),
        if pass { "PASS" } else { "FAIL" }
    );
    u8::from(!pass)
}

/// The newest seq stored in `room` (0 when empty).
async fn room_head(http: &reqwest::Client, base: &str, room: &str) -> Result<i64, String> {
    #[derive(Deserialize)]
    struct Page {
        messages: Vec<net::Ack>,
    }
    let resp = http
        .get(format!("{base}/api/messages?room={room}&limit=1"))
        .send()
        .await
        .map_err(|e| net::request_error(&e))?;
    if !resp.status().is_success() {
        return Err(net::status_text(resp.status()));
    }
    let page: Page = resp.json().await.map_err(|e| format!("bad body: {e}"))?;
    Ok(page.messages.iter().map(|m| m.seq).max().unwrap_or(0))
}

/// Reads the well-behaved socket until told to stop; says when it is ready
/// and how far it is.
async fn calm_reader(
    mut ws: Ws,
    room: String,
    tag: String,
    epoch: Instant,
    ready: tokio::sync::oneshot::Sender<i64>,
    progress: watch::Sender<i64>,
    mut stop: watch::Receiver<bool>,
) -> (Deliveries, Option<String>) {
    let mut d = Deliveries::default();
    let mut ready = Some(ready);
    let error = loop {
        tokio::select! {
            biased;
            msg = ws.next() => {
                let now = epoch.elapsed().as_micros() as u64;
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                            continue;
                        };
                        if frame.room.as_deref().is_some_and(|r| r != room) {
                            continue;
                        }
                        match &*frame.ty {
                            "message" => {
                                let own = frame.content.as_deref().and_then(|c| parse_calm(&tag, c));
                                d.message(frame.seq, own, now);
                                let _ = progress.send(d.max_seq);
                            }
                            "ready" => {
                                if let Some(tx) = ready.take() {
                                    let _ = tx.send(frame.head);
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(f))) => break Some(net::close_text(f.as_ref())),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Some(format!("read error: {e}")),
                    None => break Some("connection ended".into()),
                }
            }
            _ = stopped(&mut stop) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                break None;
            }
        }
    };
    (d, error)
}

/// One flooding task: post, and post again as soon as the answer is in.
async fn flood_task(
    task: usize,
    http: reqwest::Client,
    url: String,
    room: String,
    ip: IpAddr,
    flooding: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> FloodTally {
    let mut tally = FloodTally::default();
    let from = ip.to_string();
    let mut n = 0u64;
    while flooding.load(Ordering::Relaxed) {
        n += 1;
        let t0 = Instant::now();
        let result = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", &from)
            .body(flood_body(task, n, &room))
            .send()
            .await;
        match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read the body, so the connection is reused.
                let _ = resp.bytes().await;
                tally.add(Ok(status), t0.elapsed().as_micros() as u64);
            }
            Err(e) => {
                tally.add(Err(net::request_error(&e)), 0);
                // Connection refused and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// One frame-flooding socket, reconnecting whenever it is closed.
async fn frame_flood_task(
    url: String,
    ip: IpAddr,
    mut stop: watch::Receiver<bool>,
    tally: Arc<Mutex<FrameTally>>,
) {
    while !*stop.borrow() {
        let ws = tokio::select! {
            r = client::connect_from(&url, ip) => r,
            _ = stopped(&mut stop) => return,
        };
        let ws = match ws {
            Ok(ws) => {
                tally.lock().unwrap().connects += 1;
                ws
            }
            Err(e) => {
                *tally.lock().unwrap().refused.entry(e).or_default() += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped(&mut stop) => return,
                }
                continue;
            }
        };
        let (mut sink, mut stream) = ws.split();
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        let writer = tokio::spawn(async move {
            while sink.send(Message::Text(PING_FRAME.into())).await.is_ok() {
                w.fetch_add(1, Ordering::Relaxed);
            }
        });
        let end = loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(rate) = error_frame(text.as_str()) {
                            let mut t = tally.lock().unwrap();
                            t.error_frames += 1;
                            t.rate_errors += u64::from(rate);
                        }
                    }
                    Some(Ok(Message::Close(f))) => {
                        break match f {
                            Some(f) => format!("close {}", u16::from(f.code)),
                            None => "close without code".into(),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break "connection ended without a close frame".into(),
                },
                _ = stopped(&mut stop) => break String::new(),
            }
        };
        writer.abort();
        {
            let mut t = tally.lock().unwrap();
            t.frames_written += written.load(Ordering::Relaxed);
            if !end.is_empty() {
                *t.closes.entry(end).or_default() += 1;
            }
        }
        // A closed socket reconnects at once (the connect limit decides).
        tokio::task::yield_now().await;
    }
}

/// Resolves once the run is told to stop (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `GET /health` every `every` until told to stop; also the server's peak VmRSS.
async fn health_loop(
    http: reqwest::Client,
    url: String,
    every: Duration,
    pids: Vec<String>,
    mut stop: watch::Receiver<bool>,
) -> Health {
    let mut h = Health::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => return h,
        }
        if let Some(kib) = sum_kib(&pids, "VmRSS") {
            h.rss_peak_kib = Some(h.rss_peak_kib.unwrap_or(0).max(kib));
        }
        h.probes += 1;
        let t0 = Instant::now();
        let r = http.get(&url).timeout(Duration::from_secs(2)).send().await;
        let outcome = match r {
            Ok(resp) if resp.status().as_u16() == 200 => {
                let _ = resp.bytes().await;
                Ok(())
            }
            Ok(resp) => Err(net::status_text(resp.status())),
            Err(e) => Err(net::request_error(&e)),
        };
        h.latency.record(t0.elapsed().as_micros() as u64);
        match outcome {
            Ok(()) => h.ok += 1,
            Err(e) => *h.failures.entry(e).or_default() += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calm_content_round_trips_and_ignores_others() {
        let c = calm_content("abcd1234", 1_500_000, 7);
        assert_eq!(c, "ab:abcd1234:1500000:7");
        assert_eq!(parse_calm("abcd1234", &c), Some((7, 1_500_000)));
        assert_eq!(parse_calm("other", &c), None);
        assert_eq!(parse_calm("abcd1234", "flood 1 2"), None);
        assert_eq!(parse_calm("abcd1234", "ab:abcd1234:x:7"), None);
        assert_eq!(parse_calm("abcd1234", "ab:abcd1234:1:7:extra"), None);
        assert_eq!(parse_calm("abcd", "ab:abcd1234:1:7"), None);
    }

    #[test]
    fn flood_bodies_vary_the_sender_and_stay_valid() {
        let a: serde_json::Value = serde_json::from_slice(&flood_body(3, 1, "r")).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&flood_body(3, 2, "r")).unwrap();
        assert_ne!(a["sender"], b["sender"]);
        assert_eq!(a["room"], "r");
        // Names stay within the server's 32 characters for any realistic run.
        let long = flood_body(9999, 999_999_999_999, "r");
        let v: serde_json::Value = serde_json::from_slice(&long).unwrap();
        assert!(v["sender"].as_str().unwrap().chars().count() <= 32);
    }

    #[test]
    fn flood_tally_counts_by_answer() {
        let mut t = FloodTally::default();
        t.add(Ok(201), 100);
        t.add(Ok(429), 50);
        t.add(Ok(429), 60);
        t.add(Ok(503), 70);
        t.add(Err("timeout".into()), 0);
        let mut u = FloodTally::default();
        u.add(Ok(201), 10);
        t.merge(u);
        assert_eq!((t.requests, t.created, t.limited, t.others()), (6, 2, 2, 2));
        assert_eq!(t.other["HTTP 503"], 1);
        assert_eq!(t.other["timeout"], 1);
        assert_eq!(
            t.latency.len(),
            5,
            "failures without an answer have no latency"
        );
    }

    #[test]
    fn deliveries_find_loss_duplicates_order_and_wrong_seqs() {
        let mut d = Deliveries::default();
        // Room seqs 1..=6 with 4 missing, 2 twice, 3 after 5.
        d.message(1, Some((0, 100)), 1_100);
        d.message(2, None, 0);
        d.message(2, None, 0);
        d.message(5, Some((1, 200)), 2_200);
        d.message(3, None, 0);
        d.message(6, Some((2, 300)), 1_300);
        d.message(6, Some((2, 300)), 9_300);
        assert_eq!(d.frames, 7);
        assert_eq!(d.duplicates, 2);
        assert_eq!(d.out_of_order, 1);
        assert_eq!(d.missing(6), 1);
        assert_eq!(d.missing(8), 3);
        // Posts 0, 1, 2 delivered; 3 acked but never arrived; 1 acked as seq 4.
        let (lost, dup, wrong) = d.own_check(&[(0, 1), (1, 4), (2, 6), (3, 7)]);
        assert_eq!((lost, dup, wrong), (1, 1, 1));
        // Latency from the first delivery only: 1.0, 2.0, 1.0 ms.
        assert_eq!(d.latency.len(), 3);
        assert_eq!(d.latency.max(), Some(2_000));
    }

    #[test]
    fn verdict_passes_only_a_clean_fast_run() {
        let mut c = CalmResult {
            sent: 40,
            created: 40,
            ..Default::default()
        };
        for _ in 0..40 {
            c.latency.record(5_000);
        }
        assert!(verdict(&c, 0, 100.0).is_empty());
        assert_eq!(verdict(&c, 1, 100.0), ["1 /health probes failed"]);
        assert_eq!(verdict(&c, 0, 4.0).len(), 1, "p99 5 ms above 4 ms");
        c.created = 39;
        c.own_lost = 1;
        let why = verdict(&c, 0, 100.0);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].starts_with("1 of 40"));
        // Nothing sent is not a pass.
        assert!(!verdict(&CalmResult::default(), 0, 100.0).is_empty());
    }

    #[test]
    fn error_frames_are_told_apart() {
        assert_eq!(
            error_frame(r#"{"type":"error","error":"slow down","retry_after_ms":1500}"#),
            Some(true)
        );
        assert_eq!(
            error_frame(r#"{"type":"error","error":"Unknown or malformed frame."}"#),
            Some(false)
        );
        assert_eq!(error_frame(r#"{"type":"presence","room":"r"}"#), None);
        assert_eq!(error_frame("not json"), None);
    }
}
