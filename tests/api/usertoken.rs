//! The usertoken dialect over HTTP: every success and error row of its section in
//! dialects.md, with exact status, headers and JSON body.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenauth::model::PrincipalKind;

use crate::helpers::{Backend, T0, TestApp, TestResponse, rfc3339};

const HOUR: Duration = Duration::from_secs(3600);

fn auth_error() -> Value {
    json!({"name": "AuthError", "title": "Authentication error", "description": "Authorization failed"})
}

#[track_caller]
fn assert_login_refused(resp: &TestResponse) {
    resp.assert_json(StatusCode::UNAUTHORIZED, auth_error());
    assert_eq!(resp.header("www-authenticate"), Some("Basic realm=\"tokenauth\""));
    assert_eq!(resp.header("vary"), Some("Accept"));
}

/// dialects.md: a refused token gets "the 401 above", Basic challenge included.
#[track_caller]
fn assert_token_refused(resp: &TestResponse) {
    assert_login_refused(resp);
}

#[track_caller]
fn assert_invalid(resp: &TestResponse, description: &str) {
    resp.assert_json(
        StatusCode::BAD_REQUEST,
        json!({"name": "ValidationError", "title": "Invalid request", "description": description}),
    );
}

async fn login(app: &TestApp) -> String {
    let resp = app.post("/auth/login").basic("alice", "pw").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    resp.json()["token"].as_str().unwrap().to_owned()
}

backend_tests!(
    login_returns_a_user_token,
    login_with_note_and_expiration,
    login_uses_the_default_lifetime,
    login_refusals_are_one_message,
    login_body_errors,
    bump_sets_last_login_and_last_use,
    logout_revokes_only_the_presented_token,
    refused_tokens,
    errors_outside_handlers_keep_the_shape,
);

async fn login_returns_a_user_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let resp = app.post("/auth/login").basic("alice", "pw").header("accept", "application/json").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("vary"), Some("Accept"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(body, json!({"token": token, "enabled": true, "version": 0, "creationTime": rfc3339(T0)}));
    let parsed = uuid::Uuid::parse_str(token).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(token, parsed.hyphenated().to_string(), "lowercase hyphenated");
    let rows = app.tokens.list(PrincipalKind::User, "alice").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id, parsed, "the token is not the row id");
    assert_eq!(rows[0].issuer.as_str(), "usertoken");
    // The login counts as a login.
    assert_eq!(app.tokens.principal(PrincipalKind::User, "alice").await.unwrap().last_login_at, Some(T0));
    // A second login is a second token.
    assert_ne!(login(&app).await, token);
}

async fn login_with_note_and_expiration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let resp = app
        .post("/auth/login")
        .basic("alice", "pw")
        .json(json!({"note": "Client API Access", "expirationTime": "2030-07-29T23:59:59-05:00"}))
        .send()
        .await;
    let body = resp.json();
    resp.assert_json(
        StatusCode::OK,
        json!({
            "token": body["token"],
            "enabled": true,
            "version": 0,
            "creationTime": rfc3339(T0),
            "note": "Client API Access",
            "expirationTime": "2030-07-30T04:59:59Z",
        }),
    );
    // Explicit nulls mean "not given"; an empty JSON body is fine too.
    let resp =
        app.post("/auth/login").basic("alice", "pw").json(json!({"note": null, "expirationTime": null})).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.json().get("note").is_none() && resp.json().get("expirationTime").is_none());
    let resp = app.post("/auth/login").basic("alice", "pw").body("", "application/json").send().await;
    assert_eq!(resp.status, StatusCode::OK);
}

async fn login_uses_the_default_lifetime(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.token_ttl = Some(HOUR * 24)).await;
    app.add_user("alice", "pw").await;
    let resp = app.post("/auth/login").basic("alice", "pw").send().await;
    assert_eq!(resp.json()["expirationTime"], json!(rfc3339(T0 + HOUR * 24)));
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    app.advance(HOUR * 24);
    assert_token_refused(&app.post("/auth/bump").bearer(&token).send().await);
}

