//! The static-token web page at `/ui/`: people sign in and manage their long-lived tokens;
//! administrators also enable and disable users and revoke anyone's tokens.
//!
//! Policy:
//! - Server-rendered HTML (maud, compiled in), plain forms that work without JavaScript; one
//!   small stylesheet and an optional copy-to-clipboard script, both served from the binary.
//! - A sign-in is a token of its own kind: a row issued under the `ui` name (never accepted
//!   by a dialect or `/verify`, never listed as a user's token), sent back as an `HttpOnly`,
//!   `SameSite=Strict` cookie, `Secure` over HTTPS (a trusted proxy's `X-Forwarded-Proto`) or
//!   always by config. Signing in goes through `TokenService::login`, so the login throttle
//!   and the IP rules of the API apply.
//! - Every form carries a CSRF token: before sign-in, a random value that must match a
//!   cookie of the same name (double submit); after, a digest of the session token, which only
//!   a page served to this browser can know. Compared in constant time.
//! - Every POST answers with a redirect (so a reload repeats nothing), except creating a
//!   token, whose page shows the new token exactly once and is never cached.
//! - Administrators (users with `admin`) get the user list and anyone's tokens; each of their
//!   actions is recorded in the audit log (`tokenauth audit`).
//! - Handlers only translate: the token service decides.
//!
//! Structure:
//! - this file: the routes, the web page's token `policy`, its error pages (`Ui`) and the
//!   response helpers every page uses (security headers, redirects under the prefix);
//! - `session`: cookies and their `Secure` layer, CSRF, the session lookup, and the extractors
//!   a handler takes to be reached only by a signed-in visitor (`Session`), an administrator
//!   (`AdminSession`), or with a form that carries its CSRF token (`SignedForm`): whatever they
//!   refuse never reaches a handler;
//! - `sign_in`: signing in and out; `tokens`: a visitor's own tokens; `admin`: the
//!   administrators' pages; `pages`: the HTML.

mod admin;
mod pages;
mod session;
mod sign_in;
mod tokens;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use uuid::Uuid;

use crate::config::SecureCookie;
use crate::error::Error;
use crate::model::{Issuer, Token};
use crate::state::AppState;
use crate::surface::{ErrorShape, Rendered};
use crate::token::TokenPolicy;
use crate::token::secret::TokenFormat;

pub use self::pages::STYLESHEET;
pub use self::session::{CSRF_COOKIE, SESSION_COOKIE};

/// The web page's paths, relative to its prefix (for the overlap check).
pub const PATHS: &[&str] = &[
    "/",
    "/signin",
    "/signout",
    "/signout-everywhere",
    "/tokens",
    "/tokens/{id}/revoke",
    "/admin/users",
    "/admin/users/{id}/enable",
    "/admin/users/{id}/disable",
    "/admin/users/{id}/tokens",
    "/admin/users/{id}/tokens/{token}/revoke",
    "/style.css",
    "/copy.js",
];

/// The web page as a "dialect": its errors are HTML pages.
#[derive(Debug)]
pub struct Ui;

impl ErrorShape for Ui {
    const NAME: &'static str = "ui";

    fn error_response(err: &Error) -> Response {
        let (status, message) = match err {
            Error::NotFound | Error::NoSuchToken(_) | Error::NoSuchPrincipal { .. } => {
                (StatusCode::NOT_FOUND, "There is no such page.".to_owned())
            }
            Error::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, format!("Method {m} is not allowed here.")),
            Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.".to_owned()),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Send the form as a web browser does.".to_owned())
            }
            Error::Forbidden => (StatusCode::FORBIDDEN, "This page is for administrators.".to_owned()),
            Error::TokenLimit => {
                (StatusCode::FORBIDDEN, "You already hold as many live tokens of this dialect as allowed.".to_owned())
            }
            Error::Invalid(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
            Error::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins. Try again in {} seconds.", retry_after.as_secs()),
            ),
            Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "The service is unavailable. Try again shortly.".to_owned())
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.".to_owned()),
        };
        html(status, pages::error(status, &message))
    }
}

