//! The token service: the only policy code in tokenauth.
//!
//! Policy: issue, authenticate, bump, revoke, revoke-all and list live here, with password
//! checks, expiry, sliding refresh and the token limit. The service knows nothing of JSON
//! shapes or headers: a dialect hands it a `TokenPolicy` (its token format, lifetime, refresh
//! and limit, built from config) and renders what comes back. Time comes only from the
//! injected `Clock`; the database only through the `Store` trait.
//! Explicit writes (login, bump, logout) commit before the call returns; implicit ones (last
//! use, sliding expiry) are queued and flushed in the background (see `touch`).
//!
//! The service's methods are grouped by file: `login` (passwords and sessions), `issue`
//! (minting and the one insert), `check` (authenticating a presented token), this file
//! (bump, revoke, list, sweep); and the administrators' side: `admin` (who may act, the audit
//! log), `principals`, `roles`, `groups`. Beside them: `policy`, `password`, `throttle`,
//! `ip_rules`, `acl` (/verify's rules), `jwt`, `secret` (token formats), `cache`, `touch`,
//! `clock`.

pub mod acl;
pub mod admin;
pub mod cache;
mod check;
pub mod clock;
mod groups;
mod ip_rules;
mod issue;
pub mod jwt;
pub mod legacy;
mod login;
mod moving_in;
pub mod password;
mod policy;
mod principals;
mod roles;
pub mod secret;
pub mod throttle;
mod touch;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use std::time::Instant;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use self::cache::{Invalidation, TokenCache};
pub use self::check::Authenticated;
use self::clock::Clock;
pub use self::groups::check_allowed_regex;
use self::ip_rules::IpRules;
use self::issue::after;
pub use self::issue::{Issued, MintOptions};
use self::jwt::Keys;
pub use self::login::LoginOptions;
use self::password::Passwords;
pub use self::policy::{Policies, Refresh, TokenPolicy};
pub use self::principals::{NewProfile, check_sms_from, parse_allowed_ip, parse_balance};
pub use self::roles::parse_acl;
use self::throttle::Throttle;
use self::touch::TouchQueue;
use crate::config::{ThrottleConfig, TokensConfig};
use crate::error::{AuthFailure, Error};
use crate::metrics::Metrics;
use crate::model::{Issuer, PrincipalKind, Token};
use crate::store::{Store, StoreError};

/// why one minute: last-used times are for people reading `token list`, not for security;
/// writing them more often would turn every token check into a write.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// why 10 s: an import's notice can be lost (a listener reconnecting); a check that finds
/// nothing rereads the flag at most this often, so imported tokens work within seconds anyway,
/// for one indexed query per interval.
const LEGACY_RECHECK: Duration = Duration::from_secs(10);

/// The notice that legacy tokens exist (an import made some). why not an `Invalidation`: it
/// invalidates nothing, it switches the legacy lookup on.
const LEGACY_TOKENS_NOTICE: &str = "legacy-tokens";

/// A token note's limit, for every dialect and the CLI. why 128: the usertoken contract's
/// limit, and plenty for a human label.
pub const NOTE_MAX_CHARS: usize = 128;

/// Which tokens `revoke_all` revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    /// Only tokens of the dialect that issued the presented token.
    SameDialect,
    /// Every token of the principal.
    AllDialects,
}

/// The token service. See the module doc.
#[derive(Debug)]
pub struct TokenService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    touches: TouchQueue,
    ip_rules: IpRules,
    retention: Duration,
    audit_retention: Duration,
    keys: Keys,
    jwt_secret: Option<SecretString>,
    metrics: Arc<Metrics>,
    cache: TokenCache,
    throttle: Throttle,
    /// Whether any token row may still hold a legacy digest (imported, not checked since). Read
    /// at start, set when an import announces some, cleared by the sweep when none remain: while
    /// it is false, an unknown token costs exactly what it did before imports existed.
    legacy_tokens: AtomicBool,
    /// Legacy-token notices heard, so a refresh racing one does not clear the flag it set.
    legacy_notices: AtomicU64,
    /// When the flag was last read from the database (see `check::may_be_legacy`).
    legacy_checked: Mutex<Instant>,
}

