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
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use crate::app::AppState;
use crate::config::Config;
use crate::dialect::{dialer, knox, usertoken, webitel};

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
        doc.merge(VerifyApi::openapi());
    }
    if config.metrics_bind.is_none() {
        doc.merge(MetricsApi::openapi());
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
    paths(crate::health::healthz, crate::health::readyz, openapi_json),
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

/// Marks the request body of `POST <path>` optional: an empty body is accepted, while a body
/// that is sent must fit the schema. why: utoipa makes a body optional only for an `Option<T>`
/// content, and then also admits JSON `null`, which the handlers refuse.
pub(crate) struct OptionalBody(pub(crate) &'static str);

impl Modify for OptionalBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let op = openapi.paths.paths.get_mut(self.0).and_then(|item| item.post.as_mut());
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// `/metrics`, merged when it is served on the main listener (no `metrics_bind`).
#[derive(OpenApi)]
#[openapi(paths(crate::metrics::serve), tags((name = "metrics", description = "Prometheus metrics")))]
struct MetricsApi;

/// `/verify`'s part of the document, merged when `verify.enabled`.
#[derive(OpenApi)]
#[openapi(
    paths(crate::verify::verify, crate::verify::verify_envoy),
    components(schemas(VerifyOk, VerifyRefused)),
    tags((name = "verify", description = "Forward authentication for reverse proxies (nginx auth_request, \
        Traefik ForwardAuth, Envoy ext_authz); accepts every dialect's tokens"))
)]
struct VerifyApi;

/// The body of `/verify`'s 200; the same identity is in the `X-Auth-*` headers.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // why: a schema only; the handler builds the same shape.
pub(crate) struct VerifyOk {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub(crate) status: String,
    /// The principal's name.
    pub(crate) user: String,
    /// The principal's id.
    pub(crate) user_id: i64,
    /// The principal's kind.
    #[schema(inline)]
    pub(crate) kind: VerifyKind,
    /// The principal's role name, `null` without a role.
    #[schema(required = true)]
    pub(crate) role: Option<String>,
    /// The token's id.
    #[schema(format = "uuid")]
    pub(crate) token_id: String,
    /// The dialect that issued the token (`usertoken`, `knox`, `webitel`, `dialer`).
    pub(crate) dialect: String,
    /// The token's expiry (RFC 3339, UTC), `null` when it never expires.
    #[schema(required = true, format = DateTime)]
    pub(crate) expires: Option<String>,
}

/// `user` or `reseller`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // why: a schema only.
pub(crate) enum VerifyKind {
    /// A user.
    User,
    /// A reseller (dialer).
    Reseller,
}

/// The body of every refusal of `/verify`; `reason` is also in `X-Auth-Reason`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // why: a schema only; the handler builds the same shape.
pub(crate) struct VerifyRefused {
    /// `unauthorized` (401), `forbidden` (403), `unavailable` (503), `too_large` (413),
    /// `not_found` (404) or `error` (500).
    #[schema(example = "unauthorized")]
    pub(crate) status: String,
    /// 401: `missing`, `malformed`, `unknown`, `expired`, `revoked` or `disabled`; otherwise
    /// the same word as `status`.
    #[schema(example = "expired")]
    pub(crate) reason: String,
}

/// The request headers `/verify` reads (besides `Authorization`, which the `bearer` and
/// `token` security schemes describe). Use as `params(VerifyHeaders, VerifyQuery)`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // why: a description only; the handler reads the headers itself.
pub(crate) struct VerifyHeaders {
    /// A token (any dialect's), as webitel clients send it.
    #[param(rename = "X-Access-Token")]
    pub(crate) x_access_token: Option<String>,
    /// With `X-Access-Token`: the token's id (webitel's `key`), which must then match.
    #[param(rename = "X-Key")]
    pub(crate) x_key: Option<String>,
    /// The proxied request's URI (nginx); a `token` or `access_token` (+ `x_key`) query
    /// parameter in it is a token, and ACL rules match its path.
    #[param(rename = "X-Original-URI")]
    pub(crate) x_original_uri: Option<String>,
    /// As `X-Original-URI` (Traefik), read when that is absent.
    #[param(rename = "X-Forwarded-Uri")]
    pub(crate) x_forwarded_uri: Option<String>,
    /// The proxied request's method, for ACL rules (default: `/verify`'s own method).
    #[param(rename = "X-Original-Method")]
    pub(crate) x_original_method: Option<String>,
    /// As `X-Original-Method` (Traefik), read when that is absent.
    #[param(rename = "X-Forwarded-Method")]
    pub(crate) x_forwarded_method: Option<String>,
}

