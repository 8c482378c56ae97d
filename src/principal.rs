//! Principals: whoever logs in. Their kinds and the rules for their names.
//!
//! Policy: a name is parsed into a `Username` at the edge (CLI, login) and only that type goes
//! inward. Names are matched exactly (case-sensitive), as `principals (kind, name)` is unique.

use std::fmt;

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

/// The domain of a `name@domain` username (Webitel's `100@mydomain.com`): what follows the
/// last `@`, when both sides are non-empty.
pub fn domain_of(username: &str) -> Option<&str> {
    username.rsplit_once('@').and_then(|(name, domain)| (!name.is_empty() && !domain.is_empty()).then_some(domain))
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
    fn domains() {
        assert_eq!(domain_of("100@mydomain.com"), Some("mydomain.com"));
        assert_eq!(domain_of("a@b@c"), Some("c"));
        for none in ["root", "@mydomain.com", "100@", "@"] {
            assert_eq!(domain_of(none), None, "{none}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in [PrincipalKind::User, PrincipalKind::Reseller] {
            assert_eq!(PrincipalKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PrincipalKind::parse("admin"), None);
    }
}
