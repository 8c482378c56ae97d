//! Prometheus metrics: the registry and what feeds it, rendered in the OpenMetrics text
//! format by the `prometheus-client` crate. The HTTP side (the counting layer, the `/metrics`
//! route) is in `middleware::metrics` and `ops`.
//!
//! Policy: one `Metrics` per server, passed down like every other piece of state (no global
//! recorder, so parallel tests keep their own figures). Labels are bounded sets: routes are the
//! matched route templates (an unmatched path is `unmatched`), outcomes are fixed names, never
//! user input.
//!
//! Names: tokenauth's own are prefixed `tokenauth_`; the process metrics keep the names every
//! client library uses (`process_*`, see `process`). The README lists every metric.

mod process;

use std::sync::Mutex;

use axum::http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{AuthFailure, CredentialFailure, Error};
use crate::model::{Issuer, build};
use crate::store::PoolStats;

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The request method.
    pub method: &'static str,
    /// The matched route template, or `unmatched`.
    pub route: &'static str,
    /// The response status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The request method.
    pub method: &'static str,
    /// The matched route template, or `unmatched`.
    pub route: &'static str,
}

/// Labels of a login.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// The dialect logged in through (or `ui`, the web page).
    pub dialect: &'static str,
    /// `success`, or why it failed.
    pub outcome: &'static str,
}

/// Labels of a token check.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `ok`, or the refusal reason (`unknown`, `expired`, ...).
    pub outcome: &'static str,
}

/// Labels of a pool gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // why: 100 µs to ~13 s in doublings covers a cached token check and a slow login alike.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The password-hashing pool's figures, shared with `token::password`.
#[derive(Debug, Clone)]
pub struct HashingMetrics {
    /// Time a hash waited for a worker.
    pub queue_wait: Histogram,
    /// Hashes running now.
    pub running: Gauge,
    /// Hashes admitted and waiting for a worker now.
    pub waiting: Gauge,
    /// Hashes refused at once because the queue was full.
    pub rejected: Counter,
}

impl Default for HashingMetrics {
    fn default() -> Self {
        HashingMetrics {
            queue_wait: latency_histogram(),
            running: Gauge::default(),
            waiting: Gauge::default(),
            rejected: Counter::default(),
        }
    }
}

/// Labels of a login's wait for a place on the throttle.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleWaitLabels {
    /// How the wait ended: `admitted`, `locked_out`, `gave_up` (429 after half the request
    /// timeout), `cancelled` (the request went away) or `error`.
    pub outcome: &'static str,
}

/// The login throttle's figures, shared with `token::throttle`.
#[derive(Debug, Clone, Default)]
pub struct ThrottleMetrics {
    /// Logins that waited for a place in flight, by how the wait ended.
    pub waits: Family<ThrottleWaitLabels, Counter>,
    /// Logins waiting for a place in flight now.
    pub waiting: Gauge,
}

impl ThrottleMetrics {
    /// Every way a wait can end.
    pub const OUTCOMES: [&'static str; 5] = ["admitted", "locked_out", "gave_up", "cancelled", "error"];
}

/// Every metric tokenauth exports, and the registry that writes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<RouteLabels>,
    logins: Family<LoginLabels, Counter>,
    token_checks: Family<CheckLabels, Counter>,
    /// The password-hashing pool's figures.
    pub hashing: HashingMetrics,
    /// The login throttle's figures.
    pub throttle: ThrottleMetrics,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
    cache_lookups: Family<CacheLabels, Counter>,
    /// Held while the cache's running totals are copied into `cache_lookups`, so two scrapes
    /// at once cannot both add the same lookups.
    cache_sync: Mutex<()>,
    cache_entries: Gauge,
    listener_reconnects: Counter,
}

/// The token cache's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache since start.
    pub hits: u64,
    /// Lookups that went to the database since start.
    pub misses: u64,
    /// Entries now (approximate).
    pub entries: u64,
}

/// Labels of the build-info gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Labels of the cache's lookup counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(HashingMetrics::default())
    }
}

