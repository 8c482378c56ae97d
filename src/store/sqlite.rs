//! `SqliteStore`: the embedded default backend.
//!
//! Tuned on purpose: WAL (readers do not block the writer), `busy_timeout` (writers wait for
//! each other instead of failing), foreign keys on (token rows cascade with their owner),
//! `create_if_missing` (first start needs no set-up). Times are INTEGER microseconds.
//! Every multi-statement write starts with a write, so SQLite takes the write lock first and
//! a transaction never has to upgrade a stale read snapshot.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AttributeColumns, GroupColumns, InsertRules, Inserted, NewGroup, NewPrincipal, NewRole, NewToken, RoleColumns,
    Store, StoreError, StoreResult, ThrottleStep, TokenTouch, acl_json, allowed_ips_json,
};
use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::model::PrincipalKind;
use crate::model::TokenHash;
use crate::model::{
    Acl, AuditEntry, GroupSummary, Issuer, Owner, Principal, Role, RoleSummary, SigningKey, ThrottleCounter,
    ThrottleScope, Token, TokenKind, TokenLookup,
};

/// why 5 s: long enough to ride out a burst of writers, shorter than the request timeout.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file; `None` in memory.
    path: Option<PathBuf>,
}

/// why 30 s: a migration takes milliseconds; waiting longer means another process is stuck.
const STARTUP_LOCK_WAIT: Duration = Duration::from_secs(30);

/// An exclusive OS lock on `<database>.tokenauth-lock`, held while opening the database and
/// while migrating it. why: sqlx's SQLite migrator takes no lock, so two processes starting on
/// a fresh file (a server and a CLI command, two replicas) would both create the tables, and
/// one would fail; switching to WAL at once can also fail as "database is locked".
struct StartupLock(#[allow(dead_code)] std::fs::File);

impl StartupLock {
    async fn acquire(db: &Path) -> StoreResult<StartupLock> {
        let mut name = db.as_os_str().to_owned();
        name.push(".tokenauth-lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open the lock file {}: {e}", path.display())))?;
        restrict_to_owner(&path);
        let deadline = tokio::time::Instant::now() + STARTUP_LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StartupLock(file)),
                Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot lock {} (is another tokenauth stuck migrating this database?): {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

impl SqliteStore {
    /// Open (creating if missing) the database named by a `sqlite:` URL.
    pub async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.expose().contains(":memory:") || url.expose().contains("mode=memory");
        // why: each connection to an in-memory database would otherwise see its own database.
        let max = if in_memory { 1 } else { cfg.max_connections.max(1) };
        let path = opts.get_filename().to_path_buf();
        let _lock = if in_memory { None } else { Some(StartupLock::acquire(&path).await?) };
        let creating = !in_memory && !path.exists();
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {url}: {e}")))?;
        if creating {
            restrict_to_owner(&path);
        }
        if !in_memory {
            tracing::info!(path = %absolute(&path).display(), "using SQLite database");
        }
        Ok(SqliteStore { pool, path: (!in_memory).then_some(path) })
    }
}

/// why: the database holds password hashes; a file we create is readable by its owner only.
/// SQLite gives its -wal and -shm files the same mode. An existing file is left as it is.
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(error = %e, "could not make the new database readable by its owner only");
        }
    }
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn micros(t: OffsetDateTime) -> i64 {
    // why: i64 microseconds cover ±292,000 years; the clamp only guards against absurd input.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}

fn from_micros(us: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Other(format!("stored time {us} out of range: {e}")))
}

fn opt_from_micros(us: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    us.map(from_micros).transpose()
}

