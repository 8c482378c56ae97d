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

mod pages;

use std::collections::HashMap;

use axum::Extension;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::SecureCookie;
use crate::error::Error;
use crate::middleware::client_ip::{ClientIp, ForwardedHttps};
use crate::model::PrincipalKind;
use crate::model::{DialectId, Issuer};
use crate::model::{Principal, Token};
use crate::state::AppState;
use crate::surface::{ErrorShape, Rendered};
use crate::token::secret::TokenFormat;
use crate::token::{Authenticated, LoginOptions, MintOptions, RevokeScope, TokenPolicy};

pub use self::pages::STYLESHEET;

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

/// The session cookie (the web session's token).
pub const SESSION_COOKIE: &str = "tokenauth_session";
/// The sign-in form's double-submit CSRF cookie.
pub const CSRF_COOKIE: &str = "tokenauth_csrf";

/// why 36,500 days: a hundred years is "no expiry" in practice; an empty field is the real one.
const MAX_EXPIRY_DAYS: u64 = 36_500;

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
        get(home)
    } else {
        get(|State(app): State<AppState>| async move { see_other(&app, "/") })
    };
    Router::new()
        .route("/", root)
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/signout-everywhere", post(signout_everywhere))
        .route("/tokens", post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_own))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}/enable", post(enable_user))
        .route("/admin/users/{id}/disable", post(disable_user))
        .route("/admin/users/{id}/tokens", get(user_tokens))
        .route("/admin/users/{id}/tokens/{token}/revoke", post(admin_revoke))
        .route("/style.css", get(stylesheet))
        .route("/copy.js", get(script))
        .layer(axum::middleware::from_fn_with_state(secure, secure_cookies))
}

