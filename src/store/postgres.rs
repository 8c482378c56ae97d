//! The Postgres engine: the production backend. What differs from SQLite: connecting (with a
//! direct first attempt, so an operator sees the cause), invalidations by LISTEN/NOTIFY, and
//! the touch batch in one statement over arrays. Every query is shared (`sql_store.rs`).
//!
//! The pool's acquire timeout is shorter than the request timeout (checked in config), so a
//! database outage surfaces as a typed `Unavailable` (503), never a hung request.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::Pool;
use super::sql_store::{Engine, SqlStore};
use super::{StoreError, StoreResult, Subscription, TokenTouch};
use crate::config::{DatabaseConfig, DatabaseUrl};

/// What only Postgres needs: its pool, and where the invalidation listener connects from.
#[derive(Clone)]
pub(super) struct PgEngine {
    pool: PgPool,
    /// The same database, under its own application name (so an operator, or a test, can tell
    /// the listener's connection apart).
    listen_options: PgConnectOptions,
}

// why by hand: sqlx's `PgConnectOptions` derives `Debug`, password included.
impl std::fmt::Debug for PgEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEngine").field("pool", &self.pool).finish_non_exhaustive()
    }
}

/// The NOTIFY channel of invalidations between replicas.
const CHANNEL: &str = "tokenauth_invalidate";

/// A LISTEN on `CHANNEL`, on a connection of its own.
struct PgSubscription {
    listener: sqlx::postgres::PgListener,
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        // why try_recv: it reports a lost connection (None) instead of silently reconnecting,
        // so the caller knows notices may have been missed.
        Ok(self.listener.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

impl PgEngine {
    /// Connect to the database named by a `postgres://` URL; fails fast when unreachable.
    pub(super) async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<SqlStore> {
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
        let engine = PgEngine { pool: pool.clone(), listen_options };
        Ok(SqlStore::new(Pool::Postgres(pool), Engine::Postgres(Box::new(engine))))
    }
}

/// GREATEST ignores NULLs, so an absent value leaves the column alone; an expiry never moves
/// backwards, a never-expiring token never gains one, a revoked token is never extended.
const APPLY_TOUCHES: &str = "UPDATE tokens AS t SET \
     last_used_at = GREATEST(t.last_used_at, u.last_used_at), \
     expires_at = CASE WHEN t.expires_at IS NULL OR t.revoked_at IS NOT NULL THEN t.expires_at \
                  ELSE GREATEST(t.expires_at, u.expires_at) END \
     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, last_used_at, expires_at) \
     WHERE t.id = u.id";

impl PgEngine {
    pub(super) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    /// Reads only, so a role that may not change the schema can ask.
    pub(super) async fn pending_migrations(&self) -> StoreResult<Vec<String>> {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&self.pool).await?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar(super::APPLIED_MIGRATIONS).fetch_all(&self.pool).await?
        } else {
            Vec::new()
        };
        Ok(super::pending(&sqlx::migrate!("migrations/postgres"), &applied))
    }

    pub(super) async fn publish(&self, payload: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn subscribe(&self) -> StoreResult<Option<Box<dyn Subscription>>> {
        // why a pool of one, lazily connected: PgListener takes its connection from a pool,
        // and this one must not take a connection from the request pool.
        let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(self.listen_options.clone());
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Box::new(PgSubscription { listener })))
    }

    /// The whole batch in one statement.
    pub(super) async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()> {
        let ids: Vec<Uuid> = touches.iter().map(|t| t.id).collect();
        let used: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.last_used_at).collect();
        let expires: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.expires_at).collect();
        sqlx::query(APPLY_TOUCHES).bind(ids).bind(used).bind(expires).execute(&self.pool).await?;
        Ok(())
    }
}