impl TokenService {
    /// Assemble the service over a store and a clock, loading (or creating) the JWT keys.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        tokens: &TokensConfig,
        jwt_secret: Option<SecretString>,
        metrics: Arc<Metrics>,
        cache: TokenCache,
    ) -> Result<Self, Error> {
        let keys = Keys::load(&*store, jwt_secret.as_ref(), clock.now()).await?;
        let legacy_tokens = AtomicBool::new(store.has_legacy_tokens().await?);
        let throttle = Throttle::new(ThrottleConfig::default(), crate::config::HttpConfig::default().request_timeout)
            .with_metrics(metrics.throttle.clone());
        Ok(TokenService {
            store,
            clock,
            passwords,
            touches: TouchQueue::default(),
            ip_rules: IpRules::default(),
            retention: tokens.retention,
            audit_retention: crate::config::AuditConfig::default().retention,
            keys,
            jwt_secret,
            metrics,
            cache,
            throttle,
            legacy_tokens,
            legacy_notices: AtomicU64::new(0),
            legacy_checked: Mutex::new(Instant::now()),
        })
    }

    /// Throttle logins by these rules instead of the defaults (reporting into this service's
    /// metrics).
    #[must_use]
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle.with_metrics(self.metrics.throttle.clone());
        self
    }

    /// Keep audit entries this long (the default is `AuditConfig`'s).
    pub fn with_audit_retention(mut self, retention: Duration) -> Self {
        self.audit_retention = retention;
        self
    }

    /// The login throttle, for the operators' `throttle list` and `throttle clear`.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// The throttle counters in force now.
    pub async fn throttle_counters(&self) -> Result<Vec<crate::model::ThrottleCounter>, Error> {
        Ok(self.store.list_throttle(self.clock.now()).await?)
    }

    /// Reset one throttle counter; true if there was one.
    pub async fn clear_throttle(&self, scope: crate::model::ThrottleScope, subject: &str) -> Result<bool, Error> {
        Ok(self.store.clear_throttle(scope, subject).await?)
    }

    /// Re-read the JWT keys from the database, to pick up a rotation made elsewhere.
    pub async fn reload_keys(&self) -> Result<(), Error> {
        self.keys.reload(&*self.store, self.jwt_secret.as_ref(), self.clock.now(), true).await?;
        self.forget_checks_of_lost_keys();
        Ok(())
    }

    /// A cache hit skips a JWT's signature check (the cached digest is of a token whose
    /// signature was checked), so when a verifying key is removed, every cached check goes.
    pub(crate) fn forget_checks_of_lost_keys(&self) {
        if self.keys.take_lost() {
            tracing::info!("a JWT verifying key was removed; the token cache is flushed");
            self.cache.invalidate(cache::Invalidation::All);
        }
    }

    /// Add a new JWT signing key and sign with it from now on; returns its kid. Tokens signed
    /// by older keys keep verifying. With a configured secret, that secret still signs.
    pub async fn rotate_key(&self) -> Result<String, Error> {
        // why after the newest: the newest key signs, so a clock behind the one that made the
        // current key (a CLI in another container) must not make the rotation a silent no-op.
        let newest = self.store.signing_keys().await?.into_iter().map(|k| k.created_at).max();
        let at = match newest {
            Some(newest) if newest >= self.clock.now() => newest + time::Duration::microseconds(1),
            _ => self.clock.now(),
        };
        let key = jwt::generate(at);
        self.store.insert_signing_key(&key).await?;
        self.reload_keys().await?;
        Ok(key.kid)
    }

    /// The stored JWT keys (kids and times; secrets stay inside) and the kid that signs.
    pub async fn signing_keys(&self) -> Result<(Vec<crate::model::SigningKey>, String), Error> {
        Ok((self.store.signing_keys().await?, self.keys.signing_kid()))
    }

    /// The metrics the service reports into (and `/metrics` renders).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The database pool's figures, for the metrics.
    pub fn pool_stats(&self) -> crate::store::PoolStats {
        self.store.pool_stats()
    }

    /// The service's clock, for callers that must agree with it (tests, the CLI's output).
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Start background work that should not delay readiness (the dummy password hash).
    pub fn warm_up(&self) {
        self.passwords.warm_up();
    }

    /// Password verifications run so far, dummy ones for unknown users included.
    pub fn password_verifications(&self) -> u64 {
        self.passwords.verifications()
    }

    /// One database round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }

    /// Set the owner's last-login time and the token's last-use time to now; returns now.
    pub async fn bump(&self, auth: &Authenticated) -> Result<OffsetDateTime, Error> {
        let now = self.clock.now();
        match self.store.bump(auth.owner().id, auth.token().id, now).await {
            Ok(()) => Ok(now),
            Err(StoreError::NotFound) => Err(Error::Unauthenticated(AuthFailure::Unknown)),
            Err(e) => Err(e.into()),
        }
    }

    /// Revoke the presented token. A token revoked meanwhile by another request is refused.
    pub async fn revoke(&self, auth: &Authenticated) -> Result<(), Error> {
        let revoked = self.store.revoke_token(auth.token().id, self.clock.now()).await;
        self.cache.forget(&auth.digest);
        self.announce(Invalidation::Token(auth.token().id)).await;
        if revoked? { Ok(()) } else { Err(Error::Unauthenticated(AuthFailure::Revoked)) }
    }

    /// Drop what `what` names from this replica's cache and tell the other replicas. Called
    /// after every write that changes a token's validity, whether or not it succeeded (a
    /// failed write may still have committed).
    pub(crate) async fn announce(&self, what: Invalidation) {
        self.cache.invalidate(what);
        if let Err(e) = self.store.publish_invalidation(&what.encode()).await {
            // why only a warning: the other replicas trust an entry for max_staleness at most.
            tracing::warn!(error = %e, "could not tell the other replicas about a revocation");
        }
    }

    /// A notice another process published (`announce`, `announce_legacy_tokens`).
    pub fn hear(&self, payload: &str) {
        if payload == LEGACY_TOKENS_NOTICE {
            self.legacy_notices.fetch_add(1, Ordering::SeqCst);
            self.legacy_tokens.store(true, Ordering::SeqCst);
        } else {
            self.cache.invalidate(Invalidation::decode(payload));
        }
    }

    /// Tell every process sharing the database that legacy tokens exist now (an import made
    /// some), so their checks look for them.
    pub async fn announce_legacy_tokens(&self) {
        self.legacy_notices.fetch_add(1, Ordering::SeqCst);
        self.legacy_tokens.store(true, Ordering::SeqCst);
        if let Err(e) = self.store.publish_invalidation(LEGACY_TOKENS_NOTICE).await {
            tracing::warn!(error = %e, "could not tell the servers about the imported tokens; they see them at their next sweep");
        }
    }

    /// Whether legacy tokens may remain (see `legacy_tokens`).
    pub fn legacy_tokens_remain(&self) -> bool {
        self.legacy_tokens.load(Ordering::Relaxed)
    }

    /// Read from the database whether live legacy tokens remain, and return it. A notice
    /// heard while the query ran wins: it may announce rows the query could not see yet.
    pub(crate) async fn refresh_legacy_tokens(&self) -> Result<bool, Error> {
        let heard = self.legacy_notices.load(Ordering::SeqCst);
        let any = self.store.has_legacy_tokens().await?;
        *self.legacy_checked.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if self.legacy_notices.load(Ordering::SeqCst) == heard {
            self.legacy_tokens.store(any, Ordering::SeqCst);
        }
        Ok(self.legacy_tokens_remain())
    }

    /// Whether the flag was read from the database longer than `LEGACY_RECHECK` ago (and, if
    /// so, claim the next read: only one check at a time pays it).
    pub(crate) fn legacy_recheck_due(&self) -> bool {
        let mut checked = self.legacy_checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked.elapsed() < LEGACY_RECHECK {
            return false;
        }
        *checked = Instant::now();
        true
    }

    /// The token-check cache, for the invalidation listener.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Revoke every live token of the presented token's owner, in `scope`; returns how many.
    pub async fn revoke_all(&self, auth: &Authenticated, scope: RevokeScope) -> Result<u64, Error> {
        let dialect = match scope {
            RevokeScope::SameDialect => Some(auth.token().issuer),
            RevokeScope::AllDialects => None,
        };
        let revoked = self.store.revoke_all(auth.owner().id, dialect, self.clock.now()).await;
        self.announce(Invalidation::Principal(auth.owner().id)).await;
        Ok(revoked?)
    }

    /// All token rows of a principal, tombstones included, newest first.
    pub async fn list(&self, kind: PrincipalKind, name: &str) -> Result<Vec<Token>, Error> {
        let principal = self.principal(kind, name).await?;
        let mut tokens = self.store.list_tokens(principal.id).await?;
        tokens.retain(|t| t.issuer != Issuer::WebPage);
        Ok(tokens)
    }

    /// Revoke a token by id (administrators). Revoking a revoked token is a no-op.
    pub async fn revoke_by_id(&self, id: Uuid) -> Result<(), Error> {
        if self.store.token_by_id(id).await?.is_none() {
            return Err(Error::NoSuchToken(id.to_string()));
        }
        let revoked = self.store.revoke_token(id, self.clock.now()).await;
        self.announce(Invalidation::Token(id)).await;
        revoked?;
        Ok(())
    }

    /// Enable or disable a token by id (administrators).
    pub async fn set_token_enabled(&self, id: Uuid, enabled: bool) -> Result<(), Error> {
        let changed = self.store.set_token_enabled(id, enabled).await;
        self.announce(Invalidation::Token(id)).await;
        if changed? { Ok(()) } else { Err(Error::NoSuchToken(id.to_string())) }
    }

    /// Delete revoked and expired token rows older than the retention period (returns how
    /// many), audit entries older than theirs, and the expired throttle counters.
    pub async fn sweep(&self) -> Result<u64, Error> {
        // why here: the sweep runs on every replica (hourly by default); it notices that the
        // last legacy token was adopted (or revoked), so unknown tokens stop paying the lookup.
        self.refresh_legacy_tokens().await?;
        let forgotten = self.store.sweep_throttle(self.clock.now()).await?;
        tracing::debug!(forgotten, "expired throttle counters deleted");
        if let Some(cutoff) = self.cutoff(self.audit_retention) {
            let deleted = self.store.sweep_audit(cutoff).await?;
            if deleted > 0 {
                tracing::info!(deleted, "swept audit entries past audit.retention");
            }
        }
        match self.cutoff(self.retention) {
            Some(cutoff) => Ok(self.store.sweep(cutoff).await?),
            None => Ok(0),
        }
    }

    /// Now minus `retention`; none when that is before the calendar begins (a retention
    /// longer than the calendar means "keep everything").
    fn cutoff(&self, retention: Duration) -> Option<time::OffsetDateTime> {
        let retention = time::Duration::try_from(retention).unwrap_or(time::Duration::MAX);
        self.clock.now().checked_sub(retention)
    }
}

/// A token's state at a given time, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Usable.
    Active,
    /// Disabled by an administrator.
    Disabled,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl TokenState {
    /// The state of `token` at `now` (revoked wins over expired wins over disabled).
    pub fn of(token: &Token, now: OffsetDateTime) -> Self {
        if token.revoked_at.is_some() {
            TokenState::Revoked
        } else if token.expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else if !token.enabled {
            TokenState::Disabled
        } else {
            TokenState::Active
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Disabled => "disabled",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}