/// The home page at `prefix/`, mounted at the root; `None` when the page is at the root
/// itself (then `router` serves `/`).
pub fn home_router(prefix: &str, secure: SecureCookie) -> Option<Router<AppState>> {
    let base = prefix.trim_end_matches('/');
    (!base.is_empty()).then(|| {
        Router::new()
            .route(&format!("{base}/"), get(home))
            .layer(axum::middleware::from_fn_with_state(secure, secure_cookies))
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
// Cookies, sessions and CSRF
// ---------------------------------------------------------------------------------------------

/// A cookie of the web page. `Secure` is added by the `secure_cookies` layer, which knows how
/// the request came in.
fn cookie(app: &AppState, name: &'static str, value: String, max_age: time::Duration) -> Cookie<'static> {
    let path = if base(app).is_empty() { "/".to_owned() } else { base(app).to_owned() };
    Cookie::build((name, value)).http_only(true).same_site(SameSite::Strict).path(path).max_age(max_age).build()
}

fn expired(app: &AppState, name: &'static str) -> Cookie<'static> {
    cookie(app, name, String::new(), time::Duration::ZERO)
}

/// Layer: every cookie the web page sets, or clears, is `Secure` when a trusted proxy says the
/// request came over HTTPS, or always with `ui.secure_cookie = "always"`. One place for the
/// rule, so a clearing cookie has the attributes of the cookie it clears whichever handler
/// (or refusal) sends it.
async fn secure_cookies(
    State(policy): State<SecureCookie>,
    Extension(ForwardedHttps(https)): Extension<ForwardedHttps>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    if policy == SecureCookie::Always || https {
        mark_secure(resp.headers_mut());
    }
    resp
}

/// Add `Secure` to every `Set-Cookie` of a response.
fn mark_secure(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
    headers.remove(header::SET_COOKIE);
    for value in cookies {
        let secured = value.to_str().ok().and_then(|v| Cookie::parse(v.to_owned()).ok()).and_then(|mut c| {
            c.set_secure(true);
            HeaderValue::from_str(&c.to_string()).ok()
        });
        // why keep the original: only this module sets cookies, so it always parses; were it
        // not to, dropping the cookie would be worse than sending it unchanged.
        headers.append(header::SET_COOKIE, secured.unwrap_or(value));
    }
}

/// The CSRF token of a signed-in page: a digest of the session token, so only a page served
/// to the browser holding the cookie can know it.
fn session_csrf(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("tokenauth ui csrf\0{session_token}")))
}

/// Compare two secrets without an early exit on the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in visitor.
struct Session {
    auth: Authenticated,
    principal: Principal,
    csrf: String,
}

/// Why a page cannot be shown to this visitor.
enum Refusal {
    /// No session, or it expired or was revoked: sign in (again).
    SignIn { expired: bool },
    /// Anything else, rendered as an error page.
    Error(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

impl Refusal {
    fn into_response(self, app: &AppState, jar: CookieJar) -> Response {
        match self {
            Refusal::SignIn { expired } => {
                let jar =
                    if jar.get(SESSION_COOKIE).is_some() { jar.add(self::expired(app, SESSION_COOKIE)) } else { jar };
                let path = if expired { "/signin?expired=1" } else { "/signin" };
                (jar, see_other(app, path)).into_response()
            }
            Refusal::Error(e) => UiError::from(e).into_response(),
        }
    }
}

async fn session(app: &AppState, jar: &CookieJar) -> std::result::Result<Session, Refusal> {
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Refusal::SignIn { expired: false });
    };
    let auth = match app.tokens.authenticate(app.policies.web(), &token).await {
        Ok(auth) => auth,
        Err(Error::Unauthenticated(_)) => return Err(Refusal::SignIn { expired: true }),
        Err(e) => return Err(e.into()),
    };
    let principal = app.tokens.principal(auth.owner.kind, &auth.owner.name).await?;
    Ok(Session { auth, principal, csrf: session_csrf(&token) })
}

/// A session whose form carried its CSRF token.
async fn checked(app: &AppState, jar: &CookieJar, form: &Fields) -> std::result::Result<Session, Refusal> {
    let session = session(app, jar).await?;
    if !same_secret(form.get("csrf"), &session.csrf) {
        return Err(Refusal::Error(Error::Invalid(
            "The form has expired or did not come from this site. Reload the page and try again.".into(),
        )));
    }
    Ok(session)
}

/// An administrator's session.
async fn admin(app: &AppState, jar: &CookieJar) -> std::result::Result<Session, Refusal> {
    let session = session(app, jar).await?;
    if !is_admin(&session.principal) {
        return Err(Refusal::Error(Error::Forbidden));
    }
    Ok(session)
}

fn is_admin(p: &Principal) -> bool {
    p.kind == PrincipalKind::User && p.attributes.admin
}

/// Who may post a form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Anyone signed in.
    Session,
    /// An administrator.
    Admin,
}

/// A form posted by a signed-in visitor (an administrator, for `Needs::Admin`) with its CSRF
/// token; or the response refusing it (a bad form, a sign-in page, 400 or 403).
async fn signed_form(
    app: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    body: &[u8],
    needs: Needs,
) -> std::result::Result<(Fields, Session), Response> {
    let form = Fields::parse(headers, body).map_err(|e| UiError::from(e).into_response())?;
    let session = checked(app, jar, &form)
        .await
        .and_then(|s| {
            if needs == Needs::Admin && !is_admin(&s.principal) { Err(Refusal::Error(Error::Forbidden)) } else { Ok(s) }
        })
        .map_err(|r| r.into_response(app, jar.clone()))?;
    Ok((form, session))
}

/// A urlencoded form's fields (the last of repeated ones).
struct Fields(HashMap<String, String>);

impl Fields {
    fn parse(headers: &HeaderMap, body: &[u8]) -> std::result::Result<Self, Error> {
        // why: browsers say where a form comes from (Fetch Metadata). A form posted from
        // another site, or from a sibling subdomain (which could have planted the sign-in
        // CSRF cookie), is refused before anything else; clients that send no such header
        // (curl, older browsers) rely on the CSRF tokens alone.
        if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && !site.eq_ignore_ascii_case("same-origin")
            && !site.eq_ignore_ascii_case("none")
        {
            return Err(Error::Invalid("The form did not come from this site.".into()));
        }
        let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !form && !body.is_empty() {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            return Err(Error::UnsupportedMediaType(ct.to_owned()));
        }
        Ok(Fields(url::form_urlencoded::parse(body).into_owned().collect()))
    }

    fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Sign in and out
// ---------------------------------------------------------------------------------------------

async fn signin_form(State(app): State<AppState>, RawQuery(query): RawQuery, jar: CookieJar) -> Response {
    if session(&app, &jar).await.is_ok() {
        return see_other(&app, "/");
    }
    // why by hand: the notices are flags; odd query strings must not become a plain-text 400.
    let flags: Vec<String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).map(|(k, _)| k.into_owned()).collect();
    let notice = if flags.iter().any(|k| k == "expired") {
        Some("Your session has ended. Sign in again.")
    } else if flags.iter().any(|k| k == "signed_out") {
        Some("You have signed out.")
    } else {
        None
    };
    signin_page(&app, jar, StatusCode::OK, notice, None, ("", PrincipalKind::User))
}

fn signin_page(
    app: &AppState,
    jar: CookieJar,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    (name, kind): (&str, PrincipalKind),
) -> Response {
    // why reuse: a second tab must not invalidate the form of the first.
    let csrf = jar
        .get(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| hex::encode(rand_bytes()));
    let jar = jar.add(cookie(app, CSRF_COOKIE, csrf.clone(), time::Duration::hours(1)));
    let page = pages::signin(base(app), &csrf, notice, error, name, kind, app.config.dialer.enabled);
    (jar, html(status, page)).into_response()
}

fn rand_bytes() -> [u8; 32] {
    use argon2::password_hash::rand_core::{OsRng, RngCore as _};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

async fn signin(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Result<Response> {
    let form = Fields::parse(&headers, &body)?;
    // why: resellers exist for the dialer; with it off they have nothing to manage here.
    let kind = if form.get("kind") == "reseller" && app.config.dialer.enabled {
        PrincipalKind::Reseller
    } else {
        PrincipalKind::User
    };
    let name = form.get("name").trim().to_owned();
    let expected = jar.get(CSRF_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if expected.is_empty() || !same_secret(form.get("csrf"), &expected) {
        let msg = "The form has expired or did not come from this site. Try again.";
        return Ok(signin_page(&app, jar, StatusCode::FORBIDDEN, None, Some(msg), (&name, kind)));
    }
    if name.is_empty() || form.get("password").is_empty() {
        let msg = "Enter your name and password.";
        return Ok(signin_page(&app, jar, StatusCode::BAD_REQUEST, None, Some(msg), (&name, kind)));
    }
    let password = SecretString::from(form.get("password").to_owned());
    let options = LoginOptions { note: Some("web sign-in".into()), expires_at: None };
    match app.tokens.login(app.policies.web(), kind, &name, password, ip, options).await {
        Ok(issued) => {
            // why: a new sign-in replaces the one this browser held, so sessions do not pile up.
            if let Ok(old) = session(&app, &jar).await
                && let Err(e) = app.tokens.revoke(&old.auth).await
            {
                tracing::warn!(error = %e, "could not end the replaced web session");
            }
            let ttl = time::Duration::try_from(app.config.ui.session_ttl).unwrap_or(time::Duration::hours(8));
            let jar = jar
                .add(cookie(&app, SESSION_COOKIE, issued.token.expose().to_owned(), ttl))
                .add(expired(&app, CSRF_COOKIE));
            Ok((jar, see_other(&app, "/")).into_response())
        }
        Err(Error::BadCredentials(_)) => {
            // why one message: which of name, password, state or address was wrong is not
            // told to someone who may be guessing.
            let msg = "Wrong name or password, or this account may not sign in from here.";
            Ok(signin_page(&app, jar, StatusCode::UNAUTHORIZED, None, Some(msg), (&name, kind)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn signout(State(app): State<AppState>, jar: CookieJar, headers: HeaderMap, RawForm(body): RawForm) -> Response {
    let s = match signed_form(&app, &jar, &headers, &body, Needs::Session).await {
        Ok((_, s)) => s,
        Err(refused) => return refused,
    };
    match app.tokens.revoke(&s.auth).await {
        // why Unauthenticated too: signed out meanwhile (another tab): the same outcome.
        Ok(()) | Err(Error::Unauthenticated(_)) => {
            (jar.add(expired(&app, SESSION_COOKIE)), see_other(&app, "/signin?signed_out=1")).into_response()
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

async fn signout_everywhere(
    State(app): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let s = match signed_form(&app, &jar, &headers, &body, Needs::Session).await {
        Ok((_, s)) => s,
        Err(refused) => return refused,
    };
    // why SameDialect: the session's "dialect" is the web page's, so this ends every web
    // session of the principal and leaves its API tokens alone (they have their own list).
    match app.tokens.revoke_all(&s.auth, RevokeScope::SameDialect).await {
        Ok(_) => (jar.add(expired(&app, SESSION_COOKIE)), see_other(&app, "/signin?signed_out=1")).into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// My tokens
// ---------------------------------------------------------------------------------------------

/// The dialects a principal can have static tokens for: the enabled ones, and only the
/// dialer's for resellers (they log in nowhere else).
fn dialects_for(app: &AppState, kind: PrincipalKind) -> Vec<DialectId> {
    DialectId::ALL
        .into_iter()
        .filter(|d| app.config.dialect_enabled(*d) && (kind == PrincipalKind::User || *d == DialectId::Dialer))
        .collect()
}

async fn home(State(app): State<AppState>, jar: CookieJar) -> Response {
    match session(&app, &jar).await {
        Ok(s) => match tokens_page(&app, &s, StatusCode::OK, None, None).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        },
        Err(r) => r.into_response(&app, jar),
    }
}

/// A token just created, shown once.
struct Created<'a> {
    dialect: DialectId,
    token: &'a str,
    /// Webitel's logout needs the token's id too (`X-Key`).
    key: Option<String>,
}

async fn tokens_page(
    app: &AppState,
    s: &Session,
    status: StatusCode,
    created: Option<Created<'_>>,
    error: Option<&str>,
) -> Result<Response> {
    let tokens = app.tokens.list(s.principal.kind, &s.principal.name).await?;
    let now = app.tokens.now();
    let page = pages::tokens(
        base(app),
        &pages::Viewer { principal: &s.principal, admin: is_admin(&s.principal), csrf: &s.csrf },
        &tokens,
        now,
        &dialects_for(app, s.principal.kind),
        created.as_ref().map(|c| (c.dialect, c.token, c.key.as_deref())),
        error,
    );
    Ok(html(status, page))
}

async fn create_token(
    State(app): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let (form, s) = match signed_form(&app, &jar, &headers, &body, Needs::Session).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let result = async {
        let allowed = dialects_for(&app, s.principal.kind);
        let Some(dialect) = form.get("dialect").parse().ok().filter(|d| allowed.contains(d)) else {
            return tokens_page(&app, &s, StatusCode::BAD_REQUEST, None, Some("Choose one of the listed dialects."))
                .await;
        };
        let ttl = match form.get("expires_days").trim() {
            "" => None,
            days => match days.parse::<u64>() {
                Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(std::time::Duration::from_secs(d * 86_400)),
                _ => {
                    let msg =
                        format!("The expiry must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or empty.");
                    return tokens_page(&app, &s, StatusCode::BAD_REQUEST, None, Some(&msg)).await;
                }
            },
        };
        let note = Some(form.get("note").trim().to_owned()).filter(|n| !n.is_empty());
        let options = MintOptions { static_token: true, ttl, note };
        let policy = app.policies.get(dialect);
        match app.tokens.mint(policy, s.principal.kind, &s.principal.name, options).await {
            Ok(issued) => {
                let key = (dialect == DialectId::Webitel).then(|| issued.record.id.to_string());
                let created = Created { dialect, token: issued.token.expose(), key };
                tokens_page(&app, &s, StatusCode::OK, Some(created), None).await
            }
            Err(Error::Invalid(msg)) => tokens_page(&app, &s, StatusCode::BAD_REQUEST, None, Some(&msg)).await,
            Err(e) => Err(e.into()),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

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

async fn revoke_own(
    State(app): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let (_, s) = match signed_form(&app, &jar, &headers, &body, Needs::Session).await {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let result = async {
        let id = param(id)?;
        let tokens = app.tokens.list(s.principal.kind, &s.principal.name).await?;
        app.tokens.revoke_by_id(own(&tokens, &id)?).await?;
        Ok::<_, Error>(see_other(&app, "/"))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

// ---------------------------------------------------------------------------------------------
// Administrators
// ---------------------------------------------------------------------------------------------

async fn users(State(app): State<AppState>, jar: CookieJar) -> Response {
    let s = match admin(&app, &jar).await {
        Ok(s) => s,
        Err(r) => return r.into_response(&app, jar),
    };
    match app.tokens.list_principals(PrincipalKind::User).await {
        Ok(list) => {
            let viewer = pages::Viewer { principal: &s.principal, admin: true, csrf: &s.csrf };
            html(StatusCode::OK, pages::users(base(&app), &viewer, &list))
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

async fn user_by_id(app: &AppState, id: &str) -> std::result::Result<Principal, Error> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound)?;
    let users = app.tokens.list_principals(PrincipalKind::User).await?;
    users.into_iter().find(|u| u.id == id).ok_or(Error::NotFound)
}

/// Enable or disable a user (administrators), and record it.
async fn set_enabled(
    (app, ip): (AppState, std::net::IpAddr),
    id: std::result::Result<Path<String>, PathRejection>,
    jar: CookieJar,
    headers: HeaderMap,
    body: &[u8],
    enabled: bool,
) -> Response {
    let s = match signed_form(&app, &jar, &headers, body, Needs::Admin).await {
        Ok((_, s)) => s,
        Err(refused) => return refused,
    };
    let result = async {
        let user = user_by_id(&app, &param(id)?).await?;
        if user.id == s.principal.id && !enabled {
            return Err(Error::Invalid("You cannot disable yourself: ask another administrator.".into()));
        }
        if user.enabled != enabled {
            // why the record first: an action that cannot be recorded is not taken.
            let action = if enabled { "user.enable" } else { "user.disable" };
            app.tokens.audit(&s.principal, action, &user.name, ip).await?;
            // Disabling also ends the user's web sessions (see `set_principal_enabled`).
            app.tokens.set_principal_enabled(PrincipalKind::User, &user.name, enabled).await?;
        }
        Ok(see_other(&app, "/admin/users"))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

async fn enable_user(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    id: std::result::Result<Path<String>, PathRejection>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    set_enabled((app, ip), id, jar, headers, &body, true).await
}

async fn disable_user(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    id: std::result::Result<Path<String>, PathRejection>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    set_enabled((app, ip), id, jar, headers, &body, false).await
}

async fn user_tokens(
    State(app): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    jar: CookieJar,
) -> Response {
    let s = match admin(&app, &jar).await {
        Ok(s) => s,
        Err(r) => return r.into_response(&app, jar),
    };
    let result = async {
        let user = user_by_id(&app, &param(id)?).await?;
        let tokens = app.tokens.list(PrincipalKind::User, &user.name).await?;
        let viewer = pages::Viewer { principal: &s.principal, admin: true, csrf: &s.csrf };
        Ok::<_, Error>(html(StatusCode::OK, pages::user_tokens(base(&app), &viewer, &user, &tokens, app.tokens.now())))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}

async fn admin_revoke(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    ids: std::result::Result<Path<(String, String)>, PathRejection>,
    jar: CookieJar,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let s = match signed_form(&app, &jar, &headers, &body, Needs::Admin).await {
        Ok((_, s)) => s,
        Err(refused) => return refused,
    };
    let result = async {
        let (id, token) = param(ids)?;
        let user = user_by_id(&app, &id).await?;
        let tokens = app.tokens.list(PrincipalKind::User, &user.name).await?;
        let token_id = own(&tokens, &token)?;
        let dialect = tokens.iter().find(|t| t.id == token_id).map_or("", |t| t.issuer.as_str());
        // why the record first: an action that cannot be recorded is not taken.
        app.tokens.audit(&s.principal, "token.revoke", &format!("{} {dialect} {token_id}", user.name), ip).await?;
        app.tokens.revoke_by_id(token_id).await?;
        Ok::<_, Error>(see_other(&app, &format!("/admin/users/{}/tokens", user.id)))
    }
    .await;
    result.unwrap_or_else(|e| UiError::from(e).into_response())
}
