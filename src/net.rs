//! Who is asking: the client's address and scheme for every request,
//! worked out once by the router (a request extension, [`Peer`]) from the
//! TCP peer and,
//! only through the configured number of trusted proxies, from
//! `X-Forwarded-For` / `X-Forwarded-Proto`. Rate limits, logs, the origin
//! checks and `Secure` cookies all read it from there.

use std::net::{IpAddr, SocketAddr};

use app::api::http::Peer;
use axum::http::HeaderMap;

/// How many proxies in front of us to believe.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrustedHops(pub u8);

/// Each trusted proxy appends the address it received the request from to
/// `X-Forwarded-For`, so with `hops` proxies the client is the `hops`-th
/// entry from the right; what a client writes there itself is further left
/// and ignored. With no trusted proxies the TCP peer is the client.
pub fn peer(tcp: SocketAddr, headers: &HeaderMap, hops: TrustedHops) -> Peer {
    if hops.0 == 0 {
        return Peer {
            ip: tcp.ip(),
            https: false,
        };
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    let hops = usize::from(hops.0);
    let ip = if forwarded.len() >= hops {
        forwarded[forwarded.len() - hops]
    } else {
        // Fewer hops than configured: the farthest one we know.
        forwarded.first().copied().unwrap_or(tcp.ip())
    };
    // The nearest proxy sets the scheme it was reached over.
    let https = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    Peer { ip, https }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const TCP: &str = "10.0.0.9:5555";

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let p = peer(TCP.parse().unwrap(), &h, TrustedHops(0));
        assert_eq!(p.ip, "10.0.0.9".parse::<IpAddr>().unwrap());
        assert!(!p.https);
    }

    #[test]
    fn behind_one_proxy_the_last_entry_is_the_client_and_spoofs_are_ignored() {
        // The client claimed 6.6.6.6; the ALB appended what it saw.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let p = peer(TCP.parse().unwrap(), &h, TrustedHops(1));
        assert_eq!(p.ip, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert!(p.https);
        // Two proxies: the second from the right.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7, 10.1.1.1"),
        ]);
        let p = peer(TCP.parse().unwrap(), &h, TrustedHops(2));
        assert_eq!(p.ip, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert!(!p.https);
    }

    #[test]
    fn a_missing_or_garbled_header_falls_back_to_the_tcp_peer() {
        let p = peer(TCP.parse().unwrap(), &HeaderMap::new(), TrustedHops(1));
        assert_eq!(p.ip, "10.0.0.9".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(
            peer(TCP.parse().unwrap(), &h, TrustedHops(1)).ip,
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }
}
