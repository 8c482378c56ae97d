//! szurubooru (the UserToken API Atheneum's usertoken dialect comes from): its users, with
//! their password revisions 1 to 3, and their UserTokens, whose plain text szurubooru stores: they
//! are digested here and never stored.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

use super::{Batch, Credential, Record, Refusal, Secret, TokenRecord};
use crate::config::DatabaseUrl;
use crate::model::{DialectId, PasswordScheme, PlainToken, PrincipalKind, TokenKind};
use crate::store::source::{Source, parse_time};

/// Where to read, and szurubooru's `secret` (the pepper of revisions 2 and 3).
#[derive(Debug, Clone)]
pub struct SzurubooruSource {
    /// szurubooru's database.
    pub from: DatabaseUrl,
    /// The name its pepper has in `passwords.peppers`.
    pub pepper: String,
    /// Its value, from `--secret-file` or `--secret-env`: checked against the configured one.
    pub secret: SecretString,
}

/// Read the users and their tokens.
pub async fn read(from: &SzurubooruSource) -> anyhow::Result<Batch> {
    let db = Source::open(&from.from).await?;
    if !db.has("\"user\"", "id, name, password_hash, password_salt, password_revision, rank").await {
        bail!("{}: no szurubooru user table", from.from);
    }
    if !db.has("user_token", "user_id, token, note, enabled, expiration_time, creation_time").await {
        bail!("{}: no szurubooru user_token table", from.from);
    }
    let users = db.szurubooru_users().await.context("reading the users")?;
    let tokens = db.szurubooru_tokens().await.context("reading the user tokens")?;
    let mut batch = Batch { source: format!("szurubooru from {}", from.from), ..Batch::default() };
    batch.peppers_given.push((from.pepper.clone(), from.secret.clone()));
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    for (row, user) in users.into_iter().enumerate() {
        let line = row + 1;
        let revision = match user.password_revision {
            1 => 1,
            2 => 2,
            3 => 3,
            other => {
                batch.refused.push(Refusal {
                    line,
                    name: user.name,
                    why: format!("password revision {other} (1, 2 or 3)"),
                });
                continue;
            }
        };
        let pepper = (revision > 1).then(|| from.pepper.clone());
        let salt = URL_SAFE_NO_PAD.encode(user.password_salt.unwrap_or_default());
        by_id.insert(user.id, batch.records.len());
        batch.records.push(Record {
            line,
            kind: PrincipalKind::User,
            name: user.name,
            password: Some(Credential {
                scheme: PasswordScheme::Szurubooru { revision, pepper },
                encoded: format!("{salt}${}", user.password_hash),
            }),
            enabled: true,
            created_at: user.creation_time.as_deref().and_then(parse_time),
            role: None,
            tokens: Vec::new(),
        });
    }
    for (row, token) in tokens.into_iter().enumerate() {
        let line = row + 1;
        let Some(owner) = batch.owner(&by_id, token.user_id, line) else { continue };
        let time = |t: &Option<String>| t.as_deref().and_then(parse_time);
        batch.records[owner].tokens.push(TokenRecord {
            line,
            dialect: DialectId::Usertoken,
            // why as stored: clients present it as szurubooru wrote it (`str(uuid4())`); one
            // the usertoken dialect would not accept is refused by the import's checks.
            secret: Secret::Plain(PlainToken::new(token.token)),
            id: None,
            kind: TokenKind::Session,
            note: token.note.filter(|n| !n.is_empty()),
            created_at: time(&token.creation_time),
            expires_at: time(&token.expiration_time),
            last_used_at: time(&token.last_usage_time),
            enabled: token.enabled,
        });
    }
    Ok(batch)
}
