//! tokenauth: a standalone token-authentication server.
//!
//! A guided map, lowest layer first (each module imports only from those before it; CI checks
//! it with `scripts/check-layers.py`):
//! - `model`: what tokenauth knows about (principals, tokens, dialects, ...); imports nothing.
//! - `config`: loaded once, in layers. `store`: the `Store` trait and its one SQL
//!   implementation over Postgres or SQLite. `error`: the one error type. `metrics`: the
//!   registry.
//! - `token`: the `TokenService`, the only policy code (no axum).
//! - `state`, `middleware`, `surface`: what the HTTP surfaces share. Then the surfaces: each
//!   `dialect` parses its wire shape and calls the service; `verify`, `ui`, `ops`, `openapi`.
//! - `app` composes the router, `server` serves it, `cli` runs everything.

/// Composition root: the state builder and the router with its layers.
pub mod app;
/// The command line: serve, migrate, config; users, resellers, groups, roles, keys, tokens.
pub mod cli;
/// Configuration: defaults, TOML file, `TOKENAUTH_*` environment, CLI flags.
pub mod config;
/// Wire dialects: usertoken, knox, webitel and dialer adapters over the token service.
pub mod dialect;
/// The one error type.
pub mod error;
/// Moving in: `tokenauth import` from django-rest-knox, szurubooru, Webitel or a file.
pub mod import;
/// The Prometheus metrics registry (served by `ops`).
pub mod metrics;
/// Cross-cutting HTTP layers: request id, client IP, access log, error log, metrics.
pub mod middleware;
/// The model: principals, tokens, dialects and the rest; the lowest layer.
pub mod model;
/// The OpenAPI document of every endpoint, generated from the code.
pub mod openapi;
/// The operations surface: `/healthz`, `/readyz`, `/metrics`.
pub mod ops;
/// Binding, serving and graceful shutdown.
pub mod server;
/// `AppState`, what every handler reaches.
pub mod state;
/// The storage seam and its one implementation over Postgres and SQLite.
pub mod store;
/// What every HTTP surface shares: error shapes, the per-mount layers, credential parsers.
pub mod surface;
/// Logging setup.
pub mod telemetry;
/// Strategies shared by the property tests (proptest) of every parser of untrusted input
/// (`Authorization` headers, token shapes, JWTs, RFC 3339 times, forwarding headers and
/// allowed-IP networks), which live in a `proptests` module next to each parser: the parsers
/// must never panic and must accept exactly what they document.
#[cfg(test)]
mod test_strategies;
/// The token service: issue, authenticate, bump, revoke, list; passwords; the clock; the
/// administrators' actions.
pub mod token;
/// The static-token web page at `/ui/`: sign-in, my tokens, administrators' pages.
pub mod ui;
/// `/verify`, the forward-auth endpoint for reverse proxies.
pub mod verify;
