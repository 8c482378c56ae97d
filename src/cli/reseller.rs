//! `tokenauth reseller`: create dialer resellers (with allowed addresses and a balance),
//! change their password, disable, enable and remove them, and list them.

use std::sync::Arc;

use clap::Subcommand;

use crate::model::{Attributes, PrincipalKind};
use crate::token::admin::Actor;
use crate::token::{NewProfile, TokenService, parse_allowed_ip, parse_balance};

use super::output;
use super::password::{PasswordSource, read_password};

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

pub(super) async fn run(cmd: ResellerCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
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
            let target = tokens.principal(kind, &name).await?;
            tokens.set_enabled_as(Actor::Operator, &target, false).await?;
            println!("disabled reseller {name}");
        }
        ResellerCommand::Enable { name } => {
            let target = tokens.principal(kind, &name).await?;
            tokens.set_enabled_as(Actor::Operator, &target, true).await?;
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
