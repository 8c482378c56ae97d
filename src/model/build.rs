//! Which build this is: the package version, the git commit and the build date, baked in by
//! `build.rs` so that `--version` and the `tokenauth_build_info` metric tell builds apart
//! without git at run time.

/// The package version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The first 12 hex digits of the commit built, or `unknown` (a build without git and
/// without `TOKENAUTH_BUILD_COMMIT`).
pub const COMMIT: &str = env!("TOKENAUTH_BUILD_COMMIT");
/// The build date, `YYYY-MM-DD` (UTC; `SOURCE_DATE_EPOCH` when set).
pub const DATE: &str = env!("TOKENAUTH_BUILD_DATE");
/// What `--version` prints after the name: `0.1.0 (commit 0123456789ab, built 2026-12-06)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TOKENAUTH_BUILD_COMMIT"),
    ", built ",
    env!("TOKENAUTH_BUILD_DATE"),
    ")"
);
