//! Loading: the layers merged by figment, the environment's unknown variables set apart, the
//! secrets read from files (`TOKENAUTH_*_FILE`), the raw `TOKENAUTH_JWT_SECRET`, then
//! validation.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use super::errors::flatten;
use super::{Config, ConfigError, DatabaseUrl, LogFormat, Secret};

/// Values given on the command line, the last layer. Its `Debug` masks the URL's password.
#[derive(Clone, Default)]
pub struct Overrides {
    /// `--bind`
    pub bind: Option<SocketAddr>,
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--log-format`
    pub log_format: Option<LogFormat>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url.as_deref().map(DatabaseUrl::new))
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// The loaded configuration and what was ignored on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Unknown `TOKENAUTH_*` variables, to warn about once logging is up.
    pub warnings: Vec<String>,
}

/// Environment variables read by tokenauth that figment must not read: not configuration
/// keys, or (jwt_secret) read raw, since figment would turn an all-digit secret into a number.
const NON_CONFIG_VARS: &[&str] = &["config", "test_database_url", "bench_database_url", "jwt_secret"];

/// Load the configuration from all layers; see the module doc.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(format!("config file {} does not exist", path.display())));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    // why filtered: a `*_FILE` variable names a file holding a secret, read below.
    let env = Env::prefixed("TOKENAUTH_")
        .ignore(NON_CONFIG_VARS)
        .filter(|key| !key.as_str().to_ascii_lowercase().ends_with(FILE_SUFFIX_LOWER))
        .split("__");
    let (known, warnings) = partition_env(&env);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    figment = figment.merge(env.only(&known));
    let from_files = secret_files(std::env::vars_os())?;
    let mut jwt_secret_file = None;
    for (key, value) in from_files {
        match key {
            SecretKey::JwtSecret => jwt_secret_file = Some(value),
            SecretKey::DatabaseUrl => figment = figment.merge(Serialized::default("database_url", value)),
            SecretKey::ListenUrl => figment = figment.merge(Serialized::default("database.listen_url", value)),
            SecretKey::Pepper(name) => {
                figment = figment.merge(Serialized::default(&format!("passwords.peppers.{name}"), value));
            }
        }
    }
    if let Some(bind) = overrides.bind {
        figment = figment.merge(Serialized::default("bind", bind));
    }
    if let Some(url) = &overrides.database_url {
        figment = figment.merge(Serialized::default("database_url", url));
    }
    if let Some(format) = overrides.log_format {
        figment = figment.merge(Serialized::default("log_format", format));
    }
    let mut config: Config = figment.extract().map_err(|e| ConfigError(flatten(e)))?;
    if let Some(secret) = std::env::var_os("TOKENAUTH_JWT_SECRET") {
        let secret = secret.into_string().map_err(|_| ConfigError("TOKENAUTH_JWT_SECRET is not valid UTF-8".into()))?;
        config.jwt_secret = Some(Secret::new(secret));
    } else if let Some(secret) = jwt_secret_file {
        config.jwt_secret = Some(Secret::new(secret));
    }
    config.validate()?;
    Ok(Loaded { config, warnings })
}

/// The suffix of a variable naming a secret's file (the Docker and Kubernetes secrets
/// convention: `POSTGRES_PASSWORD_FILE`), and as figment's lowercased keys see it.
const FILE_SUFFIX: &str = "_FILE";
const FILE_SUFFIX_LOWER: &str = "_file";

/// A configuration key that may be read from a file.
#[derive(Debug, PartialEq, Eq)]
enum SecretKey {
    DatabaseUrl,
    /// `database.listen_url`.
    ListenUrl,
    JwtSecret,
    /// `passwords.peppers.<name>`, the name lowercased as figment lowercases it.
    Pepper(String),
}

/// The secrets named by `TOKENAUTH_<KEY>_FILE` variables, each read from its file with one
/// trailing newline removed (what `echo secret > file` leaves). Refused, with the variable
/// named: a `_FILE` for a key that is not a secret (only secrets have a file form, so a typo
/// cannot silently set nothing), both `TOKENAUTH_<KEY>` and `TOKENAUTH_<KEY>_FILE` set (which
/// would win is a guess), an unreadable or empty file, or one that is not UTF-8.
fn secret_files(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Vec<(SecretKey, String)>, ConfigError> {
    let vars: Vec<(String, OsString)> =
        vars.into_iter().filter_map(|(name, value)| Some((name.into_string().ok()?, value))).collect();
    let mut found = Vec::new();
    for (name, path) in &vars {
        // why case-insensitive: figment reads `TOKENAUTH_*` regardless of case, so must this.
        let upper = name.to_ascii_uppercase();
        let Some(base) = upper.strip_prefix("TOKENAUTH_").and_then(|rest| rest.strip_suffix(FILE_SUFFIX)) else {
            continue;
        };
        let key = match base {
            "DATABASE_URL" => SecretKey::DatabaseUrl,
            "DATABASE__LISTEN_URL" => SecretKey::ListenUrl,
            "JWT_SECRET" => SecretKey::JwtSecret,
            _ => match base.strip_prefix("PASSWORDS__PEPPERS__") {
                Some(pepper) if !pepper.is_empty() && !pepper.contains("__") => {
                    SecretKey::Pepper(pepper.to_ascii_lowercase())
                }
                _ => {
                    return Err(ConfigError(format!(
                        "{name}: only secrets can be read from a file: TOKENAUTH_DATABASE_URL_FILE, \
                         TOKENAUTH_DATABASE__LISTEN_URL_FILE, TOKENAUTH_JWT_SECRET_FILE, \
                         TOKENAUTH_PASSWORDS__PEPPERS__<NAME>_FILE"
                    )));
                }
            },
        };
        let direct = format!("TOKENAUTH_{base}");
        if let Some((other, _)) = vars.iter().find(|(other, _)| other.eq_ignore_ascii_case(&direct)) {
            return Err(ConfigError(format!("both {other} and {name} are set: set only one")));
        }
        let path = Path::new(path);
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError(format!("{name}: cannot read the secret file {}: {e}", path.display())))?;
        let mut value = String::from_utf8(bytes)
            .map_err(|_| ConfigError(format!("{name}: the secret file {} is not valid UTF-8", path.display())))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        if value.is_empty() {
            return Err(ConfigError(format!("{name}: the secret file {} is empty", path.display())));
        }
        found.push((key, value));
    }
    Ok(found)
}

/// Split `TOKENAUTH_*` keys into those that name a configuration key and those that do not,
/// by trying each on its own against the defaults.
fn partition_env(env: &Env) -> (Vec<String>, Vec<String>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (key, _) in env.iter() {
        let key = key.to_string();
        let probe = Figment::from(Serialized::defaults(Config::default())).merge(env.clone().only(&[&key]));
        let is_unknown = probe
            .extract::<Config>()
            .err()
            .is_some_and(|e| e.into_iter().any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..))));
        if is_unknown {
            unknown.push(format!(
                "ignoring environment variable TOKENAUTH_{}: not a configuration key",
                key.to_ascii_uppercase().replace('.', "__")
            ));
        } else {
            known.push(key);
        }
    }
    (known, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogoutStatus;

    fn vars(pairs: &[(&str, &Path)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), v.as_os_str().to_owned())).collect()
    }

    #[test]
    fn secrets_are_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        let pepper = dir.path().join("pepper");
        let jwt = dir.path().join("jwt");
        std::fs::write(&url, "postgres://u:p%40ss@db/tokenauth\n").unwrap();
        std::fs::write(&pepper, "pepper with a trailing CRLF\r\n").unwrap();
        std::fs::write(&jwt, "0123456789").unwrap();
        let mut found = secret_files(vars(&[
            ("TOKENAUTH_DATABASE_URL_FILE", &url),
            ("TOKENAUTH_PASSWORDS__PEPPERS__V2_FILE", &pepper),
            ("TOKENAUTH_JWT_SECRET_FILE", &jwt),
            ("OTHER_FILE", Path::new("/nonexistent")),
        ]))
        .unwrap();
        found.sort_by_key(|(k, _)| format!("{k:?}"));
        assert_eq!(
            found,
            [
                (SecretKey::DatabaseUrl, "postgres://u:p%40ss@db/tokenauth".to_owned()),
                (SecretKey::JwtSecret, "0123456789".to_owned()),
                (SecretKey::Pepper("v2".into()), "pepper with a trailing CRLF".to_owned()),
            ]
        );
    }

    #[test]
    fn secret_files_refuse_what_would_be_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let latin1 = dir.path().join("latin1");
        std::fs::write(&latin1, b"caf\xe9").unwrap();
        let cases: [(Vec<(OsString, OsString)>, &str); 7] = [
            (
                vars(&[("TOKENAUTH_JWT_SECRET", &file), ("TOKENAUTH_JWT_SECRET_FILE", &file)]),
                "both TOKENAUTH_JWT_SECRET and TOKENAUTH_JWT_SECRET_FILE are set",
            ),
            (
                vars(&[("TOKENAUTH_DATABASE_URL_FILE", &dir.path().join("missing"))]),
                "TOKENAUTH_DATABASE_URL_FILE: cannot read the secret file",
            ),
            (vars(&[("TOKENAUTH_BIND_FILE", &file)]), "TOKENAUTH_BIND_FILE: only secrets can be read from a file"),
            (vars(&[("TOKENAUTH_PASSWORDS__PEPPERS___FILE", &file)]), "only secrets can be read from a file"),
            (vars(&[("TOKENAUTH_JWT_SECRET_FILE", &empty)]), "is empty"),
            (vars(&[("TOKENAUTH_JWT_SECRET_FILE", &latin1)]), "is not valid UTF-8"),
            (
                vars(&[("tokenauth_jwt_secret", &file), ("TOKENAUTH_JWT_SECRET_file", &file)]),
                "both tokenauth_jwt_secret and TOKENAUTH_JWT_SECRET_file are set",
            ),
        ];
        for (vars, expected) in cases {
            let err = secret_files(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn knox_logout_status_is_200_or_204() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[knox]\nlogout_status = 201\n").unwrap();
        let err = load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("logout_status") && err.contains("must be 200 or 204"), "{err}");
        std::fs::write(&path, "[knox]\nlogout_status = 204\n").unwrap();
        assert_eq!(
            load(Some(&path), &Overrides::default()).unwrap().config.knox.logout_status,
            LogoutStatus::NoContent
        );
    }
}
