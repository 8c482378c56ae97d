//! From what a source read to what is written: checks, conflicts, the batch, the report.

use std::collections::{HashMap, HashSet};

use secrecy::ExposeSecret as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::report::{Refusal, Report};
use super::{Batch, Credential, OnConflict, Options, Record, Secret, TokenRecord};
use crate::error::Error;
use crate::model::{Issuer, PasswordScheme, Principal, PrincipalKind, TokenDigest, TokenHash, Username};
use crate::store::{ImportBatch, ImportJwtKey, ImportPrincipal, ImportRole, ImportToken, PrincipalAction};
use crate::token::legacy;
use crate::token::secret::TokenFormat;
use crate::token::{Policies, TokenService};

/// A principal planned: what it becomes, and its checked name and credential.
struct Planned<'r> {
    record: &'r Record,
    name: Username,
    credential: Credential,
    fingerprint: String,
    action: PrincipalAction,
}

/// Import `batch` through `tokens` (whose configuration gives the dialects' token formats and
/// the peppers), as `options` say. `Err` only for a failure of the database; what the import
/// refuses is in the report (`Report::ok`).
pub async fn run(tokens: &TokenService, policies: &Policies, batch: Batch, options: Options) -> Result<Report, Error> {
    let mut report = Report::new(batch.source.clone(), options.dry_run);
    report.refused.extend(batch.refused.iter().cloned());
    report.skipped.extend(batch.skipped.iter().cloned());
    let now = tokens.now();
    for (name, given) in &batch.peppers_given {
        let matches = tokens.pepper(name).is_some_and(|configured| {
            bool::from(configured.expose_secret().as_bytes().ct_eq(given.expose_secret().as_bytes()))
        });
        if !matches && batch.records.iter().any(|r| r.password.as_ref().and_then(|c| c.scheme.pepper()) == Some(name)) {
            report.refused.push(Refusal {
                line: 0,
                name: name.clone(),
                why: format!(
                    "the secret given is not passwords.peppers.{name} (TOKENAUTH_PASSWORDS__PEPPERS__{}): \
                     configure that pepper to the old system's secret first, as logins will need it",
                    name.to_uppercase()
                ),
            });
        }
    }

    // A key imported before under the same name must be this one: the tokens are checked
    // against the key given, and only one key has the name.
    for (name, secret) in &batch.jwt_keys {
        if let Some(stored) = tokens.legacy_jwt_key(name).await?
            && !bool::from(stored.as_slice().ct_eq(secret.as_slice()))
        {
            report.refused.push(Refusal {
                line: 0,
                name: name.clone(),
                why: "another key of this name was imported before: its tokens would fail with this one".into(),
            });
        }
    }
    let extra_keys: Vec<&[u8]> = batch.jwt_keys.iter().map(|(_, k)| k.as_slice()).collect();

    // Every record checked first: nothing is written unless all pass.
    let mut roles: HashSet<String> = tokens.list_roles().await?.into_iter().map(|r| r.role.name).collect();
    roles.extend(batch.roles.iter().map(|r| r.name.clone()));
    let mut seen: HashSet<(PrincipalKind, &str)> = HashSet::new();
    let mut checked: Vec<(&Record, Username, Credential)> = Vec::new();
    for record in &batch.records {
        let refuse = |why: String| Refusal { line: record.line, name: record.name.clone(), why };
        let name = match Username::parse(&record.name) {
            Ok(name) => name,
            Err(why) => {
                report.refused.push(refuse(format!("invalid name: {why}")));
                continue;
            }
        };
        if !seen.insert((record.kind, record.name.as_str())) {
            report.refused.push(refuse(format!("a second {} of this name", record.kind)));
            continue;
        }
        // why Unusable for Django's `!…`: such an account must cost a dummy verification at
        // login, as an unknown name does, not an instant refusal.
        let credential = match record.password.clone() {
            Some(c) if c.scheme == PasswordScheme::Django && (c.encoded.is_empty() || c.encoded.starts_with('!')) => {
                None
            }
            other => other,
        }
        .unwrap_or(Credential { scheme: PasswordScheme::Unusable, encoded: String::new() });
        if let Err(e) = legacy::password::check(&credential.scheme, &credential.encoded) {
            report.refused.push(refuse(e.to_string()));
            continue;
        }
        if let Some(pepper) = credential.scheme.pepper()
            && !is_pepper_name(pepper)
        {
            report.refused.push(refuse(format!(
                "pepper names are lower-case letters, digits and _ (so TOKENAUTH_PASSWORDS__PEPPERS__<NAME> can spell them), not {pepper:?}"
            )));
            continue;
        }
        if let Some(pepper) = credential.scheme.pepper()
            && tokens.pepper(pepper).is_none()
        {
            report.refused.push(refuse(format!(
                "{} needs the pepper {pepper:?}: configure passwords.peppers.{pepper} \
                 (TOKENAUTH_PASSWORDS__PEPPERS__{}) first, as logins will need it",
                credential.scheme,
                pepper.to_uppercase()
            )));
            continue;
        }
        if let Some(role) = record.role.as_deref().filter(|r| !roles.contains(*r)) {
            report.refused.push(refuse(format!("no role {role:?}: add it first (tokenauth role add)")));
            continue;
        }
        for token in &record.tokens {
            // why: resellers log in through the dialer only; no other dialect would accept them.
            if record.kind == PrincipalKind::Reseller && token.dialect != crate::model::DialectId::Dialer {
                report.refused.push(Refusal {
                    line: token.line,
                    name: record.name.clone(),
                    why: format!("a {} token of a reseller: resellers have dialer tokens only", token.dialect),
                });
                continue;
            }
            if let Err(why) = check_token(policies, token) {
                report.refused.push(Refusal { line: token.line, name: record.name.clone(), why });
            } else if let Secret::Plain(plain) = &token.secret
                && matches!(policies.get(token.dialect).format, TokenFormat::Jwt(_))
                && !tokens.jwt_verifies(plain.expose(), &extra_keys)
            {
                // why: a JWT no key here verifies would be refused at every check.
                report.refused.push(Refusal {
                    line: token.line,
                    name: record.name.clone(),
                    why: format!(
                        "a {} JWT that no known key verifies (import its system's key with it)",
                        token.dialect
                    ),
                });
            }
        }
        checked.push((record, name, credential));
    }

    // What each name means here: new, the same account again, or a conflict.
    let mut existing: HashMap<(PrincipalKind, String), Principal> = HashMap::new();
    let mut fingerprints: HashMap<i64, String> = HashMap::new();
    for kind in [PrincipalKind::User, PrincipalKind::Reseller] {
        for p in tokens.list_principals(kind).await? {
            existing.insert((kind, p.name.clone()), p);
        }
        fingerprints.extend(tokens.imported_credentials(kind).await?.into_iter().map(|(id, _, fp)| (id, fp)));
    }
    let mut planned: Vec<Planned<'_>> = Vec::new();
    for (record, name, credential) in checked {
        let fingerprint = fingerprint(&credential);
        let action = match existing.get(&(record.kind, record.name.clone())) {
            None => PrincipalAction::Create,
            // why `migrated` too: an account imported before and logged in since has moved on;
            // its password lives here now, and later imports leave it alone.
            Some(p)
                if fingerprints.get(&p.id).is_some_and(|f| *f == fingerprint || f == MIGRATED)
                    || (p.password_scheme == credential.scheme && p.password_hash == credential.encoded) =>
            {
                PrincipalAction::Keep(p.id)
            }
            Some(p) => match options.on_conflict {
                OnConflict::Update => PrincipalAction::Update(p.id),
                OnConflict::Skip => {
                    report.skipped.push(Refusal {
                        line: record.line,
                        name: record.name.clone(),
                        why: format!("{} exists with another password: kept, with none of these tokens", record.kind),
                    });
                    report.principals.skipped += 1;
                    report.tokens.skipped += record.tokens.len() as u64;
                    continue;
                }
                OnConflict::Fail => {
                    report.conflicts.push(Refusal {
                        line: record.line,
                        name: record.name.clone(),
                        why: format!(
                            "{} exists with another password (--on-conflict skip keeps it, update replaces it)",
                            record.kind
                        ),
                    });
                    continue;
                }
            },
        };
        if let PrincipalAction::Keep(_) = action {
            report.principals.unchanged += 1;
        }
        planned.push(Planned { record, name, credential, fingerprint, action });
    }
    if !report.ok() {
        return Ok(report);
    }

    // The batch, borrowing from the plan.
    let roles: Vec<ImportRole<'_>> =
        batch.roles.iter().map(|r| ImportRole { name: &r.name, code: r.code, acl: &r.acl }).collect();
    let mut principals = Vec::with_capacity(planned.len());
    let mut legacy_parts: Vec<(usize, &TokenRecord, Uuid, TokenHash, TokenDigest)> = Vec::new();
    for (index, p) in planned.iter().enumerate() {
        principals.push(ImportPrincipal {
            action: p.action,
            kind: p.record.kind,
            name: &p.name,
            password_hash: &p.credential.encoded,
            password_scheme: p.credential.scheme.stored(),
            imported_credential: &p.fingerprint,
            enabled: p.record.enabled,
            created_at: p.record.created_at.unwrap_or(now),
            role: p.record.role.as_deref(),
        });
        for token in &p.record.tokens {
            if token.expires_at.is_some_and(|at| at <= now) {
                report.tokens.skipped += 1;
                report.skipped.push(Refusal {
                    line: token.line,
                    name: p.record.name.clone(),
                    why: format!("a {} token that has expired", token.dialect),
                });
                continue;
            }
            let (digest, scheme) = digest_of(&token.secret);
            let id = token.id.unwrap_or_else(|| derived_id(&digest));
            legacy_parts.push((index, token, id, digest, scheme));
        }
    }
    let import_tokens: Vec<ImportToken<'_>> = legacy_parts
        .iter()
        .map(|(owner, token, id, digest, scheme)| ImportToken {
            owner: *owner,
            id: *id,
            issuer: Issuer::Dialect(token.dialect),
            kind: token.kind,
            digest: *digest,
            digest_scheme: scheme.clone(),
            legacy: match &token.secret {
                Secret::Knox { key, digest, salt, .. } => Some((key.as_str(), digest.as_str(), salt.as_deref())),
                _ => None,
            },
            note: token.note.as_deref(),
            created_at: token.created_at.unwrap_or(now),
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            enabled: token.enabled,
        })
        .collect();
    let jwt_keys: Vec<ImportJwtKey<'_>> =
        batch.jwt_keys.iter().map(|(name, secret)| ImportJwtKey { name, secret, created_at: now }).collect();
    let import = ImportBatch { roles, principals, tokens: import_tokens, jwt_keys };
    let applied = tokens.apply_import(&import, !options.dry_run).await?;
    report.written = !options.dry_run;
    report.principals.created = applied.principals_created;
    report.principals.updated = applied.principals_updated;
    report.tokens.created = applied.tokens_created;
    report.tokens.unchanged = applied.tokens_unchanged;
    for index in &applied.tokens_taken {
        let (owner, token, ..) = legacy_parts[*index];
        report.tokens.skipped += 1;
        report.skipped.push(Refusal {
            line: token.line,
            name: planned[owner].record.name.clone(),
            why: format!("a {} token whose id or digest another token row has already", token.dialect),
        });
    }
    report.roles_created = applied.roles_created;
    report.keys_created = applied.keys_created;
    Ok(report)
}

