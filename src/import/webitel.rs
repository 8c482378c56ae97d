//! The Webitel v3 engine: its session tokens (a mongoexport of the `authToken` collection,
//! JSON Lines), its users' SIP HA1 hashes (a CSV export of the directory: `user@domain,ha1`,
//! optionally a third column with the account role), and the key file its JWTs are signed
//! with. Tokens keep their key (so `/logout` with the old `X-Key` works) and expiry; the key
//! becomes a verify-only key, so old JWTs verify until they expire, while new logins get
//! tokenauth's own.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Batch, Credential, Record, Refusal, RoleRecord, Secret, TokenRecord};
use crate::model::{Acl, DialectId, PasswordScheme, PlainToken, PrincipalKind, TokenKind};

/// Where to read.
#[derive(Debug, Clone)]
pub struct WebitelSource {
    /// mongoexport JSON Lines of `authToken`.
    pub tokens: PathBuf,
    /// CSV: `user@domain,ha1[,role]`.
    pub directory: PathBuf,
    /// `application:auth:tokenSecretKey`: the file whose bytes sign the JWTs.
    pub jwt_key_file: PathBuf,
}

/// The name the old key is kept under.
const KEY_NAME: &str = "webitel";

/// Webitel's role codes (`ACCOUNT_ROLE.getRoleFromName`), for roles the tokens do not
/// describe: root 2, admin 1, user 0, any other -1.
fn role_code(name: &str) -> i64 {
    match name {
        "root" => 2,
        "admin" => 1,
        "user" => 0,
        _ => -1,
    }
}

/// A whole number as mongoexport writes it: plain (relaxed mode: `1.733512345678E+12` for a
/// double), or canonical `{"$numberLong": "…"}`, `{"$numberInt": "…"}`, `{"$numberDouble": "…"}`.
/// why doubles: the engine's `expires` is a JavaScript number past 32 bits, which the Node
/// driver stores as a BSON double.
fn number(v: &Value) -> Option<i64> {
    let whole = |f: f64| (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64);
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole)),
        Value::Object(o) if o.len() == 1 => match o.iter().next()? {
            (k, Value::String(s)) if k == "$numberLong" || k == "$numberInt" => s.parse().ok(),
            (k, Value::String(s)) if k == "$numberDouble" => s.parse::<f64>().ok().and_then(whole),
            _ => None,
        },
        _ => None,
    }
}

