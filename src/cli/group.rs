//! `tokenauth group`: add, list and remove user groups (dialer: a name, an optional IP regex,
//! an optional owning reseller).

use std::sync::Arc;

use clap::Subcommand;

use crate::token::{TokenService, check_allowed_regex};

use super::output;

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

pub(super) async fn run(cmd: GroupCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
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
