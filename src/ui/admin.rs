//! The administrators' pages: the user list, enabling and disabling a user, a user's tokens
//! and revoking one. What an administrator may do, and the audit record written before each
//! action, are the service's (`token::admin`); these handlers only translate.

use std::net::IpAddr;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::{AdminSession, SignedForm};
use super::{Result, base, html, own, pages, param, see_other};
use crate::error::Error;
use crate::middleware::client_ip::ClientIp;
use crate::model::{Principal, PrincipalKind};
use crate::state::AppState;
use crate::token::admin::Actor;

pub(super) async fn users(State(app): State<AppState>, AdminSession(s): AdminSession) -> Result<Response> {
    let list = app.tokens.list_principals(PrincipalKind::User).await?;
    let viewer = pages::Viewer { principal: &s.principal, admin: true, csrf: &s.csrf };
    Ok(html(StatusCode::OK, pages::users(base(&app), &viewer, &list)))
}

async fn user_by_id(app: &AppState, id: &str) -> std::result::Result<Principal, Error> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound)?;
    app.tokens.user_by_id(id).await?.ok_or(Error::NotFound)
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
    app.tokens.set_enabled_as(Actor::Administrator { principal: admin, client_ip: ip }, &user, enabled).await?;
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
    app.tokens.revoke_token_as(Actor::Administrator { principal: &s.principal, client_ip: ip }, token_id).await?;
    Ok(see_other(&app, &format!("/admin/users/{}/tokens", user.id)))
}
