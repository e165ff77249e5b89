//! Command line: one subcommand per mode (`clap` derive), plus the checks
//! that span several flags.
//!
//! Older command lines had no subcommand (`loadtest --url … --clients 1000`,
//! `loadtest --idle …`); [`legacy_argv`] turns them into `load` / `idle`.

use std::{ffi::OsString, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

const ABOUT: &str = "Load generator and benchmark tool for the chat server";

const LONG_ABOUT: &str = "\
Load generator and benchmark tool for the chat server (see docs/benchmarks.md).

Every mode talks to a running server over its public interface only
(POST/GET /api/messages, GET /ws, GET /r/<room>, the /pkg/ assets).
Without a subcommand `load` is assumed, and `--idle` means `idle`, so older
command lines keep working.";

const AFTER_HELP: &str = "\
EXIT STATUS: 0 pass; 1 loss, duplicates, out-of-order frames, client/post
errors, a failed --verify or a missed target (--max-*, --budget-kb);
2 bad arguments or setup failure (e.g. the server is not reachable).

When the server answers HTTP 429 or closes a WebSocket with 1008 (policy),
it is rate-limiting the run: the tool says so at the end. Benchmark a server
started with its limits off: RATE_POSTS_PER_IP=0 RATE_POSTS_PER_SENDER=0
RATE_WS_CONNECTS_PER_IP=0 (README.md, Security section; `chat --help`).";

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,

    /// Tokio worker threads for this tool [default: number of cores]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// WebSocket fan-out under posts: delivery loss, duplicates, order and latency
    #[command(long_about = "\
WebSocket fan-out under posts (the default mode). Opens --clients WebSockets on
one room, waits until every one is ready, POSTs --rate messages/s (total) for
--duration s on an open-loop schedule, waits up to --drain s for stragglers,
then reports posts, deliveries, loss, duplicates, out-of-order frames and
delivery latency (POST issued -> frame read by each client).

Two instances: give --url twice (or --urls a,b). Clients are spread over the
instances round-robin, posts go to the first (or alternate with
--post-to alternate), and deliveries are checked on every instance's clients.

Sweep: --sweep-clients 100,500,1000 runs one load test per client count (each
on a new room) and, with --svg, draws delivery latency p50/p99 against the
client count and the server's RSS (--pid) against open sockets.")]
    Load(LoadArgs),
    /// Idle WebSockets: server memory (VmRSS) per open socket
    #[command(long_about = "\
Idle WebSockets: server memory per open socket. Opens --warmup sockets and
reads the server's VmRSS (needs --pid), opens --clients more, waits until all
are ready, lets the server settle for --settle s, reports the VmRSS growth per
measured socket, keeps them open for --hold s, then closes them. Use a freshly
started server: memory freed by earlier sockets is reused and hides the cost.

Sweep: --sweep-clients 500,1000,2000 opens sockets in steps (500, then 500
more, then 1000 more) and reads VmRSS after each; --svg draws server memory
and KiB per socket against open sockets.")]
    Idle(IdleArgs),
    /// Persisted-write throughput: posts only, open loop, optional read-back and delivery checks
    #[command(long_about = "\
Persisted-write throughput: POSTs (no WebSockets but --watch's) at --rate per second
(open loop, at most --posters in flight) for --duration s, into one room or
spread round-robin over --rooms N. Reports the achieved rate of stored
(acknowledged) posts, post latency and errors by cause.

--verify then reads every room back through GET /api/messages and checks that
its seqs are gapless 1..N, that every acknowledged id is stored exactly once
and under the seq its acknowledgement named.

--watch opens one WebSocket per room on the last --url before posting (with two
instances and --post-to first: the instance not posted to) and checks that
every stored post arrives there once and in order, within 10 s of the last
answer.")]
    Write(WriteArgs),
    /// Resume storm: many sockets reconnect with after=<last seq> at once
    #[command(long_about = "\
Resume storm. Seeds a room with --seed messages, connects --clients sockets,
disconnects them, posts --missed messages, then reconnects every client within
--window s, each with after=<its last seq>. Per client it measures the time
from the start of its reconnect until it has every missed message (gapless,
no duplicates) and its `ready` frame, and reports p50/p99/max, how many
converged, and every refusal (HTTP 503 pool timeout, 429, close codes).

Single-client replay: --clients 1 --missed 1000 (target: under 100 ms).")]
    Resume(ResumeArgs),
    /// Page throughput: GET /r/<room> (HTML) vs GET /api/messages (JSON)
    #[command(long_about = "\
Page throughput. Seeds a room with --seed messages, then for --duration s each
runs GET /r/<room> (the server-rendered page), with --whole GET
/r/<room>?whole (the page rendered whole, not filled into a kept frame), and
then GET /api/messages?room=<room>&limit=50 (JSON) over --concurrency keep-alive
connections, as fast as the server answers, and reports requests/s and
latency for both.")]
    Pages(PagesArgs),
    /// First-load transfer: the page and every asset it references, as on the wire
    #[command(long_about = "\
First-load transfer. GETs /r/<room> with Accept-Encoding (default `br, gzip`),
then every stylesheet, script, modulepreload/preload link and the .wasm the
HTML references (the .wasm is also looked for next to the .js), and lists each
file with its status, Content-Encoding, Cache-Control and body size as
transferred (compressed; headers not counted). Exits 1 when the total is above
--budget-kb (1 KB = 1000 bytes) or a file is missing.")]
    FirstLoad(FirstLoadArgs),
    /// Abuse: a post (and frame) flooder beside a well-behaved client
    #[command(long_about = "\
Abuse: one client floods POST /api/messages as fast as the server answers
(--flood-concurrency requests in flight, no pacing, varying sender names),
while a well-behaved client follows its room on one WebSocket (after=0) and
posts --rate messages/s in it for --duration s. Reports the well-behaved
client's post latency (issue -> response), its refused posts, whether each of
its messages arrived on its socket exactly once and in order (and how fast),
the flood's totals (201 / 429 / other, requests/s), GET /health sampled every
--health-every-ms, and with --pid the server's CPU and VmRSS.

The tool plays the load balancer: every request carries X-Forwarded-For
(--flood-ip for the flooder, --client-ip for the well-behaved client), so the
server must run with TRUSTED_PROXY_HOPS=1 and, unlike the other modes, with
its default rate limits ON: the point is to see them hold the flooder back.

--frame-flood [N] adds N sockets (default 4) from the flooder's address that
send {\"type\":\"ping\"} frames as fast as they can, reconnecting when closed;
their error frames, 1008 closes and refused connects are counted.

PASS (exit 0) when every well-behaved post got 201, none of its messages was
lost, duplicated or out of order, no /health probe failed, and its post p99 is
at most --max-p99-ms.")]
    Abuse(AbuseArgs),
    /// Subscribe churn: server memory after many subscribe/unsubscribe frames
    #[command(long_about = "\
Subscribe churn: server memory after many subscribe/unsubscribe frames on
fresh room names. Opens --sockets WebSockets, sends {\"type\":\"subscribe\",
\"room\":\"churn-…-<n>\"} then {\"type\":\"unsubscribe\",…} for a new room
each time, as fast as the server answers (at most --window subscribes per
socket awaiting their `ready`), and reads every answer (ready + presence).
Reads the server's VmRSS (--pid, required) after --warmup pairs, right after
the --frames pairs, and again after --settle s; PASS (exit 0) when the growth
from the first to the last reading is at most --max-growth-mib and every
subscribe was answered.

The server's frame limits refuse this on purpose: start it with
RATE_WS_FRAMES=0 RATE_WS_CONTROL_FRAMES=0 (the tool stops and says so when it
sees an error frame with retry_after_ms).")]
    Churn(ChurnArgs),
}

/// Which instance(s) receive the posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PostTo {
    /// Every post goes to the first --url
    First,
    /// Posts go round-robin over the --url's
    Alternate,
}

/// The server(s) a mode talks to.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server base URL, http:// only; give it twice for two instances
    /// [default: http://127.0.0.1:3000]
    #[arg(long = "url", value_name = "URL", value_parser = parse_url)]
    pub url: Vec<String>,

    /// Several server base URLs, comma-separated (same as repeating --url)
    #[arg(long, value_name = "URL,URL", value_delimiter = ',', value_parser = parse_url)]
    pub urls: Vec<String>,

    /// Server process id: its CPU and VmRSS are reported (repeat for several
    /// instances; their values are summed)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
}

impl Target {
    /// Every URL given, in order; the default when none was.
    pub fn urls(&self) -> Vec<String> {
        let mut all: Vec<String> = self.url.iter().chain(&self.urls).cloned().collect();
        if all.is_empty() {
            all.push(DEFAULT_URL.to_owned());
        }
        all
    }

    fn single(&self, mode: &str) -> Result<(), String> {
        if self.urls().len() > 1 {
            return Err(format!("{mode} talks to one server: give --url once"));
        }
        Ok(())
    }
}

/// How fast sockets are opened.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// New connections started per second
    #[arg(long, default_value_t = 500.0, value_name = "R", value_parser = positive)]
    pub connect_rate: f64,

    /// Connection handshakes in flight at most
    #[arg(long, default_value_t = 200, value_name = "N", value_parser = at_least_one)]
    pub connect_concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,

    /// WebSocket clients (spread over the instances)
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub clients: usize,

    /// Posts per second, total over all posters
    #[arg(long, default_value_t = 50.0, value_name = "R", value_parser = positive)]
    pub rate: f64,

    /// Posting time in seconds
    #[arg(long, default_value_t = 10.0, value_name = "S", value_parser = positive)]
    pub duration: f64,

    /// Room to use (1-32 of a-z 0-9 - _) [default: bench-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    #[command(flatten)]
    pub connect: Connect,

    /// POST requests in flight at most
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = at_least_one)]
    pub posters: usize,

    /// Where posts go when there are several --url's
    #[arg(long, value_enum, default_value_t = PostTo::First)]
    pub post_to: PostTo,

    /// Message content length in bytes (at most 2000)
    #[arg(long, default_value_t = 64, value_name = "BYTES", value_parser = content_size)]
    pub size: usize,

    /// Longest wait for stragglers after the last post, in seconds
    #[arg(long, default_value_t = 5.0, value_name = "S", value_parser = non_negative)]
    pub drain: f64,

    /// Fail (exit 1) if the delivery p99 is above MS
    #[arg(long, value_name = "MS", value_parser = positive)]
    pub max_p99_ms: Option<f64>,

    /// Run once per client count (e.g. 100,500,1000,2000,5000), each on a new room
    #[arg(long, value_name = "N,N,…", value_delimiter = ',', value_parser = at_least_one)]
    pub sweep_clients: Vec<usize>,

    /// Pause between sweep steps, in seconds (lets the server close sockets)
    #[arg(long, default_value_t = 2.0, value_name = "S", value_parser = non_negative)]
    pub sweep_pause: f64,

    /// Write an SVG chart of the sweep: delivery latency p50/p99 vs clients,
    /// server memory vs open sockets
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: Target,

    /// Measured sockets
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub clients: usize,

    /// Room to use [default: bench-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    #[command(flatten)]
    pub connect: Connect,

    /// Sockets opened (and kept) before the baseline reading, so one-time
    /// costs (database pool, room, threads) are not charged to the measured ones
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub warmup: usize,

    /// Wait before the memory reading, in seconds
    #[arg(long, default_value_t = 5.0, value_name = "S", value_parser = non_negative)]
    pub settle: f64,

    /// Keep the sockets open after the last reading, in seconds
    #[arg(long, default_value_t = 5.0, value_name = "S", value_parser = non_negative)]
    pub hold: f64,

    /// Fail (exit 1) if the server grows by more than KIB per socket
    #[arg(long, value_name = "KIB", value_parser = positive)]
    pub max_kib_per_conn: Option<f64>,

    /// Open sockets in steps up to these totals (e.g. 500,1000,2000) and read
    /// memory after each (replaces --clients)
    #[arg(long, value_name = "N,N,…", value_delimiter = ',', value_parser = at_least_one)]
    pub sweep_clients: Vec<usize>,

    /// Write an SVG chart of server memory against open sockets
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: Target,

    /// Posts per second offered, total (open loop)
    #[arg(long, default_value_t = 200.0, value_name = "R", value_parser = positive)]
    pub rate: f64,

    /// Posting time in seconds
    #[arg(long, default_value_t = 10.0, value_name = "S", value_parser = positive)]
    pub duration: f64,

    /// Rooms to spread the posts over (round-robin)
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = at_least_one)]
    pub rooms: usize,

    /// Room name, or prefix `<room>-<i>` with several rooms [default: write-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    /// POST requests in flight at most
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = at_least_one)]
    pub posters: usize,

    /// Where posts go when there are several --url's
    #[arg(long, value_enum, default_value_t = PostTo::First)]
    pub post_to: PostTo,

    /// Message content length in bytes (at most 2000)
    #[arg(long, default_value_t = 64, value_name = "BYTES", value_parser = content_size)]
    pub size: usize,

    /// Read every room back and check gapless seqs and ids stored once
    #[arg(long)]
    pub verify: bool,

    /// Watch every room with one WebSocket on the last --url (with two
    /// instances: the one not posted to) and check each stored post arrives
    /// once, in order
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: Target,

    /// Sockets that disconnect and resume
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub clients: usize,

    /// Messages posted while the clients are away
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = at_least_one)]
    pub missed: usize,

    /// Every client starts its reconnect within this many seconds (evenly spread)
    #[arg(long, default_value_t = 1.0, value_name = "S", value_parser = non_negative)]
    pub window: f64,

    /// Messages in the room before the clients connect
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub seed: usize,

    /// Room to use [default: resume-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    #[command(flatten)]
    pub connect: Connect,

    /// POST requests in flight at most while posting the missed messages
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = at_least_one)]
    pub posters: usize,

    /// Give up on a client that has not converged after this many seconds
    #[arg(long, default_value_t = 30.0, value_name = "S", value_parser = positive)]
    pub timeout: f64,

    /// Fail (exit 1) if the p99 time to converge is above MS
    #[arg(long, value_name = "MS", value_parser = positive)]
    pub max_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct PagesArgs {
    #[command(flatten)]
    pub target: Target,

    /// Seconds for each of the two endpoints
    #[arg(long, default_value_t = 10.0, value_name = "S", value_parser = positive)]
    pub duration: f64,

    /// Keep-alive connections, each with one request at a time
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = at_least_one)]
    pub concurrency: usize,

    /// Messages posted to the room first
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub seed: usize,

    /// Room to use [default: pages-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    /// Send this Accept-Encoding (e.g. "br, gzip" as a browser does) [default: none]
    #[arg(long, value_name = "VALUE")]
    pub accept_encoding: Option<String>,

    /// Also measure the page rendered whole: GET /r/<room>?whole, which a
    /// kept page frame does not answer
    #[arg(long)]
    pub whole: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FirstLoadArgs {
    #[command(flatten)]
    pub target: Target,

    /// Room page to load
    #[arg(long, default_value = "lobby", value_parser = parse_room)]
    pub room: String,

    /// Fail (exit 1) if the page and its assets transfer more than this (1 KB = 1000 bytes)
    #[arg(long, default_value_t = 320.0, value_name = "KB", value_parser = positive)]
    pub budget_kb: f64,

    /// Accept-Encoding sent with every request
    #[arg(long, default_value = "br, gzip", value_name = "VALUE")]
    pub accept_encoding: String,
}

