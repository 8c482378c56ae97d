//! The command line: `serve`, `migrate`, `config`, and the administration of users and tokens
//! against the same database the server uses.
//!
//! Policy: every subcommand loads the configuration the same way (`--config`,
//! `--database-url` and `TOKENAUTH_*` work everywhere), and every failure is one line on
//! stderr with exit code 1 (printed by `main`). Lists print a table, or JSON with `--json`.

mod healthcheck;
mod output;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use uuid::Uuid;

use crate::app;
use crate::config::{self, Config, Overrides};
use crate::model::Attributes;
use crate::model::DialectId;
use crate::model::PrincipalKind;
use crate::model::ThrottleScope;
use crate::server::{Server, shutdown_signal};
use crate::store::Store;
use crate::telemetry;
use crate::token::Policies;
use crate::token::clock::SystemClock;
use crate::token::throttle::{account_subject, ip_subject};
use crate::token::{
    MintOptions, NewProfile, TokenService, check_allowed_regex, check_sms_from, parse_acl, parse_allowed_ip,
    parse_balance,
};

/// tokenauth: a token-authentication server that speaks four existing login/logout APIs.
#[derive(Parser)]
#[command(name = "tokenauth", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML); see config/tokenauth.toml for every key. Also
    /// TOKENAUTH_CONFIG (an empty value names no file).
    // why not clap's `env`: it turns TOKENAUTH_CONFIG="" (common in env files) into a usage error.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://PATH or postgres://USER:PASS@HOST/DB); overrides the file and
    /// TOKENAUTH_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log lines as `pretty` text (the default) or `json`; overrides the file and
    /// TOKENAUTH_LOG_FORMAT.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<config::LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

// why by hand: `--database-url` may carry a password; its `Debug` masks it.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("config", &self.config)
            .field("database_url", &self.database_url.as_deref().map(config::DatabaseUrl::new))
            .field("log_format", &self.log_format)
            .field("command", &self.command)
            .finish()
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrations run first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; also TOKENAUTH_BIND).
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage dialer resellers (a second kind of principal, with its own names).
    #[command(subcommand)]
    Reseller(ResellerCommand),
    /// Manage user groups (dialer: a name, an optional IP regex, an optional owning reseller).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage roles (webitel: a name, an integer code, an ACL).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage the JWT signing keys (webitel, dialer).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the audit log: what administrators did on the web page (who, what, when, from
    /// which address), oldest first.
    Audit {
        /// Only the newest N entries.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and reset the login throttle's counters (failed logins per address and account).
    #[command(subcommand)]
    Throttle(ThrottleCommand),
    /// Exit 0 when the server at the configured bind address answers /healthz (for container
    /// HEALTHCHECKs; the image has no curl).
    Healthcheck {
        /// Ask /readyz instead: is the database reachable too?
        #[arg(long)]
        ready: bool,
    },
}