async fn login_refusals_are_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    app.add_user("carol", "pw").await;
    app.tokens.set_principal_enabled(PrincipalKind::User, "carol", false).await.unwrap();
    assert_login_refused(&app.post("/auth/login").send().await);
    assert_login_refused(&app.post("/auth/login").header("authorization", "Bearer x").send().await);
    assert_login_refused(&app.post("/auth/login").header("authorization", "Basic").send().await);
    assert_login_refused(&app.post("/auth/login").header("authorization", "Basic !!notbase64").send().await);
    assert_login_refused(&app.post("/auth/login").header("authorization", "Basic bm9jb2xvbg==").send().await);
    assert_login_refused(&app.post("/auth/login").basic("bob", "pw").send().await);
    assert_login_refused(&app.post("/auth/login").basic("alice", "wrong").send().await);
    assert_login_refused(&app.post("/auth/login").basic("alice", "").send().await);
    assert_login_refused(&app.post("/auth/login").basic("", "pw").send().await);
    assert_login_refused(&app.post("/auth/login").basic("carol", "pw").send().await);
    // The scheme is case-insensitive.
    let ok = app.post("/auth/login").header("authorization", "basic YWxpY2U6cHc=").send().await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(app.tokens.list(PrincipalKind::User, "carol").await.unwrap().len(), 0);
}

async fn login_body_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let post = |body: Value| app.post("/auth/login").basic("alice", "pw").json(body).send();
    assert_invalid(&post(json!({"expirationTime": "2029-12-31T23:59:59Z"})).await, "expiration time is in the past");
    assert_invalid(&post(json!({"expirationTime": rfc3339(T0)})).await, "expiration time is in the past");
    assert_invalid(
        &post(json!({"expirationTime": "tomorrow"})).await,
        "expirationTime \"tomorrow\" is not an RFC 3339 date-time",
    );
    assert_invalid(&post(json!({"expirationTime": 1893456000})).await, "expirationTime must be a string");
    assert_invalid(&post(json!({"note": "x".repeat(129)})).await, "note is longer than 128 characters");
    assert_invalid(&post(json!({"note": ["a"]})).await, "note must be a string");
    assert_invalid(&post(json!({"note": "a\u{0}b"})).await, "note contains a control character");
    assert_invalid(&post(json!({"note": "line\nbreak"})).await, "note contains a control character");
    // Past the calendar once in UTC: a 400, not a panic.
    for edge in ["9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59-23:59"] {
        assert_invalid(&post(json!({"expirationTime": edge})).await, "expiration time is outside the years 1 to 9999");
    }
    assert_invalid(&post(json!(["note"])).await, "Request body must be a JSON object");
    let resp = app.post("/auth/login").basic("alice", "pw").body("{\"note\":", "application/json").send().await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.json()["name"], "ValidationError");
    assert!(resp.json()["description"].as_str().unwrap().starts_with("Request body is not valid JSON: "));
    let resp = app.post("/auth/login").basic("alice", "pw").body("note=x", "text/plain").send().await;
    resp.assert_json(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        json!({"name": "ValidationError", "title": "Invalid request",
               "description": "Unsupported media type \"text/plain\": send application/json"}),
    );
    // Nothing was issued by any of the refused requests.
    assert!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().is_empty());
    // A note of exactly 128 characters is fine.
    assert_eq!(post(json!({"note": "n".repeat(128)})).await.status, StatusCode::OK);
}

async fn bump_sets_last_login_and_last_use(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.token_ttl = Some(HOUR)).await;
    app.add_user("alice", "pw").await;
    let token = login(&app).await;
    app.advance(Duration::from_secs(125));
    let resp = app.post("/auth/bump").bearer(&token).header("accept", "application/json").send().await;
    let now = T0 + Duration::from_secs(125);
    resp.assert_json(StatusCode::OK, json!({"lastLoginTime": rfc3339(now)}));
    assert_eq!(resp.header("vary"), Some("Accept"));
    let user = app.tokens.principal(PrincipalKind::User, "alice").await.unwrap();
    assert_eq!(user.last_login_at, Some(now));
    let row = &app.tokens.list(PrincipalKind::User, "alice").await.unwrap()[0];
    assert_eq!(row.last_used_at, Some(now), "written before the answer, not deferred");
    assert_eq!(row.expires_at, Some(T0 + HOUR), "bump does not extend expiry");
}

