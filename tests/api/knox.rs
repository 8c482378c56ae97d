//! The knox dialect over HTTP (seed 003 and `dialects.md` § knox): login, logout, logoutall,
//! the DRF error shapes, the 401 table, the token limit, sliding refresh with the fixed clock,
//! and routing outside the handlers. Every test runs on SQLite and on Postgres.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenauth::model::PrincipalKind;
use tokenauth::model::Token;
use tokenauth::token::secret::TokenFormat;
use tokenauth::token::{MintOptions, TokenPolicy};

use crate::helpers::{Backend, T0, TestApp, TestResponse, rfc3339};

const PW: &str = "correct horse battery";
const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

fn hours(h: i64) -> time::Duration {
    time::Duration::hours(h)
}

/// `POST /auth/login/` with a JSON body.
async fn post_login(app: &TestApp, body: Value) -> TestResponse {
    app.post("/auth/login/").json(body).send().await
}

/// Log in and return the token, asserting the exact 200 shape on the way.
async fn login(app: &TestApp, user: &str, pw: &str) -> String {
    let resp = post_login(app, json!({"username": user, "password": pw})).await;
    assert_eq!(resp.status, StatusCode::OK, "login of {user}: {}", String::from_utf8_lossy(&resp.body));
    let token = resp.json()["token"].as_str().expect("token is a string").to_owned();
    // The configured prefix, then 64 lowercase hex; `expiry` null without a lifetime, else the
    // login's time (the fixed clock's) plus the lifetime, in RFC 3339 UTC.
    let prefix = &app.config.knox.token_prefix;
    assert_hex64(token.strip_prefix(prefix.as_str()).unwrap_or_else(|| panic!("{token:?} lacks {prefix:?}")));
    let expiry = match app.config.knox.token_ttl {
        None => Value::Null,
        Some(ttl) => json!(rfc3339(app.tokens.now() + ttl)),
    };
    resp.assert_json(StatusCode::OK, json!({"token": token, "expiry": expiry}));
    token
}

async fn logout(app: &TestApp, token: &str) -> TestResponse {
    app.post("/auth/logout/").token(token).send().await
}

async fn logoutall(app: &TestApp, token: &str) -> TestResponse {
    app.post("/auth/logoutall/").token(token).send().await
}

/// A knox 401: `{"detail": ...}` with `WWW-Authenticate: Token`.
#[track_caller]
fn assert_401(resp: &TestResponse, detail: &str) {
    resp.assert_json(StatusCode::UNAUTHORIZED, json!({ "detail": detail }));
    assert_eq!(resp.header("www-authenticate"), Some("Token"), "WWW-Authenticate");
}

#[track_caller]
fn assert_bad_credentials(resp: &TestResponse) {
    resp.assert_json(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
    );
}

#[track_caller]
fn assert_hex64(s: &str) {
    assert_eq!(s.len(), 64, "{s:?} is not 64 characters");
    assert!(s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{s:?} is not lowercase hex");
}

fn knox_policy(app: &TestApp) -> TokenPolicy {
    tokenauth::dialect::knox::policy(&app.config.knox)
}

/// Every knox token row (tombstones included) of `user`.
async fn knox_rows(app: &TestApp, user: &str) -> Vec<Token> {
    app.tokens
        .list(PrincipalKind::User, user)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.issuer.as_str() == "knox")
        .collect()
}

/// The single knox row of `user`.
async fn only_row(app: &TestApp, user: &str) -> Token {
    let rows = knox_rows(app, user).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap()
}

/// A static knox token minted by an administrator (no expiry).
async fn mint_static(app: &TestApp, user: &str) -> String {
    let options = MintOptions { static_token: true, ..Default::default() };
    let issued = app.tokens.mint(&knox_policy(app), PrincipalKind::User, user, options).await.unwrap();
    assert_eq!(issued.record.expires_at, None);
    issued.token.expose().to_owned()
}

/// A usertoken token via `POST /auth/login` with Basic auth.
async fn usertoken_login(app: &TestApp, user: &str, pw: &str) -> String {
    let resp = app.post("/auth/login").basic(user, pw).send().await;
    assert_eq!(resp.status, StatusCode::OK, "usertoken login: {}", String::from_utf8_lossy(&resp.body));
    resp.json()["token"].as_str().unwrap().to_owned()
}

/// `POST /auth/bump` with a usertoken Bearer token: its status.
async fn usertoken_bump(app: &TestApp, token: &str) -> StatusCode {
    app.post("/auth/bump").bearer(token).send().await.status
}

fn sliding_config(c: &mut tokenauth::config::Config) {
    c.knox.token_ttl = Some(10 * HOUR);
    c.knox.auto_refresh = true;
    c.knox.min_refresh_interval = Duration::from_secs(60);
    c.knox.max_lifetime = Some(12 * HOUR);
}

// ---------------------------------------------------------------------------------------------
// 1-3. Login success
// ---------------------------------------------------------------------------------------------

backend_tests!(
    login_returns_a_hex_token_and_null_expiry,
    login_with_a_ttl_returns_the_expiry_in_utc,
    token_prefix_is_prepended_and_accepted,
    json_content_type_with_parameters_is_accepted,
);

