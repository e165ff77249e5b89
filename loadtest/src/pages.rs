//! Page throughput: the server-rendered room page against the JSON API,
//! each for `--duration` s over `--concurrency` keep-alive connections.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Barrier;

use crate::{cli::PagesArgs, hist::Latency, net, stats::Rng, sys};

#[derive(Default)]
struct Worker {
    latency: Latency,
    ok: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

/// One endpoint's results.
struct Phase {
    name: &'static str,
    path: String,
    secs: f64,
    ok: u64,
    bytes: u64,
    latency: Latency,
    errors: BTreeMap<String, u64>,
    server_cpu: Option<f64>,
    tool_cpu: Option<f64>,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }
}

pub async fn pages_mode(a: &PagesArgs) -> u8 {
    let mut rng = Rng::seeded();
    let base = a.target.urls().remove(0);
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("pages-{:08x}", rng.next_u64() as u32));
    println!(
        "loadtest pages url={base} room={room} concurrency={} duration={}s per endpoint seed={}{}",
        a.concurrency,
        a.duration,
        a.seed,
        a.accept_encoding
            .as_ref()
            .map_or(String::new(), |e| format!(" accept-encoding={e:?}"))
    );
    let http = match net::http_client(16) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return 2;
        }
    };
    let (acks, errors) = net::post_many(&http, &base, &room, a.seed, 16, "page", &mut rng).await;
    if !errors.is_empty() {
        eprintln!("loadtest: seeding failed: {} x {}", errors.len(), errors[0]);
        net::rate_limit_notice();
        return 2;
    }
    println!("seed        {} messages in {room}", acks.len());
    let pids: Vec<String> = a.target.pid.iter().map(u32::to_string).collect();
    let mut phases = Vec::new();
    let mut endpoints = vec![("html", format!("/r/{room}"))];
    if a.whole {
        // A query skips the kept frame: the page as Leptos renders it.
        endpoints.push(("html-whole", format!("/r/{room}?whole")));
    }
    endpoints.push(("json", format!("/api/messages?room={room}&limit=50")));
    for (name, path) in endpoints {
        match phase(a, &base, name, path, &pids).await {
            Ok(p) => {
                print_phase(&p);
                phases.push(p);
            }
            Err(e) => {
                eprintln!("loadtest: {e}");
                return 2;
            }
        }
    }
    let errors: u64 = phases.iter().flat_map(|p| p.errors.values()).sum();
    let pass = errors == 0 && phases.iter().all(|p| p.ok > 0);
    let keys: Vec<String> = phases
        .iter()
        .map(|p| {
            format!(
                "{0}_rps={1:.1} {0}_p50={2} {0}_p99={3}",
                p.name,
                p.rps(),
                p.latency.key(50.0),
                p.latency.key(99.0)
            )
        })
        .collect();
    println!(
        "SUMMARY mode=pages concurrency={} duration={}s {} errors={errors} result={}",
        a.concurrency,
        a.duration,
        keys.join(" "),
        if pass { "PASS" } else { "FAIL" }
    );
    net::rate_limit_notice();
    u8::from(!pass)
}

fn print_phase(p: &Phase) {
    println!(
        "{:<11} GET {}: {} ok in {:.2} s = {:.1} requests/s; {:.1} KB per response",
        p.name,
        p.path,
        p.ok,
        p.secs,
        p.rps(),
        if p.ok > 0 {
            p.bytes as f64 / p.ok as f64 / 1000.0
        } else {
            0.0
        }
    );
    println!("{:<11} latency {}", "", p.latency.spread());
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
    println!(
        "{:<11} cpu server {}  loadtest {}  (of one core)",
        "",
        cpu(p.server_cpu),
        cpu(p.tool_cpu)
    );
    for (e, n) in &p.errors {
        println!("{:<11} error {n} x {e}", "");
    }
}

