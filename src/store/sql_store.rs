//! `SqlStore`: the one implementation of the `Store` trait, over either engine.
//!
//! Every query and every decision a write makes (the token limit, the lock order of throttle
//! counters, what a revocation or a touch may change) is written here once, in SQL both
//! engines accept. What really differs per engine (connecting, migrating, telling other
//! processes about revocations, the touch batch) is in `sqlite.rs` and `postgres.rs`, reached
//! through `Engine`.
//!
//! Every multi-statement write starts with a write, so SQLite takes its write lock first and a
//! transaction never has to upgrade a stale read snapshot; on Postgres the same first write
//! takes the row lock that serialises concurrent writers of that row.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::hot_rows::{Held, HotRows};
use super::retry::retried;
use super::rows::{
    AuditRow, GroupRow, LookupRow, PrincipalRow, RoleRow, SigningKeyRow, ThrottleRow, TokenRow, acl_json,
    allowed_ips_json, group_select, lookup_select, principal_select, role_select, throttle_columns, token_columns,
};
use super::sql::{Pool, Value, args};
use super::sql_import;
use super::{ImportApplied, ImportBatch};
use super::{
    InsertRules, Inserted, Listen, NewGroup, NewPrincipal, NewRole, NewToken, PoolStats, Store, StoreError,
    StoreResult, Subscription, ThrottleStep, TokenTouch,
};
use crate::model::{
    AuditEntry, GroupSummary, Issuer, LegacyToken, Principal, PrincipalKind, RoleSummary, SigningKey, ThrottleCounter,
    ThrottleScope, Token, TokenDigest, TokenHash, TokenLookup,
};

/// What differs per engine.
#[derive(Debug)]
pub(super) enum Engine {
    /// SQLite: a file (or memory), polled for invalidations.
    Sqlite(Box<super::sqlite::SqliteEngine>),
    /// Postgres: LISTEN/NOTIFY.
    Postgres(Box<super::postgres::PgEngine>),
}

/// The store over either engine. See the module doc.
#[derive(Debug)]
pub struct SqlStore {
    pool: Pool,
    engine: Engine,
    /// This process's writers of the login path's hot rows, queued (see `hot_rows.rs`).
    hot: HotRows,
}

impl SqlStore {
    pub(super) fn new(pool: Pool, engine: Engine) -> Self {
        SqlStore { pool, engine, hot: HotRows::default() }
    }

    /// Queue behind this process's other writers of principal `id`'s row.
    async fn principal_row(&self, id: i64) -> Held<'_> {
        self.hot.lock([("principals", id)]).await
    }
}

const PRINCIPAL_BY_NAME: &str = concat!(principal_select!(), "WHERE p.kind = $1 AND p.name = $2");
const PRINCIPAL_BY_ID: &str = concat!(principal_select!(), "WHERE p.id = $1");
const LIST_PRINCIPALS: &str = concat!(principal_select!(), "WHERE p.kind = $1 ORDER BY p.id");
const INSERT_PRINCIPAL: &str = "INSERT INTO principals \
     (kind, name, password_hash, enabled, created_at, role_id, group_id, admin, sms_from, allowed_ips, balance) \
     VALUES ($1, $2, $3, TRUE, $4, $5, $6, $7, $8, $9, $10)";
const ROLE_BY_NAME: &str = concat!(role_select!(), "WHERE r.name = $1");
const GROUP_BY_NAME: &str = concat!(group_select!(), "WHERE g.name = $1");
const LIST_GROUPS: &str = concat!(group_select!(), "WHERE $1 IS NULL OR g.reseller_id = $1");
/// why the scheme: a legacy row's `digest` is a placeholder, never a token's own digest.
const TOKEN_BY_DIGEST: &str = concat!(lookup_select!(), "WHERE t.digest = $1 AND t.digest_scheme = 'sha256'");
const TOKEN_BY_ID: &str = concat!(lookup_select!(), "WHERE t.id = $1");
const LIST_TOKENS: &str =
    concat!("SELECT ", token_columns!(), " FROM tokens t WHERE t.principal_id = $1 ORDER BY t.created_at DESC, t.id");
