//! Configuration: loaded once at start, in layers, and checked before anything runs.
//!
//! Layers, later ones winning: built-in defaults; the TOML file named by `--config` or
//! `TOKENAUTH_CONFIG` (unknown keys are an error); `TOKENAUTH_*` environment variables, `__`
//! for nesting (`TOKENAUTH_KNOX__TOKEN_TTL=10h`; unknown ones are warned about and ignored);
//! then CLI flags. Durations are humantime strings (`"24h"`, `"60s"`). `config/tokenauth.toml`
//! in the repository documents every key at its default, and a test holds it to that.
//! Secrets (the database password) have a redacting `Debug`, `Display` and `Serialize`, so
//! `tokenauth config` and logs can never show them.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::{DialectId, LogoutStatus};

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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`text` is accepted too).
    #[serde(alias = "text")]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// HTTP serving limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request that takes longer gets a 503 in its dialect's shape.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes; larger gets a 413 in the dialect's shape.
    pub body_limit: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(30),
            // why 64 KiB: every request body of every dialect is a few hundred bytes.
            body_limit: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Database pool settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a connection before a 503; must be below the request timeout.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

/// argon2id parameters and the hashing pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Memory cost in KiB (OWASP: 19 MiB).
    pub memory_kib: u32,
    /// Time cost (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes running at once; 0 means one per CPU less one (at least one).
    pub workers: usize,
    /// Hashes waiting beyond those running; past this, logins get a 503 at once.
    pub queue: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        // why: OWASP Password Storage Cheat Sheet, argon2id m=19456 KiB, t=2, p=1.
        PasswordConfig { memory_kib: 19 * 1024, iterations: 2, parallelism: 1, workers: 0, queue: 64 }
    }
}

impl PasswordConfig {
    /// `workers`, with 0 resolved to one less than the CPUs (at least one). why: a login
    /// flood then saturates all but one core, which stays free for token checks.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| usize::from(n).saturating_sub(1).max(1))
        }
    }
}

/// Token housekeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// How long revoked and expired rows are kept (so they can be told from unknown ones).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the sweep deletes rows past retention.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How often deferred last-used and sliding-expiry writes are flushed.
    #[serde(with = "humantime_serde")]
    pub touch_flush_interval: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(3600),
            touch_flush_interval: Duration::from_secs(10),
        }
    }
}

/// The token-check cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Successful token lookups kept in memory (about 1 KiB each); 0 turns the cache off.
    pub capacity: u64,
    /// The longest a cached lookup is trusted without reading its row again: the bound on
    /// how late a revocation on another replica can be seen if its notice is lost.
    #[serde(with = "humantime_serde")]
    pub max_staleness: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        // why 5 s: revocations normally arrive by NOTIFY within milliseconds; this is the
        // safety net, and a few seconds of database reads per token is cheap.
        CacheConfig { capacity: 100_000, max_staleness: Duration::from_secs(5) }
    }
}

/// Login throttling. Failed logins are counted in the database (so every replica sees the
/// same counts) per client address and per account; past a limit, logins are refused with 429
/// and `Retry-After` before any password is hashed, for a lockout that doubles each time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Off turns the counting and the 429s off.
    pub enabled: bool,
    /// Per client address (IPv6 by /64, since one host usually holds a whole /64).
    pub ip: ThrottleRule,
    /// Per account name (unknown names too, so a 429 does not tell which accounts exist).
    pub account: ThrottleRule,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            // why 10 a minute: a person mistyping a password stays far below it; a guesser
            // gets 10 tries, then a lockout that doubles (1, 2, 4 ... 60 minutes).
            ip: ThrottleRule {
                max_failures: 10,
                window: Duration::from_secs(60),
                lockout: Duration::from_secs(60),
                max_lockout: Duration::from_secs(3600),
                forget_after: Duration::from_secs(3600),
            },
            // why 100 in 15 minutes: well above what one address can reach (so an attacker
            // at one address cannot lock the owner out), low enough to slow a guesser who
            // spreads over many addresses.
            account: ThrottleRule {
                max_failures: 100,
                window: Duration::from_secs(900),
                lockout: Duration::from_secs(300),
                max_lockout: Duration::from_secs(3600),
                forget_after: Duration::from_secs(3600),
            },
        }
    }
}

