//! Log each error response once, inside the request's span: server faults at ERROR with
//! their cause (which the client never sees), refusals at DEBUG with their reason.
//! `DialectError::into_response` attaches the error; this layer reads it.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::dialect::LoggedError;

/// Layer: log the error attached to the response, if any.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if let Some(LoggedError(err)) = resp.extensions().get::<LoggedError>() {
        let status = resp.status().as_u16();
        if resp.status().is_server_error() {
            tracing::error!(status, error = %err, "request failed");
        } else {
            tracing::debug!(status, error = %err, "request refused");
        }
    }
    resp
}
