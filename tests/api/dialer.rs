//! The dialer dialect over in-process HTTP, on both backends: every row of its section of
//! dialects.md, the JWT claims decoded, IP rules with the client IP from the peer and from a
//! trusted proxy, cross-kind tokens, static tokens, expiry with the fixed clock, the prefix.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenauth::model::PrincipalKind;
use tokenauth::model::{Attributes, Principal};
use tokenauth::token::jwt::unverified_claims;
use tokenauth::token::{MintOptions, NewProfile, parse_allowed_ip, parse_balance};

use crate::helpers::{Backend, T0, TestApp, TestResponse};

const USER: PrincipalKind = PrincipalKind::User;
const RESELLER: PrincipalKind = PrincipalKind::Reseller;
const DAY: Duration = Duration::from_secs(24 * 3600);

backend_tests!(
    user_login_answers_the_seed_shape_and_claims,
    plain_user_claims_are_null,
    reseller_login_answers_the_seed_shape_and_claims,
    a_reseller_login_whose_groups_cannot_be_read_issues_nothing,
    login_refusals,
    malformed_requests,
    user_ip_rule_from_peer_and_trusted_proxy,
    reseller_ip_rule_from_peer_and_trusted_proxy,
    logouts_by_header_and_by_query,
    tokens_of_the_other_kind_are_refused,
    tokens_of_other_dialects_are_refused,
    static_tokens_work_until_revoked,
    session_tokens_expire_after_a_day,
    disabled_principals_tokens_stop_working,
    the_prefix_serves_hello_hunter_paths,
    errors_outside_handlers_keep_the_shape,
    ip_rules_apply_to_every_dialect,
    bad_regexes_and_misfit_attributes_are_refused_when_stored,
);

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}

fn secs(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

async fn add_group(app: &TestApp, name: &str, regex: Option<&str>, reseller: Option<&str>) -> i64 {
    app.tokens.create_group(name, regex, reseller).await.unwrap().group.id
}

async fn add_user(app: &TestApp, name: &str, profile: NewProfile) -> Principal {
    app.tokens.create_principal(USER, name, "user-pw".to_owned().into(), &profile).await.unwrap()
}

async fn add_reseller(app: &TestApp, name: &str, ips: &[&str], balance: Option<&str>) -> Principal {
    let attributes = Attributes {
        allowed_ips: ips.iter().map(|ip| parse_allowed_ip(ip).unwrap()).collect(),
        balance: balance.map(|b| parse_balance(b).unwrap()),
        ..Attributes::default()
    };
    let profile = NewProfile { attributes, ..NewProfile::default() };
    app.tokens.create_principal(RESELLER, name, "reseller-pw".to_owned().into(), &profile).await.unwrap()
}

async fn user_login(app: &TestApp, login: &str, password: &str, from: &str) -> TestResponse {
    app.post("/session.json").peer(peer(from)).json(json!({"login": login, "password": password})).send().await
}

async fn reseller_login(app: &TestApp, name: &str, pass: &str, from: &str) -> TestResponse {
    app.post("/v1/resellers/login.json").peer(peer(from)).json(json!({"name": name, "pass": pass})).send().await
}

fn token_of(resp: &TestResponse) -> String {
    assert_eq!(resp.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&resp.body));
    resp.json()["token"].as_str().unwrap().to_owned()
}

async fn user_logout(app: &TestApp, token: &str) -> TestResponse {
    app.request(axum::http::Method::DELETE, "/session.json").bearer(token).send().await
}

async fn reseller_logout(app: &TestApp, token: &str) -> TestResponse {
    app.get("/v1/resellers/user/logout.json").bearer(token).send().await
}

fn assert_error(resp: &TestResponse, status: StatusCode, error: &str) {
    resp.assert_json(status, json!({ "error": error }));
}

#[track_caller]
fn assert_invalid_token(resp: &TestResponse) {
    assert_error(resp, StatusCode::UNAUTHORIZED, "Invalid or expired token");
    assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"tokenauth\", error=\"invalid_token\""));
}

#[track_caller]
fn assert_success(resp: &TestResponse) {
    resp.assert_json(StatusCode::OK, json!({ "success": true }));
}

fn claims(token: &str) -> Value {
    Value::Object(unverified_claims(token).unwrap())
}

fn jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

/// The token row id of a dialer JWT (its `jti`).
fn jti(token: &str) -> uuid::Uuid {
    claims(token)["jti"].as_str().unwrap().parse().unwrap()
}

