//! `tokenauth import`: move in from django-rest-knox, szurubooru, Webitel, or a file in
//! tokenauth's own format (see `crate::import`). Prints a summary (or `--json`); exits 1, having
//! written nothing, when anything is refused.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::config::DatabaseUrl;
use crate::import::knox::KnoxSource;
use crate::import::szurubooru::SzurubooruSource;
use crate::import::webitel::WebitelSource;
use crate::import::{self, Batch, OnConflict, Options};
use crate::model::{KnoxHash, KnoxVersion};
use crate::token::{Policies, TokenService};

/// Where to import from.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// django-rest-knox: a Django database's users (password hashes as they are, is_active)
    /// and every knox token, with its expiry.
    Knox {
        /// The Django database (sqlite://PATH or postgres://…), opened read-only.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The user table (Papermerge: core_user).
        #[arg(long, value_name = "TABLE", default_value = "auth_user")]
        user_table: String,
        /// knox's version; auto tells it from the token table.
        #[arg(long, value_enum, default_value_t = KnoxVersionArg::Auto)]
        knox_version: KnoxVersionArg,
        /// knox's SECURE_HASH_ALGORITHM.
        #[arg(long, value_enum, default_value_t = KnoxHashArg::Sha512)]
        knox_hash: KnoxHashArg,
        /// knox 5's TOKEN_PREFIX; tokenauth's knox.token_prefix must be the same.
        #[arg(long, value_name = "P", default_value = "")]
        token_prefix: String,
        #[command(flatten)]
        common: Common,
    },
    /// szurubooru: its users (password revisions 1 to 3) and their UserTokens.
    Szurubooru {
        /// szurubooru's database (postgres://… or sqlite://PATH), opened read-only.
        #[arg(long, value_name = "URL")]
        from: String,
        /// A file holding szurubooru's `secret` (the pepper of revisions 2 and 3).
        #[arg(long, value_name = "PATH", group = "secret", required = true)]
        secret_file: Option<PathBuf>,
        /// An environment variable holding szurubooru's `secret`.
        #[arg(long, value_name = "VAR", group = "secret")]
        secret_env: Option<String>,
        /// The name of that pepper in passwords.peppers.
        #[arg(long, value_name = "NAME", default_value = "szurubooru")]
        pepper: String,
        #[command(flatten)]
        common: Common,
    },
    /// The Webitel v3 engine: live session tokens (key and expiry kept), users with their SIP
    /// HA1, and the old JWT key as a verifying key.
    Webitel {
        /// mongoexport JSON Lines of the authToken collection.
        #[arg(long, value_name = "FILE")]
        tokens: PathBuf,
        /// The directory as CSV: user@domain,ha1[,role].
        #[arg(long, value_name = "FILE")]
        directory: PathBuf,
        /// The key file the engine signs JWTs with (application:auth:tokenSecretKey).
        #[arg(long, value_name = "PATH")]
        jwt_key_file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// tokenauth's own format (JSON Lines, one principal per line; see the README).
    File {
        /// The file.
        file: PathBuf,
        /// An environment variable holding the pepper the file's hashes name (it must be the
        /// configured one).
        #[arg(long, value_name = "VAR")]
        pepper_env: Option<String>,
        /// The key the file's JWTs were signed with (HS256), kept to verify them until they
        /// expire (Hello Hunter's dialer tokens, say); its bytes as they are.
        #[arg(long, value_name = "PATH")]
        jwt_key_file: Option<PathBuf>,
        /// The name that key is kept under (another name per system).
        #[arg(long, value_name = "NAME", default_value = "file", requires = "jwt_key_file")]
        jwt_key_name: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Flags every import takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Run the import and roll it back: write nothing, print what would happen.
    #[arg(long)]
    dry_run: bool,
    /// A name that exists with another password: fail (nothing is written), skip it, or update it.
    #[arg(long, value_enum, default_value_t)]
    on_conflict: OnConflict,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// knox versions on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KnoxVersionArg {
    /// Tell it from the table.
    Auto,
    /// 4.1 (salted digests).
    #[value(name = "4.1")]
    V41,
    /// 4.2.
    #[value(name = "4.2")]
    V42,
    /// 5.x.
    #[value(name = "5")]
    V5,
}

/// knox hashes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KnoxHashArg {
    /// SHA-512 (knox's default).
    Sha512,
    /// SHA-384.
    Sha384,
    /// SHA-256.
    Sha256,
}

