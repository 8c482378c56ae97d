//! `tokenauth throttle`: list the login throttle's counters (failed logins per address and
//! account) and clear one, ending its lockout.

use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;

use crate::model::{PrincipalKind, ThrottleScope};
use crate::token::TokenService;
use crate::token::throttle::{account_subject, ip_subject};

use super::output;

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

pub(super) async fn run(cmd: ThrottleCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
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
