//! `/verify`: the forward-auth endpoint reverse proxies call before letting a request through
//! (nginx `auth_request`, Traefik ForwardAuth, Envoy's HTTP ext_authz), with any method.
//!
//! Policy:
//! - It accepts a token in every transport the dialects use, issued by any dialect, static or
//!   session: `Authorization: Bearer` or `Token`; `X-Access-Token` (with `X-Key`, which must
//!   then be that token's id); a `token` or `access_token` parameter in the proxied URI
//!   (`X-Original-URI` / `X-Forwarded-Uri`) or in `/verify`'s own query string.
//! - 200 carries the identity as `X-Auth-*` headers for the proxy to pass upstream, or as
//!   Authelia's or oauth2-proxy's headers instead (`verify.headers`, see `headers`); 401 carries
//!   `WWW-Authenticate` and a machine-readable `X-Auth-Reason`; with ACL rules configured, a
//!   role without the permission gets 403 `X-Auth-Reason: forbidden`.
//! - It never writes to the database: a check is one indexed read, and last-used times go
//!   through the service's deferred, batched touch queue.

mod headers;
mod openapi;

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use self::headers::{Identity, identity_headers};
pub(crate) use self::openapi::Api;
use crate::config::IdentityHeaders;
use crate::error::{AuthFailure, Error};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError, scheme_credentials};
use crate::token::{Authenticated, acl};

/// The forward-auth endpoint, as a `ErrorShape` only so that what happens outside its handler
/// (a timeout, a caught panic) is answered in its shape. It issues no tokens.
#[derive(Debug)]
pub struct Verify;

/// Its paths.
pub(crate) const PATHS: &[&str] = &["/verify"];

/// Its routes: every method, since proxies forward whatever method they were asked; and
/// `/verify/<original path>`, because Envoy's ext_authz appends the original path to its
/// `path_prefix` and sends no header naming it.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/verify", any(verify))
        .route("/verify/", any(verify))
        .route("/verify/{*original}", any(verify_envoy))
}

static X_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-access-token");
static X_KEY: HeaderName = HeaderName::from_static("x-key");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_AUTH_REASON: HeaderName = HeaderName::from_static("x-auth-reason");

/// A token found in a request, and the key that must name it (webitel's `X-Key`), if any.
/// The token is redacted in `Debug`.
#[derive(PartialEq, Eq)]
struct Presented {
    token: String,
    key: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented").field("token", &"[REDACTED]").field("key", &self.key).finish()
    }
}

/// The first header value that is non-empty visible text.
fn header_text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// `token` (or webitel's `access_token`, with `x_key`) from a query string.
fn from_query(query: &str) -> Option<Presented> {
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = url::form_urlencoded::parse(query.as_bytes()).collect();
    let value = |name: &str| pairs.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.to_string());
    let token = value("token").or_else(|| value("access_token"))?;
    Some(Presented { token, key: value("x_key") })
}

/// Two headers naming the proxied request that disagree: a client behind a proxy that sets
/// only one of them (Traefik sets `X-Forwarded-Uri` and passes a client's `X-Original-URI`
/// on) must not pick what the rules see, so neither is believed.
#[derive(Debug, PartialEq, Eq)]
struct Conflict;

/// One of two headers, which must agree when both are present.
fn one_of<'h>(headers: &'h HeaderMap, a: &HeaderName, b: &HeaderName) -> Result<Option<&'h str>, Conflict> {
    match (header_text(headers, a), header_text(headers, b)) {
        (Some(x), Some(y)) if x != y => Err(Conflict),
        (x, y) => Ok(x.or(y)),
    }
}

/// The URI the proxy is asking about: `X-Original-URI` (nginx) or `X-Forwarded-Uri`
/// (Traefik), or for Envoy the path after `/verify` with `/verify`'s own query.
fn original_uri(headers: &HeaderMap, uri: &Uri) -> Result<Option<String>, Conflict> {
    // why the path first: on Envoy's form the client's own X-Original-URI must not speak.
    if let Some(rest) = uri.path().strip_prefix("/verify/") {
        return Ok(Some(match uri.query() {
            Some(q) => format!("/{rest}?{q}"),
            None => format!("/{rest}"),
        }));
    }
    Ok(one_of(headers, &X_ORIGINAL_URI, &X_FORWARDED_URI)?.map(str::to_owned))
}

/// Find the token, in order: `Authorization` (Bearer or Token), `X-Access-Token` (+ `X-Key`),
/// the proxied URI's query, `/verify`'s own query. A malformed `Authorization` of one of our
/// schemes is refused rather than skipped, so a client sees why its header failed.
fn presented(headers: &HeaderMap, uri: &Uri) -> Result<Presented, AuthFailure> {
    for scheme in ["Bearer", "Token"] {
        match scheme_credentials(headers, scheme) {
            Ok(token) => return Ok(Presented { token: token.to_owned(), key: None }),
            Err(AuthFailure::Missing) => {}
            Err(other) => return Err(other),
        }
    }
    if let Some(token) = header_text(headers, &X_ACCESS_TOKEN) {
        let key = header_text(headers, &X_KEY).map(str::to_owned);
        return Ok(Presented { token: token.to_owned(), key });
    }
    let original = original_uri(headers, uri).ok().flatten();
    let original_query = original.as_deref().and_then(|u| u.split_once('?')).map(|(_, q)| q);
    original_query.and_then(from_query).or_else(|| uri.query().and_then(from_query)).ok_or(AuthFailure::Missing)
}

