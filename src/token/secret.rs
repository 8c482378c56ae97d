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
