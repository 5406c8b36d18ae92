//! Where a clinic's outbox messages go: its webhook (URL and signing secret), or the log when
//! it has none. SMS and e-mail providers are reached through the webhook.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::InvalidValue;

/// The longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

/// An absolute `http` or `https` URL without credentials, to which messages are POSTed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Parses a URL a receiver can be reached at.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let raw = raw.trim();
        if raw.len() > MAX_URL_LEN {
            return Err(InvalidValue::new(format!(
                "must be at most {MAX_URL_LEN} characters"
            )));
        }
        let url = url::Url::parse(raw)
            .map_err(|e| InvalidValue::new(format!("must be an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidValue::new("must be an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue::new("must name a host"));
        }
        // Credentials in the URL would be stored and shown in settings; receivers authenticate
        // the sender by the signature instead.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue::new(
                "must not carry a user name or password; verify the signature instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(InvalidValue::new("must not have a #fragment"));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.0.as_str()).finish()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A webhook URL's host: a name to resolve, or an address written in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A DNS name (lower-case).
    Name(&'a str),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl WebhookUrl {
    /// Whether the URL is plain `http`.
    pub fn is_plain_http(&self) -> bool {
        self.0.scheme() == "http"
    }

    /// The host to connect to.
    pub fn host(&self) -> Host<'_> {
        match self.0.host() {
            Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => Host::Name(name),
            // `parse` refuses URLs without a host.
            None => Host::Name(""),
        }
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `address/prefix` or a bare address.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new(format!("`{raw}` is not an IP address or CIDR network"));
        let (addr, prefix) = match raw.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| invalid())?,
            None => max,
        };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in the network (an IPv4 network never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: u128, ip: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    net & mask == ip & mask
}

/// Why an address is not a public one, or `None` for a public unicast address. IPv4 addresses
/// embedded in IPv6 ones (mapped, NAT64, 6to4) are judged as the IPv4 address they carry.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private (RFC 1918)",
        (172, 16..=31, _) => "private (RFC 1918)",
        (192, 168, _) => "private (RFC 1918)",
        (169, 254, _) => "link-local (cloud metadata lives here)",
        (100, 64..=127, _) => "shared address space (CGNAT, RFC 6598)",
        (192, 0, 0) => "IETF protocol assignments",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let bits = ip.to_bits();
    let segments = ip.segments();
    let embedded = |shift: u32| Ipv4Addr::from_bits((bits >> shift) as u32);
    Some(match segments {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address inside.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return non_public_v4(embedded(0)),
        [0x2002, ..] => return non_public_v4(embedded(80)),
        // IPv4-compatible (::a.b.c.d, deprecated) addresses.
        [0, 0, 0, 0, 0, 0, _, _] => "IPv4-compatible (deprecated)",
        [s, ..] if s & 0xfe00 == 0xfc00 => "unique local (ULA)",
        [s, ..] if s & 0xffc0 == 0xfe80 => "link-local",
        [s, ..] if s & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        [s, ..] if s & 0xff00 == 0xff00 => "multicast",
        [0x2001, 0x0db8, ..] => "documentation",
        [0x2001, 0, ..] => "Teredo tunnel",
        [0x0100, 0, 0, 0, ..] => "discard-only",
        _ => return None,
    })
}

/// Which webhook receivers the server may call: the operator's rules, applied when a clinic
/// sets its URL and again to every address a name resolves to when a message is delivered.
///
/// By default only public unicast addresses are reached, so a tenant's admin cannot make the
/// server call its own loopback, the internal network or a cloud metadata service. The
/// operator may allow named hosts and networks (a relay on the internal network, or a test
/// receiver on loopback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Whether plain `http` is refused (the production profile).
    pub require_https: bool,
    /// Host names (exact, lower-case) reached whatever they resolve to.
    pub allowed_hosts: Vec<String>,
    /// Networks reached although they are not public.
    pub allowed_networks: Vec<IpNetwork>,
}

impl Default for WebhookPolicy {
    /// https only, public addresses only.
    fn default() -> Self {
        Self {
            require_https: true,
            allowed_hosts: Vec::new(),
            allowed_networks: Vec::new(),
        }
    }
}

