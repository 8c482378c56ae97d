//! Loading: the layers merged by figment, the environment's unknown variables set apart, the
//! raw `TOKENAUTH_JWT_SECRET`, then validation.

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
    let env = Env::prefixed("TOKENAUTH_").ignore(NON_CONFIG_VARS).split("__");
    let (known, warnings) = partition_env(&env);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    figment = figment.merge(env.only(&known));
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
    }
    config.validate()?;
    Ok(Loaded { config, warnings })
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
