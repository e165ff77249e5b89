//! Configuration: environment variables (or the same settings as flags),
//! parsed once at start with `clap`, so `chat --help` lists every variable
//! with its default and meaning. A bad value stops the start with one line
//! naming the variable and the form it expects, never printing a secret.
//! Every key is documented in `.env.example` and the README.

use std::{ffi::OsString, net::SocketAddr, time::Duration};

use clap::{error::ErrorKind, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use server::limits::Rate;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/chat.db";

/// The command line: `chat` serves; the subcommands are small tools.
#[derive(Debug, Parser)]
#[command(
    name = "chat",
    version,
    about = "A small real-time chat server (Leptos + axum, SQLite or PostgreSQL).",
    long_about = "A small real-time chat server (Leptos + axum, SQLite or PostgreSQL).\n\n\
                  Without a subcommand it serves. Every setting is an environment variable \
                  (shown in brackets); the flag of the same name overrides it.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 when this machine's instance answers `GET /health` with 200
    /// (the container's HEALTHCHECK; needs no curl). Reads only the
    /// listening address.
    Healthcheck(HealthcheckArgs),
    /// Write a consistent copy of the SQLite database while the server runs
    /// (SQLite's VACUUM INTO), to PATH or to a new timestamped file in
    /// --dir, pruning older ones there. PostgreSQL: use pg_dump or the
    /// provider's backups (docs/operations.md). Reads only DATABASE_URL.
    Backup(BackupArgs),
    /// Replace the SQLite database's contents with a backup and give it a
    /// new epoch, so open pages reload instead of resuming. Safe while the
    /// server runs: it notices within a second. Reads only DATABASE_URL.
    Restore(RestoreArgs),
    /// Give the database a new epoch (after pg_restore or a point-in-time
    /// restore of PostgreSQL): running instances close their sockets and
    /// open pages reload their rooms. Reads only DATABASE_URL.
    NewEpoch(DatabaseArgs),
}

/// The database a maintenance command works on, and nothing else, so an
/// unrelated bad setting cannot stop a backup.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// postgres://…, postgresql://… or sqlite:….
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = parse_database_url, hide_env_values = true)]
    pub database_url: String,
}

/// `chat backup`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["path", "dir"])))]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup file to write (must not exist yet).
    #[arg(value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,
    /// Write `chat-<UTC time>.db` into this directory instead (created if
    /// missing), then prune older backups there by --keep / --max-age-days.
    #[arg(long, value_name = "DIR", conflicts_with = "path")]
    pub dir: Option<std::path::PathBuf>,
    /// With --dir: keep the newest N backups (and any kept by
    /// --max-age-days); remove the other `chat-*.db` files.
    #[arg(long, value_name = "N", requires = "dir", conflicts_with = "path", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// With --dir: keep backups younger than this many days (and any kept
    /// by --keep); remove the other `chat-*.db` files.
    #[arg(long, value_name = "DAYS", requires = "dir", conflicts_with = "path", value_parser = parse_days)]
    pub max_age_days: Option<Duration>,
}

/// `chat restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The backup to restore (a file `chat backup` wrote).
    #[arg(value_name = "PATH")]
    pub path: std::path::PathBuf,
}

/// `chat healthcheck`: only what it needs, so an unrelated bad setting
/// cannot make a healthy container look sick.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub listen: Listen,
}

/// Where to listen.
#[derive(Debug, Clone, Args)]
pub struct Listen {
    /// Listen address. Wins over PORT.
    #[arg(long, env = "LEPTOS_SITE_ADDR", value_name = "LEPTOS_SITE_ADDR", value_parser = parse_addr)]
    pub leptos_site_addr: Option<SocketAddr>,
    /// If set (and LEPTOS_SITE_ADDR is not), listen on 0.0.0.0:$PORT (the
    /// container convention). Default: 127.0.0.1:3000.
    #[arg(long, env = "PORT", value_name = "PORT", value_parser = parse_port)]
    pub port: Option<u16>,
}