async fn user_login_answers_the_seed_shape_and_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let group = add_group(&app, "callers", None, None).await;
    let attributes = Attributes { admin: true, sms_from: Some("+15550100".into()), ..Attributes::default() };
    let user = add_user(
        &app,
        "user@example.com",
        NewProfile { group: Some("callers".into()), attributes, ..Default::default() },
    )
    .await;

    let resp = user_login(&app, "user@example.com", "user-pw", "127.0.0.1").await;
    let token = token_of(&resp);
    resp.assert_json(StatusCode::OK, json!({"user": {"id": user.id, "blocked": false}, "token": token}));
    assert_eq!(jwt_header(&token)["alg"], "HS256");
    assert!(jwt_header(&token)["kid"].is_string());
    let rows = app.tokens.list(USER, "user@example.com").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].issuer.as_str(), "dialer");
    assert_eq!(
        claims(&token),
        json!({
            "type": "user",
            "admin": true,
            "id": user.id,
            "name": "user@example.com",
            "sms_from": "+15550100",
            "user_group_id": group,
            "exp": secs(T0 + DAY),
            "iat": secs(T0),
            "jti": rows[0].id.to_string(),
        })
    );
    // A standard JWT library verifies it with the stored key and reads its exp (in seconds).
    let keys = app.store.signing_keys().await.unwrap();
    let key = keys.iter().find(|k| jwt_header(&token)["kid"] == k.kid.as_str()).unwrap();
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let decoded =
        jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_secret(&key.secret), &validation);
    assert_eq!(decoded.unwrap().claims["exp"].as_i64(), Some(secs(T0 + DAY)));
    // The user's last login is now.
    let user = app.tokens.principal(USER, "user@example.com").await.unwrap();
    assert_eq!(user.last_login_at, Some(T0));
}

async fn plain_user_claims_are_null(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = add_user(&app, "plain@example.com", NewProfile::default()).await;
    let token = token_of(&user_login(&app, "plain@example.com", "user-pw", "127.0.0.1").await);
    let c = claims(&token);
    assert_eq!(c["type"], "user");
    assert_eq!(c["admin"], false);
    assert_eq!(c["id"], user.id);
    assert_eq!(c["sms_from"], Value::Null);
    assert_eq!(c["user_group_id"], Value::Null);
    assert!(c.as_object().unwrap().contains_key("sms_from") && c.as_object().unwrap().contains_key("user_group_id"));
}

/// The groups are read before the token is issued: when they cannot be read, the login fails
/// in the dialect's shape and no token row is left behind (nothing to revoke afterwards).
async fn a_reseller_login_whose_groups_cannot_be_read_issues_nothing(backend: Backend) {
    let (app, store) = crate::counting_store::CountingStore::app(backend, |_| {}).await;
    add_reseller(&app, "acme", &[], Some("10")).await;
    add_group(&app, "west", None, Some("acme")).await;
    store.fail_list_groups.store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = reseller_login(&app, "acme", "reseller-pw", "192.0.2.1").await;
    assert_error(&resp, StatusCode::SERVICE_UNAVAILABLE, "Service unavailable, try again later");
    assert!(app.tokens.list(RESELLER, "acme").await.unwrap().is_empty(), "no token was issued");
    store.fail_list_groups.store(false, std::sync::atomic::Ordering::SeqCst);
    let resp = reseller_login(&app, "acme", "reseller-pw", "192.0.2.1").await;
    assert_eq!(
        resp.json()["user_groups"],
        json!([{"id": app.tokens.group("west").await.unwrap().group.id, "name": "west"}])
    );
    assert_eq!(app.tokens.list(RESELLER, "acme").await.unwrap().len(), 1);
}

