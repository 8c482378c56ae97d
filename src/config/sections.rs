//! The server-wide sections: logging, HTTP limits, the database pool, password hashing, token
//! housekeeping, the token-check cache, login throttling and CORS.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secrets::{DatabaseUrl, Secret};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`text` is accepted too).
    #[serde(alias = "text")]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// HTTP serving limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request that takes longer gets a 503 in its dialect's shape.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes; larger gets a 413 in the dialect's shape.
    pub body_limit: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// After SIGTERM/SIGINT, how long `/readyz` answers 503 while requests are still served,
    /// before the listener closes and the drain (`shutdown_grace`) begins: the time a load
    /// balancer or a Kubernetes Service takes to stop sending new requests. 0 turns it off.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// One log line per request (the access line, at INFO). Off, requests are still counted
    /// in `/metrics` and their errors still logged, without the request's fields; a cached
    /// token check then costs about a third less CPU (README, Benchmark).
    pub access_log: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(30),
            // why 64 KiB: every request body of every dialect is a few hundred bytes.
            body_limit: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            // why 5 s: a few of a load balancer's health-check intervals (Kubernetes endpoint
            // removal and nginx's `max_fails` both act within seconds).
            shutdown_delay: Duration::from_secs(5),
            access_log: true,
        }
    }
}

/// Database pool settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a connection before a 503; must be below the request timeout.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Apply pending migrations when `serve` or an administration command starts. Off: they
    /// refuse to start on a schema that is behind, naming `tokenauth migrate`, so the runtime
    /// role needs no right to change the schema and migrating is a step of its own.
    pub migrate_on_start: bool,
    /// PostgreSQL: name and keep prepared statements per connection (the default, and the
    /// fastest). Off for PgBouncer in transaction mode (or any pooler that hands one client
    /// connection's statements to several server connections): every statement is then
    /// unnamed, and one outside a transaction runs in a short one of its own, so its parse
    /// and execution reach the same server connection.
    pub prepared_statements: bool,
    /// PostgreSQL: a direct connection (not through a transaction-mode pooler) for LISTEN,
    /// which needs a session of its own. Unset, LISTEN uses `database_url`. Readable from a
    /// file like `database_url` (`TOKENAUTH_DATABASE__LISTEN_URL_FILE`).
    pub listen_url: Option<DatabaseUrl>,
    /// PostgreSQL: migrations take an advisory lock, so that replicas starting together
    /// migrate one at a time. Off for engines without advisory locks (CockroachDB, or
    /// YugabyteDB without `ysql_yb_enable_advisory_locks`): then only one process may
    /// migrate at a time (`migrate_on_start = false` on the replicas, `tokenauth migrate` as
    /// a step of its own).
    pub migration_lock: bool,
    /// PostgreSQL: how a migration file is applied. `per_file` (one transaction each, as
    /// sqlx does) or `per_statement` (each statement in a transaction of its own, then the
    /// file recorded as applied, with the same checksum): for distributed engines, which
    /// refuse some schema changes together in one transaction (a column added and indexed).
    /// `per_statement` takes no lock (a statement's transaction cannot hold one for the
    /// file), so it needs `migration_lock = false` and one migrating process.
    pub migration_transactions: MigrationTransactions,
}

/// How a migration file is applied (`database.migration_transactions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationTransactions {
    /// One transaction per file: all of a file or none of it.
    PerFile,
    /// One transaction per statement: a file that fails half-way stays half applied (the
    /// error names the statement), for the operator to finish by hand.
    PerStatement,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            migrate_on_start: true,
            prepared_statements: true,
            listen_url: None,
            migration_lock: true,
            migration_transactions: MigrationTransactions::PerFile,
        }
    }
}

/// argon2id parameters and the hashing pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Memory cost in KiB (OWASP: 19 MiB).
    pub memory_kib: u32,
    /// Time cost (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes running at once; 0 means one per CPU less one (at least one).
    pub workers: usize,
    /// Hashes waiting beyond those running; past this, logins get a 503 at once.
    pub queue: usize,
    /// Peppers of imported password hashes, by name (`szurubooru`, `devise`): a legacy scheme
    /// names its pepper, whose value lives here and never in the database.
    pub peppers: BTreeMap<String, Secret>,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        // why: OWASP Password Storage Cheat Sheet, argon2id m=19456 KiB, t=2, p=1.
        PasswordConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            workers: 0,
            queue: 64,
            peppers: BTreeMap::new(),
        }
    }
}

