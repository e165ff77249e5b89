//! Rate limits: how much one client may ask of everyone's server. Posts per
//! client IP and per sender, WebSocket connects per IP (shared by every
//! request of this instance), and frames per socket (owned by the socket).
//! Each limit is a GCRA quota from `governor`: `count` per `per`, with a
//! burst of `count`; a limit of `None` is off (load tests).
//!
//! Keyed limits are per instance: behind a load balancer a client spread
//! over N instances gets N times the quota, which is fine for their purpose
//! (stop one client from drowning the others, not meter usage).

use std::{hash::Hash, net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota,
};

/// `count` events per `per`, bursting up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    pub fn new(count: u32, per: Duration) -> Option<Self> {
        let count = NonZeroU32::new(count)?;
        (!per.is_zero()).then_some(Self { count, per })
    }

    fn quota(&self) -> Quota {
        let every = self.per / self.count.get();
        Quota::with_period(every.max(Duration::from_nanos(1)))
            .expect("a positive period")
            .allow_burst(self.count)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.per.as_secs_f64())
    }
}

/// The instance-wide limits (each `None`: off).
#[derive(Debug, Clone, Default)]
pub struct LimitSettings {
    pub posts_per_ip: Option<Rate>,
    pub posts_per_sender: Option<Rate>,
    pub connects_per_ip: Option<Rate>,
    /// Every frame a socket sends (text, binary, ping).
    pub frames_per_socket: Option<Rate>,
    /// `subscribe`, `unsubscribe` and `hello`: the frames that cost the
    /// server work (a backlog read, presence updates).
    pub control_frames_per_socket: Option<Rate>,
}

/// Refused: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl Wait {
    /// Whole milliseconds, at least 1 (for `Retry-After` and frames).
    pub fn millis(self) -> u64 {
        (self.0.as_millis() as u64).max(1)
    }
}

struct Keyed<K: Hash + Eq + Clone>(DefaultKeyedRateLimiter<K>);

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate) -> Self {
        Self(DefaultKeyedRateLimiter::keyed(rate.quota()))
    }

    fn check(&self, key: &K) -> Result<(), Wait> {
        self.0
            .check_key(key)
            .map_err(|not_until| Wait(not_until.wait_time_from(DefaultClock::default().now())))
    }

    fn sweep(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

/// The keyed limits of one instance.
pub struct Limits {
    posts_per_ip: Option<Keyed<IpAddr>>,
    posts_per_sender: Option<Keyed<String>>,
    connects_per_ip: Option<Keyed<IpAddr>>,
    settings: LimitSettings,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            posts_per_ip: settings.posts_per_ip.map(Keyed::new),
            posts_per_sender: settings.posts_per_sender.map(Keyed::new),
            connects_per_ip: settings.connects_per_ip.map(Keyed::new),
            settings,
        }
    }

    /// A post from `ip` (if known) signed `sender`. Names are compared
    /// case-insensitively, so "Bob" and "bob" share a quota.
    pub fn post(&self, ip: Option<IpAddr>, sender: &str) -> Result<(), Wait> {
        if let (Some(limit), Some(ip)) = (&self.posts_per_ip, ip) {
            limit.check(&client_key(ip))?;
        }
        if let Some(limit) = &self.posts_per_sender {
            limit.check(&sender.to_lowercase())?;
        }
        Ok(())
    }

    /// A WebSocket connect from `ip`.
    pub fn connect(&self, ip: Option<IpAddr>) -> Result<(), Wait> {
        match (&self.connects_per_ip, ip) {
            (Some(limit), Some(ip)) => limit.check(&client_key(ip)),
            _ => Ok(()),
        }
    }

    /// A fresh limiter for one socket's frames.
    pub fn frames(&self) -> FrameLimits {
        FrameLimits {
            all: self
                .settings
                .frames_per_socket
                .map(|r| Box::new(DefaultDirectRateLimiter::direct(r.quota()))),
            control: self
                .settings
                .control_frames_per_socket
                .map(|r| Box::new(DefaultDirectRateLimiter::direct(r.quota()))),
        }
    }

    /// Forgets keys whose quota is full again, so memory follows the
    /// clients of the last moments, not every client ever seen.
    pub fn sweep(&self) {
        if let Some(l) = &self.posts_per_ip {
            l.sweep();
        }
        if let Some(l) = &self.posts_per_sender {
            l.sweep();
        }
        if let Some(l) = &self.connects_per_ip {
            l.sweep();
        }
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.posts_per_ip.as_ref().map_or(0, |l| l.0.len())
            + self.posts_per_sender.as_ref().map_or(0, |l| l.0.len())
            + self.connects_per_ip.as_ref().map_or(0, |l| l.0.len())
    }
}

