//! The network guard of data connections: a connection's host is resolved here, every
//! address is checked, and the connection is then made to the checked address itself (not
//! to the name again), so that a name that resolves differently the second time cannot
//! slip past the check (DNS rebinding).
//!
//! Refused unless the allow list says otherwise: loopback (and the unspecified address,
//! which reaches the local machine), private ranges, link-local (where cloud metadata
//! services live), carrier-grade NAT, unique-local IPv6, and the known metadata addresses.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::{Error, Result};

/// How long resolving a host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What may be reached although the guard would refuse it: `IOPS_CONNECTIONS_ALLOW`, a
/// comma-separated list of host names, addresses and CIDR ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses `127.0.0.1,10.0.0.0/8,db.internal`. A name is allowed as written
    /// (case-insensitive), with whatever it resolves to.
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let mut list = Self::default();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if entry.contains('/') || !valid_host(entry) {
                return Err(format!(
                    "'{entry}' is not a host name, an address or a CIDR range"
                ));
            } else {
                list.hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(list)
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Whether `host` is a plausible host name or address (no spaces, no URL parts).
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}

/// Why an address is refused, or `None` when it is public.
fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refusal_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() || v6.is_unspecified() {
                Some("loopback")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                // Unique-local, which also holds AWS's metadata address fd00:ec2::254.
                Some("private")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() || ip.is_unspecified() || a == 0 {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("private")
    } else if ip == Ipv4Addr::new(100, 100, 100, 200) || ip == Ipv4Addr::new(192, 0, 0, 192) {
        Some("cloud metadata")
    } else if ip.is_broadcast() || ip.is_multicast() || ip.is_documentation() {
        Some("not routable")
    } else {
        None
    }
}

/// Resolves `host:port` and returns the address to connect to: the first one, when every
/// address the name has is allowed. [`Error::HostNotAllowed`] names the kind of address
/// refused (never which internal address it was); a name that does not resolve is
/// [`Error::Validation`].
pub(crate) async fn checked_address(
    allow: &AllowList,
    host: &str,
    port: u16,
) -> Result<SocketAddr> {
    if !valid_host(host) {
        return Err(Error::validation(
            "host must be a host name or an IP address",
        ));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| Error::validation(format!("the host {host} did not resolve in time")))?
            .map_err(|_| Error::validation(format!("the host {host} does not resolve")))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Error::validation(format!(
            "the host {host} does not resolve"
        )));
    }
    let named = allow.allows_host(bare);
    // Every address must pass: a name with one public and one private address could
    // otherwise be steered to the private one.
    for address in &addresses {
        let ip = address.ip();
        if let Some(why) = refusal(ip)
            && !named
            && !allow.allows_ip(ip)
        {
            return Err(Error::HostNotAllowed(format!(
                "{host} resolves to a {why} address; connections may only reach public \
                 addresses unless IOPS_CONNECTIONS_ALLOW allows it"
            )));
        }
    }
    Ok(addresses[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refusal(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert!(refusal(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[test]
    fn allow_lists_parse_and_apply() {
        let allow = AllowList::parse(" 127.0.0.1, 10.0.0.0/8 ,db.internal,").unwrap();
        assert!(allow.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(allow.allows_ip("10.9.9.9".parse().unwrap()));
        assert!(!allow.allows_ip("127.0.0.2".parse().unwrap()));
        assert!(allow.allows_host("DB.internal"));
        for bad in ["10.0.0.0/99", "http://x", "a b"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_address_connected_to_is_the_one_checked() {
        let none = AllowList::default();
        for host in ["127.0.0.1", "localhost", "0.0.0.0", "[::1]"] {
            assert!(
                matches!(
                    checked_address(&none, host, 5432).await,
                    Err(Error::HostNotAllowed(_))
                ),
                "{host}"
            );
        }
        let loopback = AllowList::parse("127.0.0.1").unwrap();
        assert_eq!(
            checked_address(&loopback, "127.0.0.1", 3306).await.unwrap(),
            "127.0.0.1:3306".parse().unwrap()
        );
        assert!(matches!(
            checked_address(&none, "bad host", 1).await,
            Err(Error::Validation(_))
        ));
    }
}
