//! `PgStore`: the production backend.
//!
//! The pool's acquire timeout is shorter than the request timeout (checked in config), so a
//! database outage surfaces as a typed `Unavailable` (503), never a hung request. Writes that
//! must be atomic (the token limit, password change with revocation) run in one transaction
//! that first locks the owner's row.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
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

/// The Postgres store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Where the invalidation listener connects from: the same database, its own
    /// application name (so an operator, or a test, can tell its connection apart).
    listen_options: PgConnectOptions,
}

// why by hand: sqlx's `PgConnectOptions` derives `Debug`, password included.
impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool).finish_non_exhaustive()
    }
}

/// The NOTIFY channel of invalidations between replicas.
const CHANNEL: &str = "tokenauth_invalidate";

/// A LISTEN on `CHANNEL`, on a connection of its own.
struct PgSubscription {
    listener: sqlx::postgres::PgListener,
}

#[async_trait]
impl super::Subscription for PgSubscription {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        // why try_recv: it reports a lost connection (None) instead of silently reconnecting,
        // so the caller knows notices may have been missed.
        Ok(self.listener.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

impl PgStore {
    /// Connect to the database named by a `postgres://` URL; fails fast when unreachable.
    pub async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<Self> {
        let opts = PgConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::Config(format!("invalid Postgres URL {url}: {e}")))?
            .application_name("tokenauth")
            // why: a connection stranded mid-transaction by a network fault (no reset ever
            // arrives) would hold its row locks, a principal's for instance, until Postgres's
            // own keepalives give up; our transactions last milliseconds.
            .options([("idle_in_transaction_session_timeout", "30s")]);
        // why: the pool retries until its acquire timeout and then reports only "pool timed
        // out"; one direct attempt first keeps the cause ("connection refused", "password
        // authentication failed") in the one-line error an operator sees.
        let unreachable =
            |cause: String| StoreError::Unavailable(format!("cannot connect to Postgres at {url}: {cause}"));
        match tokio::time::timeout(cfg.acquire_timeout, PgConnection::connect_with(&opts)).await {
            Ok(Ok(probe)) => {
                let _ = probe.close().await;
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(cfg.acquire_timeout)
                )));
            }
        }
        let listen_options = opts.clone().application_name(&format!("tokenauth-listener-{}", std::process::id()));
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to Postgres at {url}: {e}")))?;
        Ok(PgStore { pool, listen_options })
    }
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
    created_at: OffsetDateTime,
    last_login_at: Option<OffsetDateTime>,
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
            created_at: r.created_at,
            last_login_at: r.last_login_at,
            role: r.role.into_role()?,
            group,
            attributes,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    principal_id: i64,
    dialect: String,
    kind: String,
    note: Option<String>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
    enabled: bool,
    version: i64,
    revoked_at: Option<OffsetDateTime>,
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> StoreResult<Self> {
        Ok(Token {
            id: r.id,
            principal_id: r.principal_id,
            issuer: r.dialect.parse().map_err(|e| StoreError::Other(format!("{e}")))?,
            kind: TokenKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown token kind {:?}", r.kind)))?,
            note: r.note,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            enabled: r.enabled,
            version: r.version,
            revoked_at: r.revoked_at,
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
    created_at: OffsetDateTime,
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
            created_at: r.created_at,
            members: r.members,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    at: OffsetDateTime,
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
            at: r.at,
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
    window_start: OffsetDateTime,
    failures: i32,
    prev_failures: i32,
    strikes: i32,
    locked_until: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    in_flight: i32,
    prev_in_flight: i32,
    in_flight_bucket: OffsetDateTime,
}

impl TryFrom<ThrottleRow> for ThrottleCounter {
    type Error = StoreError;
    fn try_from(r: ThrottleRow) -> StoreResult<Self> {
        let count = |n: i32| u32::try_from(n).map_err(|_| StoreError::Other(format!("negative throttle count {n}")));
        Ok(ThrottleCounter {
            scope: ThrottleScope::parse(&r.scope)
                .ok_or_else(|| StoreError::Other(format!("unknown throttle scope {:?}", r.scope)))?,
            subject: r.subject,
            window_start: r.window_start,
            failures: count(r.failures)?,
            prev_failures: count(r.prev_failures)?,
            strikes: count(r.strikes)?,
            locked_until: r.locked_until,
            expires_at: r.expires_at,
            in_flight: count(r.in_flight)?,
            prev_in_flight: count(r.prev_in_flight)?,
            in_flight_bucket: r.in_flight_bucket,
        })
    }
}

/// why a no-op upsert: it creates the row or locks the existing one, in one round trip, so
/// the read-modify-write that follows cannot race another login's.
const LOCK_THROTTLE: &str = "INSERT INTO login_throttle \
    (scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, \
    in_flight, prev_in_flight, in_flight_bucket) VALUES ($1, $2, 'epoch', 0, 0, 0, NULL, 'epoch', 0, 0, 'epoch') \
    ON CONFLICT (scope, subject) DO UPDATE SET scope = EXCLUDED.scope \
    RETURNING scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, in_flight, \
    prev_in_flight, in_flight_bucket";
const WRITE_THROTTLE: &str = "UPDATE login_throttle SET window_start = $3, failures = $4, prev_failures = $5, \
    strikes = $6, locked_until = $7, expires_at = $8, in_flight = $9, prev_in_flight = $10, \
    in_flight_bucket = $11 WHERE scope = $1 AND subject = $2";

#[derive(sqlx::FromRow)]
struct SigningKeyRow {
    kid: String,
    secret: Vec<u8>,
    created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    #[sqlx(flatten)]
    columns: GroupColumns,
    created_at: OffsetDateTime,
}

impl From<GroupRow> for GroupSummary {
    fn from(r: GroupRow) -> Self {
        r.columns.into_record(r.created_at)
    }
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;
    fn try_from(r: SigningKeyRow) -> StoreResult<Self> {
        Ok(SigningKey { kid: r.kid, secret: r.secret, created_at: r.created_at })
    }
}

macro_rules! principal_select {
    () => {
        concat!(
            "SELECT p.id, p.kind, p.name, p.password_hash, p.enabled, p.created_at, p.last_login_at, ",
            "r.name AS role_name, r.code AS role_code, r.acl AS role_acl, ",
            "p.admin, p.sms_from, p.allowed_ips, p.balance::text AS balance, ",
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

const GROUP_BY_NAME: &str = concat!(group_select!(), "WHERE g.name = $1");
/// why COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
const LIST_GROUPS: &str =
    concat!(group_select!(), "WHERE $1::bigint IS NULL OR g.reseller_id = $1 ORDER BY g.name COLLATE \"C\"");
const PRINCIPAL_BY_NAME: &str = concat!(principal_select!(), "WHERE p.kind = $1 AND p.name = $2");
const LIST_PRINCIPALS: &str = concat!(principal_select!(), "WHERE p.kind = $1 ORDER BY p.id");
const INSERT_PRINCIPAL: &str = "INSERT INTO principals \
     (kind, name, password_hash, enabled, created_at, role_id, group_id, admin, sms_from, allowed_ips, balance) \
     VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10::numeric)";
const ROLE_BY_NAME: &str = concat!(role_select!(), "WHERE r.name = $1");
/// why COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
const LIST_ROLES: &str = concat!(role_select!(), "ORDER BY r.name COLLATE \"C\"");
const TOKEN_BY_DIGEST: &str = concat!(lookup_select!(), "WHERE t.digest = $1");
const TOKEN_BY_ID: &str = concat!(lookup_select!(), "WHERE t.id = $1");
const LIST_TOKENS: &str =
    concat!("SELECT ", token_columns!(), " FROM tokens t WHERE t.principal_id = $1 ORDER BY t.created_at DESC, t.id");
/// Takes the owner's row lock, so concurrent logins of one principal serialise on the limit.
const LOCK_OWNER: &str = "UPDATE principals SET last_login_at = COALESCE($1::timestamptz, last_login_at) \
     WHERE id = $2 AND ($3::text IS NULL OR (password_hash = $3 AND enabled))";
const COUNT_LIVE: &str = "SELECT count(*) FROM tokens WHERE principal_id = $1 AND dialect = $2 \
     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)";
const INSERT_TOKEN: &str = "INSERT INTO tokens \
     (id, principal_id, dialect, kind, digest, note, created_at, expires_at, enabled, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, 0)";
const REVOKE_ALL: &str = "UPDATE tokens SET revoked_at = $1, version = version + 1 \
     WHERE principal_id = $2 AND revoked_at IS NULL AND ($3::text IS NULL OR dialect = $3)";
/// GREATEST ignores NULLs, so an absent value leaves the column alone; an expiry never moves
/// backwards, a never-expiring token never gains one, a revoked token is never extended.
const APPLY_TOUCHES: &str = "UPDATE tokens AS t SET \
     last_used_at = GREATEST(t.last_used_at, u.last_used_at), \
     expires_at = CASE WHEN t.expires_at IS NULL OR t.revoked_at IS NOT NULL THEN t.expires_at \
                  ELSE GREATEST(t.expires_at, u.expires_at) END \
     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, last_used_at, expires_at) \
     WHERE t.id = u.id";

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
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
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Option<Box<dyn super::Subscription>>> {
        // why a pool of one, lazily connected: PgListener takes its connection from a pool,
        // and this one must not take a connection from the request pool.
        let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(self.listen_options.clone());
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Box::new(PgSubscription { listener })))
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
            .bind(new.created_at)
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
        let done = sqlx::query("UPDATE principals SET enabled = $1 WHERE id = $2")
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
        let done = sqlx::query("UPDATE principals SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(at) = revoke_tokens_at {
            sqlx::query(REVOKE_ALL).bind(at).bind(id).bind(None::<&str>).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE principals SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_principal(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM principals WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_principal_role(&self, id: i64, role_id: Option<i64>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE principals SET role_id = $1 WHERE id = $2")
            .bind(role_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn insert_role(&self, new: &NewRole<'_>) -> StoreResult<RoleSummary> {
        sqlx::query("INSERT INTO roles (name, code, acl, created_at) VALUES ($1, $2, $3, $4)")
            .bind(new.name)
            .bind(new.code)
            .bind(acl_json(new.acl)?)
            .bind(new.created_at)
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
        let done = sqlx::query("DELETE FROM roles WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_principal_group(&self, id: i64, group_id: Option<i64>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE principals SET group_id = $1 WHERE id = $2")
            .bind(group_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn insert_group(&self, new: &NewGroup<'_>) -> StoreResult<GroupSummary> {
        sqlx::query("INSERT INTO user_groups (name, allowed_regex, reseller_id, created_at) VALUES ($1, $2, $3, $4)")
            .bind(new.name)
            .bind(new.allowed_regex)
            .bind(new.reseller_id)
            .bind(new.created_at)
            .execute(&self.pool)
            .await?;
        self.group_by_name(new.name).await?.ok_or(StoreError::NotFound)
    }

    async fn group_by_name(&self, name: &str) -> StoreResult<Option<GroupSummary>> {
        Ok(sqlx::query_as::<_, GroupRow>(GROUP_BY_NAME).bind(name).fetch_optional(&self.pool).await?.map(Into::into))
    }

    async fn list_groups(&self, reseller_id: Option<i64>) -> StoreResult<Vec<GroupSummary>> {
        Ok(sqlx::query_as::<_, GroupRow>(LIST_GROUPS)
            .bind(reseller_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn delete_group(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM user_groups WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.secret.as_slice())
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_token(&self, new: &NewToken<'_>, rules: InsertRules<'_>) -> StoreResult<Inserted> {
        let mut tx = self.pool.begin().await?;
        let owner = sqlx::query(LOCK_OWNER)
            .bind(rules.login_at)
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
                .bind(new.created_at)
                .fetch_one(&mut *tx)
                .await?;
            if live >= i64::from(max) {
                return Ok(Inserted::LimitReached);
            }
        }
        sqlx::query(INSERT_TOKEN)
            .bind(new.id)
            .bind(new.principal_id)
            .bind(new.issuer.as_str())
            .bind(new.kind.as_str())
            .bind(new.digest.as_bytes().as_slice())
            .bind(new.note)
            .bind(new.created_at)
            .bind(new.expires_at)
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
            .bind(id)
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
            "UPDATE tokens SET revoked_at = $1, version = version + 1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all(&self, principal_id: i64, issuer: Option<Issuer>, at: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query(REVOKE_ALL)
            .bind(at)
            .bind(principal_id)
            .bind(issuer.map(Issuer::as_str))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn set_token_enabled(&self, id: Uuid, enabled: bool) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET version = version + CASE WHEN enabled = $1 THEN 0 ELSE 1 END, enabled = $1 WHERE id = $2",
        )
        .bind(enabled)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn bump(&self, principal_id: i64, token_id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let owner = sqlx::query("UPDATE principals SET last_login_at = $1 WHERE id = $2")
            .bind(at)
            .bind(principal_id)
            .execute(&mut *tx)
            .await?;
        let token = sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(token_id)
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
        let ids: Vec<Uuid> = touches.iter().map(|t| t.id).collect();
        let used: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.last_used_at).collect();
        let expires: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.expires_at).collect();
        sqlx::query(APPLY_TOUCHES).bind(ids).bind(used).bind(expires).execute(&self.pool).await?;
        Ok(())
    }

    async fn sweep(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM tokens WHERE revoked_at < $1 OR expires_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_kind, actor_name, action, target, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.at)
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
             (SELECT * FROM audit_log ORDER BY id DESC LIMIT $1) AS newest ORDER BY id",
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
            let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            sqlx::query(WRITE_THROTTLE)
                .bind(c.scope.as_str())
                .bind(&c.subject)
                .bind(c.window_start)
                .bind(n(c.failures))
                .bind(n(c.prev_failures))
                .bind(n(c.strikes))
                .bind(c.locked_until)
                .bind(c.expires_at)
                .bind(n(c.in_flight))
                .bind(n(c.prev_in_flight))
                .bind(c.in_flight_bucket)
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
             FROM login_throttle WHERE expires_at > $1 ORDER BY scope, subject COLLATE \"C\"",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn clear_throttle(&self, scope: ThrottleScope, subject: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM login_throttle WHERE scope = $1 AND subject = $2")
            .bind(scope.as_str())
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sweep_throttle(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM login_throttle WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