async fn login_returns_a_hex_token_and_null_expiry(backend: Backend) {
    let expected_store = match backend {
        Backend::Sqlite => "sqlite",
        _ => "postgres",
    };
    let app = TestApp::spawn(backend).await;
    // The postgres variant really runs on Postgres.
    assert_eq!(app.store.backend(), expected_store);
    app.add_user("alice", PW).await;

    let resp = post_login(&app, json!({"username": "alice", "password": PW})).await;
    assert_eq!(resp.status, StatusCode::OK);
    let body = resp.json();
    assert_eq!(body.as_object().unwrap().len(), 2, "exactly token and expiry: {body}");
    let first = body["token"].as_str().unwrap().to_owned();
    assert_hex64(&first);
    resp.assert_json(StatusCode::OK, json!({"token": first, "expiry": null}));

    let second = login(&app, "alice", PW).await;
    assert_hex64(&second);
    assert_ne!(first, second, "two logins must give two tokens");

    // The stored row is a never-expiring knox session token, and both tokens work.
    let rows = knox_rows(&app, "alice").await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.expires_at.is_none() && r.created_at == T0));
    logout(&app, &first).await.assert_empty(StatusCode::OK);
    logout(&app, &second).await.assert_empty(StatusCode::OK);
}

async fn login_with_a_ttl_returns_the_expiry_in_utc(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.token_ttl = Some(10 * HOUR)).await;
    app.add_user("alice", PW).await;

    let resp = post_login(&app, json!({"username": "alice", "password": PW})).await;
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    assert_hex64(&token);
    let expiry = rfc3339(T0 + hours(10));
    assert_eq!(expiry, "2030-01-01T10:00:00Z");
    resp.assert_json(StatusCode::OK, json!({"token": token, "expiry": expiry}));
    assert_eq!(only_row(&app, "alice").await.expires_at, Some(T0 + hours(10)));
}

async fn token_prefix_is_prepended_and_accepted(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.token_prefix = "pm_".into()).await;
    app.add_user("alice", PW).await;

    let token = login(&app, "alice", PW).await;
    let rest = token.strip_prefix("pm_").unwrap_or_else(|| panic!("{token:?} lacks the pm_ prefix"));
    assert_hex64(rest);
    // Without its prefix the token is not a token.
    assert_401(&logout(&app, rest).await, "Invalid token.");
    logout(&app, &token).await.assert_empty(StatusCode::OK);
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn json_content_type_with_parameters_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let body = serde_json::to_vec(&json!({"username": "alice", "password": PW})).unwrap();
    for ct in ["application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"] {
        let resp = app.post("/auth/login/").body(body.clone(), ct).send().await;
        assert_eq!(resp.status, StatusCode::OK, "{ct}: {}", String::from_utf8_lossy(&resp.body));
        assert_hex64(resp.json()["token"].as_str().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Bad credentials
// ---------------------------------------------------------------------------------------------

backend_tests!(bad_credentials_are_one_400_and_write_nothing, username_is_trimmed_but_password_is_not);

async fn bad_credentials_are_one_400_and_write_nothing(backend: Backend) {
    // why a higher limit: ten refusals from one address would otherwise lock it out (the
    // throttle's own tests are in tests/api/throttle.rs).
    let app = TestApp::with_config(backend, |c| c.throttle.ip.max_failures = 100).await;
    app.add_user("alice", PW).await;
    app.add_user("carol", PW).await;

    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": "wrong"})).await);
    assert_bad_credentials(&post_login(&app, json!({"username": "nobody", "password": PW})).await);
    // Names are case-sensitive.
    assert_bad_credentials(&post_login(&app, json!({"username": "Alice", "password": PW})).await);

    // Names that can never exist (control characters, NUL, too long) are just unknown: no
    // 500, even on Postgres, whose text type cannot hold NUL.
    for odd in ["al\u{0}ice", "al\nice", "\u{7f}", &"a".repeat(151), "ünïcødé 🦀"] {
        assert_bad_credentials(&post_login(&app, json!({"username": odd, "password": PW})).await);
    }
    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": "p\u{0}w"})).await);

    app.tokens.set_principal_enabled(PrincipalKind::User, "carol", false).await.unwrap();
    assert_bad_credentials(&post_login(&app, json!({"username": "carol", "password": PW})).await);

    assert!(knox_rows(&app, "alice").await.is_empty(), "a refused login wrote a row");
    assert!(knox_rows(&app, "carol").await.is_empty(), "a refused login wrote a row");

    // The same credentials are fine once the user is enabled again.
    app.tokens.set_principal_enabled(PrincipalKind::User, "carol", true).await.unwrap();
    login(&app, "carol", PW).await;
    assert_eq!(knox_rows(&app, "carol").await.len(), 1);
}

async fn username_is_trimmed_but_password_is_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    app.add_user("5", PW).await;

    // DRF's CharField trims the username...
    let resp = post_login(&app, json!({"username": "  alice ", "password": PW})).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp.body));
    // ...but not the password (AuthTokenSerializer has trim_whitespace=False).
    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": format!(" {PW} ")})).await);
    // A whitespace-only password is not blank: it is merely wrong.
    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": "   "})).await);
    // A number is accepted as its text.
    let resp = post_login(&app, json!({"username": 5, "password": PW})).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(knox_rows(&app, "5").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Field errors
// ---------------------------------------------------------------------------------------------

backend_tests!(missing_fields_are_required, blank_fields, null_and_non_string_fields, numeric_username_is_a_string);

async fn missing_fields_are_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let required = json!(["This field is required."]);

    post_login(&app, json!({"password": PW})).await.assert_json(StatusCode::BAD_REQUEST, json!({"username": required}));
    post_login(&app, json!({"username": "alice"}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"password": required}));
    // A misspelled field is a missing one.
    post_login(&app, json!({"user": "alice", "password": PW}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"username": required}));
    let both = json!({"username": required, "password": required});
    post_login(&app, json!({})).await.assert_json(StatusCode::BAD_REQUEST, both.clone());
    // An empty body is "no data", with a JSON content type or none at all.
    app.post("/auth/login/")
        .body(Vec::new(), "application/json")
        .send()
        .await
        .assert_json(StatusCode::BAD_REQUEST, both.clone());
    app.post("/auth/login/").send().await.assert_json(StatusCode::BAD_REQUEST, both);
    assert!(knox_rows(&app, "alice").await.is_empty());
}

