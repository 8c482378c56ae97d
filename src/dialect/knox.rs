//! The knox dialect (seed 003: Papermerge on django-rest-knox).
//!
//! `POST /auth/login/` with a JSON `{username, password}` answers `{token, expiry}`;
//! `POST /auth/logout/` and `/auth/logoutall/` take `Authorization: Token <token>`. Errors
//! follow Django REST framework: `{"non_field_errors": [...]}`, `{"<field>": [...]}`,
//! `{"detail": ...}`, and 401s with `WWW-Authenticate: Token`.
//!
//! Departures from the seed (from `dialects.md`): tokens are 64 hex characters after an
//! optional prefix (knox ≥ 4.2), not 40; logout answers 200 with an empty body by default
//! (real knox answers 204; `knox.logout_status` picks). `logoutall` revokes the user's knox
//! tokens, static ones included, and leaves other dialects' tokens alone.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use utoipa::{IntoResponses, OpenApi, ToSchema};

use super::{JsonObject, required_string};
use crate::config::KnoxConfig;
use crate::error::{AuthFailure, Error, FieldProblem, Malformation};
use crate::middleware::client_ip::ClientIp;
use crate::model::PrincipalKind;
use crate::model::{DialectId, Issuer, LogoutStatus};
use crate::state::AppState;
use crate::surface::{ErrorShape, ShapedError, json_response, rfc3339, scheme_credentials};
use crate::token::secret::TokenFormat;
use crate::token::{Authenticated, LoginOptions, Refresh, RevokeScope, TokenPolicy};

/// The knox dialect.
#[derive(Debug)]
pub struct Knox;

/// Its paths, relative to its prefix.
#[doc(hidden)]
pub const PATHS: &[&str] = &["/auth/login/", "/auth/logout/", "/auth/logoutall/"];

/// Prefixed hex tokens, with knox's TTL, AUTO_REFRESH and TOKEN_LIMIT_PER_USER from config.
pub fn policy(cfg: &KnoxConfig) -> TokenPolicy {
    TokenPolicy {
        issuer: Issuer::Dialect(DialectId::Knox),
        format: TokenFormat::PrefixedHex { prefix: cfg.token_prefix.clone() },
        session_ttl: cfg.token_ttl,
        refresh: cfg
            .auto_refresh
            .then_some(Refresh { min_interval: cfg.min_refresh_interval, max_lifetime: cfg.max_lifetime }),
        max_live_tokens: cfg.max_tokens_per_user,
        principal_kind: None,
    }
}

/// Its routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login/", post(login))
        .route("/auth/logout/", post(logout))
        .route("/auth/logoutall/", post(logout_all))
}

type Result<T> = std::result::Result<T, ShapedError<Knox>>;

#[utoipa::path(
    post,
    path = "/auth/login/",
    tag = "knox",
    operation_id = "knox_login",
    summary = "Log in with a username and password; answers a new token",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new token", body = LoggedIn),
        (status = 400, description = "Django REST framework's shapes: wrong credentials or an inactive user \
            (`non_field_errors`), a missing, null, blank or non-string field (one key per field), a body \
            that is not an object (`non_field_errors`), malformed JSON or an invalid value (`detail`)",
            body = BadRequest),
        (status = 403, description = "The user already holds `knox.max_tokens_per_user` live tokens",
            body = TokenLimitBody),
        (status = 415, description = "A non-empty body that is not `application/json`", body = Detail),
        (status = 429, description = "Too many failed or in-flight logins for this address or account: \
            `Request was throttled. Expected available in N seconds.`", body = Detail, headers(("Retry-After" = u64, description = "Seconds to wait"))),
        OutsideErrors,
    )
)]
async fn login(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    JsonObject(body, _): JsonObject<Knox>,
) -> Result<Json<Value>> {
    let body = body.as_ref();
    let (username, password) = match (required_string(body, "username", true), required_string(body, "password", false))
    {
        (Ok(u), Ok(p)) => (u, p),
        (u, p) => return Err(Error::Fields(u.err().into_iter().chain(p.err()).collect()).into()),
    };
    let issued = app
        .tokens
        .login(
            app.policies.get(DialectId::Knox),
            PrincipalKind::User,
            &username,
            password.into(),
            ip,
            LoginOptions::default(),
        )
        .await?;
    let expiry = issued.record.expires_at.map(rfc3339).transpose()?;
    Ok(Json(json!({ "token": issued.token.expose(), "expiry": expiry })))
}

#[utoipa::path(
    post,
    path = "/auth/logout/",
    tag = "knox",
    operation_id = "knox_logout",
    summary = "Revoke the presented token",
    security(("token" = [])),
    responses(
        (status = 200, description = "Revoked (empty body; the status is `knox.logout_status`)"),
        (status = 401, description = "No credentials, a malformed header, an unknown, expired or revoked \
            token, or an inactive user", body = Detail,
            headers(("WWW-Authenticate" = String, description = "`Token`"))),
        OutsideErrors,
    )
)]
async fn logout(State(app): State<AppState>, KnoxAuth(auth): KnoxAuth) -> Result<StatusCode> {
    app.tokens.revoke(&auth).await?;
    Ok(logout_status(&app))
}

