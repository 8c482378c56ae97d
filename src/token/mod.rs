//! The token service: the only policy code in tokenauth.
//!
//! Policy: issue, authenticate, bump, revoke, revoke-all and list live here, with password
//! checks, expiry, sliding refresh and the token limit. The service knows nothing of JSON
//! shapes or headers: a dialect hands it a `TokenPolicy` (its token format, lifetime, refresh
//! and limit, built from config) and renders what comes back. Time comes only from the
//! injected `Clock`; the database only through the `Store` trait.
//! Explicit writes (login, bump, logout) commit before the call returns; implicit ones (last
//! use, sliding expiry) are queued and flushed in the background (see `touch`).

pub mod acl;
pub mod admin;
pub mod cache;
pub mod clock;
mod groups;
mod ip_rules;
pub mod jwt;
pub mod password;
mod policy;
mod principals;
mod roles;
pub mod secret;
pub mod throttle;
mod touch;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use self::cache::{Invalidation, TokenCache};
use self::clock::Clock;
pub use self::groups::check_allowed_regex;
use self::ip_rules::IpRules;
use self::jwt::{JwtRefusal, Keys};
use self::password::Passwords;
pub use self::policy::{Policies, Refresh, TokenPolicy};
pub use self::principals::{NewProfile, check_sms_from, parse_allowed_ip, parse_balance};
pub use self::roles::parse_acl;
use self::secret::TokenFormat;
use self::throttle::Throttle;
use self::touch::TouchQueue;
use crate::config::{ThrottleConfig, TokensConfig};
use crate::error::{AuthFailure, CredentialFailure, Error, Malformation};
use crate::metrics::Metrics;
use crate::model::{
    GroupSummary, Issuer, Owner, PlainToken, Principal, PrincipalKind, Token, TokenHash, TokenKind, TokenLookup,
    Username,
};
use crate::store::{InsertRules, Inserted, NewToken, Store, StoreError, TokenTouch};

/// why one minute: last-used times are for people reading `token list`, not for security;
/// writing them more often would turn every token check into a write.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// A token note's limit, for every dialect and the CLI. why 128: the usertoken contract's
/// limit, and plenty for a human label.
pub const NOTE_MAX_CHARS: usize = 128;

/// Options a client may give at login.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// Free-text note, at most `NOTE_MAX_CHARS`.
    pub note: Option<String>,
    /// Absolute expiry, which must be in the future; otherwise the policy's lifetime applies.
    pub expires_at: Option<OffsetDateTime>,
}

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

/// A token that passed `authenticate`: its row and owner as read (or as cached, shared with
/// the cache rather than copied), and the digest it was found by.
#[derive(Debug, Clone)]
pub struct Authenticated {
    found: Arc<TokenLookup>,
    /// The digest it was found by, so a logout can drop it from the cache at once.
    pub digest: TokenHash,
}

impl Authenticated {
    /// The token row (with a sliding expiry that is still queued already applied).
    pub fn token(&self) -> &Token {
        &self.found.token
    }