async fn reseller_login_answers_the_seed_shape_and_claims(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reseller = add_reseller(&app, "reseller_name", &[], Some("1000")).await;
    let other = add_reseller(&app, "other", &[], None).await;
    let west = add_group(&app, "west", None, Some("reseller_name")).await;
    let east = add_group(&app, "east", Some(r"^10\."), Some("reseller_name")).await;
    add_group(&app, "theirs", None, Some("other")).await;
    add_group(&app, "nobody's", None, None).await;

    let resp = reseller_login(&app, "reseller_name", "reseller-pw", "127.0.0.1").await;
    let token = token_of(&resp);
    resp.assert_json(
        StatusCode::OK,
        json!({
            "token": token,
            "reseller": {"id": reseller.id, "name": "reseller_name"},
            "user_groups": [{"id": east, "name": "east"}, {"id": west, "name": "west"}],
            "user_balance": 1000.0,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    // The decimal is written exactly, as the seed shows it, not through a float.
    let text = String::from_utf8(resp.body.clone()).unwrap();
    assert!(text.contains(r#""user_balance":1000.00"#), "{text}");
    let jti = app.tokens.list(RESELLER, "reseller_name").await.unwrap()[0].id.to_string();
    assert_eq!(
        claims(&token),
        json!({
            "type": "reseller",
            "id": reseller.id,
            "name": "reseller_name",
            "exp": secs(T0 + DAY),
            "iat": secs(T0),
            "jti": jti,
        })
    );

    // No groups, default balance; a fractional balance stays exact.
    let resp = reseller_login(&app, "other", "reseller-pw", "127.0.0.1").await;
    let text = String::from_utf8(resp.body.clone()).unwrap();
    assert_eq!(resp.json()["user_groups"], json!([{"id": resp.json()["user_groups"][0]["id"], "name": "theirs"}]));
    assert!(text.contains(r#""user_balance":0.00"#), "{text}");
    assert_eq!(resp.json()["reseller"]["id"], other.id);
    add_reseller(&app, "precise", &[], Some("-12.345")).await;
    let resp = reseller_login(&app, "precise", "reseller-pw", "127.0.0.1").await;
    let text = String::from_utf8(resp.body.clone()).unwrap();
    assert!(text.contains(r#""user_balance":-12.345"#), "{text}");
    assert!(text.contains(r#""user_groups":[]"#), "{text}");
}

async fn login_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "user@example.com", NewProfile::default()).await;
    add_reseller(&app, "acme", &[], None).await;
    let bad_user = |resp: TestResponse| assert_error(&resp, StatusCode::UNAUTHORIZED, "Invalid login credentials");
    let bad_reseller = |resp: TestResponse| assert_error(&resp, StatusCode::UNAUTHORIZED, "Invalid ID or Password");

    bad_user(user_login(&app, "user@example.com", "wrong", "127.0.0.1").await);
    bad_user(user_login(&app, "nobody@example.com", "user-pw", "127.0.0.1").await);
    // Names are exact: another case is another (unknown) user.
    bad_user(user_login(&app, "USER@example.com", "user-pw", "127.0.0.1").await);
    // A reseller is not a user, and a user is not a reseller: separate name spaces.
    bad_user(user_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    bad_reseller(reseller_login(&app, "user@example.com", "user-pw", "127.0.0.1").await);
    bad_reseller(reseller_login(&app, "acme", "wrong", "127.0.0.1").await);
    bad_reseller(reseller_login(&app, "ghost", "reseller-pw", "127.0.0.1").await);

    app.tokens.set_principal_enabled(USER, "user@example.com", false).await.unwrap();
    app.tokens.set_principal_enabled(RESELLER, "acme", false).await.unwrap();
    bad_user(user_login(&app, "user@example.com", "user-pw", "127.0.0.1").await);
    bad_reseller(reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    // Nothing was issued by any refusal.
    assert!(app.tokens.list(USER, "user@example.com").await.unwrap().is_empty());
    assert!(app.tokens.list(RESELLER, "acme").await.unwrap().is_empty());
    // Every refusal cost one password verification, unknown names included.
    assert_eq!(app.tokens.password_verifications(), 9);
}

async fn malformed_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let missing = |field: &str| format!("param is missing or the value is empty: {field}");
    let resp = app.post("/session.json").json(json!({"password": "x"})).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, &missing("login"));
    let resp = app.post("/session.json").json(json!({"login": "", "password": "x"})).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, &missing("login"));
    let resp = app.post("/session.json").json(json!({"login": "a", "password": null})).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, &missing("password"));
    let resp = app.post("/session.json").send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, &format!("{}; {}", missing("login"), missing("password")));
    let resp = app.post("/v1/resellers/login.json").json(json!({"name": "a"})).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, &missing("pass"));
    let resp = app.post("/v1/resellers/login.json").json(json!({"name": ["a"], "pass": "p"})).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "param name must be a string");

    let resp = app.post("/session.json").body("{\"login\": ", "application/json").send().await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(resp.json()["error"].as_str().unwrap().starts_with("Invalid JSON: "), "{:?}", resp.json());
    let resp = app.post("/session.json").json(json!(["login"])).send().await;
    assert_error(&resp, StatusCode::BAD_REQUEST, "Request body must be a JSON object");
    let resp = app.post("/session.json").body("login=a&password=b", "application/x-www-form-urlencoded").send().await;
    assert_error(
        &resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported media type \"application/x-www-form-urlencoded\": send application/json",
    );
    // A token that is not a JWT at all never reaches the database, and is refused the same.
    for garbage in ["garbage", "a.b.c", "", "%7F", "a.b.c%20d"] {
        let resp = app.request(axum::http::Method::DELETE, &format!("/session.json?token={garbage}")).send().await;
        if garbage.is_empty() {
            assert_error(&resp, StatusCode::UNAUTHORIZED, "Token is missing");
            assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"tokenauth\""));
        } else {
            assert_invalid_token(&resp);
        }
    }
    let resp =
        app.request(axum::http::Method::DELETE, "/session.json").header("authorization", "Bearer a b").send().await;
    assert_invalid_token(&resp);
    let resp = app.request(axum::http::Method::DELETE, "/session.json").header("authorization", "Bearer").send().await;
    assert_invalid_token(&resp);
}

async fn user_ip_rule_from_peer_and_trusted_proxy(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    add_group(&app, "office", Some(r"^10\.1\."), None).await;
    add_user(&app, "u@example.com", NewProfile { group: Some("office".into()), ..Default::default() }).await;
    let refused =
        |resp: TestResponse| assert_error(&resp, StatusCode::NOT_ACCEPTABLE, "Login denied due to IP restriction");

    // From the peer.
    token_of(&user_login(&app, "u@example.com", "user-pw", "10.1.2.3").await);
    refused(user_login(&app, "u@example.com", "user-pw", "10.2.0.1").await);
    refused(user_login(&app, "u@example.com", "user-pw", "110.1.2.3").await);
    // A wrong password is a wrong password wherever it comes from: the rule is checked after it.
    let resp = user_login(&app, "u@example.com", "wrong", "10.2.0.1").await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "Invalid login credentials");

    // From a trusted proxy's X-Forwarded-For (and Forwarded).
    let via_proxy = |xff: &'static str, header: &'static str, from: &'static str| {
        app.post("/session.json")
            .peer(peer(from))
            .header(header, xff)
            .json(json!({"login": "u@example.com", "password": "user-pw"}))
            .send()
    };
    token_of(&via_proxy("10.1.9.9", "x-forwarded-for", "127.0.0.1").await);
    token_of(&via_proxy("198.51.100.1, 10.1.9.9", "x-forwarded-for", "127.0.0.1").await);
    token_of(&via_proxy("for=10.1.9.9", "forwarded", "127.0.0.1").await);
    refused(via_proxy("10.2.9.9", "x-forwarded-for", "127.0.0.1").await);
    // A spoofed header from a peer that is not a trusted proxy is ignored: the peer counts.
    refused(via_proxy("10.1.9.9", "x-forwarded-for", "192.0.2.1").await);
    refused(via_proxy("for=10.1.9.9", "forwarded", "192.0.2.1").await);
    token_of(&via_proxy("192.0.2.1", "x-forwarded-for", "10.1.0.1").await);
    // Only the logins that passed issued tokens.
    assert_eq!(app.tokens.list(USER, "u@example.com").await.unwrap().len(), 5);
}

