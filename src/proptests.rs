//! Property tests of the parsers of untrusted input (issue 7): `Authorization` headers of
//! every scheme, token shapes, presented JWTs, RFC 3339 expiry times, `Forwarded` /
//! `X-Forwarded-For` chains, and allowed-IP networks.
//!
//! why: these read bytes that a client (or an administrator) chooses, so they must never
//! panic, and must accept exactly what their documentation says. Each property checks a parser
//! against an oracle that does not go through that parser: the encoder that built the input
//! (base64, the JWT signer, `format!` of date components), the standard library's and the
//! `uuid`/`ipnet` crates' types, or the documented contract restated over the raw input.
//! Properties run proptest's default 256 cases unless they say fewer; the file takes a few
//! seconds in a debug build.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;

/// Letters of `word` upper- or lowercased at random.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

/// Bytes of a header value: mostly what a header value may hold (visible ASCII, space, tab,
/// obs-text), sometimes any byte at all (such values are skipped, as no `HeaderValue` holds them).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => 0x21u8..=0x7e,
        2 => Just(b' '),
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
        1 => any::<u8>(),
    ]
}

/// The IPv4 form of an IPv4-mapped IPv6 address, as the client-IP policy compares them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An IPv6 address written out in full, eight groups of four hex digits (no `::`).
fn expanded(ip: Ipv6Addr) -> String {
    ip.segments().iter().map(|s| format!("{s:04x}")).collect::<Vec<_>>().join(":")
}

mod credentials {
    //! `Authorization: <scheme> <value>` and `Authorization: Basic base64(user:password)`.

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::error::{AuthFailure, CredentialFailure, Malformation};
    use crate::surface::{basic_credentials, scheme_credentials};

    const SCHEMES: [&str; 3] = ["Basic", "Bearer", "Token"];

    fn authorization(bytes: &[u8]) -> Option<HeaderMap> {
        let value = HeaderValue::from_bytes(bytes).ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        Some(headers)
    }

    /// A scheme word in any letter case, nothing, or a few other visible characters; then
    /// optional blanks and arbitrary header bytes.
    fn authorization_bytes() -> impl Strategy<Value = Vec<u8>> {
        let scheme =
            prop_oneof![Just(String::new()), any_case("Basic"), any_case("Bearer"), any_case("Token"), "[!-~]{1,8}",];
        (scheme, "[ \t]{0,2}", prop::collection::vec(header_byte(), 0..40)).prop_map(|(scheme, blanks, tail)| {
            let mut bytes = scheme.into_bytes();
            bytes.extend(blanks.bytes());
            bytes.extend(tail);
            bytes
        })
    }

