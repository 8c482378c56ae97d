//! `/verify`, the forward-auth endpoint, on both backends: every transport and dialect, each
//! 401 reason, the ACL rules' 403, and that it never writes to the database.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokenauth::app;
use tokenauth::config::AclRule;
use tokenauth::model::Attributes;
use tokenauth::model::DialectId;
use tokenauth::model::PrincipalKind;
use tokenauth::token::{MintOptions, NewProfile, parse_acl};
use tower::ServiceExt as _;

use crate::helpers::{Backend, T0, TestApp, TestResponse, rfc3339};

const USER: PrincipalKind = PrincipalKind::User;
const DAY: Duration = Duration::from_secs(24 * 3600);

backend_tests!(
    every_dialect_and_transport_verifies,
    static_and_reseller_tokens_verify,
    tokens_of_disabled_dialects_are_refused,
    each_refusal_has_its_reason,
    any_method_is_accepted,
    acl_rules_forbid_what_the_role_lacks,
    acl_rules_fail_closed_without_the_original_uri,
    verify_never_writes_to_the_database,
);

/// alice (role `agent`: cdr r) and a reseller `acme`.
async fn setup(app: &TestApp) {
    app.tokens.create_role("agent", 0, &parse_acl(r#"{"cdr": ["r"], "book": ["*"]}"#).unwrap()).await.unwrap();
    let profile = NewProfile { role: Some("agent".into()), ..NewProfile::default() };
    app.tokens.create_principal(USER, "alice", "pw".to_owned().into(), &profile).await.unwrap();
    let reseller = NewProfile { attributes: Attributes::default(), ..NewProfile::default() };
    app.tokens.create_principal(PrincipalKind::Reseller, "acme", "rpw".to_owned().into(), &reseller).await.unwrap();
}

/// One session token per dialect for alice: (dialect, token, key for webitel).
async fn session_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let creds = json!({"username": "alice", "password": "pw"});
    let ut = app.post("/auth/login").basic("alice", "pw").send().await.json()["token"].as_str().unwrap().to_owned();
    let knox = app.post("/auth/login/").json(&creds).send().await.json()["token"].as_str().unwrap().to_owned();
    let webitel = app.post("/login").json(&creds).send().await.json()["token"].as_str().unwrap().to_owned();
    let dialer = app.post("/session.json").json(json!({"login": "alice", "password": "pw"})).send().await;
    let dialer = dialer.json()["token"].as_str().unwrap().to_owned();
    vec![("usertoken", ut), ("knox", knox), ("webitel", webitel), ("dialer", dialer)]
}

fn token_id(app_rows: &[tokenauth::model::Token], dialect: &str) -> String {
    app_rows.iter().find(|r| r.issuer.as_str() == dialect).unwrap().id.to_string()
}

#[track_caller]
fn assert_granted(resp: &TestResponse, user: &str, kind: &str, dialect: &str, token_id: &str) {
    assert_eq!(resp.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("x-auth-user"), Some(user));
    assert_eq!(resp.header("x-auth-kind"), Some(kind));
    assert_eq!(resp.header("x-auth-dialect"), Some(dialect));
    assert_eq!(resp.header("x-auth-token-id"), Some(token_id));
    assert!(resp.header("x-auth-user-id").unwrap().parse::<i64>().is_ok());
    assert_eq!(resp.header("x-auth-reason"), None);
    let body = resp.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["user"], user);
    assert_eq!(body["token_id"], token_id);
    assert_eq!(body["user_id"].to_string(), resp.header("x-auth-user-id").unwrap());
}

#[track_caller]
fn assert_refused(resp: &TestResponse, reason: &str) {
    resp.assert_json(StatusCode::UNAUTHORIZED, json!({"status": "unauthorized", "reason": reason}));
    assert_eq!(resp.header("x-auth-reason"), Some(reason));
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm=\"tokenauth\""), "{challenge}");
    assert_eq!(challenge.contains("invalid_token"), reason != "missing", "{challenge}");
    for name in ["x-auth-user", "x-auth-user-id", "x-auth-kind", "x-auth-token-id"] {
        assert_eq!(resp.header(name), None, "{name} on a refusal");
    }
}