async fn reseller_ip_rule_from_peer_and_trusted_proxy(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    add_reseller(&app, "acme", &["203.0.113.0/24", "198.51.100.7"], None).await;
    let refused = |resp: TestResponse| assert_error(&resp, StatusCode::UNAUTHORIZED, "Your IP is not allowed");

    token_of(&reseller_login(&app, "acme", "reseller-pw", "203.0.113.200").await);
    token_of(&reseller_login(&app, "acme", "reseller-pw", "198.51.100.7").await);
    refused(reseller_login(&app, "acme", "reseller-pw", "198.51.100.8").await);
    // IPv4-mapped IPv6 peers are their IPv4 address.
    token_of(&reseller_login(&app, "acme", "reseller-pw", "::ffff:203.0.113.9").await);
    let resp = reseller_login(&app, "acme", "wrong", "198.51.100.8").await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "Invalid ID or Password");

    let via = |xff: &'static str, from: &'static str| {
        app.post("/v1/resellers/login.json")
            .peer(peer(from))
            .header("x-forwarded-for", xff)
            .json(json!({"name": "acme", "pass": "reseller-pw"}))
            .send()
    };
    token_of(&via("203.0.113.5", "10.0.0.2").await);
    refused(via("192.0.2.5", "10.0.0.2").await);
    refused(via("203.0.113.5", "192.0.2.99").await);
    assert_eq!(app.tokens.list(RESELLER, "acme").await.unwrap().len(), 4);
}