#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    #[command(flatten)]
    pub target: Target,

    /// Flood POSTs in flight at once (each task posts again as soon as it is answered)
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = at_least_one)]
    pub flood_concurrency: usize,

    /// Well-behaved posts per second
    #[arg(long, default_value_t = 2.0, value_name = "R", value_parser = positive)]
    pub rate: f64,

    /// Well-behaved posting time in seconds (the flood runs throughout)
    #[arg(long, default_value_t = 20.0, value_name = "S", value_parser = positive)]
    pub duration: f64,

    /// Seconds of flood before the well-behaved client starts posting
    #[arg(long, default_value_t = 1.0, value_name = "S", value_parser = non_negative)]
    pub lead: f64,

    /// The well-behaved client's room [default: calm-<random>]
    #[arg(long, value_parser = parse_room)]
    pub room: Option<String>,

    /// Room the flooder posts to [default: the well-behaved client's room]
    #[arg(long, value_parser = parse_room, value_name = "ROOM")]
    pub flood_room: Option<String>,

    /// The flooder's address, sent as X-Forwarded-For
    #[arg(long, default_value = "203.0.113.66", value_name = "IP")]
    pub flood_ip: std::net::IpAddr,

    /// The well-behaved client's address, sent as X-Forwarded-For
    #[arg(long, default_value = "198.51.100.7", value_name = "IP")]
    pub client_ip: std::net::IpAddr,

    /// Also flood WebSocket frames from the flooder's address on N sockets
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "4",
          value_parser = at_least_one)]
    pub frame_flood: Option<usize>,

    /// GET /health every this many milliseconds during the run
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    pub health_every_ms: u64,

    /// Longest wait for the well-behaved socket to catch up after the last post, in seconds
    #[arg(long, default_value_t = 5.0, value_name = "S", value_parser = non_negative)]
    pub drain: f64,

    /// Fail (exit 1) if the well-behaved post p99 is above MS
    #[arg(long, default_value_t = 100.0, value_name = "MS", value_parser = positive)]
    pub max_p99_ms: f64,
}

