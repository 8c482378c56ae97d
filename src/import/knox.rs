//! django-rest-knox (Papermerge 2.1 pins knox 4.2.0): Django's users, with their password
//! hashes as they are, and every knox token, whose plain text nobody has: its digest is kept
//! and recomputed at the token's first check.

use std::collections::HashMap;

use anyhow::{Context as _, bail};

use super::{Batch, Credential, Record, Refusal, Secret, TokenRecord};
use crate::config::DatabaseUrl;
use crate::model::{DialectId, KnoxHash, KnoxVersion, PasswordScheme, PrincipalKind, TokenKind};
use crate::store::source::{Source, parse_time};

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct KnoxSource {
    /// The Django database.
    pub from: DatabaseUrl,
    /// The user table (`auth_user`, or a custom one such as Papermerge's `core_user`).
    pub user_table: String,
    /// The knox version; `None`: told from the table (a `salt` column is 4.1, keys of 8
    /// characters 4.2, of 15 characters 5.x).
    pub version: Option<KnoxVersion>,
    /// `SECURE_HASH_ALGORITHM` (knox's default: SHA-512).
    pub hash: KnoxHash,
    /// knox 5's `TOKEN_PREFIX`, which must be tokenauth's `knox.token_prefix` too.
    pub token_prefix: String,
}

/// Read the users and tokens.
pub async fn read(from: &KnoxSource) -> anyhow::Result<Batch> {
    let db = Source::open(&from.from).await?;
    if !db.has(&from.user_table, "id, username, password, is_active, date_joined").await {
        bail!(
            "{}: no Django user table {:?} (with id, username, password, is_active, date_joined): name it with --user-table",
            from.from,
            from.user_table
        );
    }
    if !db.has("knox_authtoken", "digest, token_key, user_id, created, expiry").await {
        bail!("{}: no knox_authtoken table: is django-rest-knox installed in this database?", from.from);
    }
    let with_salt = db.has("knox_authtoken", "salt").await;
    let users = db.django_users(&from.user_table).await.context("reading the users")?;
    let tokens = db.knox_tokens(with_salt).await.context("reading the knox tokens")?;
    let version = match from.version {
        Some(KnoxVersion::V4_1) if !with_salt => bail!("knox 4.1 tables have a salt column; this one has none"),
        Some(v) if v != KnoxVersion::V4_1 && with_salt => {
            bail!("this knox table has a salt column: it is knox 4.1's (--knox-version 4.1), not {v:?}")
        }
        Some(v) => v,
        None if with_salt => KnoxVersion::V4_1,
        None => {
            let lengths: std::collections::BTreeSet<usize> =
                tokens.iter().map(|t| t.token_key.chars().count()).collect();
            match lengths.iter().copied().collect::<Vec<_>>()[..] {
                [] | [8] => KnoxVersion::V4_2,
                [15] => KnoxVersion::V5,
                _ => {
                    bail!("cannot tell the knox version from token keys of {lengths:?} characters: give --knox-version")
                }
            }
        }
    };
    if !from.token_prefix.is_empty() && version != KnoxVersion::V5 {
        bail!("knox {} has no TOKEN_PREFIX (it came with 5.0): leave --token-prefix out", version_name(version));
    }
    let mut batch = Batch {
        source: format!("knox {} ({}) from {}", version_name(version), from.hash.name(), from.from),
        ..Batch::default()
    };
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    for (row, user) in users.into_iter().enumerate() {
        by_id.insert(user.id, batch.records.len());
        // why None for `!…` and empty: Django's unusable passwords; the tokens still work.
        let usable = !user.password.is_empty() && !user.password.starts_with('!');
        let password = usable.then_some(Credential { scheme: PasswordScheme::Django, encoded: user.password });
        batch.records.push(Record {
            line: row + 1,
            kind: PrincipalKind::User,
            name: user.username,
            password,
            enabled: user.is_active,
            created_at: user.date_joined.as_deref().and_then(parse_time),
            role: None,
            tokens: Vec::new(),
        });
    }
    for (row, token) in tokens.into_iter().enumerate() {
        let line = row + 1;
        let Some(owner) = batch.owner(&by_id, token.user_id, line) else { continue };
        let time = |t: &Option<String>, what: &str| -> Result<Option<time::OffsetDateTime>, String> {
            t.as_deref().map(|s| parse_time(s).ok_or_else(|| format!("unreadable {what} time {s:?}"))).transpose()
        };
        let (created, expiry) = match (time(&token.created, "created"), time(&token.expiry, "expiry")) {
            (Ok(c), Ok(e)) => (c, e),
            (Err(why), _) | (_, Err(why)) => {
                batch.refused.push(Refusal { line, name: batch.records[owner].name.clone(), why });
                continue;
            }
        };
        batch.records[owner].tokens.push(TokenRecord {
            line,
            dialect: DialectId::Knox,
            secret: Secret::Knox {
                version,
                hash: from.hash,
                key: token.token_key,
                digest: token.digest.to_ascii_lowercase(),
                salt: token.salt.map(|s| s.to_ascii_lowercase()),
            },
            id: None,
            kind: TokenKind::Session,
            note: None,
            created_at: created,
            expires_at: expiry,
            last_used_at: None,
            enabled: true,
        });
    }
    Ok(batch)
}

fn version_name(v: KnoxVersion) -> &'static str {
    match v {
        KnoxVersion::V4_1 => "4.1",
        KnoxVersion::V4_2 => "4.2",
        KnoxVersion::V5 => "5",
    }
}