async fn logouts_by_header_and_by_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "u@example.com", NewProfile::default()).await;
    add_reseller(&app, "acme", &[], None).await;

    let a = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    let b = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    assert_success(&user_logout(&app, &a).await);
    assert_invalid_token(&user_logout(&app, &a).await);
    let by_query = app.request(axum::http::Method::DELETE, &format!("/session.json?token={b}")).send().await;
    assert_success(&by_query);
    let again = app.request(axum::http::Method::DELETE, &format!("/session.json?token={b}")).send().await;
    assert_invalid_token(&again);
    // Both rows are tombstones now, revoked at T0.
    let rows = app.tokens.list(USER, "u@example.com").await.unwrap();
    assert!(rows.iter().all(|r| r.revoked_at == Some(T0)), "{rows:?}");

    let r1 = token_of(&reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    let r2 = token_of(&reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    assert_success(&reseller_logout(&app, &r1).await);
    assert_invalid_token(&reseller_logout(&app, &r1).await);
    assert_success(&app.get(&format!("/v1/resellers/user/logout.json?token={r2}")).send().await);
    assert_invalid_token(&app.get(&format!("/v1/resellers/user/logout.json?token={r2}")).send().await);

    // A Bearer header wins over the query; a header of another scheme leaves the query to speak.
    let c = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    let resp = app.request(axum::http::Method::DELETE, &format!("/session.json?token={c}")).bearer(&a).send().await;
    assert_invalid_token(&resp);
    let resp = app
        .request(axum::http::Method::DELETE, &format!("/session.json?token={c}"))
        .header("authorization", "Basic dTpw")
        .send()
        .await;
    assert_success(&resp);
    // No token at all.
    let resp = app.request(axum::http::Method::DELETE, "/session.json").send().await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "Token is missing");
    assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"tokenauth\""));
}

async fn tokens_of_the_other_kind_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "same", NewProfile::default()).await;
    add_reseller(&app, "same", &[], None).await;
    let user = token_of(&user_login(&app, "same", "user-pw", "127.0.0.1").await);
    let reseller = token_of(&reseller_login(&app, "same", "reseller-pw", "127.0.0.1").await);
    assert_invalid_token(&reseller_logout(&app, &user).await);
    assert_invalid_token(&user_logout(&app, &reseller).await);
    // Neither refusal revoked anything.
    assert_success(&user_logout(&app, &user).await);
    assert_success(&reseller_logout(&app, &reseller).await);
}

async fn tokens_of_other_dialects_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "u@example.com", NewProfile::default()).await;
    let webitel = app.post("/login").json(json!({"username": "u@example.com", "password": "user-pw"})).send().await;
    let (webitel_token, key) = (token_of(&webitel), webitel.json()["key"].as_str().unwrap().to_owned());
    let knox = token_of(
        &app.post("/auth/login/").json(json!({"username": "u@example.com", "password": "user-pw"})).send().await,
    );
    let dialer = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);

    // A webitel JWT is signed by the same keys, but it is webitel's: refused here.
    assert_invalid_token(&user_logout(&app, &webitel_token).await);
    assert_invalid_token(&user_logout(&app, &knox).await);
    // And a dialer JWT is refused by webitel, even with its own id as the key.
    let resp =
        app.post("/logout").header("x-access-token", &dialer).header("x-key", jti(&dialer).to_string()).send().await;
    resp.assert_json(StatusCode::UNAUTHORIZED, json!({"status": "error", "info": "Invalid credentials"}));
    // All three still work in their own dialect.
    let resp = app.post("/logout").header("x-access-token", &webitel_token).header("x-key", &key).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_success(&user_logout(&app, &dialer).await);
}

