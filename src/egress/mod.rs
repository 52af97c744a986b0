//! The egress policy: which hosts outbound calls (provider tests) may reach, set by the operator
//! alone through `LANYARD_EGRESS_ALLOW` and `LANYARD_EGRESS_MODE`, and the name servers that
//! outbound calls ask (`LANYARD_EGRESS_NAMESERVERS`).

mod address;
mod client;
mod identity_provider;

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use url::{Host, Url};

pub use address::non_public_reason;
pub use client::{EgressError, LOOKUP_TIMEOUT, OutboundBuildError, OutboundClient, OutboundResponse};
pub use identity_provider::IdentityProviderClient;
/// The header types of outbound requests, so that `providers/` can build them without naming
/// the HTTP client (the only door out is this room).
pub use reqwest::header;

/// `public`: public addresses plus the allow list; `allowlist`: only the allow list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EgressMode {
    #[default]
    Public,
    Allowlist,
}

/// What one `LANYARD_EGRESS_ALLOW` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowTarget {
    Network(IpNet),
    Host(String),
}

/// One `LANYARD_EGRESS_ALLOW` entry: a network or host, on every port or on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub target: AllowTarget,
    /// With a port, the entry allows that port only; the host's other ports stay as the mode
    /// leaves them.
    pub port: Option<u16>,
}

impl AllowEntry {
    /// An unknown port (`None`) matches only entries without a port: a port-limited entry must
    /// never widen what a call whose port is not known may reach.
    fn covers_port(&self, port: Option<u16>) -> bool {
        self.port.is_none() || self.port == port
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub mode: EgressMode,
    pub allow: Vec<AllowEntry>,
    /// `LANYARD_EGRESS_NAMESERVERS`: where outbound calls look names up; empty for the
    /// system's name servers.
    pub nameservers: Vec<SocketAddr>,
}

impl crate::domain::PlainHttpHosts for EgressPolicy {
    fn allows_plain_http(&self, url: &Url) -> bool {
        EgressPolicy::allows_plain_http(self, url)
    }
}

impl EgressPolicy {
    /// Parses the allow list (comma-separated CIDRs, IP addresses or host names, the last two
    /// optionally with a port) and the mode.
    pub fn parse(allow: &str, mode: &str) -> Result<Self, String> {
        let mode = match mode.trim() {
            "" | "public" => EgressMode::Public,
            "allowlist" => EgressMode::Allowlist,
            other => {
                return Err(format!(
                    "LANYARD_EGRESS_MODE must be `public` or `allowlist`, not `{other}`"
                ));
            }
        };
        let allow = allow
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy {
            mode,
            allow,
            nameservers: Vec::new(),
        })
    }

