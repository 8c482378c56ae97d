//! Running one SQL text on either backend.
//!
//! Policy: every query is written once (`$N` placeholders, which sqlx's SQLite driver reads as
//! `?N`), with its arguments as `Value`s, and runs on whichever pool or transaction the store
//! holds. This module is the only place that knows how a value is bound on each engine: a time
//! is INTEGER microseconds in SQLite and `timestamptz` in Postgres, a token id is TEXT or
//! `uuid`, a balance TEXT or `numeric`, a throttle count INTEGER or `integer`. Rows are read
//! into the structs of `rows`, whose column types (`codec`) decode on both engines.
//!
//! why not generics over `sqlx::Database`: the bounds a generic query needs (executors,
//! arguments, every column type's `Encode`/`Decode`, `rows_affected`, which no trait offers)
//! would spread into every method; and `sqlx::Any` has no time, UUID or decimal types. An
//! enum with two arms per operation, here and nowhere else, keeps the methods plain.

use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Arguments as _, FromRow, Postgres, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{Dec, micros};
use super::retry::retried;
use super::{StoreError, StoreResult};
use crate::model::{Issuer, PrincipalKind, ThrottleScope, TokenHash, TokenKind};

/// One argument of a query, bound as each engine stores it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    /// An integer (ids, codes, limits).
    Int(Option<i64>),
    /// A throttle count: `integer` in Postgres.
    Count(u32),
    /// Text.
    Text(Option<&'a str>),
    /// A boolean (INTEGER 0/1 in SQLite).
    Bool(bool),
    /// Bytes (digests, key secrets).
    Bytes(&'a [u8]),
    /// A time, to the microsecond.
    Time(Option<OffsetDateTime>),
    /// A token id.
    Uuid(Uuid),
    /// An exact decimal (a reseller's balance).
    Decimal(Option<Decimal>),
}

/// The arguments of one query: `args![a, b, c]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { [$($crate::store::sql::Value::from($v)),*] };
}
pub(super) use args;

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl<'a> From<$t> for Value<'a> {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

value_from! {
    i64 => |v| Value::Int(Some(v));
    Option<i64> => |v| Value::Int(v);
    u32 => |v| Value::Count(v);
    &'a str => |v| Value::Text(Some(v));
    &'a String => |v| Value::Text(Some(v.as_str()));
    Option<&'a str> => |v| Value::Text(v);
    bool => |v| Value::Bool(v);
    &'a [u8] => |v| Value::Bytes(v);
    &'a TokenHash => |v| Value::Bytes(v.as_bytes());
    OffsetDateTime => |v| Value::Time(Some(v));
    Option<OffsetDateTime> => |v| Value::Time(v);
    Uuid => |v| Value::Uuid(v);
    Option<Decimal> => |v| Value::Decimal(v);
    Issuer => |v| Value::Text(Some(v.as_str()));
    Option<Issuer> => |v| Value::Text(v.map(Issuer::as_str));
    PrincipalKind => |v| Value::Text(Some(v.as_str()));
    TokenKind => |v| Value::Text(Some(v.as_str()));
    ThrottleScope => |v| Value::Text(Some(v.as_str()));
}

fn sqlite_args<'a>(values: &[Value<'a>]) -> StoreResult<SqliteArguments<'a>> {
    sqlite_args_or(values).map_err(|e| encoding(&e))
}

fn pg_args(values: &[Value<'_>]) -> StoreResult<PgArguments> {
    pg_args_or(values).map_err(|e| encoding(&e))
}

fn encoding(e: &BoxDynError) -> StoreError {
    StoreError::Other(format!("cannot encode a query argument: {e}"))
}

fn sqlite_args_or<'a>(values: &[Value<'a>]) -> Result<SqliteArguments<'a>, BoxDynError> {
    let mut args = SqliteArguments::default();
    for v in values {
        match *v {
            Value::Int(i) => args.add(i),
            Value::Count(n) => args.add(i64::from(n)),
            Value::Text(s) => args.add(s),
            Value::Bool(b) => args.add(b),
            Value::Bytes(b) => args.add(b),
            Value::Time(t) => args.add(t.map(micros)),
            Value::Uuid(id) => args.add(id.hyphenated().to_string()),
            Value::Decimal(d) => args.add(d.map(|d| d.to_string())),
        }?;
    }
    Ok(args)
}

fn pg_args_or(values: &[Value<'_>]) -> Result<PgArguments, BoxDynError> {
    let mut args = PgArguments::default();
    for v in values {
        match *v {
            Value::Int(i) => args.add(i),
            // why saturate: the columns are `integer`; a count past 2^31 means nothing more.
            Value::Count(n) => args.add(i32::try_from(n).unwrap_or(i32::MAX)),
            Value::Text(s) => args.add(s),
            Value::Bool(b) => args.add(b),
            Value::Bytes(b) => args.add(b),
            Value::Time(t) => args.add(t),
            Value::Uuid(id) => args.add(id),
            Value::Decimal(d) => args.add(d.map(Dec)),
        }?;
    }
    Ok(args)
}

/// A row type both engines can read (every `rows` struct).
pub(super) trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// How Postgres statements are sent (`database.prepared_statements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Statements {
    /// Named, prepared once per connection and kept (sqlx's cache).
    Prepared,
    /// Unnamed, parsed each time; one outside a transaction runs in a transaction of its own.
    /// why: a transaction-mode pooler (PgBouncer) may hand the parse and the execution of an
    /// unnamed statement to two server connections unless a transaction pins them to one.
    Unnamed,
}