async fn blank_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let blank = json!(["This field may not be blank."]);

    for username in ["", "   ", "\t\n"] {
        post_login(&app, json!({"username": username, "password": PW}))
            .await
            .assert_json(StatusCode::BAD_REQUEST, json!({"username": blank}));
    }
    post_login(&app, json!({"username": "alice", "password": ""}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"password": blank}));
    // Each field reports its own problem, side by side.
    post_login(&app, json!({"username": " ", "password": ""}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"username": blank, "password": blank}));
    post_login(&app, json!({"username": ""}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"username": blank, "password": ["This field is required."]}));
}

async fn null_and_non_string_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let may_not_be_null = json!(["This field may not be null."]);
    let not_string = json!(["Not a valid string."]);

    post_login(&app, json!({"username": null, "password": PW}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"username": may_not_be_null}));
    post_login(&app, json!({"username": "alice", "password": null}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"password": may_not_be_null}));
    for bad in [json!(["x"]), json!(true), json!({"a": 1})] {
        post_login(&app, json!({"username": bad, "password": PW}))
            .await
            .assert_json(StatusCode::BAD_REQUEST, json!({"username": not_string}));
        post_login(&app, json!({"username": "alice", "password": bad}))
            .await
            .assert_json(StatusCode::BAD_REQUEST, json!({"password": not_string}));
    }
    post_login(&app, json!({"username": null, "password": ["x"]}))
        .await
        .assert_json(StatusCode::BAD_REQUEST, json!({"username": may_not_be_null, "password": not_string}));
    assert!(knox_rows(&app, "alice").await.is_empty());
}

async fn numeric_username_is_a_string(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    // Accepted as the string "5": no field error, just unknown credentials.
    assert_bad_credentials(&post_login(&app, json!({"username": 5, "password": PW})).await);
    app.add_user("5", PW).await;
    login(&app, "5", PW).await;
    let resp = post_login(&app, json!({"username": 5, "password": PW})).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(knox_rows(&app, "5").await.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 6. Body parsing
// ---------------------------------------------------------------------------------------------

backend_tests!(malformed_json_is_a_parse_error, non_object_json_is_refused, non_json_content_types_are_415);

async fn malformed_json_is_a_parse_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let deep = "[".repeat(10_000).into_bytes();
    let deep_object = format!("{}1", "{\"a\":".repeat(5_000)).into_bytes();
    let raws: [&[u8]; 7] = [
        b"{\"username\": \"alice\", ",
        b"{username: alice}",
        b"\xff\xfe",
        b"{\"username\":\"a\"} x",
        b"{\"username\": 1e999, \"password\": \"x\"}",
        &deep,
        &deep_object,
    ];
    for raw in raws {
        let resp = app.post("/auth/login/").body(raw.to_vec(), "application/json").send().await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&resp.body));
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        let obj = body.as_object().unwrap();
        assert_eq!(obj.len(), 1, "only detail: {body}");
        let detail = obj["detail"].as_str().unwrap();
        assert!(detail.starts_with("JSON parse error - "), "{detail}");
        assert!(detail.len() > "JSON parse error - ".len(), "the parser's message is included: {detail}");
    }
    assert!(knox_rows(&app, "alice").await.is_empty());
}

async fn non_object_json_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (json!(["alice", PW]), "list"),
        (json!("alice"), "str"),
        (json!(5), "int"),
        (json!(1.5), "float"),
        (json!(true), "bool"),
        (json!(null), "NoneType"),
    ];
    for (body, python_type) in cases {
        post_login(&app, body).await.assert_json(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {python_type}.")]}),
        );
    }
}