#[utoipa::path(
    post,
    path = "/auth/logoutall/",
    tag = "knox",
    operation_id = "knox_logoutall",
    summary = "Revoke every knox token of the presented token's user, never-expiring ones included",
    security(("token" = [])),
    responses(
        (status = 200, description = "Revoked (empty body; the status is `knox.logout_status`)"),
        (status = 401, description = "No credentials, a malformed header, an unknown, expired or revoked \
            token, or an inactive user", body = Detail,
            headers(("WWW-Authenticate" = String, description = "`Token`"))),
        OutsideErrors,
    )
)]
async fn logout_all(State(app): State<AppState>, KnoxAuth(auth): KnoxAuth) -> Result<StatusCode> {
    app.tokens.revoke_all(&auth, RevokeScope::SameDialect).await?;
    Ok(logout_status(&app))
}

fn logout_status(app: &AppState) -> StatusCode {
    // why: config validation admits only 200 and 204.
    StatusCode::from_u16(app.config.knox.logout_status.code()).unwrap_or(StatusCode::OK)
}

/// The knox part of the OpenAPI document, paths relative to the dialect's prefix. The logout
/// answers are documented as 200; `set_logout_status` moves them to the configured status.
#[derive(OpenApi)]
#[openapi(
    paths(login, logout, logout_all),
    components(schemas(Detail)),
    tags((name = "knox", description = "Seed 003: Papermerge on django-rest-knox. Errors follow Django REST \
        framework; 401s carry `WWW-Authenticate: Token`."))
)]
pub(crate) struct Api;

/// Document the logouts' success as `status` (`knox.logout_status`: 200 or 204), as served.
pub(crate) fn set_logout_status(api: &mut utoipa::openapi::OpenApi, status: LogoutStatus) {
    if status == LogoutStatus::Ok {
        return;
    }
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        let Some(op) = api.paths.paths.get_mut(path).and_then(|item| item.post.as_mut()) else { continue };
        if let Some(ok) = op.responses.responses.remove("200") {
            op.responses.responses.insert(status.code().to_string(), ok);
        }
    }
}

// OpenAPI-only shapes: the handlers write these with `json!`.

/// The login body.
#[derive(ToSchema)]
#[schema(as = KnoxLoginRequest)]
#[allow(dead_code)] // why: a schema only; the handler reads the fields one by one.
struct LoginRequest {
    /// The username (surrounding whitespace is removed, so it must hold something else).
    // why this pattern: some character that is not whitespace as `str::trim` counts it
    // (Unicode White_Space), spelled out so every regex dialect reads it alike; a blank name
    // is a 400 field error, so the schema must not admit `" "`.
    #[schema(
        min_length = 1,
        pattern = r"[^\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    username: String,
    /// The password.
    #[schema(min_length = 1)]
    password: String,
}

/// The login answer.
#[derive(ToSchema)]
#[schema(as = KnoxLogin)]
#[allow(dead_code)] // why: a schema only.
struct LoggedIn {
    /// The token: 64 lowercase hex characters after the optional `knox.token_prefix`.
    #[schema(example = "5f0c5e0b2d1f4e7a9c3b8a6d4e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f")]
    token: String,
    /// The expiry (ISO 8601, UTC, with `Z`), `null` when the token never expires (the default).
    #[schema(required = true, format = DateTime)]
    expiry: Option<String>,
}

/// A 400: exactly one of Django REST framework's three shapes.
#[derive(ToSchema)]
#[schema(as = KnoxBadRequest)]
#[serde(untagged)]
#[allow(dead_code)] // why: a schema only.
enum BadRequest {
    /// Field errors: one key per failing field.
    Fields(FieldErrors),
    /// An error not tied to a field.
    NonField(NonFieldErrors),
    /// A malformed request.
    Detail(Detail),
}

/// Field errors, each failing field with its messages (e.g. `This field is required.`).
// why no `min_properties = 1`: utoipa 5.5 emits it as `maxProperties`, which would refuse a
// body naming both fields.
#[derive(ToSchema)]
#[schema(as = KnoxFieldErrors)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // why: a schema only.
struct FieldErrors {
    /// The username's problems.
    #[schema(nullable = false)]
    username: Option<Vec<String>>,
    /// The password's problems.
    #[schema(nullable = false)]
    password: Option<Vec<String>>,
}

/// `{"non_field_errors": [...]}`, e.g. `Unable to log in with provided credentials.`
#[derive(ToSchema)]
#[schema(as = KnoxNonFieldErrors)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // why: a schema only.
struct NonFieldErrors {
    /// The messages.
    non_field_errors: Vec<String>,
}

/// `{"detail": "..."}`: every error but the 400 field errors and the 403.
#[derive(ToSchema)]
#[schema(as = KnoxDetail)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // why: a schema only.
struct Detail {
    /// The message, e.g. `Invalid token.`
    detail: String,
}

