//! The SQLite engine: the embedded default backend. What differs from Postgres: opening the
//! file (and locking it while migrating), invalidations through a table watched by
//! `PRAGMA data_version`, and the touch batch. Every query is shared (`sql_store.rs`).
//!
//! Tuned on purpose: WAL (readers do not block the writer), `busy_timeout` (writers wait for
//! each other instead of failing), foreign keys on (token rows cascade with their owner),
//! `create_if_missing` (first start needs no set-up). Times are INTEGER microseconds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::codec::micros;
use super::sql::Pool;
use super::sql_store::{Engine, SqlStore};
use super::{Listen, StoreError, StoreResult, Subscription, TokenTouch};
use crate::config::{DatabaseConfig, DatabaseUrl};

/// why 5 s: long enough to ride out a burst of writers, shorter than the request timeout.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What only SQLite needs: its pool, and the file (`None` in memory) for the startup lock.
#[derive(Debug)]
pub(super) struct SqliteEngine {
    pool: SqlitePool,
    path: Option<PathBuf>,
    /// How the pool's connections are opened, for the watcher's connection of its own.
    options: SqliteConnectOptions,
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

impl SqliteEngine {
    /// Open (creating if missing) the database named by a `sqlite:` URL.
    pub(super) async fn connect(url: &DatabaseUrl, cfg: &DatabaseConfig) -> StoreResult<SqlStore> {
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
            // why no ping before each use: sqlx pings an idle connection before handing it out,
            // which for SQLite is one more round trip to the connection's worker thread (tens
            // of µs, several per login) and can find nothing wrong: there is no server to lose.
            // Postgres keeps the ping, since a connection the server dropped is found that way.
            .test_before_acquire(false)
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {url}: {e}")))?;
        if creating {
            restrict_to_owner(&path);
        }
        if !in_memory {
            tracing::info!(path = %absolute(&path).display(), "using SQLite database");
        }
        let engine = SqliteEngine { pool: pool.clone(), path: (!in_memory).then_some(path), options: opts };
        Ok(SqlStore::new(Pool::Sqlite(pool), Engine::Sqlite(Box::new(engine))))
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

/// An expiry never moves backwards, a never-expiring token never gains one, a revoked token is
/// never extended; an absent value leaves its column alone.
const APPLY_TOUCH: &str = "UPDATE tokens SET \
     last_used_at = CASE WHEN $1 IS NULL THEN last_used_at WHEN last_used_at IS NULL THEN $1 \
                    ELSE max(last_used_at, $1) END, \
     expires_at = CASE WHEN $2 IS NULL OR expires_at IS NULL OR revoked_at IS NOT NULL THEN expires_at \
                  ELSE max(expires_at, $2) END \
     WHERE id = $3";

impl SqliteEngine {
    pub(super) async fn migrate(&self) -> StoreResult<()> {
        let _lock = match &self.path {
            Some(path) => Some(StartupLock::acquire(path).await?),
            None => None,
        };
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    /// Reads only (see `PgEngine::pending_migrations`).
    pub(super) async fn pending_migrations(&self) -> StoreResult<Vec<String>> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar(super::APPLIED_MIGRATIONS).fetch_all(&self.pool).await?
        } else {
            Vec::new()
        };
        Ok(super::pending(&sqlx::migrate!("migrations/sqlite"), &applied))
    }

    /// why a table: the CLI (or another server) on the same file is another process; the
    /// server polls this table (see `SqlitePoll`). Pruned here, keeping the last thousand.
    pub(super) async fn publish(&self, payload: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO invalidations (payload) VALUES ($1)").bind(payload).execute(&self.pool).await?;
        sqlx::query("DELETE FROM invalidations WHERE seq <= (SELECT max(seq) FROM invalidations) - 1000")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn subscribe(&self, via: Listen) -> StoreResult<Box<dyn Subscription>> {
        let Listen::Poll(interval) = via else {
            return Err(StoreError::Unsupported(
                "SQLite has no LISTEN; other processes on the file are heard by watching it".into(),
            ));
        };
        let last: i64 =
            sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM invalidations").fetch_one(&self.pool).await?;
        // why a connection of its own: `PRAGMA data_version` tells a connection whether
        // *other* connections committed, so it must not be one of the pool's (whose own
        // writes it would not see), and it must not take a place in the pool. In memory there
        // is no other process to hear from, and no second connection to the same database.
        let watch = match &self.path {
            Some(path) => {
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                let connection = self.options.clone().connect().await?;
                Some(Watch { connection, files: [path.clone(), PathBuf::from(wal)] })
            }
            None => None,
        };
        Ok(Box::new(SqlitePoll {
            pool: self.pool.clone(),
            watch,
            interval,
            version: None,
            last,
            ready: VecDeque::new(),
        }))
    }

    /// One statement per touch, in one transaction (SQLite has no array parameters).
    pub(super) async fn apply_touches(&self, touches: &[TokenTouch]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for t in touches {
            sqlx::query(APPLY_TOUCH)
                .bind(t.last_used_at.map(micros))
                .bind(t.expires_at.map(micros))
                .bind(t.id.hyphenated().to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// why 5 ms: a revocation made by another process (the CLI, another server on the file)
/// reaches this server's cache within a few milliseconds (the target is a p99 under 10 ms).
/// Each tick costs two `stat` calls (the database file and its WAL: every commit writes the
/// WAL); the invalidations table is read only when they moved. An idle server spends under
/// 1% of a core on it (2 ms cost 1.7%).
const WATCH_INTERVAL: Duration = Duration::from_millis(5);

/// why also `PRAGMA data_version`, every 50 ms: file times have the kernel's coarse clock, so
/// two commits within one tick, the second rewriting the WAL from its start (same size), look
/// like one. SQLite's own counter of other connections' commits catches what `stat` missed.
const VERSION_INTERVAL: Duration = Duration::from_millis(50);

/// Reads `invalidations` for rows newer than the last one seen, when the database changed.
struct SqlitePoll {
    pool: SqlitePool,
    /// A connection of its own whose `data_version` moves when another connection commits,
    /// and the files whose size and time move with every commit.
    watch: Option<Watch>,
    /// Without a watcher (in memory), how often the table is read.
    interval: Duration,
    /// The `data_version` and the files' sizes and times at the last read of the table.
    version: Option<(i64, FileStamps)>,
    last: i64,
    ready: VecDeque<String>,
}

impl SqlitePoll {
    /// Wait until the database may hold new invalidations: another connection committed.
    async fn changed(&mut self) -> StoreResult<()> {
        let Some(watch) = self.watch.as_mut() else {
            tokio::time::sleep(self.interval).await;
            return Ok(());
        };
        let mut version_read = std::time::Instant::now();
        let Some((mut version, mut stamps)) = self.version.take() else {
            // The first read: take the current state, and read the table once.
            self.version = Some((watch.data_version().await?, watch.stamps()));
            return Ok(());
        };
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let now = watch.stamps();
            let mut moved = now != stamps;
            stamps = now;
            if moved || version_read.elapsed() >= VERSION_INTERVAL {
                let current = watch.data_version().await?;
                version_read = std::time::Instant::now();
                moved |= current != version;
                version = current;
            }
            if moved {
                self.version = Some((version, stamps));
                return Ok(());
            }
        }
    }
}

/// The size and modification time of the database file and its WAL.
type FileStamps = [Option<(u64, std::time::SystemTime)>; 2];

/// What tells the watcher that another connection committed.
struct Watch {
    connection: SqliteConnection,
    files: [PathBuf; 2],
}

impl Watch {
    async fn data_version(&mut self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut self.connection).await?)
    }

    fn stamps(&self) -> FileStamps {
        self.files.each_ref().map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.len(), m.modified().ok()?))))
    }
}

#[async_trait]
impl Subscription for SqlitePoll {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        loop {
            if let Some(payload) = self.ready.pop_front() {
                return Ok(Some(payload));
            }
            self.changed().await?;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT seq, payload FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT 1000")
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
