//! Who is on the other end: the client's address and whether it reached us over TLS.
//! Forwarding headers are believed only from a configured trusted proxy; anyone else
//! could write them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::TrustedProxies;

pub struct Client {
    pub ip: IpAddr,
    /// The client's connection was TLS (as a trusted proxy says; the gateway itself
    /// serves plain HTTP).
    pub https: bool,
}

/// The client behind `peer`. From a trusted proxy: the right-most `X-Forwarded-For`
/// address that is not itself a trusted proxy (entries left of it could be forged by the
/// client), and `X-Forwarded-Proto`.
pub fn client(peer: Option<SocketAddr>, headers: &HeaderMap, proxies: &TrustedProxies) -> Client {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip().to_canonical());
    if !proxies.contains(peer) {
        return Client {
            ip: peer,
            https: false,
        };
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut ip = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address ends the chain we can follow.
        let Ok(hop) = hop.parse::<IpAddr>() else {
            break;
        };
        ip = hop.to_canonical();
        if !proxies.contains(ip) {
            break;
        }
    }
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    Client { ip, https }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &str) -> TrustedProxies {
        serde_json::from_value(serde_json::json!(list)).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = client(Some(peer), &forged, &TrustedProxies::default());
        assert_eq!(c.ip, peer.ip());
        assert!(!c.https);

        let trusted = proxies("10.0.0.0/24");
        let chain = headers(&[
            ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = client(Some(peer), &chain, &trusted);
        assert_eq!(
            c.ip,
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the right-most untrusted hop; the client could have written the rest"
        );
        assert!(c.https);

        let c = client(Some(peer), &headers(&[]), &trusted);
        assert_eq!(c.ip, peer.ip(), "no header: the proxy itself");
        let c = client(
            Some(peer),
            &headers(&[("x-forwarded-for", "junk, 10.0.0.8")]),
            &trusted,
        );
        assert_eq!(c.ip, "10.0.0.8".parse::<IpAddr>().unwrap());
    }
}
