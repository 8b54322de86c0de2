//! The client's address, one rule for everything that keys on it: error and broken-link
//! reports, login and sign-up throttling. `X-Forwarded-For` is believed only from
//! `TRUSTED_PROXIES` ([`subject::client_ip`] reads it).

use std::net::{IpAddr, Ipv4Addr};

use poem::Request;
use poem::http::HeaderMap;

use crate::config::Settings;
use crate::reporting::subject;

/// Every `X-Forwarded-For` header, joined in order.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The client of a connection from `peer` that sent `headers`.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, settings: &Settings) -> IpAddr {
    subject::client_ip(
        peer,
        forwarded_for(headers).as_deref(),
        &settings.trusted_proxies,
    )
}

/// The client of a request (unspecified for a request without a TCP peer, which only
/// in-process tests make).
pub fn client_ip(req: &Request, settings: &Settings) -> IpAddr {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    client_addr(peer, req.headers(), settings)
}
