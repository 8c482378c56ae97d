//! `tokenauth token`: mint a token for a user or reseller in one dialect (printed once), list a
//! principal's tokens, and revoke, disable or enable a token by id.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use uuid::Uuid;

use crate::config;
use crate::model::{DialectId, PrincipalKind};
use crate::token::admin::Actor;
use crate::token::{MintOptions, Policies, TokenService};

use super::output;

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

fn kind_of(reseller: bool) -> PrincipalKind {
    if reseller { PrincipalKind::Reseller } else { PrincipalKind::User }
}

pub(super) async fn run(cmd: TokenCommand, tokens: Arc<TokenService>, policies: Policies) -> anyhow::Result<()> {
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
            tokens.revoke_token_as(Actor::Operator, id).await?;
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
