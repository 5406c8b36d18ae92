//! The client's address behind reverse proxies: `X-Forwarded-For` (or RFC 7239 `Forwarded`)
//! is believed only from proxies the operator lists, and only as far as it was written by them.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::web;
use clinicflow_domain::IpNetwork;

/// The reverse proxies whose forwarding headers are believed; registered as app data by the
/// server (`CLINICFLOW_HTTP_TRUSTED_PROXIES`). Without it no header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNetwork>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted proxy; then the hops of
    /// `forwarded_for` (oldest first) walked from the right past every trusted proxy. The
    /// first untrusted hop is the client: hops further left were written by the client itself
    /// and prove nothing. A hop that is not an address ends the walk at the last trusted one.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        for hop in forwarded_for.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return client;
            }
        }
        client
    }
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// `203.0.113.7:4711`, or quoted (RFC 7239).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

/// The hops of every `X-Forwarded-For` header in order, else the `for=` of every `Forwarded`
/// element.
fn hops(req: &HttpRequest) -> Vec<String> {
    let values = |name: &str| -> Vec<String> {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff;
    }
    values("forwarded")
        .iter()
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| value.trim().to_owned())
                })
                // An element without `for=` names no client: it ends the walk like junk.
                .unwrap_or_default()
        })
        .collect()
}

/// The client's IP address: the connection's peer, or the forwarded client when the peer is
/// a trusted proxy.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let client = match req.app_data::<web::Data<TrustedProxies>>() {
        Some(trusted) if !trusted.0.is_empty() => {
            let hops = hops(req);
            let hops: Vec<&str> = hops.iter().map(String::as_str).collect();
            trusted.client(peer, &hops)
        }
        _ => peer,
    };
    Some(client.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("an address")
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(
            nets.iter()
                .map(|n| IpNetwork::parse(n).expect("a network"))
                .collect(),
        )
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(proxies.client(peer, &["203.0.113.7"]), ip("203.0.113.7"));
        // The client wrote the left part itself; the proxies appended the right.
        assert_eq!(
            proxies.client(peer, &["1.2.3.4", "203.0.113.7", "10.0.0.9"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxies.client(peer, &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(peer, &["\"203.0.113.7:80\""]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn headers_from_an_untrusted_peer_or_junk_hops_are_not_believed() {
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client(ip("198.51.100.9"), &["203.0.113.7"]),
            ip("198.51.100.9")
        );
        assert_eq!(proxies.client(ip("10.0.0.2"), &["unknown"]), ip("10.0.0.2"));
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &["203.0.113.7", "_hidden", "10.0.0.3"]),
            ip("10.0.0.3")
        );
        // Only proxies all the way: the leftmost hop is as far as anyone can tell.
        assert_eq!(
            proxies.client(ip("10.0.0.2"), &["10.0.0.4", "10.0.0.3"]),
            ip("10.0.0.4")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &["1.1.1.1"]),
            ip("10.0.0.2")
        );
    }
}
