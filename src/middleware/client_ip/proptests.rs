//! Property tests of `client_ip::resolve`: the socket peer, or the client a trusted proxy
//! forwarded. Why property tests, and which oracles: `crate::test_strategies`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderValue, header};
use ipnet::IpNet;
use proptest::prelude::*;

use crate::middleware::client_ip::{TrustedProxies, resolve};
use crate::test_strategies::{canonical, header_byte};

const TRUSTED: [&str; 3] = ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"];

fn trusted_nets() -> Vec<IpNet> {
    TRUSTED.iter().map(|n| n.parse().unwrap()).collect()
}

fn is_trusted(ip: IpAddr) -> bool {
    trusted_nets().iter().any(|net| net.contains(&canonical(ip)))
}

/// Any address, often inside the trusted networks, sometimes IPv4-mapped.
fn address() -> impl Strategy<Value = IpAddr> {
    let v4 = prop_oneof![
        any::<Ipv4Addr>(),
        any::<u32>().prop_map(|n| Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff))),
        any::<u16>().prop_map(|n| Ipv4Addr::from(0xc0a8_0000 | u32::from(n))),
    ];
    prop_oneof![
        2 => v4.clone().prop_map(IpAddr::V4),
        1 => v4.prop_map(|ip| IpAddr::V6(ip.to_ipv6_mapped())),
        1 => any::<Ipv6Addr>().prop_map(IpAddr::V6),
        1 => any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from((0xfd << 120) | (n >> 8)))),
    ]
}

fn trusted_peer() -> impl Strategy<Value = IpAddr> {
    address().prop_filter("a trusted proxy", |ip| is_trusted(*ip))
}

/// One address of a chain and how it is written.
#[derive(Debug, Clone)]
struct Hop {
    ip: IpAddr,
    port: Option<u16>,
    /// Brackets around an IPv6 address without a port.
    bracket: bool,
    /// Quotes around a `Forwarded` value.
    quote: bool,
    /// Other `Forwarded` parameters before and after `for=`.
    params: (Option<String>, Option<String>),
    /// `for`, `For` or `FOR`.
    key: &'static str,
}

fn hop() -> impl Strategy<Value = Hop> {
    let param = || {
        prop::option::of(
            prop::sample::select(vec!["proto=https", "by=10.0.0.1", "host=example.org", "by=_hidden"])
                .prop_map(str::to_owned),
        )
    };
    (
        address(),
        prop::option::of(any::<u16>()),
        any::<bool>(),
        any::<bool>(),
        (param(), param()),
        prop::sample::select(vec!["for", "For", "FOR"]),
    )
        .prop_map(|(ip, port, bracket, quote, params, key)| Hop { ip, port, bracket, quote, params, key })
}

impl Hop {
    /// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
    fn node(&self) -> String {
        match (self.ip, self.port) {
            (IpAddr::V4(v4), None) => v4.to_string(),
            (IpAddr::V4(v4), Some(port)) => format!("{v4}:{port}"),
            (IpAddr::V6(v6), None) if self.bracket => format!("[{v6}]"),
            (IpAddr::V6(v6), None) => v6.to_string(),
            (IpAddr::V6(v6), Some(port)) => format!("[{v6}]:{port}"),
        }
    }

    fn forwarded_element(&self) -> String {
        let value = if self.quote { format!("\"{}\"", self.node()) } else { self.node() };
        let mut pairs: Vec<String> = self.params.0.iter().cloned().collect();
        pairs.push(format!("{}={value}", self.key));
        pairs.extend(self.params.1.iter().cloned());
        pairs.join(";")
    }
}

/// The chain's items, as lines of a header: items joined by a comma with optional
/// blanks, the list cut into lines after the items marked.
fn lines(items: &[String], breaks: &[bool], blanks: &[bool]) -> Vec<String> {
    let mut lines = vec![String::new()];
    for (i, item) in items.iter().enumerate() {
        let line = lines.last_mut().unwrap();
        if !line.is_empty() {
            line.push_str(if blanks[i % blanks.len()] { " , " } else { "," });
        }
        line.push_str(item);
        if breaks[i % breaks.len()] && i + 1 < items.len() {
            lines.push(String::new());
        }
    }
    lines
}

/// The client a chain names: its right-most untrusted address, or its left-most if all are
/// trusted, IPv4-mapped addresses folded.
fn client(chain: &[Hop]) -> IpAddr {
    let ips: Vec<IpAddr> = chain.iter().map(|h| canonical(h.ip)).collect();
    ips.iter().rev().find(|ip| !is_trusted(**ip)).copied().unwrap_or(ips[0])
}

#[derive(Debug, Clone, Copy)]
enum Headers {
    XForwardedFor,
    Forwarded,
    Both,
}

fn headers_of(chain: &[Hop], which: Headers, breaks: &[bool], blanks: &[bool]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if matches!(which, Headers::XForwardedFor | Headers::Both) {
        let items: Vec<String> = chain.iter().map(Hop::node).collect();
        for line in lines(&items, breaks, blanks) {
            headers.append("x-forwarded-for", HeaderValue::from_str(&line).unwrap());
        }
    }
    if matches!(which, Headers::Forwarded | Headers::Both) {
        let items: Vec<String> = chain.iter().map(Hop::forwarded_element).collect();
        for line in lines(&items, breaks, blanks) {
            headers.append(header::FORWARDED, HeaderValue::from_str(&line).unwrap());
        }
    }
    headers
}

