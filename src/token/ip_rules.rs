//! IP rules at login: a user's group may carry an `allowed_regex` the client address must
//! match, and a reseller may carry a list of `allowed_ips` (addresses or CIDRs) that must
//! contain it. Checked by `TokenService::login` after the password, for every dialect.
//!
//! Policy: a regex is checked when it is stored (`check_allowed_regex`), so a bad one never
//! reaches a login; at login each distinct pattern is compiled once and kept. The match is an
//! unanchored search over the address's text (`10.1.2.3`, `2001:db8::1`), as Ruby's `=~`
//! that Hello Hunter's `allowed_regex` comes from: anchor with `^...$` for an exact match.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use regex::{Regex, RegexBuilder};

use crate::error::{CredentialFailure, Error};
use crate::model::Principal;
use crate::model::PrincipalKind;

/// why 1 KiB: an address filter is a short alternation; anything longer is a mistake.
pub(super) const MAX_REGEX_CHARS: usize = 1024;

/// why 1 MiB: bounds what one compiled pattern may cost in memory; the regex crate matches
/// in linear time, so there is no catastrophic backtracking to guard against.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// why 1024: distinct patterns are as many as user groups; a cap keeps a misuse bounded.
const MAX_CACHED: usize = 1024;

/// Compile an IP regex with the limits every stored pattern obeys.
pub(super) fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_REGEX_CHARS {
        return Err(format!("allowed_regex is longer than {MAX_REGEX_CHARS} characters"));
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("allowed_regex {pattern:?} is not a valid regular expression: {}", one_line(&e)))
}

/// The gist of a regex error in one line: a syntax error's text is a diagram whose last line
/// (`error: unclosed group`) says what is wrong.
fn one_line(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

/// The compiled patterns, shared by every login.
#[derive(Debug, Default)]
pub(super) struct IpRules {
    compiled: Mutex<HashMap<String, Arc<Regex>>>,
}

impl IpRules {
    /// `Ok` when `principal` may log in from `ip`; otherwise `BadCredentials(IpNotAllowed)`.
    pub(super) fn check(&self, principal: &Principal, ip: IpAddr) -> Result<(), Error> {
        let allowed = match principal.kind {
            PrincipalKind::User => match principal.group.as_ref().and_then(|g| g.allowed_regex.as_deref()) {
                Some(pattern) => self.regex(pattern)?.is_match(&ip.to_string()),
                None => true,
            },
            PrincipalKind::Reseller => {
                let ips = &principal.attributes.allowed_ips;
                ips.is_empty() || ips.iter().any(|net| net.contains(&ip))
            }
        };
        if allowed { Ok(()) } else { Err(Error::BadCredentials(CredentialFailure::IpNotAllowed)) }
    }

    fn regex(&self, pattern: &str) -> Result<Arc<Regex>, Error> {
        if let Some(re) = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(pattern) {
            return Ok(Arc::clone(re));
        }
        // why an internal error: patterns are checked when stored, so this one was written to
        // the database by hand. Refusing the login (500) is safer than ignoring the rule.
        // Compiled outside the lock, so other logins do not wait on it.
        let re = Arc::new(compile(pattern).map_err(|e| Error::Internal(format!("stored {e}")))?);
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if compiled.len() >= MAX_CACHED {
            compiled.clear();
        }
        compiled.insert(pattern.to_owned(), Arc::clone(&re));
        Ok(re)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attributes, GroupRef};
    use time::OffsetDateTime;

    fn principal(kind: PrincipalKind, regex: Option<&str>, ips: &[&str]) -> Principal {
        Principal {
            id: 1,
            kind,
            name: "p".into(),
            password_hash: String::new(),
            password_scheme: crate::model::PasswordScheme::Native,
            enabled: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_login_at: None,
            role: None,
            group: regex.map(|r| GroupRef { id: 1, name: "g".into(), allowed_regex: Some(r.into()) }),
            attributes: Attributes {
                allowed_ips: ips.iter().map(|n| n.parse().unwrap()).collect(),
                ..Attributes::default()
            },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn user_regex_is_an_unanchored_search() {
        let rules = IpRules::default();
        let user = principal(PrincipalKind::User, Some(r"^10\.0\."), &[]);
        assert!(rules.check(&user, ip("10.0.3.4")).is_ok());
        assert!(rules.check(&user, ip("110.0.3.4")).is_err());
        let loose = principal(PrincipalKind::User, Some(r"192\.168"), &[]);
        assert!(rules.check(&loose, ip("192.168.1.1")).is_ok());
        assert!(rules.check(&loose, ip("10.192.168.1")).is_ok(), "unanchored, like Ruby's =~");
        assert!(rules.check(&principal(PrincipalKind::User, None, &[]), ip("8.8.8.8")).is_ok());
        let v6 = principal(PrincipalKind::User, Some(r"^2001:db8:"), &[]);
        assert!(rules.check(&v6, ip("2001:db8::1")).is_ok());
    }

    #[test]
    fn reseller_ips_are_addresses_or_cidrs() {
        let rules = IpRules::default();
        let r = principal(PrincipalKind::Reseller, None, &["10.0.0.0/8", "192.0.2.7/32"]);
        assert!(rules.check(&r, ip("10.200.0.1")).is_ok());
        assert!(rules.check(&r, ip("192.0.2.7")).is_ok());
        let refused = rules.check(&r, ip("192.0.2.8")).unwrap_err();
        assert!(matches!(refused, Error::BadCredentials(CredentialFailure::IpNotAllowed)), "{refused:?}");
        assert!(rules.check(&principal(PrincipalKind::Reseller, None, &[]), ip("8.8.8.8")).is_ok());
    }

    #[test]
    fn bad_patterns_are_refused_when_compiled() {
        let err = compile("(unclosed").unwrap_err();
        assert!(!err.contains('\n') && err.ends_with("unclosed group"), "{err}");
        assert!(compile(&"a".repeat(MAX_REGEX_CHARS + 1)).is_err());
        // A pattern that would compile to more than the size limit.
        assert!(compile(r"(\w{100}){100}").is_err());
        assert!(compile(r"^10\.").is_ok());
        // A stored pattern that does not compile refuses the login rather than being ignored.
        let bad = principal(PrincipalKind::User, Some("(unclosed"), &[]);
        assert!(matches!(IpRules::default().check(&bad, ip("10.0.0.1")), Err(Error::Internal(_))));
    }
}