/// The query parameters of `/verify` itself, the last place a token is looked for.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // why: a description only; the handler reads the query itself.
pub(crate) struct VerifyQuery {
    /// A token (any dialect's).
    pub(crate) token: Option<String>,
    /// As `token` (webitel's name).
    pub(crate) access_token: Option<String>,
    /// With `access_token`: the token's id, which must then match.
    pub(crate) x_key: Option<String>,
}

/// Every answer of `/verify`, with its headers. A template for the handler's annotation
/// (HEAD is left out on purpose: its answers have no body, which a JSON-documented response
/// would contradict; the operation id the methods share is made unique per method by
/// `document`):
///
/// ```text
/// #[utoipa::path(
///     method(get, post, put, delete, patch, options, trace),
///     path = "/verify",
///     tag = "verify",
///     operation_id = "verify",
///     summary = "Check the token of a request a reverse proxy is about to let through",
///     security((), ("bearer" = []), ("token" = [])),
///     params(crate::openapi::VerifyHeaders, crate::openapi::VerifyQuery),
///     responses(crate::openapi::VerifyResponses)
/// )]
/// ```
#[derive(IntoResponses)]
#[allow(dead_code)] // why: a description only; the handler builds the responses itself.
pub(crate) enum VerifyResponses {
    /// The token is good (and, with ACL rules, its role holds the permission).
    #[response(status = 200, headers(
        ("X-Auth-User" = String, description = "The principal's name"),
        ("X-Auth-User-Id" = i64, description = "The principal's id"),
        ("X-Auth-Kind" = String, description = "`user` or `reseller`"),
        ("X-Auth-Role" = String, description = "The principal's role name; absent without a role"),
        ("X-Auth-Token-Id" = String, description = "The token's id (a UUID)"),
        ("X-Auth-Dialect" = String, description = "The dialect that issued the token"),
        ("X-Auth-Expires" = String, description = "The token's expiry (RFC 3339, UTC); absent when it never expires"),
    ))]
    Ok(VerifyOk),
    /// No token, or a malformed, unknown, expired, revoked or disabled one.
    #[response(status = 401, headers(
        ("WWW-Authenticate" = String, description = "`Bearer realm=\"tokenauth\"`, with `error=\"invalid_token\"` unless the token was missing"),
        ("X-Auth-Reason" = String, description = "`missing`, `malformed`, `unknown`, `expired`, `revoked` or `disabled`"),
    ))]
    Unauthorized(VerifyRefused),
    /// The token's role lacks the permission an ACL rule asks for (or ACL rules are
    /// configured and the proxy did not send `X-Original-URI`).
    #[response(status = 403, headers(("X-Auth-Reason" = String, description = "`forbidden`")))]
    Forbidden(VerifyRefused),
    /// Not served (a layer's answer; not expected on `/verify` itself).
    #[response(status = 404, headers(("X-Auth-Reason" = String, description = "`not_found`")))]
    NotFound(VerifyRefused),
    /// The request body is larger than `http.body_limit`.
    #[response(status = 413, headers(("X-Auth-Reason" = String, description = "`too_large`")))]
    TooLarge(VerifyRefused),
    /// An internal error (the cause is logged, never sent).
    #[response(status = 500, headers(("X-Auth-Reason" = String, description = "`error`")))]
    Error(VerifyRefused),
    /// The database is unreachable, the server is overloaded, or the check timed out.
    #[response(status = 503, headers(
        ("X-Auth-Reason" = String, description = "`unavailable`"),
        ("Retry-After" = u64, description = "Seconds to wait before retrying"),
    ))]
    Unavailable(VerifyRefused),
}
