//! Configuration from environment variables, parsed once at start. A bad
//! value stops the start with one line naming the variable and the form it
//! expects. Every key is documented in `.env.example` and the README.

use std::{fmt, net::SocketAddr, time::Duration};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/chat.db";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone)]
pub struct Config {
    /// Where to listen. `LEPTOS_SITE_ADDR`, else `0.0.0.0:$PORT`, else 127.0.0.1:3000.
    pub addr: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    /// Random broadcast interval; `None` disables the broadcaster.
    pub broadcast: Option<(Duration, Duration)>,
    pub allowed_origins: Vec<String>,
    pub ws_ping_interval: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Directory with the built site (WASM, CSS, assets).
    pub site_root: String,
    /// Serve `/metrics` on this separate address instead of the main one
    /// (keeps it off the public load balancer).
    pub metrics_addr: Option<SocketAddr>,
    /// Longest a graceful shutdown may take before the process exits anyway.
    pub shutdown_grace: Duration,
    /// How long another instance's presence is trusted without a heartbeat.
    pub presence_ttl: Duration,
    /// After SIGTERM, how long to keep serving with `/health` at 503 (so the
    /// load balancer stops sending) before refusing new connections.
    pub shutdown_drain: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("broadcast", &self.broadcast)
            .field("allowed_origins", &self.allowed_origins)
            .field("ws_ping_interval", &self.ws_ping_interval)
            .field("log_format", &self.log_format)
            .field("site_root", &self.site_root)
            .field("metrics_addr", &self.metrics_addr)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("shutdown_drain", &self.shutdown_drain)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let redacted = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{redacted}/{p}"),
        None => format!("{scheme}://{redacted}"),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Parses from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let addr = match (get("LEPTOS_SITE_ADDR"), get("PORT")) {
            (Some(a), _) => parse(&a, "LEPTOS_SITE_ADDR", "an address like 127.0.0.1:3000")?,
            (None, Some(p)) => {
                let port: u16 = parse(&p, "PORT", "a port number (0-65535)")?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            return Err(ConfigError {
                var: "DATABASE_URL",
                value: redact_url(&database_url),
                expected: "a URL starting with postgres://, postgresql:// or sqlite:",
            });
        }
        let db_max_connections = match get("DATABASE_MAX_CONNECTIONS") {
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(err(
                        "DATABASE_MAX_CONNECTIONS",
                        v,
                        "a whole number of at least 1",
                    ))
                }
            },
            None => 10,
        };
        let db_acquire_timeout = secs(&get, "DATABASE_TIMEOUT_SECS", 5.0)?;
        let min = secs(&get, "BROADCAST_MIN_SECS", 5.0)?;
        let max = secs(&get, "BROADCAST_MAX_SECS", 20.0)?;
        if !min.is_zero() && !max.is_zero() && min > max {
            return Err(err(
                "BROADCAST_MAX_SECS",
                format!("{}", max.as_secs_f64()),
                "a value at least BROADCAST_MIN_SECS (or 0 to disable)",
            ));
        }
        let broadcast = (!min.is_zero() && !max.is_zero()).then_some((min, max));
        let allowed_origins = get("ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let ws_ping_interval = secs(&get, "WS_PING_SECS", 20.0)?;
        if ws_ping_interval.is_zero() {
            return Err(err(
                "WS_PING_SECS",
                "0".into(),
                "a number of seconds greater than 0",
            ));
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(err("LOG_FORMAT", other.into(), "json or pretty")),
        };
        let log_filter = get("RUST_LOG")
            .or_else(|| get("LOG_LEVEL"))
            .unwrap_or_else(|| "info,sqlx=warn,tower_http=info".into());
        let site_root = get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into());
        let metrics_addr = match get("METRICS_ADDR") {
            Some(a) => Some(parse(&a, "METRICS_ADDR", "an address like 0.0.0.0:9090")?),
            None => None,
        };
        let shutdown_grace = secs(&get, "SHUTDOWN_GRACE_SECS", 25.0)?;
        let shutdown_drain = secs(&get, "SHUTDOWN_DRAIN_SECS", 5.0)?.min(shutdown_grace);
        let presence_ttl = secs(&get, "PRESENCE_TTL_SECS", 30.0)?;
        if presence_ttl < Duration::from_secs(1) {
            return Err(err(
                "PRESENCE_TTL_SECS",
                format!("{}", presence_ttl.as_secs_f64()),
                "at least 1 second",
            ));
        }
        Ok(Self {
            addr,
            database_url,
            db_max_connections,
            db_acquire_timeout,
            broadcast,
            allowed_origins,
            ws_ping_interval,
            log_format,
            log_filter,
            site_root,
            metrics_addr,
            shutdown_grace,
            shutdown_drain,
            presence_ttl,
        })
    }
}

fn err(var: &'static str, value: String, expected: &'static str) -> ConfigError {
    ConfigError {
        var,
        value,
        expected,
    }
}

fn parse<T: std::str::FromStr>(
    v: &str,
    var: &'static str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    v.parse().map_err(|_| err(var, v.into(), expected))
}

/// A duration in (possibly fractional) seconds, >= 0.
fn secs(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: f64,
) -> Result<Duration, ConfigError> {
    let Some(v) = get(var) else {
        return Ok(Duration::from_secs_f64(default));
    };
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(err(var, v, "a number of seconds between 0 and 86400")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            c.broadcast,
            Some((Duration::from_secs(5), Duration::from_secs(20)))
        );
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn port_is_the_container_convention() {
        assert_eq!(
            config(&[("PORT", "8080")]).unwrap().addr,
            "0.0.0.0:8080".parse().unwrap()
        );
        let both = config(&[("PORT", "8080"), ("LEPTOS_SITE_ADDR", "127.0.0.1:9")]).unwrap();
        assert_eq!(both.addr, "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = config(&[("DATABASE_URL", "mysql://u:pw@h/db")]).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        assert!(!e.to_string().contains("pw"), "{e}");
        assert_eq!(config(&[("PORT", "http")]).unwrap_err().var, "PORT");
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "soon")]).unwrap_err().var,
            "BROADCAST_MIN_SECS"
        );
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "30"), ("BROADCAST_MAX_SECS", "10")])
                .unwrap_err()
                .var,
            "BROADCAST_MAX_SECS"
        );
        assert_eq!(
            config(&[("LOG_FORMAT", "xml")]).unwrap_err().var,
            "LOG_FORMAT"
        );
        assert_eq!(
            config(&[("DATABASE_MAX_CONNECTIONS", "0")])
                .unwrap_err()
                .var,
            "DATABASE_MAX_CONNECTIONS"
        );
    }

    #[test]
    fn zero_disables_broadcasts_and_fractions_work() {
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "0")]).unwrap().broadcast,
            None
        );
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "0.2"), ("BROADCAST_MAX_SECS", "0.5")])
                .unwrap()
                .broadcast,
            Some((Duration::from_millis(200), Duration::from_millis(500)))
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/chat"),
            "postgres://app:***@db:5432/chat"
        );
        assert_eq!(redact_url("postgres://db/chat"), "postgres://db/chat");
        assert_eq!(redact_url("sqlite://data/chat.db"), "sqlite://data/chat.db");
        let c = config(&[("DATABASE_URL", "postgres://app:s3cret@db/chat")]).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
