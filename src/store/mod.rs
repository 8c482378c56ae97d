//! The store: a narrow async trait over the database, and its one implementation over SQLite
//! or Postgres.
//!
//! Policy: SQL lives only here. The trait speaks in the model's types and never decides
//! policy: the token service decides what is valid; the store only reads and writes,
//! atomically where the service needs it (the token limit, the throttle's counters).
//! `connect` picks the engine from the URL scheme. The layout:
//! - `sql_store.rs`: `SqlStore`, every query and write, once, for both engines;
//! - `rows.rs`: the row structs, once, and their conversion into the model;
//! - `codec.rs` and `sql.rs`: how a column is read and a value bound on each engine;
//! - `sqlite.rs` and `postgres.rs`: only what the engines do differently (connecting,
//!   migrating, invalidations between processes, the touch batch).
//!
//! The contract suite (`tests/api/store_contract.rs`) runs against both engines.

mod codec;
mod hot_rows;
mod import;
mod pg_migrate;
mod postgres;
mod retry;
mod rows;
pub mod source;
mod sql;
mod sql_import;
mod sql_store;
mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::import::{
    ImportApplied, ImportBatch, ImportJwtKey, ImportPrincipal, ImportRole, ImportToken, PrincipalAction,
};
pub use self::sql_store::SqlStore;
use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::model::{
    Acl, Attributes, AuditEntry, GroupSummary, Issuer, LegacyToken, Principal, PrincipalKind, RoleSummary, SigningKey,
    ThrottleCounter, ThrottleScope, Token, TokenDigest, TokenHash, TokenKind, TokenLookup, Username,
};

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached in time; transient.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database URL or settings are unusable; not transient.
    #[error("{0}")]
    Config(String),
    /// The database refused a transaction for the sake of a concurrent one (SQLSTATE 40001,
    /// a serialization failure under SERIALIZABLE or a distributed engine's isolation; 40P01,
    /// a deadlock). The store retries these (`retry.rs`); one that reaches a caller has
    /// outlasted the retries, and is transient: a 503.
    #[error("the database kept refusing the transaction for concurrent ones: {0}")]
    Contention(String),
    /// The engine, or the way it is reached, lacks a feature (LISTEN behind PgBouncer or on
    /// CockroachDB, LISTEN on SQLite); the caller falls back.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            // why Protocol: a connection closed by the far end as soon as it is opened (a proxy,
            // Docker's port forwarder, before a stopped Postgres) reaches sqlx's SSLRequest
            // read as "unexpected response from SSLRequest: 0x00", not as an I/O error; a
            // garbled or cut conversation is a broken connection, not a bug: 503, not 500.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            // why 1811: SQLite reports an ON DELETE RESTRICT refusal as SQLITE_CONSTRAINT_TRIGGER,
            // not as the foreign-key code sqlx recognises.
            sqlx::Error::Database(db)
                if db.is_unique_violation()
                    || db.is_foreign_key_violation()
                    || db.code().as_deref() == Some("1811") =>
            {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")) => {
                StoreError::Contention(db.message().to_owned())
            }
            // why only these: an engine without NOTIFY (CockroachDB has no `pg_notify`; others
            // answer "feature not supported"), which `publish` falls back from; any other
            // missing feature is a bug, and stays `Other`.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("0A000" | "42883"))
                    && db.message().to_ascii_lowercase().contains("notify") =>
            {
                StoreError::Unsupported(db.message().to_owned())
            }
            // why a hint: what a transaction-mode pooler does to named prepared statements
            // (another client's `sqlx_s_1` on the same server connection, or ours gone).
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P05" | "26000")) => {
                StoreError::Other(format!(
                    "{} (behind PgBouncer in transaction mode? set database.prepared_statements = false)",
                    db.message()
                ))
            }
            // why: SQLITE_BUSY/LOCKED after busy_timeout, and Postgres "cannot connect now",
            // "admin shutdown", a connection failure (08...), too many connections, or a
            // database or login that is not there any more (dropped, a password rotated) are
            // outages, not bugs in the request: callers get a 503, not a 500.
            sqlx::Error::Database(db)
                if matches!(
                    db.code().as_deref(),
                    Some("5" | "6" | "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "28000" | "28P01")
                ) || db.code().is_some_and(|c| c.starts_with("08")) =>
            {
                StoreError::Unavailable(db.message().to_owned())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {err}"))
    }
}

/// A connection pool's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
    /// The pool's limit.
    pub max: u32,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user group to insert.
