//! The webitel dialect (seed 000: the Webitel v3 engine).
//!
//! `POST /login` with JSON `{username, password}` answers `{key, username, domain, expires,
//! token, role, roleName, acl, cdr}`: `key` is the token's id, `token` an HS256 JWT whose
//! payload holds `exp` in epoch **milliseconds** (Webitel's convention), `jti` (= `key`) and
//! the user's `acl`. `POST /logout` takes the token and its key as `X-Access-Token` and
//! `X-Key` headers (or `access_token` / `x_key` in the query string or a JSON body).
//! Errors are `{"status": "error", "info": "..."}`.
//!
//! Departures from the seed (from dialects.md): `expires` is the absolute expiry in epoch
//! milliseconds (the seed calls it a time to live); 400 for a missing username and 404 for an
//! unknown user are as its status table documents (`webitel.hide_unknown_users` turns the 404
//! into the 401, so the response does not reveal which users exist).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use utoipa::{IntoResponses, OpenApi, ToSchema};
use uuid::Uuid;

use super::{JsonObject, required_string};
use crate::config::WebitelConfig;
use crate::error::{AuthFailure, CredentialFailure, Error};
use crate::middleware::client_ip::ClientIp;
use crate::model::PrincipalKind;
use crate::model::{DialectId, Issuer};
use crate::model::{Principal, Role, Token};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError, json_response, plain_message};
use crate::token::secret::TokenFormat;
use crate::token::{LoginOptions, TokenPolicy};

/// The webitel dialect.
#[derive(Debug)]
pub struct Webitel;

/// Its paths, relative to its prefix.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/login", "/logout"];

/// HS256 JWTs carrying `exp` (milliseconds), `jti` and `acl`; sessions last `token_ttl`.
pub fn policy(cfg: &WebitelConfig) -> TokenPolicy {
    TokenPolicy {
        issuer: Issuer::Dialect(DialectId::Webitel),
        format: TokenFormat::Jwt(claims),
        session_ttl: Some(cfg.token_ttl),
        refresh: None,
        max_live_tokens: None,
        principal_kind: None,
    }
}

/// The JWT payload: `exp` in epoch milliseconds (absent on a static token) and the ACL.
fn claims(record: &Token, principal: &Principal) -> Map<String, Value> {
    let mut claims = Map::new();
    if let Some(at) = record.expires_at {
        claims.insert("exp".into(), epoch_millis(at).into());
    }
    claims.insert("acl".into(), acl(principal.role.as_ref()));
    claims
}

fn acl(role: Option<&Role>) -> Value {
    role.map_or_else(|| json!({}), |role| json!(role.acl))
}

fn epoch_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Its routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/login", post(login)).route("/logout", post(logout))
}

type Result<T> = std::result::Result<T, ShapedError<Webitel>>;

#[utoipa::path(
    post,
    path = "/login",
    tag = "webitel",
    operation_id = "webitel_login",
    summary = "Log in as `name@domain` (or a name without a domain); answers a session and its JWT",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new session", body = LoggedIn),
        (status = 400, description = "`User name is required` (username missing, null, empty or not a string); \
            malformed JSON; a body that is not an object", body = ErrorBody),
        (status = 401, description = "`Invalid credentials`: a wrong password or a disabled user (and an \
            unknown user with `webitel.hide_unknown_users`)", body = ErrorBody),
        (status = 404, description = "`User not found` (an unknown user, unless `webitel.hide_unknown_users`), \
            or no such endpoint under the dialect's prefix", body = ErrorBody),
        (status = 415, description = "A non-empty body that is not `application/json`", body = ErrorBody),
        (status = 429, description = "Too many failed or in-flight logins for this address or account",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        OutsideErrors,
    )
)]
async fn login(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    JsonObject(body, _): JsonObject<Webitel>,
) -> Result<Json<Value>> {
    let body = body.as_ref();
    let username = required_string(body, "username", false).map_err(|e| Error::Fields(vec![e]))?;
    // why lenient: a missing or odd password is simply a wrong one (401), as in Webitel.
    let password = required_string(body, "password", false).unwrap_or_default();
    let issued = app
        .tokens
        .login(
            app.policies.get(DialectId::Webitel),
            PrincipalKind::User,
            &username,
            password.into(),
            ip,
            LoginOptions::default(),
        )
        .await
        .map_err(|e| match e {
            Error::BadCredentials(CredentialFailure::UnknownPrincipal) if app.config.webitel.hide_unknown_users => {
                Error::BadCredentials(CredentialFailure::WrongPassword)
            }
            other => other,
        })?;

    let mut out = Map::new();
    out.insert("key".into(), issued.record.id.to_string().into());
    out.insert("username".into(), username.as_str().into());
    if let Some(domain) = domain_of(&username) {
        out.insert("domain".into(), domain.into());
    }
    out.insert("expires".into(), issued.record.expires_at.map(epoch_millis).into());
    out.insert("token".into(), issued.token.expose().into());
    if let Some(role) = &issued.principal.role {
        out.insert("role".into(), role.code.into());
        out.insert("roleName".into(), role.name.as_str().into());
    }
    out.insert("acl".into(), acl(issued.principal.role.as_ref()));
    if let Some(cdr) = &app.config.webitel.cdr {
        out.insert("cdr".into(), Value::Object(cdr.clone()));
    }
    Ok(Json(Value::Object(out)))
}