/// The fingerprint of an account imported and migrated since (see the store).
const MIGRATED: &str = "migrated";

/// A pepper name as the configuration can hold it (figment lowercases environment keys).
fn is_pepper_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether a token could ever be accepted: its dialect's shape, or a well-formed digest.
fn check_token(policies: &Policies, token: &TokenRecord) -> Result<(), String> {
    let format = &policies.get(token.dialect).format;
    match &token.secret {
        Secret::Plain(plain) if !format.accepts(plain.expose()) => Err(format!(
            "a token the {} dialect would never accept (its shape, or the configured knox.token_prefix)",
            token.dialect
        )),
        Secret::Knox { version, hash, key, digest, salt } => {
            let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if token.dialect != crate::model::DialectId::Knox {
                Err("a knox digest for another dialect".into())
            } else if digest.len() != hash.hex_len() || !hex(digest) {
                Err(format!(
                    "a {} digest of {} characters (expected {} lowercase hex)",
                    hash.name(),
                    digest.len(),
                    hash.hex_len()
                ))
            } else if key.chars().count() != version.key_length() {
                Err(format!("a token key of {} characters (expected {})", key.chars().count(), version.key_length()))
            } else if !key_fits(format, key) {
                Err("a token key without the configured knox.token_prefix: its token would never be accepted".into())
            } else if matches!(version, crate::model::KnoxVersion::V4_1) != salt.is_some()
                || salt.as_deref().is_some_and(|s| s.is_empty() || s.len() % 2 != 0 || !hex(s))
            {
                Err("knox 4.1 digests need their hex salt, and only they have one".into())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Whether a knox `token_key` can begin a token of `format` (the configured prefix, then hex).
fn key_fits(format: &TokenFormat, key: &str) -> bool {
    match format {
        TokenFormat::PrefixedHex { prefix } => match key.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            None => prefix.starts_with(key),
        },
        _ => false,
    }
}

/// The row's `digest` and scheme: the token's SHA-256, or for a knox digest a placeholder that
/// no token hashes to (the SHA-256 of a string no token string can be).
fn digest_of(secret: &Secret) -> (TokenHash, TokenDigest) {
    match secret {
        Secret::Plain(plain) => (plain.digest(), TokenDigest::Sha256),
        Secret::Sha256(hash) => (*hash, TokenDigest::Sha256),
        Secret::Knox { version, hash, digest, .. } => {
            let scheme = TokenDigest::Knox { version: *version, hash: *hash };
            (TokenHash::of(&format!("tokenauth legacy placeholder\n{scheme}\n{digest}")), scheme)
        }
    }
}

/// A token's row id derived from its digest, so a second import of the same token finds the
/// first (and the id is never the token, as the usertoken dialect requires).
fn derived_id(digest: &TokenHash) -> Uuid {
    let bytes: [u8; 32] =
        Sha256::new().chain_update(b"tokenauth import id\n").chain_update(digest.as_bytes()).finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[..16]);
    uuid::Builder::from_random_bytes(id).into_uuid()
}

/// What identifies an imported credential across runs (its scheme and hash, digested).
fn fingerprint(credential: &Credential) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(credential.scheme.to_string())
            .chain_update(b"\n")
            .chain_update(&credential.encoded)
            .finalize(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_placeholders_are_stable_and_distinct() {
        let a = TokenHash::of("a");
        assert_eq!(derived_id(&a), derived_id(&a));
        assert_ne!(derived_id(&a), derived_id(&TokenHash::of("b")));
        assert_eq!(derived_id(&a).get_version_num(), 4);
        let knox = Secret::Knox {
            version: crate::model::KnoxVersion::V4_2,
            hash: crate::model::KnoxHash::Sha512,
            key: "abcdef01".into(),
            digest: "00".repeat(64),
            salt: None,
        };
        let (placeholder, scheme) = digest_of(&knox);
        assert_eq!(digest_of(&knox).0, placeholder);
        assert_ne!(placeholder, TokenHash::of(&"00".repeat(64)));
        assert_eq!(scheme.to_string(), "knox-4.2-sha512");
    }
}
