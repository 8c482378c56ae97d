//! Issuing tokens: minting (administrators' static and session tokens) and the one insert
//! that every issue goes through (format, JWT claims, token limit, credentials unchanged).

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::secret::TokenFormat;
use super::{NOTE_MAX_CHARS, TokenPolicy, TokenService};
use crate::error::{CredentialFailure, Error};
use crate::model::{PlainToken, Principal, PrincipalKind, Token, TokenKind};
use crate::store::{InsertRules, Inserted, NewToken, StoreError};

/// Options an administrator gives when minting a token.
#[derive(Debug, Clone, Default)]
pub struct MintOptions {
    /// A static token (no expiry unless `ttl`), rather than a session token.
    pub static_token: bool,
    /// Lifetime; for a session token, defaults to the policy's.
    pub ttl: Option<Duration>,
    /// Free-text note.
    pub note: Option<String>,
}

/// A freshly issued token: the plaintext, shown once, and its row.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token string to hand to the client. Never stored, never logged.
    pub token: PlainToken,
    /// The stored row.
    pub record: Token,
    /// The owner, as read when the token was issued.
    pub principal: Principal,
}

impl TokenService {
    /// Mint a token for a principal without a password (administrators, the CLI).
    pub async fn mint(
        &self,
        policy: &TokenPolicy,
        kind: PrincipalKind,
        name: &str,
        options: MintOptions,
    ) -> Result<Issued, Error> {
        let principal = self.principal(kind, name).await?;
        let note = check_note(options.note)?;
        let now = self.clock.now();
        let (token_kind, ttl) = if options.static_token {
            (TokenKind::Static, options.ttl)
        } else {
            (TokenKind::Session, options.ttl.or(policy.session_ttl))
        };
        let expires_at = ttl.map(|ttl| after(now, ttl)).transpose()?;
        // why the limit here too: "a token limit refuses, it never evicts", whoever mints.
        let rules = InsertRules { max_live_tokens: policy.max_live_tokens, ..InsertRules::default() };
        self.insert(policy, &principal, token_kind, note, (now, expires_at), rules).await
    }

    pub(super) async fn insert(
        &self,
        policy: &TokenPolicy,
        principal: &Principal,
        kind: TokenKind,
        note: Option<String>,
        (created_at, expires_at): (OffsetDateTime, Option<OffsetDateTime>),
        rules: InsertRules<'_>,
    ) -> Result<Issued, Error> {
        let record = Token {
            id: Uuid::new_v4(),
            principal_id: principal.id,
            issuer: policy.issuer,
            kind,
            note,
            created_at,
            expires_at,
            last_used_at: None,
            enabled: true,
            version: 0,
            revoked_at: None,
        };
        let token = match &policy.format {
            TokenFormat::Jwt(claims) => {
                let mut claims = claims(&record, principal);
                claims.insert("jti".into(), record.id.to_string().into());
                let jwt = self.keys.sign(&claims)?;
                // why: a token the format check would refuse could never be used or revoked.
                if !policy.format.accepts(&jwt) {
                    return Err(Error::Internal(format!(
                        "the signed token ({} bytes) is longer than tokens may be; shrink the role's ACL",
                        jwt.len()
                    )));
                }
                PlainToken::new(jwt)
            }
            random => random.generate().ok_or_else(|| Error::Internal("token format generates nothing".into()))?,
        };
        let digest = token.digest();
        let new = NewToken {
            id: record.id,
            principal_id: record.principal_id,
            issuer: policy.issuer,
            kind,
            digest: &digest,
            note: record.note.as_deref(),
            created_at: record.created_at,
            expires_at,
        };
        match self.store.insert_token(&new, rules).await {
            Ok(Inserted::Yes) => Ok(Issued { token, record, principal: principal.clone() }),
            Ok(Inserted::LimitReached) => Err(Error::TokenLimit),
            // why: the password changed, or the principal was disabled, while it was verified.
            Ok(Inserted::CredentialsChanged) => Err(Error::BadCredentials(CredentialFailure::WrongPassword)),
            // why: the principal was removed between the password check and the insert.
            Err(StoreError::NotFound) => Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal)),
            Err(e) => Err(e.into()),
        }
    }
}

/// `t + d`; a lifetime past the end of the calendar is refused rather than panicking.
pub(super) fn after(t: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, Error> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .filter(|at| at.year() <= 9999)
        .ok_or_else(|| Error::Invalid(format!("lifetime {} is too long", humantime::format_duration(d))))
}

/// A note is a one-line label: at most `NOTE_MAX_CHARS`, no control characters (why: NUL
/// cannot be stored in Postgres text, and newlines would let a note forge lines in listings).
pub(super) fn check_note(note: Option<String>) -> Result<Option<String>, Error> {
    match note {
        Some(n) if n.chars().count() > NOTE_MAX_CHARS => {
            Err(Error::Invalid(format!("note is longer than {NOTE_MAX_CHARS} characters")))
        }
        Some(n) if n.chars().any(char::is_control) => Err(Error::Invalid("note contains a control character".into())),
        other => Ok(other),
    }
}