async fn static_tokens_work_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = add_user(&app, "u@example.com", NewProfile::default()).await;
    let reseller = add_reseller(&app, "acme", &[], None).await;
    let mint = |kind, name: &'static str| {
        let options = MintOptions { static_token: true, ..MintOptions::default() };
        let policy = tokenauth::dialect::dialer::policy(&app.config.dialer);
        let tokens = app.tokens.clone();
        async move { tokens.mint(&policy, kind, name, options).await.unwrap() }
    };
    let user_static = mint(USER, "u@example.com").await;
    let reseller_static = mint(RESELLER, "acme").await;
    let (u, r) = (user_static.token.expose().to_owned(), reseller_static.token.expose().to_owned());
    let c = claims(&u);
    assert_eq!(c.get("exp"), None, "a static token has no exp: {c}");
    assert_eq!(c["type"], "user");
    assert_eq!(c["id"], user.id);
    assert_eq!(c["iat"], secs(T0));
    assert_eq!(c["jti"], user_static.record.id.to_string());
    let c = claims(&r);
    assert_eq!(
        c,
        json!({"type": "reseller", "id": reseller.id, "name": "acme", "iat": secs(T0), "jti": reseller_static.record.id.to_string()})
    );

    // Years later they still work; a static token is refused on the other kind's endpoint too.
    app.advance(DAY * 3650);
    assert_invalid_token(&reseller_logout(&app, &u).await);
    let second = mint(USER, "u@example.com").await;
    assert_success(&user_logout(&app, second.token.expose()).await);
    // Revoked by an administrator: refused.
    app.tokens.revoke_by_id(user_static.record.id).await.unwrap();
    assert_invalid_token(&user_logout(&app, &u).await);
    assert_success(&reseller_logout(&app, &r).await);
    assert_invalid_token(&reseller_logout(&app, &r).await);
}

async fn session_tokens_expire_after_a_day(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.dialer.token_ttl = Duration::from_secs(3600)).await;
    add_user(&app, "u@example.com", NewProfile::default()).await;
    add_reseller(&app, "acme", &[], None).await;
    let early = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    let early_reseller = token_of(&reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    assert_eq!(claims(&early)["exp"], secs(T0) + 3600, "the configured lifetime");
    app.advance(Duration::from_secs(1800));
    let late = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    app.advance(Duration::from_secs(1800));
    // One hour after the first login: it has expired, the later one has not.
    assert_invalid_token(&user_logout(&app, &early).await);
    assert_invalid_token(&reseller_logout(&app, &early_reseller).await);
    assert_success(&user_logout(&app, &late).await);
}

async fn disabled_principals_tokens_stop_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "u@example.com", NewProfile::default()).await;
    add_reseller(&app, "acme", &[], None).await;
    let user = token_of(&user_login(&app, "u@example.com", "user-pw", "127.0.0.1").await);
    let reseller = token_of(&reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    app.tokens.set_principal_enabled(USER, "u@example.com", false).await.unwrap();
    app.tokens.set_principal_enabled(RESELLER, "acme", false).await.unwrap();
    assert_invalid_token(&user_logout(&app, &user).await);
    assert_invalid_token(&reseller_logout(&app, &reseller).await);
    app.tokens.set_principal_enabled(USER, "u@example.com", true).await.unwrap();
    app.tokens.set_principal_enabled(RESELLER, "acme", true).await.unwrap();
    assert_success(&user_logout(&app, &user).await);
    assert_success(&reseller_logout(&app, &reseller).await);
    // A password change revokes the reseller's tokens.
    let reseller = token_of(&reseller_login(&app, "acme", "reseller-pw", "127.0.0.1").await);
    app.tokens.set_password(RESELLER, "acme", "new-pw".to_owned().into()).await.unwrap();
    assert_invalid_token(&reseller_logout(&app, &reseller).await);
    token_of(&reseller_login(&app, "acme", "new-pw", "127.0.0.1").await);
}

async fn the_prefix_serves_hello_hunter_paths(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.dialer.prefix = "/a".into()).await;
    add_user(&app, "user@example.com", NewProfile::default()).await;
    add_reseller(&app, "reseller_name", &[], None).await;
    let login = json!({"login": "user@example.com", "password": "user-pw"});
    let token = token_of(&app.post("/a/session.json").json(&login).send().await);
    let resp = app.request(axum::http::Method::DELETE, "/a/session.json").bearer(&token).send().await;
    assert_success(&resp);
    let reseller = json!({"name": "reseller_name", "pass": "reseller-pw"});
    let token = token_of(&app.post("/a/v1/resellers/login.json").json(&reseller).send().await);
    assert_success(&app.get("/a/v1/resellers/user/logout.json").bearer(&token).send().await);
    // The unprefixed paths are not served any more; unknown paths under /a answer in the dialer shape.
    assert_eq!(app.post("/session.json").json(&login).send().await.status, StatusCode::NOT_FOUND);
    let resp = app.get("/a/some-endpoint").send().await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert!(resp.json()["error"].is_string(), "{:?}", resp.json());
}