/// `tokenauth user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        /// User name (exact, case-sensitive); `name@domain` gives it a webitel domain.
        name: String,
        /// Where the password comes from.
        #[command(flatten)]
        password: PasswordSource,
        /// Give the user this role (see `tokenauth role`).
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// Put the user in this user group (see `tokenauth group`); its allowed_regex then
        /// limits the addresses the user may log in from.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Mark the user an administrator (the dialer JWT's `admin` claim).
        #[arg(long)]
        admin: bool,
        /// The user's SMS sender (the dialer JWT's `sms_from` claim).
        #[arg(long, value_name = "SENDER", value_parser = |s: &str| check_sms_from(s).map(|()| s.to_owned()).map_err(|e| e.to_string()))]
        sms_from: Option<String>,
    },
    /// Give a user a role (or take it away with --none); its tokens carry it at once.
    SetRole {
        /// User name.
        name: String,
        /// The role.
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        role: Option<String>,
        /// Take the user's role away.
        #[arg(long)]
        none: bool,
    },
    /// Put a user in a user group (or take it out with --none); its IP rule applies from its
    /// next login.
    SetGroup {
        /// User name.
        name: String,
        /// The group.
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        group: Option<String>,
        /// Take the user out of its group.
        #[arg(long)]
        none: bool,
    },
    /// Change a user's password; revokes all of the user's tokens.
    Passwd {
        /// User name.
        name: String,
        /// Where the new password comes from.
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a user: it cannot log in and its tokens stop working.
    Disable {
        /// User name.
        name: String,
    },
    /// Enable a disabled user: its unexpired, unrevoked tokens work again.
    Enable {
        /// User name.
        name: String,
    },
    /// Remove a user and all of its tokens.
    Remove {
        /// User name.
        name: String,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tokenauth reseller ...`
#[derive(Debug, Subcommand)]
pub enum ResellerCommand {
    /// Create a reseller.
    Add {
        /// Reseller name (exact, case-sensitive; its own name space, apart from users').
        name: String,
        /// Where the password comes from.
        #[command(flatten)]
        password: PasswordSource,
        /// An address or CIDR the reseller may log in from; repeat for more. None: any.
        #[arg(long = "allowed-ip", value_name = "IP_OR_CIDR", value_parser = |s: &str| parse_allowed_ip(s).map_err(|e| e.to_string()))]
        allowed_ips: Vec<ipnet::IpNet>,
        /// The account balance, a decimal number (default 0.00).
        #[arg(long, allow_negative_numbers = true, value_parser = |s: &str| parse_balance(s).map_err(|e| e.to_string()))]
        balance: Option<rust_decimal::Decimal>,
    },
    /// Change a reseller's password; revokes all of its tokens.
    Passwd {
        /// Reseller name.
        name: String,
        /// Where the new password comes from.
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a reseller: it cannot log in and its tokens stop working.
    Disable {
        /// Reseller name.
        name: String,
    },
    /// Enable a disabled reseller: its unexpired, unrevoked tokens work again.
    Enable {
        /// Reseller name.
        name: String,
    },
    /// Remove a reseller and all of its tokens; its user groups stay, unowned.
    Remove {
        /// Reseller name.
        name: String,
    },
    /// List resellers.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tokenauth throttle ...`
#[derive(Debug, Subcommand)]
pub enum ThrottleCommand {
    /// List the counters in force: scope, address or account, failures in the window,
    /// lockouts so far and when the current one ends.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reset counters, ending their lockouts (e.g. after a user has been locked out by
    /// someone else's guessing).
    #[command(group(clap::ArgGroup::new("subject").required(true).multiple(false).args(["user", "reseller", "ip"])))]
    Clear {
        /// The counter of this user name.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The counter of this reseller name.
        #[arg(long, value_name = "NAME")]
        reseller: Option<String>,
        /// The counter of this client address (an IPv6 address clears its /64).
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::IpAddr>,
    },
}

/// `tokenauth group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a user group.
    Add {
        /// Group name.
        name: String,
        /// A regular expression the client IP of its users must match at login (an
        /// unanchored search over e.g. `10.1.2.3`: anchor it with ^...$). Checked here.
        #[arg(long, value_name = "RE", value_parser = |s: &str| check_allowed_regex(s).map(|()| s.to_owned()).map_err(|e| e.to_string()))]
        allowed_regex: Option<String>,
        /// The reseller that owns the group (shown in its login's `user_groups`).
        #[arg(long, value_name = "NAME")]
        reseller: Option<String>,
    },
    /// List user groups with their regexes, owners and member counts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user group (refused while users are in it).
    Remove {
        /// Group name.
        name: String,
    },
}

/// `tokenauth role ...`
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role.
    Add {
        /// Role name (e.g. root, admin, user).
        name: String,
        /// Integer code (Webitel: root=2, admin=1, user=0).
        #[arg(long, allow_negative_numbers = true)]
        code: i64,
        /// The ACL as JSON: {"resource": ["*" | "r" | "w" | ...], ...}.
        #[arg(long, value_name = "JSON", required_unless_present = "acl_file", conflicts_with = "acl_file")]
        acl: Option<String>,
        /// Read the ACL JSON from a file.
        #[arg(long, value_name = "FILE")]
        acl_file: Option<PathBuf>,
    },
    /// List roles with their codes, member counts and ACLs.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a role (refused while users have it).
    Remove {
        /// Role name.
        name: String,
    },
}

/// `tokenauth keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key and sign with it from now on; tokens signed by older keys keep
    /// verifying. Running servers pick it up within a minute. Prints the new kid.
    Rotate,
    /// List the keys (ids and times, never the secrets) and which one signs.
    List,
}

