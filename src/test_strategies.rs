//! Strategies shared by the property tests (proptest, issue 7) of the parsers of untrusted input,
//! which live next to each parser in a `proptests` module: `Authorization` headers of every
//! scheme (`surface::credentials`), token shapes (`token::secret`), presented JWTs
//! (`token::jwt`), RFC 3339 expiry times (`dialect::usertoken`), `Forwarded` /
//! `X-Forwarded-For` chains (`middleware::client_ip`), and allowed-IP networks
//! (`token::principals`). `cargo test --lib proptests` runs them all.
//!
//! why: these read bytes that a client (or an administrator) chooses, so they must never
//! panic, and must accept exactly what their documentation says. Each property checks a parser
//! against an oracle that does not go through that parser: the encoder that built the input
//! (base64, the JWT signer, `format!` of date components), the standard library's and the
//! `uuid`/`ipnet` crates' types, or the documented contract restated over the raw input.
//! Properties run proptest's default 256 cases unless they say fewer; all of them take a few
//! seconds in a debug build.

use std::net::IpAddr;

use proptest::prelude::*;

/// Bytes of a header value: mostly what a header value may hold (visible ASCII, space, tab,
/// obs-text), sometimes any byte at all (such values are skipped, as no `HeaderValue` holds them).
pub(crate) fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => 0x21u8..=0x7e,
        2 => Just(b' '),
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
        1 => any::<u8>(),
    ]
}

/// The IPv4 form of an IPv4-mapped IPv6 address, as the client-IP policy compares them.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