#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: Target,

    /// WebSockets sending the frames (the pairs are split evenly)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = at_least_one)]
    pub sockets: usize,

    /// Subscribe+unsubscribe PAIRS to send in total, each on a fresh room name
    /// (two frames per pair)
    #[arg(long, alias = "pairs", default_value_t = 100_000, value_name = "PAIRS", value_parser = at_least_one)]
    pub frames: usize,

    /// Pairs sent before the baseline memory reading (not counted in --frames)
    #[arg(long, default_value_t = 1000, value_name = "PAIRS")]
    pub warmup: usize,

    /// Subscribes per socket awaiting their `ready` at most
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = at_least_one)]
    pub window: usize,

    /// Wait before the last memory reading, in seconds (sockets stay open)
    #[arg(long, default_value_t = 5.0, value_name = "S", value_parser = non_negative)]
    pub settle: f64,

    /// Fail (exit 1) if the server's VmRSS grew by more than MIB
    #[arg(long, default_value_t = 10.0, value_name = "MIB", value_parser = positive)]
    pub max_growth_mib: f64,

    /// Prefix of the room names (`<prefix>-<n>`) [default: churn-<random>]
    #[arg(long, value_parser = parse_room, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Give up when no answer arrived for this many seconds
    #[arg(long, default_value_t = 30.0, value_name = "S", value_parser = positive)]
    pub timeout: f64,
}