async fn errors_outside_handlers_keep_the_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resp = app.get("/session.json").send().await;
    assert_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "Method GET not allowed");
    let allow = resp.header("allow").unwrap_or_default().to_owned();
    assert!(allow.contains("POST") && allow.contains("DELETE"), "{allow}");
    let resp = app.post("/v1/resellers/user/logout.json").send().await;
    assert_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "Method POST not allowed");
    let resp = app.get("/v1/resellers/login.json").send().await;
    assert_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "Method GET not allowed");
    let big = format!("{{\"login\": \"{}\", \"password\": \"x\"}}", "a".repeat(app.config.http.body_limit));
    let resp = app.post("/session.json").body(big, "application/json").send().await;
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large");
}

async fn ip_rules_apply_to_every_dialect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_group(&app, "office", Some(r"^10\.1\."), None).await;
    add_user(&app, "u@example.com", NewProfile { group: Some("office".into()), ..Default::default() }).await;
    let creds = json!({"username": "u@example.com", "password": "user-pw"});
    // Each dialect refuses it as its own credential refusal: they have no IP-rule row.
    let knox = app.post("/auth/login/").peer(peer("192.0.2.1")).json(&creds).send().await;
    knox.assert_json(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
    );
    let webitel = app.post("/login").peer(peer("192.0.2.1")).json(&creds).send().await;
    webitel.assert_json(StatusCode::UNAUTHORIZED, json!({"status": "error", "info": "Invalid credentials"}));
    let usertoken = app.post("/auth/login").peer(peer("192.0.2.1")).basic("u@example.com", "user-pw").send().await;
    assert_eq!(usertoken.status, StatusCode::UNAUTHORIZED);
    assert_eq!(usertoken.json()["name"], "AuthError");
    // From an allowed address all of them issue.
    assert_eq!(app.post("/auth/login/").peer(peer("10.1.0.1")).json(&creds).send().await.status, StatusCode::OK);
    assert_eq!(app.post("/login").peer(peer("10.1.0.1")).json(&creds).send().await.status, StatusCode::OK);
    let ut = app.post("/auth/login").peer(peer("10.1.0.1")).basic("u@example.com", "user-pw").send().await;
    assert_eq!(ut.status, StatusCode::OK);
    assert_eq!(app.tokens.list(USER, "u@example.com").await.unwrap().len(), 3);
}