impl Listen {
    pub fn addr(&self) -> SocketAddr {
        match (self.leptos_site_addr, self.port) {
            (Some(addr), _) => addr,
            (None, Some(port)) => SocketAddr::from(([0, 0, 0, 0], port)),
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A session cookie per browser, bearer tokens for API clients.
    Sessions,
    /// The AWS ALB's OIDC sign-in (`x-amzn-oidc-data`).
    AlbOidc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[value(alias = "text")]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything the server reads at start.
#[derive(Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: Listen,

    /// postgres://…, postgresql://… or sqlite:…; anything else is refused.
    /// The password never appears in logs.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = parse_database_url, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_name = "DATABASE_MAX_CONNECTIONS", default_value = "10", value_parser = parse_pool_size)]
    pub database_max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    #[arg(long, env = "DATABASE_TIMEOUT_SECS", value_name = "DATABASE_TIMEOUT_SECS", default_value = "5", value_parser = parse_secs)]
    pub database_timeout_secs: Duration,

    /// Random server broadcasts every uniformly random interval between
    /// these; 0 in either disables them.
    #[arg(long, env = "BROADCAST_MIN_SECS", value_name = "BROADCAST_MIN_SECS", default_value = "5", value_parser = parse_secs)]
    pub broadcast_min_secs: Duration,
    /// See BROADCAST_MIN_SECS.
    #[arg(long, env = "BROADCAST_MAX_SECS", value_name = "BROADCAST_MAX_SECS", default_value = "20", value_parser = parse_secs)]
    pub broadcast_max_secs: Duration,

    /// Extra origins (comma-separated) allowed to open /ws; the page's own
    /// host is always allowed; "*" allows any.
    #[arg(long, env = "ALLOWED_ORIGINS", value_name = "ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,
    /// Server ping interval on WebSockets; a peer silent for two intervals
    /// is dropped.
    #[arg(long, env = "WS_PING_SECS", value_name = "WS_PING_SECS", default_value = "20", value_parser = parse_positive_secs)]
    pub ws_ping_secs: Duration,

    /// Log lines as `json` or `pretty`.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_name = "LOG_FORMAT",
        default_value = "pretty",
        value_enum
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax). LOG_LEVEL is read too.
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info,sqlx=warn,tower_http=info"
    )]
    pub rust_log: String,

    /// Directory with the built site (WASM, CSS, assets).
    #[arg(
        long,
        env = "LEPTOS_SITE_ROOT",
        value_name = "LEPTOS_SITE_ROOT",
        default_value = "target/site"
    )]
    pub leptos_site_root: String,
    /// Port of cargo-leptos' live-reload socket (development).
    #[arg(long, env = "LEPTOS_RELOAD_PORT", value_name = "LEPTOS_RELOAD_PORT", default_value = "3001", value_parser = parse_port)]
    pub leptos_reload_port: u16,
    /// Serve /metrics only on this address (e.g. 0.0.0.0:9090) instead of
    /// the main port, so it is not public behind a load balancer.
    #[arg(long, env = "METRICS_ADDR", value_name = "METRICS_ADDR", value_parser = parse_addr)]
    pub metrics_addr: Option<SocketAddr>,

    /// How long another instance's presence report is trusted without a
    /// heartbeat (a crashed instance's users vanish within this).
    #[arg(long, env = "PRESENCE_TTL_SECS", value_name = "PRESENCE_TTL_SECS", default_value = "30", value_parser = parse_ttl)]
    pub presence_ttl_secs: Duration,
    /// Proxies in front of this server whose X-Forwarded-For and
    /// X-Forwarded-Proto are trusted (an AWS ALB is 1). With 0 the client is
    /// the TCP peer, so a direct client cannot spoof its address.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", value_name = "TRUSTED_PROXY_HOPS", default_value = "0", value_parser = parse_hops)]
    pub trusted_proxy_hops: u8,
    /// Posts per client IP (IPv6: per /64), as COUNT/PERIOD with a burst of
    /// COUNT (e.g. 60/10s, 100/1m); 0 turns it off.
    #[arg(long, env = "RATE_POSTS_PER_IP", value_name = "RATE_POSTS_PER_IP", default_value = "60/10s", value_parser = parse_rate)]
    pub rate_posts_per_ip: Limit,
    /// Posts per sender name (case-insensitive); 0 turns it off.
    #[arg(long, env = "RATE_POSTS_PER_SENDER", value_name = "RATE_POSTS_PER_SENDER", default_value = "30/10s", value_parser = parse_rate)]
    pub rate_posts_per_sender: Limit,
    /// WebSocket connects per client IP; 0 turns it off.
    #[arg(long, env = "RATE_WS_CONNECTS_PER_IP", value_name = "RATE_WS_CONNECTS_PER_IP", default_value = "60/1m", value_parser = parse_rate)]
    pub rate_ws_connects_per_ip: Limit,
    /// Frames per WebSocket (any kind); 0 turns it off.
    #[arg(long, env = "RATE_WS_FRAMES", value_name = "RATE_WS_FRAMES", default_value = "60/10s", value_parser = parse_rate)]
    pub rate_ws_frames: Limit,
    /// subscribe, unsubscribe and hello frames per WebSocket; 0 turns it off.
    #[arg(long, env = "RATE_WS_CONTROL_FRAMES", value_name = "RATE_WS_CONTROL_FRAMES", default_value = "20/10s", value_parser = parse_rate)]
    pub rate_ws_control_frames: Limit,
    /// Open connections (HTTP and WebSocket) this instance accepts at once;
    /// above it new connections get a 503 and are closed.
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "MAX_CONNECTIONS", default_value = "10000", value_parser = parse_positive)]
    pub max_connections: u32,
    /// Rooms followed on this instance at once (each costs a fan-out buffer).
    #[arg(long, env = "MAX_ROOMS", value_name = "MAX_ROOMS", default_value = "2000", value_parser = parse_positive)]
    pub max_rooms: u32,
    /// How long a client may take to send a request's headers.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", value_name = "HEADER_READ_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub header_read_timeout_secs: Duration,
    /// Longest time for any request but the WebSocket (body included).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", value_name = "REQUEST_TIMEOUT_SECS", default_value = "15", value_parser = parse_positive_secs)]
    pub request_timeout_secs: Duration,
    /// How long one WebSocket frame may take to go out; a peer that stops
    /// reading is dropped after it.
    #[arg(long, env = "WS_SEND_TIMEOUT_SECS", value_name = "WS_SEND_TIMEOUT_SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub ws_send_timeout_secs: Duration,
    /// Messages one WebSocket subscription replays at most; a longer
    /// backlog is paged ("more" frames).
    #[arg(long, env = "WS_REPLAY_MAX", value_name = "WS_REPLAY_MAX", default_value = "1000", value_parser = parse_positive)]
    pub ws_replay_max: u32,
    /// Strict-Transport-Security max-age for responses served over HTTPS;
    /// 0 sends none.
    #[arg(
        long,
        env = "HSTS_MAX_AGE_SECS",
        value_name = "HSTS_MAX_AGE_SECS",
        default_value = "0"
    )]
    pub hsts_max_age_secs: u64,

    /// How authors are known: `sessions` (a cookie per browser, API tokens
    /// from POST /api/sessions; default) or `alb-oidc` (the AWS ALB's
    /// sign-in: the verified `x-amzn-oidc-data` identity; no guests).
    #[arg(
        long,
        env = "AUTH",
        value_name = "AUTH",
        default_value = "sessions",
        value_enum
    )]
    pub auth: AuthMode,
    /// With AUTH=alb-oidc: where the ALB's public keys are, `{kid}` marking
    /// the key id (https://public-keys.auth.elb.<region>.amazonaws.com/{kid}).
    #[arg(long, env = "ALB_KEY_URL", value_name = "ALB_KEY_URL")]
    pub alb_key_url: Option<String>,
    /// With AUTH=alb-oidc: the ALB's ARN, the only signer trusted.
    #[arg(long, env = "ALB_SIGNER", value_name = "ALB_SIGNER")]
    pub alb_signer: Option<String>,
    /// Whether posts without a session (API clients sending only `sender`)
    /// are taken as a guest's (never under a held name).
    #[arg(long, env = "ALLOW_GUESTS", value_name = "ALLOW_GUESTS", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub allow_guests: bool,
    /// How long after posting an author may edit a message.
    #[arg(long, env = "EDIT_WINDOW_SECS", value_name = "EDIT_WINDOW_SECS", default_value = "600", value_parser = parse_secs)]
    pub edit_window_secs: Duration,
    /// How long a name stays with the session that last used it.
    #[arg(long, env = "NAME_HOLD_DAYS", value_name = "NAME_HOLD_DAYS", default_value = "30", value_parser = parse_days)]
    pub name_hold_days: Duration,
    /// Whoever enters this on /moderate becomes a moderator (unset: nobody
    /// can that way). At least 16 characters.
    #[arg(long, env = "MODERATOR_TOKEN", value_name = "MODERATOR_TOKEN", value_parser = parse_moderator_token, hide_env_values = true)]
    pub moderator_token: Option<String>,
    /// With AUTH=alb-oidc: signed-in subjects or emails (comma-separated)
    /// that are moderators.
    #[arg(
        long,
        env = "MODERATORS",
        value_name = "MODERATORS",
        value_delimiter = ','
    )]
    pub moderators: Vec<String>,

    /// Longest a graceful shutdown may take.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", value_name = "SHUTDOWN_GRACE_SECS", default_value = "25", value_parser = parse_secs)]
    pub shutdown_grace_secs: Duration,
    /// After SIGTERM, how long /health answers 503 while the instance still
    /// serves, before it stops accepting connections (not on Ctrl+C).
    #[arg(long, env = "SHUTDOWN_DRAIN_SECS", value_name = "SHUTDOWN_DRAIN_SECS", default_value = "5", value_parser = parse_secs)]
    pub shutdown_drain_secs: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr())
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("broadcast", &self.broadcast())
            .field("allowed_origins", &self.allowed_origins)
            .field("ws_ping_secs", &self.ws_ping_secs)
            .field("log_format", &self.log_format)
            .field("leptos_site_root", &self.leptos_site_root)
            .field("metrics_addr", &self.metrics_addr)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .field(
                "rate_posts_per_ip",
                &self.rate_posts_per_ip.0.map(|r| r.to_string()),
            )
            .field(
                "rate_posts_per_sender",
                &self.rate_posts_per_sender.0.map(|r| r.to_string()),
            )
            .field(
                "rate_ws_connects_per_ip",
                &self.rate_ws_connects_per_ip.0.map(|r| r.to_string()),
            )
            .field(
                "rate_ws_frames",
                &self.rate_ws_frames.0.map(|r| r.to_string()),
            )
            .field(
                "rate_ws_control_frames",
                &self.rate_ws_control_frames.0.map(|r| r.to_string()),
            )
            .field("max_connections", &self.max_connections)
            .field("max_rooms", &self.max_rooms)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("shutdown_drain_secs", &self.shutdown_drain())
            .finish()
    }
}

