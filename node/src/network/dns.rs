//! Bootstrap addresses by DNS name (`/dns4/<host>/tcp/<port>/p2p/<id>`, `/dns6/…`,
//! `/dns/…`), resolved by the node before dialing.
//!
//! libp2p is built without its `dns` transport (it would pull in the hickory resolver and
//! its own caching); instead the worker resolves a bootstrap peer's DNS addresses with the
//! system resolver (`tokio::net::lookup_host`, i.e. `getaddrinfo` on a blocking thread, so
//! `/etc/hosts`, Docker's and Kubernetes' DNS all apply) every time it redials that peer,
//! so a peer whose container restarted with a new IP address is found again. `/dns4` keeps
//! only IPv4 answers, `/dns6` only IPv6, `/dns` both. `/dnsaddr` (TXT records) is not
//! supported and refused by [`super::NetworkConfig::validate`].
//!
//! Bounds: one resolution in flight per bootstrap peer, each limited to
//! [`RESOLVE_TIMEOUT_MS`]; at most [`RESOLVED_ADDRS_MAX`] addresses kept per DNS address.

use std::net::IpAddr;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// Longest wait for one name's resolution, milliseconds.
pub const RESOLVE_TIMEOUT_MS: u64 = 5_000;
/// Most IP addresses kept from one name's resolution.
pub const RESOLVED_ADDRS_MAX: usize = 8;

/// Whether `addr` names its host by DNS (`/dns`, `/dns4`, `/dns6` or `/dnsaddr`).
pub fn is_dns(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(
            p,
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
        )
    })
}

/// Whether `addr` uses `/dnsaddr` (not supported).
pub fn is_dnsaddr(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Dnsaddr(_)))
}

/// `addr` with its first DNS component replaced by `ip`, or `None` if `ip` is not of the
/// family the component asks for (`/dns4`: IPv4, `/dns6`: IPv6, `/dns`: either).
pub fn with_ip(addr: &Multiaddr, ip: IpAddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut replaced = false;
    for p in addr.iter() {
        if replaced {
            out.push(p);
            continue;
        }
        let ip_proto = match (&p, ip) {
            (Protocol::Dns4(_) | Protocol::Dns(_), IpAddr::V4(v4)) => Some(Protocol::Ip4(v4)),
            (Protocol::Dns6(_) | Protocol::Dns(_), IpAddr::V6(v6)) => Some(Protocol::Ip6(v6)),
            (Protocol::Dns4(_) | Protocol::Dns6(_), _) => return None,
            _ => None,
        };
        match ip_proto {
            Some(ip_proto) => {
                out.push(ip_proto);
                replaced = true;
            }
            None => out.push(p),
        }
    }
    replaced.then_some(out)
}

/// The host name and TCP port of a DNS address.
fn host_port(addr: &Multiaddr) -> Option<(String, u16)> {
    let mut host = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) if host.is_none() => {
                host = Some(h.to_string())
            }
            Protocol::Tcp(p) if port.is_none() => port = Some(p),
            _ => {}
        }
    }
    Some((host?, port?))
}

/// Resolves the DNS address `addr` (without `/p2p`) to IP addresses, each as `addr` with the
/// name replaced; empty if the name does not resolve (within [`RESOLVE_TIMEOUT_MS`]) to an
/// address of the asked family. At most [`RESOLVED_ADDRS_MAX`], without repeats.
pub async fn resolve(addr: &Multiaddr) -> Vec<Multiaddr> {
    let Some((host, port)) = host_port(addr) else {
        return Vec::new();
    };
    let lookup = tokio::time::timeout(
        Duration::from_millis(RESOLVE_TIMEOUT_MS),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    let ips: Vec<IpAddr> = match lookup {
        Ok(Ok(found)) => found.map(|sa| sa.ip()).collect(),
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "bootstrap name does not resolve");
            return Vec::new();
        }
        Err(_) => {
            tracing::debug!(%addr, "bootstrap name resolution timed out");
            return Vec::new();
        }
    };
    let mut out: Vec<Multiaddr> = Vec::new();
    for ip in ips {
        if let Some(a) = with_ip(addr, ip) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.len() >= RESOLVED_ADDRS_MAX {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_replaced_by_addresses_of_the_asked_family() {
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let v6: IpAddr = "fd00::7".parse().unwrap();
        let a = ma("/dns4/validator-1/tcp/26656");
        assert!(is_dns(&a) && !is_dnsaddr(&a));
        assert_eq!(with_ip(&a, v4), Some(ma("/ip4/10.0.0.7/tcp/26656")));
        assert_eq!(with_ip(&a, v6), None);
        let b = ma("/dns6/validator-1/tcp/26656");
        assert_eq!(with_ip(&b, v6), Some(ma("/ip6/fd00::7/tcp/26656")));
        assert_eq!(with_ip(&b, v4), None);
        let c = ma("/dns/validator-1/tcp/1");
        assert_eq!(with_ip(&c, v4), Some(ma("/ip4/10.0.0.7/tcp/1")));
        assert_eq!(with_ip(&c, v6), Some(ma("/ip6/fd00::7/tcp/1")));
        let plain = ma("/ip4/1.2.3.4/tcp/1");
        assert!(!is_dns(&plain));
        assert_eq!(with_ip(&plain, v4), None);
        assert!(is_dnsaddr(&ma("/dnsaddr/bootstrap.example")));
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let got = resolve(&ma("/dns4/localhost/tcp/4242")).await;
        assert_eq!(got, vec![ma("/ip4/127.0.0.1/tcp/4242")]);
        // A name under the reserved `.invalid` top-level domain never resolves.
        assert!(
            resolve(&ma("/dns4/cairn-test.invalid/tcp/1"))
                .await
                .is_empty()
        );
    }
}
