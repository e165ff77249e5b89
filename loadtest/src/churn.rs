//! Subscribe churn: does the server's memory come back after many
//! subscribe/unsubscribe frames on fresh room names?
//!
//! A few sockets each send `subscribe` then `unsubscribe` for a new room
//! name, over and over, as fast as the server answers (at most `--window`
//! subscribes per socket waiting for their `ready`), reading every answer
//! (`ready` and `presence` per subscribe) so the server never waits on a
//! full socket. The server's VmRSS is read after a warm-up, right after
//! the run, and again after `--settle` s; the growth from the first to the
//! last reading is the result.

use std::{
    collections::BTreeMap,
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    cli::ChurnArgs,
    client::{self, Ws},
    net,
    stats::Rng,
    sys,
};

// ------------------------------------------------------------ pure parts

/// The `n`-th fresh room: `<prefix>-<n>`.
fn room_name(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n}")
}

fn subscribe_frame(room: &str) -> String {
    serde_json::json!({"type": "subscribe", "room": room}).to_string()
}

fn unsubscribe_frame(room: &str) -> String {
    serde_json::json!({"type": "unsubscribe", "room": room}).to_string()
}

/// `total` items split into `parts` contiguous ranges starting at `start`,
/// sizes differing by at most one.
fn split(start: usize, total: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    let (each, extra) = (total / parts, total % parts);
    let mut at = start;
    (0..parts)
        .map(|i| {
            let len = each + usize::from(i < extra);
            let r = at..at + len;
            at += len;
            r
        })
        .collect()
}

/// MiB between two KiB readings (negative when memory was returned).
fn growth_mib(before_kib: u64, after_kib: u64) -> f64 {
    (after_kib as f64 - before_kib as f64) / 1024.0
}

/// A server frame, as far as churn cares.
#[derive(Debug, PartialEq)]
enum Answer {
    /// `ready` for a room (answers a subscribe).
    Ready(String),
    Presence,
    /// Refused for rate: the server's frame limits are on.
    RateLimited {
        ms: u64,
        error: String,
    },
    /// Refused otherwise (e.g. too many rooms on the instance): answers a subscribe.
    Refused(String),
    Other,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

fn classify(text: &str) -> Answer {
    let Ok(f) = serde_json::from_str::<Raw>(text) else {
        return Answer::Other;
    };
    match f.ty.as_str() {
        "ready" => Answer::Ready(f.room.unwrap_or_default()),
        "presence" => Answer::Presence,
        "error" => {
            let error = f.error.unwrap_or_default();
            match f.retry_after_ms {
                Some(ms) => Answer::RateLimited { ms, error },
                None => Answer::Refused(error),
            }
        }
        _ => Answer::Other,
    }
}

/// What one socket saw over one batch.
#[derive(Debug, Default, Clone)]
struct Counts {
    pairs: u64,
    readies: u64,
    presence: u64,
    other: u64,
    refused: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.pairs += o.pairs;
        self.readies += o.readies;
        self.presence += o.presence;
        self.other += o.other;
        for (k, n) in &o.refused {
            *self.refused.entry(k.clone()).or_default() += n;
        }
    }
}

/// Why a batch stopped early.
#[derive(Debug)]
enum Stop {
    RateLimited(u64, String),
    Failed(String),
}

// ------------------------------------------------------------ the run