/// Takes the owner's row lock (and SQLite's write lock), so concurrent logins of one principal
/// serialise on the token limit; with a verified hash, refuses a principal whose password
/// changed or who was disabled while it was verified.
const LOCK_OWNER: &str = "UPDATE principals SET last_login_at = COALESCE($1, last_login_at) \
     WHERE id = $2 AND ($3 IS NULL OR (password_hash = $3 AND enabled = TRUE))";
const COUNT_LIVE: &str = "SELECT count(*) FROM tokens WHERE principal_id = $1 AND dialect = $2 \
     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)";
const INSERT_TOKEN: &str = "INSERT INTO tokens \
     (id, principal_id, dialect, kind, digest, note, created_at, expires_at, enabled, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, 0)";
const REVOKE_ALL: &str = "UPDATE tokens SET revoked_at = $1, version = version + 1 \
     WHERE principal_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR dialect = $3)";
/// Lock (creating where missing) the throttle counters of `n` keys, in the order given, in one
/// statement: `$1` is the epoch a new counter starts from, then each key's scope and subject.
/// why a no-op upsert: it creates a row or takes the existing one's lock in one round trip
/// (Postgres takes the rows' locks in the order of the VALUES list), and as the transaction's
/// first statement it takes SQLite's write lock at once. why one statement for every key:
/// each statement is a round trip (to the database, or to SQLite's worker thread), and a
/// login updates its counters twice.
fn lock_throttle(n: usize) -> String {
    let rows: Vec<String> =
        (0..n).map(|i| format!("(${}, ${}, $1, 0, 0, 0, NULL, $1, 0, 0, $1)", 2 * i + 2, 2 * i + 3)).collect();
    format!(
        "INSERT INTO login_throttle ({}) VALUES {} ON CONFLICT (scope, subject) DO UPDATE SET scope = excluded.scope \
         RETURNING {}",
        throttle_columns!(),
        rows.join(", "),
        throttle_columns!()
    )
}

