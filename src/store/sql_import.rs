//! The SQL of moving in: applying an import, and the legacy credentials' lookups.

use time::OffsetDateTime;
use uuid::Uuid;

use super::import::{ImportApplied, ImportBatch, PrincipalAction};
use super::rows::{LegacyTokenRow, acl_json};
use super::sql::{Pool, args};
use super::{StoreError, StoreResult};
use crate::model::{LegacyToken, PrincipalKind, TokenDigest, TokenHash};

const INSERT_ROLE: &str =
    "INSERT INTO roles (name, code, acl, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";
const INSERT_PRINCIPAL: &str = "INSERT INTO principals \
     (kind, name, password_hash, password_scheme, imported_credential, enabled, created_at, role_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT id FROM roles WHERE name = $8)) RETURNING id";
const UPDATE_PRINCIPAL: &str = "UPDATE principals SET password_hash = $2, password_scheme = $3, \
     imported_credential = $4, enabled = $5, role_id = COALESCE((SELECT id FROM roles WHERE name = $6), role_id) \
     WHERE id = $1";
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, principal_id, dialect, kind, digest, digest_scheme, legacy_key, \
     legacy_digest, legacy_salt, note, created_at, expires_at, last_used_at, enabled, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0) ON CONFLICT DO NOTHING";
const REMEMBER_TOKEN: &str =
    "INSERT INTO imported_tokens (id, imported_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
const FORGET_TOKEN: &str = "DELETE FROM imported_tokens WHERE id = $1";
const INSERT_KEY: &str =
    "INSERT INTO legacy_jwt_keys (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";

/// Apply `batch` in one transaction, committed only with `commit` (a dry run rolls it back).
pub(super) async fn apply(
    pool: &Pool,
    batch: &ImportBatch<'_>,
    now: OffsetDateTime,
    commit: bool,
) -> StoreResult<ImportApplied> {
    let mut done = ImportApplied::default();
    let mut tx = pool.begin().await?;
    for role in &batch.roles {
        let acl = acl_json(role.acl)?;
        done.roles_created += tx.execute(INSERT_ROLE, &args![role.name, role.code, &acl, now]).await?;
    }
    let mut ids = Vec::with_capacity(batch.principals.len());
    for p in &batch.principals {
        let id = match p.action {
            PrincipalAction::Create => {
                let values = args![
                    p.kind,
                    p.name.as_str(),
                    p.password_hash,
                    p.password_scheme.as_deref(),
                    p.imported_credential,
                    p.enabled,
                    p.created_at,
                    p.role
                ];
                let (id,): (i64,) = tx.one(INSERT_PRINCIPAL, &values).await?;
                done.principals_created += 1;
                id
            }
            PrincipalAction::Update(id) => {
                let values =
                    args![id, p.password_hash, p.password_scheme.as_deref(), p.imported_credential, p.enabled, p.role];
                if tx.execute(UPDATE_PRINCIPAL, &values).await? == 0 {
                    return Err(StoreError::Conflict(format!(
                        "{} {:?} was removed during the import",
                        p.kind,
                        p.name.as_str()
                    )));
                }
                done.principals_updated += 1;
                id
            }
            PrincipalAction::Keep(id) => id,
        };
        ids.push(id);
    }
    for (index, t) in batch.tokens.iter().enumerate() {
        let owner = *ids.get(t.owner).ok_or_else(|| StoreError::Other("an imported token without its owner".into()))?;
        let (key, digest, salt) = t.legacy.map_or((None, None, None), |(k, d, s)| (Some(k), Some(d), s));
        let scheme = t.digest_scheme.to_string();
        let values = args![
            t.id,
            owner,
            t.issuer,
            t.kind,
            &t.digest,
            scheme.as_str(),
            key,
            digest,
            salt,
            t.note,
            t.created_at,
            t.expires_at,
            t.last_used_at,
            t.enabled
        ];
        // why the record of ids first: a token imported before stays as it is now (revoked,
        // even swept); only a token never imported is written.
        if tx.execute(REMEMBER_TOKEN, &args![t.id, now]).await? == 0 {
            done.tokens_unchanged += 1;
            continue;
        }
        if tx.execute(INSERT_TOKEN, &values).await? == 0 {
            tx.execute(FORGET_TOKEN, &args![t.id]).await?;
            done.tokens_taken.push(index);
            continue;
        }
        done.tokens_created += 1;
    }
    for key in &batch.jwt_keys {
        done.keys_created += tx.execute(INSERT_KEY, &args![key.name, key.secret, key.created_at]).await?;
    }
    if commit {
        tx.commit().await?;
    }
    // why no explicit rollback: an uncommitted transaction is rolled back when dropped.
    Ok(done)
}