impl Cli {
    /// Checks that span several flags (single flags are checked while parsing).
    pub fn validate(&self) -> Result<(), String> {
        match &self.mode {
            Mode::Load(a) => {
                if a.svg.is_some() && a.sweep_clients.is_empty() {
                    return Err("--svg draws a sweep: give --sweep-clients too".into());
                }
                if a.room.is_some() && a.sweep_clients.len() > 1 {
                    return Err(
                        "--room with --sweep-clients would reuse one room for every step; \
                         leave --room out"
                            .into(),
                    );
                }
                Ok(())
            }
            Mode::Idle(a) => {
                a.target.single("idle")?;
                if a.svg.is_some() && a.sweep_clients.is_empty() {
                    return Err("--svg draws a sweep: give --sweep-clients too".into());
                }
                if a.svg.is_some() && a.target.pid.is_empty() {
                    return Err("the idle chart is server memory: give --pid".into());
                }
                if !a.sweep_clients.windows(2).all(|w| w[0] < w[1]) {
                    return Err("--sweep-clients must be increasing in idle mode \
                                (sockets are opened in steps and kept)"
                        .into());
                }
                Ok(())
            }
            Mode::Write(a) => {
                if a.rooms > 1 {
                    if let Some(r) = &a.room {
                        let longest = format!("{r}-{}", a.rooms - 1);
                        if longest.len() > 32 {
                            return Err(format!(
                                "--room {r:?} with --rooms {} makes names like {longest:?}, \
                                 longer than 32 characters",
                                a.rooms
                            ));
                        }
                    }
                }
                Ok(())
            }
            Mode::Resume(_) => Ok(()),
            Mode::Pages(a) => a.target.single("pages"),
            Mode::FirstLoad(a) => a.target.single("first-load"),
            Mode::Abuse(a) => {
                a.target.single("abuse")?;
                if a.flood_ip == a.client_ip {
                    return Err(
                        "--flood-ip and --client-ip must differ: the point is that the \
                                flooder's limit does not reach the well-behaved client"
                            .into(),
                    );
                }
                Ok(())
            }
            Mode::Churn(a) => {
                a.target.single("churn")?;
                if a.target.pid.is_empty() {
                    return Err("churn measures the server's memory: give --pid".into());
                }
                if let Some(p) = &a.prefix {
                    let longest = format!("{p}-{}", a.warmup + a.frames);
                    if longest.len() > 32 {
                        return Err(format!(
                            "--prefix {p:?} makes room names like {longest:?}, longer than 32 characters"
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Rewrites a command line without a subcommand into one with it:
/// `loadtest --url U --clients 9` -> `loadtest load --url U --clients 9`,
/// `loadtest --idle --pid 1` -> `loadtest idle --pid 1`.
pub fn legacy_argv(argv: Vec<OsString>) -> Vec<OsString> {
    let Some(first) = argv.get(1).and_then(|a| a.to_str()) else {
        return argv;
    };
    let top_level = ["-h", "--help", "-V", "--version"];
    if !first.starts_with('-') || top_level.contains(&first) {
        return argv;
    }
    let idle = argv.iter().any(|a| a == "--idle");
    let mut out: Vec<OsString> = Vec::with_capacity(argv.len() + 1);
    out.push(argv[0].clone());
    out.push(if idle { "idle" } else { "load" }.into());
    out.extend(argv.into_iter().skip(1).filter(|a| a != "--idle"));
    out
}

/// Parses a command line (after [`legacy_argv`]) and checks it.
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv = legacy_argv(argv.into_iter().map(Into::into).collect());
    let cli = Cli::try_parse_from(argv)?;
    cli.validate()
        .map_err(|e| clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, e + "\n"))?;
    Ok(cli)
}

fn parse_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let Some(rest) = s.strip_prefix("http://") else {
        return Err("must start with http:// (this tool has no TLS)".into());
    };
    if rest.is_empty() || rest.contains('/') || rest.contains('?') {
        return Err("must be a base URL like http://127.0.0.1:3000 (no path)".into());
    }
    Ok(s.to_owned())
}

/// A room name as the server accepts it: 1-32 of `a-z 0-9 - _`.
pub fn parse_room(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("must be 1-32 characters of a-z, 0-9, - and _".into())
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))
}

fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be greater than 0".into())
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err("must be 0 or more".into())
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

fn content_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n <= 2000 => Ok(n),
        Ok(_) => Err("can be at most 2000 (the server's content limit)".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cli, String> {
        parse(std::iter::once("loadtest").chain(s.split_whitespace())).map_err(|e| e.to_string())
    }

    fn load(s: &str) -> LoadArgs {
        match p(s).unwrap().mode {
            Mode::Load(a) => a,
            m => panic!("not load: {m:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn old_command_lines_still_work() {
        let a = load("--url http://h:1/ --clients 7 --rate=2.5 --pid 42 --room r-1");
        assert_eq!(a.target.urls(), ["http://h:1"]);
        assert_eq!(a.clients, 7);
        assert_eq!(a.rate, 2.5);
        assert_eq!(a.target.pid, [42]);
        assert_eq!(a.room.as_deref(), Some("r-1"));
        let cli = p("--threads 1 --url http://h:1 --clients 5").unwrap();
        assert_eq!(cli.threads, Some(1));
        match p("--url http://h:1 --idle --clients 5 --pid 9")
            .unwrap()
            .mode
        {
            Mode::Idle(a) => {
                assert_eq!(a.clients, 5);
                assert_eq!(a.warmup, 50);
            }
            m => panic!("not idle: {m:?}"),
        }
        // Top-level help stays top-level.
        assert_eq!(
            legacy_argv(vec!["x".into(), "--help".into()]),
            vec![OsString::from("x"), "--help".into()]
        );
    }

    #[test]
    fn defaults() {
        let a = load("load");
        assert_eq!(a.target.urls(), [DEFAULT_URL]);
        assert_eq!((a.clients, a.posters, a.size), (100, 16, 64));
        assert_eq!(a.post_to, PostTo::First);
        match p("resume").unwrap().mode {
            Mode::Resume(r) => {
                assert_eq!((r.missed, r.window), (100, 1.0));
            }
            m => panic!("{m:?}"),
        }
        match p("first-load").unwrap().mode {
            Mode::FirstLoad(f) => {
                assert_eq!(f.budget_kb, 320.0);
                assert_eq!(f.room, "lobby");
                assert_eq!(f.accept_encoding, "br, gzip");
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn two_instances() {
        let a = load("load --url http://a:1 --url http://b:2 --post-to alternate");
        assert_eq!(a.target.urls(), ["http://a:1", "http://b:2"]);
        assert_eq!(a.post_to, PostTo::Alternate);
        let a = load("load --urls http://a:1,http://b:2/");
        assert_eq!(a.target.urls(), ["http://a:1", "http://b:2"]);
        match p("write --urls http://a:1,http://b:2 --rooms 100 --watch --verify")
            .unwrap()
            .mode
        {
            Mode::Write(w) => {
                assert_eq!(w.target.urls(), ["http://a:1", "http://b:2"]);
                assert_eq!(w.post_to, PostTo::First);
                assert!(w.watch && w.verify);
                assert_eq!(w.rooms, 100);
            }
            m => panic!("not write: {m:?}"),
        }
        assert!(p("idle --urls http://a:1,http://b:2").is_err());
        assert!(p("pages --url http://a:1 --url http://b:2").is_err());
        assert!(p("first-load --urls http://a:1,http://b:2").is_err());
    }

    #[test]
    fn sweeps() {
        let a = load("load --sweep-clients 100,500,1000 --svg /tmp/x.svg");
        assert_eq!(a.sweep_clients, [100, 500, 1000]);
        assert!(p("load --svg /tmp/x.svg").is_err());
        assert!(p("load --sweep-clients 1,2 --room r").is_err());
        assert!(p("load --sweep-clients 1,0").is_err());
        assert!(p("idle --sweep-clients 100,50 --pid 1").is_err());
        assert!(p("idle --sweep-clients 100,200 --svg /tmp/x.svg").is_err());
        assert!(p("idle --sweep-clients 100,200 --svg /tmp/x.svg --pid 1").is_ok());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "--clients",
            "--bogus 1",
            "--room Bad",
            "--url https://x",
            "--url http://x/path",
            "--clients 0",
            "--rate 0",
            "--rate nan",
            "--duration -1",
            "--drain -1",
            "--size 2001",
            "--posters 0",
            "--threads 0",
            "--post-to sideways",
            "write --rooms 0",
            "write --room aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa --rooms 10",
            "resume --missed 0",
            "resume --window -1",
            "pages --concurrency 0",
            "first-load --budget-kb 0",
        ] {
            assert!(p(bad).is_err(), "accepted {bad:?}");
        }
        assert!(p("write --room aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa --rooms 10").is_ok());
    }
}
