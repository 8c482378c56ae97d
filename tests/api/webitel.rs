//! The webitel dialect over HTTP: every row of its section in dialects.md with exact status
//! and body, the JWT decoded and checked, and the signing keys (rotation, configured secret,
//! replicas sharing the generated key).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{Value, json};
use tokenauth::app;
use tokenauth::config::Secret;
use tokenauth::model::PrincipalKind;
use tokenauth::token::jwt::unverified_claims;
use tokenauth::token::{LoginOptions, MintOptions, NewProfile};

use crate::helpers::{Backend, LOCALHOST, T0, TestApp, TestResponse};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const USER: PrincipalKind = PrincipalKind::User;

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn root_acl() -> Value {
    json!({"cdr": ["*"], "cdr/files": ["*"], "account": ["r", "w"], "dialer/members": ["*"]})
}

/// A role `root` (code 2) and the seed's user `100@mydomain.com` / `secret` with it.
async fn seed_user(app: &TestApp) {
    let acl = tokenauth::token::parse_acl(&root_acl().to_string()).unwrap();
    app.tokens.create_role("root", 2, &acl).await.unwrap();
    let profile = NewProfile { role: Some("root".into()), ..NewProfile::default() };
    app.tokens.create_principal(USER, "100@mydomain.com", "secret".to_owned().into(), &profile).await.unwrap();
}

async fn login(app: &TestApp, username: &str, password: &str) -> TestResponse {
    app.post("/login").json(json!({"username": username, "password": password})).send().await
}

/// `(token, key)` of a successful login.
async fn session(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let resp = login(app, username, password).await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&resp.body));
    let body = resp.json();
    (body["token"].as_str().unwrap().to_owned(), body["key"].as_str().unwrap().to_owned())
}

async fn logout(app: &TestApp, token: &str, key: &str) -> TestResponse {
    app.post("/logout").header("x-access-token", token).header("x-key", key).send().await
}

#[track_caller]
fn assert_logged_out(resp: &TestResponse) {
    resp.assert_json(StatusCode::OK, json!({"status": "OK", "info": "Successful logout."}));
}

#[track_caller]
fn assert_refused(resp: &TestResponse) {
    resp.assert_json(StatusCode::UNAUTHORIZED, json!({"status": "error", "info": "Invalid credentials"}));
}

#[track_caller]
fn assert_error(resp: &TestResponse, status: StatusCode, info: &str) {
    resp.assert_json(status, json!({"status": "error", "info": info}));
}

fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

backend_tests!(
    login_with_domain_and_role,
    login_without_domain_or_role,
    cdr_and_lifetime_come_from_config,
    login_errors,
    unknown_users_can_be_hidden,
    logout_with_headers_query_or_body,
    logout_refusals,
    an_upper_case_key_names_the_same_token,
    expired_and_disabled_tokens,
    tokens_stay_in_their_dialect,
    static_tokens_have_no_expiry,
    errors_outside_handlers_keep_the_shape,
    keys_rotate_and_old_tokens_still_verify,
    replicas_share_the_generated_key,
    a_configured_secret_signs,
);

async fn login_with_domain_and_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let resp = login(&app, "100@mydomain.com", "secret").await;
    let body = resp.json();
    let key = body["key"].as_str().unwrap().to_owned();
    let token = body["token"].as_str().unwrap().to_owned();
    let expires = ms(T0 + DAY);
    resp.assert_json(
        StatusCode::OK,
        json!({
            "key": key,
            "username": "100@mydomain.com",
            "domain": "mydomain.com",
            "expires": expires,
            "token": token,
            "role": 2,
            "roleName": "root",
            "acl": root_acl(),
        }),
    );
    // key is the token's row id, a UUID v4.
    assert_eq!(uuid::Uuid::parse_str(&key).unwrap().get_version_num(), 4);
    let rows = app.tokens.list(USER, "100@mydomain.com").await.unwrap();
    assert_eq!(rows[0].id.to_string(), key);
    assert_eq!(rows[0].issuer.as_str(), "webitel");

    // The JWT: HS256 with a kid; exp in MILLISECONDS equal to `expires`, jti = key, the ACL.
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].is_string(), "{header}");
    let claims = unverified_claims(&token).unwrap();
    assert_eq!(Value::Object(claims.clone()), json!({"exp": expires, "jti": key, "acl": root_acl()}));
    assert!(claims["exp"].as_i64().unwrap() > 1_000_000_000_000, "milliseconds, not seconds");
}

