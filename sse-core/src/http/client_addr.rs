//! The client's address: the socket's peer, or, when that peer is a trusted reverse proxy, the
//! client its `Forwarded` (RFC 7239) or `X-Forwarded-For` header names.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;

use crate::fanout::AddrBlock;

pub(super) fn client_addr(req: &HttpRequest, trusted: &[AddrBlock]) -> Option<IpAddr> {
    resolve(req.peer_addr()?.ip(), req.headers(), trusted)
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[AddrBlock]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Each proxy appends the address it received from: read from the right, past the trusted
    // proxies; the first other address is the client. Anything unreadable: the peer itself.
    let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
    let Some(chain) = chain else {
        return Some(peer);
    };
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(ip) = hop else {
            return Some(client);
        };
        client = *ip;
        if !is_trusted(*ip) {
            break;
        }
    }
    Some(client)
}

/// The `for=` addresses of `Forwarded` headers, in order; `None` without one. An obfuscated
/// or unknown node (`for=unknown`, `for=_hidden`) is `Some(None)`.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| value.trim())
            });
            if let Some(node) = node {
                hops.push(parse_node(node.trim_matches('"')));
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// The addresses of `X-Forwarded-For` headers, in order; `None` without one.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(|s| parse_node(s.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:8080` or `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            node.strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let proxy: Vec<AddrBlock> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(resolve(ip("10.1.1.1"), &h, &proxy), Some(ip("203.0.113.9")));
        // A client that is not a proxy cannot choose the address it is counted under.
        assert_eq!(
            resolve(ip("198.51.100.4"), &h, &proxy),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(resolve(ip("10.1.1.1"), &h, &[]), Some(ip("10.1.1.1")));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies: Vec<AddrBlock> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the proxy chain appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies),
            Some(ip("203.0.113.9"))
        );
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2",
        )]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies),
            Some(ip("2001:db8::7"))
        );
        // `Forwarded` wins over `X-Forwarded-For`.
        let h = headers(&[
            ("forwarded", "for=203.0.113.1"),
            ("x-forwarded-for", "203.0.113.2"),
        ]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies),
            Some(ip("203.0.113.1"))
        );
    }

    #[test]
    fn unreadable_hops_stop_at_the_last_known_address() {
        let proxies: Vec<AddrBlock> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.3")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), Some(ip("10.0.0.3")));
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), Some(ip("10.0.0.1")));
    }
}