impl Config {
    pub fn addr(&self) -> SocketAddr {
        self.listen.addr()
    }

    /// The broadcast interval, `None` when disabled.
    pub fn broadcast(&self) -> Option<(Duration, Duration)> {
        let (min, max) = (self.broadcast_min_secs, self.broadcast_max_secs);
        (!min.is_zero() && !max.is_zero()).then_some((min, max))
    }

    /// The drain never outlasts the grace period.
    pub fn shutdown_drain(&self) -> Duration {
        self.shutdown_drain_secs.min(self.shutdown_grace_secs)
    }

    /// Rules across variables, after each parsed on its own.
    fn check(&self) -> Result<(), ConfigError> {
        if self.auth == AuthMode::AlbOidc {
            for (var, value) in [
                ("ALB_KEY_URL", &self.alb_key_url),
                ("ALB_SIGNER", &self.alb_signer),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigError {
                        var: var.into(),
                        value: String::new(),
                        expected: "a value when AUTH=alb-oidc".into(),
                    });
                }
            }
            if !self
                .alb_key_url
                .as_deref()
                .unwrap_or_default()
                .contains("{kid}")
            {
                return Err(ConfigError {
                    var: "ALB_KEY_URL".into(),
                    value: self.alb_key_url.clone().unwrap_or_default(),
                    expected: "a URL containing {kid}".into(),
                });
            }
        }
        if self.broadcast().is_some() && self.broadcast_min_secs > self.broadcast_max_secs {
            return Err(ConfigError {
                var: "BROADCAST_MAX_SECS".into(),
                value: format!("{}", self.broadcast_max_secs.as_secs_f64()),
                expected: "a value at least BROADCAST_MIN_SECS (or 0 to disable)".into(),
            });
        }
        Ok(())
    }

    /// Parses settings from `pairs` of (variable, value) only, ignoring the
    /// process environment (for tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let command = Cli::command().mut_args(|a| a.env(None));
        let mut argv: Vec<OsString> = vec!["chat".into()];
        for (var, value) in pairs {
            argv.push(format!("--{}={value}", var.to_lowercase().replace('_', "-")).into());
        }
        let matches = command
            .try_get_matches_from(argv)
            .map_err(ConfigError::from_clap)?;
        let config = Cli::from_arg_matches(&matches)
            .map_err(ConfigError::from_clap)?
            .config;
        config.check()?;
        Ok(config)
    }
}