impl WebhookPolicy {
    /// A policy with the operator's allow-list: each entry an IP address, a CIDR network or a
    /// host name.
    pub fn new(require_https: bool, allow: &[String]) -> Result<Self, InvalidValue> {
        let mut policy = Self {
            require_https,
            ..Self::default()
        };
        for entry in allow.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if entry.contains('/') || entry.parse::<IpAddr>().is_ok() {
                policy.allowed_networks.push(IpNetwork::parse(entry)?);
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                policy.allowed_hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(InvalidValue::new(format!(
                    "`{entry}` is not a host name, IP address or CIDR network"
                )));
            }
        }
        Ok(policy)
    }

    /// Whether the operator allowed this host name by name.
    pub fn allows_host(&self, name: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether the operator allowed this very host: by name, or its written address by network.
    fn explicitly_allowed(&self, host: Host<'_>) -> bool {
        match host {
            Host::Name(name) => self.allows_host(name),
            Host::Ip(ip) => self.allowed_networks.iter().any(|n| n.contains(ip)),
        }
    }

    /// Checks one address: public, or in an allowed network.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), InvalidValue> {
        match non_public_range(ip) {
            Some(_) if self.allowed_networks.iter().any(|n| n.contains(ip)) => Ok(()),
            Some(range) => Err(InvalidValue::new(format!(
                "{ip} is a {range} address, which webhooks may not reach \
                 unless the operator allows it"
            ))),
            None => Ok(()),
        }
    }

    /// Checks a URL before any name in it is resolved: the scheme, an address written in the
    /// URL, and names that mean loopback by definition (`localhost`, RFC 6761). Other names are
    /// checked after resolution, at delivery ([`WebhookPolicy::check_resolved`]).
    ///
    /// Plain `http` to a host the operator allowed explicitly (by name, or an address in an
    /// allowed network) passes even where https is required: a relay on the internal network
    /// often speaks plain http, and the operator vouches for that network.
    pub fn check_url(&self, url: &WebhookUrl) -> Result<(), InvalidValue> {
        if self.require_https && url.is_plain_http() && !self.explicitly_allowed(url.host()) {
            return Err(InvalidValue::new(
                "must be an https URL (plain http only to hosts the operator allows)",
            ));
        }
        match url.host() {
            Host::Ip(ip) => self.check_address(ip),
            Host::Name(name) if self.allows_host(name) => Ok(()),
            Host::Name(name)
                if name.trim_end_matches('.') == "localhost"
                    || name.trim_end_matches('.').ends_with(".localhost") =>
            {
                self.check_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    .map_err(|_| {
                        InvalidValue::new(format!(
                            "{name} is a loopback name, which webhooks may not reach \
                         unless the operator allows it"
                        ))
                    })
            }
            Host::Name(_) => Ok(()),
        }
    }

    /// Checks every address `name` resolved to; one forbidden address refuses them all, so a
    /// name cannot smuggle an internal address in among public ones.
    pub fn check_resolved(&self, name: &str, addresses: &[IpAddr]) -> Result<(), InvalidValue> {
        if self.allows_host(name) {
            return Ok(());
        }
        if addresses.is_empty() {
            return Err(InvalidValue::new(format!("{name} resolved to no address")));
        }
        addresses
            .iter()
            .try_for_each(|ip| self.check_address(*ip))
            .map_err(|e| InvalidValue::new(format!("{name} resolved to {}", e.0)))
    }
}

/// The prefix of every signing secret, so a leaked one is recognisable in a secret scanner.
pub const SECRET_PREFIX: &str = "whsec_";

