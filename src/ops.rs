//! The operations surface. Health endpoints for orchestrators: `/healthz` says the process is
//! up (no database access, so a database outage does not get the process killed); `/readyz`
//! says the database answers (503 when it does not, so traffic is routed elsewhere). And
//! `/metrics` for Prometheus (on the main listener, or alone on `metrics_bind`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use crate::state::AppState;

/// Health paths, for the overlap check.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/healthz", "/readyz"];

/// The metrics path, for the overlap check.
pub(crate) const METRICS_PATHS: &[&str] = &["/metrics"];

/// The health routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The body of a health answer (OpenAPI only; the handlers write it with `json!`).
#[derive(ToSchema)]
#[allow(dead_code)] // why: a schema only.
pub(crate) struct HealthStatus {
    /// `ok` (`/healthz`), `ready`, `unavailable` or `shutting_down` (`/readyz`).
    #[schema(example = "ok")]
    status: String,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    summary = "The process is up (no database access)",
    responses(
        (status = 200, description = "Up: `{\"status\": \"ok\"}`", body = HealthStatus),
        (status = 405, description = "Another method than GET or HEAD (empty body)",
            headers(("Allow" = String, description = "The allowed methods"))),
    )
)]
async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    summary = "The database answers",
    responses(
        (status = 200, description = "Ready: `{\"status\": \"ready\"}`", body = HealthStatus),
        (status = 405, description = "Another method than GET or HEAD (empty body)",
            headers(("Allow" = String, description = "The allowed methods"))),
        (status = 503, description = "The database does not answer: `{\"status\": \"unavailable\"}`; or the \
            process is shutting down (`http.shutdown_delay`): `{\"status\": \"shutting_down\"}`",
            body = HealthStatus),
    )
)]
async fn readyz(State(app): State<AppState>) -> Response {
    // why a deadline: health has no request timeout, and a pooled connection to a database
    // that stopped answering (dropped packets, no RST) waits on `SELECT 1` until the network
    // heals. A probe must answer, and within the acquire timeout a healthy database has.
    if app.draining.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "shutting_down" }))).into_response();
    }
    let deadline = app.config.database.acquire_timeout;
    let failed = match tokio::time::timeout(deadline, app.tokens.ping()).await {
        Ok(Ok(())) => return axum::Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}", humantime::format_duration(deadline)),
    };
    tracing::warn!(error = %failed, "readiness check failed");
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable" }))).into_response()
}

/// The `/metrics` route.
pub(crate) fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(serve))
}

/// The metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics (OpenMetrics text), unless served on metrics_bind",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 405, description = "Only GET (and HEAD)"),
        (status = 500, description = "The metrics could not be rendered (logged)"),
    )
)]
pub(crate) async fn serve(State(app): State<AppState>) -> Response {
    match app.tokens.metrics().render(app.tokens.pool_stats(), app.tokens.cache().stats()) {
        Ok(text) => {
            let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `/metrics`, merged when it is served on the main listener (no `metrics_bind`).
#[derive(OpenApi)]
#[openapi(paths(serve), tags((name = "metrics", description = "Prometheus metrics")))]
pub(crate) struct MetricsApi;