/// Where a password comes from. `--password` is redacted in `Debug`.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The password (visible to other local users in the process list: prefer --password-stdin).
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSource")
            .field("password_stdin", &self.password_stdin)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// `tokenauth token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token for a user (or, with --reseller, a reseller); prints only the token
    /// (shown once).
    Issue {
        /// User name (a reseller's name with --reseller).
        name: String,
        /// NAME is a reseller's (dialer only).
        #[arg(long)]
        reseller: bool,
        /// The dialect that will accept it.
        #[arg(long, value_enum)]
        dialect: DialectName,
        /// A static token: no expiry unless --ttl.
        #[arg(long = "static")]
        static_token: bool,
        /// Lifetime, e.g. 24h or 30d (a session token defaults to the dialect's lifetime).
        #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
        ttl: Option<Duration>,
        /// A note stored with the token.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Print {"id","token","expires"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a user's tokens (never the token strings, which are not stored).
    List {
        /// User name (a reseller's name with --reseller).
        name: String,
        /// NAME is a reseller's.
        #[arg(long)]
        reseller: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (a UUID, as `token list` shows).
        id: Uuid,
    },
    /// Disable a token by id.
    Disable {
        /// Token id.
        id: Uuid,
    },
    /// Enable a disabled token by id.
    Enable {
        /// Token id.
        id: Uuid,
    },
}

/// Dialects a token can be minted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectName {
    /// UUID tokens for /auth/login, /auth/bump, /auth/logout.
    Usertoken,
    /// Hex tokens for /auth/login/, /auth/logout/, /auth/logoutall/.
    Knox,
    /// HS256 JWTs for /login, /logout (prints the key, then the token).
    Webitel,
    /// HS256 JWTs for /session.json and the reseller endpoints.
    Dialer,
}

impl From<DialectName> for DialectId {
    fn from(d: DialectName) -> Self {
        match d {
            DialectName::Usertoken => DialectId::Usertoken,
            DialectName::Knox => DialectId::Knox,
            DialectName::Webitel => DialectId::Webitel,
            DialectName::Dialer => DialectId::Dialer,
        }
    }
}

impl Cli {
    /// Load the configuration, start logging and run the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let overrides = Overrides {
            bind: match &self.command {
                Command::Serve { bind } => *bind,
                _ => None,
            },
            database_url: self.database_url.clone(),
            log_format: self.log_format,
        };
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("TOKENAUTH_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
        let loaded = config::load(file.as_deref(), &overrides)?;
        let serving = matches!(self.command, Command::Serve { .. });
        // why: the server logs its requests; an admin command should print only its result.
        telemetry::init(loaded.config.log_format, if serving { "info,sqlx=warn" } else { "warn" });
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let config = loaded.config;
        match self.command {
            Command::Serve { .. } => Server::bind(config).await?.run(shutdown_signal()).await,
            Command::Migrate => {
                let store = app::open_store(&config).await?;
                store.close().await;
                println!("migrations applied to {}", config.database_url);
                Ok(())
            }
            Command::Config => {
                print!("{}", config.to_redacted_toml()?);
                Ok(())
            }
            Command::Healthcheck { ready } => {
                healthcheck::run(config.bind, if ready { "/readyz" } else { "/healthz" }).await
            }
            Command::User(cmd) => with_service(&config, |tokens| user(cmd, tokens)).await,
            Command::Reseller(cmd) => with_service(&config, |tokens| reseller(cmd, tokens)).await,
            Command::Group(cmd) => with_service(&config, |tokens| group(cmd, tokens)).await,
            Command::Throttle(cmd) => with_service(&config, |tokens| throttle(cmd, tokens)).await,
            Command::Audit { limit, json } => {
                with_service(&config, |tokens| async move {
                    let entries = tokens.audit_log(limit).await?;
                    print!("{}", if json { output::audit_json(&entries)? } else { output::audit_table(&entries) });
                    Ok(())
                })
                .await
            }
            Command::Role(cmd) => with_service(&config, |tokens| role(cmd, tokens)).await,
            Command::Keys(cmd) => {
                let configured = config.jwt_secret.is_some();
                with_service(&config, |tokens| keys(cmd, tokens, configured)).await
            }
            Command::Token(cmd) => {
                let policies = crate::dialect::policies(&config, crate::ui::policy(&config.ui));
                with_service(&config, |tokens| token(cmd, tokens, policies)).await
            }
        }
    }
}

/// Open the store, run `f` on a token service over it, and close the store either way.
async fn with_service<F, Fut>(config: &Config, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<TokenService>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let store: Arc<dyn Store> = app::open_store(config).await?;
    let tokens = app::token_service(config, Arc::clone(&store), Arc::new(SystemClock)).await?;
    let result = f(tokens).await;
    store.close().await;
    result
}

/// A positive lifetime of at most 100 years.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("a lifetime must be positive (omit --ttl for a token that never expires)".into());
    }
    if d > config::MAX_LIFETIME {
        return Err("a lifetime must be at most 100 years (omit --ttl for a token that never expires)".into());
    }
    Ok(d)
}

