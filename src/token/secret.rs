//! Token secrets: the plaintext a client holds, and the digest the store keeps.
//!
//! Policy: a `PlainToken` exists only between generation and the response that hands it to
//! the client (or between the request header and the digest). It never reaches a log: its
//! `Debug` is redacted and it has no `Display`. The store sees only `TokenHash`.

use std::fmt;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// A token as the client sees it. Redacted in `Debug`.
#[derive(Clone)]
pub struct PlainToken(String);

impl PlainToken {
    /// Wrap a presented or generated token string.
    pub fn new(s: impl Into<String>) -> Self {
        PlainToken(s.into())
    }

    /// The token string, to put in a response.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256 digest, the only form that is stored.
    pub fn digest(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken([REDACTED])")
    }
}

/// SHA-256 of a token string.
///
/// why SHA-256 and not argon2: tokens carry 122+ bits of randomness, so a fast digest is as
/// safe as a slow one against guessing, and it lets the store look a token up by an index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The digest of a token string.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest, for binding in SQL.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // why: a digest is not a secret, but a short prefix is enough to correlate in a debugger.
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// The shape of the token strings a dialect issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFormat {
    /// A random UUID v4, hyphenated and lowercase (usertoken).
    Uuid,
    /// An optional fixed prefix, then 64 lowercase hex characters from 32 random bytes (knox).
    PrefixedHex {
        /// Prepended to every token; may be empty.
        prefix: String,
    },
}

/// why 32 bytes: 256 bits from the OS CSPRNG, as django-rest-knox does since 4.2 (64 hex chars).
const HEX_TOKEN_BYTES: usize = 32;

impl TokenFormat {
    /// Generate a fresh token from the OS CSPRNG.
    pub fn generate(&self) -> PlainToken {
        match self {
            TokenFormat::Uuid => PlainToken(uuid::Uuid::new_v4().hyphenated().to_string()),
            TokenFormat::PrefixedHex { prefix } => {
                let mut bytes = [0u8; HEX_TOKEN_BYTES];
                OsRng.fill_bytes(&mut bytes);
                PlainToken(format!("{prefix}{}", hex::encode(bytes)))
            }
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
            let a = format.generate();
            let b = format.generate();
            assert!(format.accepts(a.expose()), "{format:?} refused its own token");
            assert_ne!(a.expose(), b.expose());
            assert_ne!(a.digest(), b.digest());
        }
        let knox = TokenFormat::PrefixedHex { prefix: "tka_".into() }.generate();
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
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let t = PlainToken::new("super-secret-value");
        assert!(!format!("{t:?}").contains("super-secret"));
        let h = t.digest();
        assert!(!format!("{h:?}").contains(&hex::encode(h.as_bytes())));
    }

    #[test]
    fn digest_is_sha256() {
        let h = TokenHash::of("abc");
        assert_eq!(hex::encode(h.as_bytes()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(h, TokenHash::of("abd"));
    }
}