/// The key a client's address is limited under: an IPv4 address, or an
/// IPv6 /64 (one subscriber's network, which hands out addresses freely).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

/// One socket's frame quotas.
pub struct FrameLimits {
    all: Option<Box<DefaultDirectRateLimiter>>,
    control: Option<Box<DefaultDirectRateLimiter>>,
}

impl FrameLimits {
    /// Any frame arrived.
    pub fn frame(&self) -> Result<(), Wait> {
        check(self.all.as_deref())
    }

    /// A control frame (subscribe, unsubscribe, hello) arrived.
    pub fn control(&self) -> Result<(), Wait> {
        check(self.control.as_deref())
    }
}

fn check(limiter: Option<&DefaultDirectRateLimiter>) -> Result<(), Wait> {
    match limiter {
        Some(l) => l
            .check()
            .map_err(|not_until| Wait(not_until.wait_time_from(DefaultClock::default().now()))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64) -> Option<Rate> {
        Rate::new(count, Duration::from_secs(secs))
    }

    #[test]
    fn zero_turns_a_limit_off() {
        assert_eq!(Rate::new(0, Duration::from_secs(1)), None);
        assert_eq!(Rate::new(1, Duration::ZERO), None);
        let limits = Limits::new(LimitSettings::default());
        for _ in 0..10_000 {
            assert!(limits.post(Some([1, 2, 3, 4].into()), "a").is_ok());
        }
    }

    #[test]
    fn posts_are_limited_per_ip_and_per_sender_with_a_wait() {
        let limits = Limits::new(LimitSettings {
            posts_per_ip: rate(5, 10),
            posts_per_sender: rate(3, 10),
            ..Default::default()
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(limits.post(Some(a), "Alice").is_ok());
        }
        // The sender's burst is spent, whatever the case or the address.
        let wait = limits.post(Some(b), "alice").unwrap_err();
        assert!(
            wait.0 > Duration::ZERO && wait.0 <= Duration::from_secs(4),
            "{wait:?}"
        );
        // The address has two left, for other names.
        assert!(limits.post(Some(a), "bob").is_ok());
        assert!(limits.post(Some(a), "carol").is_ok());
        assert!(limits.post(Some(a), "dave").is_err());
        // Other addresses and names are untouched.
        assert!(limits.post(Some(b), "erin").is_ok());
    }

    #[test]
    fn an_ipv6_network_shares_one_quota() {
        let limits = Limits::new(LimitSettings {
            connects_per_ip: rate(2, 60),
            ..Default::default()
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.connect(Some(a)).is_ok());
        assert!(limits.connect(Some(b)).is_ok());
        assert!(limits.connect(Some(a)).is_err(), "same /64");
        assert!(limits.connect(Some(c)).is_ok(), "another /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn frames_are_limited_per_socket() {
        let limits = Limits::new(LimitSettings {
            frames_per_socket: rate(4, 10),
            control_frames_per_socket: rate(2, 10),
            ..Default::default()
        });
        let one = limits.frames();
        let two = limits.frames();
        assert!(one.control().is_ok() && one.control().is_ok());
        assert!(one.control().is_err());
        assert!(two.control().is_ok(), "sockets have quotas of their own");
        for _ in 0..4 {
            assert!(one.frame().is_ok());
        }
        assert!(one.frame().is_err());
    }

    #[test]
    fn sweeping_forgets_clients_whose_quota_refilled() {
        let limits = Limits::new(LimitSettings {
            connects_per_ip: Rate::new(100, Duration::from_millis(100)),
            ..Default::default()
        });
        for i in 0..1000u32 {
            limits.connect(Some(IpAddr::from(i.to_be_bytes()))).unwrap();
        }
        assert_eq!(limits.tracked(), 1000);
        std::thread::sleep(Duration::from_millis(150));
        limits.sweep();
        assert_eq!(limits.tracked(), 0);
    }
}
