//! `/metrics`: Prometheus figures for requests, logins, token checks, the hashing pool and the
//! database pool, on the main listener or on `metrics_bind` alone.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use tokenauth::server::Server;
use tokenauth::token::clock::SystemClock;

use crate::helpers::{Backend, TestApp, TestDb, test_config};

backend_tests!(requests_logins_and_checks_are_counted, metrics_bind_serves_metrics_alone);

/// The README's metrics table lists exactly what `/metrics` serves, each with its type.
#[tokio::test]
async fn the_readme_lists_every_metric_with_its_type() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // why: a family appears once it has a member (a request, a login, a check).
    app.add_user("alice", "pw").await;
    let login = app.post("/auth/login/").json(json!({"username": "alice", "password": "pw"})).send().await;
    let token = login.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/verify").token(&token).send().await.status, StatusCode::OK);
    let text = scrape(&app).await;
    let served: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme.split("\n### Metrics\n").nth(1).expect("a ### Metrics section").split("\n#").next().unwrap();
    let documented: std::collections::BTreeMap<String, String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let (name, rest) = l.split_once('`').unwrap();
            let kind = rest.split('|').nth(1).unwrap().trim().to_owned();
            // OpenMetrics names a counter's family without its `_total`.
            let family = if kind == "counter" { name.trim_end_matches("_total") } else { name };
            (family.to_owned(), kind)
        })
        .collect();
    let linux_only = |name: &str| name.starts_with("process_");
    for (name, kind) in &served {
        assert_eq!(documented.get(name), Some(kind), "{name} ({kind}) is served but not documented so");
    }
    for (name, kind) in &documented {
        if !served.contains_key(name) && linux_only(name) && !cfg!(target_os = "linux") {
            continue;
        }
        assert_eq!(served.get(name), Some(kind), "{name} ({kind}) is documented but not served");
    }
}

/// The value of the sample line `name{labels}` (labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let resp = app.get("/metrics").send().await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    let text = String::from_utf8(resp.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

