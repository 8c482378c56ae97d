//! Each dialect's section: whether it is served, where, and its token lifetimes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::LogoutStatus;

/// The usertoken dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsertokenConfig {
    /// Serve this dialect.
    pub enabled: bool,
    /// Path prefix its routes are mounted under (`/` for none).
    pub prefix: String,
    /// Lifetime of a token when the login names no `expirationTime`; absent: never expires.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<Duration>,
}

impl Default for UsertokenConfig {
    fn default() -> Self {
        UsertokenConfig { enabled: true, prefix: "/".into(), token_ttl: None }
    }
}

/// The knox dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnoxConfig {
    /// Serve this dialect.
    pub enabled: bool,
    /// Path prefix its routes are mounted under (`/` for none).
    pub prefix: String,
    /// Prepended to every knox token (knox's TOKEN_PREFIX), at most 10 of `[A-Za-z0-9_-]`.
    pub token_prefix: String,
    /// Token lifetime (knox's TOKEN_TTL); absent: never expires, `expiry: null`.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<Duration>,
    /// Slide the expiry forward on use (knox's AUTO_REFRESH).
    pub auto_refresh: bool,
    /// Slide only when it moves the expiry by more than this (knox's MIN_REFRESH_INTERVAL).
    #[serde(with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// Never slide past creation + this (knox's AUTO_REFRESH_MAX_TTL); absent: no cap.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Duration>,
    /// Live tokens a user may hold (knox's TOKEN_LIMIT_PER_USER); absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_user: Option<u32>,
    /// Status of a successful logout: 200 (the seed) or 204 (real knox); the body is empty.
    pub logout_status: LogoutStatus,
}

impl Default for KnoxConfig {
    fn default() -> Self {
        KnoxConfig {
            enabled: true,
            prefix: "/".into(),
            token_prefix: String::new(),
            token_ttl: None,
            auto_refresh: false,
            min_refresh_interval: Duration::from_secs(60),
            max_lifetime: None,
            max_tokens_per_user: None,
            logout_status: LogoutStatus::Ok,
        }
    }
}

/// The webitel dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebitelConfig {
    /// Serve this dialect.
    pub enabled: bool,
    /// Path prefix its routes are mounted under (`/` for none).
    pub prefix: String,
    /// Session lifetime; `expires` and the JWT's `exp` are creation + this.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Answer an unknown user with the 401 of a wrong password instead of Webitel's 404.
    pub hide_unknown_users: bool,
    /// An object passed through as `cdr` in every login response; absent: no `cdr` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdr: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Default for WebitelConfig {
    fn default() -> Self {
        WebitelConfig {
            enabled: true,
            prefix: "/".into(),
            token_ttl: Duration::from_secs(24 * 3600),
            hide_unknown_users: false,
            cdr: None,
        }
    }
}

/// The dialer dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialerConfig {
    /// Serve this dialect.
    pub enabled: bool,
    /// Path prefix its routes are mounted under (`/` for none; Hello Hunter clients use `/a`).
    pub prefix: String,
    /// Session lifetime (the seed's "dynamic tokens expire after 24 hours"); the JWT's `exp`.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for DialerConfig {
    fn default() -> Self {
        DialerConfig { enabled: true, prefix: "/".into(), token_ttl: Duration::from_secs(24 * 3600) }
    }
}