type UiError = crate::surface::ShapedError<Ui>;
type Result<T> = std::result::Result<T, UiError>;

/// The web page's token policy: sessions as long as `ui.session_ttl`, random hex tokens.
pub fn policy(config: &crate::config::UiConfig) -> TokenPolicy {
    TokenPolicy {
        issuer: Issuer::WebPage,
        format: TokenFormat::PrefixedHex { prefix: "tui_".into() },
        session_ttl: Some(config.session_ttl),
        refresh: None,
        max_live_tokens: None,
        principal_kind: None,
    }
}

/// The routes, relative to the prefix. `prefix` itself redirects to `prefix/`, which
/// `home_router` serves (a nested router cannot: axum nests `/ui` and `/ui/...`, not `/ui/`).
pub fn router(prefix: &str, secure: SecureCookie) -> Router<AppState> {
    let root = if prefix.trim_end_matches('/').is_empty() {
        get(tokens::home)
    } else {
        get(|State(app): State<AppState>| async move { see_other(&app, "/") })
    };
    Router::new()
        .route("/", root)
        .route("/signin", get(sign_in::signin_form).post(sign_in::signin))
        .route("/signout", post(sign_in::signout))
        .route("/signout-everywhere", post(sign_in::signout_everywhere))
        .route("/tokens", post(tokens::create_token))
        .route("/tokens/{id}/revoke", post(tokens::revoke_own))
        .route("/admin/users", get(admin::users))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/tokens", get(admin::user_tokens))
        .route("/admin/users/{id}/tokens/{token}/revoke", post(admin::admin_revoke))
        .route("/style.css", get(stylesheet))
        .route("/copy.js", get(script))
        .layer(axum::middleware::from_fn_with_state(secure, session::secure_cookies))
}

/// The home page at `prefix/`, mounted at the root; `None` when the page is at the root
/// itself (then `router` serves `/`).
pub fn home_router(prefix: &str, secure: SecureCookie) -> Option<Router<AppState>> {
    let base = prefix.trim_end_matches('/');
    (!base.is_empty()).then(|| {
        Router::new()
            .route(&format!("{base}/"), get(tokens::home))
            .layer(axum::middleware::from_fn_with_state(secure, session::secure_cookies))
    })
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// An HTML page with the headers every page of ours carries.
fn html(status: StatusCode, body: maud::Markup) -> Response {
    let mut resp = (status, body).into_response();
    protect(resp.headers_mut());
    resp.extensions_mut().insert(Rendered);
    resp
}

/// why each: pages show tokens, so nothing is cached or framed; scripts and forms only from
/// here; no referrer leaks our URLs.
fn protect(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

fn see_other(app: &AppState, path: &str) -> Response {
    let mut resp = Redirect::to(&format!("{}{path}", base(app))).into_response();
    protect(resp.headers_mut());
    resp
}

/// The prefix the page is mounted at, without a trailing slash (`/ui`, or `` at the root).
fn base(app: &AppState) -> &str {
    app.config.ui.prefix.trim_end_matches('/')
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", pages::COPY_SCRIPT)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

// ---------------------------------------------------------------------------------------------
// Shared by the pages
// ---------------------------------------------------------------------------------------------

/// The principal's own live token `id`, or a 404 (so ids of other people's tokens reveal
/// nothing, and revoking twice records nothing twice).
fn own(tokens: &[Token], id: &str) -> std::result::Result<Uuid, Error> {
    Uuid::parse_str(id)
        .ok()
        .filter(|id| tokens.iter().any(|t| t.id == *id && t.revoked_at.is_none()))
        .ok_or_else(|| Error::NoSuchToken(id.to_owned()))
}

/// A path parameter, or a 404 for one that cannot be (invalid UTF-8, say).
fn param<T>(path: std::result::Result<Path<T>, PathRejection>) -> std::result::Result<T, Error> {
    path.map(|Path(p)| p).map_err(|_| Error::NotFound)
}
