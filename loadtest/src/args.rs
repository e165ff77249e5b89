//! Command-line flags, parsed by hand (`--flag value` / `--flag=value`).

pub const USAGE: &str = "\
loadtest: load generator for the chat server (WebSocket fan-out + HTTP posts)

USAGE:
  loadtest --url http://127.0.0.1:3000 --clients 1000 --rate 50 --duration 20 [options]
  loadtest --url http://127.0.0.1:3000 --clients 5000 --idle --pid <server pid> [options]

LOAD MODE (default): open --clients WebSockets on one room, wait until every one
is ready, POST --rate messages/s (total) for --duration s, wait up to --drain s
for stragglers, then report posts, deliveries, loss, duplicates, out-of-order
frames and delivery latency (POST issued -> frame read by each client).

IDLE MODE (--idle): open --warmup WebSockets and read the server's VmRSS (needs
--pid), open --clients more, wait until all are ready, let the server settle for
--settle s, report the VmRSS growth per measured connection, keep them open for
--hold s, then close. Use a freshly started server: memory freed by earlier
sockets is reused and would hide the cost.

OPTIONS:
  --url URL                 server base URL, http:// only          [http://127.0.0.1:3000]
  --clients N               WebSocket clients                      [100]
  --rate R                  posts per second, total over all posters [50]
  --duration S              posting time in seconds                [10]
  --room NAME               room to use (1-32 of a-z0-9-_)         [bench-<random>]
  --connect-rate R          new connections started per second     [500]
  --connect-concurrency N   connection handshakes in flight at most [200]
  --posters N               POST requests in flight at most        [16]
  --size BYTES              message content length in bytes        [64]
  --drain S                 longest wait for stragglers after the last post [5]
  --idle                    idle-memory mode (no posts)
  --pid PID                 server process: report its RSS (and CPU in load mode)
  --warmup N                idle mode: sockets opened (and kept) before the baseline
                            reading, so one-time costs (DB pool, room, threads) are
                            not charged to the measured sockets [50]
  --settle S                idle mode: wait before the RSS reading  [5]
  --hold S                  idle mode: keep clients open after the reading [5]
  --threads N               tokio worker threads for this tool     [number of cores]
  --max-p99-ms MS           load mode: fail (exit 1) if delivery p99 is above MS
  --max-kib-per-conn KIB    idle mode: fail (exit 1) if the server grows more per connection
  -h, --help                this text

EXIT STATUS: 0 pass; 1 loss, duplicates, out-of-order frames, client/post errors
or a missed --max-* target; 2 bad arguments or setup failure.
";

#[derive(Debug, Clone)]
pub struct Args {
    pub url: String,
    pub clients: usize,
    pub rate: f64,
    pub duration: f64,
    pub room: Option<String>,
    pub connect_rate: f64,
    pub connect_concurrency: usize,
    pub posters: usize,
    pub size: usize,
    pub drain: f64,
    pub idle: bool,
    pub pid: Option<u32>,
    pub warmup: usize,
    pub settle: f64,
    pub hold: f64,
    pub threads: Option<usize>,
    pub max_p99_ms: Option<f64>,
    pub max_kib_per_conn: Option<f64>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:3000".into(),
            clients: 100,
            rate: 50.0,
            duration: 10.0,
            room: None,
            connect_rate: 500.0,
            connect_concurrency: 200,
            posters: 16,
            size: 64,
            drain: 5.0,
            idle: false,
            pid: None,
            warmup: 50,
            settle: 5.0,
            hold: 5.0,
            threads: None,
            max_p99_ms: None,
            max_kib_per_conn: None,
        }
    }
}

/// `Ok(None)` means `--help` was asked for.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--idle" => a.idle = true,
            "--url" => a.url = value(&flag)?.trim_end_matches('/').to_owned(),
            "--clients" => a.clients = num(&flag, &value(&flag)?)?,
            "--rate" => a.rate = num(&flag, &value(&flag)?)?,
            "--duration" => a.duration = num(&flag, &value(&flag)?)?,
            "--room" => a.room = Some(value(&flag)?),
            "--connect-rate" => a.connect_rate = num(&flag, &value(&flag)?)?,
            "--connect-concurrency" => a.connect_concurrency = num(&flag, &value(&flag)?)?,
            "--posters" => a.posters = num(&flag, &value(&flag)?)?,
            "--size" => a.size = num(&flag, &value(&flag)?)?,
            "--drain" => a.drain = num(&flag, &value(&flag)?)?,
            "--pid" => a.pid = Some(num(&flag, &value(&flag)?)?),
            "--warmup" => a.warmup = num(&flag, &value(&flag)?)?,
            "--settle" => a.settle = num(&flag, &value(&flag)?)?,
            "--hold" => a.hold = num(&flag, &value(&flag)?)?,
            "--threads" => a.threads = Some(num(&flag, &value(&flag)?)?),
            "--max-p99-ms" => a.max_p99_ms = Some(num(&flag, &value(&flag)?)?),
            "--max-kib-per-conn" => a.max_kib_per_conn = Some(num(&flag, &value(&flag)?)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    validate(&a)?;
    Ok(Some(a))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

fn validate(a: &Args) -> Result<(), String> {
    if !a.url.starts_with("http://") {
        return Err("--url must start with http:// (this tool has no TLS)".into());
    }
    if a.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(format!("{name} must be greater than 0"))
        }
    };
    positive("--connect-rate", a.connect_rate)?;
    if !a.idle {
        positive("--rate", a.rate)?;
        positive("--duration", a.duration)?;
    }
    for (name, v) in [
        ("--drain", a.drain),
        ("--settle", a.settle),
        ("--hold", a.hold),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{name} must be 0 or more"));
        }
    }
    if a.connect_concurrency == 0 || a.posters == 0 || a.threads == Some(0) {
        return Err("--connect-concurrency, --posters and --threads must be at least 1".into());
    }
    if a.size > 2000 {
        return Err("--size can be at most 2000 (the server's content limit)".into());
    }
    if let Some(room) = &a.room {
        let ok = !room.is_empty()
            && room.len() <= 32
            && room
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err("--room must be 1-32 characters of a-z, 0-9, - and _".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<Args>, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_flags() {
        let a = p("--url http://h:1/ --clients 7 --rate=2.5 --idle --pid 42 --room r-1")
            .unwrap()
            .unwrap();
        assert_eq!(a.url, "http://h:1");
        assert_eq!(a.clients, 7);
        assert_eq!(a.rate, 2.5);
        assert!(a.idle);
        assert_eq!(a.pid, Some(42));
        assert_eq!(a.room.as_deref(), Some("r-1"));
        assert!(p("--help").unwrap().is_none());
        assert!(p("--clients").is_err());
        assert!(p("--bogus 1").is_err());
        assert!(p("--room Bad").is_err());
        assert!(p("--url https://x").is_err());
    }
}