/// What `main` should do.
#[derive(Debug)]
pub enum Invocation {
    Serve(Box<Config>),
    Healthcheck(HealthcheckArgs),
    Backup(BackupArgs),
    Restore(RestoreArgs),
    NewEpoch(DatabaseArgs),
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
}

/// Reads the command line and the environment. Empty variables count as
/// unset (as in `.env.example`). Call before any thread starts (it may edit
/// the environment).
pub fn from_env() -> Result<Invocation, ConfigError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    clean_env();
    parse(args)
}

/// What `args` (with the environment) ask for.
fn parse(args: Vec<OsString>) -> Result<Invocation, ConfigError> {
    // A subcommand parses only its own settings: the server's are not read.
    let subcommand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| Cli::command().get_subcommands().any(|c| c.get_name() == a));
    if subcommand {
        #[derive(Parser)]
        #[command(name = "chat")]
        struct Tool {
            #[command(subcommand)]
            command: Command,
        }
        return match Tool::try_parse_from(args) {
            Ok(tool) => Ok(tool.command.into()),
            Err(e) => printable(e),
        };
    }
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Some(command),
            ..
        }) => Ok(command.into()),
        Ok(cli) => {
            cli.config.check()?;
            Ok(Invocation::Serve(Box::new(cli.config)))
        }
        Err(e) => printable(e),
    }
}