    /// Its owner.
    pub fn owner(&self) -> &Owner {
        &self.found.owner
    }
}

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
    keys: Keys,
    jwt_secret: Option<SecretString>,
    metrics: Arc<Metrics>,
    cache: TokenCache,
    throttle: Throttle,
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
        Ok(TokenService {
            store,
            clock,
            passwords,
            touches: TouchQueue::default(),
            ip_rules: IpRules::default(),
            retention: tokens.retention,
            keys,
            jwt_secret,
            metrics,
            cache,
            throttle: Throttle::new(ThrottleConfig::default(), crate::config::HttpConfig::default().request_timeout),
        })
    }

    /// Throttle logins by these rules instead of the defaults.
    #[must_use]
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
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
        self.keys.reload(&*self.store, self.jwt_secret.as_ref(), self.clock.now(), true).await.map(|_| ())
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

    /// Check a username and password, and the principal's IP rules against the client's
    /// address, and issue a session token.
    #[tracing::instrument(skip_all, fields(dialect = %policy.issuer))]
    pub async fn login(
        &self,
        policy: &TokenPolicy,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
        options: LoginOptions,
    ) -> Result<Issued, Error> {
        let result = self.login_unmetered(policy, kind, username, password, client_ip, options).await;
        self.metrics.login(policy.issuer, &result);
        result
    }

    async fn login_unmetered(
        &self,
        policy: &TokenPolicy,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
        options: LoginOptions,
    ) -> Result<Issued, Error> {
        let asked = self.check_login_options(options)?;
        let principal = self.check_password(kind, username, password, client_ip).await?;
        self.issue_session(policy, &principal, asked).await
    }

    /// A reseller logs in (the dialer's reseller login): as `login`, and its user groups too.
    /// The groups are read before the token is issued, so a failure to read them issues
    /// nothing.
    #[tracing::instrument(skip_all, fields(dialect = %policy.issuer))]
    pub async fn reseller_login(
        &self,
        policy: &TokenPolicy,
        name: &str,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<(Issued, Vec<GroupSummary>), Error> {
        let result = async {
            let asked = self.check_login_options(LoginOptions::default())?;
            let reseller = self.check_password(PrincipalKind::Reseller, name, password, client_ip).await?;
            let groups = self.store.list_groups(Some(reseller.id)).await?;
            Ok((self.issue_session(policy, &reseller, asked).await?, groups))
        }
        .await;
        self.metrics.login(policy.issuer, &result);
        result
    }

    /// A login's note and expiry, checked before the (slow) password check.
    fn check_login_options(&self, options: LoginOptions) -> Result<LoginOptions, Error> {
        let note = check_note(options.note)?;
        // why: stored and echoed in UTC, to the microsecond, like every other time.
        let expires_at = match options.expires_at {
            Some(at) => Some(
                clock::to_utc_checked(at)
                    .ok_or_else(|| Error::Invalid("expiration time is outside the years 1 to 9999".into()))?,
            ),
            None => None,
        };
        if expires_at.is_some_and(|at| at <= self.clock.now()) {
            return Err(Error::Invalid("expiration time is in the past".into()));
        }
        Ok(LoginOptions { note, expires_at })
    }

    /// Issue a session token to a principal whose password was just verified (`asked` as
    /// `check_login_options` returned it).
    async fn issue_session(
        &self,
        policy: &TokenPolicy,
        principal: &Principal,
        asked: LoginOptions,
    ) -> Result<Issued, Error> {
        // why a new reading: the token is issued now, after the (slow) password check, so
        // that its creation, its expiry and a JWT's iat/exp all come from this one instant.
        let now = self.clock.now();
        let expires_at = match asked.expires_at {
            Some(at) => Some(at),
            None => policy.session_ttl.map(|ttl| after(now, ttl)).transpose()?,
        };
        let rules = InsertRules {
            max_live_tokens: policy.max_live_tokens,
            login_at: Some(now),
            verified_hash: Some(&principal.password_hash),
        };
        self.insert(policy, principal, TokenKind::Session, asked.note, (now, expires_at), rules).await
    }

    /// Verify a password, then the principal's IP rules against the client's address; an
    /// unknown user costs one verification against a dummy hash. The login throttle counts
    /// the attempt first, and refuses it before any hashing when a limit is reached.
    #[tracing::instrument(skip_all, fields(kind = %kind))]
    pub async fn check_password(
        &self,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<Principal, Error> {
        // why a guard: a request cancelled here (its timeout, a client gone) must give its
        // place back too, or an outage would leave every interrupted login in flight and
        // refuse the addresses that were logging in.
        let mut pending =
            throttle::Pending::admit(&self.throttle, &self.store, &self.clock, (kind, username, client_ip)).await?;
        let result = self.check_password_unthrottled(kind, username, password, client_ip).await;
        // why only refused credentials count: a login that failed for the server's sake (a
        // full hashing queue, a database error) says nothing about guessing, and counting it
        // would lock out a busy office behind one address during a flood.
        let outcome = match result {
            Err(Error::BadCredentials(_)) => throttle::Outcome::Failed,
            _ => throttle::Outcome::Released,
        };
        pending.finish(outcome).await;
        result
    }

    async fn check_password_unthrottled(
        &self,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<Principal, Error> {
        let record = match Username::parse(username) {
            Ok(name) => self.store.principal_by_name(kind, name.as_str()).await?,
            Err(_) => None,
        };
        let verified =
            self.passwords.verify(record.as_ref().map(|r| r.password_hash.clone()), password.clone()).await?;
        let Some(record) = record else {
            return Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal));
        };
        if !verified.ok {
            return Err(Error::BadCredentials(CredentialFailure::WrongPassword));
        }
        if !record.enabled {
            return Err(Error::BadCredentials(CredentialFailure::Disabled));
        }
        // why after the password: checked first, the rules would tell anyone which accounts
        // exist and are restricted. The cost: from a refused address a guesser still learns
        // whether a password is right (but cannot use it); login throttling bounds that.
        // Before the rehash, so a refused login writes nothing.
        self.ip_rules.check(&record, client_ip)?;
        if verified.needs_rehash {
            // why: a failed rehash must not fail a login that verified; it is retried next login.
            // It is a compare-and-swap, so it never undoes a password change made meanwhile.
            match self.passwords.hash(password).await {
                Ok(hash) => match self.store.replace_password_hash(record.id, &record.password_hash, &hash).await {
                    Ok(true) => return Ok(Principal { password_hash: hash, ..record }),
                    Ok(false) => tracing::info!("password changed during login; rehash skipped"),
                    Err(e) => tracing::warn!(error = %e, "could not store rehashed password"),
                },
                Err(e) => tracing::warn!(error = %e, "could not rehash password"),
            }
        }
        Ok(record)
    }

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

    async fn insert(
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

    /// Check a presented token for a dialect. Shape first (garbage never reaches the database),
    /// then the digest lookup, then the row's state. Schedules a touch; never writes.
    pub async fn authenticate(&self, policy: &TokenPolicy, presented: &str) -> Result<Authenticated, Error> {
        self.authenticate_among(std::slice::from_ref(policy), presented).await
    }

    /// Check a presented token issued by any of `policies`' dialects (the forward-auth
    /// endpoint accepts every dialect's tokens): the token must have the shape of one of them,
    /// and its row must name one of them. Otherwise as `authenticate`.
    pub async fn authenticate_among(&self, policies: &[TokenPolicy], presented: &str) -> Result<Authenticated, Error> {
        let result = self.authenticate_unmetered(policies, presented, None).await;
        self.metrics.token_check(&result);
        result
    }

    /// As `authenticate_among`, for a token presented with the key that must name it (webitel's
    /// `X-Key`, at its logout and at `/verify`): a key of another token, even a live one of the
    /// same owner, is refused as `unknown`.
    pub async fn authenticate_with_key(
        &self,
        policies: &[TokenPolicy],
        presented: &str,
        key: Uuid,
    ) -> Result<Authenticated, Error> {
        let result = self.authenticate_unmetered(policies, presented, Some(key)).await;
        self.metrics.token_check(&result);
        result
    }

    async fn authenticate_unmetered(
        &self,
        policies: &[TokenPolicy],
        presented: &str,
        key: Option<Uuid>,
    ) -> Result<Authenticated, Error> {
        let refuse = |why| Err(Error::Unauthenticated(why));
        if presented.is_empty() {
            return refuse(AuthFailure::Malformed(Malformation::Empty));
        }
        // why an iterator, not a list: this runs on every check; the shape checks are cheap
        // enough to repeat, an allocation per request is not.
        let mut shaped = policies.iter().filter(|p| p.format.accepts(presented));
        if shaped.clone().next().is_none() {
            return refuse(AuthFailure::Malformed(Malformation::BadFormat));
        }
        if shaped.clone().any(|p| matches!(p.format, TokenFormat::Jwt(_))) {
            self.check_signature(presented).await?;
        }
        let digest = PlainToken::new(presented).digest();
        let (mut found, ticket) = match self.cache.get(&digest) {
            Some(hit) => (hit, None),
            None => {
                let ticket = self.cache.ticket();
                let Some(found) = self.store.token_by_digest(&digest).await? else {
                    return refuse(AuthFailure::Unknown);
                };
                (Arc::new(found), Some(ticket))
            }
        };
        let read = ticket.map(|t| (t, Arc::clone(&found)));
        let now = self.clock.now();
        // why: a sliding refresh waits in the touch queue until the next flush; the token must
        // not be refused meanwhile for an expiry that has already been moved. (The copy is
        // made only then; the cached lookup keeps the stored expiry.)
        if let (Some(stored), Some(pending)) = (found.token.expires_at, self.touches.pending_expiry(found.token.id))
            && pending > stored
        {
            Arc::make_mut(&mut found).token.expires_at = Some(pending);
        }
        let token = &found.token;
        let Some(policy) = shaped.find(|p| p.issuer == token.issuer) else {
            return refuse(AuthFailure::WrongDialect);
        };
        if token.revoked_at.is_some() {
            return refuse(AuthFailure::Revoked);
        }
        if token.expires_at.is_some_and(|at| at <= now) {
            return refuse(AuthFailure::Expired);
        }
        if !token.enabled {
            return refuse(AuthFailure::TokenDisabled);
        }
        if !found.owner.enabled {
            return refuse(AuthFailure::PrincipalDisabled);
        }
        // why after the token's own state: a dialer reseller's revoked token on the user
        // logout is `revoked`, as it would be on its own endpoint.
        if policy.principal_kind.is_some_and(|kind| kind != found.owner.kind) {
            return refuse(AuthFailure::WrongKind);
        }
        // why last: a key is checked only against a token that is good in every other way, so
        // `/verify` still tells a revoked token from a wrong key.
        if key.is_some_and(|key| key != token.id) {
            return refuse(AuthFailure::Unknown);
        }
        if let Some((ticket, lookup)) = read {
            let remaining = lookup.token.expires_at.map(|at| Duration::try_from(at - now).unwrap_or_default());
            self.cache.put(ticket, digest, lookup, remaining);
        }
        self.schedule_touch(policy, token, now);
        Ok(Authenticated { found, digest })
    }

    /// A JWT must carry a good signature by a key we know before the database is asked. An
    /// unknown kid may be a key rotated in elsewhere: reload (rate-limited) and try again.
    async fn check_signature(&self, token: &str) -> Result<(), Error> {
        let refuse = |_| Error::Unauthenticated(AuthFailure::Malformed(Malformation::BadSignature));
        match self.keys.verify(token) {
            Err(JwtRefusal::UnknownKey) => {
                if self.keys.reload(&*self.store, self.jwt_secret.as_ref(), self.clock.now(), false).await? {
                    self.keys.verify(token).map_err(refuse)
                } else {
                    Err(refuse(JwtRefusal::UnknownKey))
                }
            }
            other => other.map_err(refuse),
        }
    }

    /// Queue the last-used time (at most once a minute) and the sliding expiry, if due.
    fn schedule_touch(&self, policy: &TokenPolicy, token: &Token, now: OffsetDateTime) {
        let last_used_at = match token.last_used_at.max(self.touches.recent_use(token.id)) {
            Some(last) if now - last < TOUCH_INTERVAL => None,
            _ => Some(now),
        };
        let expires_at = match (policy.refresh, policy.session_ttl, token.expires_at, token.kind) {
            (Some(refresh), Some(ttl), Some(current), TokenKind::Session) => {
                let cap = refresh.max_lifetime.and_then(|max| after(token.created_at, max).ok());
                after(now, ttl)
                    .ok()
                    .map(|target| cap.map_or(target, |cap| target.min(cap)))
                    .filter(|target| *target - current > refresh.min_interval)
            }
            _ => None,
        };
        if last_used_at.is_some() || expires_at.is_some() {
            self.touches.push(TokenTouch { id: token.id, last_used_at, expires_at });
        }
    }

    /// Write the queued touches in one batch. Called by the background flusher and at shutdown.
    /// A batch that fails to write goes back on the queue, to be retried by the next flush.
    pub async fn flush_touches(&self) -> Result<usize, Error> {
        let interval = time::Duration::try_from(TOUCH_INTERVAL).unwrap_or(time::Duration::MINUTE);
        let batch = self.touches.drain(self.clock.now() - interval);
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.store.apply_touches(&batch).await {
            for touch in batch {
                self.touches.push(touch);
            }
            return Err(e.into());
        }
        // why: a cached lookup still carries the expiry before the slide; read the row again.
        for touch in batch.iter().filter(|t| t.expires_at.is_some()) {
            self.cache.invalidate(Invalidation::Token(touch.id));
        }
        Ok(batch.len())
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
    /// many) and the expired throttle counters.
    pub async fn sweep(&self) -> Result<u64, Error> {
        let forgotten = self.store.sweep_throttle(self.clock.now()).await?;
        tracing::debug!(forgotten, "expired throttle counters deleted");
        let retention = time::Duration::try_from(self.retention).unwrap_or(time::Duration::MAX);
        match self.clock.now().checked_sub(retention) {
            Some(cutoff) => Ok(self.store.sweep(cutoff).await?),
            // why: a retention longer than the calendar means "keep everything".
            None => Ok(0),
        }
    }
}

/// `t + d`; a lifetime past the end of the calendar is refused rather than panicking.
fn after(t: OffsetDateTime, d: Duration) -> Result<OffsetDateTime, Error> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .filter(|at| at.year() <= 9999)
        .ok_or_else(|| Error::Invalid(format!("lifetime {} is too long", humantime::format_duration(d))))
}

/// A note is a one-line label: at most `NOTE_MAX_CHARS`, no control characters (why: NUL
/// cannot be stored in Postgres text, and newlines would let a note forge lines in listings).
fn check_note(note: Option<String>) -> Result<Option<String>, Error> {
    match note {
        Some(n) if n.chars().count() > NOTE_MAX_CHARS => {
            Err(Error::Invalid(format!("note is longer than {NOTE_MAX_CHARS} characters")))
        }
        Some(n) if n.chars().any(char::is_control) => Err(Error::Invalid("note contains a control character".into())),
        other => Ok(other),
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
