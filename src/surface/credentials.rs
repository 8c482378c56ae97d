//! Parsing credentials out of the `Authorization` header, shared by the dialects.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

use crate::error::{AuthFailure, CredentialFailure, Malformation};

/// The value of `Authorization: <scheme> <value>`, scheme compared case-insensitively.
///
/// No header, or another scheme: `Missing` (so a client using another scheme for another
/// service is told nothing was presented). The scheme alone: `Malformed(Empty)`. More than one
/// word after it: `Malformed(ContainsSpaces)`. Not visible ASCII: `Malformed(InvalidCharacters)`.
pub(crate) fn scheme_credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h str, AuthFailure> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure::Missing);
    };
    // why raw bytes first: a header of another scheme is "not provided", whatever its bytes.
    let first = raw.as_bytes().split(u8::is_ascii_whitespace).find(|w| !w.is_empty());
    if !first.is_some_and(|w| w.eq_ignore_ascii_case(scheme.as_bytes())) {
        return Err(AuthFailure::Missing);
    }
    let Ok(value) = raw.to_str() else {
        return Err(AuthFailure::Malformed(Malformation::InvalidCharacters));
    };
    let mut words = value.split_ascii_whitespace();
    words.next();
    let Some(token) = words.next() else {
        return Err(AuthFailure::Malformed(Malformation::Empty));
    };
    if words.next().is_some() {
        return Err(AuthFailure::Malformed(Malformation::ContainsSpaces));
    }
    Ok(token)
}

/// `Authorization: Basic base64(username:password)`.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Result<(String, SecretString), CredentialFailure> {
    let encoded = match scheme_credentials(headers, "Basic") {
        Ok(v) => v,
        Err(AuthFailure::Missing) => return Err(CredentialFailure::Missing),
        Err(_) => return Err(CredentialFailure::Malformed),
    };
    let decoded = STANDARD.decode(encoded).map_err(|_| CredentialFailure::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| CredentialFailure::Malformed)?;
    let (user, password) = text.split_once(':').ok_or(CredentialFailure::Malformed)?;
    Ok((user.to_owned(), SecretString::from(password)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    fn auth(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn scheme_values() {
        assert_eq!(scheme_credentials(&HeaderMap::new(), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"Bearer abc"), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"token abc"), "Token"), Ok("abc"));
        assert_eq!(scheme_credentials(&auth(b"TOKEN  abc "), "Token"), Ok("abc"));
        assert_eq!(scheme_credentials(&auth(b"Token"), "Token"), Err(AuthFailure::Malformed(Malformation::Empty)));
        assert_eq!(
            scheme_credentials(&auth(b"Token a b"), "Token"),
            Err(AuthFailure::Malformed(Malformation::ContainsSpaces))
        );
        assert_eq!(
            scheme_credentials(&auth(b"Token \xff\xfe"), "Token"),
            Err(AuthFailure::Malformed(Malformation::InvalidCharacters))
        );
        assert_eq!(scheme_credentials(&auth(b"Bearer \xff\xfe"), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"Tokenx abc"), "Token"), Err(AuthFailure::Missing));
    }

    #[test]
    fn basic_values() {
        let (u, p) = basic_credentials(&auth(b"Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z")).unwrap();
        assert_eq!(u, "alice");
        assert_eq!(p.expose_secret(), "s3cr3t:with:colons");
        assert_eq!(basic_credentials(&HeaderMap::new()).unwrap_err(), CredentialFailure::Missing);
        assert_eq!(basic_credentials(&auth(b"Bearer x")).unwrap_err(), CredentialFailure::Missing);
        assert_eq!(basic_credentials(&auth(b"Basic")).unwrap_err(), CredentialFailure::Malformed);
        assert_eq!(basic_credentials(&auth(b"Basic !!!")).unwrap_err(), CredentialFailure::Malformed);
        // base64("nocolon")
        assert_eq!(basic_credentials(&auth(b"Basic bm9jb2xvbg==")).unwrap_err(), CredentialFailure::Malformed);
        // base64 of invalid UTF-8 bytes ff fe 3a 61
        assert_eq!(basic_credentials(&auth(b"Basic //46YQ==")).unwrap_err(), CredentialFailure::Malformed);
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests of `Authorization: <scheme> <value>` and
    //! `Authorization: Basic base64(user:password)`.
    //! Why property tests, and which oracles: `crate::test_strategies`.

    use axum::http::{HeaderMap, HeaderValue, header};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use secrecy::ExposeSecret as _;

    use crate::error::{AuthFailure, CredentialFailure, Malformation};
    use crate::surface::{basic_credentials, scheme_credentials};
    use crate::test_strategies::header_byte;

    /// Letters of `word` upper- or lowercased at random.
    fn any_case(word: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
            word.chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        })
    }

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
