//! Postgres migrations, applied by tokenauth itself rather than by sqlx's migrator, into the
//! same `_sqlx_migrations` table with the same checksums (so a database migrated by either is
//! recognised by both, and `sqlx migrate info` still reads it).
//!
//! why our own: sqlx's migrator holds a *session* advisory lock for the whole run and sends
//! named prepared statements, neither of which survives a transaction-mode pooler
//! (PgBouncer), and it applies a file in one transaction, which distributed engines refuse
//! for some schema changes (a column added and indexed together). Here:
//! - `per_file` (the default): each file in a transaction of its own, which first takes a
//!   *transaction* advisory lock (sqlx's key, so an older tokenauth migrating at the same
//!   moment waits too) and checks again that the file is still pending, so replicas starting
//!   together apply each file once. Without `migration_lock`, that lock is skipped (engines
//!   without advisory locks): then only one process may migrate at a time.
//! - `per_statement`: each statement in a transaction of its own, then the file recorded as
//!   applied; no lock. A failure half-way leaves the file half applied, and the error names
//!   the statement.

use sqlx::migrate::{Migration, Migrator};
use sqlx::postgres::PgPool;

use super::sql::{Pool, Statements, Tx, args};
use super::{StoreError, StoreResult};
use crate::config::MigrationTransactions;

/// sqlx's own table, as its Postgres migrator creates it.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";
const APPLIED: &str = "SELECT count(*) FROM _sqlx_migrations WHERE version = $1";
const RECORD: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
     VALUES ($1, $2, TRUE, $3, $4)";

/// A row of `_sqlx_migrations`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Applied {
    pub(super) version: i64,
    pub(super) success: bool,
    pub(super) checksum: Vec<u8>,
}

fn pg(pool: &Pool) -> (&PgPool, Statements) {
    match pool {
        Pool::Postgres(p, s) => (p, *s),
        Pool::Sqlite(_) => unreachable!("Postgres migrations run on a Postgres pool"),
    }
}

/// What `_sqlx_migrations` records; empty when it does not exist yet. Reads only.
pub(super) async fn applied(pool: &Pool) -> StoreResult<Vec<Applied>> {
    let (p, statements) = pg(pool);
    let mut tx = p.begin().await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .persistent(statements.persistent())
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
        .persistent(statements.persistent())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Apply the pending migrations of `migrator`; see the module doc.
pub(super) async fn run(
    pool: &Pool,
    migrator: &Migrator,
    lock: bool,
    transactions: MigrationTransactions,
) -> StoreResult<()> {
    // why: a statement's own transaction cannot hold a lock for the whole file; the config
    // refuses `per_statement` with the lock on (one process migrates).
    let lock = lock && transactions == MigrationTransactions::PerFile;
    if let Some(m) = migrator.iter().find(|m| m.no_tx) {
        return Err(StoreError::Other(format!(
            "migration {} asks to run outside a transaction, which this migrator does not do",
            m.version
        )));
    }
    let lock_id = lock_id(pool).await?;
    let mut tx = pool.begin().await?;
    if lock {
        take_lock(&mut tx, lock_id).await?;
    }
    sqlx_raw(&mut tx, CREATE_TABLE).await?;
    tx.commit().await?;
    let applied = applied(pool).await?;
    check(migrator, &applied)?;
    // why collected: an iterator with a closure, held across awaits, defeats the proof that
    // this future is `Send`.
    let pending: Vec<&Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.iter().any(|a| a.version == m.version))
        .collect();
    for m in pending {
        let started = std::time::Instant::now();
        match transactions {
            MigrationTransactions::PerFile => {
                let mut tx = pool.begin().await?;
                if lock {
                    take_lock(&mut tx, lock_id).await?;
                }
                // why again, under the lock: another process may have applied it meanwhile.
                let done = tx.count(APPLIED, &args![m.version]).await?;
                if done > 0 {
                    continue;
                }
                sqlx_raw(&mut tx, &m.sql).await.map_err(|e| failed(m, &e, None))?;
                record(&mut tx, m, started).await?;
                tx.commit().await?;
            }
            MigrationTransactions::PerStatement => {
                let mut tx = pool.begin().await?;
                let done = tx.count(APPLIED, &args![m.version]).await?;
                tx.commit().await?;
                if done > 0 {
                    continue;
                }
                for (i, statement) in statements(&m.sql).into_iter().enumerate() {
                    let mut tx = pool.begin().await?;
                    sqlx_raw(&mut tx, statement).await.map_err(|e| failed(m, &e, Some((i + 1, statement))))?;
                    tx.commit().await?;
                }
                let mut tx = pool.begin().await?;
                record(&mut tx, m, started).await?;
                tx.commit().await?;
            }
        }
        tracing::info!(version = m.version, description = %m.description, "applied a migration");
    }
    Ok(())
}

