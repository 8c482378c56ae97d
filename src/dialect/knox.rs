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

use super::{Dialect, DialectError, JsonObject, json_response, required_string, rfc3339, scheme_credentials};
use crate::app::AppState;
use crate::config::KnoxConfig;
use crate::error::{AuthFailure, Error, FieldProblem, Malformation};
use crate::middleware::client_ip::ClientIp;
use crate::principal::PrincipalKind;
use crate::token::secret::TokenFormat;
use crate::token::{Authenticated, LoginOptions, Refresh, RevokeScope, TokenPolicy};

/// The knox dialect.
#[derive(Debug)]
pub struct Knox;

/// Its paths, relative to its prefix.
pub(crate) const PATHS: &[&str] = &["/auth/login/", "/auth/logout/", "/auth/logoutall/"];

/// Prefixed hex tokens, with knox's TTL, AUTO_REFRESH and TOKEN_LIMIT_PER_USER from config.
pub fn policy(cfg: &KnoxConfig) -> TokenPolicy {
    TokenPolicy {
        dialect: Knox::NAME,
        format: TokenFormat::PrefixedHex { prefix: cfg.token_prefix.clone() },
        session_ttl: cfg.token_ttl,
        refresh: cfg
            .auto_refresh
            .then_some(Refresh { min_interval: cfg.min_refresh_interval, max_lifetime: cfg.max_lifetime }),
        max_live_tokens: cfg.max_tokens_per_user,
    }
}

/// Its routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login/", post(login))
        .route("/auth/logout/", post(logout))
        .route("/auth/logoutall/", post(logout_all))
}

type Result<T> = std::result::Result<T, DialectError<Knox>>;

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
        .login(&app.policies.knox, PrincipalKind::User, &username, password.into(), ip, LoginOptions::default())
        .await?;
    let expiry = issued.record.expires_at.map(rfc3339).transpose()?;
    Ok(Json(json!({ "token": issued.token.expose(), "expiry": expiry })))
}

async fn logout(State(app): State<AppState>, KnoxAuth(auth): KnoxAuth) -> Result<StatusCode> {
    app.tokens.revoke(&auth).await?;
    Ok(logout_status(&app))
}

async fn logout_all(State(app): State<AppState>, KnoxAuth(auth): KnoxAuth) -> Result<StatusCode> {
    app.tokens.revoke_all(&auth, RevokeScope::SameDialect).await?;
    Ok(logout_status(&app))
}

fn logout_status(app: &AppState) -> StatusCode {
    // why: config validation admits only 200 and 204.
    StatusCode::from_u16(app.config.knox.logout_status).unwrap_or(StatusCode::OK)
}

/// A knox token from `Authorization: Token <token>`, authenticated.
struct KnoxAuth(Authenticated);

impl FromRequestParts<AppState> for KnoxAuth {
    type Rejection = DialectError<Knox>;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let token = scheme_credentials(&parts.headers, "Token").map_err(Error::Unauthenticated)?;
        Ok(KnoxAuth(app.tokens.authenticate(&app.policies.knox, token).await?))
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

impl Dialect for Knox {
    const NAME: &'static str = "knox";

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
            Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => {
                detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable, try again later.")
            }
            _ => detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred."),
        }
        .into_response()
    }
}
