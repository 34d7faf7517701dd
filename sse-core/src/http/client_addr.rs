//! The client's address: the socket's peer, or, when that peer is a trusted reverse proxy, the
//! client named by the one forwarding header the application chose.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;

use crate::fanout::{AddrBlock, ForwardedHeader};

pub(super) fn client_addr(
    req: &HttpRequest,
    trusted: &[AddrBlock],
    header: ForwardedHeader,
) -> Option<IpAddr> {
    resolve(req.peer_addr()?.ip(), req.headers(), trusted, header)
}

fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[AddrBlock],
    header: ForwardedHeader,
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Only the chosen header: a proxy passes the others through from the client as they came.
    let chain = match header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded_for(headers),
        // The proxy sets it to the address it received from: nothing to walk.
        ForwardedHeader::XRealIp => {
            return Some(x_real_ip(headers).unwrap_or(peer));
        }
    };
    // Each proxy appends the address it received from: read from the right, past the trusted
    // proxies; the first other address is the client. Anything unreadable: the peer itself.
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

/// The address of the one `X-Real-IP` header; `None` without exactly one readable.
fn x_real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let mut values = headers.get_all("x-real-ip");
    let value = values.next()?;
    if values.next().is_some() {
        // Set twice: one copy came from elsewhere than the proxy; neither can be believed.
        return None;
    }
    parse_node(value.to_str().ok()?.trim())
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
    use ForwardedHeader::{Forwarded, XForwardedFor, XRealIp};

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

    fn proxies() -> Vec<AddrBlock> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let xff = |peer, trusted: &[AddrBlock]| resolve(ip(peer), &h, trusted, XForwardedFor);
        assert_eq!(xff("10.1.1.1", &proxies()), Some(ip("203.0.113.9")));
        // A client that is not a proxy cannot choose the address it is counted under.
        assert_eq!(xff("198.51.100.4", &proxies()), Some(ip("198.51.100.4")));
        assert_eq!(xff("10.1.1.1", &[]), Some(ip("10.1.1.1")));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // The client forged the first entry; the proxy chain appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies(), XForwardedFor),
            Some(ip("203.0.113.9"))
        );
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2",
        )]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies(), Forwarded),
            Some(ip("2001:db8::7"))
        );
    }

    #[test]
    fn a_forwarded_header_is_not_read_unless_chosen() {
        // nginx appends to `X-Forwarded-For` but passes the client's `Forwarded` through.
        let h = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2, 203.0.113.2"),
            ("x-real-ip", "198.51.100.3"),
        ]);
        let from_proxy = |header| resolve(ip("10.0.0.1"), &h, &proxies(), header);
        assert_eq!(from_proxy(XForwardedFor), Some(ip("203.0.113.2")));
        assert_eq!(from_proxy(Forwarded), Some(ip("198.51.100.1")));
        assert_eq!(from_proxy(XRealIp), Some(ip("198.51.100.3")));
        // Without the chosen header, the proxy itself, whatever the others say.
        let forged = headers(&[("forwarded", "for=198.51.100.1")]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &forged, &proxies(), XForwardedFor),
            Some(ip("10.0.0.1"))
        );
        let forged = headers(&[("x-forwarded-for", "198.51.100.2")]);
        for header in [Forwarded, XRealIp] {
            assert_eq!(
                resolve(ip("10.0.0.1"), &forged, &proxies(), header),
                Some(ip("10.0.0.1")),
                "{header:?}"
            );
        }
    }

    #[test]
    fn x_real_ip_is_believed_only_when_set_once_and_readable() {
        let from_proxy = |h: &HeaderMap| resolve(ip("10.0.0.1"), h, &proxies(), XRealIp);
        let once = headers(&[("x-real-ip", " 2001:db8::9 ")]);
        assert_eq!(from_proxy(&once), Some(ip("2001:db8::9")));
        let twice = headers(&[("x-real-ip", "198.51.100.3"), ("x-real-ip", "203.0.113.3")]);
        assert_eq!(from_proxy(&twice), Some(ip("10.0.0.1")));
        let unreadable = headers(&[("x-real-ip", "198.51.100.3, 203.0.113.3")]);
        assert_eq!(from_proxy(&unreadable), Some(ip("10.0.0.1")));
        // From a peer that is not a proxy: the peer.
        assert_eq!(
            resolve(ip("198.51.100.4"), &once, &proxies(), XRealIp),
            Some(ip("198.51.100.4"))
        );
    }

    #[test]
    fn unreadable_hops_stop_at_the_last_known_address() {
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.3")]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies(), Forwarded),
            Some(ip("10.0.0.3"))
        );
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies(), XForwardedFor),
            Some(ip("10.0.0.1"))
        );
    }
}