async fn non_json_content_types_are_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let unsupported = |ct: &str| json!({ "detail": format!("Unsupported media type \"{ct}\" in request.") });

    let json_body = serde_json::to_vec(&json!({"username": "alice", "password": PW})).unwrap();
    app.post("/auth/login/")
        .body(json_body.clone(), "text/plain")
        .send()
        .await
        .assert_json(StatusCode::UNSUPPORTED_MEDIA_TYPE, unsupported("text/plain"));
    let form = format!("username=alice&password={PW}");
    app.post("/auth/login/")
        .body(form, "application/x-www-form-urlencoded")
        .send()
        .await
        .assert_json(StatusCode::UNSUPPORTED_MEDIA_TYPE, unsupported("application/x-www-form-urlencoded"));
    app.post("/auth/login/")
        .raw_body(json_body)
        .send()
        .await
        .assert_json(StatusCode::UNSUPPORTED_MEDIA_TYPE, unsupported(""));
    assert!(knox_rows(&app, "alice").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7-8. Logout and logoutall
// ---------------------------------------------------------------------------------------------

backend_tests!(
    logout_is_200_empty_and_revokes_only_that_token,
    logout_status_204_when_configured,
    logoutall_revokes_every_knox_token_of_the_user_only,
);

async fn logout_is_200_empty_and_revokes_only_that_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let other = login(&app, "alice", PW).await;

    logout(&app, &token).await.assert_empty(StatusCode::OK);
    assert_401(&logout(&app, &token).await, "Invalid token.");
    assert_401(&logoutall(&app, &token).await, "Invalid token.");

    // The row is a tombstone, not deleted; the other token is untouched.
    let rows = knox_rows(&app, "alice").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().filter(|r| r.revoked_at == Some(T0)).count(), 1);
    logout(&app, &other).await.assert_empty(StatusCode::OK);
}

async fn logout_status_204_when_configured(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.logout_status = tokenauth::model::LogoutStatus::NoContent).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    logout(&app, &token).await.assert_empty(StatusCode::NO_CONTENT);
    assert_401(&logout(&app, &token).await, "Invalid token.");

    let token = login(&app, "alice", PW).await;
    logoutall(&app, &token).await.assert_empty(StatusCode::NO_CONTENT);
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn logoutall_revokes_every_knox_token_of_the_user_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    app.add_user("bob", PW).await;
    let a1 = login(&app, "alice", PW).await;
    let a2 = login(&app, "alice", PW).await;
    let a3 = login(&app, "alice", PW).await;
    let a_static = mint_static(&app, "alice").await;
    let a_usertoken = usertoken_login(&app, "alice", PW).await;
    let b1 = login(&app, "bob", PW).await;

    logoutall(&app, &a2).await.assert_empty(StatusCode::OK);

    for t in [&a1, &a2, &a3, &a_static] {
        assert_401(&logout(&app, t).await, "Invalid token.");
    }
    assert!(knox_rows(&app, "alice").await.iter().all(|r| r.revoked_at == Some(T0)));
    // Another dialect's token of the same user survives.
    assert_eq!(usertoken_bump(&app, &a_usertoken).await, StatusCode::OK);
    // Another user's knox token survives.
    logout(&app, &b1).await.assert_empty(StatusCode::OK);
    // And alice may log in again afterwards.
    let again = login(&app, "alice", PW).await;
    logout(&app, &again).await.assert_empty(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 9. The 401 table
// ---------------------------------------------------------------------------------------------

backend_tests!(
    no_credentials_or_another_scheme,
    malformed_token_headers,
    scheme_is_case_insensitive,
    unknown_and_garbage_tokens,
    expired_token,
    revoked_token,
    disabled_token,
    disabled_user_then_reenabled,
    removed_user,
    password_change_revokes_tokens,
    other_dialects_tokens_are_refused,
    non_ascii_header,
);

async fn no_credentials_or_another_scheme(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let missing = "Authentication credentials were not provided.";
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        assert_401(&app.post(path).send().await, missing);
        assert_401(&app.post(path).bearer(&token).send().await, missing);
        assert_401(&app.post(path).basic("alice", PW).send().await, missing);
        assert_401(&app.post(path).header("authorization", format!("Tokens {token}")).send().await, missing);
        assert_401(&app.post(path).header("authorization", "").send().await, missing);
    }
    // None of that revoked anything.
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn malformed_token_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        for empty in ["Token", "token", "Token "] {
            assert_401(
                &app.post(path).header("authorization", empty).send().await,
                "Invalid token header. No credentials provided.",
            );
        }
        for spaced in ["Token a b".to_owned(), format!("Token {token} {token}"), format!("Token {token} x")] {
            assert_401(
                &app.post(path).header("authorization", spaced).send().await,
                "Invalid token header. Token string should not contain spaces.",
            );
        }
    }
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn scheme_is_case_insensitive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    for scheme in ["token", "TOKEN", "tOkEn", "Token"] {
        let token = login(&app, "alice", PW).await;
        app.post("/auth/logout/")
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .assert_empty(StatusCode::OK);
        assert_401(&logout(&app, &token).await, "Invalid token.");
    }
    let token = login(&app, "alice", PW).await;
    app.post("/auth/logoutall/")
        .header("authorization", format!("TOKEN {token}"))
        .send()
        .await
        .assert_empty(StatusCode::OK);
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn unknown_and_garbage_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let unknown = "0123456789abcdef".repeat(4);
    assert_ne!(unknown, token);
    let garbage = [
        "garbage".to_owned(),
        token.to_ascii_uppercase(),
        token[..63].to_owned(),
        format!("{token}0"),
        format!("x{}", &token[1..]),
        "b94cf5c7-cddc-4610-9d4c-6b8e04088ae8".to_owned(),
    ];
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        assert_401(&app.post(path).token(&unknown).send().await, "Invalid token.");
        for g in &garbage {
            assert_401(&app.post(path).token(g).send().await, "Invalid token.");
        }
    }
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn expired_token(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.token_ttl = Some(HOUR)).await;
    app.add_user("alice", PW).await;
    let before = login(&app, "alice", PW).await;
    let at = login(&app, "alice", PW).await;
    let all = login(&app, "alice", PW).await;

    app.advance(Duration::from_secs(3599));
    logout(&app, &before).await.assert_empty(StatusCode::OK);
    app.advance(Duration::from_secs(1));
    assert_401(&logout(&app, &at).await, "Invalid token.");
    assert_401(&logoutall(&app, &all).await, "Invalid token.");
}