async fn phase(
    a: &PagesArgs,
    base: &str,
    name: &'static str,
    path: String,
    pids: &[String],
) -> Result<Phase, String> {
    let url = format!("{base}{path}");
    let n = a.concurrency;
    // All connections open and warm (one request each) before the clock starts.
    let barrier = Arc::new(Barrier::new(n + 1));
    let duration = Duration::from_secs_f64(a.duration);
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        // One client per connection: exactly `n` keep-alive connections.
        let http = net::http_client(1)?;
        let (url, barrier, mut start_rx) = (url.clone(), barrier.clone(), start_rx.clone());
        let accept = a.accept_encoding.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = Worker::default();
            // Like a browser, each connection keeps the session cookie its
            // first answer set (a first visit without one creates a session).
            let cookie = std::sync::Mutex::new(None::<String>);
            let request = || {
                let mut r = http.get(&url);
                if let Some(e) = &accept {
                    r = r.header(reqwest::header::ACCEPT_ENCODING, e);
                }
                if let Some(c) = cookie.lock().unwrap().as_deref() {
                    r = r.header(reqwest::header::COOKIE, c);
                }
                r
            };
            let warm = request().send().await;
            let warm_err = match warm {
                Ok(r) => {
                    if let Some(set) = r.headers().get(reqwest::header::SET_COOKIE) {
                        let pair = set.to_str().unwrap_or("").split(';').next().unwrap_or("");
                        *cookie.lock().unwrap() = Some(pair.to_owned());
                    }
                    let _ = r.bytes().await;
                    None
                }
                Err(e) => Some(net::request_error(&e)),
            };
            barrier.wait().await;
            if let Some(e) = warm_err {
                *w.errors.entry(format!("warm-up: {e}")).or_default() += 1;
            }
            let _ = start_rx.wait_for(Option::is_some).await;
            let end = start_rx.borrow().expect("set") + duration;
            while tokio::time::Instant::now() < end {
                let t0 = Instant::now();
                match request().send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(body) if status.is_success() => {
                                w.ok += 1;
                                w.bytes += body.len() as u64;
                                w.latency.record(t0.elapsed().as_micros() as u64);
                            }
                            Ok(_) => *w.errors.entry(net::status_text(status)).or_default() += 1,
                            Err(e) => *w.errors.entry(net::request_error(&e)).or_default() += 1,
                        }
                    }
                    Err(e) => *w.errors.entry(net::request_error(&e)).or_default() += 1,
                }
            }
            w
        }));
    }
    barrier.wait().await;
    let tck = sys::clk_tck();
    let server0: Option<u64> = if pids.is_empty() {
        None
    } else {
        pids.iter().map(|p| sys::cpu_ticks(p)).sum()
    };
    let tool0 = sys::cpu_ticks("self");
    let started = Instant::now();
    let _ = start_tx.send(Some(tokio::time::Instant::now()));
    let mut p = Phase {
        name,
        path,
        secs: 0.0,
        ok: 0,
        bytes: 0,
        latency: Latency::new(),
        errors: BTreeMap::new(),
        server_cpu: None,
        tool_cpu: None,
    };
    for t in tasks {
        let w = t.await.map_err(|e| format!("worker failed: {e}"))?;
        p.ok += w.ok;
        p.bytes += w.bytes;
        p.latency.merge(&w.latency);
        for (e, n) in w.errors {
            *p.errors.entry(e).or_default() += n;
        }
    }
    p.secs = started.elapsed().as_secs_f64();
    let server1: Option<u64> = if pids.is_empty() {
        None
    } else {
        pids.iter().map(|p| sys::cpu_ticks(p)).sum()
    };
    if let (Some(x), Some(y)) = (server0, server1) {
        p.server_cpu = Some((y - x) as f64 / tck / p.secs * 100.0);
    }
    if let (Some(x), Some(y)) = (tool0, sys::cpu_ticks("self")) {
        p.tool_cpu = Some((y - x) as f64 / tck / p.secs * 100.0);
    }
    Ok(p)
}