    /// The documented contract of `scheme_credentials`, restated over the raw bytes: words
    /// are separated by HTTP's blanks (space, tab); another first word is `Missing`; then
    /// anything but visible ASCII is `InvalidCharacters`; then exactly one more word is the value.
    fn contract(raw: &[u8], scheme: &str) -> Result<String, AuthFailure> {
        let mut words = raw.split(|b| matches!(b, b' ' | b'\t')).filter(|w| !w.is_empty());
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case(scheme.as_bytes())) {
            return Err(AuthFailure::Missing);
        }
        if !raw.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return Err(AuthFailure::Malformed(Malformation::InvalidCharacters));
        }
        match words.collect::<Vec<_>>().as_slice() {
            [] => Err(AuthFailure::Malformed(Malformation::Empty)),
            [value] => Ok(String::from_utf8_lossy(value).into_owned()),
            _ => Err(AuthFailure::Malformed(Malformation::ContainsSpaces)),
        }
    }

    /// Any string, or two joined by a colon.
    fn password() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), (any::<String>(), any::<String>()).prop_map(|(a, b)| format!("{a}:{b}"))]
    }

    proptest! {
        /// Arbitrary header bytes never panic, and every scheme answers what its contract says;
        /// a Basic header that parses is exactly the canonical base64 of `user:password`.
        #[test]
        fn arbitrary_headers_follow_the_contract(raw in authorization_bytes()) {
            let Some(headers) = authorization(&raw) else { return Err(TestCaseError::reject("not a header value")) };
            for scheme in SCHEMES {
                prop_assert_eq!(scheme_credentials(&headers, scheme).map(str::to_owned), contract(&raw, scheme), "{}", scheme);
            }
            match basic_credentials(&headers) {
                Ok((user, password)) => {
                    prop_assert!(!user.contains(':'));
                    let encoded = STANDARD.encode(format!("{user}:{}", password.expose_secret()));
                    prop_assert_eq!(contract(&raw, "Basic"), Ok(encoded));
                }
                Err(CredentialFailure::Missing) => prop_assert_eq!(contract(&raw, "Basic"), Err(AuthFailure::Missing)),
                Err(CredentialFailure::Malformed) => prop_assert_ne!(contract(&raw, "Basic"), Err(AuthFailure::Missing)),
                Err(other) => prop_assert!(false, "basic_credentials answered {other:?}"),
            }
        }

        /// `Basic base64(user:password)` gives back the user (any text without a colon) and the
        /// password (any text, colons and all), whatever the scheme's letter case and blanks.
        #[test]
        fn basic_round_trips(
            user in "[^:]{0,24}",
            password in password(),
            scheme in any_case("Basic"),
            lead in "[ \t]{0,2}",
            gap in "[ \t]{1,3}",
            trail in "[ \t]{0,2}",
        ) {
            let encoded = STANDARD.encode(format!("{user}:{password}"));
            let headers = authorization(format!("{lead}{scheme}{gap}{encoded}{trail}").as_bytes()).unwrap();
            let (u, p) = basic_credentials(&headers).unwrap();
            prop_assert_eq!(u, user);
            prop_assert_eq!(p.expose_secret(), password);
        }

        /// Any decoded Basic payload: accepted exactly when it is UTF-8 with a colon, and then
        /// split at the first colon (RFC 7617: a user-id cannot contain one).
        #[test]
        fn basic_accepts_exactly_utf8_with_a_colon(
            bytes in prop::collection::vec(prop_oneof![any::<u8>(), Just(b':'), b'a'..=b'z'], 0..32),
        ) {
            let headers = authorization(format!("Basic {}", STANDARD.encode(&bytes)).as_bytes()).unwrap();
            let got = basic_credentials(&headers).map(|(u, p)| (u, p.expose_secret().to_owned()));
            let want = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.split_once(':'))
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .ok_or(CredentialFailure::Malformed);
            prop_assert_eq!(got, want);
        }

        /// `<scheme> <token>` gives back any visible-ASCII token, scheme in any letter case,
        /// with any blanks around.
        #[test]
        fn scheme_values_round_trip(
            token in "[!-~]{1,64}",
            scheme in prop::sample::select(vec!["Bearer", "Token"]),
            upper in prop::collection::vec(any::<bool>(), 6),
            lead in "[ \t]{0,2}",
            gap in "[ \t]{1,3}",
            trail in "[ \t]{0,2}",
        ) {
            let cased: String =
                scheme.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect();
            let headers = authorization(format!("{lead}{cased}{gap}{token}{trail}").as_bytes()).unwrap();
            prop_assert_eq!(scheme_credentials(&headers, scheme), Ok(token.as_str()));
        }

        /// The scheme is matched as a whole word, ignoring ASCII case only: a word that differs
        /// otherwise (a letter changed, dropped or added, a Unicode look-alike such as the
        /// Kelvin sign or the long s) is another scheme, so nothing was presented.
        #[test]
        fn other_scheme_words_are_missing(
            scheme in prop::sample::select(SCHEMES.to_vec()),
            edit in 0..3usize,
            at in any::<prop::sample::Index>(),
            c in prop_oneof![any::<char>(), Just('\u{212A}'), Just('\u{17F}'), Just('\u{131}')],
            value in "[!-~]{1,16}",
        ) {
            let mut word: Vec<char> = scheme.chars().collect();
            let len = word.len();
            match edit {
                0 => word[at.index(len)] = c,
                1 => { word.remove(at.index(len)); }
                _ => word.insert(at.index(len + 1), c),
            }
            let word: String = word.into_iter().collect();
            prop_assume!(!word.eq_ignore_ascii_case(scheme) && !word.contains([' ', '\t']));
            let Some(headers) = authorization(format!("{word} {value}").as_bytes()) else {
                return Err(TestCaseError::reject("not a header value"));
            };
            prop_assert_eq!(scheme_credentials(&headers, scheme), Err(AuthFailure::Missing));
            if scheme == "Basic" {
                prop_assert_eq!(basic_credentials(&headers).unwrap_err(), CredentialFailure::Missing);
            }
        }

        /// Garbage after the right scheme is a typed failure: several words, non-ASCII bytes,
        /// and (for Basic) a value that is not base64.
        #[test]
        fn garbage_is_a_typed_failure(
            scheme in prop::sample::select(SCHEMES.to_vec()),
            words in prop::collection::vec("[!-~]{1,8}", 2..5),
            junk in prop::collection::vec(0x80u8..=0xff, 1..4),
            not_base64 in "[A-Za-z0-9+/=]{0,6}[!#$%&*,.:;<>?@^_`{|}~-][!-~]{0,6}",
        ) {
            let several = authorization(format!("{scheme} {}", words.join(" ")).as_bytes()).unwrap();
            prop_assert_eq!(scheme_credentials(&several, scheme), Err(AuthFailure::Malformed(Malformation::ContainsSpaces)));
            let mut bytes = format!("{scheme} {}", words[0]).into_bytes();
            bytes.extend(&junk);
            let non_ascii = authorization(&bytes).unwrap();
            prop_assert_eq!(scheme_credentials(&non_ascii, scheme), Err(AuthFailure::Malformed(Malformation::InvalidCharacters)));
            let bad = authorization(format!("{scheme} {not_base64}").as_bytes()).unwrap();
            prop_assert_eq!(scheme_credentials(&bad, scheme), Ok(not_base64.as_str()));
            for headers in [&several, &non_ascii, &bad] {
                prop_assert_eq!(basic_credentials(headers).unwrap_err(), if scheme == "Basic" {
                    CredentialFailure::Malformed
                } else {
                    CredentialFailure::Missing
                });
            }
        }
    }
}

