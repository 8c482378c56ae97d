//! The sections of the two web-facing extras: the static-token page (`/ui/`) and the
//! forward-auth endpoint (`/verify`) with its ACL rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The static-token web page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve the page.
    pub enabled: bool,
    /// Where it is mounted (`/ui` serves `/ui/`).
    pub prefix: String,
    /// How long a sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// When the session cookie is marked `Secure`.
    pub secure_cookie: SecureCookie,
}

impl Default for UiConfig {
    fn default() -> Self {
        // why 8 h: a working day; the page is for occasional administration, not for staying
        // signed in for weeks.
        UiConfig {
            enabled: true,
            prefix: "/ui".into(),
            session_ttl: Duration::from_secs(8 * 3600),
            secure_cookie: SecureCookie::Auto,
        }
    }
}

/// When the web page's cookies are marked `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    /// When the request came over HTTPS, as a trusted proxy's `X-Forwarded-Proto` says.
    Auto,
    /// Always (tokenauth is only ever reached over HTTPS).
    Always,
}

/// The forward-auth endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Serve `/verify`.
    pub enabled: bool,
    /// Rules that map the proxied request (`X-Original-URI` and `X-Original-Method`) to a
    /// webitel ACL permission the token's role must hold; empty: any valid token passes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclRule>,
    /// Which identity headers a 200 carries: tokenauth's `X-Auth-*` (the default), or those
    /// of Authelia or oauth2-proxy, for applications written for them (instead, not as well).
    pub headers: IdentityHeaders,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig { enabled: true, acl: Vec::new(), headers: IdentityHeaders::Tokenauth }
    }
}

/// One ACL rule of `/verify`: requests under `prefix` (with one of `methods`, or any method
/// when empty) need `permission` on `resource` (or `"*"` on it) in the token's role's ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// A path prefix, matched on segment boundaries (`/api/cdr` covers `/api/cdr/1`, not `/api/cdrx`).
    pub prefix: String,
    /// HTTP methods the rule covers (case-insensitive); empty: all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The ACL resource (`cdr`, `cdr/files`, ...).
    pub resource: String,
    /// The permission needed (`r`, `w`, `u`, `d`, ...).
    pub permission: String,
}

/// Which identity headers `/verify` answers a good token with (`verify.headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityHeaders {
    /// tokenauth's own: `X-Auth-User`, `X-Auth-User-Id`, `X-Auth-Kind`, `X-Auth-Role`,
    /// `X-Auth-Token-Id`, `X-Auth-Dialect`, `X-Auth-Expires`.
    #[default]
    Tokenauth,
    /// Authelia's: `Remote-User`, `Remote-Groups`, `Remote-Name`.
    Authelia,
    /// oauth2-proxy's: `X-Auth-Request-User`, `X-Auth-Request-Groups`,
    /// `X-Auth-Request-Preferred-Username`.
    Oauth2Proxy,
}

impl IdentityHeaders {
    /// The config value (`tokenauth`, `authelia`, `oauth2-proxy`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityHeaders::Tokenauth => "tokenauth",
            IdentityHeaders::Authelia => "authelia",
            IdentityHeaders::Oauth2Proxy => "oauth2-proxy",
        }
    }
}