async fn revoked_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let by_logout = login(&app, "alice", PW).await;
    let by_admin = login(&app, "alice", PW).await;
    logout(&app, &by_logout).await.assert_empty(StatusCode::OK);
    assert_401(&logout(&app, &by_logout).await, "Invalid token.");

    let id = knox_rows(&app, "alice").await.into_iter().find(|r| r.revoked_at.is_none()).unwrap().id;
    app.tokens.revoke_by_id(id).await.unwrap();
    assert_401(&logout(&app, &by_admin).await, "Invalid token.");
    assert_401(&logoutall(&app, &by_admin).await, "Invalid token.");
}

async fn disabled_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let id = only_row(&app, "alice").await.id;

    app.tokens.set_token_enabled(id, false).await.unwrap();
    assert_401(&logout(&app, &token).await, "Invalid token.");
    assert_401(&logoutall(&app, &token).await, "Invalid token.");
    app.tokens.set_token_enabled(id, true).await.unwrap();
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn disabled_user_then_reenabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;

    app.tokens.set_principal_enabled(PrincipalKind::User, "alice", false).await.unwrap();
    assert_401(&logout(&app, &token).await, "User inactive or deleted.");
    assert_401(&logoutall(&app, &token).await, "User inactive or deleted.");
    // A disabled user's bad token is still just a bad token.
    assert_401(&logout(&app, &"ab".repeat(32)).await, "Invalid token.");

    app.tokens.set_principal_enabled(PrincipalKind::User, "alice", true).await.unwrap();
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn removed_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let other = login(&app, "alice", PW).await;
    app.tokens.remove_principal(PrincipalKind::User, "alice").await.unwrap();
    assert_401(&logout(&app, &token).await, "Invalid token.");
    assert_401(&logoutall(&app, &other).await, "Invalid token.");
    // A new alice does not inherit the old one's tokens.
    app.add_user("alice", PW).await;
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn password_change_revokes_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let t1 = login(&app, "alice", PW).await;
    let t2 = login(&app, "alice", PW).await;
    let s = mint_static(&app, "alice").await;

    app.tokens.set_password(PrincipalKind::User, "alice", "new password".to_owned().into()).await.unwrap();
    assert_401(&logout(&app, &t1).await, "Invalid token.");
    assert_401(&logoutall(&app, &t2).await, "Invalid token.");
    assert_401(&logout(&app, &s).await, "Invalid token.");

    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    let fresh = login(&app, "alice", "new password").await;
    logout(&app, &fresh).await.assert_empty(StatusCode::OK);
}

async fn other_dialects_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let ut = usertoken_login(&app, "alice", PW).await;
    assert_401(&logout(&app, &ut).await, "Invalid token.");
    assert_401(&logoutall(&app, &ut).await, "Invalid token.");
    // ...and it was not revoked by the attempts.
    assert_eq!(usertoken_bump(&app, &ut).await, StatusCode::OK);

    // A row of another dialect whose string has knox's exact shape is refused on the dialect
    // check, not merely on the format check.
    let lookalike_policy = TokenPolicy {
        issuer: tokenauth::model::Issuer::Dialect(tokenauth::model::DialectId::Usertoken),
        format: TokenFormat::PrefixedHex { prefix: String::new() },
        session_ttl: None,
        refresh: None,
        max_live_tokens: None,
        principal_kind: None,
    };
    let lookalike = app
        .tokens
        .mint(&lookalike_policy, PrincipalKind::User, "alice", MintOptions { static_token: true, ..Default::default() })
        .await
        .unwrap();
    let lookalike = lookalike.token.expose().to_owned();
    assert_hex64(&lookalike);
    assert_401(&logout(&app, &lookalike).await, "Invalid token.");
    assert_401(&logoutall(&app, &lookalike).await, "Invalid token.");

    // The other way round: a knox token on usertoken gets usertoken's 401.
    let knox = login(&app, "alice", PW).await;
    let resp = app.post("/auth/bump").bearer(&knox).send().await;
    resp.assert_json(
        StatusCode::UNAUTHORIZED,
        json!({"name": "AuthError", "title": "Authentication error", "description": "Authorization failed"}),
    );
    logout(&app, &knox).await.assert_empty(StatusCode::OK);
}

async fn non_ascii_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let invalid = "Invalid token header. Token string should not contain invalid characters.";
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        assert_401(&app.post(path).header("authorization", b"Token \xff".as_slice()).send().await, invalid);
        let mut with_tail = format!("Token {token}").into_bytes();
        with_tail.push(0xe9);
        assert_401(&app.post(path).header("authorization", with_tail).send().await, invalid);
    }
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 10. Token limit
// ---------------------------------------------------------------------------------------------

backend_tests!(
    serializable: concurrent_logins_cannot_exceed_the_limit,
    concurrent_logouts_revoke_once,
    token_limit_refuses_the_third_login,
    token_limit_ignores_expired_tokens,
    token_limit_counts_static_tokens,
    token_limit_is_per_user_and_per_dialect,
);

