//! The dialer dialect (seed 001: Hello Hunter's "dialer.rocks" API).
//!
//! Two principal kinds: users log in at `POST /session.json` with `{login, password}` and
//! log out at `DELETE /session.json`; resellers log in at `POST /v1/resellers/login.json`
//! with `{name, pass}` and log out at `GET /v1/resellers/user/logout.json`. Tokens are HS256
//! JWTs whose claims are the seed's (`type`, `admin`, `id`, `name`, `sms_from`,
//! `user_group_id` for users; `type`, `id`, `name` for resellers) plus `exp` (seconds; absent
//! on a static token), `iat` and `jti`. A token travels as `Authorization: Bearer <t>` or as
//! `?token=<t>`; a user's token is refused on the reseller endpoint and the other way round.
//! Errors are `{"error": "..."}`.
//!
//! The two kinds' messages differ (users: `Invalid login credentials`, 406 for the IP rule;
//! resellers: `Invalid ID or Password`, 401 `Your IP is not allowed`), so each kind's routes
//! are their own `ErrorShape` type, both issuing and accepting tokens of the one `dialer` name.
//! Mounted under a prefix (Hello Hunter clients call `/a/session.json`), both move together.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::{IntoResponses, OpenApi, ToSchema};

use super::{JsonObject, required_string};
use crate::config::DialerConfig;
use crate::error::{AuthFailure, CredentialFailure, Error, FieldError, FieldProblem};
use crate::middleware::client_ip::ClientIp;
use crate::model::PrincipalKind;
use crate::model::{DialectId, Issuer};
use crate::model::{Principal, Token};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError, json_response, plain_message, scheme_credentials};
use crate::token::secret::TokenFormat;
use crate::token::{Authenticated, LoginOptions, TokenPolicy};

/// The dialer dialect's user endpoints (`/session.json`).
#[derive(Debug)]
pub struct Dialer;

/// The dialer dialect's reseller endpoints (`/v1/resellers/...`): same dialect, same tokens,
/// the resellers' messages.
#[derive(Debug)]
pub struct DialerReseller;

/// The user endpoints' paths, relative to the prefix.
#[doc(hidden)]
pub const USER_PATHS: &[&str] = &["/session.json"];
/// The reseller endpoints' paths, relative to the prefix.
#[doc(hidden)]
pub const RESELLER_PATHS: &[&str] = &["/v1/resellers/login.json", "/v1/resellers/user/logout.json"];

/// HS256 JWTs with the seed's claims; sessions last `token_ttl`.
pub fn policy(cfg: &DialerConfig) -> TokenPolicy {
    TokenPolicy {
        issuer: Issuer::Dialect(DialectId::Dialer),
        format: TokenFormat::Jwt(claims),
        session_ttl: Some(cfg.token_ttl),
        refresh: None,
        max_live_tokens: None,
        principal_kind: None,
    }
}

/// The claims of the seed, by principal kind, with `exp` and `iat` in epoch seconds.
fn claims(record: &Token, principal: &Principal) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("type".into(), principal.kind.as_str().into());
    if principal.kind == PrincipalKind::User {
        claims.insert("admin".into(), principal.attributes.admin.into());
    }
    claims.insert("id".into(), principal.id.into());
    claims.insert("name".into(), principal.name.as_str().into());
    if principal.kind == PrincipalKind::User {
        claims.insert("sms_from".into(), principal.attributes.sms_from.as_deref().into());
        claims.insert("user_group_id".into(), principal.group.as_ref().map(|g| g.id).into());
    }
    if let Some(at) = record.expires_at {
        claims.insert("exp".into(), at.unix_timestamp().into());
    }
    claims.insert("iat".into(), record.created_at.unix_timestamp().into());
    claims
}

/// The user routes.
pub(crate) fn user_router() -> Router<AppState> {
    Router::new().route("/session.json", post(user_login).delete(user_logout))
}

/// The reseller routes.
pub(crate) fn reseller_router() -> Router<AppState> {
    Router::new()
        .route("/v1/resellers/login.json", post(reseller_login))
        .route("/v1/resellers/user/logout.json", get(reseller_logout))
}