impl PasswordConfig {
    /// `workers`, with 0 resolved to one less than the CPUs (at least one). why: a login
    /// flood then saturates all but one core, which stays free for token checks.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| usize::from(n).saturating_sub(1).max(1))
        }
    }
}

/// The audit log's housekeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long audit entries are kept; older ones are deleted by the sweep
    /// (`tokens.sweep_interval`).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        // why a year: long enough for a yearly access review, short enough to stay small.
        AuditConfig { retention: Duration::from_secs(365 * 24 * 3600) }
    }
}

/// Token housekeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// How long revoked and expired rows are kept (so they can be told from unknown ones).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the sweep deletes rows past retention.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How often deferred last-used and sliding-expiry writes are flushed.
    #[serde(with = "humantime_serde")]
    pub touch_flush_interval: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(3600),
            touch_flush_interval: Duration::from_secs(10),
        }
    }
}

/// The token-check cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Successful token lookups kept in memory (about 1 KiB each); 0 turns the cache off.
    pub capacity: u64,
    /// The longest a cached lookup is trusted without reading its row again: the bound on
    /// how late a revocation on another replica can be seen if its notice is lost.
    #[serde(with = "humantime_serde")]
    pub max_staleness: Duration,
    /// How revocations made by other processes (replicas, the CLI) reach this cache.
    pub invalidation: InvalidationMode,
    /// How often the invalidations table is read when it is polled (`poll`, or `auto`
    /// without LISTEN); 0 turns polling off, so `auto` falls back to `staleness`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

/// How revocations made elsewhere reach the cache (`cache.invalidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationMode {
    /// LISTEN/NOTIFY where the database has it (PostgreSQL); otherwise, with one log line,
    /// the polled invalidations table (SQLite, CockroachDB, YugabyteDB, PgBouncer without
    /// `database.listen_url`), or `staleness` if `poll_interval` is 0.
    Auto,
    /// LISTEN/NOTIFY only: while it cannot listen, the cache is off.
    Notify,
    /// The invalidations table, read every `poll_interval`.
    Poll,
    /// Nothing heard: a cached check is trusted for `max_staleness`, which is then how late
    /// another process's revocation can be seen.
    Staleness,
}

impl Default for CacheConfig {
    fn default() -> Self {
        // why 5 s: revocations normally arrive by NOTIFY within milliseconds; this is the
        // safety net, and a few seconds of database reads per token is cheap.
        // why 50 ms: one indexed read of the last second's rows, 20 a second per replica.
        CacheConfig {
            capacity: 100_000,
            max_staleness: Duration::from_secs(5),
            invalidation: InvalidationMode::Auto,
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// Login throttling. Failed logins are counted in the database (so every replica sees the
/// same counts) per client address and per account; past a limit, logins are refused with 429
/// and `Retry-After` before any password is hashed, for a lockout that doubles each time.
/// Logins in flight count against the limit too, but one past it waits for a place (at most
/// half of `http.request_timeout`) rather than being refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Off turns the counting and the 429s off.
    pub enabled: bool,
    /// Per client address (IPv6 by /64, since one host usually holds a whole /64).
    pub ip: ThrottleRule,
    /// Per account name (unknown names too, so a 429 does not tell which accounts exist).
    pub account: ThrottleRule,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            // why 10 a minute: a person mistyping a password stays far below it; a guesser
            // gets 10 tries, then a lockout that doubles (1, 2, 4 ... 60 minutes).
            ip: ThrottleRule {
                max_failures: 10,
                window: Duration::from_secs(60),
                lockout: Duration::from_secs(60),
                max_lockout: Duration::from_secs(3600),
                forget_after: Duration::from_secs(3600),
            },
            // why 100 in 15 minutes: well above what one address can reach (so an attacker
            // at one address cannot lock the owner out), low enough to slow a guesser who
            // spreads over many addresses.
            account: ThrottleRule {
                max_failures: 100,
                window: Duration::from_secs(900),
                lockout: Duration::from_secs(300),
                max_lockout: Duration::from_secs(3600),
                forget_after: Duration::from_secs(3600),
            },
        }
    }
}

/// One throttle: a sliding window of failures and a growing lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRule {
    /// Failures allowed within `window`; the next attempt is refused and starts a lockout.
    pub max_failures: u32,
    /// The sliding window the failures are counted over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first lockout; each further one doubles, up to `max_lockout`.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// The longest lockout.
    #[serde(with = "humantime_serde")]
    pub max_lockout: Duration,
    /// A counter with no failures for this long (after its window and lockout) is forgotten,
    /// lockout count included.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
}

/// CORS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call tokenauth from a browser; empty turns CORS off.
    pub allowed_origins: Vec<String>,
}
