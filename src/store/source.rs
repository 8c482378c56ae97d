//! Reading the databases of the systems tokenauth replaces (django-rest-knox's Django, and
//! szurubooru), read-only, for `tokenauth import`. The SQL is plain enough for both engines;
//! times are read as text (`CAST(... AS TEXT)`) and parsed here, so a naive `timestamp`, a
//! `timestamptz` and Django's SQLite text all read the same way, as UTC.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::sql::{Pool, Statements};
use super::{StoreError, StoreResult};
use crate::config::DatabaseUrl;

/// A legacy database, opened read-only.
#[derive(Debug)]
pub struct Source {
    pool: Pool,
}

/// A Django user (`auth_user` or a custom user table with the same columns).
#[derive(Debug, sqlx::FromRow)]
pub struct DjangoUser {
    /// Its id (knox tokens point to it).
    pub id: i64,
    /// The login name.
    pub username: String,
    /// Django's `password` field: `<algorithm>$…`, or `!…` for none.
    pub password: String,
    /// `false`: disabled.
    pub is_active: bool,
    /// `date_joined`, as text.
    pub date_joined: Option<String>,
}

/// A django-rest-knox token row.
#[derive(Debug, sqlx::FromRow)]
pub struct KnoxRow {
    /// Lowercase hex of the token's hash.
    pub digest: String,
    /// The token's first characters.
    pub token_key: String,
    /// 4.1's salt (`None` since 4.2).
    pub salt: Option<String>,
    /// The owner.
    pub user_id: i64,
    /// As text.
    pub created: Option<String>,
    /// As text; `None` never expires.
    pub expiry: Option<String>,
}

/// A szurubooru user.
#[derive(Debug, sqlx::FromRow)]
pub struct SzuruUser {
    /// Its id.
    pub id: i64,
    /// The login name.
    pub name: String,
    /// The hash (hex, or a libsodium argon2id string).
    pub password_hash: String,
    /// The salt.
    pub password_salt: Option<String>,
    /// 1, 2 or 3.
    pub password_revision: i64,
    /// `administrator`, `regular`, ...
    pub rank: String,
    /// As text.
    pub creation_time: Option<String>,
}

/// A szurubooru UserToken (the token itself in plain text: a UUID).
#[derive(Debug, sqlx::FromRow)]
pub struct SzuruToken {
    /// The owner.
    pub user_id: i64,
    /// The token.
    pub token: String,
    /// The user's note.
    pub note: Option<String>,
    /// `false`: refused.
    pub enabled: bool,
    /// As text; `None` never expires.
    pub expiration_time: Option<String>,
    /// As text.
    pub creation_time: Option<String>,
    /// As text.
    pub last_usage_time: Option<String>,
}

/// A SQL identifier given on the command line (`--user-table`): letters, digits, `_`.
fn identifier(name: &str) -> StoreResult<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok { Ok(name) } else { Err(StoreError::Config(format!("{name:?} is not a table name (letters, digits and _)"))) }
}