fn which() -> impl Strategy<Value = Headers> {
    prop_oneof![Just(Headers::XForwardedFor), Just(Headers::Forwarded), Just(Headers::Both)]
}

/// Header values that look like chains, with junk: addresses in every spelling, `unknown`,
/// obfuscated names, stray separators, quotes and brackets.
fn chainish_value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        hop().prop_map(|h| h.node()),
        hop().prop_map(|h| h.forwarded_element()),
        prop::sample::select(vec![
            "unknown",
            "for=",
            "For=",
            ";",
            ",",
            ", ",
            " ",
            "\"",
            "[",
            "]",
            ":",
            "_hidden",
            "for=unknown",
            "::ffff:"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,4}",
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat().into_bytes()),
        prop::collection::vec(header_byte(), 0..40),
    ]
}

/// Up to four header lines, each `X-Forwarded-For`, `Forwarded` or an unrelated header;
/// `None` if a value is not a valid header value.
fn arbitrary_headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    prop::collection::vec(
        (prop::sample::select(vec!["x-forwarded-for", "forwarded", "x-real-ip"]), chainish_value()),
        0..4,
    )
}

fn header_map(lines: &[(&'static str, Vec<u8>)]) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        headers.append(*name, HeaderValue::from_bytes(value).ok()?);
    }
    Some(headers)
}

/// Every address some piece of the forwarding headers spells, by the standard parser,
/// IPv4-mapped addresses folded.
fn addresses_in(headers: &HeaderMap) -> HashSet<IpAddr> {
    let mut found = HashSet::new();
    for name in ["x-forwarded-for", "forwarded"] {
        for value in headers.get_all(name) {
            let bytes = value.as_bytes();
            for start in 0..bytes.len() {
                for end in start + 2..=bytes.len().min(start + 45) {
                    if let Some(ip) =
                        std::str::from_utf8(&bytes[start..end]).ok().and_then(|s| s.parse::<IpAddr>().ok())
                    {
                        found.insert(canonical(ip));
                    }
                }
            }
        }
    }
    found
}

proptest! {
    /// A peer that is not a trusted proxy is the client, whatever the headers say, folded
    /// to IPv4 if it is IPv4-mapped; arbitrary header values never panic.
    #[test]
    fn untrusted_peers_get_no_say(
        peer in address().prop_filter("not a trusted proxy", |ip| !is_trusted(*ip)),
        lines in arbitrary_headers(),
    ) {
        let Some(headers) = header_map(&lines) else { return Err(TestCaseError::reject("not a header value")) };
        let trusted = TrustedProxies::new(trusted_nets());
        prop_assert_eq!(resolve(peer, &headers, &trusted), canonical(peer));
        prop_assert_eq!(resolve(peer, &headers, &TrustedProxies::default()), canonical(peer));
    }

    /// Whatever the peer and the headers, the answer is the peer (folded) or an address
    /// that the forwarding headers spell out; arbitrary header values never panic.
    #[test]
    fn the_client_is_the_peer_or_in_the_headers(
        peer in prop_oneof![address(), trusted_peer()],
        lines in arbitrary_headers(),
        trust_all in any::<bool>(),
    ) {
        let Some(headers) = header_map(&lines) else { return Err(TestCaseError::reject("not a header value")) };
        let trusted = if trust_all {
            TrustedProxies::new(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()])
        } else {
            TrustedProxies::new(trusted_nets())
        };
        let got = resolve(peer, &headers, &trusted);
        if got != canonical(peer) {
            prop_assert!(addresses_in(&headers).contains(&got), "{:?} is not in {:?}", got, headers);
        }
    }

    /// From a trusted proxy, a well-formed chain (in `X-Forwarded-For`, `Forwarded`, or the
    /// same chain in both; any spelling of each address; cut into several lines) names its
    /// right-most untrusted address, or its left-most if every hop is trusted.
    #[test]
    fn trusted_proxies_give_the_right_most_untrusted_hop(
        peer in trusted_peer(),
        chain in prop::collection::vec(hop(), 1..6),
        which in which(),
        breaks in prop::collection::vec(any::<bool>(), 1..6),
        blanks in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        let headers = headers_of(&chain, which, &breaks, &blanks);
        prop_assert_eq!(resolve(peer, &headers, &TrustedProxies::new(trusted_nets())), client(&chain), "{:?}", headers);
    }

    /// Two headers that name different clients mean the peer; naming the same client
    /// (whatever their chains) means that client.
    #[test]
    fn both_headers_must_agree(
        peer in trusted_peer(),
        xff in prop::collection::vec(hop(), 1..4),
        fwd in prop::collection::vec(hop(), 1..4),
        breaks in prop::collection::vec(any::<bool>(), 1..4),
    ) {
        let mut headers = headers_of(&xff, Headers::XForwardedFor, &breaks, &[false]);
        for (name, value) in headers_of(&fwd, Headers::Forwarded, &breaks, &[true]).iter() {
            headers.append(name, value.clone());
        }
        let want = if client(&xff) == client(&fwd) { client(&xff) } else { canonical(peer) };
        prop_assert_eq!(resolve(peer, &headers, &TrustedProxies::new(trusted_nets())), want, "{:?}", headers);
    }
}