/// The token-limit refusal.
#[derive(ToSchema)]
#[schema(as = KnoxTokenLimit)]
#[allow(dead_code)] // why: a schema only.
struct TokenLimitBody {
    /// `Maximum amount of tokens allowed per user exceeded.`
    error: String,
}

/// What the dialect's layers (and the service's faults) can answer on any of its routes, in
/// its shape.
#[derive(IntoResponses)]
#[allow(dead_code)] // why: a description only.
enum OutsideErrors {
    /// No such endpoint under the dialect's prefix.
    #[response(status = 404)]
    NotFound(Detail),
    /// The path exists, the method does not.
    #[response(status = 405, headers(("Allow" = String, description = "The allowed methods")))]
    MethodNotAllowed(Detail),
    /// The request body is larger than `http.body_limit`.
    #[response(status = 413)]
    PayloadTooLarge(Detail),
    /// An internal error (the cause is logged, never sent).
    #[response(status = 500)]
    Internal(Detail),
    /// The database is unreachable, too many logins are in progress, or the request timed out.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(Detail),
}

/// A knox token from `Authorization: Token <token>`, authenticated.
struct KnoxAuth(Authenticated);

impl FromRequestParts<AppState> for KnoxAuth {
    type Rejection = ShapedError<Knox>;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let token = scheme_credentials(&parts.headers, "Token").map_err(Error::Unauthenticated)?;
        Ok(KnoxAuth(app.tokens.authenticate(app.policies.get(DialectId::Knox), token).await?))
    }
}

fn detail(status: StatusCode, detail: &str) -> Response {
    json_response(status, json!({ "detail": detail }))
}

fn unauthenticated_detail(failure: AuthFailure) -> &'static str {
    match failure {
        AuthFailure::Missing => "Authentication credentials were not provided.",
        AuthFailure::Malformed(Malformation::Empty) => "Invalid token header. No credentials provided.",
        AuthFailure::Malformed(Malformation::ContainsSpaces) => {
            "Invalid token header. Token string should not contain spaces."
        }
        AuthFailure::Malformed(Malformation::InvalidCharacters) => {
            "Invalid token header. Token string should not contain invalid characters."
        }
        AuthFailure::PrincipalDisabled => "User inactive or deleted.",
        AuthFailure::Malformed(Malformation::BadFormat | Malformation::BadSignature)
        | AuthFailure::Unknown
        | AuthFailure::Expired
        | AuthFailure::Revoked
        | AuthFailure::TokenDisabled
        | AuthFailure::WrongKind
        | AuthFailure::WrongDialect => "Invalid token.",
    }
}

impl ErrorShape for Knox {
    const NAME: &'static str = DialectId::Knox.as_str();

    fn error_response(err: &Error) -> Response {
        match err {
            Error::BadCredentials(_) => json_response(
                StatusCode::BAD_REQUEST,
                json!({ "non_field_errors": ["Unable to log in with provided credentials."] }),
            ),
            Error::Fields(fields) => {
                let mut body = Map::new();
                for f in fields {
                    let msg = match f.problem {
                        FieldProblem::Required => "This field is required.",
                        FieldProblem::Null => "This field may not be null.",
                        FieldProblem::Blank => "This field may not be blank.",
                        FieldProblem::NotAString => "Not a valid string.",
                    };
                    body.insert(f.field.to_owned(), json!([msg]));
                }
                json_response(StatusCode::BAD_REQUEST, Value::Object(body))
            }
            Error::NotAnObject(found) => json_response(
                StatusCode::BAD_REQUEST,
                json!({ "non_field_errors": [format!("Invalid data. Expected a dictionary, but got {found}.")] }),
            ),
            Error::MalformedJson(msg) => detail(StatusCode::BAD_REQUEST, &format!("JSON parse error - {msg}")),
            Error::Invalid(msg) => detail(StatusCode::BAD_REQUEST, msg),
            Error::UnsupportedMediaType(ct) => {
                detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("Unsupported media type \"{ct}\" in request."))
            }
            Error::PayloadTooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large."),
            Error::Unauthenticated(failure) => {
                let mut resp = detail(StatusCode::UNAUTHORIZED, unauthenticated_detail(*failure));
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                resp
            }
            Error::TokenLimit => json_response(
                StatusCode::FORBIDDEN,
                json!({ "error": "Maximum amount of tokens allowed per user exceeded." }),
            ),
            Error::NotFound => detail(StatusCode::NOT_FOUND, "Not found."),
            Error::MethodNotAllowed(m) => {
                detail(StatusCode::METHOD_NOT_ALLOWED, &format!("Method \"{m}\" not allowed."))
            }
            // why this wording: Django REST framework's own `Throttled` detail, which knox
            // clients already know.
            Error::Throttled { retry_after } => detail(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Request was throttled. Expected available in {} seconds.", retry_after.as_secs()),
            ),
            Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => {
                detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again later.")
            }
            _ => detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred."),
        }
        .into_response()
    }
}