mod token_shapes {
    //! `TokenFormat::accepts` and `TokenFormat::generate`.

    use regex::Regex;
    use serde_json::Map;

    use super::*;
    use crate::token::secret::{MAX_JWT_LEN, TokenFormat};

    /// Prefixes a knox deployment might configure, and arbitrary ones.
    fn prefix() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), Just("tka_".to_owned()), Just("é-".to_owned()), "\\PC{0,6}"]
    }

    /// Arbitrary strings, and strings near each shape.
    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9a-fA-F-]{30,40}",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-fA-F]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "(tka_|é-)?[0-9a-hA-H]{62,66}",
            "(tka_|é-)?[0-9a-f]{64}",
            "[A-Za-z0-9_.+/=-]{1,40}",
            "[A-Za-z0-9_-]{1,12}\\.[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_-]{0,12}",
        ]
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Change(prop::sample::Index, char),
        Remove(prop::sample::Index),
        Insert(prop::sample::Index, char),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let c = || prop_oneof![3 => prop::char::range('0', 'z'), 1 => any::<char>()];
        prop_oneof![
            (any::<prop::sample::Index>(), c()).prop_map(|(i, c)| Edit::Change(i, c)),
            any::<prop::sample::Index>().prop_map(Edit::Remove),
            (any::<prop::sample::Index>(), c()).prop_map(|(i, c)| Edit::Insert(i, c)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every generated token has the shape its own format accepts.
        #[test]
        fn generated_tokens_are_accepted_by_their_format(prefix in prefix()) {
            let uuid = TokenFormat::Uuid.generate().unwrap();
            prop_assert!(TokenFormat::Uuid.accepts(uuid.expose()), "{}", uuid.expose());
            let format = TokenFormat::PrefixedHex { prefix: prefix.clone() };
            let knox = format.generate().unwrap();
            prop_assert!(format.accepts(knox.expose()), "{}", knox.expose());
            prop_assert_eq!(knox.expose().len(), prefix.len() + 64);
            prop_assert!(TokenFormat::Jwt(|_, _| Map::new()).generate().is_none());
        }
    }

    proptest! {
        /// On any string each format answers exactly its documented shape: the canonical
        /// (lowercase, hyphenated) spelling of a UUID; the prefix then the lowercase hex of 32
        /// bytes; three non-empty base64url segments within `MAX_JWT_LEN`.
        #[test]
        fn acceptance_is_exactly_the_shape(s in candidate(), prefix in prefix()) {
            let canonical_uuid = uuid::Uuid::try_parse(&s).is_ok_and(|u| u.hyphenated().to_string() == s);
            prop_assert_eq!(TokenFormat::Uuid.accepts(&s), canonical_uuid);

            let canonical_hex = s
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| hex::decode(rest).is_ok_and(|b| b.len() == 32 && hex::encode(b) == rest));
            prop_assert_eq!(TokenFormat::PrefixedHex { prefix }.accepts(&s), canonical_hex);

            let jwt_shape = Regex::new(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$").unwrap();
            let jwt = TokenFormat::Jwt(|_, _| Map::new());
            prop_assert_eq!(jwt.accepts(&s), s.len() <= MAX_JWT_LEN && jwt_shape.is_match(&s));
        }

        /// A knox token with one character changed, removed or added is refused; the only
        /// exception is a hex digit changed to another lowercase hex digit, which is another
        /// well-shaped token (the shape check cannot know which random bytes were issued).
        #[test]
        fn knox_tokens_with_one_edit_are_refused(prefix in prefix(), bytes in any::<[u8; 32]>(), edit in edit()) {
            let format = TokenFormat::PrefixedHex { prefix: prefix.clone() };
            let token = format!("{prefix}{}", hex::encode(bytes));
            prop_assert!(format.accepts(&token));
            let mut chars: Vec<char> = token.chars().collect();
            let in_prefix = prefix.chars().count();
            let expected = match edit {
                Edit::Change(at, c) => {
                    let at = at.index(chars.len());
                    prop_assume!(chars[at] != c);
                    chars[at] = c;
                    at >= in_prefix && matches!(c, '0'..='9' | 'a'..='f')
                }
                Edit::Remove(at) => {
                    chars.remove(at.index(chars.len()));
                    false
                }
                Edit::Insert(at, c) => {
                    chars.insert(at.index(chars.len() + 1), c);
                    false
                }
            };
            let edited: String = chars.into_iter().collect();
            prop_assert_eq!(format.accepts(&edited), expected, "{:?}", edited);
        }

        /// Every UUID (any version) is accepted in its canonical spelling, and no other spelling
        /// of it: uppercase, without hyphens, braced, or as a URN.
        #[test]
        fn uuid_format_accepts_only_canonical_uuids(n in any::<u128>()) {
            let u = uuid::Uuid::from_u128(n);
            let canonical = u.hyphenated().to_string();
            prop_assert!(TokenFormat::Uuid.accepts(&canonical));
            if canonical.bytes().any(|b| b.is_ascii_alphabetic()) {
                prop_assert!(!TokenFormat::Uuid.accepts(&canonical.to_uppercase()));
            }
            for other in [u.simple().to_string(), u.braced().to_string(), u.urn().to_string()] {
                prop_assert!(!TokenFormat::Uuid.accepts(&other), "{}", other);
            }
        }
    }
}

