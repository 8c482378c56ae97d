//! Principals: whoever logs in. Their kinds, the rules for their names, and the principal as
//! stored.
//!
//! Policy: a name is parsed into a `Username` at the edge (CLI, login) and only that type goes
//! inward. Names are matched exactly (case-sensitive), as `principals (kind, name)` is unique.

use std::fmt;

use ipnet::IpNet;
use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::legacy::PasswordScheme;
use super::role::{GroupRef, Role};

/// What kind of principal: every dialect logs in users; the dialer dialect also has resellers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person or program that logs in through any dialect.
    User,
    /// A dialer reseller, with its own name space.
    Reseller,
}

impl PrincipalKind {
    /// The value stored in `principals.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Reseller => "reseller",
        }
    }

    /// Parse a stored `principals.kind`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(PrincipalKind::User),
            "reseller" => Some(PrincipalKind::Reseller),
            _ => None,
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid principal name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// why 150: Django's `username` limit, the tightest of the systems whose clients we serve.
pub const MAX_NAME_CHARS: usize = 150;

impl Username {
    /// Accept a name unless it is empty, longer than 150 characters, has leading or trailing
    /// whitespace, or contains a control character. The error says which.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("name is empty".into());
        }
        if s.chars().count() > MAX_NAME_CHARS {
            return Err(format!("name is longer than {MAX_NAME_CHARS} characters"));
        }
        if s.trim() != s {
            return Err("name has leading or trailing whitespace".into());
        }
        if s.chars().any(char::is_control) {
            return Err("name contains a control character".into());
        }
        Ok(Username(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A principal as stored. Its password hash is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// Integer id, as the dialer dialect shows it.
    pub id: i64,
    /// User or reseller.
    pub kind: PrincipalKind,
    /// Unique per kind.
    pub name: String,
    /// tokenauth's argon2id PHC string, or a legacy hash kept exactly as imported.
    pub password_hash: String,
    /// How `password_hash` is verified: `Native` unless imported and not logged in since.
    pub password_scheme: PasswordScheme,
    /// A disabled principal cannot log in and its tokens stop working.
    pub enabled: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Last login or bump.
    pub last_login_at: Option<OffsetDateTime>,
    /// The principal's role, if any (webitel).
    pub role: Option<Role>,
    /// The principal's user group, if any (dialer).
    pub group: Option<GroupRef>,
    /// Everything else a dialect may show or check.
    pub attributes: Attributes,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("password_hash", &"[REDACTED]")
            .field("password_scheme", &self.password_scheme)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .field("role", &self.role)
            .field("group", &self.group)
            .field("attributes", &self.attributes)
            .finish()
    }
}

/// A principal's attributes beyond its name, password and role: the dialer dialect's, which
/// the token service also checks (the IP rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Users: an administrator (the dialer JWT's `admin` claim, and the web page's admin pages).
    pub admin: bool,
    /// Users: the SMS sender (the dialer JWT's `sms_from` claim).
    pub sms_from: Option<String>,
    /// Resellers: the client addresses it may log in from; empty means any.
    pub allowed_ips: Vec<IpNet>,
    /// Resellers: the account balance, an exact decimal.
    pub balance: Option<Decimal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("100@mydomain.com").is_ok());
        assert!(Username::parse("Ålice Ünïcode").is_ok());
        assert!(Username::parse(&"x".repeat(150)).is_ok());
        for bad in ["", " alice", "alice ", "al\nice", "al\u{7f}ice", "\t"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Username::parse(&"x".repeat(151)).is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for k in [PrincipalKind::User, PrincipalKind::Reseller] {
            assert_eq!(PrincipalKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PrincipalKind::parse("admin"), None);
    }
}