async fn login_without_domain_or_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("plain", "pw").await;
    let resp = login(&app, "plain", "pw").await;
    let body = resp.json();
    resp.assert_json(
        StatusCode::OK,
        json!({
            "key": body["key"],
            "username": "plain",
            "expires": ms(T0 + DAY),
            "token": body["token"],
            "acl": {},
        }),
    );
    let claims = unverified_claims(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["acl"], json!({}));
    // A name with an @ but nothing on one side has no domain.
    app.add_user("@odd", "pw").await;
    assert!(login(&app, "@odd", "pw").await.json().get("domain").is_none());
}

async fn cdr_and_lifetime_come_from_config(backend: Backend) {
    let cdr = json!({"host": "http://cdr:10023", "useProxy": "true"});
    let app = TestApp::with_config(backend, |c| {
        c.webitel.cdr = cdr.as_object().cloned();
        c.webitel.token_ttl = HOUR * 2;
    })
    .await;
    seed_user(&app).await;
    let body = login(&app, "100@mydomain.com", "secret").await.json();
    assert_eq!(body["cdr"], cdr);
    assert_eq!(body["expires"], json!(ms(T0 + HOUR * 2)));
    assert_eq!(unverified_claims(body["token"].as_str().unwrap()).unwrap()["exp"], json!(ms(T0 + HOUR * 2)));
}

async fn login_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    app.add_user("carol", "pw").await;
    app.tokens.set_principal_enabled(USER, "carol", false).await.unwrap();
    for body in
        [json!({"password": "secret"}), json!({"username": "", "password": "x"}), json!({"username": null}), json!({})]
    {
        let resp = app.post("/login").json(body.clone()).send().await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "User name is required");
    }
    assert_error(&app.post("/login").send().await, StatusCode::BAD_REQUEST, "User name is required");
    assert_error(&login(&app, "100@mydomain.com", "wrong").await, StatusCode::UNAUTHORIZED, "Invalid credentials");
    let resp = app.post("/login").json(json!({"username": "100@mydomain.com"})).send().await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "Invalid credentials");
    assert_error(&login(&app, "carol", "pw").await, StatusCode::UNAUTHORIZED, "Invalid credentials");
    assert_error(&login(&app, "nobody@mydomain.com", "secret").await, StatusCode::NOT_FOUND, "User not found");
    // Matching is exact: another case is another (unknown) user.
    assert_error(&login(&app, "100@MYDOMAIN.COM", "secret").await, StatusCode::NOT_FOUND, "User not found");

    let resp = app.post("/login").body("{\"username\":", "application/json").send().await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.json()["status"], "error");
    assert!(resp.json()["info"].as_str().unwrap().starts_with("Invalid JSON: "), "{:?}", resp.json());
    let resp = app.post("/login").json(json!(["100@mydomain.com", "secret"])).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "Request body must be a JSON object");
    let resp = app.post("/login").body("username=100@mydomain.com", "application/x-www-form-urlencoded").send().await;
    assert_error(
        &resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported media type \"application/x-www-form-urlencoded\": send application/json",
    );
    assert!(app.tokens.list(USER, "100@mydomain.com").await.unwrap().is_empty(), "nothing issued");
}