mod jwts {
    //! `Keys::verify` (header, kid, algorithm and signature of a presented JWT) and
    //! `unverified_claims`.

    use std::sync::LazyLock;

    use base64::Engine as _;
    use base64::alphabet::URL_SAFE;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
    use serde_json::{Map, Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::config::{DatabaseConfig, DatabaseUrl};
    use crate::token::jwt::{JwtRefusal, Keys, unverified_claims};
    use crate::token::secret::TokenFormat;

    /// The keys of a fresh service: an in-memory SQLite store, whose first key gets the fixed
    /// kid `initial`.
    fn fresh_keys() -> Keys {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let url = DatabaseUrl::new("sqlite::memory:");
            let store = crate::store::connect(&url, &DatabaseConfig::default()).await.unwrap();
            store.migrate().await.unwrap();
            Keys::load(&*store, None, datetime!(2026-01-01 0:00 UTC)).await.unwrap()
        })
    }

    static KEYS: LazyLock<Keys> = LazyLock::new(fresh_keys);
    /// Another service's keys: same kid, another secret.
    static OTHER_KEYS: LazyLock<Keys> = LazyLock::new(fresh_keys);

    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(Value::from),
        ]
    }

    /// Claims as the dialects write them: names of their own (`acl`, `id`, `jti`...) with any
    /// value, nested ones included, and the registered claims that `jsonwebtoken` reads while
    /// decoding (`exp`, `nbf`, `sub`, `iss`, `aud`) with scalar values only.
    ///
    /// why scalars there: jsonwebtoken 11.1 fails to decode a token whose `exp` is an array
    /// (`{"exp":[0]}`, found by `own_tokens_verify`), even unvalidated and correctly signed:
    /// it swallows the type error halfway through the value and then misreads the rest. Our
    /// dialects write `exp` and `iat` as integers only, so no token we issue is affected.
    fn claims() -> impl Strategy<Value = Map<String, Value>> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        let registered = prop::sample::select(vec!["exp", "nbf", "sub", "iss", "aud"]).prop_map(str::to_owned);
        let own = prop_oneof![
            prop::sample::select(vec!["iat", "jti", "acl", "id", "name", "type"]).prop_map(str::to_owned),
            "[a-z_]{1,8}",
        ]
        .prop_filter("not a registered claim", |name| !["exp", "nbf", "sub", "iss", "aud"].contains(&name.as_str()));
        let nested = json_value().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-z*]{1,4}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        (prop::collection::btree_map(registered, scalar, 0..3), prop::collection::btree_map(own, nested, 0..5))
            .prop_map(|(registered, own)| registered.into_iter().chain(own).collect())
    }

    /// A token signed by the service's own key, with the claims it carries.
    fn signed() -> impl Strategy<Value = (Map<String, Value>, String)> {
        claims().prop_map(|claims| {
            let token = KEYS.sign(&claims).unwrap();
            (claims, token)
        })
    }

    /// The base64url alphabet, in value order.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A token signed by the service's key verifies, has the JWT shape, and carries the
        /// claims it was signed with.
        #[test]
        fn own_tokens_verify((claims, token) in signed()) {
            prop_assert_eq!(KEYS.verify(&token), Ok(()));
            prop_assert!(TokenFormat::Jwt(|_, _| Map::new()).accepts(&token));
            prop_assert_eq!(unverified_claims(&token), Some(claims));
        }

        /// A token signed by another service's key under the same kid is a bad signature.
        #[test]
        fn another_keys_tokens_are_bad_signatures(claims in claims()) {
            let token = OTHER_KEYS.sign(&claims).unwrap();
            prop_assert_eq!(KEYS.signing_kid(), OTHER_KEYS.signing_kid());
            prop_assert_eq!(KEYS.verify(&token), Err(JwtRefusal::BadSignature));
        }
    }

    proptest! {
        /// Any single character changed (to any other character, base64url or not), removed or
        /// added anywhere in a valid token makes it refused.
        #[test]
        fn single_character_edits_are_refused(
            (_, token) in signed(),
            at in any::<prop::sample::Index>(),
            c in prop_oneof![3 => prop::sample::select(ALPHABET.to_vec()).prop_map(char::from), 1 => any::<char>()],
            edit in 0..3u8,
        ) {
            let mut chars: Vec<char> = token.chars().collect();
            match edit {
                0 => {
                    let at = at.index(chars.len());
                    prop_assume!(chars[at] != c);
                    chars[at] = c;
                }
                1 => { chars.remove(at.index(chars.len())); }
                _ => chars.insert(at.index(chars.len() + 1), c),
            }
            let edited: String = chars.into_iter().collect();
            prop_assert!(KEYS.verify(&edited).is_err(), "{} verified", edited);
        }

        /// The edge case of single-character changes: a segment whose length is not a multiple
        /// of 4 ends in a character with unused low bits, so another character there can decode
        /// to the same bytes (the signature always: 43 characters for 32 bytes). Such a token
        /// is still refused: the base64 decoder rejects non-zero unused bits, and for the header
        /// and payload the signature covers their text, not their bytes.
        #[test]
        fn changing_unused_base64_bits_is_refused(
            (_, token) in signed(),
            segment in 0..3usize,
            pick in any::<prop::sample::Index>(),
        ) {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let part = &mut parts[segment];
            let unused_bits = match part.len() % 4 { 2 => 4, 3 => 2, _ => 0 };
            prop_assume!(unused_bits > 0);
            let last = part.pop().unwrap();
            let value = ALPHABET.iter().position(|&b| char::from(b) == last).unwrap();
            let same_bits: Vec<char> = ALPHABET
                .iter()
                .enumerate()
                .filter(|&(v, _)| v != value && v >> unused_bits == value >> unused_bits)
                .map(|(_, &b)| char::from(b))
                .collect();
            let original = URL_SAFE_NO_PAD.decode(format!("{part}{last}")).unwrap();
            part.push(*pick.get(&same_bits));
            let lenient = GeneralPurpose::new(
                &URL_SAFE,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            prop_assert_eq!(lenient.decode(&*part).unwrap(), original, "same bytes, another spelling");
            prop_assert!(URL_SAFE_NO_PAD.decode(&*part).is_err(), "the strict decoder refuses it");
            let edited = parts.join(".");
            prop_assert!(KEYS.verify(&edited).is_err(), "{} verified", edited);
        }

        /// Arbitrary strings never panic and are refused, by the verifier and the display decoder.
        #[test]
        fn arbitrary_strings_are_refused(s in any::<String>()) {
            prop_assert!(KEYS.verify(&s).is_err());
            let _ = unverified_claims(&s);
        }

        /// Any number of dot-separated base64url segments never panic and are refused.
        #[test]
        fn arbitrary_base64url_segments_are_refused(parts in prop::collection::vec("[A-Za-z0-9_-]{0,40}", 1..6)) {
            let s = parts.join(".");
            prop_assert!(KEYS.verify(&s).is_err(), "{} verified", s);
            let _ = unverified_claims(&s);
        }

        /// A forged token with a well-formed header gets the refusal its header earns: another
        /// algorithm is malformed, an unknown kid is an unknown key, our kid with any payload
        /// and any signature bytes is a bad signature.
        #[test]
        fn forged_tokens_get_the_typed_refusal(
            alg in prop::sample::select(vec!["HS256", "HS384", "HS512", "RS256", "ES256", "none", "hs256"]),
            kid in prop_oneof![Just(None), Just(Some("initial".to_owned())), "[a-z0-9-]{0,12}".prop_map(Some)],
            payload in prop_oneof![
                claims().prop_map(|c| serde_json::to_vec(&c).unwrap()),
                prop::collection::vec(any::<u8>(), 0..32),
            ],
            signature in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut head = json!({ "typ": "JWT", "alg": alg });
            if let Some(kid) = &kid {
                head["kid"] = Value::from(kid.as_str());
            }
            let token = [serde_json::to_vec(&head).unwrap(), payload, signature]
                .iter()
                .map(|part| URL_SAFE_NO_PAD.encode(part))
                .collect::<Vec<_>>()
                .join(".");
            let expected = match kid.as_deref() {
                _ if alg != "HS256" => JwtRefusal::Malformed,
                None => JwtRefusal::Malformed,
                Some("initial") => JwtRefusal::BadSignature,
                Some(_) => JwtRefusal::UnknownKey,
            };
            prop_assert_eq!(KEYS.verify(&token), Err(expected));
        }
    }
}

