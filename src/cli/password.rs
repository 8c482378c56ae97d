//! Where `user add`, `reseller add` and their `passwd` get a password: `--password`, or the
//! first line of standard input with `--password-stdin`.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};
use clap::Args;
use secrecy::SecretString;

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

pub(super) fn read_password(source: PasswordSource) -> anyhow::Result<SecretString> {
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