impl Source {
    /// Open `url` (`sqlite://…` or `postgres://…`) read-only.
    pub async fn open(url: &DatabaseUrl) -> StoreResult<Self> {
        let unusable = |e: &dyn std::fmt::Display| StoreError::Config(format!("cannot open {url}: {e}"));
        let pool = match url.scheme().as_str() {
            "sqlite" => {
                let path = url.expose().split_once(':').map_or("", |(_, rest)| rest.trim_start_matches("//"));
                if !std::path::Path::new(path.split('?').next().unwrap_or_default()).is_file() {
                    return Err(StoreError::Config(format!("{url}: no such database file")));
                }
                let opts = SqliteConnectOptions::from_str(url.expose()).map_err(|e| unusable(&e))?.read_only(true);
                Pool::Sqlite(
                    SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| unusable(&e))?,
                )
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url.expose())
                    .map_err(|e| unusable(&e))?
                    .application_name("tokenauth-import")
                    // why: the source is only read; and times read as text come out in UTC.
                    .options([("default_transaction_read_only", "on"), ("TimeZone", "UTC")]);
                Pool::Postgres(
                    PgPoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| unusable(&e))?,
                    Statements::Prepared,
                )
            }
            other => {
                return Err(StoreError::Config(format!(
                    "unsupported source URL scheme {other:?} in {url}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE"
                )));
            }
        };
        Ok(Source { pool })
    }

    /// Whether `SELECT <columns> FROM <table>` works: the table and columns exist. `table`
    /// must be an identifier (or `"user"`, szurubooru's, quoted).
    pub async fn has(&self, table: &str, columns: &str) -> bool {
        if table != "\"user\"" && identifier(table).is_err() {
            return false;
        }
        let sql = format!("SELECT {columns} FROM {table} WHERE 1 = 0");
        self.pool.execute(&sql, &[]).await.is_ok()
    }

    /// The users of a Django user table.
    pub async fn django_users(&self, table: &str) -> StoreResult<Vec<DjangoUser>> {
        let table = identifier(table)?;
        let sql = format!(
            "SELECT CAST(id AS BIGINT) AS id, username, password, is_active, CAST(date_joined AS TEXT) AS date_joined \
             FROM {table} ORDER BY id"
        );
        self.pool.all(&sql, &[]).await
    }

    /// The knox tokens (`with_salt`: 4.1's table has a `salt` column).
    pub async fn knox_tokens(&self, with_salt: bool) -> StoreResult<Vec<KnoxRow>> {
        let salt = if with_salt { "salt" } else { "NULL AS salt" };
        let sql = format!(
            "SELECT digest, token_key, {salt}, CAST(user_id AS BIGINT) AS user_id, CAST(created AS TEXT) AS created, \
             CAST(expiry AS TEXT) AS expiry FROM knox_authtoken ORDER BY created, digest"
        );
        self.pool.all(&sql, &[]).await
    }

    /// szurubooru's users.
    pub async fn szurubooru_users(&self) -> StoreResult<Vec<SzuruUser>> {
        let sql = "SELECT CAST(id AS BIGINT) AS id, name, password_hash, password_salt, CAST(password_revision AS BIGINT) AS password_revision, \
                   rank, CAST(creation_time AS TEXT) AS creation_time FROM \"user\" ORDER BY id";
        self.pool.all(sql, &[]).await
    }

    /// szurubooru's UserTokens.
    pub async fn szurubooru_tokens(&self) -> StoreResult<Vec<SzuruToken>> {
        let sql = "SELECT CAST(user_id AS BIGINT) AS user_id, token, note, enabled, CAST(expiration_time AS TEXT) AS expiration_time, \
                   CAST(creation_time AS TEXT) AS creation_time, CAST(last_usage_time AS TEXT) AS last_usage_time \
                   FROM user_token ORDER BY id";
        self.pool.all(sql, &[]).await
    }
}

/// A time read as text from a legacy database: `YYYY-MM-DD HH:MM:SS[.ffffff]` (naive: UTC),
/// with an optional `+HH[:MM]` offset, or RFC 3339.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    let (naive, offset) = split_offset(text);
    let naive = naive.replacen('T', " ", 1);
    let with_fraction = format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    let without = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t =
        PrimitiveDateTime::parse(&naive, with_fraction).or_else(|_| PrimitiveDateTime::parse(&naive, without)).ok()?;
    Some(t.assume_offset(offset?).to_offset(UtcOffset::UTC))
}

/// `2024-01-01 10:00:00+02` → (`2024-01-01 10:00:00`, +02:00); no offset: UTC.
fn split_offset(text: &str) -> (&str, Option<UtcOffset>) {
    // The offset starts at the last `+` or `-` after the time (the date's dashes come first).
    let Some(time_start) = text.find([' ', 'T']) else { return (text, Some(UtcOffset::UTC)) };
    let Some(at) = text[time_start..].rfind(['+', '-']).map(|i| i + time_start) else {
        return (text.trim_end_matches('Z'), Some(UtcOffset::UTC));
    };
    let (naive, offset) = text.split_at(at);
    let sign: i8 = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(char::is_ascii_digit).collect();
    let hours: i8 = digits.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
    let minutes: i8 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
    (naive, UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn legacy_times_read_as_utc() {
        assert_eq!(parse_time("2024-01-02 03:04:05"), Some(datetime!(2024-01-02 03:04:05 UTC)));
        assert_eq!(parse_time("2024-01-02 03:04:05.123456"), Some(datetime!(2024-01-02 03:04:05.123456 UTC)));
        assert_eq!(parse_time("2024-01-02 03:04:05.5+00"), Some(datetime!(2024-01-02 03:04:05.5 UTC)));
        assert_eq!(parse_time("2024-01-02 05:04:05+02"), Some(datetime!(2024-01-02 03:04:05 UTC)));
        assert_eq!(parse_time("2024-01-02 01:34:05-01:30"), Some(datetime!(2024-01-02 03:04:05 UTC)));
        assert_eq!(parse_time("2024-01-02T03:04:05Z"), Some(datetime!(2024-01-02 03:04:05 UTC)));
        assert_eq!(parse_time("not a time"), None);
        assert!(matches!(identifier("core_user"), Ok("core_user")));
        for bad in ["", "user;drop", "1x", "a b", "\"user\""] {
            assert!(identifier(bad).is_err(), "{bad}");
        }
    }
}