async fn bad_regexes_and_misfit_attributes_are_refused_when_stored(backend: Backend) {
    use tokenauth::error::Error;
    let app = TestApp::spawn(backend).await;
    let err = app.tokens.create_group("bad", Some("(unclosed"), None).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidAttribute(m) if m.contains("not a valid regular expression")), "{err:?}");
    assert!(app.tokens.list_groups(None).await.unwrap().is_empty(), "nothing stored");
    let err = app.tokens.create_group("g", None, Some("ghost")).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchPrincipal { kind: "reseller", .. }), "{err:?}");
    add_group(&app, "g", None, None).await;
    assert!(matches!(app.tokens.create_group("g", None, None).await, Err(Error::GroupExists(_))));

    let pw = || "pw".to_owned().into();
    let ips = Attributes { allowed_ips: vec![parse_allowed_ip("10.0.0.1").unwrap()], ..Attributes::default() };
    let user_with_ips = NewProfile { attributes: ips, ..NewProfile::default() };
    let err = app.tokens.create_principal(USER, "u", pw(), &user_with_ips).await.unwrap_err();
    assert!(matches!(err, Error::InvalidAttribute(_)), "{err:?}");
    let admin_reseller =
        NewProfile { attributes: Attributes { admin: true, ..Attributes::default() }, ..NewProfile::default() };
    let err = app.tokens.create_principal(RESELLER, "r", pw(), &admin_reseller).await.unwrap_err();
    assert!(matches!(err, Error::InvalidAttribute(_)), "{err:?}");
    let grouped_reseller = NewProfile { group: Some("g".into()), ..NewProfile::default() };
    let err = app.tokens.create_principal(RESELLER, "r", pw(), &grouped_reseller).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidAttribute(m) if m.contains("group")), "{err:?}");
    let unknown_group = NewProfile { group: Some("nope".into()), ..NewProfile::default() };
    let err = app.tokens.create_principal(USER, "u", pw(), &unknown_group).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchGroup(_)), "{err:?}");
    let bad_sms = NewProfile {
        attributes: Attributes { sms_from: Some("a\nb".into()), ..Attributes::default() },
        ..NewProfile::default()
    };
    let err = app.tokens.create_principal(USER, "u", pw(), &bad_sms).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidAttribute(m) if m.contains("control")), "{err:?}");
    assert!(app.tokens.list_principals(USER).await.unwrap().is_empty(), "nothing stored");
    assert!(app.tokens.list_principals(RESELLER).await.unwrap().is_empty(), "nothing stored");
    let err = app.tokens.create_group("any", Some(""), None).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidAttribute(m) if m.contains("empty")), "{err:?}");

    // Moving a user into a restricted group restricts its next login; out of it, frees it.
    add_group(&app, "office", Some(r"^10\.1\."), None).await;
    add_user(&app, "mover", NewProfile::default()).await;
    token_of(&user_login(&app, "mover", "user-pw", "192.0.2.1").await);
    app.tokens.set_principal_group(USER, "mover", Some("office")).await.unwrap();
    let resp = user_login(&app, "mover", "user-pw", "192.0.2.1").await;
    assert_error(&resp, StatusCode::NOT_ACCEPTABLE, "Login denied due to IP restriction");
    let office = app.tokens.group("office").await.unwrap().group.id;
    assert_eq!(claims(&token_of(&user_login(&app, "mover", "user-pw", "10.1.0.9").await))["user_group_id"], office);
    app.tokens.set_principal_group(USER, "mover", None).await.unwrap();
    token_of(&user_login(&app, "mover", "user-pw", "192.0.2.1").await);
    assert!(matches!(app.tokens.set_principal_group(USER, "mover", Some("nope")).await, Err(Error::NoSuchGroup(_))));
    add_reseller(&app, "acme", &[], None).await;
    assert!(matches!(
        app.tokens.set_principal_group(RESELLER, "acme", Some("office")).await,
        Err(Error::InvalidAttribute(_))
    ));
    app.tokens.remove_principal(USER, "mover").await.unwrap();
    app.tokens.remove_group("office").await.unwrap();

    // A group with members cannot be removed; an empty one can.
    add_user(&app, "member", NewProfile { group: Some("g".into()), ..Default::default() }).await;
    assert!(matches!(app.tokens.remove_group("g").await, Err(Error::GroupInUse { members: 1, .. })));
    app.tokens.remove_principal(USER, "member").await.unwrap();
    app.tokens.remove_group("g").await.unwrap();
    assert!(matches!(app.tokens.remove_group("g").await, Err(Error::NoSuchGroup(_))));

    // Balances: plain decimals only, shown with at least two places.
    assert_eq!(parse_balance("1000").unwrap().to_string(), "1000.00");
    assert_eq!(parse_balance("-0.5").unwrap().to_string(), "-0.50");
    assert_eq!(parse_balance("12.3456").unwrap().to_string(), "12.3456");
    assert_eq!(parse_balance("99999999999.9999").unwrap().to_string(), "99999999999.9999");
    for bad in ["", "-", "1e3", "1.", ".5", "1.23456", "12,5", "NaN", "+1", "123456789012", " 1"] {
        assert!(matches!(parse_balance(bad), Err(Error::InvalidAttribute(m)) if m.contains("balance")), "{bad:?}");
    }
    assert_eq!(parse_allowed_ip("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    assert_eq!(parse_allowed_ip("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
    assert!(matches!(parse_allowed_ip("10.0.0.0/33"), Err(Error::InvalidAttribute(m)) if m.contains("10.0.0.0/33")));
    assert_eq!(parse_allowed_ip("::ffff:192.0.2.0/120").unwrap().to_string(), "192.0.2.0/24");
    assert_eq!(parse_allowed_ip("::ffff:192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
    assert_eq!(parse_allowed_ip("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
    assert!(matches!(parse_allowed_ip("example.com"), Err(Error::InvalidAttribute(m)) if m.contains("example.com")));
}