async fn every_dialect_and_transport_verifies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let tokens = session_tokens(&app).await;
    let rows = app.tokens.list(USER, "alice").await.unwrap();
    for (dialect, token) in &tokens {
        let id = token_id(&rows, dialect);
        let expires = rows.iter().find(|r| r.issuer.as_str() == *dialect).unwrap().expires_at;
        let transports = [
            app.get("/verify").bearer(token).send().await,
            app.get("/verify").token(token).send().await,
            app.get("/verify").header("authorization", format!("TOKEN {token}")).send().await,
            app.get("/verify").header("x-access-token", token).send().await,
            app.get("/verify").header("x-access-token", token).header("x-key", &id).send().await,
            app.get("/verify").header("x-original-uri", format!("/app/page?a=1&token={token}")).send().await,
            app.get("/verify").header("x-forwarded-uri", format!("/app?access_token={token}&x_key={id}")).send().await,
            app.get(&format!("/verify?token={token}")).send().await,
        ];
        for resp in &transports {
            assert_granted(resp, "alice", "user", dialect, &id);
            assert_eq!(resp.header("x-auth-role"), Some("agent"));
            assert_eq!(resp.header("x-auth-expires"), expires.map(rfc3339).as_deref(), "{dialect}");
            assert_eq!(resp.json()["role"], "agent");
            assert_eq!(resp.json()["kind"], "user");
        }
        // An X-Key naming another token is refused, as webitel's logout refuses it; so is one
        // that is no UUID. The same key in upper case is the same UUID, as at webitel's logout.
        let other = uuid::Uuid::new_v4().to_string();
        let resp = app.get("/verify").header("x-access-token", token).header("x-key", other).send().await;
        assert_refused(&resp, "unknown");
        let resp = app.get("/verify").header("x-access-token", token).header("x-key", "not-a-key").send().await;
        assert_refused(&resp, "unknown");
        let upper = app.get("/verify").header("x-access-token", token).header("x-key", id.to_uppercase()).send().await;
        assert_granted(&upper, "alice", "user", dialect, &id);
    }
    // usertoken and knox have no expiry by default; the JWT dialects expire a day later.
    let expiring: Vec<_> = rows.iter().filter(|r| r.expires_at.is_some()).map(|r| r.issuer.as_str()).collect();
    assert_eq!(expiring.len(), 2, "{expiring:?}");
    assert!(rows.iter().filter(|r| r.expires_at.is_some()).all(|r| r.expires_at == Some(T0 + DAY)));
}

async fn tokens_of_disabled_dialects_are_refused(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.enabled = false).await;
    setup(&app).await;
    let policies = app.policies();
    let options = MintOptions { static_token: true, ..MintOptions::default() };
    let knox = app.tokens.mint(policies.get(DialectId::Knox), USER, "alice", options.clone()).await.unwrap();
    let ut = app.tokens.mint(policies.get(DialectId::Usertoken), USER, "alice", options).await.unwrap();
    // knox is off: its (static, never-expiring) tokens no longer open anything.
    assert_refused(&app.get("/verify").token(knox.token.expose()).send().await, "malformed");
    assert_eq!(app.get("/verify").bearer(ut.token.expose()).send().await.status, StatusCode::OK);
}

async fn static_and_reseller_tokens_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let options = MintOptions { static_token: true, ..MintOptions::default() };
    let policies = app.policies();
    for dialect in ["usertoken", "knox", "webitel", "dialer"] {
        let policy = policies.get(dialect.parse().unwrap());
        let issued = app.tokens.mint(policy, USER, "alice", options.clone()).await.unwrap();
        let resp = app.get("/verify").bearer(issued.token.expose()).send().await;
        assert_granted(&resp, "alice", "user", dialect, &issued.record.id.to_string());
        assert_eq!(resp.header("x-auth-expires"), None, "a static token has no expiry");
        assert_eq!(resp.json()["expires"], Value::Null);
    }
    let reseller = app.post("/v1/resellers/login.json").json(json!({"name": "acme", "pass": "rpw"})).send().await;
    let token = reseller.json()["token"].as_str().unwrap().to_owned();
    let id = app.tokens.list(PrincipalKind::Reseller, "acme").await.unwrap()[0].id.to_string();
    let resp = app.get("/verify").bearer(&token).send().await;
    assert_granted(&resp, "acme", "reseller", "dialer", &id);
    assert_eq!(resp.header("x-auth-role"), None, "a reseller has no role");
    assert_eq!(resp.json()["role"], Value::Null);
    assert_eq!(resp.header("x-auth-expires"), Some(rfc3339(T0 + DAY).as_str()));
}