/// One side of the dialect: which principals it serves and how it words its refusals.
trait Side: ErrorShape {
    /// The principal kind whose endpoints these are.
    const KIND: PrincipalKind;
    /// The names of the login body's two fields.
    const FIELDS: (&'static str, &'static str);
    /// Wrong name or password, or a disabled account.
    const BAD_CREDENTIALS: &'static str;
    /// The status and message of a login from an address the account may not use.
    const IP_REFUSED: (StatusCode, &'static str);
}

impl Side for Dialer {
    const KIND: PrincipalKind = PrincipalKind::User;
    const FIELDS: (&'static str, &'static str) = ("login", "password");
    const BAD_CREDENTIALS: &'static str = "Invalid login credentials";
    const IP_REFUSED: (StatusCode, &'static str) = (StatusCode::NOT_ACCEPTABLE, "Login denied due to IP restriction");
}

impl Side for DialerReseller {
    const KIND: PrincipalKind = PrincipalKind::Reseller;
    const FIELDS: (&'static str, &'static str) = ("name", "pass");
    const BAD_CREDENTIALS: &'static str = "Invalid ID or Password";
    const IP_REFUSED: (StatusCode, &'static str) = (StatusCode::UNAUTHORIZED, "Your IP is not allowed");
}

/// Read both login fields, reporting every missing one.
fn login_fields<S: Side>(body: Option<&Map<String, Value>>) -> Result<(String, String), ShapedError<S>> {
    let (name_field, password_field) = S::FIELDS;
    // why no trim: names are matched exactly, and a password is a password.
    match (required_string(body, name_field, false), required_string(body, password_field, false)) {
        (Ok(n), Ok(p)) => Ok((n, p)),
        (n, p) => Err(Error::Fields(n.err().into_iter().chain(p.err()).collect()).into()),
    }
}

#[utoipa::path(
    post,
    path = "/session.json",
    tag = "dialer",
    operation_id = "dialer_user_login",
    summary = "A user logs in with `login` (an email) and `password`; answers a session JWT",
    request_body(content = UserLoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new session", body = UserLoggedIn),
        (status = 400, description = "A missing, null, empty or non-string field; malformed JSON; a body that is \
            not an object", body = ErrorBody),
        (status = 401, description = "`Invalid login credentials`: an unknown user, a wrong password or a \
            disabled account", body = ErrorBody),
        (status = 406, description = "`Login denied due to IP restriction`: the user group's `allowed_regex` \
            does not match the client IP", body = ErrorBody),
        (status = 415, description = "A non-empty body that is not `application/json`", body = ErrorBody),
        (status = 429, description = "Too many failed or in-flight logins for this address or account",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        OutsideErrors,
    )
)]
async fn user_login(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    JsonObject(body, _): JsonObject<Dialer>,
) -> Result<Json<Value>, ShapedError<Dialer>> {
    let (login, password) = login_fields::<Dialer>(body.as_ref())?;
    let policy = app.policies.get(DialectId::Dialer);
    let options = LoginOptions::default();
    let issued = app.tokens.login(policy, PrincipalKind::User, &login, password.into(), ip, options).await?;
    // why `blocked: false`: a disabled (blocked) account cannot log in, so a 200 never has one.
    Ok(Json(json!({
        "user": { "id": issued.principal.id, "blocked": false },
        "token": issued.token.expose(),
    })))
}

/// The reseller login's answer; `user_balance` is the stored decimal, written as is.
#[derive(Serialize, ToSchema)]
#[schema(as = DialerResellerLogin)]
struct ResellerLogin<'a> {
    /// An HS256 JWT (`type: "reseller"`, `id`, `name`, `exp`, `iat`, `jti`).
    token: &'a str,
    /// The reseller.
    reseller: IdName<'a>,
    /// The reseller's user groups.
    user_groups: Vec<IdName<'a>>,
    /// The reseller's balance (a decimal, `0.00` when not set).
    #[schema(value_type = f64, example = 1000.0)]
    user_balance: Box<RawValue>,
    /// The server's version.
    version: &'static str,
}

/// An id and a name (a reseller, a user group).
#[derive(Serialize, ToSchema)]
#[schema(as = DialerIdName)]
struct IdName<'a> {
    /// The id.
    id: i64,
    /// The name.
    name: &'a str,
}