#[track_caller]
fn assert_limit(resp: &TestResponse) {
    resp.assert_json(StatusCode::FORBIDDEN, json!({"error": "Maximum amount of tokens allowed per user exceeded."}));
}

async fn concurrent_logins_cannot_exceed_the_limit(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.max_tokens_per_user = Some(2)).await;
    app.add_user("alice", PW).await;
    let attempts = (0..6).map(|_| post_login(&app, json!({"username": "alice", "password": PW}))).collect::<Vec<_>>();
    let responses = futures::future::join_all(attempts).await;
    let ok = responses.iter().filter(|r| r.status == StatusCode::OK).count();
    for r in responses.iter().filter(|r| r.status != StatusCode::OK) {
        assert_limit(r);
    }
    assert_eq!(ok, 2, "exactly the limit may succeed");
    assert_eq!(knox_rows(&app, "alice").await.len(), 2);
}

async fn concurrent_logouts_revoke_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let token = login(&app, "alice", PW).await;
    let attempts = (0..4).map(|_| logout(&app, &token)).collect::<Vec<_>>();
    let responses = futures::future::join_all(attempts).await;
    let ok = responses.iter().filter(|r| r.status == StatusCode::OK).count();
    // However the requests interleave, the conditional revoke lets exactly one through.
    assert_eq!(ok, 1, "exactly one logout may succeed: {responses:?}");
    for r in &responses {
        if r.status == StatusCode::OK {
            r.assert_empty(StatusCode::OK);
        } else {
            assert_401(r, "Invalid token.");
        }
    }
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn token_limit_refuses_the_third_login(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.max_tokens_per_user = Some(2)).await;
    app.add_user("alice", PW).await;
    let t1 = login(&app, "alice", PW).await;
    let _t2 = login(&app, "alice", PW).await;

    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    assert_eq!(knox_rows(&app, "alice").await.len(), 2, "a refused login wrote a row");
    // Credentials are checked before the limit.
    assert_bad_credentials(&post_login(&app, json!({"username": "alice", "password": "wrong"})).await);

    logout(&app, &t1).await.assert_empty(StatusCode::OK);
    let t3 = login(&app, "alice", PW).await;
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    assert_eq!(knox_rows(&app, "alice").await.len(), 3);
    logout(&app, &t3).await.assert_empty(StatusCode::OK);
}

async fn token_limit_ignores_expired_tokens(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.knox.max_tokens_per_user = Some(2);
        c.knox.token_ttl = Some(HOUR);
    })
    .await;
    app.add_user("alice", PW).await;
    login(&app, "alice", PW).await;
    login(&app, "alice", PW).await;
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);

    app.advance(2 * HOUR);
    let fresh = login(&app, "alice", PW).await;
    login(&app, "alice", PW).await;
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    logout(&app, &fresh).await.assert_empty(StatusCode::OK);
}

async fn token_limit_counts_static_tokens(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.max_tokens_per_user = Some(2)).await;
    app.add_user("alice", PW).await;
    let s = mint_static(&app, "alice").await;
    login(&app, "alice", PW).await;
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);

    // Never-expiring tokens keep counting however much time passes.
    app.advance(24 * 365 * HOUR);
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);

    logout(&app, &s).await.assert_empty(StatusCode::OK);
    login(&app, "alice", PW).await;
}

async fn token_limit_is_per_user_and_per_dialect(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.max_tokens_per_user = Some(2)).await;
    app.add_user("alice", PW).await;
    app.add_user("bob", PW).await;
    // usertoken tokens do not count against knox's limit.
    for _ in 0..3 {
        usertoken_login(&app, "alice", PW).await;
    }
    login(&app, "alice", PW).await;
    login(&app, "alice", PW).await;
    assert_limit(&post_login(&app, json!({"username": "alice", "password": PW})).await);
    // And alice's tokens do not count against bob's.
    login(&app, "bob", PW).await;
    login(&app, "bob", PW).await;
    assert_limit(&post_login(&app, json!({"username": "bob", "password": PW})).await);
}

// ---------------------------------------------------------------------------------------------
// 11. Sliding refresh
// ---------------------------------------------------------------------------------------------

backend_tests!(
    sliding_refresh_extends_up_to_max_lifetime,
    without_auto_refresh_the_expiry_is_fixed,
    refresh_waits_for_the_min_interval,
    refresh_without_max_lifetime_slides_freely,
    never_expiring_tokens_are_never_given_an_expiry,
);

async fn sliding_refresh_extends_up_to_max_lifetime(backend: Backend) {
    let app = TestApp::with_config(backend, sliding_config).await;
    app.add_user("alice", PW).await;
    let policy = knox_policy(&app);
    let resp = post_login(&app, json!({"username": "alice", "password": PW})).await;
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    resp.assert_json(StatusCode::OK, json!({"token": token, "expiry": rfc3339(T0 + hours(10))}));

    app.advance(5 * HOUR);
    app.tokens.authenticate(&policy, &token).await.unwrap();
    // authenticate only queues the refresh: nothing is written until the flush.
    assert_eq!(only_row(&app, "alice").await.expires_at, Some(T0 + hours(10)));
    app.flush().await;
    let row = only_row(&app, "alice").await;
    // now + ttl would be T0+15h; max_lifetime caps it at created + 12h.
    assert_eq!(row.expires_at, Some(T0 + hours(12)));
    assert_eq!(row.last_used_at, Some(T0 + hours(5)));

    app.advance(6 * HOUR); // T0+11h: past the original expiry, before the refreshed one.
    logout(&app, &token).await.assert_empty(StatusCode::OK);
}

