//! Persisted-write throughput: posts only, open loop, spread over rooms;
//! `--verify` reads the rooms back and checks what was stored.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde::Deserialize;
use tokio::{sync::Semaphore, task::JoinHandle};

use crate::{
    cli::{PostTo, WriteArgs},
    client::{self, Frame},
    hist::Latency,
    net,
    stats::{ClientStats, Rng},
    sys,
};

#[derive(Default)]
struct Posts {
    sent: u64,
    acked: u64,
    failures: BTreeMap<String, u64>,
    latency: Latency,
    /// Per room: acknowledged id -> seq.
    acked_ids: Vec<HashMap<String, i64>>,
}

pub async fn write_mode(a: &WriteArgs) -> u8 {
    let mut rng = Rng::seeded();
    let urls = a.target.urls();
    // With --watch: the last server (with two, the one not posted to).
    let watched = &urls[urls.len() - 1];
    let prefix = a
        .room
        .clone()
        .unwrap_or_else(|| format!("write-{:08x}", rng.next_u64() as u32));
    let rooms: Vec<String> = if a.rooms == 1 {
        vec![prefix.clone()]
    } else {
        (0..a.rooms).map(|i| format!("{prefix}-{i}")).collect()
    };
    let http = match net::http_client(a.posters) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return 2;
        }
    };
    println!(
        "loadtest write url={} rooms={} ({}{}) rate={}/s duration={}s size={}B posters={}{}",
        urls.join(","),
        rooms.len(),
        rooms[0],
        if rooms.len() > 1 { " …" } else { "" },
        a.rate,
        a.duration,
        a.size,
        a.posters,
        if a.verify { " verify" } else { "" }
    );
    // Fail fast when nothing answers.
    if let Err(e) = http.get(format!("{}/health", urls[0])).send().await {
        eprintln!(
            "loadtest: {} does not answer: {}",
            urls[0],
            net::request_error(&e)
        );
        return 2;
    }
    let watchers = if a.watch {
        match watch_rooms(watched, &rooms).await {
            Ok(w) => w,
            Err(e) => {
                eprintln!("loadtest: watching {watched}: {e}");
                return 2;
            }
        }
    } else {
        Vec::new()
    };

    let pids: Vec<String> = a.target.pid.iter().map(u32::to_string).collect();
    let cpu0: Option<u64> = pids.iter().map(|p| sys::cpu_ticks(p)).sum();
    let posts = Arc::new(Mutex::new(Posts {
        acked_ids: vec![HashMap::new(); rooms.len()],
        ..Posts::default()
    }));
    let in_flight = Arc::new(Semaphore::new(a.posters));
    let total = (a.rate * a.duration).round().max(1.0) as u64;
    let padding = "x".repeat(a.size);
    let mut late = 0u64;
    let started = tokio::time::Instant::now();
    let epoch = Instant::now();
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
            late += 1;
        }
        let r = n as usize % rooms.len();
        let base = match a.post_to {
            PostTo::First => urls[0].clone(),
            PostTo::Alternate => urls[n as usize % urls.len()].clone(),
        };
        let mut content = format!("w:{n}");
        if content.len() + 1 < a.size {
            content.push(' ');
            content.push_str(&padding[content.len()..]);
        }
        let (http2, room, posts2, id) =
            (http.clone(), rooms[r].clone(), posts.clone(), rng.uuid_v4());
        tokio::spawn(async move {
            posts2.lock().unwrap().sent += 1;
            let t0 = Instant::now();
            let outcome = net::post_message(&http2, &base, &room, &content, &id).await;
            let us = t0.elapsed().as_micros() as u64;
            let mut p = posts2.lock().unwrap();
            match outcome {
                Ok(ack) => {
                    p.acked += 1;
                    p.latency.record(us);
                    p.acked_ids[r].insert(id, ack.seq);
                }
                Err(why) => *p.failures.entry(why).or_default() += 1,
            }
            drop(permit);
        });
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let p = posts.lock().unwrap();
            eprintln!("  posting: {} sent, {} acked", p.sent, p.acked);
        }
    }
    let dispatch_secs = started.elapsed().as_secs_f64() + 1.0 / a.rate;
    let _all = in_flight
        .acquire_many(a.posters as u32)
        .await
        .expect("never closed");
    let secs = epoch.elapsed().as_secs_f64();
    let server_cpu = match (
        cpu0,
        pids.iter().map(|p| sys::cpu_ticks(p)).sum::<Option<u64>>(),
    ) {
        (Some(x), Some(y)) if !pids.is_empty() => {
            Some((y - x) as f64 / sys::clk_tck() / secs * 100.0)
        }
        _ => None,
    };
    let p = std::mem::take(&mut *posts.lock().unwrap());
    let failed = p.sent - p.acked;
    let stored_rate = p.acked as f64 / secs;
    println!("--- results ---");
    println!(
        "posts       sent {} in {dispatch_secs:.2} s = {:.1}/s offered (target {}/s, {late} dispatched >10 ms late)",
        p.sent,
        p.sent as f64 / dispatch_secs,
        a.rate
    );
    println!(
        "stored      {} acked in {secs:.2} s (first dispatch to last answer) = {stored_rate:.1} posts/s; {failed} failed",
        p.acked
    );
    for (why, n) in &p.failures {
        println!("post error  {n} x {why}");
    }
    println!("post http   {}", p.latency.spread());
    if let Some(c) = server_cpu {
        println!("cpu         server {c:.0}% of one core");
    }

    let mut verify_ok = None;
    if a.verify {
        let mut ok = true;
        let mut totals = VerifyReport::default();
        for (r, room) in rooms.iter().enumerate() {
            match read_room(&http, &urls[0], room).await {
                Ok(stored) => {
                    let v = verify_room(&stored, &p.acked_ids[r]);
                    if !v.ok() {
                        println!("verify      room {room}: {}", v.describe());
                    }
                    ok &= v.ok();
                    totals.add(&v);
                }
                Err(e) => {
                    println!("verify      room {room}: cannot read it back: {e}");
                    ok = false;
                }
            }
        }
        println!(
            "verify      {} rooms read back: {}; {}",
            rooms.len(),
            if ok { "OK" } else { "FAILED" },
            totals.describe()
        );
        verify_ok = Some(ok);
    }
    let mut watch_ok = None;
    if a.watch {
        let heads: Vec<i64> = p
            .acked_ids
            .iter()
            .map(|ids| ids.values().copied().max().unwrap_or(0))
            .collect();
        let w = finish_watch(watchers, &heads).await;
        println!(
            "watch       {} rooms on {}: {} delivered, {} lost, {} twice, {} out of order{}",
            rooms.len(),
            watched,
            w.delivered,
            w.lost,
            w.duplicates,
            w.out_of_order,
            w.error
                .as_ref()
                .map(|e| format!("; a socket ended: {e}"))
                .unwrap_or_default()
        );
        watch_ok = Some(w.ok());
    }
    let pass = failed == 0 && p.acked > 0 && verify_ok != Some(false) && watch_ok != Some(false);
    println!(
        "SUMMARY mode=write rooms={} rate={}/s duration={}s acked={}/{} stored_rate={stored_rate:.1}/s p50={} p99={} max={} errors={failed} verify={} result={}",
        rooms.len(),
        a.rate,
        a.duration,
        p.acked,
        p.sent,
        p.latency.key(50.0),
        p.latency.key(99.0),
        p.latency.key_max(),
        match verify_ok {
            None => "-",
            Some(true) => "ok",
            Some(false) => "FAIL",
        },
        if pass { "PASS" } else { "FAIL" }
    );
    net::rate_limit_notice();
    u8::from(!pass)
}

