//! Composition: the shared state and the one router.
//!
//! `router` mounts every enabled dialect at its prefix (refusing overlapping paths as a
//! configuration error rather than panicking), adds health, and applies the cross-cutting
//! layers in one documented order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::PropagateRequestIdLayer;

use crate::config::{Config, ConfigError};
use crate::dialect::dialer::{self, Dialer, DialerReseller};
use crate::dialect::knox::{self, Knox};
use crate::dialect::usertoken::{self, Usertoken};
use crate::dialect::webitel::{self, Webitel};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::middleware::client_ip::TrustedProxies;
use crate::middleware::context::RequestContextLayer;
use crate::middleware::request_id::X_REQUEST_ID;
use crate::middleware::{access_log, error_log};
pub use crate::state::AppState;
use crate::store::{self, Store};
use crate::surface::Mount;
use crate::token::TokenService;
use crate::token::cache::TokenCache;
use crate::token::clock::Clock;
use crate::token::password::Passwords;
use crate::token::throttle::Throttle;
use crate::ui::{self, Ui};
use crate::verify::{self, Verify};
use crate::{dialect, openapi, ops};

/// The state every handler reaches: the service, the config, and the token policies built
/// once from it (each dialect's, and the web page's).
pub fn state(config: Config, tokens: Arc<TokenService>) -> AppState {
    let policies = Arc::new(dialect::policies(&config, ui::policy(&config.ui)));
    AppState { tokens, config: Arc::new(config), policies, draining: Arc::default() }
}

/// Open the configured store and run its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::connect(&config.database_url, &config.database).await?;
    if config.database.migrate_on_start {
        store.migrate().await?;
        return Ok(store);
    }
    let pending = match store.pending_migrations().await {
        Ok(pending) => pending,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    if !pending.is_empty() {
        store.close().await;
        anyhow::bail!(
            "the database schema is behind this build ({} migration{} pending: {}) and \
             database.migrate_on_start is false: run `tokenauth migrate` first",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        );
    }
    Ok(store)
}

/// Open the store and apply its pending migrations, whatever `migrate_on_start` says
/// (`tokenauth migrate`).
pub async fn open_and_migrate(config: &Config) -> Result<Arc<dyn Store>, store::StoreError> {
    let store = store::connect(&config.database_url, &config.database).await?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}