async fn unknown_users_can_be_hidden(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.webitel.hide_unknown_users = true).await;
    seed_user(&app).await;
    let before = app.tokens.password_verifications();
    assert_error(&login(&app, "nobody", "secret").await, StatusCode::UNAUTHORIZED, "Invalid credentials");
    assert_error(&login(&app, "100@mydomain.com", "wrong").await, StatusCode::UNAUTHORIZED, "Invalid credentials");
    assert_eq!(app.tokens.password_verifications(), before + 2, "both cost one verification");
}

async fn logout_with_headers_query_or_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    assert_logged_out(&logout(&app, &token, &key).await);
    assert_refused(&logout(&app, &token, &key).await);

    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app.post(&format!("/logout?access_token={token}&x_key={key}")).send().await;
    assert_logged_out(&resp);

    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app.post("/logout").json(json!({"access_token": token, "x_key": key})).send().await;
    assert_logged_out(&resp);

    // Mixed: the token in a header, its key in the query string.
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app.post(&format!("/logout?x_key={key}")).header("x-access-token", &token).send().await;
    assert_logged_out(&resp);

    // An empty header does not hide the query string; a body that is not JSON does not hide
    // the headers (jQuery posts a form Content-Type by default), nor does malformed JSON.
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app
        .post(&format!("/logout?access_token={token}&x_key={key}"))
        .header("x-access-token", "")
        .header("x-key", "")
        .send()
        .await;
    assert_logged_out(&resp);
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app
        .post("/logout")
        .header("x-access-token", &token)
        .header("x-key", &key)
        .body("a=b", "application/x-www-form-urlencoded")
        .send()
        .await;
    assert_logged_out(&resp);
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let resp = app
        .post("/logout")
        .header("x-access-token", &token)
        .header("x-key", &key)
        .body("{not json", "application/json")
        .send()
        .await;
    assert_logged_out(&resp);
    // Without credentials anywhere, an odd body is still just a refusal.
    assert_refused(&app.post("/logout").body("{not json", "application/json").send().await);

    let states: Vec<_> =
        app.tokens.list(USER, "100@mydomain.com").await.unwrap().into_iter().map(|t| t.revoked_at).collect();
    assert_eq!(states.len(), 7);
    assert!(states.iter().all(Option::is_some), "all seven revoked");
}

/// A key is a UUID, compared as one: `X-Key` in upper case names the same token, here and at
/// `/verify` (tests/api/verify.rs), by the one rule in the token service.
async fn an_upper_case_key_names_the_same_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    assert_eq!(key, key.to_lowercase(), "keys are issued in lower case");
    let resp = app.get("/verify").header("x-access-token", &token).header("x-key", key.to_uppercase()).send().await;
    assert_eq!(resp.status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp.body));
    assert_logged_out(&logout(&app, &token, &key.to_uppercase()).await);
    assert_refused(&logout(&app, &token, &key).await);
}

async fn logout_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    let (other_token, other_key) = session(&app, "100@mydomain.com", "secret").await;

    assert_refused(&app.post("/logout").send().await);
    assert_refused(&app.post("/logout").header("x-access-token", &token).send().await);
    assert_refused(&app.post("/logout").header("x-key", &key).send().await);
    assert_refused(&logout(&app, &token, "not-a-uuid").await);
    assert_refused(&logout(&app, &token, &uuid::Uuid::new_v4().to_string()).await);
    // A live token with the key of another live token: refused, and neither is revoked.
    assert_refused(&logout(&app, &token, &other_key).await);
    assert_refused(&logout(&app, &other_token, &key).await);
    // Tampered: one character of the payload changed, so the signature no longer matches.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let last = parts[1].pop().unwrap();
    parts[1].push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(&logout(&app, &parts.join("."), &key).await);
    // Well formed, signed with a key we do not know.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header { kid: Some("initial".into()), ..Default::default() },
        &json!({"jti": key, "exp": 4_102_444_800_000_i64, "acl": {"*": ["*"]}}),
        &jsonwebtoken::EncodingKey::from_secret(b"an attacker's secret, 32 bytes long!!"),
    )
    .unwrap();
    assert_refused(&logout(&app, &forged, &key).await);
    assert_refused(&logout(&app, "garbage", &key).await);
    // Both still work: nothing above revoked anything.
    assert_logged_out(&logout(&app, &token, &key).await);
    assert_logged_out(&logout(&app, &other_token, &other_key).await);
    // Revoked, even though its signature is still good.
    assert_refused(&logout(&app, &token, &key).await);
}

