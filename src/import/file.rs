//! tokenauth's own import format, for any other system (Hello Hunter's dialer among them):
//! JSON Lines, one principal per line. The README documents it with an example; in short:
//!
//! ```text
//! {"kind": "user", "name": "alice", "enabled": true, "created": "2024-01-02T03:04:05Z", "role": "agent",
//!  "password": {"scheme": "bcrypt", "encoded": "$2b$12$…", "pepper": "devise"},
//!  "tokens": [{"dialect": "knox", "token": "…"},
//!             {"dialect": "usertoken", "sha256": "<64 hex>", "static": true, "note": "CI"},
//!             {"dialect": "knox", "knox": {"version": "4.2", "hash": "sha512", "key": "…", "digest": "…"}}]}
//! ```
//!
//! Password schemes: `argon2` (a PHC string), `bcrypt` (`$2a$`/`$2b$`/`$2y$`, optionally with a
//! named pepper appended to the password, as Devise does), `django`, `webitel-ha1`,
//! `szurubooru-1`/`-2`/`-3` (with `salt`; 2 and 3 with a pepper), or none (`null`: no usable
//! password; the tokens still work).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Batch, Credential, Record, Refusal, Secret, TokenRecord};
use crate::model::{DialectId, KnoxHash, KnoxVersion, PasswordScheme, PlainToken, PrincipalKind, TokenHash, TokenKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default = "user")]
    kind: String,
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<Password>,
    #[serde(default)]
    tokens: Vec<Token>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    scheme: String,
    encoded: String,
    #[serde(default)]
    pepper: Option<String>,
    #[serde(default)]
    salt: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    dialect: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    knox: Option<KnoxDigest>,
    #[serde(default, rename = "static")]
    static_token: bool,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    last_used: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnoxDigest {
    version: String,
    #[serde(default = "sha512")]
    hash: String,
    key: String,
    digest: String,
    #[serde(default)]
    salt: Option<String>,
}

fn user() -> String {
    "user".into()
}
fn yes() -> bool {
    true
}
fn sha512() -> String {
    "sha512".into()
}

fn time(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, String> {
    value
        .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| format!("{field} {v:?} is not an RFC 3339 time")))
        .transpose()
}

/// Read a file in the format above.
pub fn read(path: &std::path::Path) -> anyhow::Result<Batch> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parse(&text, &path.display().to_string()))
}

/// Parse the lines of a file (named `source` in the report).
pub fn parse(text: &str, source: &str) -> Batch {
    let mut batch = Batch { source: format!("file {source}"), ..Batch::default() };
    for (row, raw) in text.lines().enumerate() {
        let line = row + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_str(raw) {
            Ok(l) => l,
            Err(e) => {
                // why only the position: serde's message may quote a value, and values here
                // are password hashes and tokens.
                batch.refused.push(Refusal {
                    line,
                    name: String::new(),
                    why: format!("not a principal line (column {})", e.column()),
                });
                continue;
            }
        };
        let name = parsed.name.clone();
        match record(line, parsed) {
            Ok(r) => batch.records.push(r),
            Err(why) => batch.refused.push(Refusal { line, name, why }),
        }
    }
    batch
}

fn record(line: usize, l: Line) -> Result<Record, String> {
    let kind = PrincipalKind::parse(&l.kind).ok_or_else(|| format!("kind {:?}: user or reseller", l.kind))?;
    let password = l.password.map(password).transpose()?.flatten();
    let tokens = l.tokens.into_iter().map(|t| token(line, t)).collect::<Result<Vec<_>, _>>()?;
    Ok(Record {
        line,
        kind,
        name: l.name,
        password,
        enabled: l.enabled,
        created_at: time("created", l.created.as_deref())?,
        role: l.role,
        tokens,
    })
}

