//! Health endpoints for orchestrators: `/healthz` says the process is up (no database
//! access, so a database outage does not get the process killed); `/readyz` says the
//! database answers (503 when it does not, so traffic is routed elsewhere).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;

/// Paths served here, for the overlap check.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/healthz", "/readyz"];

/// The health routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The body of a health answer (OpenAPI only; the handlers write it with `json!`).
#[derive(ToSchema)]
#[allow(dead_code)] // why: a schema only.
pub(crate) struct HealthStatus {
    /// `ok` (`/healthz`), `ready` or `unavailable` (`/readyz`).
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
        (status = 503, description = "The database does not answer: `{\"status\": \"unavailable\"}`",
            body = HealthStatus),
    )
)]
async fn readyz(State(app): State<AppState>) -> Response {
    // why a deadline: health has no request timeout, and a pooled connection to a database
    // that stopped answering (dropped packets, no RST) waits on `SELECT 1` until the network
    // heals. A probe must answer, and within the acquire timeout a healthy database has.
    let deadline = app.config.database.acquire_timeout;
    let failed = match tokio::time::timeout(deadline, app.tokens.ping()).await {
        Ok(Ok(())) => return axum::Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}", humantime::format_duration(deadline)),
    };
    tracing::warn!(error = %failed, "readiness check failed");
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable" }))).into_response()
}
