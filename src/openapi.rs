//! The OpenAPI document at `/openapi.json`, generated from the handlers' annotations.
//!
//! Policy: every handler carries a `#[utoipa::path]` next to its code, with every status it
//! or its layers can answer and the body of each (a later issue runs schemathesis against this
//! document, which fails on an undocumented status or a body that breaks its schema). Each
//! dialect file holds its own `Api` (its paths relative to its prefix, its error shape and the
//! answers its layers give on any route); this module composes them from the effective config
//! at request time: only enabled dialects, each under its configured prefix, plus health and
//! this document itself. Nothing here is hand-maintained JSON.
//!
//! The document is built per request, not cached in a global, so two apps with different
//! configs (tests, replicas) never share one.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::config::Config;
use crate::dialect::{dialer, knox, usertoken, webitel};
use crate::state::AppState;
use crate::{ops, verify};

/// Paths served here, for the overlap check.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/openapi.json"];

/// The route.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

// The security schemes' names, as the annotations' `security(("bearer" = []))` spell them
// (utoipa wants literals there).
/// `Authorization: Basic base64(user:password)` (usertoken login).
const BASIC: &str = "basic";
/// `Authorization: Bearer <token>` (usertoken, dialer, `/verify`).
const BEARER: &str = "bearer";
/// `Authorization: Token <token>` (knox, `/verify`).
const TOKEN: &str = "token";

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "openapi",
    operation_id = "openapi_json",
    summary = "This OpenAPI document, for the effective configuration",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document: only the enabled dialects, each under its prefix",
            body = Object),
        (status = 405, description = "Another method than GET (empty body)",
            headers(("Allow" = String, description = "The allowed methods"))),
    )
)]
async fn openapi_json(State(app): State<AppState>) -> Response {
    axum::Json(document(&app.config)).into_response()
}

/// The document for `config`: health, this document, `/verify` and every enabled dialect
/// under its prefix.
pub fn document(config: &Config) -> utoipa::openapi::OpenApi {
    let mut doc = RootApi::openapi();
    if config.usertoken.enabled {
        doc = mount(doc, &config.usertoken.prefix, usertoken::Api::openapi());
    }
    if config.knox.enabled {
        let mut api = knox::Api::openapi();
        knox::set_logout_status(&mut api, config.knox.logout_status);
        doc = mount(doc, &config.knox.prefix, api);
    }
    if config.webitel.enabled {
        doc = mount(doc, &config.webitel.prefix, webitel::Api::openapi());
    }
    if config.dialer.enabled {
        // why one mount: the user and reseller routes share `dialer.prefix` and move together.
        doc = mount(doc, &config.dialer.prefix, dialer::Api::openapi());
    }
    if config.verify.enabled {
        doc.merge(verify::Api::openapi());
    }
    if config.metrics_bind.is_none() {
        doc.merge(ops::MetricsApi::openapi());
    }
    unique_operation_ids(&mut doc);
    doc
}

/// Suffix `_<method>` to an operation id shared by several operations. why: utoipa gives
/// every method of a `method(get, post, ...)` annotation (`/verify`'s) the same id, and the
/// specification wants ids unique.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut uses = BTreeMap::<String, usize>::new();
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations(item) {
            if let Some(id) = &op.operation_id {
                *uses.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        for (method, op) in operations(item) {
            if let Some(id) = op.operation_id.as_mut()
                && uses.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                id.push('_');
                id.push_str(method);
            }
        }
    }
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// `api`'s paths under `prefix` (`/` or empty: at the root), its components and tags merged.
fn mount(doc: utoipa::openapi::OpenApi, prefix: &str, api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.nest(prefix.trim_end_matches('/'), api)
}

/// What is always there: info, the security schemes, health and this document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokenauth",
        version = env!("CARGO_PKG_VERSION"),
        description = "A token-authentication server speaking four existing login/logout APIs \
            (usertoken, knox, webitel, dialer) over one token store, plus a forward-auth endpoint \
            for reverse proxies. Only the dialects enabled in the running configuration are \
            listed, each under its configured prefix.",
    ),
    paths(crate::ops::healthz, crate::ops::readyz, openapi_json),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness for orchestrators"),
        (name = "openapi", description = "This document"),
    )
)]
struct RootApi;

/// The security schemes, named by how the token travels (not by dialect), so that one
/// operation can accept several and a disabled dialect never leaves a dangling name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("`Authorization: Basic base64(username:password)`".into());
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("`Authorization: Bearer <token>`".into());
        components.add_security_scheme(BASIC, SecurityScheme::Http(basic));
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        // why an API key: `Token` is not a registered HTTP scheme; this is how Django REST
        // framework's own schema generators describe knox tokens.
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Authorization: Token <token>` (the scheme word is compared case-insensitively)",
            ))),
        );
    }
}