#[utoipa::path(
    method(get, post, put, delete, patch, options, trace),
    path = "/verify",
    tag = "verify",
    operation_id = "verify",
    summary = "Check the token of a request a reverse proxy is about to let through",
    description = "Accepts every dialect's tokens, static or session, in any of their transports. \
        200 carries the identity in X-Auth-* headers, or with verify.headers = \"authelia\" or \
        \"oauth2-proxy\" in those programs' headers instead (Remote-User, Remote-Groups, Remote-Name; \
        X-Auth-Request-User, X-Auth-Request-Groups, X-Auth-Request-Preferred-Username), the \
        role as the group; under a preset a reseller's token is refused with 403. 401 says why \
        in X-Auth-Reason; 403 when [[verify.acl]] rules map the proxied request to a \
        permission the token's role lacks. Never writes to the database.",
    security((), ("bearer" = []), ("token" = [])),
    params(self::openapi::VerifyHeaders, self::openapi::VerifyQuery),
    responses(self::openapi::VerifyResponses)
)]
pub(crate) async fn verify(State(app): State<AppState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    match check(&app, &method, &uri, &headers).await {
        Ok(auth) => {
            granted(app.config.verify.headers, &auth).unwrap_or_else(|e| ShapedError::<Verify>::from(e).into_response())
        }
        Err(e) => ShapedError::<Verify>::from(e).into_response(),
    }
}

/// Envoy's ext_authz form: `path_prefix: /verify` followed by the original path.
#[utoipa::path(
    method(get, post, put, delete, patch, options, trace),
    path = "/verify/{original}",
    tag = "verify",
    operation_id = "verify_envoy",
    summary = "As /verify, with the proxied request's path appended (Envoy ext_authz)",
    security((), ("bearer" = []), ("token" = [])),
    params(
        ("original" = String, Path, description = "The original request's path (it may contain slashes)"),
        self::openapi::VerifyHeaders,
        self::openapi::VerifyQuery
    ),
    responses(self::openapi::VerifyResponses)
)]
pub(crate) async fn verify_envoy(state: State<AppState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    verify(state, method, uri, headers).await
}

async fn check(app: &AppState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Authenticated, Error> {
    let presented = presented(headers, uri).map_err(|failure| {
        app.tokens.metrics().token_check_refused(failure);
        Error::Unauthenticated(failure)
    })?;
    // why only the enabled dialects: an operator who turns a dialect off means its tokens too.
    let policies = app.policies.enabled();
    // why: as at webitel's logout, a key given with the token must be that very token's id.
    let auth = match presented.key {
        None => app.tokens.authenticate_among(policies, &presented.token).await?,
        Some(key) => {
            let key = Uuid::parse_str(&key).map_err(|_| {
                app.tokens.metrics().token_check_refused(AuthFailure::Unknown);
                Error::Unauthenticated(AuthFailure::Unknown)
            })?;
            app.tokens.authenticate_with_key(policies, &presented.token, key).await?
        }
    };
    let rules = &app.config.verify.acl;
    if !rules.is_empty() {
        let described = one_of(headers, &X_ORIGINAL_METHOD, &X_FORWARDED_METHOD)
            .and_then(|m| Ok((m.unwrap_or_else(|| method.as_str()), original_uri(headers, uri)?)));
        // why fail closed: with rules configured, a request the proxy did not describe (or
        // described twice, differently) cannot be checked against them, and letting it
        // through would skip every rule silently.
        let Ok((original_method, Some(original))) = described else {
            tracing::warn!("verify: ACL rules are configured but the proxied request is missing or ambiguous");
            return Err(Error::Forbidden);
        };
        acl::check(rules, auth.owner().role.as_ref(), original_method, &original)?;
    }
    Ok(auth)
}

/// The 200's body. why a struct rather than `json!`: it is serialized straight from these
/// borrowed fields, with no map built and dropped on every check (issue 15); the fields are in
/// the order `json!`'s sorted map wrote them.
#[derive(Serialize)]
struct Granted<'a> {
    dialect: &'a str,
    expires: Option<&'a str>,
    kind: &'a str,
    role: Option<&'a str>,
    status: &'static str,
    token_id: &'a str,
    user: &'a str,
    user_id: i64,
}

