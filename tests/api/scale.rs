//! Fast at scale, in process, on both backends: the token-check cache (hits, bounds, every
//! invalidation), checks that never write (counted), and the bounded hashing pool's 503 in
//! every dialect's shape. (Cross-replica revocation is in `replicas`, over real processes.)

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokenauth::metrics::CacheStats;
use tokenauth::model::PrincipalKind;
use tokenauth::token::{NewProfile, parse_acl};

use crate::counting_store::CountingStore;
use crate::helpers::{Backend, TestApp, TestResponse};

const USER: PrincipalKind = PrincipalKind::User;

backend_tests!(
    checks_are_served_from_the_cache_and_never_write,
    the_cache_trusts_an_entry_for_max_staleness_at_most,
    every_validity_change_invalidates_at_once,
    a_cached_token_still_expires_on_time,
    a_full_hashing_queue_is_a_503_in_every_dialect,
);

/// One session token per dialect for `alice` / `pw` (and the reseller `acme` / `rpw`).
async fn tokens(app: &TestApp) -> Vec<String> {
    let creds = json!({"username": "alice", "password": "pw"});
    let pick = |r: TestResponse| {
        assert_eq!(r.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&r.body));
        r.json()["token"].as_str().unwrap().to_owned()
    };
    vec![
        pick(app.post("/auth/login").basic("alice", "pw").send().await),
        pick(app.post("/auth/login/").json(&creds).send().await),
        pick(app.post("/login").json(&creds).send().await),
        pick(app.post("/session.json").json(json!({"login": "alice", "password": "pw"})).send().await),
        pick(app.post("/v1/resellers/login.json").json(json!({"name": "acme", "pass": "rpw"})).send().await),
    ]
}