/// The token and its key: header first, then query string, then JSON body, field by field.
/// An empty or unreadable value counts as absent, so the next source can still speak.
fn credential(
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Option<&Map<String, Value>>,
    header: &str,
    field: &str,
) -> Option<String> {
    let present = |v: &&str| !v.is_empty();
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .filter(present)
        .or_else(|| query.iter().find(|(k, v)| k == field && !v.is_empty()).map(|(_, v)| v.as_str()))
        .or_else(|| body.and_then(|b| b.get(field)).and_then(Value::as_str).filter(present))
        .map(str::to_owned)
}

#[utoipa::path(
    post,
    path = "/logout",
    tag = "webitel",
    operation_id = "webitel_logout",
    summary = "Revoke the presented token, named by its key",
    description = "The token and its key are each read from the header, else the query string, else a JSON \
        body; an empty value counts as absent. The key must be the id of the very token presented.",
    params(
        ("X-Access-Token" = Option<String>, Header, description = "The token (the login's `token`)"),
        ("X-Key" = Option<String>, Header, description = "The token's key (the login's `key`)"),
        ("access_token" = Option<String>, Query, description = "The token, when not in `X-Access-Token`"),
        ("x_key" = Option<String>, Query, description = "The key, when not in `X-Key`"),
    ),
    request_body(
        content = LogoutRequest,
        content_type = "application/json",
        description = "Optional; the third place the token and key are looked for (a body that is not a JSON \
            object is ignored)",
    ),
    responses(
        (status = 200, description = "Revoked", body = LoggedOut),
        (status = 401, description = "`Invalid credentials`: a missing token or key, a key that does not name \
            the token, an unknown, expired, revoked or disabled token, or another dialect's", body = ErrorBody),
        (status = 404, description = "No such endpoint under the dialect's prefix", body = ErrorBody),
        OutsideErrors,
    )
)]
async fn logout(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: std::result::Result<JsonObject<Webitel>, ShapedError<Webitel>>,
) -> Result<Response> {
    let query: Vec<(String, String)> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    // why lenient: the body is only a third place to look; a client that sends the headers
    // with a form or an odd body (jQuery's default Content-Type) must still be able to log out.
    let body = body.ok().and_then(|JsonObject(body, _)| body);
    let body = body.as_ref();
    let token = credential(&headers, &query, body, "x-access-token", "access_token");
    let key = credential(&headers, &query, body, "x-key", "x_key");
    let (Some(token), Some(key)) = (token, key) else {
        return Err(Error::Unauthenticated(AuthFailure::Missing).into());
    };
    let key = Uuid::parse_str(&key).map_err(|_| Error::Unauthenticated(AuthFailure::Unknown))?;
    let policies = std::slice::from_ref(app.policies.get(DialectId::Webitel));
    let auth = app.tokens.authenticate_with_key(policies, &token, key).await?;
    app.tokens.revoke(&auth).await?;
    Ok(Json(json!({"status": "OK", "info": "Successful logout."})).into_response())
}

/// The webitel part of the OpenAPI document, paths relative to the dialect's prefix.
#[derive(OpenApi)]
#[openapi(
    paths(login, logout),
    components(schemas(ErrorBody)),
    modifiers(&LOGOUT_BODY_IS_OPTIONAL),
    tags((name = "webitel", description = "Seed 000: the Webitel v3 engine. Errors are \
        `{\"status\": \"error\", \"info\": \"...\"}`."))
)]
pub(crate) struct Api;

const LOGOUT_BODY_IS_OPTIONAL: crate::surface::OptionalBody = crate::surface::OptionalBody("/logout");

// OpenAPI-only shapes: the handlers write these with `json!`.