    /// The policy with `LANYARD_EGRESS_NAMESERVERS` (comma-separated `IP:PORT`; empty for the
    /// system's name servers).
    pub fn with_nameservers(self, nameservers: &str) -> Result<Self, String> {
        let nameservers = nameservers
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<SocketAddr>()
                    .ok()
                    .filter(|address| address.port() != 0)
                    .ok_or_else(|| {
                        format!(
                            "LANYARD_EGRESS_NAMESERVERS entry `{entry}` must be an IP address and port, e.g. 192.0.2.53:53 or [2001:db8::53]:53"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy { nameservers, ..self })
    }

    /// Is this address, on this port, covered by the operator's allow list?
    pub fn allows_address(&self, address: IpAddr, port: Option<u16>) -> bool {
        self.allow.iter().any(|entry| match &entry.target {
            AllowTarget::Network(net) => net.contains(&address) && entry.covers_port(port),
            AllowTarget::Host(_) => false,
        })
    }

    /// Is this host name, on this port, listed by name in the operator's allow list?
    pub fn allows_host_name(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_end_matches('.');
        self.allow.iter().any(|entry| match &entry.target {
            AllowTarget::Host(name) => name.eq_ignore_ascii_case(host) && entry.covers_port(port),
            AllowTarget::Network(_) => false,
        })
    }

    /// May an outbound call connect to `address` on `port` (reached through `host_name`, if by
    /// name)? The refusal names the host and the variable that would allow it, never the
    /// address a name resolved to (which would map the operator's network for the caller).
    pub fn permits(&self, host_name: Option<&str>, address: IpAddr, port: Option<u16>) -> Result<(), String> {
        if host_name.is_some_and(|name| self.allows_host_name(name, port)) || self.allows_address(address, port) {
            return Ok(());
        }
        let (host, what) = match host_name {
            Some(name) => (name.trim_end_matches('.').to_owned(), "resolves to"),
            None => (address.to_string(), "is"),
        };
        match self.mode {
            EgressMode::Allowlist => {
                let on_port = port.map(|port| format!(" on port {port}")).unwrap_or_default();
                Err(format!(
                    "`{host}`{on_port} is not in LANYARD_EGRESS_ALLOW, and LANYARD_EGRESS_MODE=allowlist permits nothing else"
                ))
            }
            EgressMode::Public => match non_public_reason(address) {
                Some(_) => Err(format!(
                    "`{host}` {what} a non-public address; the operator must list it in LANYARD_EGRESS_ALLOW for Lanyard to reach it"
                )),
                None => Ok(()),
            },
        }
    }

    /// Plain `http` is accepted only for hosts the operator listed: an IP literal inside an
    /// allowed network, or a host name listed by name; with a port in the entry, only on that
    /// port.
    pub fn allows_plain_http(&self, url: &Url) -> bool {
        let port = url.port_or_known_default();
        match url.host() {
            Some(Host::Ipv4(address)) => self.allows_address(IpAddr::V4(address), port),
            Some(Host::Ipv6(address)) => self.allows_address(IpAddr::V6(address), port),
            Some(Host::Domain(name)) => self.allows_host_name(name, port),
            None => false,
        }
    }

    /// The mode as the operator writes it in `LANYARD_EGRESS_MODE`, for display.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            EgressMode::Public => "public",
            EgressMode::Allowlist => "allowlist",
        }
    }

    /// The allow list as the operator wrote it, for display.
    pub fn describe_allow_list(&self) -> Vec<String> {
        self.allow
            .iter()
            .map(|entry| match (&entry.target, entry.port) {
                (AllowTarget::Network(net), None) => net.to_string(),
                (AllowTarget::Network(net), Some(port)) => SocketAddr::new(net.addr(), port).to_string(),
                (AllowTarget::Host(name), None) => name.clone(),
                (AllowTarget::Host(name), Some(port)) => format!("{name}:{port}"),
            })
            .collect()
    }
}

