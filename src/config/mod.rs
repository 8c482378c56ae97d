//! Configuration: loaded once at start, in layers, and checked before anything runs.
//!
//! Layers, later ones winning: built-in defaults; the TOML file named by `--config` or
//! `TOKENAUTH_CONFIG` (unknown keys are an error); `TOKENAUTH_*` environment variables, `__`
//! for nesting (`TOKENAUTH_KNOX__TOKEN_TTL=10h`; unknown ones are warned about and ignored);
//! then CLI flags. Durations are humantime strings (`"24h"`, `"60s"`). `config/tokenauth.toml`
//! in the repository documents every key at its default, and a test holds it to that.
//! Secrets (the database password) have a redacting `Debug`, `Display` and `Serialize`, so
//! `tokenauth config` and logs can never show them.
//!
//! Here: `Config` and its defaults. The sections are in `sections`, `dialects` and `web`;
//! `secrets` holds the redacting types, `load` the layers, `validate` the checks serde cannot
//! make, `errors` the error type and the rendering of figment's errors.

mod dialects;
mod errors;
mod load;
mod secrets;
mod sections;
mod validate;
mod web;

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::DialectId;

pub use dialects::{DialerConfig, KnoxConfig, UsertokenConfig, WebitelConfig};
pub use errors::ConfigError;
pub use load::{Loaded, Overrides, load};
pub use secrets::{DatabaseUrl, Secret};
pub use sections::{
    AuditConfig, CacheConfig, CorsConfig, DatabaseConfig, HttpConfig, InvalidationMode, LogFormat,
    MigrationTransactions, PasswordConfig, ThrottleConfig, ThrottleRule, TokensConfig,
};
pub use validate::{MAX_LIFETIME, MIN_SECRET_BYTES, check_path_prefix};
pub use web::{AclRule, IdentityHeaders, SecureCookie, UiConfig, VerifyConfig};

/// The effective configuration. Every field has a default; see `config/tokenauth.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// Serve `/metrics` on this address only, instead of on `bind` (e.g. an internal interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_bind: Option<SocketAddr>,
    /// `sqlite://PATH` (the default, created on first start) or `postgres://USER:PASS@HOST/DB`.
    pub database_url: DatabaseUrl,
    /// `pretty` for people, `json` for log shippers.
    pub log_format: LogFormat,
    /// Peers (CIDRs) whose `Forwarded` / `X-Forwarded-For` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP serving limits.
    pub http: HttpConfig,
    /// Database pool.
    pub database: DatabaseConfig,
    /// Password hashing.
    pub passwords: PasswordConfig,
    /// Token housekeeping.
    pub tokens: TokensConfig,
    /// The audit log's housekeeping.
    pub audit: AuditConfig,
    /// The token-check cache.
    pub cache: CacheConfig,
    /// Login throttling: failed logins counted per client address and per account.
    pub throttle: ThrottleConfig,
    /// Cross-origin requests (off unless origins are listed).
    pub cors: CorsConfig,
    /// The usertoken dialect (`/auth/login`, `/auth/bump`, `/auth/logout`).
    pub usertoken: UsertokenConfig,
    /// The knox dialect (`/auth/login/`, `/auth/logout/`, `/auth/logoutall/`).
    pub knox: KnoxConfig,
    /// The webitel dialect (`/login`, `/logout`).
    pub webitel: WebitelConfig,
    /// The dialer dialect (`/session.json`, `/v1/resellers/login.json`, `/v1/resellers/user/logout.json`).
    pub dialer: DialerConfig,
    /// The forward-auth endpoint `/verify`, for reverse proxies.
    pub verify: VerifyConfig,
    /// The web page at `/ui/` where people manage their static tokens.
    pub ui: UiConfig,
    /// HMAC secret for the JWT dialects (at least 32 bytes). Absent: a key is generated once
    /// and kept in the database, shared by every replica. Read raw from TOKENAUTH_JWT_SECRET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            database_url: DatabaseUrl::new("sqlite://tokenauth.db"),
            log_format: LogFormat::Pretty,
            trusted_proxies: Vec::new(),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            passwords: PasswordConfig::default(),
            tokens: TokensConfig::default(),
            audit: AuditConfig::default(),
            cache: CacheConfig::default(),
            throttle: ThrottleConfig::default(),
            cors: CorsConfig::default(),
            usertoken: UsertokenConfig::default(),
            knox: KnoxConfig::default(),
            webitel: WebitelConfig::default(),
            dialer: DialerConfig::default(),
            verify: VerifyConfig::default(),
            ui: UiConfig::default(),
            jwt_secret: None,
        }
    }
}

impl Config {
    /// Whether the dialect named `name` is served (`usertoken`, `knox`, `webitel`, `dialer`).
    pub fn dialect_enabled(&self, dialect: DialectId) -> bool {
        match dialect {
            DialectId::Usertoken => self.usertoken.enabled,
            DialectId::Knox => self.knox.enabled,
            DialectId::Webitel => self.webitel.enabled,
            DialectId::Dialer => self.dialer.enabled,
        }
    }

    /// The configuration as TOML, secrets redacted (for `tokenauth config`).
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError(format!("cannot render configuration: {e}")))
    }
}
