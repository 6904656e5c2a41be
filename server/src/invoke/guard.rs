//! Outbound safety: which addresses a tool call may reach.
//!
//! A tool's URL is data anyone with write access stored, so calling it must not become a
//! way into the gateway's own network (SSRF). The check runs on the addresses a name
//! resolves to, in the HTTP client's resolver, so `localtest.me` (→ 127.0.0.1) is as
//! refused as `127.0.0.1`, and a connection only ever goes to an address that passed.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Cloud metadata services: refused even with `allow_private_networks`, unless listed in
/// `outbound_allow` (they hand out the machine's own credentials).
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// `outbound_allow`: addresses, ranges and host names called even when private.
#[derive(Clone, Debug, Default)]
pub struct OutboundAllow {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl OutboundAllow {
    pub fn parse(items: &[String]) -> Result<OutboundAllow, String> {
        let mut allow = OutboundAllow::default();
        for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                allow.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                allow.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                allow.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{item}` is not an IP address, a CIDR range or a host name"
                ));
            }
        }
        Ok(allow)
    }
}

/// The rules a call's target is checked against.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow_private: bool,
    allow: OutboundAllow,
}

/// Why a target was refused; found again in the client's error chain to tell the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "`{host}` resolves only to loopback, private, link-local or metadata addresses, which this gateway does not call (MCPGATEWAY_ALLOW_PRIVATE_NETWORKS, MCPGATEWAY_OUTBOUND_ALLOW)"
)]
pub struct Refused {
    pub host: String,
}

impl Guard {
    pub fn new(allow_private: bool, allow: OutboundAllow) -> Guard {
        Guard {
            allow_private,
            allow,
        }
    }

    /// May a connection to `ip`, reached through the name `host`, be made?
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.allow.hosts.contains(&host) || self.allow.nets.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        if METADATA.contains(&ip) {
            return false;
        }
        self.allow_private || is_public(ip)
    }

    /// Checks a URL's host when it is an IP literal (the resolver never sees those).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if self.permits(host, ip) {
            Ok(())
        } else {
            Err(Refused { host: host.into() })
        }
    }
}

/// Not loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation or reserved.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64 to anything
        }
    }
}

/// The HTTP client's resolver: the system's answers, minus the addresses the guard
/// refuses; none left is a [`Refused`] error.
pub struct GuardedResolver(pub Arc<Guard>);

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GuardedResolver")
    }
}

impl GuardedResolver {
    /// The system's addresses for `host` that the guard permits.
    async fn permitted(
        guard: Arc<Guard>,
        host: String,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
        let permitted: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| guard.permits(&host, a.ip()))
            .collect();
        if permitted.is_empty() {
            return Err(Box::new(Refused { host }));
        }
        Ok(permitted)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let permitted = Self::permitted(self.0.clone(), name.as_str().to_owned());
        Box::pin(async move { Ok(Box::new(permitted.await?.into_iter()) as Addrs) })
    }
}

/// The same resolver for reqwest 0.13, which rmcp's HTTP client (peer sessions) uses.
impl reqwest13::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest13::dns::Name) -> reqwest13::dns::Resolving {
        let permitted = Self::permitted(self.0.clone(), name.as_str().to_owned());
        Box::pin(async move { Ok(Box::new(permitted.await?.into_iter()) as reqwest13::dns::Addrs) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_refused_by_default() {
        let guard = Guard::default();
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!guard.permits("h", ip(addr)), "{addr}");
        }
        for addr in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert!(guard.permits("h", ip(addr)), "{addr}");
        }
    }

    #[test]
    fn the_switch_opens_private_ranges_but_not_metadata_which_only_the_list_opens() {
        let open = Guard::new(true, OutboundAllow::default());
        assert!(open.permits("h", ip("127.0.0.1")));
        assert!(open.permits("h", ip("10.0.0.1")));
        assert!(!open.permits("h", ip("169.254.169.254")));
        let listed = Guard::new(
            false,
            OutboundAllow::parse(&["10.0.0.0/8".into(), "Internal.Example".into()]).unwrap(),
        );
        assert!(listed.permits("h", ip("10.9.9.9")));
        assert!(!listed.permits("h", ip("192.168.0.1")));
        assert!(listed.permits("internal.example.", ip("192.168.0.1")));
        assert!(OutboundAllow::parse(&["not a host!".into()]).is_err());
    }

    #[test]
    fn ip_literals_are_checked_without_the_resolver() {
        let guard = Guard::default();
        let refused = guard
            .check_literal(&"http://[::1]:8080/x".parse().unwrap())
            .unwrap_err();
        assert_eq!(refused.host, "[::1]");
        assert!(
            guard
                .check_literal(&"http://127.0.0.1/".parse().unwrap())
                .is_err()
        );
        assert!(
            guard
                .check_literal(&"http://example.com/".parse().unwrap())
                .is_ok()
        );
    }
}
