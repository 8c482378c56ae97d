//! The Postgres engine: the production backend. What differs from SQLite: connecting (with a
//! direct first attempt, so an operator sees the cause), migrating (`pg_migrate.rs`),
//! invalidations (LISTEN/NOTIFY where the engine has it, and a table polled where it has
//! not), and the touch batch in one statement over arrays. Every other query is shared
//! (`sql_store.rs`).
//!
//! The pool's acquire timeout is shorter than the request timeout (checked in config), so a
//! database outage surfaces as a typed `Unavailable` (503), never a hung request.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use super::retry::retried;
use super::sql::{Pool, Statements, args};
use super::sql_store::{Engine, SqlStore};
use super::{Listen, StoreError, StoreResult, Subscription, TokenTouch};
use crate::config::{DatabaseConfig, DatabaseUrl, MigrationTransactions};

/// What only Postgres needs: its pool, where the invalidation listener connects from, and
/// how it migrates.
pub(super) struct PgEngine {
    pool: Pool,
    /// The listener's connection: `database.listen_url` or the pool's own database, under an
    /// application name of its own (so an operator, or a test, can tell it apart).
    listen_options: PgConnectOptions,
    /// Whether LISTEN can work: not through a transaction-mode pooler.
    can_listen: Result<(), String>,
    /// Set once NOTIFY turned out not to exist on this engine (CockroachDB): publish then
    /// only writes the table.
    no_notify: AtomicBool,
    migration_lock: bool,
    migration_transactions: MigrationTransactions,
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

/// Connect options from a `postgres://` URL, with what every connection of ours sets.
fn options(url: &DatabaseUrl) -> StoreResult<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url.expose())
        .map_err(|e| StoreError::Config(format!("invalid Postgres URL {url}: {e}")))?
        .application_name("tokenauth")
        // why: a connection stranded mid-transaction by a network fault (no reset ever
        // arrives) would hold its row locks, a principal's for instance, until Postgres's
        // own keepalives give up; our transactions last milliseconds.
        .options([("idle_in_transaction_session_timeout", "30s")]))
}