async fn expired_and_disabled_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (expiring, expiring_key) = session(&app, "100@mydomain.com", "secret").await;
    app.advance(HOUR);
    let (token, key) = session(&app, "100@mydomain.com", "secret").await;
    app.tokens.set_principal_enabled(USER, "100@mydomain.com", false).await.unwrap();
    assert_refused(&logout(&app, &token, &key).await);
    app.tokens.set_principal_enabled(USER, "100@mydomain.com", true).await.unwrap();
    app.advance(DAY - HOUR);
    assert_refused(&logout(&app, &expiring, &expiring_key).await);
    assert_logged_out(&logout(&app, &token, &key).await);
}

async fn tokens_stay_in_their_dialect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (webitel, key) = session(&app, "100@mydomain.com", "secret").await;
    // Other dialects' tokens are refused by webitel...
    let knox =
        app.post("/auth/login/").json(json!({"username": "100@mydomain.com", "password": "secret"})).send().await;
    let knox = knox.json()["token"].as_str().unwrap().to_owned();
    assert_refused(&logout(&app, &knox, &key).await);
    let ut = app.post("/auth/login").basic("100@mydomain.com", "secret").send().await;
    let ut = ut.json()["token"].as_str().unwrap().to_owned();
    assert_refused(&logout(&app, &ut, &key).await);
    // ...and webitel's JWT by them.
    let resp = app.post("/auth/logout/").token(&webitel).send().await;
    resp.assert_json(StatusCode::UNAUTHORIZED, json!({"detail": "Invalid token."}));
    assert_eq!(app.post("/auth/bump").bearer(&webitel).send().await.status, StatusCode::UNAUTHORIZED);
    assert_logged_out(&logout(&app, &webitel, &key).await);
}

async fn static_tokens_have_no_expiry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let policy = tokenauth::dialect::webitel::policy(&app.config.webitel);
    let minted = app
        .tokens
        .mint(&policy, USER, "100@mydomain.com", MintOptions { static_token: true, ..Default::default() })
        .await
        .unwrap();
    let token = minted.token.expose().to_owned();
    let claims = unverified_claims(&token).unwrap();
    assert!(claims.get("exp").is_none(), "{claims:?}");
    assert_eq!(claims["jti"], json!(minted.record.id.to_string()));
    assert_eq!(claims["acl"], root_acl());
    app.advance(DAY * 400);
    assert_logged_out(&logout(&app, &token, &minted.record.id.to_string()).await);
}

async fn errors_outside_handlers_keep_the_shape(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.webitel.prefix = "/api".into()).await;
    seed_user(&app).await;
    let resp = app.post("/api/login").json(json!({"username": "100@mydomain.com", "password": "secret"})).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(app.post("/login").json(json!({"username": "x"})).send().await.status, StatusCode::NOT_FOUND);
    assert_error(&app.get("/api/nope").send().await, StatusCode::NOT_FOUND, "Not found");
    let resp = app.get("/api/login").send().await;
    assert_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "Method GET not allowed");
    assert_eq!(resp.header("allow"), Some("POST"));
    let big = format!("{{\"username\": \"{}\"}}", "x".repeat(70 * 1024));
    let resp = app.post("/api/login").body(big, "application/json").send().await;
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large");
}

