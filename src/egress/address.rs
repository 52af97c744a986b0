//! Which addresses an outbound call must never reach unless the operator allows them: every
//! range of the IANA IPv4 and IPv6 special-purpose address registries that is not globally
//! reachable (loopback, private, link-local with the cloud metadata services, CGNAT,
//! documentation, benchmarking, reserved, …), plus multicast, broadcast and everything in IPv6
//! outside the global unicast space. Addresses that carry an IPv4 address (`::ffff:0:0/96`,
//! `64:ff9b::/96`, `2002::/16`) are judged by the address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// The IPv4 ranges that are not globally reachable (IANA IPv4 Special-Purpose Address
/// Registry, "Globally Reachable" false or not applicable), with multicast (RFC 5771).
pub const BLOCKED_V4: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\""),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local (cloud metadata)"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignment"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 88, 99, 0, 24), "deprecated 6to4 relay"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
];

/// Globally reachable assignments inside [`BLOCKED_V4`] ranges (the registry's more specific
/// entries): the PCP and TURN anycast addresses.
pub const GLOBAL_WITHIN_BLOCKED_V4: &[Ipv4Net] = &[v4(192, 0, 0, 9, 32), v4(192, 0, 0, 10, 32)];

/// The IPv6 ranges that are not globally reachable (IANA IPv6 Special-Purpose Address
/// Registry), the deprecated site-local range, and everything outside `2000::/3`, the only
/// space IANA allocates as global unicast. The IPv4-carrying prefixes are handled before this
/// table is consulted.
pub const BLOCKED_V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible (deprecated)"),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use IPv4/IPv6 translation",
    ),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), "dummy prefix"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "IETF protocol assignment"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), "segment routing"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local (private)"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local (deprecated)"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// Globally reachable assignments inside `2001::/23` (the registry's more specific entries).
pub const GLOBAL_WITHIN_BLOCKED_V6: &[Ipv6Net] = &[
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28),
];

const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const IPV4_MAPPED: Ipv6Net = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// Why an address is not public; `None` for a globally reachable one.
pub fn non_public_reason(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(address: Ipv4Addr) -> Option<&'static str> {
    if GLOBAL_WITHIN_BLOCKED_V4.iter().any(|net| net.contains(&address)) {
        return None;
    }
    BLOCKED_V4
        .iter()
        .find(|(net, _)| net.contains(&address))
        .map(|(_, reason)| *reason)
}

fn v6_reason(address: Ipv6Addr) -> Option<&'static str> {
    if let Some(carried) = carried_ipv4(address) {
        return v4_reason(carried);
    }
    if GLOBAL_WITHIN_BLOCKED_V6.iter().any(|net| net.contains(&address)) {
        return None;
    }
    if let Some((_, reason)) = BLOCKED_V6.iter().find(|(net, _)| net.contains(&address)) {
        return Some(reason);
    }
    if !GLOBAL_UNICAST.contains(&address) {
        return Some("reserved by the IETF");
    }
    None
}