impl From<Command> for Invocation {
    fn from(command: Command) -> Self {
        match command {
            Command::Healthcheck(args) => Invocation::Healthcheck(args),
            Command::Backup(args) => Invocation::Backup(args),
            Command::Restore(args) => Invocation::Restore(args),
            Command::NewEpoch(args) => Invocation::NewEpoch(args),
        }
    }
}

fn printable(e: clap::Error) -> Result<Invocation, ConfigError> {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            Ok(Invocation::Print(e.render().to_string()))
        }
        _ => Err(ConfigError::from_clap(e)),
    }
}

/// Our variables with an empty value are removed; the others are trimmed.
fn clean_env() {
    for arg in Cli::command().get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        if let Some(value) = std::env::var_os(var) {
            match value.to_str().map(str::trim) {
                Some("") => std::env::remove_var(var),
                Some(trimmed) if trimmed.len() != value.len() => std::env::set_var(var, trimmed),
                _ => {}
            }
        }
    }
    // LOG_LEVEL is the older name of RUST_LOG.
    if std::env::var_os("RUST_LOG").is_none() {
        if let Some(level) = std::env::var_os("LOG_LEVEL").filter(|l| !l.is_empty()) {
            std::env::set_var("RUST_LOG", level);
        }
    }
}

/// One line: the variable, the value (redacted when secret) and what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    fn from_clap(e: clap::Error) -> Self {
        use clap::error::{ContextKind, ContextValue};
        let context = |kind| match e.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(s)) => Some(s.join(", ")),
            _ => None,
        };
        // "--port <PORT>": every value name is its variable's name.
        let var = context(ContextKind::InvalidArg)
            .map(|a| {
                a.split_once('<')
                    .map_or(a.clone(), |(_, v)| v.trim_end_matches('>').to_owned())
            })
            .unwrap_or_else(|| "the command line".into());
        let value = context(ContextKind::InvalidValue).unwrap_or_default();
        let expected = match (
            std::error::Error::source(&e),
            context(ContextKind::ValidValue),
        ) {
            (Some(source), _) => source.to_string(),
            (None, Some(valid)) => format!("one of {valid}"),
            (None, None) => e
                .render()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned(),
        };
        let value = match var.as_str() {
            "DATABASE_URL" => redact_url(&value),
            "MODERATOR_TOKEN" => "***".to_owned(),
            _ => value,
        };
        Self {
            var,
            value,
            expected,
        }
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