/// Refuse a database whose recorded migrations this build does not recognise: one that
/// failed half-way (sqlx's "dirty"), one whose file changed since, or one this build lacks.
fn check(migrator: &Migrator, applied: &[Applied]) -> StoreResult<()> {
    for a in applied {
        let name = format!("migration {}", a.version);
        if !a.success {
            return Err(StoreError::Other(format!("{name} was left partially applied; repair it by hand")));
        }
        match migrator.iter().find(|m| m.version == a.version && !m.migration_type.is_down_migration()) {
            None => {
                return Err(StoreError::Other(format!(
                    "{name} is applied to the database but unknown to this build (a newer tokenauth migrated it?)"
                )));
            }
            Some(m) if *m.checksum != *a.checksum => {
                return Err(StoreError::Other(format!("{name} was changed after it was applied")));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn failed(m: &Migration, e: &StoreError, statement: Option<(usize, &str)>) -> StoreError {
    let file = format!("{:04}_{}", m.version, m.description.replace(' ', "_"));
    StoreError::Other(match statement {
        None => format!("migration {file} failed (nothing of it was applied): {e}"),
        Some((n, sql)) => format!(
            "migration {file} failed at its statement {n} (those before it are applied, the file is not recorded; \
             finish it by hand, then record it): {e}\n{sql}"
        ),
    })
}

async fn record(tx: &mut Tx, m: &Migration, started: std::time::Instant) -> StoreResult<()> {
    let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    tx.execute(RECORD, &args![m.version, &*m.description, &*m.checksum, nanos]).await.map(drop)
}

/// Run SQL by the simple query protocol (several statements, no parameters, nothing
/// prepared).
async fn sqlx_raw(tx: &mut Tx, sql: &str) -> StoreResult<()> {
    let Tx::Postgres(t, _) = tx else { unreachable!("Postgres migrations run in a Postgres transaction") };
    // why `Executor::execute` with a bare `&str`: without arguments sqlx sends it by the
    // simple protocol, as its migrator does (`raw_sql` does too, but its future is not
    // provably `Send` inside ours).
    sqlx::Executor::execute(&mut **t, sql).await?;
    Ok(())
}

async fn take_lock(tx: &mut Tx, id: i64) -> StoreResult<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &args![id]).await.map(drop)
}

/// sqlx's lock key for this database, so that its migrator and ours exclude each other.
async fn lock_id(pool: &Pool) -> StoreResult<i64> {
    let (name,): (String,) =
        pool.optional("SELECT current_database() AS name", &[]).await?.ok_or(StoreError::NotFound)?;
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    // why this formula: sqlx-postgres's `generate_lock_id`.
    Ok(0x3d32_ad9e * i64::from(CRC.checksum(name.as_bytes())))
}

/// The statements of a migration file, in order: split at each `;` that is outside a
/// comment, a quoted string or identifier, or a dollar-quoted body. Comments stay with the
/// statement they precede; what holds only comments and space is dropped. Not handled, and
/// not used by any migration (the test below would see a bad split): `E'..\'..'` escapes,
/// nested block comments, `BEGIN ATOMIC` bodies. Each statement runs in a transaction of
/// its own, perhaps on another connection: no `SET` or temporary table carries over.
pub(super) fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
                continue;
            }
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'$' => {
                let tag_end = sql[i + 1..].find('$').map(|n| i + 1 + n);
                if let Some(end) = tag_end
                    && sql[i + 1..end].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    let tag = &sql[i..=end];
                    i = sql[end + 1..].find(tag).map_or(bytes.len(), |n| end + 1 + n + tag.len());
                    continue;
                }
            }
            b';' => {
                out.push(&sql[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&sql[start..]);
    out.into_iter().filter(|s| has_code(s)).map(str::trim).collect()
}

/// Whether a piece of SQL holds more than comments and space.
fn has_code(sql: &str) -> bool {
    sql.lines().any(|l| {
        let code = l.split("--").next().unwrap_or_default().trim();
        !code.is_empty() && code != ";"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_comments_strings_and_bodies() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT 'it''s; here');\n\
                   COMMENT ON TABLE a IS 'one; two';\n/* block; */ CREATE INDEX a_x ON a (x);\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n-- trailing\n";
        let got = statements(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("-- a comment") && got[0].ends_with("'it''s; here');"));
        assert_eq!(got[1], "COMMENT ON TABLE a IS 'one; two';");
        assert_eq!(got[2], "/* block; */ CREATE INDEX a_x ON a (x);");
        assert!(got[3].contains("SELECT 1; $body$"));
    }

    #[test]
    fn every_postgres_migration_splits_into_whole_statements() {
        for m in sqlx::migrate!("migrations/postgres").iter() {
            let parts = statements(&m.sql);
            assert!(!parts.is_empty() || !has_code(&m.sql), "{}", m.description);
            for p in parts {
                assert!(p.ends_with(';'), "migration {}: a statement without its `;`: {p}", m.version);
            }
        }
    }
}