/// Build the token service over a store and a clock (loading, or creating, the JWT keys).
pub async fn token_service(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<TokenService>, Error> {
    let metrics = Arc::new(Metrics::default());
    let passwords = Passwords::new(&config.passwords, metrics.hashing.clone())?;
    let secret = config.jwt_secret.as_ref().map(|s| s.expose().clone());
    let cache = TokenCache::new(config.cache.capacity, config.cache.max_staleness);
    let service = TokenService::new(store, clock, passwords, &config.tokens, secret, metrics, cache).await?;
    let throttle = Throttle::new(config.throttle.clone(), config.http.request_timeout);
    Ok(Arc::new(service.with_throttle(throttle).with_audit_retention(config.audit.retention)))
}

/// The whole HTTP surface. Layers, outermost first:
/// 0-2. in one layer (`middleware::context`): count and time the request by matched route
///    (the metrics); keep an acceptable incoming `X-Request-Id` or set a fresh one; resolve
///    the client IP (needed by the access log and the dialects);
/// 3. the access log span and response line;
/// 4. copy the request id to the response;
/// 5. CORS, when origins are configured;
/// 6. log the error behind an error response, inside the span;
/// 7. per dialect (in `dialect::Mount`): render outside errors, catch panics, timeout, body limit.
pub fn router(state: AppState) -> Result<Router, ConfigError> {
    let config = Arc::clone(&state.config);
    let mut mounts = Vec::new();
    if config.usertoken.enabled {
        mounts.push(Mount::new::<Usertoken>(
            &config.usertoken.prefix,
            usertoken::PATHS,
            usertoken::router(),
            &config.http,
        ));
    }
    if config.knox.enabled {
        mounts.push(Mount::new::<Knox>(&config.knox.prefix, knox::PATHS, knox::router(), &config.http));
    }
    if config.webitel.enabled {
        mounts.push(Mount::new::<Webitel>(&config.webitel.prefix, webitel::PATHS, webitel::router(), &config.http));
    }
    if config.dialer.enabled {
        let prefix = &config.dialer.prefix;
        mounts.push(Mount::new::<Dialer>(prefix, dialer::USER_PATHS, dialer::user_router(), &config.http));
        mounts.push(Mount::new::<DialerReseller>(
            prefix,
            dialer::RESELLER_PATHS,
            dialer::reseller_router(),
            &config.http,
        ));
    }
    if config.verify.enabled {
        mounts.push(Mount::new::<Verify>("/", verify::PATHS, verify::router(), &config.http));
    }
    if config.ui.enabled {
        let prefix = &config.ui.prefix;
        let secure = config.ui.secure_cookie;
        mounts.push(Mount::new::<Ui>(prefix, ui::PATHS, ui::router(prefix, secure), &config.http));
        if let Some(home) = ui::home_router(prefix, secure) {
            // why no paths for the overlap check: `PREFIX/` is the web page's alone (no
            // dialect serves a bare `/` under a prefix).
            mounts.push(Mount::new::<Ui>("/", &[], home, &config.http));
        }
    }
    check_overlaps(&mounts)?;

    let mut by_prefix: BTreeMap<String, Vec<Mount>> = BTreeMap::new();
    for m in mounts {
        by_prefix.entry(m.prefix.clone()).or_default().push(m);
    }
    let mut app = ops::router().merge(openapi::router());
    if config.metrics_bind.is_none() {
        app = app.merge(ops::metrics_router());
    }
    for (prefix, group) in by_prefix {
        // why: a prefix owned by one dialect (the dialer has two mounts) answers unknown paths
        // in that dialect's shape; a shared prefix (or the root) cannot know whose shape to
        // use and falls through.
        let not_found = group.iter().all(|m| m.name == group[0].name).then(|| group[0].not_found);
        let merged = group.into_iter().fold(Router::new(), |acc, m| acc.merge(m.router));
        app = if prefix == "/" {
            app.merge(merged)
        } else if let Some(not_found) = not_found {
            app.nest(&prefix, merged.fallback(move || async move { not_found() }))
        } else {
            app.nest(&prefix, merged)
        };
    }
    let app =
        app.fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({ "error": "not found" }))).into_response() });

    let trusted = TrustedProxies::new(config.trusted_proxies.clone());
    let layers = ServiceBuilder::new()
        .layer(RequestContextLayer::new(Arc::clone(&state.tokens), trusted))
        .layer(access_log::layer(config.http.access_log))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .option_layer(cors(&config))
        .layer(middleware::from_fn(error_log::log_errors));
    Ok(app.layer(layers).with_state(state))
}

/// `/metrics` alone, for the separate `metrics_bind` listener.
pub fn metrics_router(state: AppState) -> Router {
    ops::metrics_router().with_state(state)
}

/// Refuse two mounted routes with the same full path, or one that shadows health.
fn check_overlaps(mounts: &[Mount]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, &str> = ops::PATHS.iter().map(|p| ((*p).to_owned(), "health")).collect();
    seen.extend(openapi::PATHS.iter().map(|p| ((*p).to_owned(), "openapi")));
    seen.extend(ops::METRICS_PATHS.iter().map(|p| ((*p).to_owned(), "metrics")));
    for m in mounts {
        for path in m.paths {
            let full = format!("{}{path}", m.prefix.trim_end_matches('/'));
            if let Some(other) = seen.insert(full.clone(), m.name) {
                return Err(ConfigError(format!(
                    "the {} and {other} dialects both serve {full}: give one of them another prefix",
                    m.name
                )));
            }
        }
    }
    Ok(())
}

fn cors(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<_> = config.cors.allowed_origins.iter().filter_map(|o| o.parse().ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-access-token"),
                HeaderName::from_static("x-key"),
            ])
            // why: an hour of cached preflights; the allowed set only changes with a restart.
            .max_age(Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpConfig;

    #[test]
    fn overlapping_paths_are_a_configuration_error() {
        let http = HttpConfig::default();
        let a = Mount::new::<Knox>("/", &["/auth/login/"], Router::new(), &http);
        let b = Mount::new::<Usertoken>("", &["/auth/login/"], Router::new(), &http);
        let err = check_overlaps(&[a, b]).unwrap_err().to_string();
        assert!(err.contains("/auth/login/") && err.contains("knox") && err.contains("usertoken"), "{err}");

        let health = Mount::new::<Knox>("/", &["/healthz"], Router::new(), &http);
        assert!(check_overlaps(&[health]).unwrap_err().to_string().contains("health"));

        let apart = [
            Mount::new::<Knox>("/a", &["/auth/login/"], Router::new(), &http),
            Mount::new::<Usertoken>("/b", &["/auth/login/"], Router::new(), &http),
        ];
        assert!(check_overlaps(&apart).is_ok());
    }
}