fn kind(s: &str) -> StoreResult<PrincipalKind> {
    PrincipalKind::parse(s).ok_or_else(|| StoreError::Other(format!("unknown principal kind {s:?}")))
}

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    id: i64,
    kind: String,
    name: String,
    password_hash: String,
    enabled: bool,
    created_at: i64,
    last_login_at: Option<i64>,
    #[sqlx(flatten)]
    role: RoleColumns,
    #[sqlx(flatten)]
    attributes: AttributeColumns,
}

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;
    fn try_from(r: PrincipalRow) -> StoreResult<Self> {
        let (attributes, group) = r.attributes.into_parts()?;
        Ok(Principal {
            id: r.id,
            kind: kind(&r.kind)?,
            name: r.name,
            password_hash: r.password_hash,
            enabled: r.enabled,
            created_at: from_micros(r.created_at)?,
            last_login_at: opt_from_micros(r.last_login_at)?,
            role: r.role.into_role()?,
            group,
            attributes,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    principal_id: i64,
    dialect: String,
    kind: String,
    note: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    enabled: bool,
    version: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> StoreResult<Self> {
        Ok(Token {
            id: Uuid::parse_str(&r.id).map_err(|e| StoreError::Other(format!("bad token id {:?}: {e}", r.id)))?,
            principal_id: r.principal_id,
            issuer: r.dialect.parse().map_err(|e| StoreError::Other(format!("{e}")))?,
            kind: TokenKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown token kind {:?}", r.kind)))?,
            note: r.note,
            created_at: from_micros(r.created_at)?,
            expires_at: opt_from_micros(r.expires_at)?,
            last_used_at: opt_from_micros(r.last_used_at)?,
            enabled: r.enabled,
            version: r.version,
            revoked_at: opt_from_micros(r.revoked_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LookupRow {
    #[sqlx(flatten)]
    token: TokenRow,
    owner_kind: String,
    owner_name: String,
    owner_enabled: bool,
    #[sqlx(flatten)]
    role: RoleColumns,
}

impl TryFrom<LookupRow> for TokenLookup {
    type Error = StoreError;
    fn try_from(r: LookupRow) -> StoreResult<Self> {
        let token = Token::try_from(r.token)?;
        Ok(TokenLookup {
            owner: Owner {
                id: token.principal_id,
                kind: kind(&r.owner_kind)?,
                name: r.owner_name,
                enabled: r.owner_enabled,
                role: r.role.into_role()?,
            },
            token,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    id: i64,
    name: String,
    code: i64,
    acl: String,
    created_at: i64,
    members: i64,
}

impl TryFrom<RoleRow> for RoleSummary {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> StoreResult<Self> {
        let acl: Acl = serde_json::from_str(&r.acl)
            .map_err(|e| StoreError::Other(format!("role {:?} has an unreadable ACL: {e}", r.name)))?;
        Ok(RoleSummary {
            id: r.id,
            role: Role { name: r.name, code: r.code, acl },
            created_at: from_micros(r.created_at)?,
            members: r.members,
        })
    }
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    #[sqlx(flatten)]
    columns: GroupColumns,
    created_at: i64,
}

impl TryFrom<GroupRow> for GroupSummary {
    type Error = StoreError;
    fn try_from(r: GroupRow) -> StoreResult<Self> {
        Ok(r.columns.into_record(from_micros(r.created_at)?))
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    at: i64,
    actor_kind: String,
    actor_name: String,
    action: String,
    target: String,
    client_ip: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<Self> {
        Ok(AuditEntry {
            at: from_micros(r.at)?,
            actor_kind: kind(&r.actor_kind)?,
            actor_name: r.actor_name,
            action: r.action,
            target: r.target,
            client_ip: r.client_ip,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ThrottleRow {
    scope: String,
    subject: String,
    window_start: i64,
    failures: i64,
    prev_failures: i64,
    strikes: i64,
    locked_until: Option<i64>,
    expires_at: i64,
    in_flight: i64,
    prev_in_flight: i64,
    in_flight_bucket: i64,
}

impl TryFrom<ThrottleRow> for ThrottleCounter {
    type Error = StoreError;
    fn try_from(r: ThrottleRow) -> StoreResult<Self> {
        let count = |n: i64| u32::try_from(n).map_err(|_| StoreError::Other(format!("bad throttle count {n}")));
        Ok(ThrottleCounter {
            scope: ThrottleScope::parse(&r.scope)
                .ok_or_else(|| StoreError::Other(format!("unknown throttle scope {:?}", r.scope)))?,
            subject: r.subject,
            window_start: from_micros(r.window_start)?,
            failures: count(r.failures)?,
            prev_failures: count(r.prev_failures)?,
            strikes: count(r.strikes)?,
            locked_until: opt_from_micros(r.locked_until)?,
            expires_at: from_micros(r.expires_at)?,
            in_flight: count(r.in_flight)?,
            prev_in_flight: count(r.prev_in_flight)?,
            in_flight_bucket: from_micros(r.in_flight_bucket)?,
        })
    }
}

/// why a no-op upsert first: a write as the transaction's first statement takes SQLite's
/// write lock at once (a read first would be upgraded later and could fail with
/// SQLITE_BUSY), and it creates the row or returns the existing one in one step.
const LOCK_THROTTLE: &str = "INSERT INTO login_throttle \
    (scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, \
    in_flight, prev_in_flight, in_flight_bucket) VALUES (?1, ?2, 0, 0, 0, 0, NULL, 0, 0, 0, 0) \
    ON CONFLICT (scope, subject) DO UPDATE SET scope = excluded.scope \
    RETURNING scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, in_flight, \
    prev_in_flight, in_flight_bucket";
const WRITE_THROTTLE: &str = "UPDATE login_throttle SET window_start = ?3, failures = ?4, prev_failures = ?5, \
    strikes = ?6, locked_until = ?7, expires_at = ?8, in_flight = ?9, prev_in_flight = ?10, \
    in_flight_bucket = ?11 WHERE scope = ?1 AND subject = ?2";

#[derive(sqlx::FromRow)]
struct SigningKeyRow {
    kid: String,
    secret: Vec<u8>,
    created_at: i64,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;
    fn try_from(r: SigningKeyRow) -> StoreResult<Self> {
        Ok(SigningKey { kid: r.kid, secret: r.secret, created_at: from_micros(r.created_at)? })
    }
}

macro_rules! principal_select {
    () => {
        concat!(
            "SELECT p.id, p.kind, p.name, p.password_hash, p.enabled, p.created_at, p.last_login_at, ",
            "r.name AS role_name, r.code AS role_code, r.acl AS role_acl, ",
            "p.admin, p.sms_from, p.allowed_ips, p.balance, ",
            "g.id AS group_id, g.name AS group_name, g.allowed_regex AS group_regex ",
            "FROM principals p LEFT JOIN roles r ON r.id = p.role_id LEFT JOIN user_groups g ON g.id = p.group_id "
        )
    };
}
macro_rules! token_columns {
    () => {
        "t.id, t.principal_id, t.dialect, t.kind, t.note, t.created_at, t.expires_at, t.last_used_at, t.enabled, t.version, t.revoked_at"
    };
}
macro_rules! lookup_select {
    () => {
        concat!(
            "SELECT ",
            token_columns!(),
            ", p.kind AS owner_kind, p.name AS owner_name, p.enabled AS owner_enabled, ",
            "r.name AS role_name, r.code AS role_code, r.acl AS role_acl ",
            "FROM tokens t JOIN principals p ON p.id = t.principal_id LEFT JOIN roles r ON r.id = p.role_id "
        )
    };
}
macro_rules! role_select {
    () => {
        concat!(
            "SELECT r.id, r.name, r.code, r.acl, r.created_at, ",
            "(SELECT count(*) FROM principals p WHERE p.role_id = r.id) AS members FROM roles r "
        )
    };
}

macro_rules! group_select {
    () => {
        concat!(
            "SELECT g.id, g.name, g.allowed_regex, g.reseller_id, rp.name AS reseller_name, g.created_at, ",
            "(SELECT count(*) FROM principals p WHERE p.group_id = g.id) AS members ",
            "FROM user_groups g LEFT JOIN principals rp ON rp.id = g.reseller_id "
        )
    };
}

const GROUP_BY_NAME: &str = concat!(group_select!(), "WHERE g.name = ?1");
const LIST_GROUPS: &str = concat!(group_select!(), "WHERE ?1 IS NULL OR g.reseller_id = ?1 ORDER BY g.name");
const PRINCIPAL_BY_NAME: &str = concat!(principal_select!(), "WHERE p.kind = ?1 AND p.name = ?2");
const LIST_PRINCIPALS: &str = concat!(principal_select!(), "WHERE p.kind = ?1 ORDER BY p.id");
const ROLE_BY_NAME: &str = concat!(role_select!(), "WHERE r.name = ?1");
const LIST_ROLES: &str = concat!(role_select!(), "ORDER BY r.name");
const TOKEN_BY_DIGEST: &str = concat!(lookup_select!(), "WHERE t.digest = ?1");
const TOKEN_BY_ID: &str = concat!(lookup_select!(), "WHERE t.id = ?1");
const LIST_TOKENS: &str =
    concat!("SELECT ", token_columns!(), " FROM tokens t WHERE t.principal_id = ?1 ORDER BY t.created_at DESC, t.id");

const INSERT_PRINCIPAL: &str = "INSERT INTO principals \
     (kind, name, password_hash, enabled, created_at, role_id, group_id, admin, sms_from, allowed_ips, balance) \
     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
const LOCK_OWNER: &str = "UPDATE principals SET last_login_at = COALESCE(?1, last_login_at) \
     WHERE id = ?2 AND (?3 IS NULL OR (password_hash = ?3 AND enabled = 1))";
const COUNT_LIVE: &str = "SELECT count(*) FROM tokens WHERE principal_id = ?1 AND dialect = ?2 \
     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)";
const INSERT_TOKEN: &str = "INSERT INTO tokens \
     (id, principal_id, dialect, kind, digest, note, created_at, expires_at, enabled, version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, 0)";
const REVOKE_ALL: &str = "UPDATE tokens SET revoked_at = ?1, version = version + 1 \
     WHERE principal_id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR dialect = ?3)";
const APPLY_TOUCH: &str = "UPDATE tokens SET \
     last_used_at = CASE WHEN ?1 IS NULL THEN last_used_at WHEN last_used_at IS NULL THEN ?1 ELSE max(last_used_at, ?1) END, \
     expires_at = CASE WHEN ?2 IS NULL OR expires_at IS NULL OR revoked_at IS NOT NULL THEN expires_at ELSE max(expires_at, ?2) END \
     WHERE id = ?3";

/// why 100 ms: a revocation made by the CLI reaches the server's cache within a tenth of a
/// second, for one indexed query ten times a second.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `invalidations` for rows newer than the last one seen.
struct SqlitePoll {
    pool: SqlitePool,
    last: i64,
    ready: std::collections::VecDeque<String>,
}

#[async_trait]
impl super::Subscription for SqlitePoll {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        loop {
            if let Some(payload) = self.ready.pop_front() {
                return Ok(Some(payload));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT seq, payload FROM invalidations WHERE seq > ?1 ORDER BY seq LIMIT 1000")
                    .bind(self.last)
                    .fetch_all(&self.pool)
                    .await?;
            if let Some((first, _)) = rows.first()
                && *first > self.last + 1
            {
                // why everything: rows were pruned before we read them (a burst of more than
                // the kept thousand), so some invalidations are unknown.
                self.ready.push_back("*".to_owned());
            }
            if let Some((last, _)) = rows.last() {
                self.last = *last;
            }
            self.ready.extend(rows.into_iter().map(|(_, payload)| payload));
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        let _lock = match &self.path {
            Some(path) => Some(StartupLock::acquire(path).await?),
            None => None,
        };
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn publish_invalidation(&self, payload: &str) -> StoreResult<()> {
        // why a table: the CLI (or another server) on the same file is another process; the
        // server polls this table (see `SqlitePoll`). Pruned here, keeping the last thousand.
        sqlx::query("INSERT INTO invalidations (payload) VALUES (?1)").bind(payload).execute(&self.pool).await?;
        sqlx::query("DELETE FROM invalidations WHERE seq <= (SELECT max(seq) FROM invalidations) - 1000")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Option<Box<dyn super::Subscription>>> {
        let last: i64 =
            sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM invalidations").fetch_one(&self.pool).await?;
        Ok(Some(Box::new(SqlitePoll { pool: self.pool.clone(), last, ready: std::collections::VecDeque::new() })))
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn insert_principal(&self, new: &NewPrincipal<'_>) -> StoreResult<Principal> {
        sqlx::query(INSERT_PRINCIPAL)
            .bind(new.kind.as_str())
            .bind(new.name.as_str())
            .bind(new.password_hash)
            .bind(micros(new.created_at))
            .bind(new.role_id)
            .bind(new.group_id)
            .bind(new.attributes.admin)
            .bind(new.attributes.sms_from.as_deref())
            .bind(allowed_ips_json(&new.attributes.allowed_ips)?)
            .bind(new.attributes.balance.map(|b| b.to_string()))
            .execute(&self.pool)
            .await?;
        // why read back: the record carries the role joined in, as every read does.
        self.principal_by_name(new.kind, new.name.as_str()).await?.ok_or(StoreError::NotFound)
    }

    async fn principal_by_name(&self, kind: PrincipalKind, name: &str) -> StoreResult<Option<Principal>> {
        sqlx::query_as::<_, PrincipalRow>(PRINCIPAL_BY_NAME)
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn list_principals(&self, kind: PrincipalKind) -> StoreResult<Vec<Principal>> {
        sqlx::query_as::<_, PrincipalRow>(LIST_PRINCIPALS)
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn set_principal_enabled(&self, id: i64, enabled: bool) -> StoreResult<()> {
        let done = sqlx::query("UPDATE principals SET enabled = ?1 WHERE id = ?2")
            .bind(enabled)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_password_hash(
        &self,
        id: i64,
        hash: &str,
        revoke_tokens_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE principals SET password_hash = ?1 WHERE id = ?2")
            .bind(hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(at) = revoke_tokens_at {
            sqlx::query(REVOKE_ALL).bind(micros(at)).bind(id).bind(None::<&str>).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE principals SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2")
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_principal(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM principals WHERE id = ?1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_principal_role(&self, id: i64, role_id: Option<i64>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE principals SET role_id = ?1 WHERE id = ?2")
            .bind(role_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn insert_role(&self, new: &NewRole<'_>) -> StoreResult<RoleSummary> {
        sqlx::query("INSERT INTO roles (name, code, acl, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(new.name)
            .bind(new.code)
            .bind(acl_json(new.acl)?)
            .bind(micros(new.created_at))
            .execute(&self.pool)
            .await?;
        self.role_by_name(new.name).await?.ok_or(StoreError::NotFound)
    }

    async fn role_by_name(&self, name: &str) -> StoreResult<Option<RoleSummary>> {
        sqlx::query_as::<_, RoleRow>(ROLE_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn list_roles(&self) -> StoreResult<Vec<RoleSummary>> {
        sqlx::query_as::<_, RoleRow>(LIST_ROLES)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn delete_role(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM roles WHERE id = ?1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_principal_group(&self, id: i64, group_id: Option<i64>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE principals SET group_id = ?1 WHERE id = ?2")
            .bind(group_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn insert_group(&self, new: &NewGroup<'_>) -> StoreResult<GroupSummary> {
        sqlx::query("INSERT INTO user_groups (name, allowed_regex, reseller_id, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(new.name)
            .bind(new.allowed_regex)
            .bind(new.reseller_id)
            .bind(micros(new.created_at))
            .execute(&self.pool)
            .await?;
        self.group_by_name(new.name).await?.ok_or(StoreError::NotFound)
    }

    async fn group_by_name(&self, name: &str) -> StoreResult<Option<GroupSummary>> {
        sqlx::query_as::<_, GroupRow>(GROUP_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn list_groups(&self, reseller_id: Option<i64>) -> StoreResult<Vec<GroupSummary>> {
        sqlx::query_as::<_, GroupRow>(LIST_GROUPS)
            .bind(reseller_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn delete_group(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM user_groups WHERE id = ?1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        sqlx::query_as::<_, SigningKeyRow>("SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, secret, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.secret.as_slice())
        .bind(micros(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_token(&self, new: &NewToken<'_>, rules: InsertRules<'_>) -> StoreResult<Inserted> {
        let mut tx = self.pool.begin().await?;
        let owner = sqlx::query(LOCK_OWNER)
            .bind(opt_micros(rules.login_at))
            .bind(new.principal_id)
            .bind(rules.verified_hash)
            .execute(&mut *tx)
            .await?;
        if owner.rows_affected() == 0 {
            return if rules.verified_hash.is_some() {
                Ok(Inserted::CredentialsChanged)
            } else {
                Err(StoreError::NotFound)
            };
        }
        if let Some(max) = rules.max_live_tokens {
            let live: i64 = sqlx::query_scalar(COUNT_LIVE)
                .bind(new.principal_id)
                .bind(new.issuer.as_str())
                .bind(micros(new.created_at))
                .fetch_one(&mut *tx)
                .await?;
            if live >= i64::from(max) {
                return Ok(Inserted::LimitReached);
            }
        }
        sqlx::query(INSERT_TOKEN)
            .bind(new.id.hyphenated().to_string())
            .bind(new.principal_id)
            .bind(new.issuer.as_str())
            .bind(new.kind.as_str())
            .bind(new.digest.as_bytes().as_slice())
            .bind(new.note)
            .bind(micros(new.created_at))
            .bind(opt_micros(new.expires_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Inserted::Yes)
    }

    async fn token_by_digest(&self, digest: &TokenHash) -> StoreResult<Option<TokenLookup>> {
        sqlx::query_as::<_, LookupRow>(TOKEN_BY_DIGEST)
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn token_by_id(&self, id: Uuid) -> StoreResult<Option<TokenLookup>> {
        sqlx::query_as::<_, LookupRow>(TOKEN_BY_ID)
            .bind(id.hyphenated().to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn list_tokens(&self, principal_id: i64) -> StoreResult<Vec<Token>> {
        sqlx::query_as::<_, TokenRow>(LIST_TOKENS)
            .bind(principal_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    async fn revoke_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = ?1, version = version + 1 WHERE id = ?2 AND revoked_at IS NULL",
        )
        .bind(micros(at))
        .bind(id.hyphenated().to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all(&self, principal_id: i64, issuer: Option<Issuer>, at: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(REVOKE_ALL)
            .bind(micros(at))
            .bind(principal_id)
            .bind(issuer.map(Issuer::as_str))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn set_token_enabled(&self, id: Uuid, enabled: bool) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET version = version + CASE WHEN enabled = ?1 THEN 0 ELSE 1 END, enabled = ?1 WHERE id = ?2",
        )
        .bind(enabled)
        .bind(id.hyphenated().to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn bump(&self, principal_id: i64, token_id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let owner = sqlx::query("UPDATE principals SET last_login_at = ?1 WHERE id = ?2")
            .bind(micros(at))
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        let token = sqlx::query("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
            .bind(micros(at))
            .bind(token_id.hyphenated().to_string())
            .execute(&mut *tx)
            .await?;
        if owner.rows_affected() == 0 || token.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for t in touches {
            sqlx::query(APPLY_TOUCH)
                .bind(opt_micros(t.last_used_at))
                .bind(opt_micros(t.expires_at))
                .bind(t.id.hyphenated().to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sweep(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM tokens WHERE revoked_at < ?1 OR expires_at < ?1")
            .bind(micros(cutoff))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_kind, actor_name, action, target, client_ip) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(micros(entry.at))
        .bind(entry.actor_kind.as_str())
        .bind(&entry.actor_name)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.client_ip)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT at, actor_kind, actor_name, action, target, client_ip FROM \
             (SELECT * FROM audit_log ORDER BY id DESC LIMIT ?1) AS newest ORDER BY id",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn update_throttle(
        &self,
        keys: &[(ThrottleScope, &str)],
        step: ThrottleStep<'_>,
    ) -> StoreResult<Vec<ThrottleCounter>> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        let mut tx = self.pool.begin().await?;
        let mut locked: Vec<Option<ThrottleCounter>> = vec![None; keys.len()];
        for &i in &order {
            let (scope, subject) = keys[i];
            let row: ThrottleRow =
                sqlx::query_as(LOCK_THROTTLE).bind(scope.as_str()).bind(subject).fetch_one(&mut *tx).await?;
            locked[i] = Some(row.try_into()?);
        }
        let mut counters: Vec<ThrottleCounter> = locked.into_iter().flatten().collect();
        step(&mut counters);
        for c in &counters {
            sqlx::query(WRITE_THROTTLE)
                .bind(c.scope.as_str())
                .bind(&c.subject)
                .bind(micros(c.window_start))
                .bind(i64::from(c.failures))
                .bind(i64::from(c.prev_failures))
                .bind(i64::from(c.strikes))
                .bind(opt_micros(c.locked_until))
                .bind(micros(c.expires_at))
                .bind(i64::from(c.in_flight))
                .bind(i64::from(c.prev_in_flight))
                .bind(micros(c.in_flight_bucket))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(counters)
    }

    async fn list_throttle(&self, now: OffsetDateTime) -> StoreResult<Vec<ThrottleCounter>> {
        let rows: Vec<ThrottleRow> = sqlx::query_as(
            "SELECT scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, \
             in_flight, prev_in_flight, in_flight_bucket \
             FROM login_throttle WHERE expires_at > ?1 ORDER BY scope, subject",
        )
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn clear_throttle(&self, scope: ThrottleScope, subject: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM login_throttle WHERE scope = ?1 AND subject = ?2")
            .bind(scope.as_str())
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sweep_throttle(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM login_throttle WHERE expires_at <= ?1")
            .bind(micros(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
