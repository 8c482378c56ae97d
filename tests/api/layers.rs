//! The serving layers: health, request ids, timeouts and overload as 503s in the dialect's
//! shape, client IP resolution, CORS, mounting, and logs that never carry a secret.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{Backend, TestApp};

/// A tracing writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Capture every event, at every level, emitted on this thread until the guard drops.
    fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        (captured.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

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
    assert!(app.tokens.list(tokenauth::principal::PrincipalKind::User, "alice").await.unwrap().is_empty());
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
    let (first, second, third) = tokio::join!(knox(), knox(), usertoken());
    assert_eq!(first.status, StatusCode::OK);
    second.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.header("retry-after"), Some("1"));
    assert_eq!(third.json()["name"], "ServiceUnavailableError");
    // Once the hash is done, logins work again.
    assert_eq!(knox().await.status, StatusCode::OK);
}

#[tokio::test]
async fn logs_carry_the_client_ip_and_never_a_secret() {
    let app = TestApp::with_config(Backend::Sqlite, |c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    app.add_user("alice", "correct horse battery staple").await;
    let (captured, _guard) = Captured::install();
    let password = "correct horse battery staple";
    let mut secrets = vec![password.to_owned()];

    let resp = app.post("/auth/login").basic("alice", password).send().await;
    let ut = resp.json()["token"].as_str().unwrap().to_owned();
    secrets.push(ut.clone());
    assert_eq!(app.post("/auth/bump").bearer(&ut).send().await.status, StatusCode::OK);
    assert_eq!(app.post("/auth/logout").bearer(&ut).send().await.status, StatusCode::OK);
    let resp = app.post("/auth/login/").json(json!({"username": "alice", "password": password})).send().await;
    let kt = resp.json()["token"].as_str().unwrap().to_owned();
    secrets.push(kt.clone());
    assert_eq!(app.post("/auth/login/").json(json!({"username": "alice", "password": "wrong-guess-xyz"})).send().await.status, StatusCode::BAD_REQUEST);
    secrets.push("wrong-guess-xyz".into());
    assert_eq!(app.post("/auth/logout/").token(&kt).send().await.status, StatusCode::OK);
    assert_eq!(app.post("/auth/logout/").token(&kt).send().await.status, StatusCode::UNAUTHORIZED);
    let _ = app.get(&format!("/anything?token={kt}&access_token={ut}&page=2")).send().await;

    // Client IP: a trusted proxy's X-Forwarded-For is believed; anyone else's is not.
    let proxy: SocketAddr = "10.1.2.3:5555".parse().unwrap();
    let stranger: SocketAddr = "192.0.2.77:5555".parse().unwrap();
    let _ = app.get("/healthz").peer(proxy).header("x-forwarded-for", "203.0.113.9").send().await;
    let _ = app.get("/healthz").peer(stranger).header("x-forwarded-for", "203.0.113.10").send().await;

    let logs = captured.text();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs: {secret}\n{logs}");
    }
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"));
    assert!(!logs.contains(&basic), "Basic credentials reached the logs");
    // The logs are not empty: they do carry the requests, the redaction and the client IPs.
    assert!(logs.contains("path=/auth/login"), "{logs}");
    assert!(logs.contains("token=REDACTED&access_token=REDACTED&page=2"), "{logs}");
    assert!(logs.contains("client_ip=203.0.113.9"), "{logs}");
    assert!(logs.contains("client_ip=192.0.2.77"), "{logs}");
    assert!(!logs.contains("203.0.113.10"), "an untrusted peer's X-Forwarded-For was believed");
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

    let on = TestApp::with_config(Backend::Sqlite, |c| c.cors.allowed_origins = vec!["https://app.example.com".into()]).await;
    let resp = preflight(&on, "https://app.example.com").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert!(resp.header("access-control-allow-methods").unwrap().contains("POST"));
    let resp = preflight(&on, "https://evil.example.net").await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
}
