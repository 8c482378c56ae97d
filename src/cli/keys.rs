//! `tokenauth keys`: add a JWT signing key that signs from now on, and list the stored keys and
//! which one signs.

use std::sync::Arc;

use clap::Subcommand;

use crate::token::TokenService;

use super::output;

/// `tokenauth keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key and sign with it from now on; tokens signed by older keys keep
    /// verifying. Running servers pick it up within a minute. Prints the new kid.
    Rotate,
    /// List the keys (ids and times, never the secrets) and which one signs.
    List,
}

pub(super) async fn run(cmd: KeysCommand, tokens: Arc<TokenService>, configured: bool) -> anyhow::Result<()> {
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