fn read_password(source: PasswordSource) -> anyhow::Result<SecretString> {
    let password = match source.password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
        }
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(SecretString::from(password))
}

async fn user(cmd: UserCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    let kind = PrincipalKind::User;
    match cmd {
        UserCommand::Add { name, password, role, group, admin, sms_from } => {
            let profile =
                NewProfile { role, group, attributes: Attributes { admin, sms_from, ..Attributes::default() } };
            let created = tokens.create_principal(kind, &name, read_password(password)?, &profile).await?;
            let mut extras = Vec::new();
            if let Some(role) = &created.role {
                extras.push(format!("role {}", role.name));
            }
            if let Some(group) = &created.group {
                extras.push(format!("group {}", group.name));
            }
            if created.attributes.admin {
                extras.push("admin".to_owned());
            }
            let extras = if extras.is_empty() { String::new() } else { format!(" with {}", extras.join(", ")) };
            println!("created user {} (id {}){extras}", created.name, created.id);
        }
        UserCommand::SetRole { name, role, none: _ } => {
            tokens.set_principal_role(kind, &name, role.as_deref()).await?;
            match role {
                Some(role) => println!("user {name} now has role {role}"),
                None => println!("user {name} has no role now"),
            }
        }
        UserCommand::SetGroup { name, group, none: _ } => {
            tokens.set_principal_group(kind, &name, group.as_deref()).await?;
            match group {
                Some(group) => println!("user {name} is now in group {group}"),
                None => println!("user {name} is in no group now"),
            }
        }
        UserCommand::Passwd { name, password } => {
            tokens.set_password(kind, &name, read_password(password)?).await?;
            println!("password changed for user {name}; all of its tokens are revoked");
        }
        UserCommand::Disable { name } => {
            tokens.set_principal_enabled(kind, &name, false).await?;
            println!("disabled user {name}");
        }
        UserCommand::Enable { name } => {
            tokens.set_principal_enabled(kind, &name, true).await?;
            println!("enabled user {name}");
        }
        UserCommand::Remove { name } => {
            tokens.remove_principal(kind, &name).await?;
            println!("removed user {name} and its tokens");
        }
        UserCommand::List { json } => {
            let users = tokens.list_principals(kind).await?;
            print!("{}", if json { output::principals_json(&users)? } else { output::principals_table(&users) });
        }
    }
    Ok(())
}

async fn reseller(cmd: ResellerCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    let kind = PrincipalKind::Reseller;
    match cmd {
        ResellerCommand::Add { name, password, allowed_ips, balance } => {
            let profile = NewProfile {
                attributes: Attributes { allowed_ips, balance, ..Attributes::default() },
                ..NewProfile::default()
            };
            let created = tokens.create_principal(kind, &name, read_password(password)?, &profile).await?;
            println!("created reseller {} (id {})", created.name, created.id);
        }
        ResellerCommand::Passwd { name, password } => {
            tokens.set_password(kind, &name, read_password(password)?).await?;
            println!("password changed for reseller {name}; all of its tokens are revoked");
        }
        ResellerCommand::Disable { name } => {
            tokens.set_principal_enabled(kind, &name, false).await?;
            println!("disabled reseller {name}");
        }
        ResellerCommand::Enable { name } => {
            tokens.set_principal_enabled(kind, &name, true).await?;
            println!("enabled reseller {name}");
        }
        ResellerCommand::Remove { name } => {
            tokens.remove_principal(kind, &name).await?;
            println!("removed reseller {name} and its tokens");
        }
        ResellerCommand::List { json } => {
            let resellers = tokens.list_principals(kind).await?;
            print!("{}", if json { output::resellers_json(&resellers)? } else { output::resellers_table(&resellers) });
        }
    }
    Ok(())
}

async fn group(cmd: GroupCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Add { name, allowed_regex, reseller } => {
            let created = tokens.create_group(&name, allowed_regex.as_deref(), reseller.as_deref()).await?;
            println!("created user group {} (id {})", created.group.name, created.group.id);
        }
        GroupCommand::List { json } => {
            let groups = tokens.list_groups(None).await?;
            print!("{}", if json { output::groups_json(&groups)? } else { output::groups_table(&groups) });
        }
        GroupCommand::Remove { name } => {
            tokens.remove_group(&name).await?;
            println!("removed user group {name}");
        }
    }
    Ok(())
}