/// One throttle: a sliding window of failures and a growing lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRule {
    /// Failures allowed within `window`; the next attempt is refused and starts a lockout.
    pub max_failures: u32,
    /// The sliding window the failures are counted over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first lockout; each further one doubles, up to `max_lockout`.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// The longest lockout.
    #[serde(with = "humantime_serde")]
    pub max_lockout: Duration,
    /// A counter with no failures for this long (after its window and lockout) is forgotten,
    /// lockout count included.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
}

/// CORS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call tokenauth from a browser; empty turns CORS off.
    pub allowed_origins: Vec<String>,
}

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
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig { enabled: true, acl: Vec::new() }
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

/// A configuration that could not be loaded or is inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

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

/// Keys whose values are secrets: an error about one names the key and where it was set,
/// never the value (figment's "invalid type: found string \"...\"" would quote it).
const SECRET_KEYS: &[&str] = &["jwt_secret", "database_url"];

fn flatten(err: figment::Error) -> String {
    err.into_iter()
        .map(|mut e| {
            if e.path.iter().any(|key| SECRET_KEYS.contains(&key.as_str())) {
                e.kind = figment::error::Kind::Message(format!(
                    "invalid value (not shown: it is a secret), expected a string{}",
                    match &e.kind {
                        figment::error::Kind::InvalidType(actual, _) => format!(", found {}", kind_of(actual)),
                        _ => String::new(),
                    }
                ));
            }
            // why the path: figment names an environment variable's key in upper case
            // (`KNOX.LOGOUT_STATUS`), which is not how the file or the docs spell it.
            let path = e.path.join(".");
            let message = without_excerpt(&e.to_string());
            if path.is_empty() || message.contains(&path) { message } else { format!("{path}: {message}") }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TOML syntax error quotes the offending line of the file (`3 | jwt_secret = "...`), and
/// a file may hold a secret on any line: keep the message and its line and column, drop the
/// excerpt.
fn without_excerpt(message: &str) -> String {
    let is_excerpt =
        |line: &str| line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|');
    message
        .lines()
        .filter(|line| !is_excerpt(line))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The kind of a value figment found, without the value.
fn kind_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another type",
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

    /// The configuration as TOML, secrets redacted (for `tokenauth config`).
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError(format!("cannot render configuration: {e}")))
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

    #[test]
    fn errors_about_a_config_file_never_quote_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenauth.toml");
        for (file, secret, names) in [
            // a secret of digits only: a TOML integer, so figment reports "found unsigned int ..."
            ("jwt_secret = 9182736455463728199\n", "9182736455", "jwt_secret"),
            ("database_url = [\"postgres://u:hunter2secret@h/db\"]\n", "hunter2secret", "database_url"),
            // a syntax error: the toml crate quotes the line it stopped at
            ("bind = \"127.0.0.1:8080\"\njwt_secret = \"unterminated-s3cr3t-value\n", "s3cr3t", "line 2"),
        ] {
            std::fs::write(&path, file).unwrap();
            let err = load(Some(&path), &Overrides::default()).unwrap_err().to_string();
            assert!(!err.contains(secret), "{file:?} gave {err}");
            assert!(err.contains(names), "{file:?} gave {err}, which does not say where");
        }
        // why: the redaction must not hide what is wrong with the other keys.
        std::fs::write(&path, "bind = 5\n").unwrap();
        let err = load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("bind") && err.contains('5'), "{err}");
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
        let err = c.validate().unwrap_err().to_string();
        for needle in ["acquire_timeout", "token_prefix", "usertoken.prefix", "max_tokens_per_user", "knox.token_ttl"] {
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
