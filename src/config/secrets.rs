//! Values that must never show: a `Secret` and the `DatabaseUrl`, whose `Debug`, `Display`
//! and `Serialize` redact them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A secret configuration value: redacted in `Debug` and `Serialize` (so `tokenauth config`
/// shows `[REDACTED]`), compared by value only so configurations can be compared in tests.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret, for the code that uses it.
    pub fn expose(&self) -> &SecretString {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

/// A database URL whose password never shows in `Debug`, `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wrap a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme, lowercased (`sqlite`, `postgres`, ...), or empty.
    pub fn scheme(&self) -> String {
        self.0.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default()
    }

    /// The URL with any password replaced by `***`: the userinfo password and a `password`
    /// query parameter (both accepted by the drivers). A URL that does not parse is hidden
    /// entirely but for its scheme, since there is no telling where a secret sits in it.
    pub fn redacted(&self) -> String {
        let Ok(mut u) = url::Url::parse(&self.0) else {
            return format!("{}://[unparseable URL hidden]", self.scheme());
        };
        if u.password().is_some() {
            // why: set_password only fails for URLs that cannot have one, checked above.
            let _ = u.set_password(Some("***"));
        }
        if u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") { "***".to_owned() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn database_url_never_shows_its_password() {
        let url = DatabaseUrl::new("postgres://tokenauth:s3cr3t@db.example:5432/tokenauth");
        for shown in [format!("{url}"), format!("{url:?}"), serde_json::to_string(&url).unwrap()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert_eq!(url.expose(), "postgres://tokenauth:s3cr3t@db.example:5432/tokenauth");
        assert_eq!(url.scheme(), "postgres");
        for leaky in [
            "postgres://u:p@ss w@rd@host/db",
            "postgres://user:p@ssw0rd@host:99999/db",
            "postgres://u@127.0.0.1:1/db?password=s3cr3t&sslmode=require",
            "postgres://u@127.0.0.1:1/db?PassWord=s3cr3t",
        ] {
            let url = DatabaseUrl::new(leaky);
            for shown in [url.to_string(), format!("{url:?}"), serde_json::to_string(&url).unwrap()] {
                for secret in ["ss w", "ssw0rd", "s3cr3t"] {
                    assert!(!shown.contains(secret), "{leaky} shown as {shown}");
                }
            }
        }
        assert_eq!(
            DatabaseUrl::new("postgres://u@h/db?password=x&sslmode=require").to_string(),
            "postgres://u@h/db?password=***&sslmode=require"
        );
    }

    #[test]
    fn secrets_are_redacted_and_checked() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef-long-enough");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[REDACTED]\"");
        let mut c = Config { jwt_secret: Some(secret), ..Config::default() };
        c.validate().unwrap();
        assert!(!c.to_redacted_toml().unwrap().contains("long-enough"));
        c.jwt_secret = Some(Secret::new("short"));
        assert!(c.validate().unwrap_err().to_string().contains("jwt_secret"));
    }
}