/// The login body.
#[derive(ToSchema)]
#[schema(as = WebitelLoginRequest)]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct LoginRequest {
    /// `name@domain`, or a name without a domain.
    #[schema(min_length = 1, example = "100@mydomain.com")]
    username: String,
    /// The password.
    password: String,
}

/// The login answer.
#[derive(ToSchema)]
#[schema(as = WebitelLogin)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // why: a schema only.
struct LoggedIn {
    /// The token's id (a UUID v4), needed to log out.
    #[schema(format = "uuid")]
    key: String,
    /// The username as sent.
    username: String,
    /// The part after `@`; absent when the username has none.
    #[schema(nullable = false)]
    domain: Option<String>,
    /// The absolute expiry, in epoch milliseconds.
    #[schema(example = 1_464_587_176_910_i64)]
    expires: i64,
    /// An HS256 JWT whose payload holds `exp` (epoch milliseconds), `jti` (= `key`) and `acl`.
    token: String,
    /// The role's integer code (Webitel: root=2, admin=1, user=0); absent without a role.
    #[schema(nullable = false)]
    role: Option<i64>,
    /// The role's name; absent without a role.
    #[schema(nullable = false)]
    role_name: Option<String>,
    /// The role's ACL: resource to permissions (`*`, `r`, `w`, ...); `{}` without a role.
    acl: std::collections::BTreeMap<String, Vec<String>>,
    /// `webitel.cdr` from the configuration; absent when not configured.
    #[schema(nullable = false, value_type = Option<Object>)]
    cdr: Option<Map<String, Value>>,
}

/// The optional logout body.
#[derive(ToSchema)]
#[schema(as = WebitelLogoutRequest)]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct LogoutRequest {
    /// The token.
    access_token: Option<String>,
    /// The token's key.
    x_key: Option<String>,
}

/// The logout answer: `{"status": "OK", "info": "Successful logout."}`.
#[derive(ToSchema)]
#[schema(as = WebitelLoggedOut)]
#[allow(dead_code)] // why: a schema only.
struct LoggedOut {
    /// `OK`.
    #[schema(example = "OK")]
    status: String,
    /// `Successful logout.`
    #[schema(example = "Successful logout.")]
    info: String,
}

/// The body of every webitel error.
#[derive(ToSchema)]
#[schema(as = WebitelError)]
#[allow(dead_code)] // why: a schema only.
struct ErrorBody {
    /// `error`.
    #[schema(example = "error")]
    status: String,
    /// What went wrong, e.g. `Invalid credentials`.
    #[schema(example = "Invalid credentials")]
    info: String,
}

/// What the dialect's layers (and the service's faults) can answer on any of its routes, in
/// its shape (404, also a login answer, is listed per route).
#[derive(IntoResponses)]
#[allow(dead_code)] // why: a description only.
enum OutsideErrors {
    /// The path exists, the method does not.
    #[response(status = 405, headers(("Allow" = String, description = "The allowed methods")))]
    MethodNotAllowed(ErrorBody),
    /// The request body is larger than `http.body_limit`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// An internal error (the cause is logged, never sent).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database is unreachable, too many logins are in progress, or the request timed out.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

impl ErrorShape for Webitel {
    const NAME: &'static str = DialectId::Webitel.as_str();

    fn error_response(err: &Error) -> Response {
        let (status, info): (StatusCode, String) = match err {
            Error::Fields(_) => (StatusCode::BAD_REQUEST, "User name is required".into()),
            Error::BadCredentials(CredentialFailure::UnknownPrincipal) => {
                (StatusCode::NOT_FOUND, "User not found".into())
            }
            Error::BadCredentials(_) | Error::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, "Invalid credentials".into())
            }
            other => plain_message(other)
                .unwrap_or_else(|| (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error".into())),
        };
        json_response(status, json!({"status": "error", "info": info}))
    }
}

/// The domain of a `name@domain` username (Webitel's `100@mydomain.com`): what follows the
/// last `@`, when both sides are non-empty.
fn domain_of(username: &str) -> Option<&str> {
    username.rsplit_once('@').and_then(|(name, domain)| (!name.is_empty() && !domain.is_empty()).then_some(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(domain_of("100@mydomain.com"), Some("mydomain.com"));
        assert_eq!(domain_of("a@b@c"), Some("c"));
        for none in ["root", "@mydomain.com", "100@", "@"] {
            assert_eq!(domain_of(none), None, "{none}");
        }
    }
    use time::macros::datetime;

    #[test]
    fn expiry_is_in_epoch_milliseconds() {
        assert_eq!(epoch_millis(datetime!(2016-05-30 05:46:16.910 UTC)), 1_464_587_176_910);
    }
}