/// What a value parser reports: the form it expects.
#[derive(Debug)]
struct Expected(&'static str);

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Expected {}

fn parse_addr(v: &str) -> Result<SocketAddr, Expected> {
    v.parse()
        .map_err(|_| Expected("an address like 127.0.0.1:3000"))
}

fn parse_port(v: &str) -> Result<u16, Expected> {
    v.parse().map_err(|_| Expected("a port number (0-65535)"))
}

fn parse_database_url(v: &str) -> Result<String, Expected> {
    if v.starts_with("postgres://") || v.starts_with("postgresql://") || v.starts_with("sqlite:") {
        Ok(v.to_owned())
    } else {
        Err(Expected(
            "a URL starting with postgres://, postgresql:// or sqlite:",
        ))
    }
}

fn parse_pool_size(v: &str) -> Result<u32, Expected> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Expected("a whole number of at least 1")),
    }
}

fn parse_origin(v: &str) -> Result<String, Expected> {
    Ok(v.trim().trim_end_matches('/').to_owned())
}

/// A duration in (possibly fractional) seconds, 0 to a day.
fn parse_secs(v: &str) -> Result<Duration, Expected> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Expected("a number of seconds between 0 and 86400")),
    }
}

fn parse_positive_secs(v: &str) -> Result<Duration, Expected> {
    match parse_secs(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(Expected("a number of seconds greater than 0")),
    }
}

fn parse_bool(v: &str) -> Result<bool, Expected> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Expected("true or false")),
    }
}

fn parse_days(v: &str) -> Result<Duration, Expected> {
    match v.parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d <= 3650.0 => {
            Ok(Duration::from_secs_f64(d * 86_400.0))
        }
        _ => Err(Expected("a number of days between 0 and 3650")),
    }
}

fn parse_moderator_token(v: &str) -> Result<String, Expected> {
    if v.chars().count() >= 16 {
        Ok(v.to_owned())
    } else {
        Err(Expected("at least 16 characters (it is a password)"))
    }
}

fn parse_hops(v: &str) -> Result<u8, Expected> {
    v.parse()
        .ok()
        .filter(|h| *h <= 10)
        .ok_or(Expected("a number of proxies from 0 to 10"))
}

fn parse_positive(v: &str) -> Result<u32, Expected> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Expected("a whole number of at least 1")),
    }
}

/// A rate limit's setting: a rate, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Rate>);

/// `COUNT/PERIOD` (`60/10s`, `100/1m`, `5/500ms`, `1000/1h`), or `0` for off.
fn parse_rate(v: &str) -> Result<Limit, Expected> {
    parse_rate_inner(v).map(Limit)
}

