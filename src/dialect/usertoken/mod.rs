//! The usertoken dialect (seed 002: the Atheneum API, whose UserToken model is szurubooru's).
//!
//! `POST /auth/login` with `Authorization: Basic`, an optional JSON body `{note,
//! expirationTime}`, answering a UserToken; `POST /auth/bump` and `POST /auth/logout` with
//! `Authorization: Bearer <uuid>`. Errors are `{"name", "title", "description"}`. Every
//! response carries `Vary: Accept`, as the seed shows.
//!
//! Every 401 carries `WWW-Authenticate: Basic realm="tokenauth"`, as dialects.md specifies
//! ("refused with the 401 above"), on the Bearer endpoints too. (A browser that gets it on an
//! XHR may prompt for a password; a proxy in front can strip the header if that matters.)

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoResponses, OpenApi, ToSchema};

use super::{JsonObject, optional_string};
use crate::config::UsertokenConfig;
use crate::error::{Error, FieldError, FieldProblem};
use crate::middleware::client_ip::ClientIp;
use crate::model::PrincipalKind;
use crate::model::Token;
use crate::model::{DialectId, Issuer};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError, basic_credentials, json_response, rfc3339, scheme_credentials};
use crate::token::secret::TokenFormat;
use crate::token::{Authenticated, LoginOptions, TokenPolicy};

/// The usertoken dialect.
#[derive(Debug)]
pub struct Usertoken;

/// Its paths, relative to its prefix.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/auth/login", "/auth/bump", "/auth/logout"];

/// UUID v4 tokens; the configured default lifetime (none by default); no refresh, no limit.
pub fn policy(cfg: &UsertokenConfig) -> TokenPolicy {
    TokenPolicy {
        issuer: Issuer::Dialect(DialectId::Usertoken),
        format: TokenFormat::Uuid,
        session_ttl: cfg.token_ttl,
        refresh: None,
        max_live_tokens: None,
        principal_kind: None,
    }
}

/// Its routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/bump", post(bump))
        .route("/auth/logout", post(logout))
        .layer(SetResponseHeaderLayer::overriding(header::VARY, HeaderValue::from_static("Accept")))
}

type Result<T> = std::result::Result<T, ShapedError<Usertoken>>;

/// The UserToken object of the seed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserToken<'a> {
    /// The token: a UUID v4 (not the token's id).
    #[schema(format = "uuid")]
    token: &'a str,
    /// Always `true` for a new token.
    enabled: bool,
    /// Always `0` for a new token.
    version: i64,
    /// When the token was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    creation_time: String,
    /// The note given at login; absent when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    note: Option<&'a str>,
    /// The absolute expiry (RFC 3339, UTC); absent when the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    expiration_time: Option<String>,
}

