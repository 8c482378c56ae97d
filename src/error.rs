//! The one error type of tokenauth.
//!
//! Policy: the token service, the store adapters and the CLI all speak `Error`. It is
//! dialect-neutral: it says *what* went wrong (a missing field, bad credentials, an expired
//! token) and never *how* to say it on the wire. Each dialect renders it in its own shape
//! through `surface::ErrorShape::error_response`, and the CLI prints its `Display` as one line.
//! Details that must not reach a client (database errors) live only in `Internal`, whose
//! rendering everywhere is an opaque message; the detail is logged once by the error-log layer.

use std::time::Duration;

use crate::store::StoreError;

/// Why a username/password pair was refused.
///
/// Dialects collapse these into one message, except where their contract documents a
/// difference (Webitel's 404 for an unknown user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFailure {
    /// No credentials were sent (e.g. no `Authorization: Basic` header).
    Missing,
    /// Credentials were sent but could not be parsed (bad base64, no colon, not UTF-8).
    Malformed,
    /// No principal of that kind and name.
    UnknownPrincipal,
    /// The password did not verify.
    WrongPassword,
    /// The password verified but the principal is disabled.
    Disabled,
    /// The password verified but the principal may not log in from the client's address
    /// (a user group's `allowed_regex`, a reseller's `allowed_ips`).
    IpNotAllowed,
}

/// What was wrong with a presented token's transport, before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// The scheme was given with no value (`Authorization: Token`).
    Empty,
    /// The value contained spaces.
    ContainsSpaces,
    /// The header was not visible ASCII.
    InvalidCharacters,
    /// The value does not have the shape of any token this dialect issues.
    BadFormat,
    /// A JWT whose signature does not verify, or signed by a key we do not know.
    BadSignature,
}

/// Why a presented token was refused: the typed outcome of `TokenService::authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token was presented.
    Missing,
    /// Something was presented but it cannot be a token.
    Malformed(Malformation),
    /// Well-formed, but no row has its digest.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Revoked by a logout or an administrator (the row is a tombstone).
    Revoked,
    /// The token itself is disabled.
    TokenDisabled,
    /// The principal owning the token is disabled.
    PrincipalDisabled,
    /// The token was issued for another dialect.
    WrongDialect,
    /// The token belongs to another kind of principal than the endpoint serves (a reseller's
    /// token on a user endpoint).
    WrongKind,
}

impl AuthFailure {
    /// A stable machine-readable name, used in logs (and later by `/verify`).
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::Unknown | AuthFailure::WrongDialect | AuthFailure::WrongKind => "unknown",
            AuthFailure::Expired => "expired",
            AuthFailure::Revoked => "revoked",
            AuthFailure::TokenDisabled | AuthFailure::PrincipalDisabled => "disabled",
        }
    }
}

/// What is wrong with one field of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// The field is absent.
    Required,
    /// The field is JSON `null`.
    Null,
    /// The field is an empty (or all-whitespace) string.
    Blank,
    /// The field is not a string (or a number we accept as one).
    NotAString,
}

/// One field-level validation failure; dialects that report per-field errors list them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the client sent it.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: FieldProblem,
}

/// The error of tokenauth. See the module doc for the policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- request shape (400/413/415) ---
    /// The body is not JSON but a body was required or given.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// The body claims to be JSON and is not.
    #[error("JSON parse error - {0}")]
    MalformedJson(String),
    /// The body is valid JSON but not an object; carries the JSON type found.
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// One or more fields are missing, null, blank or of the wrong type.
    #[error("invalid fields: {0:?}")]
    Fields(Vec<FieldError>),
    /// A field value failed validation; the message names the field as the client sent it.
    #[error("{0}")]
    Invalid(String),
    /// The request body exceeds the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,

    // --- authentication (400/401/403) ---
    /// A username/password pair was refused.
    #[error("invalid credentials")]
    BadCredentials(CredentialFailure),
    /// A presented token was refused.
    #[error("token refused: {}", .0.reason())]
    Unauthenticated(AuthFailure),
    /// The token is good but its role lacks the permission the request needs (`/verify`'s
    /// ACL rules).
    #[error("forbidden by the ACL rules")]
    Forbidden,
    /// The principal already holds the maximum number of live tokens for this dialect.
    #[error("maximum number of tokens reached")]
    TokenLimit,

    /// Too many failed logins (or logins in progress) from this client address or for this
    /// account: refused before any password hash is computed (see `token::throttle`).
    #[error("too many login attempts")]
    Throttled {
        /// When to try again, in whole seconds (rounded up, at least one): the end of the
        /// lockout, or a second when only the logins in progress fill the limit.
        retry_after: Duration,
    },

    // --- routing, outside handlers ---
    /// No route for this path.
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),

    // --- capacity and faults (5xx) ---
    /// The password-hashing queue is full; retry after the given time.
    #[error("too many logins in progress")]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The database cannot be reached (pool timeout, connection refused).
    #[error("database unavailable")]
    Unavailable,
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// Anything else: a bug or an unexpected database error. The detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),

    // --- administration (CLI) ---
    /// A principal with that kind and name already exists.
    #[error("{kind} {name:?} already exists")]
    PrincipalExists {
        /// `user` or `reseller`.
        kind: &'static str,
        /// The name that clashed.
        name: String,
    },
    /// No principal with that kind and name.
    #[error("no such {kind}: {name:?}")]
    NoSuchPrincipal {
        /// `user` or `reseller`.
        kind: &'static str,
        /// The name looked up.
        name: String,
    },
    /// No token with that id.
    #[error("no such token: {0}")]
    NoSuchToken(String),
    /// A principal name was refused (empty, control characters, too long, ...).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A password was refused (empty).
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// No role with that name.
    #[error("no such role: {0:?}")]
    NoSuchRole(String),
    /// A role with that name exists.
    #[error("role {0:?} already exists")]
    RoleExists(String),
    /// The role is still given to principals.
    #[error("role {name:?} is still given to {members} user(s); give them another role first")]
    RoleInUse {
        /// The role.
        name: String,
        /// How many principals have it.
        members: i64,
    },
    /// An ACL that is not a JSON object of resource to list of permissions.
    #[error("invalid ACL: {0}")]
    InvalidAcl(String),
    /// No user group with that name.
    #[error("no such user group: {0:?}")]
    NoSuchGroup(String),
    /// A user group with that name exists.
    #[error("user group {0:?} already exists")]
    GroupExists(String),
    /// The user group still has members.
    #[error(
        "user group {name:?} still has {members} member(s); move them first (`tokenauth user set-group NAME (GROUP | --none)`)"
    )]
    GroupInUse {
        /// The group.
        name: String,
        /// How many principals are in it.
        members: i64,
    },
    /// A principal attribute was refused (a bad regex, IP, balance, or one that does not fit
    /// the principal's kind); the message says which and why.
    #[error("{0}")]
    InvalidAttribute(String),
}

impl Error {
    /// True for errors that are the server's fault, which the error-log layer logs.
    pub fn is_server_error(&self) -> bool {
        matches!(self, Error::Internal(_) | Error::Unavailable | Error::Timeout | Error::Overloaded { .. })
    }

    /// Seconds a client should wait before retrying, for the 503s that have a `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Overloaded { retry_after } | Error::Throttled { retry_after } => Some(*retry_after),
            // why: an outage or a timeout is usually brief; a small hint avoids a retry storm.
            Error::Unavailable | Error::Timeout => Some(Duration::from_secs(5)),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) | StoreError::Contention(_) => Error::Unavailable,
            other => Error::Internal(other.to_string()),
        }
    }
}