fn parse_rate_inner(v: &str) -> Result<Option<Rate>, Expected> {
    const FORM: Expected = Expected("COUNT/PERIOD like 60/10s, 100/1m or 5/500ms, or 0 for off");
    if v == "0" {
        return Ok(None);
    }
    let (count, period) = v.split_once('/').ok_or(FORM)?;
    let count: u32 = count.trim().parse().map_err(|_| FORM)?;
    let period = period.trim();
    if period.is_empty() {
        return Err(FORM);
    }
    let (number, unit) = period
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((period, "s"), |at| period.split_at(at));
    let number: f64 = if number.is_empty() {
        1.0
    } else {
        number.parse().map_err(|_| FORM)?
    };
    let secs = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(FORM),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(FORM);
    }
    match count {
        0 => Ok(None),
        n => Ok(Rate::new(n, Duration::from_secs_f64(secs))),
    }
}

fn parse_ttl(v: &str) -> Result<Duration, Expected> {
    match parse_secs(v) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        _ => Err(Expected("at least 1 second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(pairs)
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr(), "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            c.broadcast(),
            Some((Duration::from_secs(5), Duration::from_secs(20)))
        );
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.database_max_connections, 10);
    }

    #[test]
    fn port_is_the_container_convention() {
        assert_eq!(
            config(&[("PORT", "8080")]).unwrap().addr(),
            "0.0.0.0:8080".parse().unwrap()
        );
        let both = config(&[("PORT", "8080"), ("LEPTOS_SITE_ADDR", "127.0.0.1:9")]).unwrap();
        assert_eq!(both.addr(), "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = config(&[("DATABASE_URL", "mysql://u:pw@h/db")]).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(
            e.to_string().contains("expected a URL starting with"),
            "{e}"
        );
        let e = config(&[("PORT", "http")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid PORT="http": expected a port number (0-65535)"#
        );
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
        let e = config(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert_eq!(e.var, "LOG_FORMAT");
        assert!(e.expected.contains("json"), "{e}");
        assert_eq!(
            config(&[("DATABASE_MAX_CONNECTIONS", "0")])
                .unwrap_err()
                .var,
            "DATABASE_MAX_CONNECTIONS"
        );
        assert_eq!(
            config(&[("WS_PING_SECS", "0")]).unwrap_err().var,
            "WS_PING_SECS"
        );
    }

    #[test]
    fn zero_disables_broadcasts_and_fractions_work() {
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "0")]).unwrap().broadcast(),
            None
        );
        assert_eq!(
            config(&[("BROADCAST_MIN_SECS", "0.2"), ("BROADCAST_MAX_SECS", "0.5")])
                .unwrap()
                .broadcast(),
            Some((Duration::from_millis(200), Duration::from_millis(500)))
        );
    }

    #[test]
    fn origins_are_a_comma_separated_list() {
        let c = config(&[("ALLOWED_ORIGINS", "https://a.example/, https://b.example")]).unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn rates_are_count_per_period_and_zero_is_off() {
        let rate = |v: &str| parse_rate_inner(v).map_err(|e| e.to_string());
        assert_eq!(rate("60/10s"), Ok(Rate::new(60, Duration::from_secs(10))));
        assert_eq!(rate("100/1m"), Ok(Rate::new(100, Duration::from_secs(60))));
        assert_eq!(
            rate("5/500ms"),
            Ok(Rate::new(5, Duration::from_millis(500)))
        );
        assert_eq!(rate("3/s"), Ok(Rate::new(3, Duration::from_secs(1))));
        assert_eq!(rate("0"), Ok(None));
        assert_eq!(rate("0/10s"), Ok(None));
        for bad in ["fast", "10", "10/", "10/0s", "-1/1s", "10/1d", "1/-5s"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        let c = config(&[("RATE_POSTS_PER_IP", "0"), ("RATE_WS_FRAMES", "1000/1s")]).unwrap();
        assert_eq!(c.rate_posts_per_ip, Limit(None));
        assert_eq!(
            c.rate_ws_frames,
            Limit(Rate::new(1000, Duration::from_secs(1)))
        );
        let e = config(&[("RATE_WS_FRAMES", "lots")]).unwrap_err();
        assert_eq!(e.var, "RATE_WS_FRAMES");
        assert_eq!(
            config(&[("TRUSTED_PROXY_HOPS", "-1")]).unwrap_err().var,
            "TRUSTED_PROXY_HOPS"
        );
    }

    #[test]
    fn every_limit_has_a_default_that_is_on() {
        let c = config(&[]).unwrap();
        assert!(c.rate_posts_per_ip.0.is_some() && c.rate_posts_per_sender.0.is_some());
        assert!(c.rate_ws_connects_per_ip.0.is_some() && c.rate_ws_frames.0.is_some());
        assert!(c.rate_ws_control_frames.0.is_some());
        assert_eq!(c.trusted_proxy_hops, 0, "no proxy is trusted by default");
    }

    #[test]
    fn trust_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.auth, AuthMode::Sessions);
        assert!(c.allow_guests);
        assert_eq!(c.edit_window_secs, Duration::from_secs(600));
        assert_eq!(c.name_hold_days, Duration::from_secs(30 * 86_400));
        assert!(!config(&[("ALLOW_GUESTS", "false")]).unwrap().allow_guests);
        let e = config(&[("MODERATOR_TOKEN", "short-secret")]).unwrap_err();
        assert_eq!(e.var, "MODERATOR_TOKEN");
        assert!(!e.to_string().contains("short-secret"), "{e}");
        let e = config(&[("AUTH", "alb-oidc")]).unwrap_err();
        assert_eq!(e.var, "ALB_KEY_URL");
        let e =
            config(&[("AUTH", "alb-oidc"), ("ALB_KEY_URL", "https://k.example/x")]).unwrap_err();
        assert_eq!(e.var, "ALB_SIGNER");
        assert!(config(&[
            ("AUTH", "alb-oidc"),
            ("ALB_KEY_URL", "https://k.example/{kid}"),
            (
                "ALB_SIGNER",
                "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/chat/1"
            ),
        ])
        .is_ok());
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

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Cli::command().render_long_help().to_string();
        for arg in Cli::command().get_arguments() {
            if let Some(var) = arg.get_env() {
                assert!(help.contains(var.to_str().unwrap()), "{var:?} in --help");
            }
        }
        assert!(help.contains("[default: 20]"), "defaults are shown");
        assert!(help.contains("healthcheck"));
        for command in ["backup", "restore", "new-epoch"] {
            assert!(help.contains(command), "{command} in --help");
        }
    }

    fn invocation(args: &[&str]) -> Result<Invocation, ConfigError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn backup_needs_a_path_or_a_directory_and_retention_needs_the_directory() {
        let Ok(Invocation::Backup(b)) = invocation(&["chat", "backup", "b.db"]) else {
            panic!("a path is a backup");
        };
        assert_eq!(b.path.as_deref(), Some(std::path::Path::new("b.db")));
        let Ok(Invocation::Backup(b)) = invocation(&[
            "chat",
            "backup",
            "--dir",
            "backups",
            "--keep",
            "30",
            "--max-age-days",
            "7",
            "--database-url",
            "sqlite://x.db",
        ]) else {
            panic!("a directory with retention is a backup");
        };
        assert_eq!(b.keep, Some(30));
        assert_eq!(b.max_age_days, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(b.database.database_url, "sqlite://x.db");
        assert!(invocation(&["chat", "backup"]).is_err());
        assert!(invocation(&["chat", "backup", "b.db", "--keep", "3"]).is_err());
        assert!(invocation(&["chat", "backup", "--dir", "d", "--keep", "0"]).is_err());
        assert!(matches!(
            invocation(&["chat", "restore", "b.db"]),
            Ok(Invocation::Restore(_))
        ));
        assert!(matches!(
            invocation(&["chat", "new-epoch"]),
            Ok(Invocation::NewEpoch(_))
        ));
    }
}