impl<'a> UserToken<'a> {
    fn new(record: &'a Token, token: &'a str) -> std::result::Result<Self, Error> {
        Ok(UserToken {
            token,
            enabled: record.enabled,
            version: record.version,
            creation_time: rfc3339(record.created_at)?,
            note: record.note.as_deref(),
            expiration_time: record.expires_at.map(rfc3339).transpose()?,
        })
    }
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "usertoken",
    operation_id = "usertoken_login",
    summary = "Log in with HTTP Basic credentials; answers a new UserToken",
    security(("basic" = [])),
    request_body(
        content = LoginRequest,
        content_type = "application/json",
        description = "Optional; an empty body sets neither a note nor an expiry",
    ),
    responses(
        (status = 200, description = "The new token", body = UserToken<'_>,
            headers(("Vary" = String, description = "`Accept`"))),
        (status = 400, description = "An `expirationTime` that is not RFC 3339, is in the past or falls outside \
            the years 1 to 9999 in UTC (as every time is answered), a note over 128 characters or with control \
            characters, a field that is not a string, malformed JSON, a body that is not an object",
            body = ErrorBody, headers(("Vary" = String, description = "`Accept`"))),
        (status = 401, description = "A missing or malformed Basic header, an unknown user, a wrong password \
            or a disabled user: one answer for all", body = ErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"tokenauth\"`"),
            ("Vary" = String, description = "`Accept`"),
        )),
        (status = 415, description = "A non-empty body that is not `application/json`", body = ErrorBody,
            headers(("Vary" = String, description = "`Accept`"))),
        (status = 429, description = "Too many failed or in-flight logins for this address or account: \
            refused before the password is checked (`TooManyRequestsError`)", body = ErrorBody, headers(
            ("Retry-After" = u64, description = "Seconds to wait"),
            ("Vary" = String, description = "`Accept`"),
        )),
        OutsideErrors,
    )
)]
async fn login(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    BasicAuth(username, password): BasicAuth,
    JsonObject(body, _): JsonObject<Usertoken>,
) -> Result<Json<serde_json::Value>> {
    let options = login_options(body.as_ref())?;
    let issued = app
        .tokens
        .login(app.policies.get(DialectId::Usertoken), PrincipalKind::User, &username, password, ip, options)
        .await?;
    let shape = UserToken::new(&issued.record, issued.token.expose())?;
    Ok(Json(serde_json::to_value(shape).map_err(|e| Error::Internal(e.to_string()))?))
}

pub(crate) fn login_options(
    body: Option<&serde_json::Map<String, serde_json::Value>>,
) -> std::result::Result<LoginOptions, Error> {
    let fields = |e: FieldError| Error::Fields(vec![e]);
    let note = optional_string(body, "note").map_err(fields)?;
    let expires_at = optional_string(body, "expirationTime")
        .map_err(fields)?
        .map(|s| {
            OffsetDateTime::parse(&s, &Rfc3339)
                .map_err(|_| Error::Invalid(format!("expirationTime {s:?} is not an RFC 3339 date-time")))
        })
        .transpose()?;
    Ok(LoginOptions { note, expires_at })
}

#[utoipa::path(
    post,
    path = "/auth/bump",
    tag = "usertoken",
    operation_id = "usertoken_bump",
    summary = "Record a use: the user's last-login and the token's last-usage time become now (expiry unchanged)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Bumped", body = Bumped, headers(("Vary" = String, description = "`Accept`"))),
        (status = 401, description = "A missing, malformed, unknown, expired, revoked or disabled token, or \
            another dialect's", body = ErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"tokenauth\"`"),
            ("Vary" = String, description = "`Accept`"),
        )),
        OutsideErrors,
    )
)]
async fn bump(State(app): State<AppState>, BearerAuth(auth): BearerAuth) -> Result<Json<serde_json::Value>> {
    let at = app.tokens.bump(&auth).await?;
    Ok(Json(json!({ "lastLoginTime": rfc3339(at)? })))
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "usertoken",
    operation_id = "usertoken_logout",
    summary = "Revoke the presented token (only that one)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = LoggedOut,
            headers(("Vary" = String, description = "`Accept`"))),
        (status = 401, description = "A missing, malformed, unknown, expired, revoked or disabled token, or \
            another dialect's", body = ErrorBody, headers(
            ("WWW-Authenticate" = String, description = "`Basic realm=\"tokenauth\"`"),
            ("Vary" = String, description = "`Accept`"),
        )),
        OutsideErrors,
    )
)]
async fn logout(State(app): State<AppState>, BearerAuth(auth): BearerAuth) -> Result<Json<serde_json::Value>> {
    app.tokens.revoke(&auth).await?;
    Ok(Json(json!({ "success": true })))
}

/// `Authorization: Basic` credentials, parsed before the body is read.
struct BasicAuth(String, SecretString);

impl FromRequestParts<AppState> for BasicAuth {
    type Rejection = ShapedError<Usertoken>;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        let (user, password) = basic_credentials(&parts.headers).map_err(Error::BadCredentials)?;
        Ok(BasicAuth(user, password))
    }
}