/// One socket per room, ready before the first post; each task records the
/// seqs its room delivers until it has seen the head it is then sent, the
/// deadline sent with it passes, or the socket ends.
type Watcher = (
    JoinHandle<ClientStats>,
    tokio::sync::oneshot::Sender<(i64, tokio::time::Instant)>,
);

async fn watch_rooms(base: &str, rooms: &[String]) -> Result<Vec<Watcher>, String> {
    let mut watchers = Vec::with_capacity(rooms.len());
    for room in rooms {
        let (mut ws, head) = client::connect_ready(&net::ws_url(base, room, None), room).await?;
        let (tx, mut until) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut st = ClientStats::new(head);
            let (mut want, mut deadline) = (i64::MAX, None);
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            while st.max_seq < want {
                tokio::select! {
                    msg = ws.next() => match client::text_of(msg) {
                        Ok(Some(text)) => {
                            if let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) {
                                if f.ty == "message" {
                                    st.record(f.seq, None);
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(why) => {
                            st.error = Some(why);
                            break;
                        }
                    },
                    end = &mut until, if deadline.is_none() => {
                        let (head, at) = end.unwrap_or((0, tokio::time::Instant::now()));
                        (want, deadline) = (head, Some(at));
                    }
                    _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
                        st.error = Some("still waiting at the deadline".into());
                        break;
                    }
                }
            }
            st
        });
        watchers.push((task, tx));
    }
    Ok(watchers)
}