async fn without_auto_refresh_the_expiry_is_fixed(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        sliding_config(c);
        c.knox.auto_refresh = false;
    })
    .await;
    app.add_user("alice", PW).await;
    let policy = knox_policy(&app);
    let token = login(&app, "alice", PW).await;
    let spare = login(&app, "alice", PW).await;

    app.advance(5 * HOUR);
    app.tokens.authenticate(&policy, &token).await.unwrap();
    app.flush().await;
    let rows = knox_rows(&app, "alice").await;
    assert!(rows.iter().all(|r| r.expires_at == Some(T0 + hours(10))), "{rows:?}");
    // The flush did run: the last-used time was written.
    assert!(rows.iter().any(|r| r.last_used_at == Some(T0 + hours(5))), "{rows:?}");

    app.advance(5 * HOUR - Duration::from_secs(1));
    logout(&app, &spare).await.assert_empty(StatusCode::OK);
    app.advance(Duration::from_secs(1)); // T0+10h
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn refresh_waits_for_the_min_interval(backend: Backend) {
    let app = TestApp::with_config(backend, sliding_config).await;
    app.add_user("alice", PW).await;
    let policy = knox_policy(&app);
    let token = login(&app, "alice", PW).await;

    app.advance(Duration::from_secs(30));
    app.tokens.authenticate(&policy, &token).await.unwrap();
    app.flush().await;
    let row = only_row(&app, "alice").await;
    assert_eq!(row.expires_at, Some(T0 + hours(10)), "a 30 s slide is under the 60 s minimum");
    assert_eq!(row.last_used_at, Some(T0 + time::Duration::seconds(30)), "the flush did run");

    // Exactly the minimum is still not more than it.
    app.advance(Duration::from_secs(30));
    app.tokens.authenticate(&policy, &token).await.unwrap();
    app.flush().await;
    assert_eq!(only_row(&app, "alice").await.expires_at, Some(T0 + hours(10)));

    // Past the minimum, it slides.
    app.advance(Duration::from_secs(30));
    app.tokens.authenticate(&policy, &token).await.unwrap();
    app.flush().await;
    assert_eq!(only_row(&app, "alice").await.expires_at, Some(T0 + hours(10) + time::Duration::seconds(90)));
}

async fn refresh_without_max_lifetime_slides_freely(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        sliding_config(c);
        c.knox.max_lifetime = None;
    })
    .await;
    app.add_user("alice", PW).await;
    let policy = knox_policy(&app);
    let token = login(&app, "alice", PW).await;

    // Used every 9 hours, it outlives any fixed lifetime.
    for step in 1..=4 {
        app.advance(9 * HOUR);
        app.tokens.authenticate(&policy, &token).await.unwrap();
        app.flush().await;
        assert_eq!(only_row(&app, "alice").await.expires_at, Some(T0 + hours(9 * step + 10)));
    }
    // Unused for the whole ttl, it lapses.
    app.advance(10 * HOUR);
    assert_401(&logout(&app, &token).await, "Invalid token.");
}

async fn never_expiring_tokens_are_never_given_an_expiry(backend: Backend) {
    let app = TestApp::with_config(backend.clone(), sliding_config).await;
    app.add_user("alice", PW).await;
    let policy = knox_policy(&app);
    let s = mint_static(&app, "alice").await;

    for _ in 0..3 {
        app.advance(5 * HOUR);
        app.tokens.authenticate(&policy, &s).await.unwrap();
        app.flush().await;
        let row = only_row(&app, "alice").await;
        assert_eq!(row.expires_at, None, "{row:?}");
        assert_eq!(row.last_used_at, Some(app.tokens.now()), "the flush did run");
    }
    // Well past any max_lifetime, it still works.
    app.advance(1000 * HOUR);
    logout(&app, &s).await.assert_empty(StatusCode::OK);

    // With the default config (no ttl, no refresh) a session token stays without expiry too.
    let plain = TestApp::spawn(backend).await;
    plain.add_user("bob", PW).await;
    let token = login(&plain, "bob", PW).await;
    plain.advance(1000 * HOUR);
    plain.tokens.authenticate(&knox_policy(&plain), &token).await.unwrap();
    plain.flush().await;
    assert_eq!(only_row(&plain, "bob").await.expires_at, None);
    logout(&plain, &token).await.assert_empty(StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 12-13. Routing outside the handlers, and exact paths
// ---------------------------------------------------------------------------------------------

backend_tests!(
    wrong_method_is_405_in_knox_shape,
    oversized_body_is_413_in_knox_shape,
    prefix_moves_every_route,
    disabled_dialect_serves_nothing,
    paths_are_matched_exactly,
);

async fn wrong_method_is_405_in_knox_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (method, path) in [("GET", "/auth/login/"), ("GET", "/auth/logout/"), ("DELETE", "/auth/logoutall/")] {
        let resp = app.request(method.parse().unwrap(), path).send().await;
        resp.assert_json(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "detail": format!("Method \"{method}\" not allowed.") }),
        );
        let allow = resp.header("allow").unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        assert!(allow.split(',').any(|m| m.trim() == "POST"), "{method} {path}: Allow: {allow}");
    }
}