/// A usertoken token from `Authorization: Bearer`, authenticated.
struct BearerAuth(Authenticated);

impl FromRequestParts<AppState> for BearerAuth {
    type Rejection = ShapedError<Usertoken>;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let token = scheme_credentials(&parts.headers, "Bearer").map_err(Error::Unauthenticated)?;
        Ok(BearerAuth(app.tokens.authenticate(app.policies.get(DialectId::Usertoken), token).await?))
    }
}

/// The usertoken part of the OpenAPI document, paths relative to the dialect's prefix.
#[derive(OpenApi)]
#[openapi(
    paths(login, bump, logout),
    components(schemas(ErrorBody)),
    modifiers(&LOGIN_BODY_IS_OPTIONAL),
    tags((name = "usertoken", description = "Seed 002: the Atheneum API, whose UserToken model is szurubooru's. \
        Every response carries `Vary: Accept`."))
)]
pub(crate) struct Api;

const LOGIN_BODY_IS_OPTIONAL: crate::surface::OptionalBody = crate::surface::OptionalBody("/auth/login");

// OpenAPI-only shapes: the handlers write these with `json!`.

/// The body of every usertoken error.
#[derive(ToSchema)]
#[schema(as = UsertokenError)]
#[allow(dead_code)] // why: a schema only.
struct ErrorBody {
    /// `ValidationError`, `AuthError`, `NotFoundError`, `MethodNotAllowedError`,
    /// `ServiceUnavailableError` or `InternalError`.
    #[schema(example = "AuthError")]
    name: String,
    /// A title for `name`.
    #[schema(example = "Authentication error")]
    title: String,
    /// What went wrong.
    #[schema(example = "Authorization failed")]
    description: String,
}

/// The optional login body.
#[derive(ToSchema)]
#[schema(as = UsertokenLoginRequest)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct LoginRequest {
    /// A one-line label for the token.
    #[schema(schema_with = nullable_note)]
    note: Option<String>,
    /// An absolute expiry (RFC 3339), in the future; absent: the configured default lifetime
    /// (none by default).
    #[schema(schema_with = nullable_date_time)]
    expiration_time: Option<String>,
}

// why `oneOf` for the two fields rather than utoipa's `type: ["string", "null"]`: both say
// the same, but schemathesis (4.x) drops a type list's `format` and `pattern`, and then takes
// `""` for a valid date-time and a control character for a valid note, which the handler
// rightly refuses.

/// `note`'s schema: at most 128 characters (as the service counts them: Unicode scalar
/// values), none a control character (Unicode `Cc`, as `char::is_control`), or `null`.
fn nullable_note() -> Schema {
    let note = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(crate::token::NOTE_MAX_CHARS))
        .pattern(Some(r"^[^\u0000-\u001F\u007F-\u009F]*$"));
    nullable(note, "A one-line label for the token: at most 128 characters, no control characters.")
}

/// `expirationTime`'s schema: an RFC 3339 date-time, or `null`.
fn nullable_date_time() -> Schema {
    let date_time =
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    nullable(
        date_time,
        "An absolute expiry (RFC 3339), in the future; absent or `null`: the configured default lifetime \
         (none by default).",
    )
}

/// `schema` or `null`, as `oneOf`.
fn nullable(schema: ObjectBuilder, description: &str) -> Schema {
    OneOfBuilder::new()
        .item(schema)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(description))
        .build()
        .into()
}

/// The answer to a bump.
#[derive(ToSchema)]
#[schema(as = UsertokenBumped)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // why: a schema only.
struct Bumped {
    /// The user's new last-login time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    last_login_time: String,
}

/// The answer to a logout.
#[derive(ToSchema)]
#[schema(as = UsertokenLoggedOut)]
#[allow(dead_code)] // why: a schema only.
struct LoggedOut {
    /// Always `true`.
    success: bool,
}