/// Read the directory, the tokens and the key.
pub async fn read(from: &WebitelSource) -> anyhow::Result<Batch> {
    let key = std::fs::read(&from.jwt_key_file)
        .with_context(|| format!("cannot read the JWT key file {}", from.jwt_key_file.display()))?;
    anyhow::ensure!(!key.is_empty(), "the JWT key file {} is empty", from.jwt_key_file.display());
    let directory = std::fs::read_to_string(&from.directory)
        .with_context(|| format!("cannot read the directory {}", from.directory.display()))?;
    let tokens = std::fs::read_to_string(&from.tokens)
        .with_context(|| format!("cannot read the tokens {}", from.tokens.display()))?;
    let mut batch = Batch {
        source: format!("webitel from {} and {}", from.tokens.display(), from.directory.display()),
        jwt_keys: vec![(KEY_NAME.to_owned(), key.clone())],
        ..Batch::default()
    };
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (row, line) in directory.lines().enumerate() {
        let line_no = row + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (name, ha1, role) = match fields[..] {
            [name, ha1] => (name, ha1, None),
            [name, ha1, role] => (name, ha1, Some(role).filter(|r| !r.is_empty())),
            _ => {
                batch.refused.push(Refusal {
                    line: line_no,
                    name: fields.first().copied().unwrap_or_default().to_owned(),
                    why: "expected user@domain,ha1 (and optionally a role)".into(),
                });
                continue;
            }
        };
        by_name.insert(name.to_owned(), batch.records.len());
        batch.records.push(Record {
            line: line_no,
            kind: PrincipalKind::User,
            name: name.to_owned(),
            password: Some(Credential { scheme: PasswordScheme::WebitelHa1, encoded: ha1.to_owned() }),
            enabled: true,
            created_at: None,
            role: role.map(str::to_owned),
            tokens: Vec::new(),
        });
    }
    // Roles as the tokens describe them (code and ACL), the newest token's winning.
    let mut roles: BTreeMap<String, (i64, RoleRecord)> = BTreeMap::new();
    let decoding = jsonwebtoken::DecodingKey::from_secret(&key);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // why: Webitel's exp is in milliseconds; the document's `expires` decides here.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    for (row, line) in tokens.lines().enumerate() {
        let line_no = row + 1;
        if line.trim().is_empty() {
            continue;
        }
        let refuse = |name: &str, why: &str| Refusal { line: line_no, name: name.to_owned(), why: why.to_owned() };
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            batch.refused.push(refuse("", "not a JSON document"));
            continue;
        };
        let text = |field: &str| doc.get(field).and_then(Value::as_str).map(str::to_owned);
        let (Some(username), Some(token), Some(key_id)) = (text("username"), text("token"), text("key")) else {
            batch.refused.push(refuse(&text("username").unwrap_or_default(), "a token without username, token or key"));
            continue;
        };
        let Ok(id) = Uuid::parse_str(&key_id) else {
            batch.refused.push(refuse(&username, "its key is not a UUID"));
            continue;
        };
        let Some(expires) = doc.get("expires").and_then(number) else {
            batch.refused.push(refuse(&username, "no expires (epoch milliseconds)"));
            continue;
        };
        let Some(expires_at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires) * 1_000_000).ok() else {
            batch.refused.push(refuse(&username, "expires is out of range"));
            continue;
        };
        // why: only tokens the old system would still accept are taken over.
        if jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_err() {
            batch.refused.push(refuse(&username, "its JWT is not signed by the given key file"));
            continue;
        }
        if let Some(name) = text("roleName") {
            let code = doc.get("role").and_then(number).unwrap_or_else(|| role_code(&name));
            let acl: Acl = match doc.get("acl") {
                None | Some(Value::Null) => Acl::new(),
                Some(acl) => match serde_json::from_value(acl.clone()) {
                    Ok(acl) => acl,
                    Err(_) => {
                        batch.refused.push(refuse(&username, "its acl is not an object of resource to permissions"));
                        continue;
                    }
                },
            };
            let newer = roles.get(&name).is_none_or(|(seen, _)| *seen <= expires);
            if newer {
                roles.insert(name.clone(), (expires, RoleRecord { name: name.clone(), code, acl }));
            }
        }
        let owner = match by_name.get(&username) {
            Some(&i) => i,
            None => {
                // A token of an account the directory does not list (Webitel's root, or an
                // account removed since): it keeps working; there is no password to log in with.
                by_name.insert(username.clone(), batch.records.len());
                batch.records.push(Record {
                    line: line_no,
                    kind: PrincipalKind::User,
                    name: username.clone(),
                    password: None,
                    enabled: true,
                    created_at: None,
                    role: None,
                    tokens: Vec::new(),
                });
                batch.records.len() - 1
            }
        };
        let record = &mut batch.records[owner];
        if record.role.is_none() {
            record.role = text("roleName");
        }
        record.tokens.push(TokenRecord {
            line: line_no,
            dialect: DialectId::Webitel,
            secret: Secret::Plain(PlainToken::new(token)),
            id: Some(id),
            kind: TokenKind::Session,
            note: None,
            created_at: None,
            expires_at: Some(expires_at),
            last_used_at: None,
            enabled: true,
        });
    }
    // Roles the directory names but no token describes: Webitel's code, an empty ACL.
    for record in &batch.records {
        if let Some(role) = &record.role
            && !roles.contains_key(role)
        {
            roles.insert(
                role.clone(),
                (i64::MIN, RoleRecord { name: role.clone(), code: role_code(role), acl: Acl::new() }),
            );
        }
    }
    batch.roles = roles.into_values().map(|(_, r)| r).collect();
    Ok(batch)
}