mod rfc3339_times {
    //! `expirationTime` in the usertoken login body.

    use serde_json::{Map, Value};
    use time::format_description::well_known::Rfc3339;
    use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

    use super::*;
    use crate::dialect::usertoken::login_options;
    use crate::error::Error;

    fn expiry(value: Value) -> Result<Option<OffsetDateTime>, Error> {
        let body: Map<String, Value> = [("expirationTime".to_owned(), value)].into_iter().collect();
        login_options(Some(&body)).map(|options| options.expires_at)
    }

    /// An offset of whole minutes, within RFC 3339's ±23:59; often UTC.
    fn offset() -> impl Strategy<Value = UtcOffset> {
        prop_oneof![
            1 => Just(UtcOffset::UTC),
            3 => (-(23 * 60 + 59)..=(23 * 60 + 59)).prop_map(|minutes: i32| {
                UtcOffset::from_hms((minutes / 60) as i8, (minutes % 60) as i8, 0).unwrap()
            }),
        ]
    }

    /// Any instant whose local date is within years 1 to 9999 at any offset, in such an offset.
    fn instant() -> impl Strategy<Value = OffsetDateTime> {
        let first = time::macros::datetime!(0001-01-02 0:00 UTC).unix_timestamp();
        let last = time::macros::datetime!(9999-12-30 23:59:59 UTC).unix_timestamp();
        (first..=last, 0..1_000_000_000u32, offset()).prop_map(|(secs, nanos, offset)| {
            let utc = OffsetDateTime::from_unix_timestamp(secs).unwrap().replace_nanosecond(nanos).unwrap();
            utc.to_offset(offset)
        })
    }

