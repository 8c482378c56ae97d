//! Build-time facts baked into the binary.
//!
//! why the migrations: `sqlx::migrate!` embeds the migration files at compile time; without
//! this, adding a new .sql file would not trigger a rebuild and the binary would silently lack
//! it.
//!
//! why the commit and date here: `--version` and the `tokenauth_build_info` metric tell
//! builds apart without git at run time. The commit comes from `TOKENAUTH_BUILD_COMMIT` (set
//! by builds without a `.git`, such as the Dockerfile's) or `git rev-parse`; the date from
//! `SOURCE_DATE_EPOCH` (reproducible builds) or the clock.
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

// why allowed: the build's own date is read once at build time, outside the server's clock.
#[allow(clippy::disallowed_methods)]
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=TOKENAUTH_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = std::env::var("TOKENAUTH_BUILD_COMMIT").ok().filter(|c| !c.trim().is_empty()).or_else(git_commit);
    let commit = commit.map(|c| c.trim().chars().take(12).collect::<String>()).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TOKENAUTH_BUILD_COMMIT={commit}");

    let epoch =
        std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
        });
    let date = time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TOKENAUTH_BUILD_DATE={date}");
}

/// The checked-out commit, and a rerun whenever it moves (HEAD, or the branch it names).
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
        String::from_utf8(out.stdout).ok().map(|s| s.trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    // why only existing paths: cargo reruns a build script on every build when a path it
    // watches does not exist (a branch whose ref lives in packed-refs).
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]).filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}