/// What the dialect's layers (and the service's faults) can answer on any of its routes, in
/// its shape.
#[derive(IntoResponses)]
#[allow(dead_code)] // why: a description only.
enum OutsideErrors {
    /// No such endpoint under the dialect's prefix.
    #[response(status = 404, headers(("Vary" = String, description = "`Accept`")))]
    NotFound(ErrorBody),
    /// The path exists, the method does not.
    #[response(status = 405, headers(
        ("Allow" = String, description = "The allowed methods"),
        ("Vary" = String, description = "`Accept`"),
    ))]
    MethodNotAllowed(ErrorBody),
    /// The request body is larger than `http.body_limit`.
    #[response(status = 413, headers(("Vary" = String, description = "`Accept`")))]
    PayloadTooLarge(ErrorBody),
    /// An internal error (the cause is logged, never sent).
    #[response(status = 500, headers(("Vary" = String, description = "`Accept`")))]
    Internal(ErrorBody),
    /// The database is unreachable, too many logins are in progress, or the request timed out.
    #[response(status = 503, headers(
        ("Retry-After" = u64, description = "Seconds to wait before retrying"),
        ("Vary" = String, description = "`Accept`"),
    ))]
    Unavailable(ErrorBody),
}

fn field_message(e: &FieldError) -> String {
    let problem = match e.problem {
        FieldProblem::Required => "is required",
        FieldProblem::Null => "may not be null",
        FieldProblem::Blank => "may not be blank",
        FieldProblem::NotAString => "must be a string",
    };
    format!("{} {problem}", e.field)
}

impl ErrorShape for Usertoken {
    const NAME: &'static str = DialectId::Usertoken.as_str();

    fn error_response(err: &Error) -> Response {
        const AUTH: (&str, &str) = ("AuthError", "Authentication error");
        const INVALID: (&str, &str) = ("ValidationError", "Invalid request");
        let (status, (name, title), description) = match err {
            Error::BadCredentials(_) | Error::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, AUTH, "Authorization failed".to_owned())
            }
            Error::TokenLimit => (StatusCode::FORBIDDEN, AUTH, "Too many tokens".to_owned()),
            Error::Fields(fields) => {
                (StatusCode::BAD_REQUEST, INVALID, fields.iter().map(field_message).collect::<Vec<_>>().join("; "))
            }
            Error::Invalid(msg) => (StatusCode::BAD_REQUEST, INVALID, msg.clone()),
            Error::MalformedJson(msg) => {
                (StatusCode::BAD_REQUEST, INVALID, format!("Request body is not valid JSON: {msg}"))
            }
            Error::NotAnObject(_) => {
                (StatusCode::BAD_REQUEST, INVALID, "Request body must be a JSON object".to_owned())
            }
            Error::UnsupportedMediaType(ct) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID,
                format!("Unsupported media type {ct:?}: send application/json"),
            ),
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, INVALID, "Request body is too large".to_owned()),
            Error::NotFound => (StatusCode::NOT_FOUND, ("NotFoundError", "Not found"), "No such endpoint".to_owned()),
            Error::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ("MethodNotAllowedError", "Method not allowed"),
                format!("Method {m} is not allowed here"),
            ),
            Error::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                ("TooManyRequestsError", "Too many requests"),
                format!("Too many login attempts; try again in {} seconds", retry_after.as_secs()),
            ),
            Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                ("ServiceUnavailableError", "Service unavailable"),
                "The service is busy or unavailable; try again later".to_owned(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ("InternalError", "Internal error"),
                "An internal error occurred".to_owned(),
            ),
        };
        let mut resp = json_response(status, json!({ "name": name, "title": title, "description": description }));
        let headers = resp.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        if matches!(err, Error::BadCredentials(_) | Error::Unauthenticated(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tokenauth\""));
        }
        resp.into_response()
    }
}

#[cfg(test)]
mod proptests;