    fn two_digits() -> impl Strategy<Value = u8> {
        prop_oneof![3 => 0..=60u8, 1 => 0..=99u8]
    }

    /// Date and time components, each often out of range.
    #[derive(Debug, Clone)]
    struct Components {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        fraction: Option<String>,
        /// `None`: `Z`; else the sign, hours and minutes.
        offset: Option<(bool, u8, u8)>,
    }

    fn components() -> impl Strategy<Value = Components> {
        (
            prop_oneof![0..=9999u16, Just(1972u16), Just(2016u16)],
            prop_oneof![3 => 1..=12u8, 1 => 0..=99u8],
            prop_oneof![3 => 1..=31u8, 1 => 0..=99u8],
            prop_oneof![3 => 0..=23u8, 1 => Just(23u8), 1 => 0..=99u8],
            prop_oneof![3 => 0..=59u8, 1 => Just(59u8), 1 => 0..=99u8],
            prop_oneof![3 => 0..=59u8, 1 => Just(60u8), 1 => two_digits()],
            prop::option::of("[0-9]{1,12}"),
            prop::option::of((any::<bool>(), prop_oneof![3 => 0..=23u8, 1 => 0..=99u8], two_digits())),
        )
            .prop_map(|(year, month, day, hour, minute, second, fraction, offset)| Components {
                year,
                month,
                day,
                hour,
                minute,
                second,
                fraction,
                offset,
            })
    }