/// The fingerprints of imported credentials of principals of `kind`: `(id, name, fingerprint)`.
pub(super) async fn imported_credentials(pool: &Pool, kind: PrincipalKind) -> StoreResult<Vec<(i64, String, String)>> {
    let sql = "SELECT id, name, imported_credential FROM principals \
               WHERE kind = $1 AND imported_credential IS NOT NULL";
    pool.all(sql, &args![kind]).await
}

/// The secret of the legacy JWT key `name`, if one was imported.
pub(super) async fn legacy_jwt_key(pool: &Pool, name: &str) -> StoreResult<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> =
        pool.optional("SELECT secret FROM legacy_jwt_keys WHERE name = $1", &args![name]).await?;
    Ok(row.map(|(s,)| s))
}

/// Token rows with a legacy digest filed under `keys` (at most two are asked for).
pub(super) async fn legacy_tokens(pool: &Pool, keys: &[&str]) -> StoreResult<Vec<LegacyToken>> {
    let (Some(first), second) = (keys.first(), keys.get(1)) else { return Ok(Vec::new()) };
    let sql = "SELECT id, digest_scheme, legacy_digest, legacy_salt FROM tokens \
               WHERE legacy_key IS NOT NULL AND (legacy_key = $1 OR legacy_key = $2)";
    let rows: Vec<LegacyTokenRow> = pool.all(sql, &args![*first, *second.unwrap_or(first)]).await?;
    rows.into_iter().map(LegacyToken::try_from).collect()
}

/// Rewrite a legacy token row to its SHA-256 `digest`, if it still has `scheme`.
pub(super) async fn adopt(pool: &Pool, id: Uuid, scheme: &TokenDigest, digest: &TokenHash) -> StoreResult<bool> {
    let sql = "UPDATE tokens SET digest = $3, digest_scheme = 'sha256', legacy_key = NULL, legacy_digest = NULL, \
               legacy_salt = NULL WHERE id = $1 AND digest_scheme = $2";
    let scheme = scheme.to_string();
    Ok(pool.execute(sql, &args![id, scheme.as_str(), digest]).await? > 0)
}

/// Whether any token row still has a legacy digest.
pub(super) async fn has_legacy_tokens(pool: &Pool) -> StoreResult<bool> {
    // why count over a LIMIT 1: one row read through the partial index at most, and an integer
    // both engines decode alike.
    // why not revoked ones: a legacy token revoked (by an operator retiring tokens nobody
    // presents any more) needs no lookup; the sweep deletes it.
    let sql =
        "SELECT count(*) FROM (SELECT 1 FROM tokens WHERE legacy_key IS NOT NULL AND revoked_at IS NULL LIMIT 1) AS l";
    let (found,): (i64,) = pool.optional(sql, &[]).await?.unwrap_or((0,));
    Ok(found > 0)
}

/// The legacy (kid-less, verify-only) JWT keys.
pub(super) async fn legacy_jwt_keys(pool: &Pool) -> StoreResult<Vec<Vec<u8>>> {
    let rows: Vec<(Vec<u8>,)> = pool.all("SELECT secret FROM legacy_jwt_keys ORDER BY name", &[]).await?;
    Ok(rows.into_iter().map(|(s,)| s).collect())
}
