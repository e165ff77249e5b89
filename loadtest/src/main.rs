//! Load generator for the chat server. See `loadtest --help` and
//! docs/benchmarks.md.
//!
//! Load mode: N WebSocket clients on one room, HTTP posts at a fixed total
//! rate; every client timestamps each frame it reads against the moment the
//! POST was issued (carried in the message content), and tracks which seqs
//! it got, so loss, duplicates and reordering are exact.
//! Idle mode: N clients that only stay connected, to measure the server's
//! memory per idle socket from /proc/<pid>/status.

mod args;
mod client;
mod stats;
mod sys;

use std::{
    collections::BTreeMap,
    ops::Range,
    process::ExitCode,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::{
    sync::{watch, Semaphore},
    task::JoinHandle,
};

use args::Args;
use client::Shared;
use stats::{percentile, spread, ClientStats, Rng};

const LATENCY_PS: &[(&str, f64)] = &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadtest: {e}\n(see --help)");
            return ExitCode::from(2);
        }
    };
    // Sockets + posters + a margin for the runtime, stdio, DNS, the probe.
    let needed = (args.clients + warmup(&args)) as u64 + args.posters as u64 + 64;
    if let Err(e) = sys::ensure_nofile(needed) {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(run(args));
    // Don't wait for stragglers (e.g. a close handshake that never finishes).
    rt.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(code)
}

async fn run(args: Args) -> u8 {
    let mut rng = Rng::seeded();
    let room = args
        .room
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}", rng.next_u64() as u32));
    let ws_url = format!(
        "ws://{}/ws?room={room}",
        args.url.trim_start_matches("http://")
    );
    let sh = Arc::new(Shared {
        epoch: Instant::now(),
        ws_url,
        post_url: format!("{}/api/messages", args.url),
        room: room.clone(),
        tag: format!("{:08x}", rng.next_u64() as u32),
        last: (0..args.clients + warmup(&args))
            .map(|_| AtomicI64::new(i64::MIN))
            .collect(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
    });
    let pid = args.pid.map(|p| p.to_string());
    if let Some(pid) = &pid {
        match sys::nofile(pid) {
            None => {
                eprintln!("loadtest: no process {pid} (or /proc/{pid} is not readable)");
                return 2;
            }
            Some((soft, _)) if soft < (args.clients + warmup(&args)) as u64 + 100 => eprintln!(
                "loadtest: WARNING: server {pid} may open only {soft} files; {} sockets need more \
                 (start it after `ulimit -n 65536`)",
                args.clients + warmup(&args)
            ),
            Some(_) => {}
        }
    }
    println!(
        "loadtest {} url={} room={room} clients={} {}",
        if args.idle { "idle" } else { "load" },
        args.url,
        args.clients,
        if args.idle {
            format!(
                "warmup={} settle={}s hold={}s",
                args.warmup, args.settle, args.hold
            )
        } else {
            format!(
                "rate={}/s duration={}s size={}B posters={}",
                args.rate, args.duration, args.size, args.posters
            )
        }
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let rss_start = pid.as_deref().and_then(|p| sys::status_kib(p, "VmRSS"));
    let warm = warmup(&args);
    let mut handles = Vec::with_capacity(args.clients + warm);
    if warm > 0 {
        handles = connect_all(&args, &sh, stop_rx.clone(), 0..warm).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "warmup      {}/{warm} ready and kept open (server rss {} KiB before them)",
            sh.ready.load(Ordering::Relaxed),
            opt(rss_start)
        );
    }
    let warm_ready = sh.ready.load(Ordering::Relaxed);
    let warm_failed = sh.failed.load(Ordering::Relaxed);
    let rss_before = pid.as_deref().and_then(|p| sys::status_kib(p, "VmRSS"));
    let anon_before = pid.as_deref().and_then(|p| sys::status_kib(p, "RssAnon"));

    // --- connect ---
    let connect_started = Instant::now();
    handles.extend(connect_all(&args, &sh, stop_rx, warm..warm + args.clients).await);
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let ready = sh.ready.load(Ordering::Relaxed) - warm_ready;
    let failed = sh.failed.load(Ordering::Relaxed) - warm_failed;
    println!(
        "connect     {ready}/{} ready in {connect_secs:.2} s ({failed} failed)",
        args.clients
    );

    if args.idle {
        return idle(
            &args,
            &sh,
            pid.as_deref(),
            ready,
            rss_before,
            anon_before,
            Fleet { stop_tx, handles },
        )
        .await;
    }
    if ready == 0 {
        eprintln!(
            "loadtest: no client connected; is the server at {} up?",
            args.url
        );
        let _ = stop_tx.send(true);
        for h in handles {
            if let Ok(st) = h.await {
                if let Some(e) = st.error {
                    eprintln!("  first error: {e}");
                    break;
                }
            }
        }
        return 2;
    }
    load(
        &args,
        &sh,
        &mut rng,
        pid.as_deref(),
        rss_before,
        Fleet { stop_tx, handles },
    )
    .await
}