async fn each_refusal_has_its_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let tokens = session_tokens(&app).await;
    let (_, knox) = &tokens[1];
    let (_, webitel) = &tokens[2];

    assert_refused(&app.get("/verify").send().await, "missing");
    assert_refused(&app.get("/verify").header("authorization", "Basic dTpw").send().await, "missing");
    assert_refused(&app.get("/verify").bearer("garbage").send().await, "malformed");
    assert_refused(&app.get("/verify").header("authorization", "Bearer").send().await, "malformed");
    assert_refused(&app.get("/verify").header("authorization", "Bearer a b").send().await, "malformed");
    // A JWT with its signature changed, and one signed with a key we do not know.
    let (head, sig) = webitel.rsplit_once('.').unwrap();
    let flipped = format!("{head}.{}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    assert_refused(&app.get("/verify").bearer(&flipped).send().await, "malformed");
    // Well-formed tokens of each random format that were never issued.
    assert_refused(&app.get("/verify").bearer(&uuid::Uuid::new_v4().to_string()).send().await, "unknown");
    assert_refused(&app.get("/verify").token(&"ab".repeat(32)).send().await, "unknown");

    // Revoked.
    app.post("/auth/logout/").token(knox).send().await;
    assert_refused(&app.get("/verify").token(knox).send().await, "revoked");
    // Disabled: the token, then the user.
    let rows = app.tokens.list(USER, "alice").await.unwrap();
    let ut_id = rows.iter().find(|r| r.issuer.as_str() == "usertoken").unwrap().id;
    app.tokens.set_token_enabled(ut_id, false).await.unwrap();
    assert_refused(&app.get("/verify").bearer(&tokens[0].1).send().await, "disabled");
    app.tokens.set_token_enabled(ut_id, true).await.unwrap();
    app.tokens.set_principal_enabled(USER, "alice", false).await.unwrap();
    assert_refused(&app.get("/verify").bearer(&tokens[0].1).send().await, "disabled");
    app.tokens.set_principal_enabled(USER, "alice", true).await.unwrap();
    assert_eq!(app.get("/verify").bearer(&tokens[0].1).send().await.status, StatusCode::OK);
    // Expired: a day later the JWTs have expired; the never-expiring usertoken has not.
    app.advance(DAY);
    assert_refused(&app.get("/verify").bearer(webitel).send().await, "expired");
    assert_refused(&app.get("/verify").bearer(&tokens[3].1).send().await, "expired");
    assert_eq!(app.get("/verify").bearer(&tokens[0].1).send().await.status, StatusCode::OK);
}

async fn any_method_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let (_, token) = session_tokens(&app).await.remove(0);
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let resp = app.request(method.clone(), "/verify").bearer(&token).send().await;
        assert_eq!(resp.status, StatusCode::OK, "{method}");
        assert_eq!(resp.header("x-auth-user"), Some("alice"), "{method}");
    }
    let head = app.request(Method::HEAD, "/verify").bearer(&token).send().await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("x-auth-user"), Some("alice"));
    let head = app.request(Method::HEAD, "/verify").send().await;
    assert_eq!(head.status, StatusCode::UNAUTHORIZED);
    assert_eq!(head.header("x-auth-reason"), Some("missing"));
    // Envoy's ext_authz calls /verify/<original path>, with the original query.
    let resp = app.request(Method::PUT, "/verify/app/page").bearer(&token).send().await;
    assert_eq!(resp.header("x-auth-user"), Some("alice"));
    let resp = app.get(&format!("/verify/app/page?x=1&token={token}")).send().await;
    assert_eq!(resp.header("x-auth-user"), Some("alice"));
    assert_eq!(app.get("/verify/app/page").send().await.header("x-auth-reason"), Some("missing"));
    assert_eq!(app.get("/verify/").bearer(&token).send().await.header("x-auth-user"), Some("alice"));
}

