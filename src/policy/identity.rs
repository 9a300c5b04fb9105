//! Who is calling: the API key a request presents, and the client's IP.
//!
//! A key comes from `Authorization: Bearer <key>`, `X-API-Key: <key>`, or the
//! last path segment (`/<network>/<key>`, for wallets that take only a URL),
//! in that order of precedence.
//!
//! The client IP is the socket's peer address, unless that peer is a trusted
//! proxy: then `X-Forwarded-For` (or, without it, `Forwarded: for=`) is read
//! from the right, skipping trusted proxies, and the first address that is
//! not one is the client. Entries left of it were written by the client
//! itself and prove nothing, which is why the walk goes from the right and
//! why a peer that is not a trusted proxy never gets its headers believed.

use std::net::IpAddr;

use http::{header, HeaderMap, HeaderName};

use crate::config::{canonical_ip, IpNet};

/// The key a request presents, if any.
pub fn presented_key<'a>(headers: &'a HeaderMap, path_key: Option<&'a str>) -> Option<&'a str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        if let Some(key) = v.to_str().ok().and_then(bearer) {
            return Some(key);
        }
    }
    static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    if let Some(v) = headers.get(&X_API_KEY) {
        if let Ok(key) = v.to_str() {
            let key = key.trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    path_key.filter(|k| !k.is_empty())
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let key = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The client's IP: `peer`, or what trusted proxies say the client was.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical_ip(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    if !is_trusted(peer) {
        return peer;
    }
    let xff = headers.get_all("x-forwarded-for");
    let hops: Vec<&str> = if xff.iter().next().is_some() {
        // Several header lines are one list, in order.
        xff.iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect()
    } else {
        headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // Garbage (or "unknown"): the last hop we could read is as far as we know.
            None => break,
        }
    }
    client
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical_ip);
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn net(addr: &str, prefix: u8) -> IpNet {
        IpNet::new(addr.parse().unwrap(), prefix).unwrap()
    }

    #[test]
    fn keys_in_each_place_with_precedence() {
        let h = headers(&[("authorization", "Bearer abc"), ("x-api-key", "def")]);
        assert_eq!(presented_key(&h, Some("ghi")), Some("abc"));
        let h = headers(&[("authorization", "Basic xyz"), ("x-api-key", " def ")]);
        assert_eq!(presented_key(&h, Some("ghi")), Some("def"));
        assert_eq!(presented_key(&HeaderMap::new(), Some("ghi")), Some("ghi"));
        assert_eq!(presented_key(&HeaderMap::new(), None), None);
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer   k1 ")]), None),
            Some("k1")
        );
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let trusted = [net("10.0.0.0", 8)];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        // From a trusted proxy: the rightmost address that is not a proxy.
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else: the socket address.
        assert_eq!(
            client_ip("198.51.100.1".parse().unwrap(), &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9:443"),
            ("x-forwarded-for", "10.2.2.2"),
        ]);
        assert_eq!(
            client_ip("::ffff:10.0.0.2".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "not-an-ip, 10.3.3.3")]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted),
            "10.3.3.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &HeaderMap::new(), &trusted),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }
}