#[derive(Debug)]
pub struct NewGroup<'a> {
    /// Unique name.
    pub name: &'a str,
    /// IP regex, already checked to compile.
    pub allowed_regex: Option<&'a str>,
    /// Owning reseller's id.
    pub reseller_id: Option<i64>,
    /// Creation time, from the clock.
    pub created_at: OffsetDateTime,
}

/// A change to a set of throttle counters, applied by `Store::update_throttle` while it holds
/// their rows locked, so concurrent logins (on any replica) never lose an update.
pub type ThrottleStep<'a> = &'a (dyn Fn(&mut [ThrottleCounter]) + Send + Sync);

/// A principal to insert. Its password hash is redacted in `Debug`.
pub struct NewPrincipal<'a> {
    /// User or reseller.
    pub kind: PrincipalKind,
    /// A parsed name.
    pub name: &'a Username,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Creation time, from the clock.
    pub created_at: OffsetDateTime,
    /// Role id, if the principal gets one.
    pub role_id: Option<i64>,
    /// User group id, if the principal gets one.
    pub group_id: Option<i64>,
    /// Its attributes.
    pub attributes: &'a Attributes,
}

impl fmt::Debug for NewPrincipal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPrincipal")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("password_hash", &"[REDACTED]")
            .field("created_at", &self.created_at)
            .field("role_id", &self.role_id)
            .field("group_id", &self.group_id)
            .field("attributes", &self.attributes)
            .finish()
    }
}

/// A role to insert.
#[derive(Debug)]
pub struct NewRole<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Integer code.
    pub code: i64,
    /// Its ACL.
    pub acl: &'a Acl,
    /// Creation time, from the clock.
    pub created_at: OffsetDateTime,
}

/// A token to insert.
#[derive(Debug)]
pub struct NewToken<'a> {
    /// Fresh UUID v4.
    pub id: Uuid,
    /// Owner.
    pub principal_id: i64,
    /// Issuing dialect, or the web page.
    pub issuer: Issuer,
    /// Session or static.
    pub kind: TokenKind,
    /// SHA-256 of the token string.
    pub digest: &'a TokenHash,
    /// Optional note.
    pub note: Option<&'a str>,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// Absolute expiry, if any.
    pub expires_at: Option<OffsetDateTime>,
}

/// Extra conditions for `insert_token`, checked in the same transaction as the insert. The
/// verified hash is redacted in `Debug`.
#[derive(Clone, Copy, Default)]
pub struct InsertRules<'a> {
    /// Refuse when the owner already has this many live tokens of the same dialect.
    pub max_live_tokens: Option<u32>,
    /// Also set the owner's last-login time (a login, not an administrator's mint).
    pub login_at: Option<OffsetDateTime>,
    /// For a login: the password hash that was verified. The insert is refused
    /// (`CredentialsChanged`) unless the owner still has exactly this hash and is enabled, so
    /// a password change or a disable that commits during the (slow) verification wins.
    pub verified_hash: Option<&'a str>,
}