#[derive(Default)]
struct Watched {
    delivered: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    error: Option<String>,
}

impl Watched {
    fn ok(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.out_of_order == 0 && self.error.is_none()
    }
}

/// Tells each watcher its room's head; what has not arrived 10 s after the
/// last post answered is lost.
async fn finish_watch(watchers: Vec<Watcher>, heads: &[i64]) -> Watched {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::with_capacity(watchers.len());
    for ((task, tx), &head) in watchers.into_iter().zip(heads) {
        let _ = tx.send((head, deadline));
        tasks.push((task, head));
    }
    let mut w = Watched::default();
    for (task, head) in tasks {
        let st = task
            .await
            .unwrap_or_else(|e| ClientStats::failed(e.to_string()));
        w.delivered += st.distinct;
        w.lost += st.missing(head);
        w.duplicates += st.duplicates;
        w.out_of_order += st.out_of_order;
        if st.max_seq < head {
            w.error = w.error.or(st.error);
        }
    }
    w
}

/// A stored message as read back (the fields checked).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Stored {
    pub seq: i64,
    pub id: String,
}

#[derive(Deserialize)]
struct Page {
    messages: Vec<Stored>,
}

/// Every message of `room`, paging with `after` (200 at a time).
async fn read_room(http: &reqwest::Client, base: &str, room: &str) -> Result<Vec<Stored>, String> {
    let mut all = Vec::new();
    let mut after = 0i64;
    loop {
        let resp = http
            .get(format!(
                "{base}/api/messages?room={room}&after={after}&limit=200"
            ))
            .send()
            .await
            .map_err(|e| net::request_error(&e))?;
        if !resp.status().is_success() {
            return Err(net::status_text(resp.status()));
        }
        let page: Page = resp.json().await.map_err(|e| format!("bad body: {e}"))?;
        let Some(last) = page.messages.last() else {
            return Ok(all);
        };
        if last.seq <= after {
            return Err(format!("page after {after} did not advance"));
        }
        after = last.seq;
        all.extend(page.messages);
    }
}

/// What reading a room back found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VerifyReport {
    /// Messages read back.
    pub stored: u64,
    /// Highest seq stored.
    pub head: i64,
    /// Seqs in 1..=head that are not stored.
    pub gaps: u64,
    /// Seqs stored more than once (extra copies).
    pub duplicate_seqs: u64,
    /// Messages not in ascending seq order as read.
    pub out_of_order: u64,
    /// Acknowledged posts.
    pub acked: u64,
    /// Acknowledged ids not stored.
    pub acked_missing: u64,
    /// Acknowledged ids stored more than once (extra copies).
    pub acked_duplicated: u64,
    /// Acknowledged ids stored under another seq than the ack named.
    pub seq_mismatch: u64,
    /// Stored messages whose post was never acknowledged (e.g. timed out);
    /// not an error.
    pub unacked: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.gaps == 0
            && self.duplicate_seqs == 0
            && self.out_of_order == 0
            && self.acked_missing == 0
            && self.acked_duplicated == 0
            && self.seq_mismatch == 0
    }

    fn add(&mut self, o: &VerifyReport) {
        self.stored += o.stored;
        self.head = self.head.max(o.head);
        self.gaps += o.gaps;
        self.duplicate_seqs += o.duplicate_seqs;
        self.out_of_order += o.out_of_order;
        self.acked += o.acked;
        self.acked_missing += o.acked_missing;
        self.acked_duplicated += o.acked_duplicated;
        self.seq_mismatch += o.seq_mismatch;
        self.unacked += o.unacked;
    }

    pub fn describe(&self) -> String {
        format!(
            "{} stored, {} acked; gaps {}  duplicate seqs {}  out-of-order {}  acked but missing {}  \
             acked stored twice {}  seq differs from ack {}  stored without ack {}",
            self.stored,
            self.acked,
            self.gaps,
            self.duplicate_seqs,
            self.out_of_order,
            self.acked_missing,
            self.acked_duplicated,
            self.seq_mismatch,
            self.unacked
        )
    }
}