#[utoipa::path(
    post,
    path = "/v1/resellers/login.json",
    tag = "dialer",
    operation_id = "dialer_reseller_login",
    summary = "A reseller logs in with `name` and `pass`; answers a session JWT, its user groups and balance",
    request_body(content = ResellerLoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new session", body = ResellerLogin<'_>),
        (status = 400, description = "A missing, null, empty or non-string field; malformed JSON; a body that is \
            not an object", body = ErrorBody),
        (status = 401, description = "`Invalid ID or Password` (an unknown reseller, a wrong password or a \
            disabled account), or `Your IP is not allowed` (the client IP is not in `allowed_ips`)",
            body = ErrorBody),
        (status = 415, description = "A non-empty body that is not `application/json`", body = ErrorBody),
        (status = 429, description = "Too many failed or in-flight logins for this address or account",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        OutsideErrors,
    )
)]
async fn reseller_login(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    JsonObject(body, _): JsonObject<DialerReseller>,
) -> Result<Response, ShapedError<DialerReseller>> {
    let (name, pass) = login_fields::<DialerReseller>(body.as_ref())?;
    let policy = app.policies.get(DialectId::Dialer);
    let (issued, groups) = app.tokens.reseller_login(policy, &name, pass.into(), ip).await?;
    let reseller = &issued.principal;
    // why a raw number: a decimal balance (1000.00) must not pass through a binary float.
    let balance = reseller.attributes.balance.unwrap_or(Decimal::new(0, 2)).to_string();
    let user_balance =
        RawValue::from_string(balance).map_err(|e| Error::Internal(format!("balance is not a JSON number: {e}")))?;
    let shape = ResellerLogin {
        token: issued.token.expose(),
        reseller: IdName { id: reseller.id, name: &reseller.name },
        user_groups: groups.iter().map(|g| IdName { id: g.group.id, name: &g.group.name }).collect(),
        user_balance,
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(Json(shape).into_response())
}

#[utoipa::path(
    delete,
    path = "/session.json",
    tag = "dialer",
    operation_id = "dialer_user_logout",
    summary = "Revoke the presented user token",
    security(("bearer" = []), ()),
    params(("token" = Option<String>, Query, description = "The token, when there is no `Authorization: Bearer`")),
    responses(
        (status = 200, description = "Revoked", body = LoggedOut),
        (status = 401, description = "`Token is missing`, or `Invalid or expired token` (malformed, unknown, \
            expired, revoked or disabled, another dialect's, or a reseller's)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tokenauth\"`, with \
                `error=\"invalid_token\"` unless the token was missing"))),
        OutsideErrors,
    )
)]
async fn user_logout(
    State(app): State<AppState>,
    DialerAuth(auth, _): DialerAuth<Dialer>,
) -> Result<Json<Value>, ShapedError<Dialer>> {
    app.tokens.revoke(&auth).await?;
    Ok(Json(json!({ "success": true })))
}

#[utoipa::path(
    get,
    path = "/v1/resellers/user/logout.json",
    tag = "dialer",
    operation_id = "dialer_reseller_logout",
    summary = "Revoke the presented reseller token",
    security(("bearer" = []), ()),
    params(("token" = Option<String>, Query, description = "The token, when there is no `Authorization: Bearer`")),
    responses(
        (status = 200, description = "Revoked", body = LoggedOut),
        (status = 401, description = "`Token is missing`, or `Invalid or expired token` (malformed, unknown, \
            expired, revoked or disabled, another dialect's, or a user's)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tokenauth\"`, with \
                `error=\"invalid_token\"` unless the token was missing"))),
        OutsideErrors,
    )
)]
async fn reseller_logout(
    State(app): State<AppState>,
    DialerAuth(auth, _): DialerAuth<DialerReseller>,
) -> Result<Json<Value>, ShapedError<DialerReseller>> {
    app.tokens.revoke(&auth).await?;
    Ok(Json(json!({ "success": true })))
}

/// The dialer part of the OpenAPI document (both mounts: they share `dialer.prefix`), paths
/// relative to that prefix.
#[derive(OpenApi)]
#[openapi(
    paths(user_login, user_logout, reseller_login, reseller_logout),
    components(schemas(ErrorBody)),
    tags((name = "dialer", description = "Seed 001: Hello Hunter's dialer.rocks API, for users \
        (`/session.json`) and resellers (`/v1/resellers/...`). Tokens travel as `Authorization: Bearer` or \
        `?token=`. Errors are `{\"error\": \"...\"}`."))
)]
pub(crate) struct Api;

// OpenAPI-only shapes: the handlers write these with `json!`.

/// The user login body.
#[derive(ToSchema)]
#[schema(as = DialerUserLoginRequest)]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct UserLoginRequest {
    /// The user's login (an email), matched exactly.
    #[schema(min_length = 1)]
    login: String,
    /// The password.
    #[schema(min_length = 1)]
    password: String,
}

/// The reseller login body.
#[derive(ToSchema)]
#[schema(as = DialerResellerLoginRequest)]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct ResellerLoginRequest {
    /// The reseller's name, matched exactly.
    #[schema(min_length = 1)]
    name: String,
    /// The password.
    #[schema(min_length = 1)]
    pass: String,
}

/// The user login answer.
#[derive(ToSchema)]
#[schema(as = DialerUserLogin)]
#[allow(dead_code)] // why: a schema only.
struct UserLoggedIn {
    /// The user.
    user: UserSummary,
    /// An HS256 JWT (`type: "user"`, `admin`, `id`, `name`, `sms_from`, `user_group_id`, `exp`, `iat`,
    /// `jti`).
    token: String,
}

