//! Token formats: how each dialect's token strings look, how fresh ones are generated, and the
//! cheap shape check run before any lookup. The secrets themselves (`PlainToken`, `TokenHash`)
//! are in the model.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use serde_json::{Map, Value};

use crate::model::{PlainToken, Principal, Token};

/// The claims a JWT dialect puts in its tokens, from the row being issued and its owner. The
/// service adds `jti` (the row id) and signs; the dialect owns every other claim and its units.
pub type JwtClaims = fn(&Token, &Principal) -> Map<String, Value>;

/// The shape of the token strings a dialect issues.
#[derive(Clone)]
pub enum TokenFormat {
    /// A random UUID v4, hyphenated and lowercase (usertoken).
    Uuid,
    /// An optional fixed prefix, then 64 lowercase hex characters from 32 random bytes (knox).
    PrefixedHex {
        /// Prepended to every token; may be empty.
        prefix: String,
    },
    /// An HS256 JWT signed by the service's keys, with the dialect's claims (webitel, dialer).
    Jwt(JwtClaims),
}

impl std::fmt::Debug for TokenFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFormat::Uuid => f.write_str("Uuid"),
            TokenFormat::PrefixedHex { prefix } => f.debug_struct("PrefixedHex").field("prefix", prefix).finish(),
            TokenFormat::Jwt(_) => f.write_str("Jwt"),
        }
    }
}

/// why 8 KiB: far above any token we issue (a JWT with a large ACL is a few KiB), and it keeps
/// a hostile header from costing more than a quick scan.
pub(crate) const MAX_JWT_LEN: usize = 8 * 1024;

/// why 32 bytes: 256 bits from the OS CSPRNG, as django-rest-knox does since 4.2 (64 hex chars).
const HEX_TOKEN_BYTES: usize = 32;

impl TokenFormat {
    /// Generate a fresh random token from the OS CSPRNG; `None` for JWTs, which the service
    /// signs instead.
    pub fn generate(&self) -> Option<PlainToken> {
        match self {
            TokenFormat::Uuid => Some(PlainToken::new(uuid::Uuid::new_v4().hyphenated().to_string())),
            TokenFormat::PrefixedHex { prefix } => {
                let mut bytes = [0u8; HEX_TOKEN_BYTES];
                OsRng.fill_bytes(&mut bytes);
                Some(PlainToken::new(format!("{prefix}{}", hex::encode(bytes))))
            }
            TokenFormat::Jwt(_) => None,
        }
    }

    /// The cheap shape check run before any lookup, so garbage never reaches the database.
    pub fn accepts(&self, token: &str) -> bool {
        match self {
            TokenFormat::Uuid => {
                token.len() == 36
                    && uuid::Uuid::try_parse(token).is_ok()
                    && !token.bytes().any(|b| b.is_ascii_uppercase())
            }
            TokenFormat::PrefixedHex { prefix } => token.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.len() == HEX_TOKEN_BYTES * 2 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }),
            // Three non-empty base64url segments; the signature is checked by the keys.
            TokenFormat::Jwt(_) => {
                token.len() <= MAX_JWT_LEN
                    && token.split('.').count() == 3
                    && token.split('.').all(|part| {
                        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_their_format_and_are_distinct() {
        for format in [
            TokenFormat::Uuid,
            TokenFormat::PrefixedHex { prefix: String::new() },
            TokenFormat::PrefixedHex { prefix: "tka_".into() },
        ] {
            let a = format.generate().unwrap();
            let b = format.generate().unwrap();
            assert!(format.accepts(a.expose()), "{format:?} refused its own token");
            assert_ne!(a.expose(), b.expose());
            assert_ne!(a.digest(), b.digest());
        }
        let knox = TokenFormat::PrefixedHex { prefix: "tka_".into() }.generate().unwrap();
        assert_eq!(knox.expose().len(), 4 + 64);
    }

    #[test]
    fn format_check_refuses_near_misses() {
        let hex = TokenFormat::PrefixedHex { prefix: String::new() };
        assert!(!hex.accepts(&"a".repeat(63)));
        assert!(!hex.accepts(&"A".repeat(64)));
        assert!(!hex.accepts(&"g".repeat(64)));
        assert!(hex.accepts(&"a".repeat(64)));
        let pre = TokenFormat::PrefixedHex { prefix: "p_".into() };
        assert!(!pre.accepts(&"a".repeat(64)));
        assert!(pre.accepts(&format!("p_{}", "a".repeat(64))));
        assert!(!TokenFormat::Uuid.accepts("not-a-uuid"));
        assert!(!TokenFormat::Uuid.accepts("B94CF5C7-CDDC-4610-9D4C-6B8E04088AE8"));
        assert!(TokenFormat::Uuid.accepts("b94cf5c7-cddc-4610-9d4c-6b8e04088ae8"));
        let jwt = TokenFormat::Jwt(|_, _| Map::new());
        assert!(
            jwt.accepts(
                "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.pKXWfzXqbp8FMbOKocNaSlT1bYq4Xqzol-0kEXOY0_s"
            )
        );
        for bad in ["a.b", "a..c", "a.b.c.d", "a.b+.c", "a b.c.d", ""] {
            assert!(!jwt.accepts(bad), "{bad:?}");
        }
        assert!(!jwt.accepts(&format!("a.{}.c", "b".repeat(MAX_JWT_LEN))));
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests of `TokenFormat::accepts` and `TokenFormat::generate`.
    //! Why property tests, and which oracles: `crate::test_strategies`.

    use proptest::prelude::*;
    use regex::Regex;
    use serde_json::Map;

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