    /// What RFC 3339 (with the leap-second rule of `time`) makes of the components: `None` if
    /// any is out of range. A leap second (`:60`) is valid only as the last second of a month
    /// in UTC, and reads as the nanosecond before the next minute.
    fn meaning(c: &Components) -> Option<OffsetDateTime> {
        let date = Date::from_calendar_date(i32::from(c.year), Month::try_from(c.month).ok()?, c.day).ok()?;
        let nanos = c.fraction.as_ref().map_or(0, |f| format!("{f:0<9}")[..9].parse::<u32>().unwrap());
        let leap = c.second == 60;
        let time = if leap {
            Time::from_hms_nano(c.hour, c.minute, 59, 999_999_999)
        } else {
            Time::from_hms_nano(c.hour, c.minute, c.second, nanos)
        }
        .ok()?;
        let offset = match c.offset {
            None => UtcOffset::UTC,
            Some((negative, h, m)) => {
                let sign = if negative { -1 } else { 1 };
                if h > 23 {
                    return None;
                }
                UtcOffset::from_hms(sign * h as i8, sign * i8::try_from(m).ok()?, 0).ok()?
            }
        };
        let dt = date.with_time(time).assume_offset(offset);
        if leap {
            let utc = dt.to_offset(UtcOffset::UTC);
            let last_of_month = utc.date().next_day().is_none_or(|d| d.month() != utc.month());
            if !(last_of_month && (utc.hour(), utc.minute(), utc.second()) == (23, 59, 59)) {
                return None;
            }
        }
        Some(dt)
    }

    proptest! {
        /// Any instant in years 1 to 9999, at any offset, formatted as RFC 3339, parses back to
        /// the same instant and offset.
        #[test]
        fn formatted_times_parse_back(dt in instant()) {
            let text = dt.format(&Rfc3339).unwrap();
            let parsed = expiry(Value::from(text.as_str())).unwrap().unwrap();
            prop_assert_eq!(parsed, dt, "{}", text);
            prop_assert_eq!(parsed.offset(), dt.offset());
        }

        /// The same, written by hand in RFC 3339's other spellings: `t` or a space for `T`, `z`
        /// for `Z`, `-00:00`, and 0 to 12 fraction digits (past nine they are ignored).
        #[test]
        fn hand_written_times_parse_to_their_instant(
            dt in instant(),
            separator in prop::sample::select(vec!['T', 't', ' ']),
            zulu in prop::sample::select(vec!["Z", "z", "+00:00", "-00:00"]),
            digits in 0..=12usize,
        ) {
            let nanos = format!("{:09}{}", dt.nanosecond(), "123");
            let fraction = if digits == 0 { String::new() } else { format!(".{}", &nanos[..digits]) };
            let offset = if dt.offset().is_utc() {
                zulu.to_owned()
            } else {
                let (h, m, _) = dt.offset().as_hms();
                format!("{}{:02}:{:02}", if dt.offset().is_negative() { '-' } else { '+' }, h.abs(), m.abs())
            };
            let text = format!(
                "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}{fraction}{offset}",
                dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second()
            );
            let kept = nanos[..digits.min(9)].parse::<u32>().unwrap_or(0) * 10u32.pow(9 - digits.min(9) as u32);
            let want = dt.replace_nanosecond(kept).unwrap();
            prop_assert_eq!(expiry(Value::from(text.as_str())).unwrap(), Some(want), "{}", text);
        }

        /// Date-time-shaped strings with components often out of range: accepted exactly when
        /// every component is in range (and a leap second is the last of a month, UTC), with
        /// the meaning of the components; otherwise `Error::Invalid`.
        #[test]
        fn out_of_range_components_are_refused(c in components()) {
            let fraction = c.fraction.as_ref().map_or(String::new(), |f| format!(".{f}"));
            let offset = c.offset.map_or("Z".to_owned(), |(negative, h, m)| {
                format!("{}{h:02}:{m:02}", if negative { '-' } else { '+' })
            });
            let text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{offset}",
                c.year, c.month, c.day, c.hour, c.minute, c.second
            );
            match (expiry(Value::from(text.as_str())), meaning(&c)) {
                (Ok(got), want) => prop_assert_eq!(got, want, "{}", text),
                (Err(Error::Invalid(_)), None) => {}
                (got, want) => prop_assert!(false, "{text}: got {got:?}, want {want:?}"),
            }
        }

        /// Any string, or any other JSON value, never panics: a string is a time or
        /// `Error::Invalid`; `null` is no expiry; anything else is a field error.
        #[test]
        fn arbitrary_values_are_typed_failures(
            value in prop_oneof![
                any::<String>().prop_map(Value::from),
                "[0-9:.tTzZ+ -]{0,40}".prop_map(Value::from),
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
            ],
        ) {
            let string = value.is_string();
            match expiry(value.clone()) {
                Ok(Some(_)) | Err(Error::Invalid(_)) => prop_assert!(string, "{value}"),
                Ok(None) => prop_assert!(value.is_null()),
                Err(Error::Fields(_)) => prop_assert!(!string && !value.is_null(), "{value}"),
                Err(other) => prop_assert!(false, "{value}: {other:?}"),
            }
        }
    }
}

mod client_ips {
    //! `client_ip::resolve`: the socket peer, or the client a trusted proxy forwarded.

    use std::collections::HashSet;

