//! What serde cannot check: relations between keys and value ranges.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::{Config, ConfigError};

impl Config {
    /// Check what serde cannot: relations between keys and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (name, rule) in [("throttle.ip", &self.throttle.ip), ("throttle.account", &self.throttle.account)] {
            if rule.max_failures == 0 {
                problems.push(format!("{name}.max_failures must be at least 1"));
            }
            if rule.window < Duration::from_secs(1) || rule.lockout < Duration::from_secs(1) {
                problems.push(format!("{name}.window and {name}.lockout must be at least 1s"));
            }
            if rule.max_lockout < rule.lockout {
                problems.push(format!("{name}.max_lockout must not be shorter than {name}.lockout"));
            }
        }
        if self.database.acquire_timeout >= self.http.request_timeout {
            problems.push(format!(
                "database.acquire_timeout ({}) must be shorter than http.request_timeout ({}), so an outage answers 503 instead of timing out",
                humantime::format_duration(self.database.acquire_timeout),
                humantime::format_duration(self.http.request_timeout)
            ));
        }
        if let Some(listen) = &self.database.listen_url
            && !matches!(listen.scheme().as_str(), "postgres" | "postgresql")
        {
            problems.push(format!("database.listen_url {listen}: must be a postgres:// URL (a direct connection)"));
        }
        if self.database.migration_transactions == crate::config::MigrationTransactions::PerStatement
            && self.database.migration_lock
        {
            problems.push(
                "database.migration_transactions = \"per_statement\" takes no lock: set database.migration_lock = \
                 false, and let one process migrate (migrate_on_start = false on the replicas, `tokenauth migrate` \
                 once)"
                    .into(),
            );
        }
        if self.cache.invalidation == crate::config::InvalidationMode::Poll && self.cache.poll_interval.is_zero() {
            problems.push("cache.poll_interval must be positive when cache.invalidation is \"poll\"".into());
        }
        if self.http.body_limit == 0 {
            problems.push("http.body_limit must be positive".into());
        }
        if self.http.request_timeout.is_zero() {
            problems.push("http.request_timeout must be positive".into());
        }
        if self.tokens.sweep_interval.is_zero() || self.tokens.touch_flush_interval.is_zero() {
            problems.push("tokens.sweep_interval and tokens.touch_flush_interval must be positive".into());
        }
        if let Err(e) =
            argon2::Params::new(self.passwords.memory_kib, self.passwords.iterations, self.passwords.parallelism, None)
        {
            problems.push(format!("passwords: invalid argon2 parameters: {e}"));
        }
        if self.ui.prefix.trim_end_matches('/').is_empty() || !self.ui.prefix.is_ascii() {
            // why: the session cookie's Path is the prefix; at the root it would reach every
            // application behind the same host.
            problems.push("ui.prefix: the web page needs an ASCII prefix of its own, such as \"/ui\"".into());
        }
        if self.ui.session_ttl < Duration::from_secs(60) || self.ui.session_ttl > Duration::from_secs(366 * 86_400) {
            problems.push("ui.session_ttl must be between 1m and 366d".into());
        }
        for (name, prefix) in [
            ("usertoken.prefix", &self.usertoken.prefix),
            ("knox.prefix", &self.knox.prefix),
            ("webitel.prefix", &self.webitel.prefix),
            ("dialer.prefix", &self.dialer.prefix),
            ("ui.prefix", &self.ui.prefix),
        ] {
            if let Err(e) = check_path_prefix(prefix) {
                problems.push(format!("{name}: {e}"));
            }
        }
        let tp = &self.knox.token_prefix;
        if tp.len() > 10 || !tp.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            problems.push(format!("knox.token_prefix {tp:?}: at most 10 characters of [A-Za-z0-9_-]"));
        }
        for (name, value) in [
            ("usertoken.token_ttl", self.usertoken.token_ttl),
            ("knox.token_ttl", self.knox.token_ttl),
            ("knox.max_lifetime", self.knox.max_lifetime),
            ("tokens.retention", Some(self.tokens.retention)),
            ("webitel.token_ttl", Some(self.webitel.token_ttl)),
            ("dialer.token_ttl", Some(self.dialer.token_ttl)),
        ] {
            match value {
                Some(d) if d.is_zero() => {
                    problems.push(format!("{name} must be positive (omit a ttl for tokens that never expire)"))
                }
                Some(d) if d > MAX_LIFETIME => problems.push(format!("{name} must be at most 100 years")),
                _ => {}
            }
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().expose_secret().len() < MIN_SECRET_BYTES
        {
            problems.push(format!(
                "jwt_secret must be at least {} bytes (e.g. `openssl rand -base64 48`)",
                MIN_SECRET_BYTES
            ));
        }
        for (i, rule) in self.verify.acl.iter().enumerate() {
            if !rule.prefix.starts_with('/') {
                problems.push(format!("verify.acl[{i}].prefix {:?} must start with /", rule.prefix));
            }
            if rule.resource.is_empty() || rule.permission.is_empty() {
                problems.push(format!("verify.acl[{i}]: resource and permission must not be empty"));
            }
            for m in &rule.methods {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    problems.push(format!("verify.acl[{i}].methods: {m:?} is not an HTTP method"));
                }
            }
        }
        if self.knox.max_tokens_per_user == Some(0) {
            problems.push("knox.max_tokens_per_user must be at least 1 (omit it for no limit)".into());
        }
        if self.knox.auto_refresh && self.knox.token_ttl.is_none() {
            problems
                .push("knox.auto_refresh needs knox.token_ttl: a token without expiry has nothing to refresh".into());
        }
        if let (Some(max), Some(ttl)) = (self.knox.max_lifetime, self.knox.token_ttl)
            && max < ttl
        {
            problems.push("knox.max_lifetime must not be shorter than knox.token_ttl".into());
        }
        for origin in &self.cors.allowed_origins {
            if origin.parse::<axum::http::HeaderValue>().is_err() || !origin.contains("://") {
                problems
                    .push(format!("cors.allowed_origins: {origin:?} is not an origin like https://app.example.com"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError(problems.join("; "))) }
    }
}

