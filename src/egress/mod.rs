//! The egress policy: which hosts outbound calls (provider tests) may reach, set by the operator
//! alone through `LANYARD_EGRESS_ALLOW` and `LANYARD_EGRESS_MODE`.

mod address;
mod client;

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

pub use address::non_public_reason;
pub use client::{EgressError, OutboundClient, OutboundResponse};

/// `public`: public addresses plus the allow list; `allowlist`: only the allow list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EgressMode {
    #[default]
    Public,
    Allowlist,
}

/// One `LANYARD_EGRESS_ALLOW` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Network(IpNet),
    Host(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub mode: EgressMode,
    pub allow: Vec<AllowEntry>,
}

impl EgressPolicy {
    /// Parses the allow list (comma-separated CIDRs, IP addresses or host names) and the mode.
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
        Ok(EgressPolicy { mode, allow })
    }

    /// Is this address covered by the operator's allow list?
    pub fn allows_address(&self, address: IpAddr) -> bool {
        self.allow.iter().any(|entry| match entry {
            AllowEntry::Network(net) => net.contains(&address),
            AllowEntry::Host(_) => false,
        })
    }

    /// Is this host name listed by name in the operator's allow list?
    pub fn allows_host_name(&self, host: &str) -> bool {
        self.allow.iter().any(|entry| match entry {
            AllowEntry::Host(name) => name.eq_ignore_ascii_case(host.trim_end_matches('.')),
            AllowEntry::Network(_) => false,
        })
    }

    /// May an outbound call connect to `address` (reached through `host_name`, if by name)?
    /// The refusal says why and names the variable that would allow it.
    pub fn permits(&self, host_name: Option<&str>, address: IpAddr) -> Result<(), String> {
        if host_name.is_some_and(|name| self.allows_host_name(name)) || self.allows_address(address) {
            return Ok(());
        }
        let shown = host_name.map_or_else(|| address.to_string(), |name| format!("{name} ({address})"));
        match self.mode {
            EgressMode::Allowlist => Err(format!(
                "{shown} is not in LANYARD_EGRESS_ALLOW, and LANYARD_EGRESS_MODE=allowlist permits nothing else"
            )),
            EgressMode::Public => match non_public_reason(address) {
                Some(reason) => Err(format!(
                    "{shown} is a {reason} address; the operator must list it in LANYARD_EGRESS_ALLOW for Lanyard to reach it"
                )),
                None => Ok(()),
            },
        }
    }

    /// Plain `http` is accepted only for hosts the operator listed: an IP literal inside an
    /// allowed network, or a host name listed by name.
    pub fn allows_plain_http(&self, url: &Url) -> bool {
        match url.host() {
            Some(Host::Ipv4(address)) => self.allows_address(IpAddr::V4(address)),
            Some(Host::Ipv6(address)) => self.allows_address(IpAddr::V6(address)),
            Some(Host::Domain(name)) => self.allows_host_name(name),
            None => false,
        }
    }

    /// The allow list as the operator wrote it, for display.
    pub fn describe_allow_list(&self) -> Vec<String> {
        self.allow
            .iter()
            .map(|entry| match entry {
                AllowEntry::Network(net) => net.to_string(),
                AllowEntry::Host(name) => name.clone(),
            })
            .collect()
    }
}

fn parse_entry(entry: &str) -> Result<AllowEntry, String> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(AllowEntry::Network(net.trunc()));
    }
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Ok(AllowEntry::Network(IpNet::from(address)));
    }
    let valid_host = entry.len() <= 253
        && entry.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid_host {
        Ok(AllowEntry::Host(entry.to_ascii_lowercase()))
    } else {
        Err(format!(
            "LANYARD_EGRESS_ALLOW entry `{entry}` is neither a CIDR, an IP address nor a host name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_are_networks_addresses_or_host_names() {
        let policy = EgressPolicy::parse("127.0.0.1/32, 10.1.2.3, fd00::/8, Ollama.Local", "allowlist").unwrap();
        assert_eq!(policy.mode, EgressMode::Allowlist);
        assert!(policy.allows_address("127.0.0.1".parse().unwrap()));
        assert!(policy.allows_address("10.1.2.3".parse().unwrap()));
        assert!(policy.allows_address("fd00::1".parse().unwrap()));
        assert!(!policy.allows_address("10.1.2.4".parse().unwrap()));
        assert!(policy.allows_host_name("ollama.local"));
        assert!(EgressPolicy::parse("not a host!", "public").is_err());
        assert!(EgressPolicy::parse("", "sometimes").is_err());
    }
}
