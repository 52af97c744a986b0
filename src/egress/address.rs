//! Which addresses an outbound call must never reach unless the operator allows them:
//! loopback, private, link-local (cloud metadata included), CGNAT, unspecified, multicast,
//! broadcast, reserved, and the IPv6 forms that embed any of these IPv4 addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
pub fn non_public_reason(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = address.octets();
    if address.is_loopback() {
        Some("loopback")
    } else if address.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if address.is_private() {
        Some("private")
    } else if address.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if address.is_broadcast() {
        Some("broadcast")
    } else if address.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else if a == 192 && b == 0 && address.octets()[2] == 0 {
        Some("IETF protocol assignments")
    } else if (a == 198 && (b == 18 || b == 19)) || address.is_documentation() {
        Some("reserved for benchmarking or documentation")
    } else {
        None
    }
}

fn v6_reason(address: Ipv6Addr) -> Option<&'static str> {
    // IPv4 addresses embedded in IPv6 are judged as the IPv4 address they carry.
    if let Some(v4) = address.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let segments = address.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96).
    if (segments[..6] == [0, 0, 0, 0, 0, 0] && !address.is_loopback() && !address.is_unspecified())
        || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let [.., high, low] = segments;
        return v4_reason(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    }
    if segments[0] == 0x2002 {
        // 6to4: the IPv4 address is in the second and third segments.
        return v4_reason(Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2])));
    }
    if address.is_loopback() {
        Some("loopback")
    } else if address.is_unspecified() {
        Some("unspecified")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if address.is_multicast() {
        Some("multicast")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