async fn oversized_body_is_413_in_knox_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    assert_eq!(app.config.http.body_limit, 64 * 1024);
    let body = serde_json::to_vec(&json!({"username": "alice", "password": "x".repeat(70 * 1024)})).unwrap();
    assert!(body.len() > app.config.http.body_limit);
    let too_large = json!({"detail": "Request body is too large."});

    // Streamed without a length (found while reading)...
    app.post("/auth/login/")
        .body(body.clone(), "application/json")
        .send()
        .await
        .assert_json(StatusCode::PAYLOAD_TOO_LARGE, too_large.clone());
    // ...and announced by Content-Length (refused before reading).
    app.post("/auth/login/")
        .body(body.clone(), "application/json")
        .header("content-length", body.len().to_string())
        .send()
        .await
        .assert_json(StatusCode::PAYLOAD_TOO_LARGE, too_large);
    assert!(knox_rows(&app, "alice").await.is_empty());

    // Just under the limit is an ordinary request (here: bad credentials).
    let fits = serde_json::to_vec(&json!({"username": "alice", "password": "x".repeat(60 * 1024)})).unwrap();
    assert_bad_credentials(&app.post("/auth/login/").body(fits, "application/json").send().await);
}

async fn prefix_moves_every_route(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.prefix = "/pm".into()).await;
    app.add_user("alice", PW).await;
    let not_found = json!({"detail": "Not found."});

    let resp = app.post("/pm/auth/login/").json(json!({"username": "alice", "password": PW})).send().await;
    assert_eq!(resp.status, StatusCode::OK, "{}", String::from_utf8_lossy(&resp.body));
    let token = resp.json()["token"].as_str().unwrap().to_owned();
    assert_hex64(&token);

    let unprefixed = app.post("/auth/login/").json(json!({"username": "alice", "password": PW})).send().await;
    assert_eq!(unprefixed.status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&unprefixed.body));
    assert_eq!(app.post("/auth/logout/").token(&token).send().await.status, StatusCode::NOT_FOUND);

    // Under its own prefix, knox answers unknown paths and methods in its shape.
    app.get("/pm/nope").send().await.assert_json(StatusCode::NOT_FOUND, not_found.clone());
    app.post("/pm/auth/login").send().await.assert_json(StatusCode::NOT_FOUND, not_found);
    app.get("/pm/auth/login/")
        .send()
        .await
        .assert_json(StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"GET\" not allowed."}));
    assert_401(&app.post("/pm/auth/logout/").send().await, "Authentication credentials were not provided.");

    app.post("/pm/auth/logout/").token(&token).send().await.assert_empty(StatusCode::OK);
    assert_401(&app.post("/pm/auth/logoutall/").token(&token).send().await, "Invalid token.");
}

async fn disabled_dialect_serves_nothing(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.enabled = false).await;
    app.add_user("alice", PW).await;
    let resp = app.post("/auth/login/").json(json!({"username": "alice", "password": PW})).send().await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&resp.body));
    for path in ["/auth/logout/", "/auth/logoutall/"] {
        assert_eq!(app.post(path).token(&"ab".repeat(32)).send().await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(knox_rows(&app, "alice").await.is_empty());
    // The other dialect is still served.
    usertoken_login(&app, "alice", PW).await;
}

async fn paths_are_matched_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW).await;
    let creds = json!({"username": "alice", "password": PW});

    // Without the slash it is usertoken's login, which wants Basic auth.
    let resp = app.post("/auth/login").json(creds.clone()).send().await;
    resp.assert_json(
        StatusCode::UNAUTHORIZED,
        json!({"name": "AuthError", "title": "Authentication error", "description": "Authorization failed"}),
    );
    assert_eq!(resp.header("www-authenticate"), Some("Basic realm=\"tokenauth\""));

    for path in ["/auth/login//", "/auth//login/", "/auth/login/x", "/Auth/login/", "/auth/LOGIN/"] {
        let resp = app.post(path).json(creds.clone()).send().await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}: {}", String::from_utf8_lossy(&resp.body));
    }

    // A knox token on usertoken's /auth/logout (no slash) is not a knox logout.
    let token = login(&app, "alice", PW).await;
    let resp = app.post("/auth/logout").token(&token).send().await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json()["name"], "AuthError");
    logout(&app, &token).await.assert_empty(StatusCode::OK);
    assert!(knox_rows(&app, "alice").await.iter().all(|r| r.revoked_at.is_some()));
}

backend_tests!(a_login_the_database_keeps_refusing_for_contention_is_a_503);

/// A login whose transaction the database kept refusing for concurrent ones (serialization
/// failures past the store's retries) is a 503 with `Retry-After` in knox's shape, never a
/// 500: the client may try again.
async fn a_login_the_database_keeps_refusing_for_contention_is_a_503(backend: Backend) {
    let (app, store) = crate::counting_store::CountingStore::app(backend, |_| {}).await;
    app.add_user("alice", PW).await;
    store.contend_inserts.store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = post_login(&app, json!({"username": "alice", "password": PW})).await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", resp.json());
    assert_eq!(resp.header("retry-after"), Some("5"));
    assert!(resp.json()["detail"].is_string(), "knox's error shape: {:?}", resp.json());
    store.contend_inserts.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(post_login(&app, json!({"username": "alice", "password": PW})).await.status, StatusCode::OK);
}
