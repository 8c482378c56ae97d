//! Moving in: importing principals, their passwords and their live tokens from the systems
//! tokenauth replaces (django-rest-knox, szurubooru, Webitel) or from a file in tokenauth's own
//! format, so that on the day of the switch every user logs in with the password they have and
//! every token that worked keeps working, in its own dialect.
//!
//! Policy:
//! - Each source (`knox`, `szurubooru`, `webitel`, `file`) only reads: it turns what it finds
//!   into `Record`s. Everything else is decided here, once: what is refused, what a name that
//!   exists already means, what is written.
//! - Everything is checked before anything is written: a hash this module does not understand,
//!   a cost past the bounds, a duplicate name, a digest of the wrong length, a pepper that is
//!   not configured. Any refusal, or a conflict under `--on-conflict fail`, writes nothing.
//! - The import is one transaction: all of it is written, or nothing. Running it again
//!   changes nothing and says so: a principal is recognised by a fingerprint of the credential
//!   imported for it (even after its first login replaced the hash), a token by its id, which
//!   is Webitel's key or derived from the token's digest.
//! - `--dry-run` runs the same transaction and rolls it back, so its figures are exact.
//! - Passwords, hashes and tokens are never printed or logged; messages name the line (or row)
//!   and the scheme.

pub mod file;
pub mod knox;
mod plan;
mod report;
pub mod szurubooru;
pub mod webitel;

use std::collections::HashMap;
use std::fmt;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::plan::run;
pub use self::report::{Counts, Refusal, Report};
use crate::model::{
    Acl, DialectId, KnoxHash, KnoxVersion, PasswordScheme, PlainToken, PrincipalKind, TokenHash, TokenKind,
};

/// What a name that exists already, with another password, means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnConflict {
    /// Refuse the whole import (nothing is written).
    #[default]
    Fail,
    /// Keep the existing principal as it is, and import none of the record's tokens.
    Skip,
    /// Replace the existing principal's password (and enabled) with the imported one.
    Update,
}

/// How to run an import.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Roll the transaction back at the end.
    pub dry_run: bool,
    /// See `OnConflict`.
    pub on_conflict: OnConflict,
}

/// A password as imported: its scheme and the hash kept exactly as the old system stored it.
/// Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// How it is verified.
    pub scheme: PasswordScheme,
    /// The hash.
    pub encoded: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("scheme", &self.scheme).field("encoded", &"[REDACTED]").finish()
    }
}

/// How an imported token is known.
#[derive(Clone)]
pub enum Secret {
    /// In plain text (szurubooru's UserTokens, Webitel's JWTs): digested now, never stored.
    Plain(PlainToken),
    /// Its SHA-256 (the file format's `sha256`).
    Sha256(TokenHash),
    /// A django-rest-knox digest, to be recomputed at the token's first check.
    Knox {
        /// The knox version that made it.
        version: KnoxVersion,
        /// Its hash.
        hash: KnoxHash,
        /// `token_key`: the token's first characters.
        key: String,
        /// Lowercase hex.
        digest: String,
        /// 4.1's salt.
        salt: Option<String>,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Plain(_) => "Plain([REDACTED])",
            Secret::Sha256(_) => "Sha256(..)",
            Secret::Knox { .. } => "Knox(..)",
        })
    }
}

/// One token of a record.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The line (or row) it came from, for messages.
    pub line: usize,
    /// The dialect that will accept it.
    pub dialect: DialectId,
    /// The token, or its digest.
    pub secret: Secret,
    /// Its row id, when the old system gave it one (Webitel's key); else derived.
    pub id: Option<Uuid>,
    /// Session or static.
    pub kind: TokenKind,
    /// A note.
    pub note: Option<String>,
    /// When it was issued; `None`: now.
    pub created_at: Option<OffsetDateTime>,
    /// When it expires, if ever. Tokens already expired are skipped.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used.
    pub last_used_at: Option<OffsetDateTime>,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// One principal as a source read it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The line (or row) it came from, for messages.
    pub line: usize,
    /// User or reseller.
    pub kind: PrincipalKind,
    /// Its name, not yet checked.
    pub name: String,
    /// Its password; `None`: no usable password (its tokens still work).
    pub password: Option<Credential>,
    /// Whether it may log in.
    pub enabled: bool,
    /// When the old system created it; `None`: now.
    pub created_at: Option<OffsetDateTime>,
    /// A role, by name (one of the import's `roles`, or an existing one).
    pub role: Option<String>,
    /// Its tokens.
    pub tokens: Vec<TokenRecord>,
}

/// A role an import creates when no role has its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    /// Its name.
    pub name: String,
    /// Its integer code.
    pub code: i64,
    /// Its ACL.
    pub acl: Acl,
}

/// Everything a source read. Its secrets are left out of `Debug`.
#[derive(Default)]
pub struct Batch {
    /// Where it came from, for the report (`knox 4.2 (sha512) from sqlite://…`).
    pub source: String,
    /// The principals, each with its tokens.
    pub records: Vec<Record>,
    /// Roles the records name.
    pub roles: Vec<RoleRecord>,
    /// Legacy JWT keys (name, secret) to verify the imported JWTs.
    pub jwt_keys: Vec<(String, Vec<u8>)>,
    /// What the source refused while reading (a line that does not parse, a token of no user).
    pub refused: Vec<Refusal>,
    /// What the source left out on purpose, and why (an expired token).
    pub skipped: Vec<Refusal>,
    /// Peppers given on the command line (name, value): each must be the configured one.
    pub peppers_given: Vec<(String, SecretString)>,
}

impl Batch {
    /// The index of the record of the old system's user `user_id`, for a token found at
    /// `line`; `None`, with the line refused, when no record has that id.
    pub(crate) fn owner(&mut self, by_id: &HashMap<i64, usize>, user_id: i64, line: usize) -> Option<usize> {
        let owner = by_id.get(&user_id).copied();
        if owner.is_none() {
            self.refused.push(Refusal {
                line,
                name: format!("user id {user_id}"),
                why: "a token whose user is not among the users read (or was refused)".into(),
            });
        }
        owner
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("source", &self.source)
            .field("records", &self.records)
            .field("roles", &self.roles)
            .field("jwt_keys", &self.jwt_keys.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("refused", &self.refused)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}
