//! Who is on the other end of a request: the peer, or, behind a proxy listed in
//! `LANYARD_TRUSTED_PROXIES`, the address that proxy forwarded. Login limits and request logs
//! both ask here, so that a header a stranger sends can move neither.

use std::net::IpAddr;

use actix_web::{HttpRequest, web};

use super::AppState;

/// The peer's address; when the peer is a trusted proxy, the nearest `X-Forwarded-For` entry
/// that is not itself a trusted proxy (entries further left were written by whoever sent the
/// request, so they prove nothing). `None` only when the connection has no peer address.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted: &[ipnet::IpNet] = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or(&[]);
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // The rightmost untrusted entry is the last one in reading order: no list needed.
    let forwarded = req
        .headers()
        .get_all("X-Forwarded-For")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .filter(|address| !is_trusted(address))
        .last();
    Some(forwarded.unwrap_or(peer))
}

/// The address failures are counted against: the peer's, or, when the peer is a proxy listed
/// in `LANYARD_TRUSTED_PROXIES`, the nearest `X-Forwarded-For` entry that is not such a proxy
/// (the same address request logs show: see [`client_ip`]).
pub fn client_address(req: &HttpRequest) -> String {
    client_ip(req).map_or_else(|| "unknown".to_owned(), |address| address.to_string())
}