async fn logout_revokes_only_the_presented_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let first = login(&app).await;
    let second = login(&app).await;
    let resp = app.post("/auth/logout").bearer(&first).send().await;
    resp.assert_json(StatusCode::OK, json!({"success": true}));
    assert_eq!(resp.header("vary"), Some("Accept"));
    assert_token_refused(&app.post("/auth/bump").bearer(&first).send().await);
    assert_token_refused(&app.post("/auth/logout").bearer(&first).send().await);
    assert_eq!(app.post("/auth/bump").bearer(&second).send().await.status, StatusCode::OK);
}

async fn refused_tokens(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.token_ttl = Some(HOUR)).await;
    app.add_user("alice", "pw").await;
    app.add_user("bob", "pw").await;
    for path in ["/auth/bump", "/auth/logout"] {
        assert_token_refused(&app.post(path).send().await);
        assert_token_refused(&app.post(path).header("authorization", "Bearer").send().await);
        assert_token_refused(&app.post(path).header("authorization", "Bearer a b").send().await);
        assert_token_refused(&app.post(path).bearer("not-a-token").send().await);
        assert_token_refused(&app.post(path).bearer(&uuid::Uuid::new_v4().to_string()).send().await);
        assert_token_refused(&app.post(path).basic("alice", "pw").send().await);
    }
    // Expired.
    let expiring = login(&app).await;
    // Disabled token (created a second later, so it is first in the newest-first list).
    app.advance(Duration::from_secs(1));
    let disabled = login(&app).await;
    let id = app.tokens.list(PrincipalKind::User, "alice").await.unwrap()[0].id;
    app.tokens.set_token_enabled(id, false).await.unwrap();
    assert_token_refused(&app.post("/auth/bump").bearer(&disabled).send().await);
    // Disabled user, then enabled again.
    let resp = app.post("/auth/login").basic("bob", "pw").send().await;
    let bobs = resp.json()["token"].as_str().unwrap().to_owned();
    app.tokens.set_principal_enabled(PrincipalKind::User, "bob", false).await.unwrap();
    assert_token_refused(&app.post("/auth/bump").bearer(&bobs).send().await);
    app.tokens.set_principal_enabled(PrincipalKind::User, "bob", true).await.unwrap();
    assert_eq!(app.post("/auth/bump").bearer(&bobs).send().await.status, StatusCode::OK);
    // A knox token.
    let knox = app.post("/auth/login/").json(json!({"username": "bob", "password": "pw"})).send().await;
    let knox = knox.json()["token"].as_str().unwrap().to_owned();
    assert_token_refused(&app.post("/auth/bump").bearer(&knox).send().await);
    // A static usertoken minted for the user works; a static knox one does not.
    let policy = tokenauth::dialect::usertoken::policy(&app.config.usertoken);
    let minted = app
        .tokens
        .mint(
            &policy,
            PrincipalKind::User,
            "bob",
            tokenauth::token::MintOptions { static_token: true, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(app.post("/auth/bump").bearer(minted.token.expose()).send().await.status, StatusCode::OK);

    app.advance(HOUR);
    assert_token_refused(&app.post("/auth/bump").bearer(&expiring).send().await);
    assert_eq!(app.post("/auth/bump").bearer(minted.token.expose()).send().await.status, StatusCode::OK, "no expiry");
}

async fn errors_outside_handlers_keep_the_shape(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.prefix = "/api".into()).await;
    app.add_user("alice", "pw").await;
    let resp = app.get("/api/auth/login").send().await;
    resp.assert_json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"name": "MethodNotAllowedError", "title": "Method not allowed", "description": "Method GET is not allowed here"}),
    );
    assert_eq!(resp.header("allow"), Some("POST"));
    assert_eq!(resp.header("vary"), Some("Accept"));
    let resp = app.post("/api/nope").send().await;
    resp.assert_json(
        StatusCode::NOT_FOUND,
        json!({"name": "NotFoundError", "title": "Not found", "description": "No such endpoint"}),
    );
    let big = format!("{{\"note\": \"{}\"}}", "x".repeat(70 * 1024));
    let resp = app.post("/api/auth/login").basic("alice", "pw").body(big, "application/json").send().await;
    resp.assert_json(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"name": "ValidationError", "title": "Invalid request", "description": "Request body is too large"}),
    );
    assert_eq!(app.post("/api/auth/login").basic("alice", "pw").send().await.status, StatusCode::OK);
    assert_eq!(app.post("/auth/login").basic("alice", "pw").send().await.status, StatusCode::NOT_FOUND);
}