/// Read the source, import it, print the summary.
pub(super) async fn run(
    cmd: ImportCommand,
    tokens: Arc<TokenService>,
    policies: Policies,
    knox_prefix: String,
) -> anyhow::Result<()> {
    let (batch, common) = match cmd {
        ImportCommand::Knox { from, user_table, knox_version, knox_hash, token_prefix, common } => {
            if token_prefix != knox_prefix {
                bail!(
                    "--token-prefix {token_prefix:?} is not knox.token_prefix {knox_prefix:?}: set knox.token_prefix \
                     (TOKENAUTH_KNOX__TOKEN_PREFIX) to the old TOKEN_PREFIX, or the old tokens would be refused"
                );
            }
            let source = KnoxSource {
                from: DatabaseUrl::new(from),
                user_table,
                version: match knox_version {
                    KnoxVersionArg::Auto => None,
                    KnoxVersionArg::V41 => Some(KnoxVersion::V4_1),
                    KnoxVersionArg::V42 => Some(KnoxVersion::V4_2),
                    KnoxVersionArg::V5 => Some(KnoxVersion::V5),
                },
                hash: match knox_hash {
                    KnoxHashArg::Sha512 => KnoxHash::Sha512,
                    KnoxHashArg::Sha384 => KnoxHash::Sha384,
                    KnoxHashArg::Sha256 => KnoxHash::Sha256,
                },
                token_prefix,
            };
            (import::knox::read(&source).await?, common)
        }
        ImportCommand::Szurubooru { from, secret_file, secret_env, pepper, common } => {
            let secret = secret_from(secret_file, secret_env)?;
            let source = SzurubooruSource { from: DatabaseUrl::new(from), pepper, secret };
            (import::szurubooru::read(&source).await?, common)
        }
        ImportCommand::Webitel { tokens: file, directory, jwt_key_file, common } => {
            let source = WebitelSource { tokens: file, directory, jwt_key_file };
            (import::webitel::read(&source).await?, common)
        }
        ImportCommand::File { file, pepper_env, jwt_key_file, jwt_key_name, common } => {
            let mut batch = import::file::read(&file)?;
            if let Some(path) = jwt_key_file {
                let key =
                    std::fs::read(&path).with_context(|| format!("cannot read the JWT key file {}", path.display()))?;
                anyhow::ensure!(!key.is_empty(), "the JWT key file {} is empty", path.display());
                batch.jwt_keys.push((jwt_key_name, key));
            }
            if let Some(var) = pepper_env {
                let value = secret_from(None, Some(var))?;
                let names: std::collections::BTreeSet<String> = peppers_named(&batch);
                batch.peppers_given.extend(names.into_iter().map(|n| (n, value.clone())));
            }
            (batch, common)
        }
    };
    let options = Options { dry_run: common.dry_run, on_conflict: common.on_conflict };
    let report = import::run(&tokens, &policies, batch, options).await?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    if !report.ok() {
        bail!("the import was refused; nothing was written");
    }
    Ok(())
}

/// The names of the peppers a batch's passwords use.
fn peppers_named(batch: &Batch) -> std::collections::BTreeSet<String> {
    batch.records.iter().filter_map(|r| r.password.as_ref()?.scheme.pepper().map(str::to_owned)).collect()
}

/// A secret from a file (one trailing newline dropped) or an environment variable.
fn secret_from(file: Option<PathBuf>, env: Option<String>) -> anyhow::Result<SecretString> {
    let value = match (file, env) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned()
        }
        (None, Some(var)) => {
            std::env::var(&var).with_context(|| format!("the environment variable {var} is not set"))?
        }
        (None, None) => bail!("give --secret-file or --secret-env"),
    };
    if value.is_empty() {
        bail!("the secret is empty");
    }
    Ok(SecretString::from(value))
}
