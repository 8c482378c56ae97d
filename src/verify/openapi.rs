//! `/verify`'s part of the OpenAPI document: its shapes, headers and answers (descriptions
//! only; the handler writes the same shapes).

use serde::Serialize;
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

/// `/verify`'s part of the OpenAPI document, merged when `verify.enabled`.
#[derive(OpenApi)]
#[openapi(
    paths(super::verify, super::verify_envoy),
    components(schemas(VerifyOk, VerifyRefused)),
    tags((name = "verify", description = "Forward authentication for reverse proxies (nginx auth_request, \
        Traefik ForwardAuth, Envoy ext_authz); accepts every dialect's tokens"))
)]
pub(crate) struct Api;

/// The body of `/verify`'s 200; the same identity is in the `X-Auth-*` headers (or, with a
/// `verify.headers` preset, part of it in that preset's headers).
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
///     params(crate::verify::openapi::VerifyHeaders, crate::verify::openapi::VerifyQuery),
///     responses(crate::verify::openapi::VerifyResponses)
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
        ("Remote-User" = String, description = "With `verify.headers = \"authelia\"`, instead of the X-Auth-* set: the user's name"),
        ("Remote-Groups" = String, description = "`authelia`: the user's role (one group); absent without a role"),
        ("Remote-Name" = String, description = "`authelia`: the user's name (tokenauth has no display name)"),
        ("X-Auth-Request-User" = String, description = "With `verify.headers = \"oauth2-proxy\"`, instead of the X-Auth-* set: the user's name"),
        ("X-Auth-Request-Groups" = String, description = "`oauth2-proxy`: the user's role (one group); absent without a role"),
        ("X-Auth-Request-Preferred-Username" = String, description = "`oauth2-proxy`: the user's name"),
    ))]
    Ok(VerifyOk),
    /// No token, or a malformed, unknown, expired, revoked or disabled one.
    #[response(status = 401, headers(
        ("WWW-Authenticate" = String, description = "`Bearer realm=\"tokenauth\"`, with `error=\"invalid_token\"` unless the token was missing"),
        ("X-Auth-Reason" = String, description = "`missing`, `malformed`, `unknown`, `expired`, `revoked` or `disabled`"),
    ))]
    Unauthorized(VerifyRefused),
    /// The token's role lacks the permission an ACL rule asks for (or ACL rules are
    /// configured and the proxy did not send `X-Original-URI`), or a reseller's token under
    /// a `verify.headers` preset, which has no word for resellers.
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