    use ipnet::IpNet;

    use super::*;
    use crate::middleware::client_ip::{TrustedProxies, resolve};

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
}

mod allowed_ips {
    //! `parse_allowed_ip`: a reseller's allowed address or CIDR. (The configuration's
    //! `trusted_proxies` are read by `ipnet`'s own deserializer: no parser of ours.)

    use ipnet::{IpNet, Ipv4Net, Ipv6Net};

    use super::*;
    use crate::error::Error;
    use crate::token::parse_allowed_ip;

    /// An IPv6 address that is not IPv4-mapped.
    fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
        any::<Ipv6Addr>().prop_filter("not IPv4-mapped", |ip| ip.to_ipv4_mapped().is_none())
    }

    /// The standard spelling of an address, or (IPv6) all eight groups written out.
    fn spell(ip: Ipv6Addr, full: bool) -> String {
        if full { expanded(ip) } else { ip.to_string() }
    }

    /// Arbitrary strings and strings near an address or a CIDR.
    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9./]{1,20}",
            "[0-9a-fA-F:./]{1,45}",
            "(::ffff:)?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?",
        ]
    }

    proptest! {
        /// Any IPv4 address with any prefix length 0 to 32 is that network (host bits cleared).
        #[test]
        fn ipv4_networks_round_trip(ip in any::<Ipv4Addr>(), len in 0..=32u8) {
            let want = IpNet::V4(Ipv4Net::new(ip, len).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{ip}/{len}")).unwrap(), want);
        }

        /// Any IPv6 address (not IPv4-mapped) with any prefix length 0 to 128, compressed or
        /// written out, is that network (host bits cleared).
        #[test]
        fn ipv6_networks_round_trip(ip in ipv6(), len in 0..=128u8, full in any::<bool>()) {
            let want = IpNet::V6(Ipv6Net::new(ip, len).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{}/{len}", spell(ip, full))).unwrap(), want);
        }

        /// An IPv4-mapped network with a prefix of 96 or more is its IPv4 network.
        #[test]
        fn mapped_networks_fold_to_ipv4(ip in any::<Ipv4Addr>(), len in 96..=128u8, full in any::<bool>()) {
            let want = IpNet::V4(Ipv4Net::new(ip, len - 96).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{}/{len}", spell(ip.to_ipv6_mapped(), full))).unwrap(), want);
        }

        /// An IPv4-mapped address with a prefix under 96 (a network that mixes mapped and
        /// other IPv6 addresses) is refused, as `parse_allowed_ip` documents.
        #[test]
        fn mapped_addresses_with_short_prefixes_are_refused(ip in any::<Ipv4Addr>(), len in 0..96u8, full in any::<bool>()) {
            let s = format!("{}/{len}", spell(ip.to_ipv6_mapped(), full));
            let got = parse_allowed_ip(&s);
            prop_assert!(matches!(got, Err(Error::InvalidAttribute(_))), "{}: {:?}", s, got);
        }

        /// A bare address is one host; an IPv4-mapped one is that IPv4 host.
        #[test]
        fn bare_addresses_are_one_host(ip in any::<IpAddr>()) {
            let want = match canonical(ip) {
                IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, 32).unwrap()),
                IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, 128).unwrap()),
            };
            prop_assert_eq!(parse_allowed_ip(&ip.to_string()).unwrap(), want);
        }

        /// A prefix length past the address's width is refused.
        #[test]
        fn invalid_prefix_lengths_are_refused(ip in any::<IpAddr>(), extra in prop_oneof![0..=4u64, 0..=1000u64, Just(u64::from(u32::MAX))]) {
            let len = extra + if ip.is_ipv4() { 33 } else { 129 };
            let s = format!("{ip}/{len}");
            prop_assert!(matches!(parse_allowed_ip(&s), Err(Error::InvalidAttribute(_))), "{}", s);
        }

        /// Arbitrary strings never panic; an accepted network has its host bits cleared, is
        /// never an IPv4-mapped IPv6 network, and contains the address it was written with.
        #[test]
        fn accepted_networks_are_canonical(s in candidate()) {
            let Ok(net) = parse_allowed_ip(&s) else { return Ok(()) };
            prop_assert_eq!(net, net.trunc(), "{}", s);
            if let IpNet::V6(v6) = net {
                prop_assert!(v6.addr().to_ipv4_mapped().is_none(), "{}: {}", s, net);
            }
            let written = s.split_once('/').map_or(s.as_str(), |(addr, _)| addr);
            if let Ok(ip) = written.parse::<IpAddr>() {
                prop_assert!(net.contains(&canonical(ip)), "{}: {}", s, net);
            }
        }
    }
}
