//! Count every request and time it, by matched route, into the metrics registry.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Layer: count every request and time it, by matched route.
pub(crate) async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // why a fixed set: /verify takes any method, and a client's invented methods must not
    // grow the label set without bound.
    let method = match *req.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS
        | Method::TRACE
        | Method::CONNECT => req.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    app.tokens.metrics().observe_http(&method, &route, resp.status(), started.elapsed().as_secs_f64());
    resp
}