async fn keys_rotate_and_old_tokens_still_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    let (before, before_key) = session(&app, "100@mydomain.com", "secret").await;
    let old_kid = jwt_header(&before)["kid"].as_str().unwrap().to_owned();
    let new_kid = app.tokens.rotate_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let (after, after_key) = session(&app, "100@mydomain.com", "secret").await;
    assert_eq!(jwt_header(&after)["kid"], json!(new_kid));
    assert_logged_out(&logout(&app, &before, &before_key).await);
    assert_logged_out(&logout(&app, &after, &after_key).await);
    let (stored, signing) = app.tokens.signing_keys().await.unwrap();
    assert_eq!(stored.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), vec![old_kid, new_kid.clone()]);
    assert_eq!(signing, new_kid);

    // A rotation from a process whose clock is an hour behind still takes over the signing.
    let behind = Arc::new(tokenauth::token::clock::FixedClock::new(T0 - HOUR));
    let lagging = app::token_service(&app.config, Arc::clone(&app.store), behind).await.unwrap();
    let third = lagging.rotate_key().await.unwrap();
    app.tokens.reload_keys().await.unwrap();
    let (_, signing) = app.tokens.signing_keys().await.unwrap();
    assert_eq!(signing, third, "the newest key signs, whatever the rotating clock said");
    let (latest, _) = session(&app, "100@mydomain.com", "secret").await;
    assert_eq!(jwt_header(&latest)["kid"], json!(third));
}

async fn replicas_share_the_generated_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_user(&app).await;
    // A second service over the same database: another replica.
    let replica = app::token_service(&app.config, Arc::clone(&app.store), app.clock.clone()).await.unwrap();
    let policy = tokenauth::dialect::webitel::policy(&app.config.webitel);
    async fn login_on(tokens: &tokenauth::token::TokenService, policy: &tokenauth::token::TokenPolicy) -> String {
        let issued = tokens
            .login(policy, USER, "100@mydomain.com", "secret".to_owned().into(), LOCALHOST, LoginOptions::default())
            .await
            .unwrap();
        issued.token.expose().to_owned()
    }
    let from_replica = login_on(&replica, &policy).await;
    app.tokens.authenticate(&policy, &from_replica).await.unwrap();
    let from_app = login_on(&app.tokens, &policy).await;
    replica.authenticate(&policy, &from_app).await.unwrap();
    // A key rotated in by one replica is picked up by the other on first sight of its kid.
    replica.rotate_key().await.unwrap();
    let rotated = login_on(&replica, &policy).await;
    app.tokens.authenticate(&policy, &rotated).await.unwrap();
}

async fn a_configured_secret_signs(backend: Backend) {
    let plain = TestApp::spawn(backend.clone()).await;
    seed_user(&plain).await;
    let (generated, generated_key) = session(&plain, "100@mydomain.com", "secret").await;

    // Same database, now with a configured secret: it signs; the stored key still verifies.
    let mut config = plain.config.clone();
    config.jwt_secret = Some(Secret::new("a-configured-secret-that-is-long-enough-123"));
    let tokens = app::token_service(&config, Arc::clone(&plain.store), plain.clock.clone()).await.unwrap();
    let policy = tokenauth::dialect::webitel::policy(&config.webitel);
    let issued = tokens
        .login(&policy, USER, "100@mydomain.com", "secret".to_owned().into(), LOCALHOST, LoginOptions::default())
        .await
        .unwrap();
    let kid = jwt_header(issued.token.expose())["kid"].as_str().unwrap().to_owned();
    assert!(kid.starts_with("cfg-"), "{kid}");
    tokens.authenticate(&policy, &generated).await.unwrap();
    // The plain service (no secret) does not know the configured key: refused, not a 500.
    let err = plain.tokens.authenticate(&policy, issued.token.expose()).await.unwrap_err();
    assert!(matches!(err, tokenauth::error::Error::Unauthenticated(_)), "{err:?}");
    assert_logged_out(&logout(&plain, &generated, &generated_key).await);
}
