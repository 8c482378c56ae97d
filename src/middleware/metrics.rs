//! Count every request and time it, by matched route, into the metrics registry.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};
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
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    };
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| intern(m.as_str()));
    let resp = next.run(req).await;
    app.tokens.metrics().observe_http(method, route, resp.status(), started.elapsed().as_secs_f64());
    resp
}

/// The route template as a `&'static str`, so a request's labels allocate nothing. why
/// leaking is bounded: matched templates are the router's own routes, a fixed set (an
/// unmatched path has no template).
fn intern(route: &str) -> &'static str {
    static ROUTES: RwLock<BTreeMap<String, &'static str>> = RwLock::new(BTreeMap::new());
    if let Some(known) = ROUTES.read().unwrap_or_else(PoisonError::into_inner).get(route) {
        return known;
    }
    let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
    routes.entry(route.to_owned()).or_insert_with(|| Box::leak(route.to_owned().into_boxed_str()))
}