impl PgEngine {
    /// Connect to the database named by a `postgres://` URL; fails fast when unreachable.
    pub(super) async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<SqlStore> {
        let statements = if cfg.prepared_statements { Statements::Prepared } else { Statements::Unnamed };
        let mut opts = options(url)?;
        if statements == Statements::Unnamed {
            opts = opts.statement_cache_capacity(0);
        }
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
        let listener_name = format!("tokenauth-listener-{}", std::process::id());
        let (listen_options, can_listen) = match &cfg.listen_url {
            Some(direct) => (options(direct)?.application_name(&listener_name), Ok(())),
            None if statements == Statements::Unnamed => (
                opts.clone().application_name(&listener_name),
                Err("database.prepared_statements = false says connections go through a transaction-mode \
                     pooler, where LISTEN has no session to live in: set database.listen_url to a direct \
                     connection"
                    .to_owned()),
            ),
            None => (opts.clone().application_name(&listener_name), Ok(())),
        };
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to Postgres at {url}: {e}")))?;
        let pool = Pool::Postgres(pool, statements);
        let engine = PgEngine {
            pool: pool.clone(),
            listen_options,
            can_listen,
            no_notify: AtomicBool::new(false),
            migration_lock: cfg.migration_lock,
            migration_transactions: cfg.migration_transactions,
        };
        Ok(SqlStore::new(pool, Engine::Postgres(Box::new(engine))))
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

/// A notice for the listeners and a row for the pollers, in one statement. why `at` from the
/// database's clock: one clock for every replica (on a distributed engine, the node's, whose
/// skew the pollers' overlap covers).
const PUBLISH: &str = "WITH n AS (SELECT pg_notify($1, $2)) \
     INSERT INTO cache_invalidations (id, payload, at) SELECT $3, $2, clock_timestamp() FROM n";
/// The same without NOTIFY, for engines that lack it.
const PUBLISH_ROW: &str = "INSERT INTO cache_invalidations (id, payload, at) VALUES ($1, $2, clock_timestamp())";
/// A page of notices after a moment and an id, oldest first.
const READ_NOTICES: &str = "SELECT id, payload, at FROM cache_invalidations \
     WHERE (at, id) > ($1, $2) ORDER BY at, id LIMIT $3";
/// How long notices are kept: far longer than any poller's overlap, and than the failures a
/// poller tolerates (`FAILURES_TOLERATED`).
const NOTICE_RETENTION: &str = "10 minutes";

impl PgEngine {
    pub(super) async fn migrate(&self) -> StoreResult<()> {
        super::pg_migrate::run(
            &self.pool,
            &sqlx::migrate!("migrations/postgres"),
            self.migration_lock,
            self.migration_transactions,
        )
        .await
    }

    /// Reads only, so a role that may not change the schema can ask.
    pub(super) async fn pending_migrations(&self) -> StoreResult<Vec<String>> {
        let applied = super::pg_migrate::applied(&self.pool).await?;
        let versions: Vec<i64> = applied.iter().filter(|a| a.success).map(|a| a.version).collect();
        Ok(super::pending(&sqlx::migrate!("migrations/postgres"), &versions))
    }

    pub(super) async fn publish(&self, payload: &str) -> StoreResult<()> {
        let id = Uuid::new_v4();
        if !self.no_notify.load(Ordering::Relaxed) {
            match self.pool.execute(PUBLISH, &args![CHANNEL, payload, id]).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Unsupported(why)) => {
                    tracing::warn!(reason = %why, "this database has no NOTIFY; revocations are published to the invalidations table only");
                    self.no_notify.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.pool.execute(PUBLISH_ROW, &args![id, payload]).await.map(drop)
    }

    pub(super) async fn subscribe(&self, via: Listen) -> StoreResult<Box<dyn Subscription>> {
        match via {
            Listen::Notify => self.listen().await,
            Listen::Poll(interval) => {
                let (now,): (OffsetDateTime,) =
                    self.pool.optional("SELECT clock_timestamp() AS now", &[]).await?.ok_or(StoreError::NotFound)?;
                Ok(Box::new(PgPoll {
                    pool: self.pool.clone(),
                    interval,
                    watermark: now,
                    seen: HashMap::new(),
                    ready: VecDeque::new(),
                    failing_since: None,
                }))
            }
        }
    }

    async fn listen(&self) -> StoreResult<Box<dyn Subscription>> {
        self.can_listen.clone().map_err(StoreError::Unsupported)?;
        // why a pool of one, lazily connected: PgListener takes its connection from a pool,
        // and this one must not take a connection from the request pool.
        let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(self.listen_options.clone());
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await.map_err(|e| match &e {
            // why: CockroachDB and YugabyteDB answer LISTEN with "feature not supported".
            sqlx::Error::Database(db) if db.code().as_deref() == Some("0A000") => {
                StoreError::Unsupported(format!("this database has no LISTEN: {}", db.message()))
            }
            _ => StoreError::from(e),
        })?;
        Ok(Box::new(PgSubscription { listener }))
    }

    /// The whole batch in one statement.
    pub(super) async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()> {
        let Pool::Postgres(pool, statements) = &self.pool else {
            unreachable!("a Postgres engine has a Postgres pool")
        };
        let ids: Vec<Uuid> = touches.iter().map(|t| t.id).collect();
        let used: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.last_used_at).collect();
        let expires: Vec<Option<OffsetDateTime>> = touches.iter().map(|t| t.expires_at).collect();
        let (ids, used, expires) = (&ids, &used, &expires);
        retried!("apply_touches", async {
            let query = sqlx::query(APPLY_TOUCHES).bind(ids).bind(used).bind(expires);
            match statements {
                Statements::Prepared => query.execute(pool).await?,
                Statements::Unnamed => {
                    let mut tx = pool.begin().await?;
                    let done = query.persistent(false).execute(&mut *tx).await?;
                    tx.commit().await?;
                    done
                }
            };
            Ok(())
        })
    }

    /// Delete notices no poller can still need.
    pub(super) async fn prune_notices(&self) -> StoreResult<u64> {
        let sql =
            format!("DELETE FROM cache_invalidations WHERE at < clock_timestamp() - interval '{NOTICE_RETENTION}'");
        self.pool.execute(&sql, &[]).await
    }
}

/// why 1 s: a notice's `at` is read from the database's clock when its row is written, and
/// it becomes visible at commit, a moment later, possibly after a poll already read past its
/// `at` (more so on a distributed engine, whose nodes' clocks also differ by up to their
/// maximum offset, CockroachDB's 500 ms by default). Each poll reads again what is this much
/// older than the newest notice seen, and skips the ids it already delivered. A notice later
/// than that is still bounded by `cache.max_staleness`.
const OVERLAP: time::Duration = time::Duration::seconds(1);

/// Rows read per query; a poll reads page after page until one comes back short.
const PAGE: usize = 500;
/// why: past this many new notices in one poll (a bulk revocation, an import), dropping the
/// whole cache is cheaper than dropping entries one by one.
const FLUSH_PAST: usize = 20_000;
/// How long reads of the table may keep failing before the subscription gives up (and the
/// server turns the cache off, then starts over). why this long: rows are kept for
/// `NOTICE_RETENTION`, so a poller that recovers sooner still finds every notice it missed;
/// meanwhile a cached entry is still trusted for `cache.max_staleness` at most, so a missed
/// notice is no later than that. why not at the first error: the poller shares the request
/// pool, and a pool too busy to lend it a connection would otherwise flush the cache and send
/// every check to the database.
const FAILURES_TOLERATED: Duration = Duration::from_secs(300);

/// Reads `cache_invalidations` every `interval`: ordered by the time each row was written,
/// with an overlap, deduplicated by id (neither a sequence nor insertion order is commit
/// order on a distributed engine).
struct PgPoll {
    pool: Pool,
    interval: Duration,
    /// The newest `at` delivered (or the database's clock when the poll started).
    watermark: OffsetDateTime,
    /// The ids delivered within the overlap, and their `at`.
    seen: HashMap<Uuid, OffsetDateTime>,
    ready: VecDeque<String>,
    /// Since when reads have failed, if they do.
    failing_since: Option<std::time::Instant>,
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: Uuid,
    payload: String,
    at: OffsetDateTime,
}

impl PgPoll {
    /// One page of notices after `(at, id)`, in that order.
    async fn page(&self, after: (OffsetDateTime, Uuid)) -> StoreResult<Vec<NoticeRow>> {
        let Pool::Postgres(pool, statements) = &self.pool else {
            unreachable!("a Postgres poller has a Postgres pool")
        };
        let limit = i64::try_from(PAGE).unwrap_or(i64::MAX);
        let query = sqlx::query_as(READ_NOTICES).bind(after.0).bind(after.1).bind(limit);
        Ok(match statements {
            Statements::Prepared => query.fetch_all(pool).await?,
            Statements::Unnamed => {
                let mut tx = pool.begin().await?;
                let rows = query.persistent(false).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
        })
    }

    /// Read what is new since the last read (and the overlap before it) into `ready`.
    async fn read(&mut self) -> StoreResult<()> {
        let mut after = (self.watermark - OVERLAP, Uuid::nil());
        let mut fresh: Vec<NoticeRow> = Vec::new();
        loop {
            let rows = self.page(after).await?;
            let short = rows.len() < PAGE;
            if let Some(last) = rows.last() {
                after = (last.at, last.id);
            }
            fresh.extend(rows.into_iter().filter(|r| !self.seen.contains_key(&r.id)));
            if short || fresh.len() > FLUSH_PAST {
                break;
            }
        }
        // why the flood's ids are kept as seen: the next read goes back over the overlap, and
        // must not deliver one by one what the flush already covered. Rows past this page are
        // read by the next poll.
        let flush = fresh.len() > FLUSH_PAST;
        if flush {
            self.ready.push_back("*".to_owned());
        }
        for row in fresh {
            self.seen.insert(row.id, row.at);
            self.watermark = self.watermark.max(row.at);
            if !flush {
                self.ready.push_back(row.payload);
            }
        }
        let forget = self.watermark - OVERLAP;
        self.seen.retain(|_, at| *at >= forget);
        Ok(())
    }
}

#[async_trait]
impl Subscription for PgPoll {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        loop {
            if let Some(payload) = self.ready.pop_front() {
                return Ok(Some(payload));
            }
            tokio::time::sleep(self.interval).await;
            match self.read().await {
                Ok(()) => self.failing_since = None,
                Err(e) => {
                    let since = *self.failing_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > FAILURES_TOLERATED {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "could not read the invalidations table; trying again");
                }
            }
        }
    }
}