/// The IPv4 address an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address carries.
fn carried_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(address);
    if IPV4_MAPPED.contains(&address) || NAT64.contains(&address) {
        // The low 32 bits; truncation is the point.
        Some(Ipv4Addr::from(bits as u32))
    } else if SIX_TO_FOUR.contains(&address) {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16 to 47.
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    /// Every range the issue asks for, written out again from the registries (not read from the
    /// tables above), so that a range missing there fails here.
    const REGISTRY_V4: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.0.0/29",
        "192.0.0.8/32",
        "192.0.0.170/32",
        "192.0.0.171/32",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
    ];

    const REGISTRY_V6: &[&str] = &[
        "::1/128",
        "::/128",
        "64:ff9b:1::/48",
        "::ffff:0:0:0/96",
        "100::/64",
        "100:0:0:1::/64",
        "2001::/23",
        "2001::/32",
        "2001:2::/48",
        "2001:10::/28",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ];

    /// Globally reachable addresses the registries list right next to blocked ones.
    const REGISTRY_GLOBAL: &[&str] = &[
        "192.0.0.9",
        "192.0.0.10",
        "192.31.196.1",
        "192.52.193.1",
        "192.175.48.1",
        "2001:1::1",
        "2001:1::2",
        "2001:1::3",
        "2001:3::1",
        "2001:4:112::1",
        "2001:20::1",
        "2001:30::1",
        "2620:4f:8000::1",
        "64:ff9b::808:808",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
    ];

    fn registry() -> Vec<IpNet> {
        REGISTRY_V4
            .iter()
            .chain(REGISTRY_V6)
            .map(|range| range.parse().unwrap())
            .collect()
    }

    fn listed(address: IpAddr, ranges: &[IpNet]) -> bool {
        ranges.iter().any(|range| range.contains(&address))
    }

    fn neighbours(range: &IpNet) -> [Option<IpAddr>; 2] {
        match range {
            IpNet::V4(net) => {
                let first = u32::from(net.network());
                let last = u32::from(net.broadcast());
                [
                    first.checked_sub(1).map(|a| IpAddr::V4(a.into())),
                    last.checked_add(1).map(|a| IpAddr::V4(a.into())),
                ]
            }
            IpNet::V6(net) => {
                let first = u128::from(net.network());
                let last = u128::from(net.broadcast());
                [
                    first.checked_sub(1).map(|a| IpAddr::V6(a.into())),
                    last.checked_add(1).map(|a| IpAddr::V6(a.into())),
                ]
            }
        }
    }

    #[test]
    fn the_first_and_last_address_of_every_registry_range_is_refused() {
        for range in registry() {
            for address in [range.network(), range.broadcast()] {
                assert!(
                    non_public_reason(address).is_some(),
                    "{address} (first or last of {range}) should be refused"
                );
            }
        }
    }

    #[test]
    fn the_public_neighbours_of_every_registry_range_pass() {
        let ranges = registry();
        let mut checked = 0;
        for range in &ranges {
            for neighbour in neighbours(range).into_iter().flatten() {
                // A neighbour inside another listed range, or outside IPv6 global unicast
                // space, is not public; every other one must pass.
                let outside_global_unicast = matches!(neighbour, IpAddr::V6(v6) if !GLOBAL_UNICAST.contains(&v6));
                if listed(neighbour, &ranges) || outside_global_unicast {
                    continue;
                }
                checked += 1;
                assert_eq!(
                    non_public_reason(neighbour),
                    None,
                    "{neighbour}, just outside {range}, is public"
                );
            }
        }
        assert!(checked >= 25, "only {checked} public neighbours were checked");
    }

    #[test]
    fn globally_reachable_assignments_next_to_blocked_ones_pass() {
        for address in REGISTRY_GLOBAL {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(non_public_reason(ip), None, "{address} is globally reachable");
        }
    }

    #[test]
    fn addresses_that_carry_an_ipv4_address_are_judged_by_it() {
        for (blocked, public) in [
            ("::ffff:127.0.0.1", "::ffff:1.1.1.1"),
            ("::ffff:0.0.0.0", "::ffff:8.8.4.4"),
            ("::ffff:255.255.255.255", "::ffff:223.255.255.255"),
            ("64:ff9b::a9fe:a9fe", "64:ff9b::101:101"),
            ("64:ff9b::a00:1", "64:ff9b::808:808"),
            ("2002:7f00:1::", "2002:101:101::"),
            ("2002:c0a8:101::1", "2002:808:808:ffff::1"),
            ("2002:a9fe:a9fe::", "2002:0808:0808::"),
        ] {
            assert!(
                non_public_reason(blocked.parse().unwrap()).is_some(),
                "{blocked} carries a non-public IPv4 address"
            );
            assert_eq!(
                non_public_reason(public.parse().unwrap()),
                None,
                "{public} carries a public IPv4 address"
            );
        }
        // The local-use translation prefix is refused whatever it carries.
        assert!(non_public_reason("64:ff9b:1::808:808".parse().unwrap()).is_some());
        assert!(non_public_reason("64:ff9b:1:ffff:ffff:ffff:ffff:ffff".parse().unwrap()).is_some());
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        // As url::Url normalises hosts: 127.1, 2130706433 and 0x7f000001 all become 127.0.0.1.
        let blocked = [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ];
        for address in blocked {
            let ip: IpAddr = address.parse().unwrap();
            assert!(non_public_reason(ip).is_some(), "{address} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(non_public_reason(ip), None, "{address} should be public");
        }
    }

    #[test]
    fn url_parsing_normalises_every_ipv4_spelling() {
        for spelling in [
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
        ] {
            let url = url::Url::parse(spelling).unwrap();
            let host = match url.host() {
                Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
                other => panic!("{spelling} parsed as {other:?}"),
            };
            assert_eq!(non_public_reason(host), Some("loopback"), "{spelling}");
        }
    }
}
