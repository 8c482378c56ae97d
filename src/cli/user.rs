//! `tokenauth user`: create users (with a role, a group and dialer attributes), change their
//! role, group or password, disable, enable and remove them, and list them.

use std::sync::Arc;

use clap::Subcommand;

use crate::model::{Attributes, PrincipalKind};
use crate::token::admin::Actor;
use crate::token::{NewProfile, TokenService, check_sms_from};

use super::output;
use super::password::{PasswordSource, read_password};

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

pub(super) async fn run(cmd: UserCommand, tokens: Arc<TokenService>) -> anyhow::Result<()> {
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
            let target = tokens.principal(kind, &name).await?;
            tokens.set_enabled_as(Actor::Operator, &target, false).await?;
            println!("disabled user {name}");
        }
        UserCommand::Enable { name } => {
            let target = tokens.principal(kind, &name).await?;
            tokens.set_enabled_as(Actor::Operator, &target, true).await?;
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