/// The shortest JWT secret accepted. why 32 bytes: HS256's key should be at least its 256-bit
/// output (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest token lifetime accepted. why 100 years: longer lifetimes would overflow the
/// calendar the databases and RFC 3339 share (year 9999); for "forever", omit the ttl.
pub const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A mount prefix is `/` or `/segment[/segment...]` without a trailing slash or wildcards.
pub fn check_path_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix == "/" {
        return Ok(());
    }
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(format!("{prefix:?} must start with / and not end with /"));
    }
    if prefix.contains("//") || prefix.chars().any(|c| matches!(c, '{' | '}' | '*' | '?' | '#') || c.is_whitespace()) {
        return Err(format!("{prefix:?} may not contain empty segments, wildcards, ? or #"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn inconsistent_values_are_refused() {
        let mut c = Config::default();
        c.database.acquire_timeout = Duration::from_secs(60);
        c.knox.token_prefix = "has space".into();
        c.usertoken.prefix = "/a/".into();
        c.knox.max_tokens_per_user = Some(0);
        c.knox.token_ttl = Some(Duration::from_secs(200 * 365 * 24 * 3600));
        c.database.migration_transactions = crate::config::MigrationTransactions::PerStatement;
        c.database.listen_url = Some(crate::config::DatabaseUrl::new("sqlite://x.db"));
        c.cache.invalidation = crate::config::InvalidationMode::Poll;
        c.cache.poll_interval = Duration::ZERO;
        let err = c.validate().unwrap_err().to_string();
        for needle in [
            "acquire_timeout",
            "token_prefix",
            "usertoken.prefix",
            "max_tokens_per_user",
            "knox.token_ttl",
            "\"per_statement\" takes no lock",
            "database.listen_url",
            "cache.poll_interval must be positive",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }

    #[test]
    fn prefixes() {
        for ok in ["", "/", "/a", "/api/v1"] {
            assert!(check_path_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "/a/", "//", "/a//b", "/{x}", "/*", "/a b"] {
            assert!(check_path_prefix(bad).is_err(), "{bad}");
        }
    }
}