impl Metrics {
    /// Register every metric, the hashing pool's given ones included.
    pub fn new(hashing: HashingMetrics) -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("tokenauth");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: build::VERSION, commit: build::COMMIT }).set(1);
        registry.register("build_info", "Always 1; its labels name the running build", build_info);
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by method, matched route and status", http_requests.clone());
        let http_latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and matched route",
            http_latency.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Logins by dialect and outcome", logins.clone());
        let token_checks = Family::<CheckLabels, Counter>::default();
        registry.register("token_checks", "Token checks by outcome", token_checks.clone());
        registry.register(
            "password_hash_queue_wait_seconds",
            "Time a password hash waited for a hashing worker",
            hashing.queue_wait.clone(),
        );
        registry.register("password_hashes_running", "Password hashes running now", hashing.running.clone());
        registry.register(
            "password_hashes_waiting",
            "Password hashes admitted and waiting for a worker",
            hashing.waiting.clone(),
        );
        registry.register(
            "password_hashes_rejected",
            "Password hashes refused at once because the queue was full (503)",
            hashing.rejected.clone(),
        );
        let throttle = ThrottleMetrics::default();
        // why every outcome at zero: a rate over a series that appears only with its first wait
        // misses that wait.
        for outcome in ThrottleMetrics::OUTCOMES {
            throttle.waits.get_or_create(&ThrottleWaitLabels { outcome }).inc_by(0);
        }
        registry.register(
            "login_throttle_waits",
            "Logins that waited for a place in flight on the login throttle, by how the wait ended",
            throttle.waits.clone(),
        );
        registry.register(
            "login_throttle_waiting",
            "Logins waiting for a place in flight on the login throttle now",
            throttle.waiting.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state, sampled at scrape",
            pool_connections.clone(),
        );
        let pool_max = Gauge::default();
        registry.register("db_pool_max_connections", "Database pool size limit", pool_max.clone());
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register("token_cache_lookups", "Token-cache lookups by result (hit or miss)", cache_lookups.clone());
        let cache_entries = Gauge::default();
        registry.register("token_cache_entries", "Token checks cached now (approximate)", cache_entries.clone());
        let listener_reconnects = Counter::default();
        registry.register(
            "invalidation_listener_reconnects",
            "Times the revocation listener reconnected (each flushes the token cache)",
            listener_reconnects.clone(),
        );
        Metrics {
            registry: root,
            http_requests,
            http_latency,
            logins,
            token_checks,
            hashing,
            throttle,
            pool_connections,
            pool_max,
            cache_lookups,
            cache_sync: Mutex::new(()),
            cache_entries,
            listener_reconnects,
        }
    }

    /// Count a login through `issuer` that ended with `result`.
    pub fn login<T>(&self, issuer: Issuer, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "success",
            Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal)) => "unknown_principal",
            Err(Error::BadCredentials(CredentialFailure::WrongPassword)) => "wrong_password",
            Err(Error::BadCredentials(CredentialFailure::Disabled)) => "disabled",
            Err(Error::BadCredentials(CredentialFailure::IpNotAllowed)) => "ip_not_allowed",
            Err(Error::BadCredentials(_)) => "bad_credentials",
            Err(Error::TokenLimit) => "token_limit",
            Err(Error::Overloaded { .. }) => "overloaded",
            Err(Error::Throttled { .. }) => "throttled",
            Err(Error::Unavailable | Error::Timeout) => "unavailable",
            Err(Error::Invalid(_) | Error::Fields(_)) => "invalid",
            Err(_) => "error",
        };
        self.logins.get_or_create(&LoginLabels { dialect: issuer.as_str(), outcome }).inc();
    }

    /// Count a token check that ended with `result`.
    pub fn token_check<T>(&self, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(Error::Unauthenticated(failure)) => failure.reason(),
            Err(Error::Unavailable | Error::Timeout) => "unavailable",
            Err(_) => "error",
        };
        self.token_checks.get_or_create(&CheckLabels { outcome }).inc();
    }

    /// Count a refusal made before the service was asked (no token presented at all).
    pub fn token_check_refused(&self, failure: AuthFailure) {
        self.token_checks.get_or_create(&CheckLabels { outcome: failure.reason() }).inc();
    }

    /// Count and time one HTTP request.
    pub(crate) fn observe_http(&self, method: &'static str, route: &'static str, status: StatusCode, seconds: f64) {
        self.http_latency.get_or_create(&RouteLabels { method, route }).observe(seconds);
        self.http_requests.get_or_create(&HttpLabels { method, route, status: status.as_u16() }).inc();
    }

    /// Count a reconnection of the revocation listener.
    pub fn listener_reconnected(&self) {
        self.listener_reconnects.inc();
    }

    /// The exposition text, with the pool's and the cache's gauges sampled now.
    pub fn render(&self, pool: PoolStats, cache: CacheStats) -> Result<String, std::fmt::Error> {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        {
            // why a poisoned lock is taken anyway: it guards no data, only the copy below.
            let _sync = self.cache_sync.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (result, total) in [("hit", cache.hits), ("miss", cache.misses)] {
                let counter = self.cache_lookups.get_or_create(&CacheLabels { result });
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        self.cache_entries.set(gauge(cache.entries));
        let idle = i64::try_from(pool.idle).unwrap_or(i64::MAX);
        self.pool_connections.get_or_create(&PoolLabels { state: "idle" }).set(idle);
        self.pool_connections.get_or_create(&PoolLabels { state: "in_use" }).set((i64::from(pool.size) - idle).max(0));
        self.pool_max.set(i64::from(pool.max));
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