async fn requests_logins_and_checks_are_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let ok = app.post("/auth/login/").json(json!({"username": "alice", "password": "pw"})).send().await;
    let token = ok.json()["token"].as_str().unwrap().to_owned();
    app.post("/auth/login/").json(json!({"username": "alice", "password": "wrong"})).send().await;
    app.post("/auth/login/").json(json!({"username": "nobody", "password": "pw"})).send().await;
    app.post("/session.json").json(json!({"login": "alice", "password": "pw"})).send().await;
    assert_eq!(app.get("/verify").token(&token).send().await.status, StatusCode::OK);
    assert_eq!(app.get("/verify").token(&"ab".repeat(32)).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/verify").bearer("garbage").send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/verify").send().await.status, StatusCode::UNAUTHORIZED);
    app.get("/no/such/path").send().await;
    for invented in ["BREW", "PROPFIND", "X-RANDOM-1"] {
        let method = axum::http::Method::from_bytes(invented.as_bytes()).unwrap();
        app.request(method, "/verify").token(&token).send().await;
    }

    let text = scrape(&app).await;
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(value(r#"tokenauth_logins_total{dialect="knox",outcome="success"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_logins_total{dialect="knox",outcome="wrong_password"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_logins_total{dialect="knox",outcome="unknown_principal"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_logins_total{dialect="dialer",outcome="success"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_token_checks_total{outcome="ok"}"#), 4.0);
    assert_eq!(value(r#"tokenauth_token_checks_total{outcome="unknown"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_token_checks_total{outcome="malformed"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_token_checks_total{outcome="missing"}"#), 1.0, "no token at /verify");
    // Requests by matched route template and status; an unknown path is one bounded label.
    assert_eq!(value(r#"tokenauth_http_requests_total{method="POST",route="/auth/login/",status="200"}"#), 1.0);
    assert_eq!(value(r#"tokenauth_http_requests_total{method="POST",route="/auth/login/",status="400"}"#), 2.0);
    assert_eq!(value(r#"tokenauth_http_requests_total{method="GET",route="/verify",status="401"}"#), 3.0);
    assert_eq!(value(r#"tokenauth_http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0);
    assert!(!text.contains("/no/such/path"), "raw paths never become labels");
    assert_eq!(value(r#"tokenauth_http_requests_total{method="other",route="/verify",status="200"}"#), 3.0);
    assert!(!text.contains("BREW") && !text.contains("PROPFIND"), "invented methods never become labels");
    assert_eq!(value(r#"tokenauth_http_request_duration_seconds_count{method="GET",route="/verify"}"#), 4.0);
    assert!(
        text.contains(
            r#"tokenauth_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/auth/login/"} 3"#
        ) || text.contains(
            r#"tokenauth_http_request_duration_seconds_bucket{method="POST",route="/auth/login/",le="+Inf"} 3"#
        ),
        "{text}"
    );
    // The hashing pool: four logins (and the user's creation) waited for a worker; none refused.
    assert!(value("tokenauth_password_hash_queue_wait_seconds_count") >= 4.0);
    assert_eq!(value("tokenauth_password_hashes_rejected_total"), 0.0);
    assert_eq!(value("tokenauth_password_hashes_running"), 0.0);
    assert_eq!(value("tokenauth_password_hashes_waiting"), 0.0);
    // The database pool, sampled at scrape.
    assert_eq!(value("tokenauth_db_pool_max_connections"), f64::from(app.config.database.max_connections));
    assert!(value(r#"tokenauth_db_pool_connections{state="idle"}"#) >= 0.0);
    assert!(value(r#"tokenauth_db_pool_connections{state="in_use"}"#) >= 0.0);
    // The token cache's lookups are counters (a second scrape never adds the same lookups
    // twice): the checks above were misses, then hits; one more hit adds exactly one.
    assert!(text.contains("# TYPE tokenauth_token_cache_lookups counter"), "{text}");
    let hits = value(r#"tokenauth_token_cache_lookups_total{result="hit"}"#);
    let misses = value(r#"tokenauth_token_cache_lookups_total{result="miss"}"#);
    assert!(hits + misses >= 4.0, "hits {hits}, misses {misses}");
    assert_eq!(app.get("/verify").token(&token).send().await.status, StatusCode::OK);
    let again = scrape(&app).await;
    let hits_after = sample(&again, r#"tokenauth_token_cache_lookups_total{result="hit"}"#).unwrap();
    assert_eq!(hits_after, hits + 1.0, "one more cached check, one more hit");
    assert_eq!(sample(&again, r#"tokenauth_token_cache_lookups_total{result="miss"}"#), Some(misses));
    // The build, and the process's standard figures (on Linux, read from /proc).
    let build = format!(
        r#"tokenauth_build_info{{version="{}",commit="{}"}}"#,
        env!("CARGO_PKG_VERSION"),
        tokenauth::model::build::COMMIT
    );
    assert_eq!(value(&build), 1.0);
    if cfg!(target_os = "linux") {
        assert!(value("process_resident_memory_bytes") > 1_000_000.0, "a process of more than 1 MB");
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") > 0.0);
        let started = value("process_start_time_seconds");
        let now = crate::cli::now_millis() as f64 / 1000.0;
        assert!(started <= now + 1.0 && started > now - 24.0 * 3600.0, "started {started}, now {now}");
    }
    // No secret ever reaches the exposition.
    assert!(!text.contains(&token) && !text.contains("alice"), "{text}");
}

async fn metrics_bind_serves_metrics_alone(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = test_config(&db.url);
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let server = Server::bind_with(config, Arc::clone(&store), Arc::new(SystemClock)).await.unwrap();
    let main = server.local_addr().unwrap();
    let metrics = server.metrics_addr().unwrap().unwrap();
    assert_ne!(main, metrics);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let resp = http.get(format!("http://{main}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Not on the main listener...
    let resp = http.get(format!("http://{main}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // ...but on its own, and it counted the main listener's requests.
    let resp = http.get(format!("http://{metrics}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(
        sample(&text, r#"tokenauth_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        Some(1.0)
    );
    // Only /metrics lives there.
    let resp = http.get(format!("http://{metrics}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