async fn throttle(cmd: ThrottleCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    match cmd {
        ThrottleCommand::List { json } => {
            let counters = tokens.throttle_counters().await?;
            let now = tokens.now();
            let throttle = tokens.throttle();
            print!(
                "{}",
                if json {
                    output::throttle_json(&counters, throttle, now)?
                } else {
                    output::throttle_table(&counters, throttle, now)
                }
            );
        }
        ThrottleCommand::Clear { user, reseller, ip } => {
            let (scope, subject) = match (user, reseller, ip) {
                (Some(name), _, _) => (ThrottleScope::Account, account_subject(PrincipalKind::User, &name)),
                (_, Some(name), _) => (ThrottleScope::Account, account_subject(PrincipalKind::Reseller, &name)),
                (_, _, Some(ip)) => (ThrottleScope::Ip, Some(ip_subject(ip))),
                _ => bail!("give --user, --reseller or --ip"),
            };
            let Some(subject) = subject else { bail!("that is not a valid account name, so it has no counter") };
            if tokens.clear_throttle(scope, &subject).await? {
                println!("cleared the throttle counter of {subject}");
            } else {
                println!("no throttle counter for {subject}");
            }
        }
    }
    Ok(())
}

fn kind_of(reseller: bool) -> PrincipalKind {
    if reseller { PrincipalKind::Reseller } else { PrincipalKind::User }
}

async fn token(cmd: TokenCommand, tokens: Arc<TokenService>, policies: Policies) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue { name, reseller, dialect, static_token, ttl, note, json } => {
            if reseller && dialect != DialectName::Dialer {
                bail!("--reseller works with --dialect dialer only: resellers log in through the dialer dialect");
            }
            let policy = policies.get(dialect.into());
            let options = MintOptions { static_token, ttl, note };
            let issued = tokens.mint(policy, kind_of(reseller), &name, options).await?;
            if json {
                println!("{}", output::issued_json(&issued)?);
            } else if dialect == DialectName::Webitel {
                // why: a webitel client needs both: the token, and its key for /logout.
                println!("{}\n{}", issued.record.id, issued.token.expose());
            } else {
                println!("{}", issued.token.expose());
            }
        }
        TokenCommand::List { name, reseller, json } => {
            let list = tokens.list(kind_of(reseller), &name).await?;
            let now = tokens.now();
            print!("{}", if json { output::tokens_json(&list, now)? } else { output::tokens_table(&list, now) });
        }
        TokenCommand::Revoke { id } => {
            tokens.revoke_by_id(id).await?;
            println!("revoked token {id}");
        }
        TokenCommand::Disable { id } => {
            tokens.set_token_enabled(id, false).await?;
            println!("disabled token {id}");
        }
        TokenCommand::Enable { id } => {
            tokens.set_token_enabled(id, true).await?;
            println!("enabled token {id}");
        }
    }
    Ok(())
}

async fn role(cmd: RoleCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Add { name, code, acl, acl_file } => {
            let json = match (acl, acl_file) {
                (Some(json), _) => json,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the ACL file {}", path.display()))?,
                (None, None) => bail!("give the ACL with --acl JSON or --acl-file FILE"),
            };
            let acl = parse_acl(&json)?;
            let created = tokens.create_role(&name, code, &acl).await?;
            println!(
                "created role {} (code {}, {} resources)",
                created.role.name,
                created.role.code,
                created.role.acl.len()
            );
        }
        RoleCommand::List { json } => {
            let roles = tokens.list_roles().await?;
            print!("{}", if json { output::roles_json(&roles)? } else { output::roles_table(&roles)? });
        }
        RoleCommand::Remove { name } => {
            tokens.remove_role(&name).await?;
            println!("removed role {name}");
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, tokens: Arc<TokenService>, configured: bool) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate => {
            let kid = tokens.rotate_key().await?;
            println!("{kid}");
            if configured {
                eprintln!(
                    "warning: jwt_secret is configured, so it keeps signing; the new key only signs once it is removed"
                );
            }
        }
        KeysCommand::List => {
            let (stored, signing) = tokens.signing_keys().await?;
            print!("{}", output::keys_table(&stored, &signing));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["tokenauth", "user", "list", "--database-url", "sqlite::memory:", "--json"]).unwrap();
        assert_eq!(cli.database_url.as_deref(), Some("sqlite::memory:"));
    }

    #[test]
    fn a_password_source_is_required_and_exclusive() {
        assert!(Cli::try_parse_from(["tokenauth", "user", "add", "alice"]).is_err());
        assert!(
            Cli::try_parse_from(["tokenauth", "user", "add", "alice", "--password", "x", "--password-stdin"]).is_err()
        );
        assert!(Cli::try_parse_from(["tokenauth", "user", "add", "alice", "--password", "x"]).is_ok());
    }
}