/// Write `n` locked counters back in one statement: eleven values per counter, in
/// `throttle_columns!` order. The rows exist and are locked (`lock_throttle`), so the upsert
/// always updates; it is an upsert only because both engines can update many rows to
/// different values that way.
fn write_throttle(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let params: Vec<String> = (1..=11).map(|c| format!("${}", 11 * i + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO login_throttle ({}) VALUES {} ON CONFLICT (scope, subject) DO UPDATE SET \
         window_start = excluded.window_start, failures = excluded.failures, \
         prev_failures = excluded.prev_failures, strikes = excluded.strikes, \
         locked_until = excluded.locked_until, expires_at = excluded.expires_at, \
         in_flight = excluded.in_flight, prev_in_flight = excluded.prev_in_flight, \
         in_flight_bucket = excluded.in_flight_bucket",
        throttle_columns!(),
        rows.join(", ")
    )
}
const LIST_THROTTLE: &str = concat!("SELECT ", throttle_columns!(), " FROM login_throttle WHERE expires_at > $1");

/// Sort by a name in byte order, as both engines' `ORDER BY` would only with a collation
/// clause each spells differently.
fn by_bytes<T>(mut rows: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<T> {
    rows.sort_by(|a, b| key(a).as_bytes().cmp(key(b).as_bytes()));
    rows
}

fn found(rows: u64) -> StoreResult<()> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        match &self.engine {
            Engine::Sqlite(e) => e.migrate().await,
            Engine::Postgres(e) => e.migrate().await,
        }
    }

    async fn pending_migrations(&self) -> StoreResult<Vec<String>> {
        match &self.engine {
            Engine::Sqlite(e) => e.pending_migrations().await,
            Engine::Postgres(e) => e.pending_migrations().await,
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.pool.execute("SELECT 1", &[]).await.map(drop)
    }

    async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p, _) => p.close().await,
        }
    }

    fn pool_stats(&self) -> PoolStats {
        match &self.pool {
            Pool::Sqlite(p) => PoolStats { size: p.size(), idle: p.num_idle(), max: p.options().get_max_connections() },
            Pool::Postgres(p, _) => {
                PoolStats { size: p.size(), idle: p.num_idle(), max: p.options().get_max_connections() }
            }
        }
    }

    async fn publish_invalidation(&self, payload: &str) -> StoreResult<()> {
        match &self.engine {
            Engine::Sqlite(e) => e.publish(payload).await,
            Engine::Postgres(e) => e.publish(payload).await,
        }
    }

    async fn subscribe(&self, via: Listen) -> StoreResult<Box<dyn Subscription>> {
        match &self.engine {
            Engine::Sqlite(e) => e.subscribe(via).await,
            Engine::Postgres(e) => e.subscribe(via).await,
        }
    }

    async fn insert_principal(&self, new: &NewPrincipal<'_>) -> StoreResult<Principal> {
        let a = new.attributes;
        let ips = allowed_ips_json(&a.allowed_ips)?;
        let values = args![
            new.kind,
            new.name.as_str(),
            new.password_hash,
            new.created_at,
            new.role_id,
            new.group_id,
            a.admin,
            a.sms_from.as_deref(),
            &ips,
            a.balance
        ];
        self.pool.execute(INSERT_PRINCIPAL, &values).await?;
        // why read back: the record carries the role joined in, as every read does.
        self.principal_by_name(new.kind, new.name.as_str()).await?.ok_or(StoreError::NotFound)
    }

    async fn principal_by_name(&self, kind: PrincipalKind, name: &str) -> StoreResult<Option<Principal>> {
        let row: Option<PrincipalRow> = self.pool.optional(PRINCIPAL_BY_NAME, &args![kind, name]).await?;
        row.map(Principal::try_from).transpose()
    }

    async fn principal_by_id(&self, id: i64) -> StoreResult<Option<Principal>> {
        let row: Option<PrincipalRow> = self.pool.optional(PRINCIPAL_BY_ID, &args![id]).await?;
        row.map(Principal::try_from).transpose()
    }

    async fn list_principals(&self, kind: PrincipalKind) -> StoreResult<Vec<Principal>> {
        convert(self.pool.all::<PrincipalRow>(LIST_PRINCIPALS, &args![kind]).await?)
    }

    async fn set_principal_enabled(&self, id: i64, enabled: bool) -> StoreResult<()> {
        found(self.pool.execute("UPDATE principals SET enabled = $1 WHERE id = $2", &args![enabled, id]).await?)
    }

    async fn set_password_hash(
        &self,
        id: i64,
        hash: &str,
        revoke_tokens_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let _queued = self.principal_row(id).await;
        let pool = &self.pool;
        retried!("set_password_hash", async {
            let mut tx = pool.begin().await?;
            let sql = "UPDATE principals SET password_hash = $1, password_scheme = NULL, \
                       imported_credential = CASE WHEN imported_credential IS NULL THEN NULL ELSE 'migrated' END WHERE id = $2";
            found(tx.execute(sql, &args![hash, id]).await?)?;
            if let Some(at) = revoke_tokens_at {
                tx.execute(REVOKE_ALL, &args![at, id, None::<Issuer>]).await?;
            }
            tx.commit().await
        })
    }

    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> StoreResult<bool> {
        // why the scheme too: a rehash replaces a legacy hash with argon2id.
        let sql =
            "UPDATE principals SET password_hash = $3, password_scheme = NULL WHERE id = $1 AND password_hash = $2";
        let _queued = self.principal_row(id).await;
        Ok(self.pool.execute(sql, &args![id, old, new]).await? > 0)
    }

    async fn delete_principal(&self, id: i64) -> StoreResult<()> {
        found(self.pool.execute("DELETE FROM principals WHERE id = $1", &args![id]).await?)
    }

    async fn set_principal_role(&self, id: i64, role_id: Option<i64>) -> StoreResult<()> {
        found(self.pool.execute("UPDATE principals SET role_id = $1 WHERE id = $2", &args![role_id, id]).await?)
    }

    async fn insert_role(&self, new: &NewRole<'_>) -> StoreResult<RoleSummary> {
        let acl = acl_json(new.acl)?;
        let sql = "INSERT INTO roles (name, code, acl, created_at) VALUES ($1, $2, $3, $4)";
        self.pool.execute(sql, &args![new.name, new.code, &acl, new.created_at]).await?;
        self.role_by_name(new.name).await?.ok_or(StoreError::NotFound)
    }

    async fn role_by_name(&self, name: &str) -> StoreResult<Option<RoleSummary>> {
        let row: Option<RoleRow> = self.pool.optional(ROLE_BY_NAME, &args![name]).await?;
        row.map(RoleSummary::try_from).transpose()
    }

    async fn list_roles(&self) -> StoreResult<Vec<RoleSummary>> {
        let roles = convert(self.pool.all::<RoleRow>(role_select!(), &[]).await?)?;
        Ok(by_bytes(roles, |r: &RoleSummary| &r.role.name))
    }

    async fn delete_role(&self, id: i64) -> StoreResult<()> {
        found(self.pool.execute("DELETE FROM roles WHERE id = $1", &args![id]).await?)
    }

    async fn set_principal_group(&self, id: i64, group_id: Option<i64>) -> StoreResult<()> {
        found(self.pool.execute("UPDATE principals SET group_id = $1 WHERE id = $2", &args![group_id, id]).await?)
    }

    async fn insert_group(&self, new: &NewGroup<'_>) -> StoreResult<GroupSummary> {
        let sql = "INSERT INTO user_groups (name, allowed_regex, reseller_id, created_at) VALUES ($1, $2, $3, $4)";
        self.pool.execute(sql, &args![new.name, new.allowed_regex, new.reseller_id, new.created_at]).await?;
        self.group_by_name(new.name).await?.ok_or(StoreError::NotFound)
    }

    async fn group_by_name(&self, name: &str) -> StoreResult<Option<GroupSummary>> {
        Ok(self.pool.optional::<GroupRow>(GROUP_BY_NAME, &args![name]).await?.map(GroupSummary::from))
    }

    async fn list_groups(&self, reseller_id: Option<i64>) -> StoreResult<Vec<GroupSummary>> {
        let groups = self.pool.all::<GroupRow>(LIST_GROUPS, &args![reseller_id]).await?;
        Ok(by_bytes(groups.into_iter().map(GroupSummary::from).collect(), |g: &GroupSummary| &g.group.name))
    }

    async fn delete_group(&self, id: i64) -> StoreResult<()> {
        found(self.pool.execute("DELETE FROM user_groups WHERE id = $1", &args![id]).await?)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let sql = "SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at, kid";
        Ok(self.pool.all::<SigningKeyRow>(sql, &[]).await?.into_iter().map(SigningKey::from).collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<bool> {
        let sql = "INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING";
        Ok(self.pool.execute(sql, &args![&key.kid, key.secret.as_slice(), key.created_at]).await? > 0)
    }

    async fn insert_token(&self, new: &NewToken<'_>, rules: InsertRules<'_>) -> StoreResult<Inserted> {
        let _queued = self.principal_row(new.principal_id).await;
        let pool = &self.pool;
        retried!("insert_token", async {
            let mut tx = pool.begin().await?;
            let owner = tx.execute(LOCK_OWNER, &args![rules.login_at, new.principal_id, rules.verified_hash]).await?;
            if owner == 0 {
                return if rules.verified_hash.is_some() {
                    Ok(Inserted::CredentialsChanged)
                } else {
                    Err(StoreError::NotFound)
                };
            }
            if let Some(max) = rules.max_live_tokens {
                let live = tx.count(COUNT_LIVE, &args![new.principal_id, new.issuer, new.created_at]).await?;
                if live >= i64::from(max) {
                    return Ok(Inserted::LimitReached);
                }
            }
            let values = args![
                new.id,
                new.principal_id,
                new.issuer,
                new.kind,
                new.digest,
                new.note,
                new.created_at,
                new.expires_at
            ];
            tx.execute(INSERT_TOKEN, &values).await?;
            tx.commit().await?;
            Ok(Inserted::Yes)
        })
    }

    async fn token_by_digest(&self, digest: &TokenHash) -> StoreResult<Option<TokenLookup>> {
        let row: Option<LookupRow> = self.pool.optional(TOKEN_BY_DIGEST, &args![digest]).await?;
        row.map(TokenLookup::try_from).transpose()
    }

    async fn token_by_id(&self, id: Uuid) -> StoreResult<Option<TokenLookup>> {
        let row: Option<LookupRow> = self.pool.optional(TOKEN_BY_ID, &args![id]).await?;
        row.map(TokenLookup::try_from).transpose()
    }

    async fn list_tokens(&self, principal_id: i64) -> StoreResult<Vec<Token>> {
        convert(self.pool.all::<TokenRow>(LIST_TOKENS, &args![principal_id]).await?)
    }

    async fn revoke_token(&self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let sql = "UPDATE tokens SET revoked_at = $1, version = version + 1 WHERE id = $2 AND revoked_at IS NULL";
        Ok(self.pool.execute(sql, &args![at, id]).await? > 0)
    }

    async fn revoke_all(&self, principal_id: i64, issuer: Option<Issuer>, at: OffsetDateTime) -> StoreResult<u64> {
        self.pool.execute(REVOKE_ALL, &args![at, principal_id, issuer]).await
    }

    async fn set_token_enabled(&self, id: Uuid, enabled: bool) -> StoreResult<bool> {
        let sql = "UPDATE tokens SET version = version + CASE WHEN enabled = $1 THEN 0 ELSE 1 END, enabled = $1 \
                   WHERE id = $2";
        Ok(self.pool.execute(sql, &args![enabled, id]).await? > 0)
    }

    async fn bump(&self, principal_id: i64, token_id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let _queued = self.principal_row(principal_id).await;
        let pool = &self.pool;
        retried!("bump", async {
            let mut tx = pool.begin().await?;
            let owner =
                tx.execute("UPDATE principals SET last_login_at = $1 WHERE id = $2", &args![at, principal_id]).await?;
            let sql = "UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND revoked_at IS NULL";
            let token = tx.execute(sql, &args![at, token_id]).await?;
            if owner == 0 || token == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await
        })
    }

    async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()> {
        if touches.is_empty() {
            return Ok(());
        }
        match &self.engine {
            Engine::Sqlite(e) => e.apply_touches(touches).await,
            Engine::Postgres(e) => e.apply_touches(touches).await,
        }
    }

    async fn sweep(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let swept =
            self.pool.execute("DELETE FROM tokens WHERE revoked_at < $1 OR expires_at < $1", &args![cutoff]).await;
        // why after, and whatever the tokens' sweep gave: neither must keep the other from running.
        if let Engine::Postgres(e) = &self.engine {
            e.prune_notices().await?;
        }
        swept
    }

    async fn insert_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let sql = "INSERT INTO audit_log (at, actor_kind, actor_name, action, target, client_ip) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let values = args![e.at, e.actor_kind, &e.actor_name, &e.action, &e.target, &e.client_ip];
        self.pool.execute(sql, &values).await.map(drop)
    }

    async fn list_audit(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let sql = "SELECT at, actor_kind, actor_name, action, target, client_ip FROM \
                   (SELECT * FROM audit_log ORDER BY id DESC LIMIT $1) AS newest ORDER BY id";
        convert(self.pool.all::<AuditRow>(sql, &args![i64::from(limit)]).await?)
    }

    async fn sweep_audit(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        self.pool.execute("DELETE FROM audit_log WHERE at < $1", &args![cutoff]).await
    }

    async fn update_throttle(
        &self,
        keys: &[(ThrottleScope, &str)],
        step: ThrottleStep<'_>,
    ) -> StoreResult<Vec<ThrottleCounter>> {
        // why in key order: two logins locking the same counters in the same order cannot
        // deadlock (an address and an account, on two replicas at once).
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        if order.windows(2).any(|w| keys[w[0]] == keys[w[1]]) {
            return Err(StoreError::Other("a throttle counter was named twice in one update".into()));
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let _queued = self.hot.lock(keys.iter().map(|&(scope, subject)| ("throttle", scope, subject))).await;
        let (pool, order) = (&self.pool, &order);
        // why `step` may run again: a retried transaction starts over from the counters as
        // they are then; only the committed run's change counts.
        retried!("update_throttle", async {
            let mut tx = pool.begin().await?;
            let mut lock = vec![Value::from(OffsetDateTime::UNIX_EPOCH)];
            lock.extend(order.iter().flat_map(|&i| args![keys[i].0, keys[i].1]));
            let rows: Vec<ThrottleRow> = tx.all(&lock_throttle(order.len()), &lock).await?;
            let mut locked: Vec<Option<ThrottleCounter>> = vec![None; keys.len()];
            for row in rows {
                let counter = ThrottleCounter::try_from(row)?;
                // why by key: RETURNING's order is not promised to be the VALUES list's.
                let at = keys.iter().position(|&(scope, subject)| scope == counter.scope && subject == counter.subject);
                if let Some(at) = at {
                    locked[at] = Some(counter);
                }
            }
            let mut counters: Vec<ThrottleCounter> = locked.into_iter().collect::<Option<_>>().ok_or_else(|| {
                StoreError::Other("the database returned other throttle counters than it was asked to lock".into())
            })?;
            step(&mut counters);
            let mut values = Vec::with_capacity(11 * counters.len());
            for c in &counters {
                values.extend(args![
                    c.scope,
                    &c.subject,
                    c.window_start,
                    c.failures,
                    c.prev_failures,
                    c.strikes,
                    c.locked_until,
                    c.expires_at,
                    c.in_flight,
                    c.prev_in_flight,
                    c.in_flight_bucket
                ]);
            }
            tx.execute(&write_throttle(counters.len()), &values).await?;
            tx.commit().await?;
            Ok(counters)
        })
    }

    async fn list_throttle(&self, now: OffsetDateTime) -> StoreResult<Vec<ThrottleCounter>> {
        let mut counters: Vec<ThrottleCounter> =
            convert(self.pool.all::<ThrottleRow>(LIST_THROTTLE, &args![now]).await?)?;
        counters
            .sort_by(|a, b| (a.scope.as_str(), a.subject.as_bytes()).cmp(&(b.scope.as_str(), b.subject.as_bytes())));
        Ok(counters)
    }

    async fn clear_throttle(&self, scope: ThrottleScope, subject: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM login_throttle WHERE scope = $1 AND subject = $2";
        Ok(self.pool.execute(sql, &args![scope, subject]).await? > 0)
    }

    async fn sweep_throttle(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.pool.execute("DELETE FROM login_throttle WHERE expires_at <= $1", &args![now]).await
    }

    async fn apply_import(
        &self,
        batch: &ImportBatch<'_>,
        now: OffsetDateTime,
        commit: bool,
    ) -> StoreResult<ImportApplied> {
        let pool = &self.pool;
        retried!("apply_import", async { sql_import::apply(pool, batch, now, commit).await })
    }

    async fn imported_credentials(&self, kind: PrincipalKind) -> StoreResult<Vec<(i64, String, String)>> {
        sql_import::imported_credentials(&self.pool, kind).await
    }

    async fn legacy_tokens(&self, keys: &[&str]) -> StoreResult<Vec<LegacyToken>> {
        sql_import::legacy_tokens(&self.pool, keys).await
    }

    async fn adopt_legacy_token(&self, id: Uuid, scheme: &TokenDigest, digest: &TokenHash) -> StoreResult<bool> {
        sql_import::adopt(&self.pool, id, scheme, digest).await
    }

    async fn has_legacy_tokens(&self) -> StoreResult<bool> {
        sql_import::has_legacy_tokens(&self.pool).await
    }

    async fn legacy_jwt_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        sql_import::legacy_jwt_key(&self.pool, name).await
    }

    async fn legacy_jwt_keys(&self) -> StoreResult<Vec<Vec<u8>>> {
        sql_import::legacy_jwt_keys(&self.pool).await
    }
}
