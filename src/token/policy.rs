//! Token policies: how each dialect's tokens look and live, and which principals its endpoints
//! serve. Built once from config (each dialect builds its own, since its JWT claims are its
//! wire shape) and handed to the service with every call.

use std::time::Duration;

use super::secret::TokenFormat;
use crate::model::{DialectId, Issuer, PrincipalKind};

/// How a dialect's tokens look and live.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// The issuing dialect (or the web page), stored on each row; tokens are only accepted by
    /// the same issuer.
    pub issuer: Issuer,
    /// Shape of the token strings.
    pub format: TokenFormat,
    /// Lifetime of a session token when the request names none; `None` never expires.
    pub session_ttl: Option<Duration>,
    /// Sliding expiry, if on.
    pub refresh: Option<Refresh>,
    /// Live tokens one principal may hold in this dialect; logins past it are refused.
    pub max_live_tokens: Option<u32>,
    /// The only kind of principal whose tokens the endpoints using this policy accept (the
    /// dialer's user and reseller endpoints); `None` accepts any.
    pub principal_kind: Option<PrincipalKind>,
}

impl TokenPolicy {
    /// The same policy, accepting only tokens of `kind`'s principals.
    #[must_use]
    pub fn only(mut self, kind: PrincipalKind) -> Self {
        self.principal_kind = Some(kind);
        self
    }
}

/// Sliding expiry: on use, move the expiry to now + `session_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// Slide only when the expiry would move by more than this.
    pub min_interval: Duration,
    /// Never slide past creation + this.
    pub max_lifetime: Option<Duration>,
}

/// Every dialect's policy and the web page's, and the list of the enabled dialects' (for the
/// forward-auth endpoint, which accepts them all), computed once.
#[derive(Debug, Clone)]
pub struct Policies {
    dialects: [TokenPolicy; 4],
    /// Each dialect's policy restricted to users, then to resellers.
    by_kind: [[TokenPolicy; 2]; 4],
    enabled: Vec<TokenPolicy>,
    web: TokenPolicy,
}

impl Policies {
    /// `dialects` in `DialectId::ALL` order; `enabled` says which are switched on.
    pub fn new(dialects: [TokenPolicy; 4], web: TokenPolicy, enabled: impl Fn(DialectId) -> bool) -> Self {
        let enabled = DialectId::ALL.into_iter().filter(|d| enabled(*d)).map(|d| dialects[d.index()].clone()).collect();
        let by_kind = dialects.clone().map(|p| [p.clone().only(PrincipalKind::User), p.only(PrincipalKind::Reseller)]);
        Policies { dialects, by_kind, enabled, web }
    }

    /// The policy of one dialect for endpoints that serve only `kind`'s principals (the
    /// dialer's user and reseller endpoints).
    pub fn of_kind(&self, dialect: DialectId, kind: PrincipalKind) -> &TokenPolicy {
        let side = match kind {
            PrincipalKind::User => 0,
            PrincipalKind::Reseller => 1,
        };
        &self.by_kind[dialect.index()][side]
    }

    /// The policy of one dialect (enabled or not: the CLI mints for any).
    pub fn get(&self, dialect: DialectId) -> &TokenPolicy {
        &self.dialects[dialect.index()]
    }

    /// The enabled dialects' policies.
    pub fn enabled(&self) -> &[TokenPolicy] {
        &self.enabled
    }

    /// The web page's sign-ins (not a dialect: never among `enabled`).
    pub fn web(&self) -> &TokenPolicy {
        &self.web
    }
}
