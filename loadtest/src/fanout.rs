//! Load mode (WebSocket fan-out under posts, on one or several instances)
//! and idle mode (server memory per open socket), each with a sweep.

use std::{
    collections::BTreeMap,
    ops::Range,
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::{
    sync::{watch, Semaphore},
    task::JoinHandle,
};

use crate::{
    chart,
    cli::{Connect, IdleArgs, LoadArgs, PostTo},
    client::{self, Shared},
    hist::Latency,
    net,
    stats::{ClientStats, Rng},
    sys,
};

/// One step of a sweep, for the chart and the sweep table.
#[derive(Debug, Clone)]
pub struct Point {
    /// Clients asked for (load) / measured sockets open (idle).
    pub clients: usize,
    /// Sockets open on the server(s) when `rss_kib` was read (incl. warm-up).
    pub open: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_kib: Option<u64>,
    pub kib_per_conn: Option<f64>,
}

/// `--pid`s as /proc names.
fn pids(p: &[u32]) -> Vec<String> {
    p.iter().map(u32::to_string).collect()
}

/// Summed `/proc/<pid>/status` field over the server processes.
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

/// Checks the `--pid`s exist and warns when their open-file limit is low.
/// `Err(exit code)` when one does not exist.
fn check_pids(pids: &[String], sockets: usize) -> Result<(), u8> {
    for pid in pids {
        match sys::nofile(pid) {
            None => {
                eprintln!("loadtest: no process {pid} (or /proc/{pid} is not readable)");
                return Err(2);
            }
            Some((soft, _)) if soft < sockets as u64 + 100 => eprintln!(
                "loadtest: WARNING: server {pid} may open only {soft} files; {sockets} sockets need \
                 more (start it after `ulimit -n 65536`)"
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

fn new_shared(rng: &mut Rng, urls: &[String], room: &str, sockets: usize) -> Arc<Shared> {
    Arc::new(Shared {
        epoch: Instant::now(),
        ws_urls: urls.iter().map(|u| net::ws_url(u, room, None)).collect(),
        room: room.to_owned(),
        tag: format!("{:08x}", rng.next_u64() as u32),
        last: (0..sockets).map(|_| AtomicI64::new(i64::MIN)).collect(),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
    })
}

// ---------------------------------------------------------------- load mode

pub async fn load_mode(a: &LoadArgs) -> u8 {
    let steps = if a.sweep_clients.is_empty() {
        vec![a.clients]
    } else {
        a.sweep_clients.clone()
    };
    let mut worst = 0u8;
    let mut points = Vec::new();
    for (i, &clients) in steps.iter().enumerate() {
        if steps.len() > 1 {
            if i > 0 {
                tokio::time::sleep(Duration::from_secs_f64(a.sweep_pause)).await;
            }
            println!(
                "=== sweep step {}/{}: {clients} clients ===",
                i + 1,
                steps.len()
            );
        }
        let (code, point) = load_once(a, clients).await;
        worst = worst.max(code);
        points.extend(point);
        if code == 2 {
            break; // setup failed (no client connected): later steps would too
        }
    }
    if steps.len() > 1 {
        println!("=== sweep ===");
        println!("clients  open  delivery p50  delivery p99  server rss");
        for p in &points {
            println!(
                "{:>7} {:>5}  {:>12}  {:>12}  {}",
                p.clients,
                p.open,
                fmt_ms(p.p50_ms),
                fmt_ms(p.p99_ms),
                p.rss_kib.map_or("-".into(), |k| format!("{k} KiB"))
            );
        }
    }
    if let Some(path) = &a.svg {
        match chart::load_sweep(path, &points, a) {
            Ok(()) => println!("chart       {}", path.display()),
            Err(e) => {
                eprintln!("loadtest: chart: {e}");
                worst = worst.max(1);
            }
        }
    }
    net::rate_limit_notice();
    worst
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2} ms"))
}

/// One load test with `clients` sockets: (exit code, chart point).
async fn load_once(a: &LoadArgs, clients: usize) -> (u8, Option<Point>) {
    let mut rng = Rng::seeded();
    let urls = a.target.urls();
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}", rng.next_u64() as u32));
    let sh = new_shared(&mut rng, &urls, &room, clients);
    let pids = pids(&a.target.pid);
    if let Err(code) = check_pids(&pids, clients) {
        return (code, None);
    }
    println!(
        "loadtest load url={} room={room} clients={clients} rate={}/s duration={}s size={}B posters={}{}",
        urls.join(","),
        a.rate,
        a.duration,
        a.size,
        a.posters,
        if urls.len() > 1 {
            format!(
                " instances={} post-to={}",
                urls.len(),
                match a.post_to {
                    PostTo::First => "first",
                    PostTo::Alternate => "alternate",
                }
            )
        } else {
            String::new()
        }
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let rss_before = sum_kib(&pids, "VmRSS");
    let connect_started = Instant::now();
    let handles = connect_all(&a.connect, &sh, stop_rx, 0..clients).await;
    let ready = sh.ready.load(Ordering::Relaxed);
    println!(
        "connect     {ready}/{clients} ready in {:.2} s ({} failed)",
        connect_started.elapsed().as_secs_f64(),
        sh.failed.load(Ordering::Relaxed)
    );
    let fleet = Fleet { stop_tx, handles };
    if ready == 0 {
        eprintln!(
            "loadtest: no client connected; is the server at {} up?",
            urls.join(", ")
        );
        let results = fleet.close().await;
        if let Some(e) = results.iter().find_map(|c| c.error.as_ref()) {
            eprintln!("  first error: {e}");
        }
        return (2, None);
    }
    load(a, &urls, &sh, &mut rng, &pids, rss_before, fleet).await
}

#[derive(Default)]
struct PostStats {
    sent: u64,
    acked: u64,
    failures: BTreeMap<String, u64>,
    http: Latency,
    max_seq: i64,
    min_seq: i64,
}

async fn load(
    a: &LoadArgs,
    urls: &[String],
    sh: &Arc<Shared>,
    rng: &mut Rng,
    pids: &[String],
    rss_before: Option<u64>,
    fleet: Fleet,
) -> (u8, Option<Point>) {
    let http = match net::http_client(a.posters) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return (2, None);
        }
    };
    let tck = sys::clk_tck();
    let server_cpu0 = sum_ticks(pids);
    let tool_cpu0 = sys::cpu_ticks("self");
    let posts = Arc::new(Mutex::new(PostStats {
        min_seq: i64::MAX,
        ..PostStats::default()
    }));
    let in_flight = Arc::new(Semaphore::new(a.posters));
    let total = (a.rate * a.duration).round().max(1.0) as u64;
    let mut late_dispatches = 0u64;
    let started = tokio::time::Instant::now();
    let mut last_report = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / a.rate);
        tokio::time::sleep_until(due).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        if due.elapsed() > Duration::from_millis(10) {
            late_dispatches += 1;
        }
        let base = match a.post_to {
            PostTo::First => urls[0].clone(),
            PostTo::Alternate => urls[n as usize % urls.len()].clone(),
        };
        let (http2, sh2, posts2) = (http.clone(), sh.clone(), posts.clone());
        let id = rng.uuid_v4();
        let size = a.size;
        tokio::spawn(async move {
            post_one(&http2, &base, &sh2, &posts2, n, &id, size).await;
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
    let dispatch_secs = started.elapsed().as_secs_f64() + 1.0 / a.rate;
    // Every post answered (or timed out).
    let _all = in_flight
        .acquire_many(a.posters as u32)
        .await
        .expect("never closed");
    let post_secs = started.elapsed().as_secs_f64();
    let server_cpu = match (server_cpu0, sum_ticks(pids)) {
        (Some(x), Some(y)) => Some((y - x) as f64 / tck / post_secs * 100.0),
        _ => None,
    };
    let tool_cpu = match (tool_cpu0, sys::cpu_ticks("self")) {
        (Some(x), Some(y)) => Some((y - x) as f64 / tck / post_secs * 100.0),
        _ => None,
    };

    // The authoritative head: what a fresh client is told is stored (asked
    // of every instance; they share the database).
    let mut probe_head: Option<i64> = None;
    let mut probe_err = None;
    for url in &sh.ws_urls {
        let probe = tokio::time::timeout(
            client::CONNECT_TIMEOUT,
            client::connect_ready(url, &sh.room),
        )
        .await;
        match probe {
            Ok(Ok((mut ws, head))) => {
                let _ = ws.close(None).await;
                probe_head = Some(probe_head.map_or(head, |h| h.max(head)));
            }
            Ok(Err(e)) => probe_err = Some(e),
            Err(_) => probe_err = Some("timed out".to_string()),
        }
    }
    let (acked_max, acked_min) = {
        let p = posts.lock().unwrap();
        (p.max_seq, p.min_seq)
    };
    let head = probe_head.unwrap_or(acked_max).max(acked_max);

    // Stragglers: until every live client has seen `head`, at most --drain s.
    let drain_started = Instant::now();
    let drain = Duration::from_secs_f64(a.drain);
    while drain_started.elapsed() < drain
        && sh.last.iter().any(|l| l.load(Ordering::Relaxed) < head)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let rss_after = sum_kib(pids, "VmRSS");
    let open_at_end = sh.ready.load(Ordering::Relaxed) - sh.dropped.load(Ordering::Relaxed);
    let results = fleet.close().await;

    // --- report ---
    let p = posts.lock().unwrap();
    let connected: Vec<&ClientStats> = results.iter().filter(|c| c.connected).collect();
    let d = Deliveries::of(&connected, head);
    let base = connected.iter().map(|c| c.base).min().unwrap_or(0);
    let expected_acked = p.acked * connected.len() as u64;
    let failed_posts = p.sent - p.acked;
    let stored_unacked = (head - base).max(0) as u64 - p.acked.min((head - base).max(0) as u64);
    let errors = error_summary(&results);
    let client_errors: usize = errors.values().sum();
    let mut connect_us = Latency::new();
    for c in &connected {
        connect_us.record(u64::from(c.connect_us));
    }

    println!("--- results ---");
    println!(
        "connect     {} ok, {} failed; connect+ready {}",
        connected.len(),
        results.len() - connected.len(),
        connect_us.spread()
    );
    println!(
        "posts       sent {}  acked {}  failed {failed_posts}  over {dispatch_secs:.2} s = {:.1}/s (target {}/s, {late_dispatches} dispatched >10 ms late)",
        p.sent,
        p.acked,
        p.sent as f64 / dispatch_secs,
        a.rate
    );
    for (why, n) in &p.failures {
        println!("post error  {n} x {why}");
    }
    println!("post http   {}", p.http.spread());
    println!(
        "stored      head {base} -> {head} ({} new; acked seqs {}..{}; {stored_unacked} stored but not acked){}",
        head - base,
        if acked_min == i64::MAX { 0 } else { acked_min },
        acked_max,
        probe_err.map_or(String::new(), |e| format!("; head probe failed: {e}"))
    );
    println!(
        "deliveries  expected {} (acked x clients = {expected_acked})  delivered {}  lost {} ({} clients)  duplicates {}  out-of-order {}",
        d.expected, d.delivered, d.lost, d.clients_with_loss, d.duplicates, d.out_of_order
    );
    let foreign: u64 = connected.iter().map(|c| c.foreign).sum();
    let stale: u64 = connected.iter().map(|c| c.stale).sum();
    let control: u64 = connected.iter().map(|c| c.control).sum();
    let other_room: u64 = connected.iter().map(|c| c.other_room).sum();
    let beyond: u64 = connected
        .iter()
        .map(|c| (c.max_seq - head).max(0) as u64)
        .sum();
    if foreign + stale + beyond + control + other_room > 0 {
        println!(
            "other       {control} non-message frames, {foreign} messages from other posters, \
             {other_room} of other rooms, {stale} backlog, {beyond} seqs beyond head"
        );
    }
    println!("latency     {} (n={})", d.latency.spread(), d.latency.len());
    if urls.len() > 1 {
        for (i, url) in urls.iter().enumerate() {
            let on: Vec<&ClientStats> = connected
                .iter()
                .copied()
                .filter(|c| c.instance == i)
                .collect();
            let di = Deliveries::of(&on, head);
            println!(
                "instance {}  {url}  clients {}  delivered {}/{}  lost {} ({} clients)  dup {}  ooo {}  latency p50 {}  p99 {}  max {}",
                i + 1,
                on.len(),
                di.delivered,
                di.expected,
                di.lost,
                di.clients_with_loss,
                di.duplicates,
                di.out_of_order,
                crate::hist::ms(di.latency.percentile(50.0)),
                crate::hist::ms(di.latency.percentile(99.0)),
                crate::hist::ms(di.latency.max()),
            );
        }
    }
    println!(
        "drain       {drain_secs:.2} s after the last answer until all clients had head {head}"
    );
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
    println!(
        "cpu         server {}  loadtest {}  (of one core, over the posting phase{})",
        cpu(server_cpu),
        cpu(tool_cpu),
        if pids.len() > 1 {
            ", servers summed"
        } else {
            ""
        }
    );
    if let (Some(b), Some(x)) = (rss_before, rss_after) {
        println!("server rss  {b} KiB before connecting -> {x} KiB at the end");
    }
    for (e, n) in &errors {
        println!("error       {n} x {e}");
    }

    let p99 = d.latency.percentile(99.0);
    let p99_ok = match (a.max_p99_ms, p99) {
        (Some(max), Some(v)) => v as f64 / 1000.0 <= max,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let pass = d.lost == 0
        && d.duplicates == 0
        && d.out_of_order == 0
        && failed_posts == 0
        && client_errors == 0
        && p.acked > 0
        && p99_ok;
    println!(
        "SUMMARY mode=load clients={} rate={}/s duration={}s acked={}/{} delivered={}/{} lost={} dup={} ooo={} p50={} p99={} p99.9={} max={} post_p99={} errors={} {}{}result={}",
        connected.len(),
        a.rate,
        a.duration,
        p.acked,
        p.sent,
        d.delivered,
        d.expected,
        d.lost,
        d.duplicates,
        d.out_of_order,
        d.latency.key(50.0),
        d.latency.key(99.0),
        d.latency.key(99.9),
        d.latency.key_max(),
        p.http.key(99.0),
        client_errors as u64 + failed_posts,
        if urls.len() > 1 {
            format!("instances={} ", urls.len())
        } else {
            String::new()
        },
        a.max_p99_ms
            .map_or(String::new(), |m| format!("target_p99<={m}ms ")),
        if pass { "PASS" } else { "FAIL" }
    );
    let point = Point {
        clients: connected.len(),
        open: open_at_end,
        p50_ms: d.latency.ms(50.0),
        p99_ms: d.latency.ms(99.0),
        rss_kib: rss_after,
        kib_per_conn: None,
    };
    (u8::from(!pass), Some(point))
}

/// Delivery totals over a set of clients, against the final `head`.
struct Deliveries {
    expected: u64,
    delivered: u64,
    lost: u64,
    clients_with_loss: usize,
    duplicates: u64,
    out_of_order: u64,
    latency: Latency,
}

impl Deliveries {
    fn of(clients: &[&ClientStats], head: i64) -> Self {
        let mut latency = Latency::new();
        for c in clients {
            latency.record_all(&c.latency_us);
        }
        Self {
            expected: clients.iter().map(|c| (head - c.base).max(0) as u64).sum(),
            delivered: clients.iter().map(|c| c.distinct).sum(),
            lost: clients.iter().map(|c| c.missing(head)).sum(),
            clients_with_loss: clients.iter().filter(|c| c.missing(head) > 0).count(),
            duplicates: clients.iter().map(|c| c.duplicates).sum(),
            out_of_order: clients.iter().map(|c| c.out_of_order).sum(),
            latency,
        }
    }
}

async fn post_one(
    http: &reqwest::Client,
    base: &str,
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
    posts.lock().unwrap().sent += 1;
    let outcome = net::post_message(http, base, &sh.room, &content, id).await;
    let took = sh.now_us() - sent;
    let mut p = posts.lock().unwrap();
    match outcome {
        Ok(ack) => {
            p.acked += 1;
            p.http.record(took);
            p.max_seq = p.max_seq.max(ack.seq);
            p.min_seq = p.min_seq.min(ack.seq);
        }
        Err(why) => *p.failures.entry(why).or_default() += 1,
    }
}

// ---------------------------------------------------------------- idle mode

pub async fn idle_mode(a: &IdleArgs) -> u8 {
    let mut rng = Rng::seeded();
    let urls = a.target.urls();
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}", rng.next_u64() as u32));
    let sweep = !a.sweep_clients.is_empty();
    let steps = if sweep {
        a.sweep_clients.clone()
    } else {
        vec![a.clients]
    };
    let total = *steps.last().expect("at least one step");
    let warm = a.warmup;
    let sh = new_shared(&mut rng, &urls, &room, warm + total);
    let pids = pids(&a.target.pid);
    if let Err(code) = check_pids(&pids, warm + total) {
        return code;
    }
    println!(
        "loadtest idle url={} room={room} clients={} warmup={warm} settle={}s hold={}s",
        urls[0],
        if sweep {
            steps
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        } else {
            total.to_string()
        },
        a.settle,
        a.hold
    );
    let rss = |key| sum_kib(&pids, key);
    let (stop_tx, stop_rx) = watch::channel(false);
    let rss_start = rss("VmRSS");
    let mut handles = Vec::with_capacity(warm + total);
    if warm > 0 {
        handles = connect_all(&a.connect, &sh, stop_rx.clone(), 0..warm).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "warmup      {}/{warm} ready and kept open (server rss {} KiB before them)",
            sh.ready.load(Ordering::Relaxed),
            opt(rss_start)
        );
    }
    let warm_ready = sh.ready.load(Ordering::Relaxed);
    let warm_failed = sh.failed.load(Ordering::Relaxed);
    let rss_before = rss("VmRSS");
    let anon_before = rss("RssAnon");

    let mut points = Vec::new();
    let mut opened = 0;
    let mut ready = 0;
    for &step in &steps {
        if sweep {
            println!("=== step: {step} sockets ===");
        }
        let connect_started = Instant::now();
        let before = opened;
        handles.extend(
            connect_all(&a.connect, &sh, stop_rx.clone(), warm + opened..warm + step).await,
        );
        opened = step;
        ready = sh.ready.load(Ordering::Relaxed) - warm_ready;
        let failed = sh.failed.load(Ordering::Relaxed) - warm_failed;
        if sweep {
            println!(
                "connect     {ready}/{step} ready ({} new in {:.2} s; {failed} failed)",
                step - before,
                connect_started.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "connect     {ready}/{step} ready in {:.2} s ({failed} failed)",
                connect_started.elapsed().as_secs_f64()
            );
        }
        let rss_connected = rss("VmRSS");
        tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
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
                    a.settle
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
            _ if !pids.is_empty() => println!("server rss  could not be read"),
            _ => println!("server rss  not measured (pass --pid <server pid>)"),
        }
        if let Some(own) = sys::status_kib("self", "VmRSS") {
            println!(
                "tool rss    {own} KiB (this process, {} sockets)",
                sh.ready.load(Ordering::Relaxed)
            );
        }
        points.push(Point {
            clients: step,
            open: still_open + warm_ready,
            p50_ms: None,
            p99_ms: None,
            rss_kib: rss_settled,
            kib_per_conn: per_conn,
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let results = fleet_close(stop_tx, handles).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(after) = rss("VmRSS") {
        println!("server rss  {after} KiB one second after closing");
    }
    let errors = error_summary(&results);
    for (e, n) in &errors {
        println!("error       {n} x {e}");
    }
    let error_count: usize = errors.values().sum();
    if sweep {
        println!("=== sweep ===");
        println!("sockets  open  server rss  KiB/socket");
    }
    let mut pass_all = true;
    for p in &points {
        if sweep {
            println!(
                "{:>7} {:>5}  {:>10}  {}",
                p.clients,
                p.open,
                p.rss_kib.map_or("-".into(), |k| format!("{k} KiB")),
                p.kib_per_conn.map_or("-".into(), |k| format!("{k:.2}"))
            );
        }
    }
    for p in &points {
        let target_ok = match (a.max_kib_per_conn, p.kib_per_conn) {
            (Some(max), Some(kib)) => kib <= max,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let pass = error_count == 0 && target_ok;
        pass_all &= pass;
        println!(
            "SUMMARY mode=idle clients={} ready={} errors={error_count} rss_before_kib={} rss_after_kib={} kib_per_conn={}{} result={}",
            p.clients,
            if sweep { p.open - warm_ready } else { ready },
            opt(rss_before),
            opt(p.rss_kib),
            p.kib_per_conn.map_or("-".into(), |k| format!("{k:.2}")),
            a.max_kib_per_conn
                .map_or(String::new(), |m| format!(" target_kib<={m}")),
            if pass { "PASS" } else { "FAIL" }
        );
    }
    if let Some(path) = &a.svg {
        match chart::idle_sweep(path, &points, warm_ready, rss_before) {
            Ok(()) => println!("chart       {}", path.display()),
            Err(e) => {
                eprintln!("loadtest: chart: {e}");
                pass_all = false;
            }
        }
    }
    net::rate_limit_notice();
    u8::from(!pass_all)
}

// ------------------------------------------------------------------ shared

/// Starts every client at `--connect-rate` with at most
/// `--connect-concurrency` handshakes in flight; returns when all are ready
/// or have failed.
async fn connect_all(
    c: &Connect,
    sh: &Arc<Shared>,
    stop: watch::Receiver<bool>,
    indices: Range<usize>,
) -> Vec<JoinHandle<ClientStats>> {
    let slots = Arc::new(Semaphore::new(c.connect_concurrency));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(indices.len());
    let mut last_report = Instant::now();
    let end = indices.end;
    for (k, idx) in indices.enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / c.connect_rate)).await;
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

/// The running clients and the signal that stops them.
struct Fleet {
    stop_tx: watch::Sender<bool>,
    handles: Vec<JoinHandle<ClientStats>>,
}

impl Fleet {
    /// Tells every client to close and collects what each saw.
    async fn close(self) -> Vec<ClientStats> {
        fleet_close(self.stop_tx, self.handles).await
    }
}

async fn fleet_close(
    stop_tx: watch::Sender<bool>,
    handles: Vec<JoinHandle<ClientStats>>,
) -> Vec<ClientStats> {
    let _ = stop_tx.send(true);
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

fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}
