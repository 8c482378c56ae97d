//! Who is asking: the web page's cookies (and the layer that makes them `Secure`), its CSRF
//! tokens, the session lookup, and the extractors that admit a request to a handler or answer
//! it with the refusal (a redirect to sign in, or an error page) before any handler runs.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{FromRequest, FromRequestParts, RawForm, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

use super::{UiError, base, see_other};
use crate::config::SecureCookie;
use crate::error::Error;
use crate::middleware::client_ip::ForwardedHttps;
use crate::model::Principal;
use crate::state::AppState;
use crate::token::Authenticated;
use crate::token::admin::is_administrator;

/// The session cookie (the web session's token).
pub const SESSION_COOKIE: &str = "tokenauth_session";
/// The sign-in form's double-submit CSRF cookie.
pub const CSRF_COOKIE: &str = "tokenauth_csrf";

// ---------------------------------------------------------------------------------------------
// Cookies
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

/// A new sign-in's cookies: the session's token for `ui.session_ttl`, and the sign-in form's
/// CSRF cookie cleared.
pub(super) fn start_session(app: &AppState, jar: CookieJar, token: &str) -> CookieJar {
    let ttl = time::Duration::try_from(app.config.ui.session_ttl).unwrap_or(time::Duration::hours(8));
    jar.add(cookie(app, SESSION_COOKIE, token.to_owned(), ttl)).add(expired(app, CSRF_COOKIE))
}

/// The session cookie cleared.
pub(super) fn end_session(app: &AppState, jar: CookieJar) -> CookieJar {
    jar.add(expired(app, SESSION_COOKIE))
}

/// Layer: every cookie the web page sets, or clears, is `Secure` when a trusted proxy says the
/// request came over HTTPS, or always with `ui.secure_cookie = "always"`. One place for the
/// rule, so a clearing cookie has the attributes of the cookie it clears whichever handler
/// (or refusal) sends it.
pub(super) async fn secure_cookies(
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

// ---------------------------------------------------------------------------------------------
// CSRF
// ---------------------------------------------------------------------------------------------

/// The sign-in form's CSRF token, and the jar that sets its double-submit cookie.
pub(super) fn signin_csrf(app: &AppState, jar: CookieJar) -> (CookieJar, String) {
    // why reuse: a second tab must not invalidate the form of the first.
    let csrf = jar
        .get(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| hex::encode(rand_bytes()));
    let jar = jar.add(cookie(app, CSRF_COOKIE, csrf.clone(), time::Duration::hours(1)));
    (jar, csrf)
}

/// Whether a sign-in form carried the value of its double-submit cookie.
pub(super) fn signin_csrf_matches(jar: &CookieJar, form: &Fields) -> bool {
    let expected = jar.get(CSRF_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    !expected.is_empty() && same_secret(form.get("csrf"), &expected)
}

fn rand_bytes() -> [u8; 32] {
    use argon2::password_hash::rand_core::{OsRng, RngCore as _};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
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

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// A signed-in visitor. As an extractor, for pages: the visitor, or the refusal (to sign in,
/// clearing a dead cookie; or an error page).
pub(super) struct Session {
    pub(super) auth: Authenticated,
    pub(super) principal: Principal,
    pub(super) csrf: String,
}

/// An administrator's session. As an extractor, for pages: as `Session`, and a 403 page for
/// anyone else.
pub(super) struct AdminSession(pub(super) Session);

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
                let jar = if jar.get(SESSION_COOKIE).is_some() { end_session(app, jar) } else { jar };
                let path = if expired { "/signin?expired=1" } else { "/signin" };
                (jar, see_other(app, path)).into_response()
            }
            Refusal::Error(e) => UiError::from(e).into_response(),
        }
    }
}

/// The session of the jar's cookie.
async fn lookup(app: &AppState, jar: &CookieJar) -> Result<Session, Refusal> {
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Refusal::SignIn { expired: false });
    };
    let auth = match app.tokens.authenticate(app.policies.web(), &token).await {
        Ok(auth) => auth,
        Err(Error::Unauthenticated(_)) => return Err(Refusal::SignIn { expired: true }),
        Err(e) => return Err(e.into()),
    };
    let principal = app.tokens.principal(auth.owner().kind, &auth.owner().name).await?;
    Ok(Session { auth, principal, csrf: session_csrf(&token) })
}

/// The session of the jar's cookie, if it holds a live one (the sign-in page's question).
pub(super) async fn current(app: &AppState, jar: &CookieJar) -> Option<Session> {
    lookup(app, jar).await.ok()
}

/// A session whose form carried its CSRF token.
async fn checked(app: &AppState, jar: &CookieJar, form: &Fields) -> Result<Session, Refusal> {
    let session = lookup(app, jar).await?;
    if !same_secret(form.get("csrf"), &session.csrf) {
        return Err(Refusal::Error(Error::Invalid(
            "The form has expired or did not come from this site. Reload the page and try again.".into(),
        )));
    }
    Ok(session)
}

/// Who may be admitted: anyone signed in (`Session`), or an administrator (`AdminSession`).
pub(super) trait Admit: Sized {
    /// The visitor as `Self`, or why not.
    fn admit(session: Session) -> Result<Self, Error>;
}

impl Admit for Session {
    fn admit(session: Session) -> Result<Self, Error> {
        Ok(session)
    }
}

impl Admit for AdminSession {
    fn admit(session: Session) -> Result<Self, Error> {
        if !is_administrator(&session.principal) {
            return Err(Error::Forbidden);
        }
        Ok(AdminSession(session))
    }
}

/// A page's visitor: looked up from the cookie, then admitted.
async fn visitor<S: Admit>(parts: &Parts, app: &AppState) -> Result<S, Response> {
    let jar = CookieJar::from_headers(&parts.headers);
    let admitted = match lookup(app, &jar).await {
        Ok(session) => S::admit(session).map_err(Refusal::Error),
        Err(refusal) => Err(refusal),
    };
    admitted.map_err(|r| r.into_response(app, jar))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        visitor(parts, app).await
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        visitor(parts, app).await
    }
}

// ---------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------

/// A form posted by a signed-in visitor (an administrator, for `SignedForm<AdminSession>`)
/// with its CSRF token. As an extractor, refused with the response that says why (a bad form,
/// a sign-in page, 400 or 403).
pub(super) struct SignedForm<S> {
    pub(super) form: Fields,
    pub(super) session: S,
}

impl<S: Admit> FromRequest<AppState> for SignedForm<S> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let jar = CookieJar::from_headers(&headers);
        let RawForm(body) = RawForm::from_request(req, app).await.map_err(IntoResponse::into_response)?;
        let form = Fields::parse(&headers, &body).map_err(|e| UiError::from(e).into_response())?;
        let session = checked(app, &jar, &form)
            .await
            .and_then(|s| S::admit(s).map_err(Refusal::Error))
            .map_err(|r| r.into_response(app, jar))?;
        Ok(SignedForm { form, session })
    }
}

/// A urlencoded form's fields (the last of repeated ones).
pub(super) struct Fields(HashMap<String, String>);

impl Fields {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, Error> {
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

    pub(super) fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}
