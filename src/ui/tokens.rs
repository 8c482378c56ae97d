//! A visitor's own tokens: the home page's list, creating a token (shown once), revoking one.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::{Session, SignedForm};
use super::{Result, base, html, own, pages, param, see_other};
use crate::error::Error;
use crate::model::{DialectId, PrincipalKind};
use crate::state::AppState;
use crate::token::MintOptions;
use crate::token::admin::is_administrator;

/// why 36,500 days: a hundred years is "no expiry" in practice; an empty field is the real one.
const MAX_EXPIRY_DAYS: u64 = 36_500;

/// The dialects a principal can have static tokens for: the enabled ones, and only the
/// dialer's for resellers (they log in nowhere else).
fn dialects_for(app: &AppState, kind: PrincipalKind) -> Vec<DialectId> {
    DialectId::ALL
        .into_iter()
        .filter(|d| app.config.dialect_enabled(*d) && (kind == PrincipalKind::User || *d == DialectId::Dialer))
        .collect()
}

pub(super) async fn home(State(app): State<AppState>, s: Session) -> Result<Response> {
    tokens_page(&app, &s, StatusCode::OK, None, None).await
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
        &pages::Viewer { principal: &s.principal, admin: is_administrator(&s.principal), csrf: &s.csrf },
        &tokens,
        now,
        &dialects_for(app, s.principal.kind),
        created.as_ref().map(|c| (c.dialect, c.token, c.key.as_deref())),
        error,
    );
    Ok(html(status, page))
}

pub(super) async fn create_token(
    State(app): State<AppState>,
    SignedForm { form, session: s }: SignedForm<Session>,
) -> Result<Response> {
    let allowed = dialects_for(&app, s.principal.kind);
    let Some(dialect) = form.get("dialect").parse().ok().filter(|d| allowed.contains(d)) else {
        return tokens_page(&app, &s, StatusCode::BAD_REQUEST, None, Some("Choose one of the listed dialects.")).await;
    };
    let ttl = match form.get("expires_days").trim() {
        "" => None,
        days => match days.parse::<u64>() {
            Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(std::time::Duration::from_secs(d * 86_400)),
            _ => {
                let msg = format!("The expiry must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or empty.");
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

pub(super) async fn revoke_own(
    State(app): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    SignedForm { session: s, .. }: SignedForm<Session>,
) -> Result<Response> {
    let id = param(id)?;
    let tokens = app.tokens.list(s.principal.kind, &s.principal.name).await?;
    app.tokens.revoke_by_id(own(&tokens, &id)?).await?;
    Ok(see_other(&app, "/"))
}
