//! JWT signing keys for the dialects whose tokens are HS256 JWTs (webitel, dialer).
//!
//! Policy:
//! - Every token carries its key's id in the `kid` header, so keys can rotate: the newest key
//!   signs, every known key verifies, and tokens signed before a rotation keep working.
//! - The key comes from `jwt_secret` (TOKENAUTH_JWT_SECRET) when configured; otherwise one is
//!   generated once and kept in the database, so every replica shares it. Replicas that start
//!   together race to insert the same fixed kid; one wins, all read the winner.
//! - A signature is checked before the database is asked (garbage costs an HMAC, not a query),
//!   but it never makes a token valid on its own: the row does (see `TokenService::authenticate`).
//! - An unknown `kid` (a key rotated in by another process) triggers a reload from the
//!   database, at most once per `RELOAD_INTERVAL`, so random kids cannot flood the store.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::Error;
use crate::model::SigningKey;
use crate::store::Store;

/// The kid of the key generated when none is configured; fixed so replicas starting at once
/// converge on one key.
const INITIAL_KID: &str = "initial";

use crate::config::MIN_SECRET_BYTES;

/// why 5 s: picks up a rotation quickly, bounds database reads caused by unknown kids.
const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Why a JWT's signature check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    /// Not a JWT we could have issued (shape, header, algorithm).
    Malformed,
    /// Signed by a key we do not know.
    UnknownKey,
    /// Our key, wrong signature: tampered.
    BadSignature,
}

struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    /// Keys of the systems tokenauth replaced (Webitel's), which verify their tokens: those
    /// carry no `kid`. They never sign.
    legacy: Vec<DecodingKey>,
}

/// The loaded keys. Cheap to use from many tasks; reloads swap the set atomically.
pub struct Keys {
    set: RwLock<KeySet>,
    last_reload: Mutex<Option<Instant>>,
    /// A verifying key went away at a reload (see `take_lost`).
    lost: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("signing_kid", &self.signing_kid()).finish_non_exhaustive()
    }
}

/// The kid of a configured secret: derived from it, so every replica with the same secret
/// agrees, and a changed secret gets a new kid.
pub fn configured_kid(secret: &SecretString) -> String {
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    format!("cfg-{}", &hex::encode(digest)[..12])
}

/// A fresh random key with a random kid.
pub fn generate(created_at: OffsetDateTime) -> SigningKey {
    let mut secret = vec![0u8; MIN_SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    OsRng.fill_bytes(&mut id);
    SigningKey { kid: format!("k-{}", hex::encode(id)), secret, created_at }
}

impl Keys {
    /// Load the keys: the configured secret signs if there is one; otherwise the newest key in
    /// the database, generating the first one if there is none.
    pub async fn load(
        store: &dyn Store,
        configured: Option<&SecretString>,
        now: OffsetDateTime,
    ) -> Result<Keys, Error> {
        let set = Self::read(store, configured, now).await?;
        // why None: the first unknown kid after start reloads at once; only repeats are limited.
        Ok(Keys { set: RwLock::new(set), last_reload: Mutex::new(None), lost: Default::default() })
    }

    async fn read(store: &dyn Store, configured: Option<&SecretString>, now: OffsetDateTime) -> Result<KeySet, Error> {
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() && configured.is_none() {
            let first = SigningKey { kid: INITIAL_KID.to_owned(), ..generate(now) };
            store.insert_signing_key(&first).await?;
            stored = store.signing_keys().await?;
        }
        let mut verifying: HashMap<String, DecodingKey> =
            stored.iter().map(|k| (k.kid.clone(), DecodingKey::from_secret(&k.secret))).collect();
        let (signing_kid, signing) = match configured {
            Some(secret) => {
                let kid = configured_kid(secret);
                let bytes = secret.expose_secret().as_bytes();
                verifying.insert(kid.clone(), DecodingKey::from_secret(bytes));
                (kid, EncodingKey::from_secret(bytes))
            }
            None => {
                // why newest: `keys rotate` adds a key to sign with from then on.
                let newest = stored
                    .iter()
                    .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
                    .ok_or_else(|| Error::Internal("no signing key in the database".into()))?;
                (newest.kid.clone(), EncodingKey::from_secret(&newest.secret))
            }
        };
        let legacy = store.legacy_jwt_keys().await?.iter().map(|s| DecodingKey::from_secret(s)).collect();
        Ok(KeySet { signing_kid, signing, verifying, legacy })
    }

    /// Re-read the keys from the database (a rotation elsewhere), at most once per interval
    /// unless `force`; returns whether it reloaded.
    pub async fn reload(
        &self,
        store: &dyn Store,
        configured: Option<&SecretString>,
        now: OffsetDateTime,
        force: bool,
    ) -> Result<bool, Error> {
        // why only unforced reloads count: the periodic (forced) reload must not make the next
        // unknown kid wait; the limit exists to bound reads caused by unknown kids.
        if !force {
            let mut last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let set = Self::read(store, configured, now).await?;
        let mut current = self.set.write().unwrap_or_else(|e| e.into_inner());
        let lost = current.verifying.keys().any(|kid| !set.verifying.contains_key(kid));
        *current = set;
        if lost {
            self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Whether a key that verified tokens has gone since this was last asked (deleted from the
    /// database by hand: `tokenauth keys` only adds keys): cached checks of JWTs, whose
    /// signatures are not verified again on a hit, must then be forgotten.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// The kid that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.set.read().unwrap_or_else(|e| e.into_inner()).signing_kid.clone()
    }

    /// Sign `claims` with the current key (HS256, `typ: JWT`, `kid`).
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, Error> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(set.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &set.signing)
            .map_err(|e| Error::Internal(format!("cannot sign a JWT: {e}")))
    }

    /// Check a JWT's header and signature only. Expiry and revocation are the row's business.
    pub fn verify(&self, token: &str) -> Result<(), JwtRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefusal::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtRefusal::Malformed);
        }
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = header.kid.as_ref().and_then(|kid| set.verifying.get(kid)) {
            return check(token, key);
        }
        // An old system's token (Webitel signs without a kid; others with kids of their own):
        // one of the imported keys must verify it. why UnknownKey when none does: an import
        // (another process) may have added its key, or a rotation elsewhere a kid of ours; the
        // caller reloads, rate-limited, and asks again.
        let mut refusal = JwtRefusal::UnknownKey;
        for key in &set.legacy {
            match check(token, key) {
                Ok(()) => return Ok(()),
                Err(JwtRefusal::Malformed) => refusal = JwtRefusal::Malformed,
                Err(_) if header.kid.is_none() => refusal = JwtRefusal::BadSignature,
                Err(_) => {}
            }
        }
        Err(refusal)
    }
}

/// Whether `token` is an HS256 JWT whose signature `secret` verifies.
pub fn verifies_with(token: &str, secret: &[u8]) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256)
        && check(token, &DecodingKey::from_secret(secret)).is_ok()
}

/// Check an HS256 signature with `key`, and nothing else.
fn check(token: &str, key: &DecodingKey) -> Result<(), JwtRefusal> {
    let mut validation = Validation::new(Algorithm::HS256);
    // why: Webitel's exp is in milliseconds and static tokens have none; the row decides.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
            Err(JwtRefusal::BadSignature)
        }
        Err(_) => Err(JwtRefusal::Malformed),
    }
}

/// Decode a JWT's claims without checking anything, for tests and the CLI's display.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(token).ok().map(|d| d.claims)
}

#[cfg(test)]
mod proptests;