/// Sends the pairs for `rooms` on one socket and reads every answer.
async fn churn(
    ws: &mut Ws,
    home: &str,
    prefix: &str,
    rooms: Range<usize>,
    window: usize,
    timeout: Duration,
    done: &AtomicU64,
) -> Result<Counts, (Counts, Stop)> {
    let mut c = Counts::default();
    let total = rooms.len() as u64;
    let mut next = rooms.start;
    let mut waiting = 0usize;
    let mut answered = 0u64;
    while answered < total {
        let mut wrote = false;
        while waiting < window && next < rooms.end {
            let room = room_name(prefix, next);
            let sent = async {
                ws.feed(Message::Text(subscribe_frame(&room).into()))
                    .await?;
                ws.feed(Message::Text(unsubscribe_frame(&room).into()))
                    .await
            };
            if let Err(e) = sent.await {
                return Err((c, Stop::Failed(format!("send: {e}"))));
            }
            c.pairs += 1;
            next += 1;
            waiting += 1;
            wrote = true;
        }
        if wrote {
            if let Err(e) = ws.flush().await {
                return Err((c, Stop::Failed(format!("send: {e}"))));
            }
        }
        let msg = match tokio::time::timeout(timeout, ws.next()).await {
            Ok(m) => m,
            Err(_) => {
                let why = format!(
                    "no answer for {} s ({answered} of {total} subscribes answered)",
                    timeout.as_secs_f64()
                );
                return Err((c, Stop::Failed(why)));
            }
        };
        match client::text_of(msg) {
            Ok(Some(text)) => match classify(text.as_str()) {
                Answer::Ready(room) if room != home => {
                    c.readies += 1;
                    answered += 1;
                    waiting = waiting.saturating_sub(1);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Answer::Ready(_) | Answer::Other => c.other += 1,
                Answer::Presence => c.presence += 1,
                Answer::RateLimited { ms, error } => {
                    return Err((c, Stop::RateLimited(ms, error)));
                }
                Answer::Refused(error) => {
                    *c.refused.entry(error).or_default() += 1;
                    answered += 1;
                    waiting = waiting.saturating_sub(1);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            },
            Ok(None) => {}
            Err(why) => return Err((c, Stop::Failed(why))),
        }
    }
    Ok(c)
}

struct Socket {
    ws: Ws,
}

/// Runs `total` pairs (room numbers from `start`) over every socket at once.
async fn batch(
    sockets: Vec<Socket>,
    a: &ChurnArgs,
    home: &str,
    prefix: &str,
    start: usize,
    total: usize,
    done: Arc<AtomicU64>,
) -> (Vec<Socket>, Counts, Vec<Stop>) {
    let ranges = split(start, total, sockets.len());
    let timeout = Duration::from_secs_f64(a.timeout);
    let tasks: Vec<_> = sockets
        .into_iter()
        .zip(ranges)
        .map(|(mut s, range)| {
            let (home, prefix, done) = (home.to_owned(), prefix.to_owned(), done.clone());
            let window = a.window;
            tokio::spawn(async move {
                let r = churn(&mut s.ws, &home, &prefix, range, window, timeout, &done).await;
                (s, r)
            })
        })
        .collect();
    let mut back = Vec::new();
    let mut counts = Counts::default();
    let mut stops = Vec::new();
    for t in tasks {
        match t.await {
            Ok((s, r)) => {
                back.push(s);
                match r {
                    Ok(c) => counts.add(&c),
                    Err((c, stop)) => {
                        counts.add(&c);
                        stops.push(stop);
                    }
                }
            }
            Err(e) => stops.push(Stop::Failed(format!("task failed: {e}"))),
        }
    }
    (back, counts, stops)
}

fn sum_kib(pids: &[String], key: &str) -> Option<u64> {
    pids.iter().map(|p| sys::status_kib(p, key)).sum()
}

fn sum_ticks(pids: &[String]) -> Option<u64> {
    pids.iter().map(|p| sys::cpu_ticks(p)).sum()
}

/// Prints why batches stopped; the exit code they call for, if any.
fn report_stops(stops: &[Stop]) -> Option<u8> {
    let mut code = None;
    for s in stops {
        match s {
            Stop::RateLimited(ms, error) => {
                println!(
                    "refused     the server refused a frame for rate ({error:?}, retry_after_ms \
                     {ms}): its frame limits are on. Start it with RATE_WS_FRAMES=0 \
                     RATE_WS_CONTROL_FRAMES=0 for this mode"
                );
                code = Some(2);
            }
            Stop::Failed(why) => {
                println!("socket      stopped: {why}");
                code = code.or(Some(1));
            }
        }
    }
    code
}

pub async fn churn_mode(a: &ChurnArgs) -> u8 {
    let mut rng = Rng::seeded();
    let base = a.target.urls().remove(0);
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| format!("churn-{:08x}", rng.next_u64() as u32));
    let home = format!("{prefix}-home");
    let pids: Vec<String> = a.target.pid.iter().map(u32::to_string).collect();
    println!(
        "loadtest churn url={base} sockets={} pairs={} ({} frames) warmup={} pairs window={} \
         rooms {}-<n>",
        a.sockets,
        a.frames,
        2 * a.frames,
        a.warmup,
        a.window,
        prefix
    );
    let Some(rss_start) = sum_kib(&pids, "VmRSS") else {
        eprintln!("loadtest: cannot read VmRSS of --pid {}", pids.join(","));
        return 2;
    };

    let mut sockets = Vec::with_capacity(a.sockets);
    let ws_url = net::ws_url(&base, &home, None);
    for i in 0..a.sockets {
        match tokio::time::timeout(
            client::CONNECT_TIMEOUT,
            client::connect_ready(&ws_url, &home),
        )
        .await
        {
            Ok(Ok((ws, _))) => sockets.push(Socket { ws }),
            Ok(Err(e)) => {
                eprintln!("loadtest: socket {i} could not connect: {e}");
                return 2;
            }
            Err(_) => {
                eprintln!("loadtest: socket {i} timed out connecting");
                return 2;
            }
        }
    }

    // Warm-up: one-time costs (pool connections, statement caches, buffers).
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let (back, warm, stops) = batch(sockets, a, &home, &prefix, 0, a.warmup, done.clone()).await;
    sockets = back;
    if let Some(code) = report_stops(&stops) {
        return code;
    }
    println!(
        "warmup      {} pairs in {:.2} s ({} ready, {} presence); server VmRSS {} KiB before",
        warm.pairs,
        t0.elapsed().as_secs_f64(),
        warm.readies,
        warm.presence,
        rss_start
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_base = sum_kib(&pids, "VmRSS").unwrap_or(0);
    let anon_base = sum_kib(&pids, "RssAnon");

    // The measured run, with a memory reading every second.
    done.store(0, Ordering::Relaxed);
    let cpu0 = sum_ticks(&pids);
    let started = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(f64, u64, u64)>::new()));
    let sampler = {
        let (pids, done, samples) = (pids.clone(), done.clone(), samples.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(kib) = sum_kib(&pids, "VmRSS") {
                    samples.lock().unwrap().push((
                        started.elapsed().as_secs_f64(),
                        done.load(Ordering::Relaxed),
                        kib,
                    ));
                }
            }
        })
    };
    let (back, counts, stops) =
        batch(sockets, a, &home, &prefix, a.warmup, a.frames, done.clone()).await;
    let secs = started.elapsed().as_secs_f64();
    sampler.abort();
    let cpu = match (cpu0, sum_ticks(&pids)) {
        (Some(x), Some(y)) => Some((y - x) as f64 / sys::clk_tck() / secs * 100.0),
        _ => None,
    };
    let rss_after = sum_kib(&pids, "VmRSS").unwrap_or(0);
    let stop_code = report_stops(&stops);
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_settled = sum_kib(&pids, "VmRSS").unwrap_or(0);
    let anon_settled = sum_kib(&pids, "RssAnon");
    for mut s in back {
        let _ = tokio::time::timeout(Duration::from_secs(2), s.ws.close(None)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = sum_kib(&pids, "VmRSS").unwrap_or(0);

    let answered = counts.readies + counts.refused.values().sum::<u64>();
    let growth = growth_mib(rss_base, rss_settled);
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let peak = samples
        .iter()
        .map(|s| s.2)
        .max()
        .unwrap_or(rss_after)
        .max(rss_after);

    println!("--- results ---");
    println!(
        "frames      {} pairs = {} frames in {secs:.2} s = {:.0} frames/s ({:.0} pairs/s); \
         {} ready, {} presence, {} other answers",
        counts.pairs,
        2 * counts.pairs,
        2.0 * counts.pairs as f64 / secs,
        counts.pairs as f64 / secs,
        counts.readies,
        counts.presence,
        counts.other
    );
    for (e, n) in &counts.refused {
        println!("refused     {n} x {e:?}");
    }
    if let Some(c) = cpu {
        println!("cpu         server {c:.0}% of one core over the run");
    }
    // About ten evenly spaced readings.
    let step = (samples.len() / 10).max(1);
    let line: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(t, n, kib)| format!("{t:.0}s/{n}:{kib}"))
        .collect();
    if !line.is_empty() {
        println!("rss during  {} (s/pairs done:KiB)", line.join(" "));
    }
    println!(
        "server rss  start {rss_start} KiB; after warm-up {rss_base} KiB; peak {peak} KiB; \
         right after {rss_after} KiB; after {:.0} s settle {rss_settled} KiB; sockets closed {rss_closed} KiB",
        a.settle
    );
    if let (Some(x), Some(y)) = (anon_base, anon_settled) {
        println!(
            "server anon after warm-up {x} KiB, after settle {y} KiB ({:+.2} MiB)",
            growth_mib(x, y)
        );
    }
    println!(
        "growth      {growth:+.2} MiB from after warm-up to after settle (limit {} MiB); \
         {:+.2} MiB right after the run",
        a.max_growth_mib,
        growth_mib(rss_base, rss_after)
    );
    let complete = stops.is_empty() && answered == a.frames as u64;
    let pass = complete && growth <= a.max_growth_mib;
    if !complete {
        println!("FAIL        {answered} of {} subscribes answered", a.frames);
    }
    if growth > a.max_growth_mib {
        println!(
            "FAIL        VmRSS grew {growth:.2} MiB, more than {} MiB",
            a.max_growth_mib
        );
    }
    println!(
        "SUMMARY mode=churn sockets={} pairs={} frames={} secs={secs:.2} frames_per_s={:.0} \
         rss_base_kib={rss_base} rss_peak_kib={peak} rss_after_kib={rss_after} \
         rss_settled_kib={rss_settled} growth_mib={growth:.2} refused={} result={}",
        a.sockets,
        counts.pairs,
        2 * counts.pairs,
        2.0 * counts.pairs as f64 / secs,
        counts.refused.values().sum::<u64>(),
        if pass { "PASS" } else { "FAIL" }
    );
    match stop_code {
        Some(2) => 2,
        _ => u8::from(!pass),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_valid_and_fresh() {
        let prefix = "churn-0123abcd";
        let names: Vec<String> = (0..200_000)
            .step_by(997)
            .map(|n| room_name(prefix, n))
            .collect();
        for n in &names {
            assert!(crate::cli::parse_room(n).is_ok(), "{n}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(crate::cli::parse_room(&room_name(prefix, 101_000)).is_ok());
    }

    #[test]
    fn frames_are_the_protocol() {
        let s: serde_json::Value = serde_json::from_str(&subscribe_frame("churn-1")).unwrap();
        assert_eq!(
            s,
            serde_json::json!({"type": "subscribe", "room": "churn-1"})
        );
        let u: serde_json::Value = serde_json::from_str(&unsubscribe_frame("churn-1")).unwrap();
        assert_eq!(
            u,
            serde_json::json!({"type": "unsubscribe", "room": "churn-1"})
        );
    }

    #[test]
    fn split_is_even_and_contiguous() {
        assert_eq!(split(10, 10, 4), vec![10..13, 13..16, 16..18, 18..20]);
        assert_eq!(split(0, 3, 4), vec![0..1, 1..2, 2..3, 3..3]);
        assert_eq!(split(0, 5, 0), vec![0..5]);
        let r = split(1000, 100_000, 7);
        assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), 100_000);
        assert_eq!(r.last().unwrap().end, 101_000);
    }

    #[test]
    fn growth_in_mib() {
        assert_eq!(growth_mib(10_240, 20_480), 10.0);
        assert_eq!(growth_mib(20_480, 10_240), -10.0);
        assert!((growth_mib(1000, 1512) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(r#"{"type":"ready","room":"churn-1","head":0}"#),
            Answer::Ready("churn-1".into())
        );
        assert_eq!(
            classify(r#"{"type":"presence","room":"churn-1","names":[],"count":1}"#),
            Answer::Presence
        );
        assert_eq!(
            classify(r#"{"type":"error","error":"slow down","retry_after_ms":450}"#),
            Answer::RateLimited {
                ms: 450,
                error: "slow down".into()
            }
        );
        assert_eq!(
            classify(r#"{"type":"error","error":"too many rooms"}"#),
            Answer::Refused("too many rooms".into())
        );
        assert_eq!(classify(r#"{"type":"message","seq":1}"#), Answer::Other);
        assert_eq!(classify("garbage"), Answer::Other);
    }
}
