//! The administrators' pages: the user list, enabling and disabling a user, a user's tokens
//! and revoking one. Each action is recorded in the audit log before it is taken, in the
//! `audited_*` functions at the end (one place each for the record and the act).

use std::net::IpAddr;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use uuid::Uuid;

use super::session::{AdminSession, SignedForm};
use super::{Result, base, html, own, pages, param, see_other};
use crate::error::Error;
use crate::middleware::client_ip::ClientIp;
use crate::model::{Principal, PrincipalKind};
use crate::state::AppState;

pub(super) async fn users(State(app): State<AppState>, AdminSession(s): AdminSession) -> Result<Response> {
    let list = app.tokens.list_principals(PrincipalKind::User).await?;
    let viewer = pages::Viewer { principal: &s.principal, admin: true, csrf: &s.csrf };
    Ok(html(StatusCode::OK, pages::users(base(&app), &viewer, &list)))
}

async fn user_by_id(app: &AppState, id: &str) -> std::result::Result<Principal, Error> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound)?;
    let users = app.tokens.list_principals(PrincipalKind::User).await?;
    users.into_iter().find(|u| u.id == id).ok_or(Error::NotFound)
}

/// Enable or disable a user (administrators), and record it.
async fn set_enabled(
    app: &AppState,
    ip: IpAddr,
    id: std::result::Result<Path<String>, PathRejection>,
    admin: &Principal,
    enabled: bool,
) -> Result<Response> {
    let user = user_by_id(app, &param(id)?).await?;
    if user.id == admin.id && !enabled {
        return Err(Error::Invalid("You cannot disable yourself: ask another administrator.".into()).into());
    }
    if user.enabled != enabled {
        audited_set_enabled(app, admin, &user, enabled, ip).await?;
    }
    Ok(see_other(app, "/admin/users"))
}

pub(super) async fn enable_user(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    id: std::result::Result<Path<String>, PathRejection>,
    SignedForm { session: AdminSession(s), .. }: SignedForm<AdminSession>,
) -> Result<Response> {
    set_enabled(&app, ip, id, &s.principal, true).await
}

pub(super) async fn disable_user(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    id: std::result::Result<Path<String>, PathRejection>,
    SignedForm { session: AdminSession(s), .. }: SignedForm<AdminSession>,
) -> Result<Response> {
    set_enabled(&app, ip, id, &s.principal, false).await
}

pub(super) async fn user_tokens(
    State(app): State<AppState>,
    id: std::result::Result<Path<String>, PathRejection>,
    AdminSession(s): AdminSession,
) -> Result<Response> {
    let user = user_by_id(&app, &param(id)?).await?;
    let tokens = app.tokens.list(PrincipalKind::User, &user.name).await?;
    let viewer = pages::Viewer { principal: &s.principal, admin: true, csrf: &s.csrf };
    Ok(html(StatusCode::OK, pages::user_tokens(base(&app), &viewer, &user, &tokens, app.tokens.now())))
}

pub(super) async fn admin_revoke(
    State(app): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    ids: std::result::Result<Path<(String, String)>, PathRejection>,
    SignedForm { session: AdminSession(s), .. }: SignedForm<AdminSession>,
) -> Result<Response> {
    let (id, token) = param(ids)?;
    let user = user_by_id(&app, &id).await?;
    let tokens = app.tokens.list(PrincipalKind::User, &user.name).await?;
    let token_id = own(&tokens, &token)?;
    let dialect = tokens.iter().find(|t| t.id == token_id).map_or("", |t| t.issuer.as_str());
    audited_revoke(&app, &s.principal, &user, dialect, token_id, ip).await?;
    Ok(see_other(&app, &format!("/admin/users/{}/tokens", user.id)))
}

// ---------------------------------------------------------------------------------------------
// The administrators' actions: the record, then the act
// ---------------------------------------------------------------------------------------------

/// `admin` enables or disables `user`: recorded as `user.enable` / `user.disable`.
async fn audited_set_enabled(
    app: &AppState,
    admin: &Principal,
    user: &Principal,
    enabled: bool,
    ip: IpAddr,
) -> std::result::Result<(), Error> {
    // why the record first: an action that cannot be recorded is not taken.
    let action = if enabled { "user.enable" } else { "user.disable" };
    app.tokens.audit(admin, action, &user.name, ip).await?;
    // Disabling also ends the user's web sessions (see `set_principal_enabled`).
    app.tokens.set_principal_enabled(PrincipalKind::User, &user.name, enabled).await
}

/// `admin` revokes `user`'s token `token_id` of `dialect`: recorded as `token.revoke`.
async fn audited_revoke(
    app: &AppState,
    admin: &Principal,
    user: &Principal,
    dialect: &str,
    token_id: Uuid,
    ip: IpAddr,
) -> std::result::Result<(), Error> {
    // why the record first: an action that cannot be recorded is not taken.
    app.tokens.audit(admin, "token.revoke", &format!("{} {dialect} {token_id}", user.name), ip).await?;
    app.tokens.revoke_by_id(token_id).await
}
