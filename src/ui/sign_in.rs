//! Signing in (the form and its post), signing out, and signing out everywhere.

use axum::Extension;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use secrecy::SecretString;

use super::session::{self, Fields, Session, SignedForm};
use super::{Result, UiError, base, html, pages, see_other};
use crate::error::Error;
use crate::middleware::client_ip::ClientIp;
use crate::model::PrincipalKind;
use crate::state::AppState;
use crate::token::{LoginOptions, RevokeScope};

pub(super) async fn signin_form(State(app): State<AppState>, RawQuery(query): RawQuery, jar: CookieJar) -> Response {
    if session::current(&app, &jar).await.is_some() {
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
    let (jar, csrf) = session::signin_csrf(app, jar);
    let page = pages::signin(base(app), &csrf, notice, error, name, kind, app.config.dialer.enabled);
    (jar, html(status, page)).into_response()
}

pub(super) async fn signin(
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
    if !session::signin_csrf_matches(&jar, &form) {
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
            if let Some(old) = session::current(&app, &jar).await
                && let Err(e) = app.tokens.revoke(&old.auth).await
            {
                tracing::warn!(error = %e, "could not end the replaced web session");
            }
            let jar = session::start_session(&app, jar, issued.token.expose());
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

pub(super) async fn signout(
    State(app): State<AppState>,
    jar: CookieJar,
    SignedForm { session: s, .. }: SignedForm<Session>,
) -> Response {
    match app.tokens.revoke(&s.auth).await {
        // why Unauthenticated too: signed out meanwhile (another tab): the same outcome.
        Ok(()) | Err(Error::Unauthenticated(_)) => {
            (session::end_session(&app, jar), see_other(&app, "/signin?signed_out=1")).into_response()
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

pub(super) async fn signout_everywhere(
    State(app): State<AppState>,
    jar: CookieJar,
    SignedForm { session: s, .. }: SignedForm<Session>,
) -> Response {
    // why SameDialect: the session's "dialect" is the web page's, so this ends every web
    // session of the principal and leaves its API tokens alone (they have their own list).
    match app.tokens.revoke_all(&s.auth, RevokeScope::SameDialect).await {
        Ok(_) => (session::end_session(&app, jar), see_other(&app, "/signin?signed_out=1")).into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}