fn rules() -> Vec<AclRule> {
    let rule = |prefix: &str, methods: &[&str], resource: &str, permission: &str| AclRule {
        prefix: prefix.into(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        resource: resource.into(),
        permission: permission.into(),
    };
    vec![
        rule("/api/cdr", &["GET", "HEAD"], "cdr", "r"),
        rule("/api/cdr", &["POST", "PUT", "DELETE"], "cdr", "w"),
        rule("/api/book", &[], "book", "d"),
        rule("/api/admin", &[], "acl/roles", "r"),
    ]
}

async fn acl_rules_forbid_what_the_role_lacks(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.verify.acl = rules()).await;
    setup(&app).await;
    app.tokens.create_principal(USER, "norole", "pw".to_owned().into(), &NewProfile::default()).await.unwrap();
    let (_, token) = session_tokens(&app).await.remove(1);
    let norole = app.post("/auth/login/").json(json!({"username": "norole", "password": "pw"})).send().await;
    let norole = norole.json()["token"].as_str().unwrap().to_owned();
    let ask = |token: String, method: &'static str, uri: &'static str| {
        app.get("/verify").token(&token).header("x-original-method", method).header("x-original-uri", uri).send()
    };
    let forbidden = |resp: TestResponse| {
        resp.assert_json(StatusCode::FORBIDDEN, json!({"status": "forbidden", "reason": "forbidden"}));
        assert_eq!(resp.header("x-auth-reason"), Some("forbidden"));
        assert_eq!(resp.header("x-auth-user"), None);
    };
    // alice's role has cdr: r and book: *.
    assert_eq!(ask(token.clone(), "GET", "/api/cdr/42?x=1").await.status, StatusCode::OK);
    assert_eq!(ask(token.clone(), "HEAD", "/api/cdr").await.status, StatusCode::OK);
    forbidden(ask(token.clone(), "POST", "/api/cdr/42").await);
    forbidden(ask(token.clone(), "delete", "/api/cdr").await);
    assert_eq!(ask(token.clone(), "DELETE", "/api/book/7").await.status, StatusCode::OK, "* grants every permission");
    forbidden(ask(token.clone(), "GET", "/api/admin/roles").await);
    // Outside every rule: any valid token passes. Prefixes match whole segments.
    assert_eq!(ask(token.clone(), "POST", "/public/page").await.status, StatusCode::OK);
    assert_eq!(ask(token.clone(), "POST", "/api/cdrx").await.status, StatusCode::OK);
    // Encoded paths are matched decoded; dot segments, encoded separators and path
    // parameters are refused outright (applications resolve them differently, most not at
    // all), in either direction.
    forbidden(ask(token.clone(), "POST", "/api/%63dr/1").await);
    forbidden(ask(token.clone(), "POST", "/public/../api/cdr").await);
    forbidden(ask(token.clone(), "POST", "//api//cdr").await);
    forbidden(ask(token.clone(), "GET", "/api/admin/1%2F..%2F..%2F..%2Fpublic").await);
    forbidden(ask(token.clone(), "GET", "/api/admin/%2e%2e/%2e%2e/public").await);
    forbidden(ask(token.clone(), "GET", "/api/admin/../../public").await);
    forbidden(ask(token.clone(), "GET", "/api/admin;x/1").await);
    // A method no rule of a protected prefix names is refused, invented ones too; HEAD is GET.
    forbidden(ask(token.clone(), "PATCH", "/api/cdr/1").await);
    forbidden(ask(token.clone(), "GETX", "/api/cdr/1").await);
    assert_eq!(ask(token.clone(), "HEAD", "/api/cdr/1").await.status, StatusCode::OK);
    // Traefik's headers work the same.
    let resp = app
        .get("/verify")
        .token(&token)
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-uri", "/api/cdr/1")
        .send()
        .await;
    forbidden(resp);
    // Two headers naming the request differently: neither is believed (a client behind
    // Traefik could add its own X-Original-URI), so the rules refuse.
    let resp = app
        .get("/verify")
        .token(&token)
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-uri", "/api/cdr/1")
        .header("x-original-uri", "/public")
        .send()
        .await;
    forbidden(resp);
    let resp = app
        .get("/verify")
        .token(&token)
        .header("x-original-uri", "/api/cdr/1")
        .header("x-original-method", "GET")
        .header("x-forwarded-method", "POST")
        .send()
        .await;
    forbidden(resp);
    // Envoy: the original path after /verify, the original method as the request's own.
    assert_eq!(app.get("/verify/api/cdr/42").token(&token).send().await.status, StatusCode::OK);
    forbidden(app.post("/verify/api/cdr/42").token(&token).send().await);
    forbidden(app.post("/verify/api/%63dr").token(&token).send().await);
    assert_eq!(app.post("/verify/public/page").token(&token).send().await.status, StatusCode::OK);
    // A user without a role holds no permission under a rule, and passes outside them.
    forbidden(ask(norole.clone(), "GET", "/api/cdr").await);
    assert_eq!(ask(norole.clone(), "GET", "/public").await.status, StatusCode::OK);
    // An invalid token is still a 401 (not a 403) under a rule.
    let resp = app.get("/verify").token("nope").header("x-original-uri", "/api/cdr").send().await;
    assert_refused(&resp, "malformed");
}