/// Starts every client at `--connect-rate` with at most
/// `--connect-concurrency` handshakes in flight; returns when all are ready
/// or have failed.
async fn connect_all(
    args: &Args,
    sh: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    indices: Range<usize>,
) -> Vec<JoinHandle<ClientStats>> {
    let slots = Arc::new(Semaphore::new(args.connect_concurrency));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(indices.len());
    let mut last_report = Instant::now();
    let end = indices.end;
    for (k, idx) in indices.enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / args.connect_rate))
            .await;
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        handles.push(tokio::spawn(client::run(
            idx,
            sh.clone(),
            permit,
            stop.clone(),
        )));
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  connecting: {} started, {} ready, {} failed",
                idx + 1,
                sh.ready.load(Ordering::Relaxed),
                sh.failed.load(Ordering::Relaxed)
            );
        }
    }
    while sh.ready.load(Ordering::Relaxed) + sh.failed.load(Ordering::Relaxed) < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handles
}

async fn idle(
    args: &Args,
    sh: &Arc<Shared>,
    pid: Option<&str>,
    ready: usize,
    rss_before: Option<u64>,
    anon_before: Option<u64>,
    fleet: Fleet,
) -> u8 {
    let rss = |key| pid.and_then(|p| sys::status_kib(p, key));
    let rss_connected = rss("VmRSS");
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_settled = rss("VmRSS");
    let anon_settled = rss("RssAnon");
    let still_open = ready - sh.dropped.load(Ordering::Relaxed).min(ready);
    let mut per_conn = None;
    match (rss_before, rss_connected, rss_settled) {
        (Some(b), Some(c), Some(s)) => {
            let n = still_open.max(1) as f64;
            let kib = (s as f64 - b as f64) / n;
            per_conn = Some(kib);
            println!(
                "server rss  baseline {b} KiB, all connected {c} KiB, after {}s settle {s} KiB",
                args.settle
            );
            if let (Some(ab), Some(a_s)) = (anon_before, anon_settled) {
                println!(
                    "server anon baseline {ab} KiB, after settle {a_s} KiB ({:.2} KiB/conn)",
                    (a_s as f64 - ab as f64) / n
                );
            }
            println!(
                "per socket  {kib:.2} KiB of server VmRSS per idle WebSocket ({still_open} open)"
            );
        }
        _ if pid.is_some() => println!("server rss  could not be read"),
        _ => println!("server rss  not measured (pass --pid <server pid>)"),
    }
    let own = sys::status_kib("self", "VmRSS");
    if let Some(own) = own {
        println!(
            "tool rss    {own} KiB (this process, {} sockets)",
            sh.ready.load(Ordering::Relaxed)
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let results = fleet.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(after) = rss("VmRSS") {
        println!("server rss  {after} KiB one second after closing");
    }
    let errors = error_summary(&results);
    for (e, n) in &errors {
        println!("error       {n} x {e}");
    }
    let error_count: usize = errors.values().sum();
    let target_ok = match (args.max_kib_per_conn, per_conn) {
        (Some(max), Some(kib)) => kib <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let pass = error_count == 0 && target_ok;
    println!(
        "SUMMARY mode=idle clients={} ready={ready} errors={error_count} rss_before_kib={} rss_after_kib={} kib_per_conn={}{} result={}",
        args.clients,
        opt(rss_before),
        opt(rss_settled),
        per_conn.map_or("-".into(), |k| format!("{k:.2}")),
        args.max_kib_per_conn
            .map_or(String::new(), |m| format!(" target_kib<={m}")),
        if pass { "PASS" } else { "FAIL" }
    );
    u8::from(!pass)
}

#[derive(Default)]
struct PostStats {
    sent: u64,
    acked: u64,
    failures: BTreeMap<String, u64>,
    http_us: Vec<u32>,
    max_seq: i64,
    min_seq: i64,
}

#[derive(Deserialize)]
struct Ack {
    seq: i64,
}

async fn load(
    args: &Args,
    sh: &Arc<Shared>,
    rng: &mut Rng,
    pid: Option<&str>,
    rss_before: Option<u64>,
    fleet: Fleet,
) -> u8 {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.posters)
        .tcp_nodelay(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: http client: {e}");
            return 2;
        }
    };
    let tck = sys::clk_tck();
    let server_cpu0 = pid.and_then(sys::cpu_ticks);
    let tool_cpu0 = sys::cpu_ticks("self");
    let posts = Arc::new(Mutex::new(PostStats {
        min_seq: i64::MAX,
        ..PostStats::default()
    }));
    let in_flight = Arc::new(Semaphore::new(args.posters));
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let mut late_dispatches = 0u64;
    let started = tokio::time::Instant::now();
    let mut last_report = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        if due.elapsed() > Duration::from_millis(10) {
            late_dispatches += 1;
        }
        let (http2, sh2, posts2) = (http.clone(), sh.clone(), posts.clone());
        let id = rng.uuid_v4();
        let size = args.size;
        tokio::spawn(async move {
            post_one(&http2, &sh2, &posts2, n, &id, size).await;
            drop(permit);
        });
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let p = posts.lock().unwrap();
            eprintln!(
                "  posting: {} sent, {} acked, {} clients open",
                p.sent,
                p.acked,
                sh.ready.load(Ordering::Relaxed) - sh.dropped.load(Ordering::Relaxed)
            );
        }
    }
    // Time the posts were spread over (the last one owns a 1/rate slot too).
    let dispatch_secs = started.elapsed().as_secs_f64() + 1.0 / args.rate;
    // Every post answered (or timed out).
    let _all = in_flight
        .acquire_many(args.posters as u32)
        .await
        .expect("never closed");
    let post_secs = started.elapsed().as_secs_f64();
    let server_cpu = match (server_cpu0, pid.and_then(sys::cpu_ticks)) {
        (Some(a), Some(b)) => Some((b - a) as f64 / tck / post_secs * 100.0),
        _ => None,
    };
    let tool_cpu = match (tool_cpu0, sys::cpu_ticks("self")) {
        (Some(a), Some(b)) => Some((b - a) as f64 / tck / post_secs * 100.0),
        _ => None,
    };

    // The authoritative head: what a fresh client is told is stored.
    let probe = tokio::time::timeout(
        client::CONNECT_TIMEOUT,
        client::connect_ready(&sh.ws_url, &sh.room),
    )
    .await;
    let (probe_head, probe_err) = match probe {
        Ok(Ok((mut ws, head))) => {
            let _ = ws.close(None).await;
            (Some(head), None)
        }
        Ok(Err(e)) => (None, Some(e)),
        Err(_) => (None, Some("timed out".to_string())),
    };
    let (acked_max, acked_min) = {
        let p = posts.lock().unwrap();
        (p.max_seq, p.min_seq)
    };
    let head = probe_head.unwrap_or(acked_max).max(acked_max);

    // Stragglers: until every live client has seen `head`, at most --drain s.
    let drain_started = Instant::now();
    let drain = Duration::from_secs_f64(args.drain);
    while drain_started.elapsed() < drain
        && sh.last.iter().any(|l| l.load(Ordering::Relaxed) < head)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let rss_after = pid.and_then(|p| sys::status_kib(p, "VmRSS"));
    let results = fleet.close().await;

    // --- report ---
    let p = posts.lock().unwrap();
    let connected: Vec<&ClientStats> = results.iter().filter(|c| c.connected).collect();
    let base = connected.iter().map(|c| c.base).min().unwrap_or(0);
    let expected_acked = p.acked * connected.len() as u64;
    let expected: u64 = connected
        .iter()
        .map(|c| (head - c.base).max(0) as u64)
        .sum();
    let delivered: u64 = connected.iter().map(|c| c.distinct).sum();
    let lost: u64 = connected.iter().map(|c| c.missing(head)).sum();
    let duplicates: u64 = connected.iter().map(|c| c.duplicates).sum();
    let out_of_order: u64 = connected.iter().map(|c| c.out_of_order).sum();
    let foreign: u64 = connected.iter().map(|c| c.foreign).sum();
    let stale: u64 = connected.iter().map(|c| c.stale).sum();
    let control: u64 = connected.iter().map(|c| c.control).sum();
    let other_room: u64 = connected.iter().map(|c| c.other_room).sum();
    let beyond: u64 = connected
        .iter()
        .map(|c| (c.max_seq - head).max(0) as u64)
        .sum();
    let clients_with_loss = connected.iter().filter(|c| c.missing(head) > 0).count();
    let mut latency: Vec<u32> = Vec::with_capacity(delivered as usize);
    for c in &connected {
        latency.extend_from_slice(&c.latency_us);
    }
    latency.sort_unstable();
    let mut connect_us: Vec<u32> = connected.iter().map(|c| c.connect_us).collect();
    connect_us.sort_unstable();
    let mut http_us = p.http_us.clone();
    http_us.sort_unstable();
    let failed_posts = p.sent - p.acked;
    let stored_unacked = (head - base).max(0) as u64 - p.acked.min((head - base).max(0) as u64);
    let errors = error_summary(&results);
    let client_errors: usize = errors.values().sum();

    println!("--- results ---");
    println!(
        "connect     {} ok, {} failed; connect+ready {}",
        connected.len(),
        results.len() - connected.len(),
        spread(&connect_us, &[("p50", 50.0), ("p99", 99.0)])
    );
    println!(
        "posts       sent {}  acked {}  failed {failed_posts}  over {dispatch_secs:.2} s = {:.1}/s (target {}/s, {late_dispatches} dispatched >10 ms late)",
        p.sent,
        p.acked,
        p.sent as f64 / dispatch_secs,
        args.rate
    );
    for (why, n) in &p.failures {
        println!("post error  {n} x {why}");
    }
    println!(
        "post http   {}",
        spread(&http_us, &[("p50", 50.0), ("p99", 99.0)])
    );
    println!(
        "stored      head {base} -> {head} ({} new; acked seqs {}..{}; {stored_unacked} stored but not acked){}",
        head - base,
        if acked_min == i64::MAX { 0 } else { acked_min },
        acked_max,
        probe_err.map_or(String::new(), |e| format!("; head probe failed: {e}"))
    );
    println!(
        "deliveries  expected {expected} (acked x clients = {expected_acked})  delivered {delivered}  lost {lost} ({clients_with_loss} clients)  duplicates {duplicates}  out-of-order {out_of_order}"
    );
    if foreign + stale + beyond + control + other_room > 0 {
        println!(
            "other       {control} non-message frames, {foreign} messages from other posters, \
             {other_room} of other rooms, {stale} backlog, {beyond} seqs beyond head"
        );
    }
    println!(
        "latency     {} (n={})",
        spread(&latency, LATENCY_PS),
        latency.len()
    );
    println!(
        "drain       {drain_secs:.2} s after the last answer until all clients had head {head}"
    );
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
    println!(
        "cpu         server {}  loadtest {}  (of one core, over the posting phase)",
        cpu(server_cpu),
        cpu(tool_cpu)
    );
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        println!("server rss  {b} KiB before connecting -> {a} KiB at the end");
    }
    for (e, n) in &errors {
        println!("error       {n} x {e}");
    }

    let p99 = percentile(&latency, 99.0);
    let p99_ok = match (args.max_p99_ms, p99) {
        (Some(max), Some(v)) => v as f64 / 1000.0 <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let pass = lost == 0
        && duplicates == 0
        && out_of_order == 0
        && failed_posts == 0
        && client_errors == 0
        && p.acked > 0
        && p99_ok;
    let pct = |q| stats::ms(percentile(&latency, q)).replace(' ', "");
    println!(
        "SUMMARY mode=load clients={} rate={}/s duration={}s acked={}/{} delivered={delivered}/{expected} lost={lost} dup={duplicates} ooo={out_of_order} p50={} p99={} p99.9={} max={} post_p99={} errors={} {}result={}",
        connected.len(),
        args.rate,
        args.duration,
        p.acked,
        p.sent,
        pct(50.0),
        pct(99.0),
        pct(99.9),
        stats::ms(latency.last().copied()).replace(' ', ""),
        stats::ms(percentile(&http_us, 99.0)).replace(' ', ""),
        client_errors as u64 + failed_posts,
        args.max_p99_ms.map_or(String::new(), |m| format!("target_p99<={m}ms ")),
        if pass { "PASS" } else { "FAIL" }
    );
    u8::from(!pass)
}