impl Statements {
    /// sqlx's `persistent` flag: named and cached, or unnamed.
    pub(super) fn persistent(self) -> bool {
        self == Statements::Prepared
    }
}

/// The connection pool, of either engine.
#[derive(Debug, Clone)]
pub(super) enum Pool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// Postgres, and how its statements are sent.
    Postgres(PgPool, Statements),
}

/// An open transaction, of either engine; rolled back when dropped uncommitted.
pub(super) enum Tx {
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// Postgres.
    Postgres(Transaction<'static, Postgres>, Statements),
}

/// Run `$body` on a Postgres pool directly, or, with unnamed statements, in a transaction of
/// its own (see `Statements::Unnamed`); every attempt retried on contention (`retry.rs`).
macro_rules! on_pool {
    ($pool:expr, |$q:ident| $sqlite:expr, |$pq:ident| $postgres:expr, $tx:ident => $in_tx:expr) => {
        retried!("a statement", async {
            Ok(match $pool {
                Pool::Sqlite(p) => {
                    let $q = p;
                    $sqlite
                }
                Pool::Postgres(p, Statements::Prepared) => {
                    let $pq = p;
                    $postgres
                }
                Pool::Postgres(..) => {
                    let mut $tx = $pool.begin().await?;
                    let out = $in_tx;
                    $tx.commit().await?;
                    out
                }
            })
        })
    };
}

impl Pool {
    /// Run a statement; how many rows it changed.
    pub(super) async fn execute(&self, sql: &str, values: &[Value<'_>]) -> StoreResult<u64> {
        on_pool!(self,
            |p| sqlx::query_with(sql, sqlite_args(values)?).execute(p).await?.rows_affected(),
            |p| sqlx::query_with(sql, pg_args(values)?).execute(p).await?.rows_affected(),
            tx => tx.execute(sql, values).await?)
    }

    /// At most one row.
    pub(super) async fn optional<R: Row>(&self, sql: &str, values: &[Value<'_>]) -> StoreResult<Option<R>> {
        on_pool!(self,
            |p| sqlx::query_as_with(sql, sqlite_args(values)?).fetch_optional(p).await?,
            |p| sqlx::query_as_with(sql, pg_args(values)?).fetch_optional(p).await?,
            tx => tx.optional(sql, values).await?)
    }

    /// Every row.
    pub(super) async fn all<R: Row>(&self, sql: &str, values: &[Value<'_>]) -> StoreResult<Vec<R>> {
        on_pool!(self,
            |p| sqlx::query_as_with(sql, sqlite_args(values)?).fetch_all(p).await?,
            |p| sqlx::query_as_with(sql, pg_args(values)?).fetch_all(p).await?,
            tx => tx.all(sql, values).await?)
    }

    /// Start a transaction.
    pub(super) async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p, statements) => Tx::Postgres(p.begin().await?, *statements),
        })
    }
}

impl Tx {
    /// Run a statement; how many rows it changed.
    pub(super) async fn execute(&mut self, sql: &str, values: &[Value<'_>]) -> StoreResult<u64> {
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_with(sql, sqlite_args(values)?).execute(&mut **t).await?.rows_affected(),
            Tx::Postgres(t, s) => sqlx::query_with(sql, pg_args(values)?)
                .persistent(s.persistent())
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    /// Exactly one row.
    pub(super) async fn one<R: Row>(&mut self, sql: &str, values: &[Value<'_>]) -> StoreResult<R> {
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_as_with(sql, sqlite_args(values)?).fetch_one(&mut **t).await?,
            Tx::Postgres(t, s) => {
                sqlx::query_as_with(sql, pg_args(values)?).persistent(s.persistent()).fetch_one(&mut **t).await?
            }
        })
    }

    /// At most one row.
    pub(super) async fn optional<R: Row>(&mut self, sql: &str, values: &[Value<'_>]) -> StoreResult<Option<R>> {
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_as_with(sql, sqlite_args(values)?).fetch_optional(&mut **t).await?,
            Tx::Postgres(t, s) => {
                sqlx::query_as_with(sql, pg_args(values)?).persistent(s.persistent()).fetch_optional(&mut **t).await?
            }
        })
    }

    /// Every row.
    pub(super) async fn all<R: Row>(&mut self, sql: &str, values: &[Value<'_>]) -> StoreResult<Vec<R>> {
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_as_with(sql, sqlite_args(values)?).fetch_all(&mut **t).await?,
            Tx::Postgres(t, s) => {
                sqlx::query_as_with(sql, pg_args(values)?).persistent(s.persistent()).fetch_all(&mut **t).await?
            }
        })
    }

    /// A single integer (a count).
    pub(super) async fn count(&mut self, sql: &str, values: &[Value<'_>]) -> StoreResult<i64> {
        Ok(match self {
            Tx::Sqlite(t) => sqlx::query_scalar_with(sql, sqlite_args(values)?).fetch_one(&mut **t).await?,
            Tx::Postgres(t, s) => {
                sqlx::query_scalar_with(sql, pg_args(values)?).persistent(s.persistent()).fetch_one(&mut **t).await?
            }
        })
    }

    /// Commit.
    pub(super) async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t, _) => t.commit().await?,
        }
        Ok(())
    }
}
