//! `tokenauth role`: add, list and remove roles (webitel: a name, an integer code, an ACL).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::token::{TokenService, parse_acl};

use super::output;

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

pub(super) async fn run(cmd: RoleCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
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
