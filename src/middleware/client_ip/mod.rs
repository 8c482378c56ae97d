//! The client IP: the socket peer, or a forwarded address when and only when the peer is a
//! trusted proxy.
//!
//! Policy: the peer's IPv4-mapped IPv6 address is folded to IPv4. If the peer is in
//! `trusted_proxies`, the chain from `Forwarded` or `X-Forwarded-For` is walked from the
//! right, skipping trusted proxies; the first untrusted address is the client (all trusted:
//! the leftmost). A malformed or obfuscated chain means the peer. A client talking to us
//! directly gets no say, whatever headers it sends.
//!
//! When both headers are present they must name the same client, or the peer is used: most
//! proxies append to `X-Forwarded-For` and pass a client's own `Forwarded` through untouched,
//! so preferring either one blindly would let a client behind the proxy pick its address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;

/// The resolved client address, in the request extensions for handlers and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The configured trusted proxies, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Wrap the configured list.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(Arc::new(nets))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// Whether the client reached the trusted proxy in front of tokenauth over HTTPS, as the
/// proxy's `X-Forwarded-Proto` says; always false from an untrusted peer. In the request
/// extensions, for the web page's `Secure` cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedHttps(pub bool);

/// Put `ClientIp` and `ForwardedHttps` in the request extensions (done for every request by
/// `context.rs`).
pub(crate) fn annotate(req: &mut Request, trusted: &TrustedProxies) {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    // why: without connect info (a misassembled server) the address is unknown, not trusted.
    let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| resolve(p, req.headers(), trusted));
    let https = peer.is_some_and(|p| trusted.contains(canonical(p))) && forwarded_https(req.headers());
    req.extensions_mut().insert(ClientIp(ip));
    req.extensions_mut().insert(ForwardedHttps(https));
}

/// The nearest proxy says the client came over HTTPS: the last value of `X-Forwarded-Proto`
/// (proxies append), or else the `proto=` of the last element of RFC 7239 `Forwarded`.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let https = |v: &str| v.trim().trim_matches('"').eq_ignore_ascii_case("https");
    if let Some(xfp) = joined(headers, &HeaderName::from_static("x-forwarded-proto")).filter(|v| !v.is_empty()) {
        return xfp.rsplit(',').next().is_some_and(https);
    }
    joined(headers, &header::FORWARDED)
        .and_then(|v| v.rsplit(',').next().and_then(|last| forwarded_param(last, "proto")).map(https))
        .unwrap_or(false)
}

/// The value of parameter `name` (`for`, `proto`) in one RFC 7239 element, unquoted.
fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"'))
    })
}

/// Resolve the client address for a request from `peer` with `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let walk = |chain: Option<Vec<IpAddr>>| chain.map(|chain| client_of(peer, chain, trusted));
    let forwarded = headers.contains_key(header::FORWARDED).then(|| walk(forwarded_chain(headers)));
    let x_forwarded_for = headers.contains_key(&X_FORWARDED_FOR).then(|| walk(x_forwarded_for_chain(headers)));
    match (forwarded, x_forwarded_for) {
        (Some(Some(a)), Some(Some(b))) if a == b => a,
        (Some(Some(client)), None) | (None, Some(Some(client))) => client,
        // Absent, malformed, or two headers that disagree: the peer.
        _ => peer,
    }
}

/// The first address from the right of `chain` that is not a trusted proxy.
fn client_of(peer: IpAddr, chain: Vec<IpAddr>, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer;
    for addr in chain.into_iter().rev() {
        client = canonical(addr);
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// All values of a header joined by commas, or `None` if any is not ASCII.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Option<Vec<&str>> = headers.get_all(name).iter().map(|v| v.to_str().ok()).collect();
    Some(parts?.join(","))
}

/// RFC 7239: `for=` of each element, in order. Any element without a usable `for=` (absent,
/// `unknown`, obfuscated, unparseable) makes the whole chain unusable.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let value = joined(headers, &header::FORWARDED)?;
    value.split(',').map(|element| parse_node(forwarded_param(element, "for")?)).collect()
}

fn x_forwarded_for_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let value = joined(headers, &X_FORWARDED_FOR)?;
    value.split(',').map(|item| parse_node(item.trim())).collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_gets_no_say() {
        let h = headers(&[("x-forwarded-for", "9.9.9.9"), ("forwarded", "for=8.8.8.8")]);
        assert_eq!(resolve(ip("203.0.113.5"), &h, &trusted(&["10.0.0.0/8"])), ip("203.0.113.5"));
        assert_eq!(resolve(ip("203.0.113.5"), &h, &TrustedProxies::default()), ip("203.0.113.5"));
    }

    #[test]
    fn mapped_ipv6_peer_is_folded() {
        assert_eq!(resolve(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &TrustedProxies::default()), ip("192.0.2.1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(resolve(ip("::ffff:127.0.0.1"), &h, &trusted(&["127.0.0.1/32"])), ip("198.51.100.7"));
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("198.51.100.7"));
        // Several header lines form one list.
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "10.0.0.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("1.1.1.1"));
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("10.1.1.1"));
    }

    #[test]
    fn forwarded_is_parsed_and_must_agree_with_x_forwarded_for() {
        let t = trusted(&["10.0.0.0/8"]);
        let chain = "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"";
        let h = headers(&[("forwarded", chain)]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("2001:db8:cafe::17"));
        // A client's own Forwarded passed through by a proxy that appends to X-Forwarded-For:
        // they disagree, so neither is believed.
        let h = headers(&[("forwarded", chain), ("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("10.0.0.2"));
        let h = headers(&[("forwarded", "for=9.9.9.9"), ("x-forwarded-for", "1.1.1.1, 9.9.9.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("9.9.9.9"), "both name the same client");
        let h = headers(&[("forwarded", "for=unknown"), ("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("10.0.0.2"), "a malformed one spoils both");
        let h = headers(&[("forwarded", "For=\"192.0.2.43:47011\"")]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("192.0.2.43"));
    }

    #[test]
    fn malformed_chains_mean_the_peer() {
        let t = trusted(&["10.0.0.0/8"]);
        for (name, value) in [
            ("x-forwarded-for", "not-an-ip"),
            ("x-forwarded-for", "1.1.1.1,,2.2.2.2"),
            ("x-forwarded-for", ""),
            ("forwarded", "for=unknown"),
            ("forwarded", "for=_hidden"),
            ("forwarded", "proto=https"),
            ("forwarded", "for=\"[::1\""),
        ] {
            let h = headers(&[(name, value)]);
            assert_eq!(resolve(ip("10.0.0.2"), &h, &t), ip("10.0.0.2"), "{name}: {value}");
        }
    }

    #[test]
    fn forwarded_https_reads_the_nearest_proxy() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        assert!(forwarded_https(&h(&[("x-forwarded-proto", "HTTPS")])));
        assert!(forwarded_https(&h(&[("x-forwarded-proto", "http, https")])));
        assert!(!forwarded_https(&h(&[("x-forwarded-proto", "https, http")])));
        assert!(forwarded_https(&h(&[("x-forwarded-proto", "http"), ("x-forwarded-proto", "https")])));
        assert!(forwarded_https(&h(&[("forwarded", "for=192.0.2.1;proto=https")])));
        assert!(!forwarded_https(&h(&[("forwarded", "proto=https, for=192.0.2.1;proto=http")])));
        assert!(!forwarded_https(&h(&[("x-forwarded-proto", "http"), ("forwarded", "proto=https")])));
        assert!(!forwarded_https(&HeaderMap::new()));
    }
}

#[cfg(test)]
mod proptests;
