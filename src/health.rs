//! Health endpoints for orchestrators: `/healthz` says the process is up (no database
//! access, so a database outage does not get the process killed); `/readyz` says the
//! database answers (503 when it does not, so traffic is routed elsewhere).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;

/// Paths served here, for the overlap check.
pub(crate) const PATHS: &[&str] = &["/healthz", "/readyz"];

/// The health routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.tokens.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable" }))).into_response()
        }
    }
}
