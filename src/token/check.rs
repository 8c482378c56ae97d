//! Checking a presented token: its shape first (garbage never reaches the database), a JWT's
//! signature, the digest lookup (through the cache), the row's state, the key that must name
//! it; then the deferred touch (last use, sliding expiry), never a write on the check's path.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::cache::Invalidation;
use super::jwt::JwtRefusal;
use super::secret::TokenFormat;
use super::{TOUCH_INTERVAL, TokenPolicy, TokenService, after, legacy};
use crate::error::{AuthFailure, Error, Malformation};
use crate::model::{Owner, PlainToken, Token, TokenHash, TokenKind, TokenLookup};
use crate::store::TokenTouch;

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

impl TokenService {
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
        let digest = PlainToken::new(presented).digest();
        let cached = self.cache.get(&digest);
        // why the ticket before the signature check: a flush (a removed key) between the two
        // then voids the ticket, so a token checked against a key that is gone is not cached.
        let early_ticket = cached.is_none().then(|| self.cache.ticket());
        // why only on a miss: the cache is keyed by the digest of the whole token, signature
        // included, and a token is cached only after its signature was checked; a removed key
        // flushes the cache (`forget_checks_of_lost_keys`).
        if cached.is_none() && shaped.clone().any(|p| matches!(p.format, TokenFormat::Jwt(_))) {
            self.check_signature(presented).await?;
        }
        let (mut found, ticket) = match (cached, early_ticket) {
            (Some(hit), _) => (hit, None),
            (None, ticket) => {
                let ticket = ticket.unwrap_or_else(|| self.cache.ticket());
                let found = match self.store.token_by_digest(&digest).await? {
                    Some(found) => found,
                    None if self.may_be_legacy(policies, presented).await? => {
                        match self.adopt_legacy(presented, &digest).await? {
                            Some(found) => found,
                            None => return refuse(AuthFailure::Unknown),
                        }
                    }
                    None => return refuse(AuthFailure::Unknown),
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
                    self.forget_checks_of_lost_keys();
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

    /// Whether a token that missed the SHA-256 lookup may be a legacy one: it has the shape of a
    /// knox token (the only legacy digests are knox's), and legacy tokens remain. While none
    /// remain this costs nothing, but for one read of the flag every `LEGACY_RECHECK`.
    async fn may_be_legacy(&self, policies: &[TokenPolicy], presented: &str) -> Result<bool, Error> {
        if !policies.iter().any(|p| matches!(p.format, TokenFormat::PrefixedHex { .. }) && p.format.accepts(presented))
        {
            return Ok(false);
        }
        if self.legacy_tokens_remain() {
            return Ok(true);
        }
        if self.legacy_recheck_due() {
            return self.refresh_legacy_tokens().await;
        }
        Ok(false)
    }

    /// Find the legacy row `presented` is the token of, by its key and a recomputed digest
    /// (constant-time); rewrite the row to `digest` (the SHA-256 of `presented`), so each
    /// legacy token pays this once, and return it as a lookup by digest would.
    async fn adopt_legacy(&self, presented: &str, digest: &TokenHash) -> Result<Option<TokenLookup>, Error> {
        let keys = legacy::knox::candidate_keys(presented);
        let rows = self.store.legacy_tokens(&keys).await?;
        let Some(row) = rows.iter().find(|row| legacy::knox::matches(row, presented)) else {
            return Ok(None);
        };
        // why not an error when another check adopted it first: it wrote the same digest.
        if self.store.adopt_legacy_token(row.id, &row.scheme, digest).await? {
            tracing::info!(token_id = %row.id, scheme = %row.scheme, "legacy token adopted");
        }
        Ok(self.store.token_by_digest(digest).await?)
    }
}