/// Checks a room read back from seq 1: seqs gapless `1..=head`, each once,
/// ascending; every acknowledged id stored exactly once, under its seq.
pub fn verify_room(stored: &[Stored], acked: &HashMap<String, i64>) -> VerifyReport {
    let mut v = VerifyReport {
        stored: stored.len() as u64,
        acked: acked.len() as u64,
        ..VerifyReport::default()
    };
    v.head = stored.iter().map(|m| m.seq).max().unwrap_or(0);
    let mut seen_seq = vec![false; v.head.max(0) as usize + 1];
    let mut prev = i64::MIN;
    let mut by_id: HashMap<&str, Vec<i64>> = HashMap::new();
    for m in stored {
        if m.seq < prev {
            v.out_of_order += 1;
        }
        prev = prev.max(m.seq);
        if m.seq >= 1 {
            let slot = &mut seen_seq[m.seq as usize];
            if *slot {
                v.duplicate_seqs += 1;
            }
            *slot = true;
        }
        by_id.entry(m.id.as_str()).or_default().push(m.seq);
    }
    v.gaps = seen_seq.iter().skip(1).filter(|s| !**s).count() as u64;
    for (id, &seq) in acked {
        match by_id.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => v.acked_missing += 1,
            Some(seqs) => {
                v.acked_duplicated += seqs.len() as u64 - 1;
                if !seqs.contains(&seq) {
                    v.seq_mismatch += 1;
                }
            }
        }
    }
    v.unacked = by_id
        .iter()
        .filter(|(id, _)| !acked.contains_key(**id))
        .map(|(_, seqs)| seqs.len() as u64)
        .sum();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seq: i64, id: &str) -> Stored {
        Stored { seq, id: id.into() }
    }

    fn acked(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(i, s)| (i.to_string(), *s)).collect()
    }

    #[test]
    fn a_clean_room_passes() {
        let stored = [s(1, "a"), s(2, "b"), s(3, "c")];
        let v = verify_room(&stored, &acked(&[("a", 1), ("b", 2), ("c", 3)]));
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.stored, v.head, v.acked, v.unacked), (3, 3, 3, 0));
    }

    #[test]
    fn unacked_but_stored_is_reported_not_failed() {
        // "c" timed out on the client but was stored.
        let stored = [s(1, "a"), s(2, "b"), s(3, "c")];
        let v = verify_room(&stored, &acked(&[("a", 1), ("b", 2)]));
        assert!(v.ok());
        assert_eq!(v.unacked, 1);
    }

    #[test]
    fn finds_gaps_duplicates_and_order() {
        let stored = [s(1, "a"), s(3, "c"), s(2, "b"), s(3, "x"), s(6, "f")];
        let v = verify_room(&stored, &acked(&[]));
        assert_eq!(v.gaps, 2); // 4, 5
        assert_eq!(v.duplicate_seqs, 1); // 3 twice
        assert_eq!(v.out_of_order, 1); // 2 after 3
        assert!(!v.ok());
        // An empty room is fine; a room starting at 2 has a gap.
        assert!(verify_room(&[], &acked(&[])).ok());
        assert_eq!(verify_room(&[s(2, "a")], &acked(&[])).gaps, 1);
    }

    #[test]
    fn checks_every_acked_id() {
        let stored = [s(1, "a"), s(2, "a"), s(3, "c")];
        let v = verify_room(&stored, &acked(&[("a", 1), ("b", 2), ("c", 4)]));
        assert_eq!(v.acked_missing, 1); // b
        assert_eq!(v.acked_duplicated, 1); // a twice
        assert_eq!(v.seq_mismatch, 1); // c at 3, acked as 4
        assert!(!v.ok());
        assert!(v.describe().contains("acked but missing 1"));
    }
}
