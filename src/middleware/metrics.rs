//! The labels every request is counted and timed by (by `context.rs`): its method and its
//! matched route.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use axum::http::Method;

/// The method's label. why a fixed set: /verify takes any method, and a client's invented
/// methods must not grow the label set without bound.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
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
    }
}

/// The route template as a `&'static str`, so a request's labels allocate nothing. why
/// leaking is bounded: matched templates are the router's own routes, a fixed set (an
/// unmatched path has no template).
pub(crate) fn intern(route: &str) -> &'static str {
    static ROUTES: RwLock<BTreeMap<String, &'static str>> = RwLock::new(BTreeMap::new());
    if let Some(known) = ROUTES.read().unwrap_or_else(PoisonError::into_inner).get(route) {
        return known;
    }
    let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
    routes.entry(route.to_owned()).or_insert_with(|| Box::leak(route.to_owned().into_boxed_str()))
}
