//! The command line: `serve`, `migrate`, `config`, and the administration of users and tokens
//! against the same database the server uses.
//!
//! Policy: every subcommand loads the configuration the same way (`--config`,
//! `--database-url` and `TOKENAUTH_*` work everywhere), and every failure is one line on
//! stderr with exit code 1 (printed by `main`). Lists print a table, or JSON with `--json`.

mod audit;
mod group;
mod healthcheck;
mod import;
mod keys;
mod output;
mod password;
mod reseller;
mod role;
mod throttle;
mod token;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::app;
use crate::config::{self, Config, Overrides};
use crate::server::{Server, shutdown_signal};
use crate::store::Store;
use crate::telemetry;
use crate::token::TokenService;
use crate::token::clock::SystemClock;

pub use self::group::GroupCommand;
pub use self::import::ImportCommand;
pub use self::keys::KeysCommand;
pub use self::password::PasswordSource;
pub use self::reseller::ResellerCommand;
pub use self::role::RoleCommand;
pub use self::throttle::ThrottleCommand;
pub use self::token::{DialectName, TokenCommand};
pub use self::user::UserCommand;

/// tokenauth: a token-authentication server that speaks four existing login/logout APIs.
#[derive(Parser)]
#[command(name = "tokenauth", version = crate::model::build::LONG_VERSION, propagate_version = true)]
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
    /// Run the HTTP server (migrations run first, unless database.migrate_on_start is false).
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
    /// Move in from django-rest-knox, szurubooru, Webitel or a file: users, their passwords as
    /// they are (replaced with argon2id at each first login) and their live tokens.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Inspect and reset the login throttle's counters (failed logins per address and account).
    #[command(subcommand)]
    Throttle(ThrottleCommand),
    /// Print a shell completion script: `tokenauth completions bash > /etc/bash_completion.d/tokenauth`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `tokenauth man > /usr/local/share/man/man1/tokenauth.1`.
    Man,
    /// Exit 0 when the server at the configured bind address answers /healthz (for container
    /// HEALTHCHECKs; the image has no curl).
    Healthcheck {
        /// Ask /readyz instead: is the database reachable too?
        #[arg(long)]
        ready: bool,
    },
}

impl Cli {
    /// Load the configuration, start logging and run the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        // why first: these describe the command line itself and need no configuration.
        let mut text = Vec::new();
        match &self.command {
            // why into a buffer: clap_complete panics when its writer fails (`| head`).
            Command::Completions { shell } => {
                clap_complete::generate(*shell, &mut Cli::command(), "tokenauth", &mut text)
            }
            Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut text)?,
            _ => {}
        }
        if !text.is_empty() {
            return match std::io::Write::write_all(&mut std::io::stdout().lock(), &text) {
                // why: a reader that stopped early (`| head`) is not an error of ours.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            };
        }
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
        let _log = telemetry::init(loaded.config.log_format, if serving { "info,sqlx=warn" } else { "warn" }, serving);
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let config = loaded.config;
        match self.command {
            Command::Serve { .. } => Server::bind(config).await?.run(shutdown_signal()).await,
            Command::Migrate => {
                let store = app::open_and_migrate(&config).await?;
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
            // why unreachable in effect: answered above, before the configuration is loaded.
            Command::Completions { .. } | Command::Man => Ok(()),
            Command::User(cmd) => with_service(&config, |tokens| user::run(cmd, tokens)).await,
            Command::Reseller(cmd) => with_service(&config, |tokens| reseller::run(cmd, tokens)).await,
            Command::Group(cmd) => with_service(&config, |tokens| group::run(cmd, tokens)).await,
            Command::Throttle(cmd) => with_service(&config, |tokens| throttle::run(cmd, tokens)).await,
            Command::Audit { limit, json } => with_service(&config, |tokens| audit::run(limit, json, tokens)).await,
            Command::Role(cmd) => with_service(&config, |tokens| role::run(cmd, tokens)).await,
            Command::Keys(cmd) => {
                let configured = config.jwt_secret.is_some();
                with_service(&config, |tokens| keys::run(cmd, tokens, configured)).await
            }
            Command::Import(cmd) => {
                let policies = crate::dialect::policies(&config, crate::ui::policy(&config.ui));
                let prefix = config.knox.token_prefix.clone();
                with_service(&config, |tokens| import::run(cmd, tokens, policies, prefix)).await
            }
            Command::Token(cmd) => {
                let policies = crate::dialect::policies(&config, crate::ui::policy(&config.ui));
                with_service(&config, |tokens| token::run(cmd, tokens, policies)).await
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