async fn setup(app: &TestApp) {
    app.tokens.create_role("agent", 0, &parse_acl(r#"{"cdr": ["r"]}"#).unwrap()).await.unwrap();
    app.tokens.create_role("boss", 1, &parse_acl(r#"{"cdr": ["*"]}"#).unwrap()).await.unwrap();
    let profile = NewProfile { role: Some("agent".into()), ..NewProfile::default() };
    app.tokens.create_principal(USER, "alice", "pw".to_owned().into(), &profile).await.unwrap();
    let reseller = NewProfile::default();
    app.tokens.create_principal(PrincipalKind::Reseller, "acme", "rpw".to_owned().into(), &reseller).await.unwrap();
}

async fn verify(app: &TestApp, token: &str) -> TestResponse {
    app.get("/verify").bearer(token).send().await
}

async fn checks_are_served_from_the_cache_and_never_write(backend: Backend) {
    let (app, counter) = CountingStore::app(backend, |_| {}).await;
    setup(&app).await;
    let tokens = tokens(&app).await;
    let CacheStats { hits: hits_before, misses: misses_before, .. } = app.tokens.cache().stats();
    let writes = counter.writes();
    assert!(writes > 0, "the logins wrote: the counter counts");

    for round in 0..3 {
        for token in &tokens {
            assert_eq!(verify(&app, token).await.status, StatusCode::OK, "round {round}");
        }
        // Minutes pass: last-used times fall due, but they are only queued.
        app.advance(Duration::from_secs(120));
    }
    assert_eq!(counter.writes(), writes, "no token check wrote to the store");
    let CacheStats { hits, misses, entries } = app.tokens.cache().stats();
    assert_eq!(misses - misses_before, 5, "each token was read once");
    assert_eq!(hits - hits_before, 10, "and then served from the cache");
    assert!(entries <= 5);
    // The control: the queued last-used times are written by the flush, in one batch.
    app.flush().await;
    assert_eq!(counter.writes(), writes + 1, "one batched write, off the request path");
    let rows = app.tokens.list(USER, "alice").await.unwrap();
    assert!(rows.iter().all(|r| r.last_used_at.is_some()), "{rows:?}");
    // Two minutes after the last touch, a check queues one more (flushed in one batch)...
    for token in &tokens {
        assert_eq!(verify(&app, token).await.status, StatusCode::OK);
    }
    app.flush().await;
    assert_eq!(counter.writes(), writes + 2);
    // ...but within the minute, checks served from the cache (whose rows still carry the
    // old last-used time) queue nothing: a touch is due at most once a minute per token.
    app.advance(Duration::from_secs(30));
    for token in &tokens {
        assert_eq!(verify(&app, token).await.status, StatusCode::OK);
    }
    app.flush().await;
    assert_eq!(counter.writes(), writes + 2, "no touch within the minute");
}

async fn the_cache_trusts_an_entry_for_max_staleness_at_most(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.cache.max_staleness = Duration::from_millis(600)).await;
    setup(&app).await;
    let token = tokens(&app).await.remove(1);
    assert_eq!(verify(&app, &token).await.status, StatusCode::OK);
    // Revoked behind the service's back (another process whose notice never arrives): the
    // cached check is trusted, but only for max_staleness.
    let id =
        app.tokens.list(USER, "alice").await.unwrap().into_iter().find(|r| r.issuer.as_str() == "knox").unwrap().id;
    assert!(app.store.revoke_token(id, app.tokens.now()).await.unwrap());
    assert_eq!(verify(&app, &token).await.status, StatusCode::OK, "served from the cache");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let resp = verify(&app, &token).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.header("x-auth-reason"), Some("revoked"));
    // And with the cache off every check reads the row.
    let off = TestApp::with_config(Backend::Sqlite, |c| c.cache.capacity = 0).await;
    setup(&off).await;
    let token = tokens(&off).await.remove(1);
    assert_eq!(verify(&off, &token).await.status, StatusCode::OK);
    let id =
        off.tokens.list(USER, "alice").await.unwrap().into_iter().find(|r| r.issuer.as_str() == "knox").unwrap().id;
    off.store.revoke_token(id, off.tokens.now()).await.unwrap();
    assert_eq!(verify(&off, &token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(off.tokens.cache().stats(), CacheStats::default());
}

async fn every_validity_change_invalidates_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let warm = |tokens: Vec<String>| async {
        for t in &tokens {
            assert_eq!(verify(&app, t).await.status, StatusCode::OK);
            let hits = app.tokens.cache().stats().hits;
            assert_eq!(verify(&app, t).await.status, StatusCode::OK);
            assert_eq!(app.tokens.cache().stats().hits, hits + 1, "the second check came from the cache");
        }
        tokens
    };
    let refused = |resp: TestResponse, reason: &str| {
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert_eq!(resp.header("x-auth-reason"), Some(reason));
    };
    let id_of = |dialect: &'static str| {
        let tokens = Arc::clone(&app.tokens);
        async move {
            let rows = tokens.list(USER, "alice").await.unwrap();
            rows.into_iter().find(|r| r.issuer.as_str() == dialect && r.revoked_at.is_none()).unwrap().id
        }
    };

    // Logout (usertoken), knox logoutall, webitel logout, dialer logout.
    let t = warm(tokens(&app).await).await;
    assert_eq!(app.post("/auth/logout").bearer(&t[0]).send().await.status, StatusCode::OK);
    refused(verify(&app, &t[0]).await, "revoked");
    assert_eq!(app.post("/auth/logoutall/").token(&t[1]).send().await.status, StatusCode::OK);
    refused(verify(&app, &t[1]).await, "revoked");
    let key = id_of("webitel").await.to_string();
    let resp = app.post("/logout").header("x-access-token", &t[2]).header("x-key", &key).send().await;
    assert_eq!(resp.status, StatusCode::OK);
    refused(verify(&app, &t[2]).await, "revoked");
    assert_eq!(
        app.request(axum::http::Method::DELETE, "/session.json").bearer(&t[3]).send().await.status,
        StatusCode::OK
    );
    refused(verify(&app, &t[3]).await, "revoked");

    // Administrators: revoke by id, disable a token.
    let t = warm(tokens(&app).await).await;
    app.tokens.revoke_by_id(id_of("knox").await).await.unwrap();
    refused(verify(&app, &t[1]).await, "revoked");
    app.tokens.set_token_enabled(id_of("usertoken").await, false).await.unwrap();
    refused(verify(&app, &t[0]).await, "disabled");

    // The principal: a role change shows at once, disabling refuses every token, a new
    // password revokes them, removal deletes them.
    assert_eq!(verify(&app, &t[2]).await.header("x-auth-role"), Some("agent"));
    app.tokens.set_principal_role(USER, "alice", Some("boss")).await.unwrap();
    assert_eq!(verify(&app, &t[2]).await.header("x-auth-role"), Some("boss"));
    app.tokens.set_principal_enabled(USER, "alice", false).await.unwrap();
    refused(verify(&app, &t[2]).await, "disabled");
    refused(verify(&app, &t[3]).await, "disabled");
    app.tokens.set_principal_enabled(USER, "alice", true).await.unwrap();
    assert_eq!(verify(&app, &t[2]).await.status, StatusCode::OK);
    app.tokens.set_password(USER, "alice", "pw2".to_owned().into()).await.unwrap();
    refused(verify(&app, &t[2]).await, "revoked");
    refused(verify(&app, &t[3]).await, "revoked");
    // The reseller's token was not touched by any of that.
    assert_eq!(verify(&app, &t[4]).await.status, StatusCode::OK);
    app.tokens.set_password(USER, "alice", "pw".to_owned().into()).await.unwrap();
    let t = warm(tokens(&app).await).await;
    app.tokens.remove_principal(USER, "alice").await.unwrap();
    refused(verify(&app, &t[0]).await, "unknown");
    app.tokens.remove_principal(PrincipalKind::Reseller, "acme").await.unwrap();
    refused(verify(&app, &t[4]).await, "unknown");
}

async fn a_cached_token_still_expires_on_time(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.cache.max_staleness = Duration::from_secs(3600)).await;
    setup(&app).await;
    let webitel = tokens(&app).await.remove(2);
    assert_eq!(verify(&app, &webitel).await.status, StatusCode::OK);
    app.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(verify(&app, &webitel).await.status, StatusCode::OK, "cached, one second to go");
    app.advance(Duration::from_secs(1));
    let resp = verify(&app, &webitel).await;
    assert_eq!(resp.header("x-auth-reason"), Some("expired"), "a hit is checked like a row");
}

async fn a_full_hashing_queue_is_a_503_in_every_dialect(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.passwords.memory_kib = 64 * 1024;
        c.passwords.iterations = 16;
        c.passwords.workers = 1;
        c.passwords.queue = 0;
    })
    .await;
    app.tokens.create_principal(USER, "alice", "pw".to_owned().into(), &NewProfile::default()).await.unwrap();
    let reseller = NewProfile::default();
    app.tokens.create_principal(PrincipalKind::Reseller, "acme", "rpw".to_owned().into(), &reseller).await.unwrap();
    let cached_token = app.post("/auth/login/").json(json!({"username": "alice", "password": "pw"})).send().await;
    let cached_token = cached_token.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(verify(&app, &cached_token).await.status, StatusCode::OK);

    // Hold the only hashing slot with a slow login, running in the background.
    let busy = {
        let router = app.router.clone();
        tokio::spawn(async move {
            use tower::ServiceExt as _;
            let body = serde_json::to_vec(&json!({"username": "alice", "password": "pw"})).unwrap();
            let mut req = axum::http::Request::post("/auth/login/")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 1))));
            router.oneshot(req).await.unwrap().status()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.tokens.metrics().hashing.running.get() == 0 {
        assert!(std::time::Instant::now() < deadline, "the slow login never started hashing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let creds = json!({"username": "alice", "password": "pw"});
    let knox = app.post("/auth/login/").json(&creds).send().await;
    let usertoken = app.post("/auth/login").basic("alice", "pw").send().await;
    let webitel = app.post("/login").json(&creds).send().await;
    let dialer = app.post("/session.json").json(json!({"login": "alice", "password": "pw"})).send().await;
    let reseller = app.post("/v1/resellers/login.json").json(json!({"name": "acme", "pass": "rpw"})).send().await;
    // A token check meanwhile is not held up by the pool.
    assert_eq!(verify(&app, &cached_token).await.status, StatusCode::OK);
    let refused_within = started.elapsed();
    assert!(app.tokens.metrics().hashing.running.get() == 1, "the slow login was still hashing throughout");

    knox.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    usertoken.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"name": "ServiceUnavailableError", "title": "Service unavailable",
               "description": "The service is busy or unavailable; try again later"}),
    );
    webitel.assert_json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "error", "info": "Service unavailable, try again later"}),
    );
    dialer.assert_json(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "Service unavailable, try again later"}));
    reseller.assert_json(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "Service unavailable, try again later"}));
    for resp in [&knox, &usertoken, &webitel, &dialer, &reseller] {
        assert_eq!(resp.header("retry-after"), Some("1"));
    }
    assert!(refused_within < Duration::from_secs(2), "refused at once, not queued: {refused_within:?}");
    assert_eq!(busy.await.unwrap(), StatusCode::OK, "the login holding the slot finished normally");
    assert_eq!(app.post("/auth/login/").json(&creds).send().await.status, StatusCode::OK);
}