async fn post_one(
    http: &reqwest::Client,
    sh: &Shared,
    posts: &Mutex<PostStats>,
    n: u64,
    id: &str,
    size: usize,
) {
    let sent = sh.now_us();
    let mut content = format!("lt:{}:{sent}:{n}", sh.tag);
    if content.len() < size {
        content.push(' ');
        while content.len() < size {
            content.push('x');
        }
    }
    let body = format!(
        r#"{{"sender":"loadtest","content":"{content}","id":"{id}","room":"{}"}}"#,
        sh.room
    );
    posts.lock().unwrap().sent += 1;
    let result = http
        .post(&sh.post_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let outcome = match result {
        Ok(resp) if resp.status().is_success() => match resp.json::<Ack>().await {
            Ok(ack) => Ok(ack.seq),
            Err(e) => Err(format!("bad 2xx body: {e}")),
        },
        Ok(resp) => Err(format!("HTTP {}", resp.status())),
        Err(e) if e.is_timeout() => Err("timeout".into()),
        Err(e) if e.is_connect() => Err("connect failed".into()),
        Err(e) => Err(format!("request failed: {e}")),
    };
    let took = (sh.now_us() - sent).min(u32::MAX as u64) as u32;
    let mut p = posts.lock().unwrap();
    match outcome {
        Ok(seq) => {
            p.acked += 1;
            p.http_us.push(took);
            p.max_seq = p.max_seq.max(seq);
            p.min_seq = p.min_seq.min(seq);
        }
        Err(why) => *p.failures.entry(why).or_default() += 1,
    }
}

/// The running clients and the signal that stops them.
struct Fleet {
    stop_tx: watch::Sender<bool>,
    handles: Vec<JoinHandle<ClientStats>>,
}

impl Fleet {
    /// Tells every client to close and collects what each saw.
    async fn close(self) -> Vec<ClientStats> {
        let _ = self.stop_tx.send(true);
        join(self.handles).await
    }
}

async fn join(handles: Vec<JoinHandle<ClientStats>>) -> Vec<ClientStats> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            h.await
                .unwrap_or_else(|e| ClientStats::failed(format!("client task failed: {e}"))),
        );
    }
    out
}

/// Client errors grouped by message (connect failures and early closes).
fn error_summary(results: &[ClientStats]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in results.iter().filter_map(|c| c.error.as_ref()) {
        *m.entry(e.clone()).or_insert(0) += 1;
    }
    m
}

/// Warm-up sockets (idle mode only).
fn warmup(args: &Args) -> usize {
    if args.idle {
        args.warmup
    } else {
        0
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}
