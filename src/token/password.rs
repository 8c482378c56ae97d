//! Password hashing: argon2id on a bounded pool, with a timing guard for unknown users.
//!
//! Policy:
//! - Hashing and verification never run on the async workers: they run in `spawn_blocking`,
//!   at most `workers` at once, with at most `queue` more waiting. Past that, callers get
//!   `Error::Overloaded` at once (a 503 with `Retry-After`), so a login flood neither starves
//!   token checks of threads nor grows memory without bound.
//! - An unknown user is verified against a dummy hash made with the same parameters, so it
//!   costs the same time as a wrong password and timing does not reveal which users exist.
//! - A hash made with other parameters still verifies, and `Verified::needs_rehash` tells the
//!   service to store a fresh one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};
use tracing::Span;

use super::legacy;
use crate::config::PasswordConfig;
use crate::error::Error;
use crate::metrics::HashingMetrics;
use crate::model::{PasswordScheme, Principal};

/// why: the dummy password is never compared with anything a client can know; it only has
/// to produce a valid hash with the current parameters.
const DUMMY_PASSWORD: &str = "tokenauth-dummy-password-for-timing";

/// why: a full queue clears in a few hash times (tens of ms each); one second is a polite retry.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The outcome of a verification that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches the hash.
    pub ok: bool,
    /// The hash was made with other parameters (or another algorithm) than the current ones.
    pub needs_rehash: bool,
}

/// argon2id hashing on a bounded pool. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// Permits for hashes running or waiting: `workers + queue`. `try_acquire` or refuse.
    admission: Arc<Semaphore>,
    /// Permits for hashes running: `workers`.
    running: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
    /// Verifications run to completion, dummy ones included (for metrics and tests).
    verifications: Arc<AtomicU64>,
    metrics: HashingMetrics,
    /// Peppers of imported hashes, by the name a scheme gives.
    peppers: Arc<BTreeMap<String, SecretString>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.params)
            .field("running", &self.running.available_permits())
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// Build from configuration, reporting into `metrics`; refuses argon2 parameters argon2
    /// itself refuses.
    pub fn new(cfg: &PasswordConfig, metrics: HashingMetrics) -> Result<Self, Error> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| Error::Internal(format!("invalid argon2 parameters: {e}")))?;
        let workers = cfg.effective_workers();
        Ok(Passwords {
            params,
            admission: Arc::new(Semaphore::new(workers + cfg.queue)),
            running: Arc::new(Semaphore::new(workers)),
            dummy: Arc::new(OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
            metrics,
            peppers: Arc::new(cfg.peppers.iter().map(|(name, p)| (name.clone(), p.expose().clone())).collect()),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Compute the dummy hash in the background so the first unknown-user login does not pay
    /// for it; readiness does not wait for it.
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.dummy_hash().await {
                tracing::warn!(error = %e, "could not precompute the dummy password hash");
            }
        });
    }

    async fn dummy_hash(&self) -> Result<String, Error> {
        self.dummy.get_or_try_init(|| self.hash(SecretString::from(DUMMY_PASSWORD))).await.cloned()
    }

    /// Hash a password with the current parameters and a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon2(params)
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("argon2 hash failed: {e}")))
        })
        .await
    }

    /// Verify `password` against `stored`; with `None` (unknown user) verify against the dummy
    /// hash and report failure, so both cases cost one verification.
    pub async fn verify(&self, stored: Option<String>, password: SecretString) -> Result<Verified, Error> {
        let (hash, known) = match stored {
            Some(h) => (h, true),
            None => (self.dummy_hash().await?, false),
        };
        let current = self.params.clone();
        let counter = Arc::clone(&self.verifications);
        let verified = self
            .run(move || {
                let Ok(parsed) = PasswordHash::new(&hash) else {
                    // why: a corrupt stored hash must not open the door nor crash the request.
                    tracing::error!("stored password hash is not a valid PHC string");
                    return Ok(Verified { ok: false, needs_rehash: false });
                };
                // why the legacy verifier: an imported PHC string may predate `v=` (version
                // 0x10); tokenauth's own always carry v=19.
                let ok = legacy::password::argon2_verify(password.expose_secret().as_bytes(), &parsed);
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(Verified { ok, needs_rehash: ok && !matches_params(&parsed, &current) })
            })
            .await?;
        Ok(Verified { ok: verified.ok && known, needs_rehash: verified.needs_rehash && known })
    }

    /// Verify `password` against a principal's imported (legacy) hash, with its scheme's own
    /// parameters, on the same bounded pool as argon2. A principal without a usable password
    /// costs a dummy verification, as an unknown user does. A match always asks for a rehash:
    /// the legacy hash is then replaced with argon2id.
    pub async fn verify_legacy(&self, principal: &Principal, password: SecretString) -> Result<Verified, Error> {
        if principal.password_scheme == PasswordScheme::Unusable {
            return self.verify(None, password).await;
        }
        let pepper = match principal.password_scheme.pepper() {
            Some(name) => Some(self.peppers.get(name).cloned().ok_or_else(|| {
                Error::Internal(format!(
                    "the pepper {name:?} of imported password hashes is not configured (passwords.peppers)"
                ))
            })?),
            None => None,
        };
        let (scheme, encoded, name) =
            (principal.password_scheme.clone(), principal.password_hash.clone(), principal.name.clone());
        let counter = Arc::clone(&self.verifications);
        let ok = self
            .run(move || {
                let pepper = pepper.as_ref().map(|p| p.expose_secret().as_bytes());
                let ok = match legacy::password::verify(
                    &scheme,
                    &encoded,
                    &name,
                    password.expose_secret().as_bytes(),
                    pepper,
                ) {
                    Ok(ok) => Some(ok),
                    Err(e) => {
                        // why: a stored hash that no longer passes its checks must not open the
                        // door nor crash the request (the import refused such hashes).
                        tracing::error!(error = %e, "stored legacy password hash refused");
                        None
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(ok)
            })
            .await?;
        match ok {
            Some(ok) => Ok(Verified { ok, needs_rehash: ok }),
            // why a dummy verification: a refusal must cost what any other does.
            None => self.verify(None, SecretString::from(String::new())).await,
        }
    }

    /// The value of the pepper `name`, if configured (the importer checks a given secret
    /// against it).
    pub fn pepper(&self, name: &str) -> Option<&SecretString> {
        self.peppers.get(name)
    }

    /// How many verifications have run to completion, dummy ones included.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Run `work` on the blocking pool under the admission and concurrency bounds, keeping the
    /// caller's tracing span. The permits travel into the closure, so they are released when
    /// the hash finishes even if the request that asked for it has gone.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let admitted = Arc::clone(&self.admission).try_acquire_owned().map_err(|_| {
            self.metrics.rejected.inc();
            Error::Overloaded { retry_after: OVERLOADED_RETRY_AFTER }
        })?;
        let queued = std::time::Instant::now();
        let waiting = Counted::new(&self.metrics.waiting);
        let running = Arc::clone(&self.running).acquire_owned().await;
        drop(waiting);
        let running = running.map_err(|_| Error::Internal("password pool closed".into()))?;
        self.metrics.queue_wait.observe(queued.elapsed().as_secs_f64());
        let span = Span::current();
        let gauge = self.metrics.running.clone();
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            let _running = Counted::new(&gauge);
            span.in_scope(work)
        })
        .await
        .map_err(|e| Error::Internal(format!("password task failed: {e}")))?
    }
}