/// The user in a login answer.
#[derive(ToSchema)]
#[schema(as = DialerUser)]
#[allow(dead_code)] // why: a schema only.
struct UserSummary {
    /// The user's id.
    id: i64,
    /// Always `false`: a blocked account cannot log in.
    blocked: bool,
}

/// A logout answer: `{"success": true}`.
#[derive(ToSchema)]
#[schema(as = DialerLoggedOut)]
#[allow(dead_code)] // why: a schema only.
struct LoggedOut {
    /// Always `true`.
    success: bool,
}

/// The body of every dialer error.
#[derive(ToSchema)]
#[schema(as = DialerError)]
#[allow(dead_code)] // why: a schema only.
struct ErrorBody {
    /// What went wrong, e.g. `Invalid login credentials`.
    #[schema(example = "Invalid login credentials")]
    error: String,
}

/// What the dialect's layers (and the service's faults) can answer on any of its routes, in
/// its shape.
#[derive(IntoResponses)]
#[allow(dead_code)] // why: a description only.
enum OutsideErrors {
    /// No such endpoint under the dialect's prefix.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The path exists, the method does not.
    #[response(status = 405, headers(("Allow" = String, description = "The allowed methods")))]
    MethodNotAllowed(ErrorBody),
    /// The request body is larger than `http.body_limit`.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// An internal error (`Server error`; the cause is logged, never sent).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database is unreachable, too many logins are in progress, or the request timed out.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// A dialer token of side `S`'s principal kind, from `Authorization: Bearer` or else from
/// `?token=`, authenticated.
struct DialerAuth<S>(Authenticated, PhantomData<fn() -> S>);

impl<S: Side> FromRequestParts<AppState> for DialerAuth<S> {
    type Rejection = ShapedError<S>;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let token = match scheme_credentials(&parts.headers, "Bearer") {
            Ok(token) => token.to_owned(),
            // why: real clients send `?token=`; a Bearer header, when present, wins.
            Err(AuthFailure::Missing) => query_token(parts).ok_or(Error::Unauthenticated(AuthFailure::Missing))?,
            Err(other) => return Err(Error::Unauthenticated(other).into()),
        };
        let policy = app.policies.of_kind(DialectId::Dialer, S::KIND);
        Ok(DialerAuth(app.tokens.authenticate(policy, &token).await?, PhantomData))
    }
}

/// The first non-empty `token` query parameter.
fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k == "token" && !v.is_empty()).map(|(_, v)| v.into())
}

fn field_message(e: &FieldError) -> String {
    match e.problem {
        // Rails' ActionController::ParameterMissing, the message Hello Hunter's clients know.
        FieldProblem::Required | FieldProblem::Null | FieldProblem::Blank => {
            format!("param is missing or the value is empty: {}", e.field)
        }
        FieldProblem::NotAString => format!("param {} must be a string", e.field),
    }
}

/// Render `err` in the dialer shape, with side `S`'s messages.
fn render<S: Side>(err: &Error) -> Response {
    let (status, message): (StatusCode, String) = match err {
        Error::BadCredentials(CredentialFailure::IpNotAllowed) => (S::IP_REFUSED.0, S::IP_REFUSED.1.into()),
        Error::BadCredentials(_) => (StatusCode::UNAUTHORIZED, S::BAD_CREDENTIALS.into()),
        Error::Unauthenticated(AuthFailure::Missing) => (StatusCode::UNAUTHORIZED, "Token is missing".into()),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Invalid or expired token".into()),
        Error::Fields(fields) => {
            (StatusCode::BAD_REQUEST, fields.iter().map(field_message).collect::<Vec<_>>().join("; "))
        }
        // why no detail: the seed's 500 is `Server error`; the cause is logged, never sent.
        other => plain_message(other).unwrap_or_else(|| (StatusCode::INTERNAL_SERVER_ERROR, "Server error".into())),
    };
    let mut resp = json_response(status, json!({ "error": message }));
    if let Error::Unauthenticated(failure) = err {
        // why: RFC 6750 §3; a missing token gets the bare challenge, a refused one the error code.
        let challenge = if *failure == AuthFailure::Missing {
            "Bearer realm=\"tokenauth\""
        } else {
            "Bearer realm=\"tokenauth\", error=\"invalid_token\""
        };
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    resp
}

impl ErrorShape for Dialer {
    const NAME: &'static str = DialectId::Dialer.as_str();

    fn error_response(err: &Error) -> Response {
        render::<Dialer>(err)
    }
}

impl ErrorShape for DialerReseller {
    const NAME: &'static str = DialectId::Dialer.as_str();

    fn error_response(err: &Error) -> Response {
        render::<DialerReseller>(err)
    }
}