async fn acl_rules_fail_closed_without_the_original_uri(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.verify.acl = rules()).await;
    setup(&app).await;
    let (_, token) = session_tokens(&app).await.remove(0);
    let resp = app.get("/verify").bearer(&token).send().await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    assert_eq!(resp.header("x-auth-reason"), Some("forbidden"));
    // Without rules, the same request passes.
    let open = TestApp::spawn(Backend::Sqlite).await;
    setup(&open).await;
    let (_, token) = session_tokens(&open).await.remove(0);
    assert_eq!(open.get("/verify").bearer(&token).send().await.status, StatusCode::OK);
}

/// The database URL of `db_url` opened read-only: SQLite's `mode=ro`, or a Postgres session
/// whose transactions are all read-only.
fn read_only(db_url: &str) -> String {
    if db_url.starts_with("sqlite:") {
        format!("{db_url}?mode=ro")
    } else {
        let sep = if db_url.contains('?') { '&' } else { '?' };
        format!("{db_url}{sep}options=-c%20default_transaction_read_only%3Don")
    }
}

async fn verify_never_writes_to_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let tokens = session_tokens(&app).await;
    app.flush().await;

    // A second server over the same database, read-only: every write it tried would fail.
    let url = read_only(app.config.database_url.expose());
    let mut config = app.config.clone();
    config.database_url = tokenauth::config::DatabaseUrl::new(&url);
    let store = tokenauth::store::connect(&config.database_url, &config.database).await.unwrap();
    let service = app::token_service(&config, Arc::clone(&store), app.clock.clone()).await.unwrap();
    let router = app::router(app::state(config, Arc::clone(&service))).unwrap();
    let verify = |token: String| {
        let router = router.clone();
        async move {
            let mut req = Request::builder().uri("/verify").header("authorization", format!("Bearer {token}"));
            req = req.method(Method::GET);
            let mut req = req.body(Body::empty()).unwrap();
            req.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 1))));
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let user = resp.headers().get("x-auth-user").map(|v| v.to_str().unwrap().to_owned());
            let _ = resp.into_body().collect().await.unwrap();
            (status, user)
        }
    };
    for round in 0..3 {
        for (dialect, token) in &tokens {
            assert_eq!(verify(token.clone()).await, (StatusCode::OK, Some("alice".to_owned())), "{dialect} #{round}");
        }
        app.advance(Duration::from_secs(120));
    }
    // The control: the last-used times it queued (off the request path) cannot be written
    // through this connection, so nothing above wrote either.
    assert!(service.flush_touches().await.is_err(), "the read-only store accepted a write");
    let rows = app.tokens.list(USER, "alice").await.unwrap();
    assert!(rows.iter().all(|r| r.last_used_at.is_none()), "no last-used time was written: {rows:?}");
    store.close().await;
}
