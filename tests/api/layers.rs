//! The serving layers: health, request ids, timeouts and overload as 503s in the dialect's
//! shape, CORS, mounting. (What the logs carry is tested on the real binary's stderr, in e2e.)

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp};

/// argon2 parameters slow enough (hundreds of ms) to hold a hash in flight.
fn slow_hashing(c: &mut tokenauth::config::Config) {
    c.passwords.memory_kib = 64 * 1024;
    c.passwords.iterations = 8;
}

backend_tests!(health_and_readiness, unknown_paths_at_the_root, dialects_can_share_and_nest_prefixes);

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/healthz").send().await.assert_json(StatusCode::OK, json!({"status": "ok"}));
    app.get("/readyz").send().await.assert_json(StatusCode::OK, json!({"status": "ready"}));
    app.store.close().await;
    app.get("/readyz").send().await.assert_json(StatusCode::SERVICE_UNAVAILABLE, json!({"status": "unavailable"}));
    app.get("/healthz").send().await.assert_json(StatusCode::OK, json!({"status": "ok"}));
    // A token check during the outage is a 503 in the dialect's shape, not a 500 or a hang.
    let resp = app.post("/auth/logout/").token(&"a".repeat(64)).send().await;
    resp.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    assert_eq!(resp.header("retry-after"), Some("5"));
}

async fn unknown_paths_at_the_root(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.enabled = false).await;
    app.get("/nope").send().await.assert_json(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    let resp = app.post("/auth/login/").json(json!({"username": "a", "password": "b"})).send().await;
    resp.assert_json(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    assert_eq!(app.post("/auth/login").send().await.status, StatusCode::UNAUTHORIZED, "usertoken still on");
}

async fn dialects_can_share_and_nest_prefixes(backend: Backend) {
    // knox nested under /auth while usertoken's /auth/login sits at the root: no clash, no panic.
    let app = TestApp::with_config(backend, |c| c.knox.prefix = "/auth".into()).await;
    app.add_user("alice", "pw").await;
    assert_eq!(app.post("/auth/login").basic("alice", "pw").send().await.status, StatusCode::OK);
    let knox = app.post("/auth/auth/login/").json(json!({"username": "alice", "password": "pw"})).send().await;
    assert_eq!(knox.status, StatusCode::OK);
    assert_eq!(app.get("/auth/nope").send().await.json(), json!({"detail": "Not found."}));
}

#[tokio::test]
async fn request_ids_are_set_kept_or_replaced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app.get("/healthz").send().await;
    let generated = resp.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let resp = app.get("/healthz").header("x-request-id", "edge-42.abc_DEF").send().await;
    assert_eq!(resp.header("x-request-id"), Some("edge-42.abc_DEF"));
    for bad in ["has space", "quote\"d", &"x".repeat(65), "semi;colon"] {
        let resp = app.get("/healthz").header("x-request-id", bad).send().await;
        let id = resp.header("x-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{bad:?} was kept as {id:?}");
    }
}

#[tokio::test]
async fn a_slow_request_times_out_as_503_in_the_dialect_shape() {
    let app = TestApp::with_config(Backend::Sqlite, |c| {
        slow_hashing(c);
        c.http.request_timeout = Duration::from_millis(50);
        c.database.acquire_timeout = Duration::from_millis(40);
    })
    .await;
    app.add_user("alice", "pw").await;
    let resp = app.post("/auth/login/").json(json!({"username": "alice", "password": "pw"})).send().await;
    resp.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    assert_eq!(resp.header("retry-after"), Some("5"));
    let resp = app.post("/auth/login").basic("alice", "pw").send().await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.json()["name"], "ServiceUnavailableError");
    // The abandoned logins issued nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(app.tokens.list(tokenauth::model::PrincipalKind::User, "alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_at_once() {
    let app = TestApp::with_config(Backend::Sqlite, |c| {
        slow_hashing(c);
        c.passwords.workers = 1;
        c.passwords.queue = 0;
    })
    .await;
    app.add_user("alice", "pw").await;
    let knox = || app.post("/auth/login/").json(json!({"username": "alice", "password": "pw"})).send();
    let usertoken = || app.post("/auth/login").basic("alice", "pw").send();
    let (k1, k2, u) = tokio::join!(knox(), knox(), usertoken());
    // Which login reaches the pool first depends on which user lookup returns first; the
    // invariant is that exactly one hashes and the others are refused at once, each in its
    // own dialect's shape.
    let ok = [&k1, &k2, &u].iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(ok, 1, "{:?}", [k1.status, k2.status, u.status]);
    for knox in [&k1, &k2].into_iter().filter(|r| r.status != StatusCode::OK) {
        knox.assert_json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": "Service temporarily unavailable, try again later."}),
        );
        assert_eq!(knox.header("retry-after"), Some("1"));
    }
    if u.status != StatusCode::OK {
        assert_eq!(u.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(u.header("retry-after"), Some("1"));
        assert_eq!(u.json()["name"], "ServiceUnavailableError");
    }
    // Once the hash is done, logins work again.
    assert_eq!(knox().await.status, StatusCode::OK);
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    async fn preflight(app: &TestApp, origin: &str) -> crate::helpers::TestResponse {
        app.request(axum::http::Method::OPTIONS, "/auth/login/")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
    }
    let off = TestApp::spawn(Backend::Sqlite).await;
    let resp = preflight(&off, "https://app.example.com").await;
    assert_eq!(resp.header("access-control-allow-origin"), None);

    let on = TestApp::with_config(Backend::Sqlite, |c| c.cors.allowed_origins = vec!["https://app.example.com".into()])
        .await;
    let resp = preflight(&on, "https://app.example.com").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert!(resp.header("access-control-allow-methods").unwrap().contains("POST"));
    let resp = preflight(&on, "https://evil.example.net").await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
}