/// One unit of a gauge for as long as it lives, so a cancelled wait or a panicking hash
/// cannot leave the gauge counting it.
struct Counted(prometheus_client::metrics::gauge::Gauge);

impl Counted {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn matches_params(hash: &PasswordHash<'_>, current: &Params) -> bool {
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == current.m_cost() && p.t_cost() == current.t_cost() && p.p_cost() == current.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(memory_kib: u32) -> PasswordConfig {
        PasswordConfig { memory_kib, iterations: 1, parallelism: 1, workers: 1, queue: 0, peppers: Default::default() }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let p = Passwords::new(&cheap(1024), HashingMetrics::default()).unwrap();
        let h = p.hash("hunter2".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            p.verify(Some(h.clone()), "hunter2".into()).await.unwrap(),
            Verified { ok: true, needs_rehash: false }
        );
        assert!(!p.verify(Some(h), "hunter3".into()).await.unwrap().ok);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies_but_pays_for_a_real_verification() {
        let p = Passwords::new(&cheap(1024), HashingMetrics::default()).unwrap();
        let v = p.verify(None, DUMMY_PASSWORD.into()).await.unwrap();
        assert_eq!(v, Verified { ok: false, needs_rehash: false });
        assert_eq!(p.verifications(), 1, "the dummy hash was really verified");
        // The dummy hash has the current parameters, so it costs what a real one costs.
        let dummy = p.dummy.get().unwrap();
        assert!(dummy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{dummy}");
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = Passwords::new(&cheap(1024), HashingMetrics::default()).unwrap();
        let new = Passwords::new(&cheap(2048), HashingMetrics::default()).unwrap();
        let h = old.hash("pw".into()).await.unwrap();
        assert_eq!(new.verify(Some(h), "pw".into()).await.unwrap(), Verified { ok: true, needs_rehash: true });
    }

    #[tokio::test]
    async fn corrupt_hash_is_a_failure_not_a_crash() {
        let p = Passwords::new(&cheap(1024), HashingMetrics::default()).unwrap();
        assert!(!p.verify(Some("not a hash".into()), "pw".into()).await.unwrap().ok);
    }

    #[tokio::test]
    async fn full_queue_refuses_at_once() {
        let p = Passwords::new(&cheap(1024), HashingMetrics::default()).unwrap();
        // Hold the only admission permit, as a running hash would.
        let held = Arc::clone(&p.admission).try_acquire_owned().unwrap();
        let err = p.hash("pw".into()).await.unwrap_err();
        assert!(matches!(err, Error::Overloaded { .. }), "{err:?}");
        drop(held);
        assert!(p.hash("pw".into()).await.is_ok());
    }
}
