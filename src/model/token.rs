//! Tokens: the plaintext a client holds, the digest the store keeps, the row, and the JWT
//! signing keys.
//!
//! Policy: a `PlainToken` exists only between generation and the response that hands it to
//! the client (or between the request header and the digest). It never reaches a log: its
//! `Debug` is redacted and it has no `Display`. The store sees only `TokenHash`.

use std::fmt;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::dialect::Issuer;
use super::principal::PrincipalKind;
use super::role::Role;

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

    /// A digest read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
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

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Issued by a login.
    Session,
    /// Minted by an administrator.
    Static,
}

impl TokenKind {
    /// The value stored in `tokens.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Static => "static",
        }
    }

    /// Parse a stored `tokens.kind`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(TokenKind::Session),
            "static" => Some(TokenKind::Static),
            _ => None,
        }
    }
}

/// A token row. The token string itself is never stored, only its digest (not repeated here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Row id; also the JWT `jti` for dialects that issue JWTs.
    pub id: Uuid,
    /// Owner.
    pub principal_id: i64,
    /// The dialect that issued it (or the web page); only its issuer accepts it.
    pub issuer: Issuer,
    /// Session or static.
    pub kind: TokenKind,
    /// Free text from the client or the administrator.
    pub note: Option<String>,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// Absolute expiry; `None` never expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Last successful use, written at most once a minute.
    pub last_used_at: Option<OffsetDateTime>,
    /// A disabled token is refused until enabled again.
    pub enabled: bool,
    /// Bumped on every administrative change of the row.
    pub version: i64,
    /// Set on revocation; the row stays as a tombstone until the sweep.
    pub revoked_at: Option<OffsetDateTime>,
}

/// The owner of a token, as a token lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Principal id.
    pub id: i64,
    /// User or reseller.
    pub kind: PrincipalKind,
    /// Principal name.
    pub name: String,
    /// Whether the principal is enabled.
    pub enabled: bool,
    /// The principal's role, if any.
    pub role: Option<Role>,
}

/// A token row together with its owner, in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    /// The token row.
    pub token: Token,
    /// Its owner.
    pub owner: Owner,
}

/// An HMAC key for signing JWTs. Its secret is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id, the JWT header's `kid`.
    pub kid: String,
    /// The secret, at least 32 bytes.
    pub secret: Vec<u8>,
    /// When it was added; the newest signs.
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"[REDACTED]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(TokenHash::from_bytes(*h.as_bytes()), h);
    }
}