/// The key a clinic's webhook bodies are signed with (HMAC-SHA256). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A secret from 32 random bytes (the caller brings the randomness).
    pub fn from_random(bytes: [u8; 32]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{SECRET_PREFIX}{hex}"))
    }

    /// A stored secret: the prefix and 64 lowercase hex digits.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let hex = raw
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| InvalidValue::new("not a webhook secret"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(InvalidValue::new("not a webhook secret"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself: the HMAC key, shown to an admin once when made.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first characters, enough for an admin to tell secrets apart.
    pub fn hint(&self) -> String {
        format!("{}…", &self.0[..SECRET_PREFIX.len() + 4])
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({})", self.hint())
    }
}

/// A clinic's webhook: where to POST and what to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// The receiver.
    pub url: WebhookUrl,
    /// The signing key.
    pub secret: WebhookSecret,
}

/// Where a clinic's messages are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The structured log: the default when a clinic has no webhook.
    Log,
    /// The clinic's webhook.
    Webhook(WebhookEndpoint),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert_eq!(
            WebhookUrl::parse(" https://hooks.example/clinic?x=1 ")
                .expect("valid")
                .as_str(),
            "https://hooks.example/clinic?x=1"
        );
        // Parsing checks the shape only; where a URL may point is the policy's business.
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        for bad in [
            "",
            "hooks.example/clinic",
            "ftp://hooks.example/",
            "https://user:pw@hooks.example/",
            "https://hooks.example/#frag",
            "file:///etc/passwd",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad} is refused");
        }
        assert!(WebhookUrl::parse(&format!("https://h.example/{}", "a".repeat(3000))).is_err());
    }

    fn url(raw: &str) -> WebhookUrl {
        WebhookUrl::parse(raw).expect("valid shape")
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("an address")
    }

    #[test]
    fn internal_addresses_are_not_public_and_public_ones_are() {
        for internal in [
            "0.0.0.0",
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(
                non_public_range(ip(internal)).is_some(),
                "{internal} is internal"
            );
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(non_public_range(ip(public)), None, "{public} is public");
        }
    }

    #[test]
    fn the_default_policy_refuses_plain_http_and_internal_targets_when_the_url_is_set() {
        let policy = WebhookPolicy::default();
        assert!(policy.check_url(&url("https://hooks.example/x")).is_ok());
        assert!(policy.check_url(&url("https://93.184.216.34/x")).is_ok());
        let err = policy
            .check_url(&url("http://hooks.example/x"))
            .expect_err("plain http");
        assert!(err.0.contains("https"), "{err}");
        for bad in [
            "https://127.0.0.1:9/hook",
            "https://2130706433/hook",
            "https://[::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/hook",
            "https://localhost/hook",
            "https://api.localhost/hook",
            "https://0.0.0.0/hook",
        ] {
            assert!(policy.check_url(&url(bad)).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn development_allows_plain_http_to_public_hosts_only() {
        let policy = WebhookPolicy::new(false, &[]).expect("valid");
        assert!(policy.check_url(&url("http://hooks.example/x")).is_ok());
        assert!(policy.check_url(&url("http://127.0.0.1:9/hook")).is_err());
    }

    #[test]
    fn the_allow_list_admits_named_hosts_and_networks() {
        let allow = [
            "127.0.0.1".into(),
            "10.8.0.0/16".into(),
            "Relay.Internal".into(),
        ];
        let policy = WebhookPolicy::new(true, &allow).expect("valid");
        assert!(policy.check_url(&url("https://127.0.0.1:9/hook")).is_ok());
        assert!(policy.check_url(&url("https://localhost:9/hook")).is_ok());
        // A relay the operator allowed may speak plain http even in production; others not.
        assert!(policy.check_url(&url("http://127.0.0.1:9/hook")).is_ok());
        assert!(policy.check_url(&url("http://relay.internal/hook")).is_ok());
        assert!(policy.check_url(&url("http://hooks.example/hook")).is_err());
        assert!(policy.check_url(&url("https://127.0.0.2/hook")).is_err());
        assert!(policy.check_url(&url("https://10.8.3.4/hook")).is_ok());
        assert!(policy.check_url(&url("https://10.9.0.1/hook")).is_err());
        // An allowed name is reached whatever it resolves to; others by their addresses.
        assert!(
            policy
                .check_resolved("relay.internal", &[ip("10.200.0.1")])
                .is_ok()
        );
        assert!(
            policy
                .check_resolved("hooks.example", &[ip("10.8.0.9")])
                .is_ok()
        );
        assert!(
            policy
                .check_resolved("hooks.example", &[ip("10.200.0.1")])
                .is_err()
        );
        for bad in ["10.0.0.0/33", "not a host!", "::1/129"] {
            assert!(WebhookPolicy::new(true, &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_resolved_address_must_pass() {
        let policy = WebhookPolicy::default();
        assert!(
            policy
                .check_resolved("hooks.example", &[ip("93.184.216.34")])
                .is_ok()
        );
        let err = policy
            .check_resolved("rebind.example", &[ip("93.184.216.34"), ip("127.0.0.1")])
            .expect_err("one internal address spoils the answer");
        assert!(
            err.0.contains("127.0.0.1") && err.0.contains("loopback"),
            "{err}"
        );
        assert!(policy.check_resolved("nothing.example", &[]).is_err());
    }

    #[test]
    fn secrets_round_trip_and_hide_in_debug() {
        let secret = WebhookSecret::from_random([0xab; 32]);
        assert_eq!(secret.expose().len(), SECRET_PREFIX.len() + 64);
        assert_eq!(WebhookSecret::parse(secret.expose()), Ok(secret.clone()));
        assert!(!format!("{secret:?}").contains(&"ab".repeat(8)));
        assert_eq!(secret.hint(), "whsec_abab…");
        assert!(WebhookSecret::parse("whsec_short").is_err());
        assert!(WebhookSecret::parse(&"ab".repeat(32)).is_err());
    }
}