fn parse_entry(entry: &str) -> Result<AllowEntry, String> {
    let network = |net: IpNet, port| AllowEntry {
        target: AllowTarget::Network(net),
        port,
    };
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(network(net.trunc(), None));
    }
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Ok(network(IpNet::from(address), None));
    }
    let invalid = || {
        format!(
            "LANYARD_EGRESS_ALLOW entry `{entry}` is neither a CIDR, an IP address nor a host name \
             (the last two may carry a port: 127.0.0.1:11434, [::1]:11434, ollama.internal:11434)"
        )
    };
    // `127.0.0.1:11434` and `[::1]:11434`.
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        if socket.port() == 0 {
            return Err(invalid());
        }
        return Ok(network(IpNet::from(socket.ip()), Some(socket.port())));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (
            host,
            Some(port.parse::<u16>().ok().filter(|port| *port != 0).ok_or_else(invalid)?),
        ),
        None => (entry, None),
    };
    let valid_host = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid_host {
        Ok(AllowEntry {
            target: AllowTarget::Host(host.to_ascii_lowercase()),
            port,
        })
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_are_networks_addresses_or_host_names() {
        let policy = EgressPolicy::parse("127.0.0.1/32, 10.1.2.3, fd00::/8, Ollama.Local", "allowlist").unwrap();
        assert_eq!(policy.mode, EgressMode::Allowlist);
        assert!(policy.allows_address("127.0.0.1".parse().unwrap(), Some(443)));
        assert!(policy.allows_address("10.1.2.3".parse().unwrap(), None));
        assert!(policy.allows_address("fd00::1".parse().unwrap(), Some(80)));
        assert!(!policy.allows_address("10.1.2.4".parse().unwrap(), Some(80)));
        assert!(policy.allows_host_name("ollama.local", Some(11434)));
        assert!(EgressPolicy::parse("not a host!", "public").is_err());
        assert!(EgressPolicy::parse("", "sometimes").is_err());
    }

    #[test]
    fn an_entry_with_a_port_allows_that_port_only() {
        let policy = EgressPolicy::parse(
            "127.0.0.1:11434, ollama.internal:11434, [::1]:11434, other.internal",
            "allowlist",
        )
        .unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(policy.allows_address(loopback, Some(11434)));
        assert!(!policy.allows_address(loopback, Some(11435)));
        assert!(
            !policy.allows_address(loopback, None),
            "an unknown port never matches a port entry"
        );
        assert!(policy.allows_address("::1".parse().unwrap(), Some(11434)));
        assert!(!policy.allows_address("::1".parse().unwrap(), Some(80)));
        assert!(policy.allows_host_name("Ollama.Internal.", Some(11434)));
        assert!(!policy.allows_host_name("ollama.internal", Some(443)));
        assert!(policy.allows_host_name("other.internal", Some(1)));
        let url = |raw: &str| Url::parse(raw).unwrap();
        assert!(policy.allows_plain_http(&url("http://127.0.0.1:11434/api")));
        assert!(!policy.allows_plain_http(&url("http://127.0.0.1/api")));
        assert!(policy.allows_plain_http(&url("http://[::1]:11434")));
        assert!(policy.allows_plain_http(&url("http://ollama.internal:11434")));
        assert!(!policy.allows_plain_http(&url("http://ollama.internal:8080")));
        assert_eq!(
            policy.describe_allow_list(),
            [
                "127.0.0.1:11434",
                "ollama.internal:11434",
                "[::1]:11434",
                "other.internal"
            ]
        );
        for bad in ["127.0.0.1:0", "host:99999", "host:", "10.0.0.0/8:80", "[::1]:x"] {
            let refused = EgressPolicy::parse(bad, "public").unwrap_err();
            assert!(refused.contains(bad), "{refused}");
        }
    }

    #[test]
    fn a_refusal_names_the_host_but_never_the_address_it_resolved_to() {
        let public = EgressPolicy::parse("", "public").unwrap();
        let refused = public
            .permits(Some("intranet.example"), "10.20.30.40".parse().unwrap(), Some(443))
            .unwrap_err();
        assert!(
            refused.contains("`intranet.example` resolves to a non-public address"),
            "{refused}"
        );
        assert!(refused.contains("LANYARD_EGRESS_ALLOW"), "{refused}");
        assert!(!refused.contains("10.20.30.40"), "{refused}");
        let locked = EgressPolicy::parse("", "allowlist").unwrap();
        let refused = locked
            .permits(Some("api.example"), "93.184.216.34".parse().unwrap(), Some(443))
            .unwrap_err();
        assert!(
            refused.contains("`api.example`") && !refused.contains("93.184"),
            "{refused}"
        );
    }

    #[test]
    fn nameservers_are_addresses_with_ports() {
        let policy = EgressPolicy::default()
            .with_nameservers("127.0.0.53:53, [::1]:5353")
            .unwrap();
        assert_eq!(
            policy.nameservers,
            [
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap()
            ]
        );
        assert!(
            EgressPolicy::default()
                .with_nameservers("")
                .unwrap()
                .nameservers
                .is_empty()
        );
        for bad in ["127.0.0.53", "dns.example:53", "127.0.0.53:0"] {
            let refused = EgressPolicy::default().with_nameservers(bad).unwrap_err();
            assert!(
                refused.contains("LANYARD_EGRESS_NAMESERVERS") && refused.contains(bad),
                "{refused}"
            );
        }
    }

    #[test]
    fn plain_http_base_urls_are_allowed_only_for_allowed_hosts() {
        use crate::domain::BaseUrl;
        let policy = EgressPolicy::parse("127.0.0.1/32, ollama.internal", "public").unwrap();
        assert!(BaseUrl::parse("http://127.0.0.1:11434", &policy).is_ok());
        assert!(BaseUrl::parse("http://ollama.internal:11434", &policy).is_ok());
        assert!(BaseUrl::parse("http://10.0.0.1:11434", &policy).is_err());
    }
}