impl fmt::Debug for InsertRules<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertRules")
            .field("max_live_tokens", &self.max_live_tokens)
            .field("login_at", &self.login_at)
            .field("verified_hash", &self.verified_hash.map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The result of `insert_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The row was written.
    Yes,
    /// The token limit refused it; nothing was written.
    LimitReached,
    /// The verified password hash is no longer current, or the owner was disabled or removed
    /// meanwhile; nothing was written.
    CredentialsChanged,
}

/// A deferred write from the token-check path: last use and sliding expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTouch {
    /// The token.
    pub id: Uuid,
    /// New last-used time, if any.
    pub last_used_at: Option<OffsetDateTime>,
    /// New expiry, if any; the store never moves an expiry backwards nor extends a revoked token.
    pub expires_at: Option<OffsetDateTime>,
}

/// How a subscription hears the invalidations other processes publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Pushed by the database: LISTEN/NOTIFY.
    Notify,
    /// Read from the invalidations table every given interval (SQLite: when its file moved).
    Poll(std::time::Duration),
}

/// A live subscription to the invalidation notices other replicas publish.
#[async_trait]
pub trait Subscription: Send {
    /// The next notice's payload; `Ok(None)` when the connection was lost, so notices may
    /// have been missed (drop the subscription and subscribe again).
    async fn next(&mut self) -> StoreResult<Option<String>>;
}

/// The versions sqlx recorded as applied (both engines' migrators keep the same table).
const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// The migrations of `migrator` whose versions are not in `applied`, named `0009_name`.
fn pending(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect()
}

/// The storage seam. See the module doc.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Which backend, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Run the embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// The embedded migrations this database lacks (`0009_name`), in order; reads only.
    async fn pending_migrations(&self) -> StoreResult<Vec<String>>;
    /// One round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// Close the pool, waiting for connections to be returned.
    async fn close(&self);
    /// The pool's figures now, for the metrics.
    fn pool_stats(&self) -> PoolStats;
    /// Tell the other processes sharing this database that cached token checks named by
    /// `payload` are stale: a row in the invalidations table (every engine, so that every
    /// way of listening hears it), and on Postgres a NOTIFY too where the engine has it.
    async fn publish_invalidation(&self, payload: &str) -> StoreResult<()>;
    /// Listen for what `publish_invalidation` sends, as `via` says; `Unsupported` when this
    /// engine, or the way it is reached, cannot (LISTEN on SQLite, behind PgBouncer without
    /// `database.listen_url`, or on an engine without LISTEN).
    async fn subscribe(&self, via: Listen) -> StoreResult<Box<dyn Subscription>>;

    /// Insert a principal; `Conflict` when the kind and name exist.
    async fn insert_principal(&self, new: &NewPrincipal<'_>) -> StoreResult<Principal>;
    /// Find a principal by kind and exact name.
    async fn principal_by_name(&self, kind: PrincipalKind, name: &str) -> StoreResult<Option<Principal>>;
    /// Find a principal by id.
    async fn principal_by_id(&self, id: i64) -> StoreResult<Option<Principal>>;
    /// All principals of a kind, by id.
    async fn list_principals(&self, kind: PrincipalKind) -> StoreResult<Vec<Principal>>;
    /// Enable or disable; `NotFound` when absent.
    async fn set_principal_enabled(&self, id: i64, enabled: bool) -> StoreResult<()>;
    /// Replace the password hash; with `revoke_tokens_at`, revoke all live tokens of the
    /// principal in the same transaction. `NotFound` when absent.
    async fn set_password_hash(&self, id: i64, hash: &str, revoke_tokens_at: Option<OffsetDateTime>)
    -> StoreResult<()>;
    /// Replace the password hash only if it is still `old` (a rehash must not undo a password
    /// change that committed meanwhile); `false` when it was not replaced.
    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> StoreResult<bool>;
    /// Delete a principal and (by cascade) its tokens; `NotFound` when absent.
    async fn delete_principal(&self, id: i64) -> StoreResult<()>;

    /// Set or clear a principal's role; `NotFound` when the principal is absent.
    async fn set_principal_role(&self, id: i64, role_id: Option<i64>) -> StoreResult<()>;

    /// Insert a role; `Conflict` when the name exists.
    async fn insert_role(&self, new: &NewRole<'_>) -> StoreResult<RoleSummary>;
    /// Find a role by exact name, with its member count.
    async fn role_by_name(&self, name: &str) -> StoreResult<Option<RoleSummary>>;
    /// All roles by name, with member counts.
    async fn list_roles(&self) -> StoreResult<Vec<RoleSummary>>;
    /// Delete a role; `NotFound` when absent, `Conflict` while principals have it.
    async fn delete_role(&self, id: i64) -> StoreResult<()>;

    /// Put a principal in a user group or take it out; `NotFound` when the principal is
    /// absent, `Conflict` when the group is gone.
    async fn set_principal_group(&self, id: i64, group_id: Option<i64>) -> StoreResult<()>;
    /// Insert a user group; `Conflict` when the name exists (or the reseller is gone).
    async fn insert_group(&self, new: &NewGroup<'_>) -> StoreResult<GroupSummary>;
    /// Find a user group by exact name, with its member count.
    async fn group_by_name(&self, name: &str) -> StoreResult<Option<GroupSummary>>;
    /// User groups by name: all of them, or those owned by one reseller.
    async fn list_groups(&self, reseller_id: Option<i64>) -> StoreResult<Vec<GroupSummary>>;
    /// Delete a user group; `NotFound` when absent, `Conflict` while principals are in it.
    async fn delete_group(&self, id: i64) -> StoreResult<()>;

    /// All signing keys, oldest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Add a signing key; `false` when its kid exists (a replica added it first).
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<bool>;

    /// Insert a token under `rules`, atomically. `NotFound` when the owner is gone (and no
    /// `verified_hash` was given).
    async fn insert_token(&self, new: &NewToken<'_>, rules: InsertRules<'_>) -> StoreResult<Inserted>;
    /// Look a token up by digest, with its owner.
    async fn token_by_digest(&self, digest: &TokenHash) -> StoreResult<Option<TokenLookup>>;
    /// Look a token up by id, with its owner.
    async fn token_by_id(&self, id: Uuid) -> StoreResult<Option<TokenLookup>>;
    /// All token rows of a principal, tombstones included, newest first.
    async fn list_tokens(&self, principal_id: i64) -> StoreResult<Vec<Token>>;
    /// Revoke one token; `false` when it does not exist or was already revoked.
    async fn revoke_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool>;
    /// Revoke all live tokens of a principal, of one dialect or of all; returns how many.
    async fn revoke_all(&self, principal_id: i64, issuer: Option<Issuer>, at: OffsetDateTime) -> StoreResult<u64>;
    /// Enable or disable a token; `false` when it does not exist.
    async fn set_token_enabled(&self, id: Uuid, enabled: bool) -> StoreResult<bool>;
    /// Set the principal's last login and the token's last use to `at`, in one transaction;
    /// `NotFound` when either is gone or the token was revoked meanwhile.
    async fn bump(&self, principal_id: i64, token_id: Uuid, at: OffsetDateTime) -> StoreResult<()>;
    /// Apply a batch of deferred touches in one transaction.
    async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()>;
    /// Delete tokens revoked or expired before `cutoff`, and invalidation notices old enough
    /// that no listener can still need them; returns how many tokens.
    async fn sweep(&self, cutoff: OffsetDateTime) -> StoreResult<u64>;

    // --- audit log ---
    /// Append one entry.
    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The newest `limit` entries, oldest first.
    async fn list_audit(&self, limit: u32) -> StoreResult<Vec<AuditEntry>>;
    /// Delete audit entries from before `cutoff`; returns how many.
    async fn sweep_audit(&self, cutoff: OffsetDateTime) -> StoreResult<u64>;

    // --- login throttling ---
    /// In one transaction: lock the counters for `keys` (creating empty ones, in key order so
    /// two updates cannot deadlock), let `step` change them, write them back, and return them
    /// in the order of `keys`. Concurrent updates of a counter are serialised by its row lock.
    /// The keys must be distinct.
    async fn update_throttle(
        &self,
        keys: &[(ThrottleScope, &str)],
        step: ThrottleStep<'_>,
    ) -> StoreResult<Vec<ThrottleCounter>>;
    /// The counters that have not expired at `now`, in scope then subject order.
    async fn list_throttle(&self, now: OffsetDateTime) -> StoreResult<Vec<ThrottleCounter>>;
    /// Delete one counter; true if it existed.
    async fn clear_throttle(&self, scope: ThrottleScope, subject: &str) -> StoreResult<bool>;
    /// Delete the counters expired before `now`; returns how many.
    async fn sweep_throttle(&self, now: OffsetDateTime) -> StoreResult<u64>;

    // --- moving in (`tokenauth import`) ---
    /// Apply a planned import in one transaction: all of it, or nothing. Without `commit` (a
    /// dry run) the transaction is rolled back, after every statement ran.
    async fn apply_import(
        &self,
        batch: &ImportBatch<'_>,
        now: OffsetDateTime,
        commit: bool,
    ) -> StoreResult<ImportApplied>;
    /// `(id, name, fingerprint)` of the principals of `kind` that were imported.
    async fn imported_credentials(&self, kind: PrincipalKind) -> StoreResult<Vec<(i64, String, String)>>;
    /// Token rows with a legacy digest filed under one of `keys` (one or two).
    async fn legacy_tokens(&self, keys: &[&str]) -> StoreResult<Vec<LegacyToken>>;
    /// Rewrite a legacy token row to the SHA-256 `digest` of its token, if it still has
    /// `scheme`; `false` when another check did it first.
    async fn adopt_legacy_token(&self, id: Uuid, scheme: &TokenDigest, digest: &TokenHash) -> StoreResult<bool>;
    /// Whether any live (unrevoked) token row still has a legacy digest.
    async fn has_legacy_tokens(&self) -> StoreResult<bool>;
    /// The secret of the old system's JWT key `name`, if one was imported.
    async fn legacy_jwt_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// The secrets of the old systems' JWT keys, which verify tokens without a `kid`.
    async fn legacy_jwt_keys(&self) -> StoreResult<Vec<Vec<u8>>>;
}

/// Open the store named by `url`, picking the backend from its scheme.
///
/// Errors are one actionable line: an unknown scheme names the accepted ones; an unreachable
/// database names the (password-masked) URL and the cause.
pub async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<Arc<dyn Store>> {
    match url.scheme().as_str() {
        "sqlite" => Ok(Arc::new(sqlite::SqliteEngine::connect(url, cfg).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(postgres::PgEngine::connect(url, cfg).await?)),
        other => Err(StoreError::Config(format!(
            "unsupported database URL scheme {other:?} in {url}: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ))),
    }
}
