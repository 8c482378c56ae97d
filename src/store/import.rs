//! What an import writes, planned by the importer (`crate::import`) and applied by the store in
//! one transaction: all of it, or (on any error, a unique name taken meanwhile included)
//! nothing.

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::{Acl, Issuer, PrincipalKind, TokenDigest, TokenHash, TokenKind, Username};

/// One import, planned.
#[derive(Debug, Default)]
pub struct ImportBatch<'a> {
    /// Roles to create when no role has the name (an existing one is left as it is).
    pub roles: Vec<ImportRole<'a>>,
    /// Principals to create, update, or keep (to own imported tokens).
    pub principals: Vec<ImportPrincipal<'a>>,
    /// Tokens to insert; one an earlier import wrote, or whose id or digest another row has,
    /// is left alone.
    pub tokens: Vec<ImportToken<'a>>,
    /// Legacy JWT keys to add when none has the name.
    pub jwt_keys: Vec<ImportJwtKey<'a>>,
}

/// A role an import needs (Webitel's, from its tokens).
#[derive(Debug)]
pub struct ImportRole<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Integer code.
    pub code: i64,
    /// Its ACL.
    pub acl: &'a Acl,
}

/// What to do with an imported principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalAction {
    /// Insert it (the name is free).
    Create,
    /// Replace the password (and scheme, fingerprint, enabled) of this existing principal.
    Update(i64),
    /// Leave this existing principal as it is; its imported tokens are still inserted.
    Keep(i64),
}

/// An imported principal. Its password hash is redacted in `Debug`.
pub struct ImportPrincipal<'a> {
    /// Create, update or keep.
    pub action: PrincipalAction,
    /// User or reseller.
    pub kind: PrincipalKind,
    /// Its name.
    pub name: &'a Username,
    /// The hash as imported (or an argon2id PHC string).
    pub password_hash: &'a str,
    /// `principals.password_scheme` (`None`: argon2).
    pub password_scheme: Option<String>,
    /// The fingerprint of what was imported, which a later import compares.
    pub imported_credential: &'a str,
    /// Whether it may log in.
    pub enabled: bool,
    /// When the old system created it.
    pub created_at: OffsetDateTime,
    /// A role, by name (one of `ImportBatch::roles`, or existing).
    pub role: Option<&'a str>,
}

impl fmt::Debug for ImportPrincipal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportPrincipal")
            .field("action", &self.action)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("password_scheme", &self.password_scheme)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// An imported token. Its digests are not secrets, but are left out of `Debug` all the same.
pub struct ImportToken<'a> {
    /// Its owner: an index into `ImportBatch::principals`.
    pub owner: usize,
    /// The row id (Webitel's key; otherwise derived from the digest, so a second import of the
    /// same token finds the first).
    pub id: Uuid,
    /// The dialect that accepts it.
    pub issuer: Issuer,
    /// Session or static.
    pub kind: TokenKind,
    /// The SHA-256 of the token; for a legacy digest, a placeholder no token hashes to.
    pub digest: TokenHash,
    /// How `legacy` was made (`Sha256` when the token's own digest is known).
    pub digest_scheme: TokenDigest,
    /// A legacy digest: its key (the token's first characters), digest (hex) and salt.
    pub legacy: Option<(&'a str, &'a str, Option<&'a str>)>,
    /// A note.
    pub note: Option<&'a str>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it expires, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used, if known.
    pub last_used_at: Option<OffsetDateTime>,
    /// Whether it is enabled.
    pub enabled: bool,
}

impl fmt::Debug for ImportToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportToken")
            .field("owner", &self.owner)
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("digest_scheme", &self.digest_scheme)
            .finish_non_exhaustive()
    }
}

/// A verify-only JWT key of an old system. Its secret is redacted in `Debug`.
pub struct ImportJwtKey<'a> {
    /// Its name (`webitel`).
    pub name: &'a str,
    /// The secret, as the old system read it.
    pub secret: &'a [u8],
    /// When it was imported.
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for ImportJwtKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportJwtKey").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What an applied import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportApplied {
    /// Roles created.
    pub roles_created: u64,
    /// Principals created.
    pub principals_created: u64,
    /// Principals updated.
    pub principals_updated: u64,
    /// Tokens inserted.
    pub tokens_created: u64,
    /// Tokens an earlier import wrote (whatever became of them since).
    pub tokens_unchanged: u64,
    /// Tokens not written because another row has their id or digest: their indexes.
    pub tokens_taken: Vec<usize>,
    /// Legacy JWT keys added.
    pub keys_created: u64,
}
