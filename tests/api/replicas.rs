//! Two real `tokenauth serve` processes over one database: a token checked (and cached) on
//! B is refused by B shortly after it is revoked on A, for logout, logoutall, user disable
//! and password change; and B's revocation listener, its connection killed, flushes what it
//! may have missed. Postgres carries the notices by LISTEN/NOTIFY (or, through PgBouncer
//! without `database.listen_url`, and with `cache.invalidation = "poll"`, by the polled
//! `cache_invalidations` table); SQLite (two processes on one file) by its invalidations
//! table, watched. With `cache.invalidation = "staleness"` nothing is heard, and a revocation
//! on A reaches B's cache only when the entry outlives `cache.max_staleness`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::{Backend, TestDb};
use crate::process::{Server, admin, client, command, ok};

backend_tests!(pgbouncer: revocations_on_a_reach_b);

#[tokio::test]
async fn revocations_reach_b_by_polling_the_table() {
    let Some(backend) = Backend::postgres() else { return };
    let db = TestDb::new(&backend).await;
    scenario(&db, &backend, &[("TOKENAUTH_CACHE__INVALIDATION", "poll")]).await;
}

#[tokio::test]
async fn with_staleness_only_b_trusts_its_cache_for_max_staleness() {
    for backend in [Some(Backend::Sqlite), Backend::postgres()].into_iter().flatten() {
        let db = TestDb::new(&backend).await;
        ok(&admin(&db, &["user", "add", "erin", "--password", "pw"], None).await);
        let mode = [("TOKENAUTH_CACHE__INVALIDATION", "staleness")];
        let a = serve(&db, "1h", &mode).await;
        let b = serve(&db, "2s", &mode).await;
        let http = client();
        let t = login(&http, &a, "erin").await;
        warm(&http, &b, &t).await;
        let resp = http.post(a.url("/auth/logout/")).header("authorization", format!("Token {t}")).send().await;
        assert_eq!(resp.unwrap().status(), StatusCode::OK);
        assert_eq!(check(&http, &a, &t).await, StatusCode::UNAUTHORIZED, "A revoked it");
        // B hears nothing: its cached entry answers until it is 2 s old, then B reads the row.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(check(&http, &b, &t).await, StatusCode::OK, "{backend:?}: B answered from its cache");
        let started = Instant::now();
        while check(&http, &b, &t).await != StatusCode::UNAUTHORIZED {
            assert!(started.elapsed() < Duration::from_secs(4), "{backend:?}: B trusted its cache past max_staleness");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The generous bound the tests allow; the benchmark reports the real lag.
const BOUND: Duration = Duration::from_secs(2);

async fn login(http: &reqwest::Client, server: &Server, user: &str) -> String {
    let resp = http.post(server.url("/auth/login/")).json(&json!({"username": user, "password": "pw"}));
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn check(http: &reqwest::Client, server: &Server, token: &str) -> StatusCode {
    let resp = http.get(server.url("/verify")).header("authorization", format!("Token {token}"));
    resp.send().await.unwrap().status()
}

/// Wait until B refuses `token`; returns how long it took.
async fn refused_by(http: &reqwest::Client, b: &Server, token: &str, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        if check(http, b, token).await == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(started.elapsed() < BOUND, "{what}: B still accepts the token after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Check on B twice (the second from its cache) and expect 200 both times.
async fn warm(http: &reqwest::Client, b: &Server, token: &str) {
    assert_eq!(check(http, b, token).await, StatusCode::OK);
    assert_eq!(check(http, b, token).await, StatusCode::OK);
}

async fn serve(db: &TestDb, staleness: &str, env: &[(&str, &str)]) -> Server {
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_CACHE__MAX_STALENESS", staleness);
    cmd.envs(env.iter().copied());
    Server::spawn(cmd).await
}

async fn revocations_on_a_reach_b(backend: Backend) {
    let db = TestDb::new(&backend).await;
    scenario(&db, &backend, &[]).await;
}

async fn scenario(db: &TestDb, backend: &Backend, env: &[(&str, &str)]) {
    for user in ["alice", "bob", "carol"] {
        ok(&admin(db, &["user", "add", user, "--password", "pw"], None).await);
    }
    // why a long staleness: a refusal within the bound then comes from the notice, not from
    // the safety net expiring the entry.
    let a = serve(db, "1h", env).await;
    let b = serve(db, "1h", env).await;
    let http = client();

    // Logout on A.
    let t = login(&http, &a, "alice").await;
    warm(&http, &b, &t).await;
    assert_eq!(
        http.post(a.url("/auth/logout/")).header("authorization", format!("Token {t}")).send().await.unwrap().status(),
        200
    );
    let lag = refused_by(&http, &b, &t, "logout").await;
    eprintln!("revocation lag (logout): {lag:?}");

    // logoutall on A: both of bob's tokens.
    let (t1, t2) = (login(&http, &a, "bob").await, login(&http, &a, "bob").await);
    warm(&http, &b, &t1).await;
    warm(&http, &b, &t2).await;
    let resp = http.post(a.url("/auth/logoutall/")).header("authorization", format!("Token {t1}")).send().await;
    assert_eq!(resp.unwrap().status(), 200);
    refused_by(&http, &b, &t1, "logoutall").await;
    refused_by(&http, &b, &t2, "logoutall").await;

    // User disable, and a password change, from the CLI (a third process).
    let t = login(&http, &a, "carol").await;
    warm(&http, &b, &t).await;
    ok(&admin(db, &["user", "disable", "carol"], None).await);
    refused_by(&http, &b, &t, "user disable").await;
    ok(&admin(db, &["user", "enable", "carol"], None).await);
    let deadline = Instant::now() + BOUND;
    while check(&http, &b, &t).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "enabling carol again did not bring her token back on B");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ok(&admin(db, &["user", "passwd", "carol", "--password", "new-pw"], None).await);
    refused_by(&http, &b, &t, "password change").await;

    // A listener connection of its own exists where LISTEN is used: directly, or through
    // PgBouncer with a direct listen_url (the other ways poll, through the pool).
    let listens =
        matches!(backend, Backend::Postgres(_) | Backend::PgBouncer { listen_url: true, .. }) && env.is_empty();
    if let (true, Some(admin_url)) = (listens, backend.admin()) {
        listener_reconnect_flushes(db, admin_url, &a, &b, &http).await;
    }
}

/// Kill B's listener connection and revoke a cached token with no notice at all (straight in
/// the database, as if the NOTIFY were lost): B must refuse it once it has reconnected,
/// because reconnecting flushes the cache (and while it is down, the cache is off).
async fn listener_reconnect_flushes(db: &TestDb, admin_url: &str, a: &Server, b: &Server, http: &reqwest::Client) {
    ok(&admin(db, &["user", "add", "dave", "--password", "pw"], None).await);
    let (quiet, lost) = (login(http, a, "dave").await, login(http, a, "dave").await);
    warm(http, b, &quiet).await;
    warm(http, b, &lost).await;
    let revoke_silently = |token: String| async move {
        let digest = tokenauth::model::PlainToken::new(token).digest();
        let mut conn = sqlx::PgConnection::connect(&db.direct_url).await.unwrap();
        let done = sqlx::query("UPDATE tokens SET revoked_at = now() WHERE digest = $1")
            .bind(digest.as_bytes().as_slice())
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    };
    // The control: a silent revocation is NOT seen by B while its listener is fine (the cache
    // answers, and max_staleness is an hour), so what follows is the reconnect's doing.
    revoke_silently(quiet.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(check(http, b, &quiet).await, StatusCode::OK, "served from B's cache");

    let name = format!("tokenauth-listener-{}", b.pid());
    let mut admin_conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    let killed: Vec<(bool,)> =
        sqlx::query_as("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&mut admin_conn)
            .await
            .unwrap();
    assert_eq!(killed, vec![(true,)], "B's listener connection ({name}) was found and killed");
    revoke_silently(lost.clone()).await;
    refused_by(http, b, &lost, "silent revocation while the listener was down").await;
    refused_by(http, b, &quiet, "silent revocation before the listener went down").await;
    // B reconnected (and counted it), and hears notices again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l.starts_with("tokenauth_invalidation_listener_reconnects_total 1")) {
            break;
        }
        assert!(Instant::now() < deadline, "B's listener did not reconnect:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = login(http, a, "dave").await;
    warm(http, b, &t).await;
    assert_eq!(
        http.post(a.url("/auth/logout/")).header("authorization", format!("Token {t}")).send().await.unwrap().status(),
        200
    );
    refused_by(http, b, &t, "logout after the reconnect").await;
}

/// `cache.invalidation = "notify"` where nothing can LISTEN (SQLite; PostgreSQL through
/// PgBouncer without `listen_url`) says so once and keeps the cache off, rather than answer
/// from a cache that hears nothing; `auto` there says it polls, and caches.
#[tokio::test]
async fn notify_where_nothing_can_listen_keeps_the_cache_off_and_says_so() {
    let db = TestDb::new(&Backend::Sqlite).await;
    ok(&admin(&db, &["user", "add", "fay", "--password", "pw"], None).await);
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_CACHE__INVALIDATION", "notify");
    let b = Server::spawn_logging(cmd, "info").await;
    let said: Vec<String> = b.logs().into_iter().filter(|l| l.contains("cannot listen here")).collect();
    assert_eq!(said.len(), 1, "one line: {:?}", b.logs());
    assert!(said[0].contains("SQLite has no LISTEN"), "{}", said[0]);
    let http = client();
    let t = login(&http, &b, "fay").await;
    warm(&http, &b, &t).await;
    let metrics = http.get(b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let hits = metrics.lines().find(|l| l.starts_with("tokenauth_token_cache_lookups_total{result=\"hit\"}"));
    assert!(hits.is_none_or(|l| l.ends_with(" 0")), "the cache stayed off: {hits:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let said_again = b.logs().iter().filter(|l| l.contains("cannot listen")).count();
    assert_eq!(said_again, 1, "no retries to log: {:?}", b.logs());
}