/// The 200: identity headers for the proxy to pass upstream (named as `verify.headers` says),
/// and the whole identity as JSON.
fn granted(preset: IdentityHeaders, auth: &Authenticated) -> Result<Response, Error> {
    let identity = Identity::of(auth)?;
    let headers = identity_headers(preset, &identity)?;
    let body = Granted {
        dialect: identity.dialect,
        expires: identity.expires.as_deref(),
        kind: identity.kind.as_str(),
        role: identity.role,
        status: "ok",
        token_id: &identity.token_id,
        user: identity.name,
        user_id: identity.id,
    };
    let mut resp = Json(body).into_response();
    for (name, value) in headers {
        resp.headers_mut().insert(name, value);
    }
    Ok(resp)
}

impl ErrorShape for Verify {
    const NAME: &'static str = "verify";

    fn error_response(err: &Error) -> Response {
        let (status, label, reason) = match err {
            Error::Unauthenticated(failure) => (StatusCode::UNAUTHORIZED, "unauthorized", failure.reason()),
            Error::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "forbidden"),
            Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "unavailable")
            }
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", "too_large"),
            Error::NotFound => (StatusCode::NOT_FOUND, "not_found", "not_found"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "error", "error"),
        };
        let mut resp = (status, Json(json!({ "status": label, "reason": reason }))).into_response();
        let headers = resp.headers_mut();
        headers.insert(&X_AUTH_REASON, HeaderValue::from_static(reason));
        if let Error::Unauthenticated(failure) = err {
            let challenge = if *failure == AuthFailure::Missing {
                "Bearer realm=\"tokenauth\""
            } else {
                "Bearer realm=\"tokenauth\", error=\"invalid_token\""
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn found(token: &str, key: Option<&str>) -> Result<Presented, AuthFailure> {
        Ok(Presented { token: token.into(), key: key.map(Into::into) })
    }

    #[test]
    fn a_presented_token_is_redacted_in_debug() {
        let shown = format!("{:?}", found("tok-3n-secret", Some("the-key")).unwrap());
        assert_eq!(shown, r#"Presented { token: "[REDACTED]", key: Some("the-key") }"#);
    }

    #[test]
    fn every_transport_is_read_in_order() {
        let uri: Uri = "/verify".parse().unwrap();
        assert_eq!(presented(&headers(&[("authorization", "Bearer a")]), &uri), found("a", None));
        assert_eq!(presented(&headers(&[("authorization", "token b")]), &uri), found("b", None));
        assert_eq!(presented(&headers(&[("x-access-token", "c"), ("x-key", "k")]), &uri), found("c", Some("k")));
        let h = headers(&[("x-original-uri", "/app/x?page=2&token=d")]);
        assert_eq!(presented(&h, &uri), found("d", None));
        let h = headers(&[("x-forwarded-uri", "/app/x?access_token=e&x_key=k2")]);
        assert_eq!(presented(&h, &uri), found("e", Some("k2")));
        // Both URI headers, disagreeing: neither is believed.
        let h = headers(&[("x-forwarded-uri", "/app?token=e"), ("x-original-uri", "/app?token=d")]);
        assert_eq!(presented(&h, &uri), Err(AuthFailure::Missing));
        let own: Uri = "/verify?token=f".parse().unwrap();
        assert_eq!(presented(&HeaderMap::new(), &own), found("f", None));
        // Authorization wins over the others; another scheme is not ours and is skipped.
        let h = headers(&[("authorization", "Bearer a"), ("x-access-token", "c")]);
        assert_eq!(presented(&h, &own), found("a", None));
        let h = headers(&[("authorization", "Basic dTpw"), ("x-access-token", "c")]);
        assert_eq!(presented(&h, &own), found("c", None));
        // Nothing, or empty values: missing. A broken header of our scheme: refused as such.
        assert_eq!(presented(&HeaderMap::new(), &uri), Err(AuthFailure::Missing));
        let h = headers(&[("x-access-token", ""), ("x-original-uri", "/x?token=")]);
        assert_eq!(presented(&h, &uri), Err(AuthFailure::Missing));
        assert!(matches!(presented(&headers(&[("authorization", "Bearer")]), &uri), Err(AuthFailure::Malformed(_))));
    }

    #[test]
    fn envoy_appends_the_original_path() {
        let uri: Uri = "/verify/api/cdr/1?token=t&page=2".parse().unwrap();
        assert_eq!(original_uri(&HeaderMap::new(), &uri), Ok(Some("/api/cdr/1?token=t&page=2".to_owned())));
        assert_eq!(presented(&HeaderMap::new(), &uri), found("t", None));
        let plain: Uri = "/verify".parse().unwrap();
        assert_eq!(original_uri(&HeaderMap::new(), &plain), Ok(None));
        // On Envoy's form the path wins over a (client's) header.
        let h = headers(&[("x-original-uri", "/x")]);
        assert_eq!(original_uri(&h, &uri), Ok(Some("/api/cdr/1?token=t&page=2".to_owned())));
        let h = headers(&[("x-original-uri", "/x"), ("x-forwarded-uri", "/x")]);
        assert_eq!(original_uri(&h, &plain), Ok(Some("/x".to_owned())), "agreeing headers are fine");
        let h = headers(&[("x-original-uri", "/x"), ("x-forwarded-uri", "/y")]);
        assert_eq!(original_uri(&h, &plain), Err(Conflict));
    }
}