fn password(p: Password) -> Result<Option<Credential>, String> {
    let pepper = p.pepper.filter(|n| !n.is_empty());
    let scheme = match p.scheme.as_str() {
        "argon2" => PasswordScheme::Native,
        "django" => PasswordScheme::Django,
        "webitel-ha1" => PasswordScheme::WebitelHa1,
        "bcrypt" => PasswordScheme::Bcrypt { pepper: pepper.clone() },
        "unusable" => return Ok(None),
        s if s.starts_with("szurubooru-") => {
            let revision = match s {
                "szurubooru-1" => 1,
                "szurubooru-2" => 2,
                "szurubooru-3" => 3,
                _ => return Err(format!("password scheme {s:?} is not one tokenauth knows")),
            };
            let salt = p.salt.ok_or("szurubooru hashes need their salt")?;
            let encoded = format!("{}${}", URL_SAFE_NO_PAD.encode(salt), p.encoded);
            return Ok(Some(Credential { scheme: PasswordScheme::Szurubooru { revision, pepper }, encoded }));
        }
        other => return Err(format!("password scheme {other:?} is not one tokenauth knows")),
    };
    if pepper.is_some() && !matches!(scheme, PasswordScheme::Bcrypt { .. }) {
        return Err(format!("the {} scheme takes no pepper", p.scheme));
    }
    Ok(Some(Credential { scheme, encoded: p.encoded }))
}

fn token(line: usize, t: Token) -> Result<TokenRecord, String> {
    let dialect: DialectId = t.dialect.parse().map_err(|e| format!("{e}"))?;
    let secret = match (t.token, t.sha256, t.knox) {
        (Some(token), None, None) => Secret::Plain(PlainToken::new(token)),
        (None, Some(hex), None) => {
            let bytes = hex::decode(&hex).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            Secret::Sha256(TokenHash::from_bytes(bytes.ok_or("sha256 must be 64 hex digits")?))
        }
        (None, None, Some(k)) => Secret::Knox {
            version: match k.version.as_str() {
                "4.1" => KnoxVersion::V4_1,
                "4.2" => KnoxVersion::V4_2,
                "5" | "5.0" => KnoxVersion::V5,
                other => return Err(format!("knox version {other:?}: 4.1, 4.2 or 5")),
            },
            hash: k.hash.parse::<KnoxHash>().map_err(|e| format!("knox hash: {e}"))?,
            key: k.key,
            digest: k.digest.to_ascii_lowercase(),
            salt: k.salt.map(|s| s.to_ascii_lowercase()),
        },
        _ => return Err("a token needs exactly one of token, sha256 and knox".into()),
    };
    Ok(TokenRecord {
        line,
        dialect,
        secret,
        id: None,
        kind: if t.static_token { TokenKind::Static } else { TokenKind::Session },
        note: t.note,
        created_at: time("created", t.created.as_deref())?,
        expires_at: time("expires", t.expires.as_deref())?,
        last_used_at: time("last_used", t.last_used.as_deref())?,
        enabled: t.enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_are_refused_by_line() {
        let text = concat!(
            r#"{"name": "alice", "password": {"scheme": "bcrypt", "encoded": "x", "pepper": "devise"}, "tokens": [{"dialect": "knox", "token": "t"}]}"#,
            "\n\n",
            r#"{"name": "bob", "password": {"scheme": "md5crypt", "encoded": "x"}}"#,
            "\n",
            r#"{"name": "carol", "tokens": [{"dialect": "knox", "sha256": "abc"}]}"#,
            "\n",
            "not json\n",
            r#"{"kind": "reseller", "name": "acme", "password": null}"#,
        );
        let batch = parse(text, "t.jsonl");
        let names: Vec<_> = batch.records.iter().map(|r| (r.line, r.name.as_str())).collect();
        assert_eq!(names, [(1, "alice"), (6, "acme")]);
        assert_eq!(
            batch.records[0].password.as_ref().unwrap().scheme,
            PasswordScheme::Bcrypt { pepper: Some("devise".into()) }
        );
        assert_eq!(batch.records[1].kind, PrincipalKind::Reseller);
        assert!(batch.records[1].password.is_none());
        let refused: Vec<_> = batch.refused.iter().map(|r| (r.line, r.why.as_str())).collect();
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].1.contains("md5crypt"));
        assert!(refused[1].1.contains("64 hex"));
        assert_eq!(refused[2].0, 5);
    }
}
