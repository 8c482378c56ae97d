//! Login throttling (issue 7): failed logins counted per address and per account in the
//! database; past a limit every dialect answers 429 with `Retry-After` in its own shape,
//! before any password is hashed. Parallel guesses cannot slip past the limit, two replicas
//! share the counts, lockouts grow, a success takes its attempt back, counters expire.
//! And the timing guard's mechanism: an unknown name and a wrong password do the same work
//! (one password verification, the same store writes) in every dialect; `bench/timing.sh`
//! measures the medians.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokenauth::app;
use tokenauth::model::PrincipalKind;
use tokenauth::model::ThrottleScope;
use tokenauth::token::NewProfile;
use tokenauth::token::clock::SystemClock;

use crate::counting_store::CountingStore;
use crate::helpers::{Backend, TestApp, TestDb, TestResponse, test_config};
use crate::process::{admin, ok};

backend_tests!(
    every_dialect_answers_429_in_its_own_shape_without_hashing,
    parallel_guesses_do_not_slip_past_the_limit,
    many_correct_logins_at_once_are_never_locked_out,
    two_replicas_share_the_counts,
    an_attacker_at_one_address_does_not_lock_the_owner_out,
    the_account_limit_holds_across_addresses,
    lockouts_grow_and_counters_expire,
    a_successful_login_takes_its_attempt_back,
    operators_list_and_clear_counters,
    the_throttle_commands_list_and_clear,
    unknown_names_and_wrong_passwords_do_the_same_work,
    an_interrupted_login_gives_its_attempt_back,
);

const PW: &str = "correct horse";

fn from(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, 50000))
}

const ATTACKER: [u8; 4] = [192, 0, 2, 66];
const OWNER: [u8; 4] = [198, 51, 100, 7];

#[derive(Debug, Clone, Copy)]
enum Dialect {
    Usertoken,
    Knox,
    Webitel,
    DialerUser,
    DialerReseller,
}

const DIALECTS: [Dialect; 5] =
    [Dialect::Usertoken, Dialect::Knox, Dialect::Webitel, Dialect::DialerUser, Dialect::DialerReseller];

/// One login attempt in `dialect`'s request shape.
async fn attempt(app: &TestApp, dialect: Dialect, name: &str, pw: &str, peer: [u8; 4]) -> TestResponse {
    let req = match dialect {
        Dialect::Usertoken => app.post("/auth/login").basic(name, pw),
        Dialect::Knox => app.post("/auth/login/").json(json!({"username": name, "password": pw})),
        Dialect::Webitel => app.post("/login").json(json!({"username": name, "password": pw})),
        Dialect::DialerUser => app.post("/session.json").json(json!({"login": name, "password": pw})),
        Dialect::DialerReseller => app.post("/v1/resellers/login.json").json(json!({"name": name, "pass": pw})),
    };
    req.peer(from(peer)).send().await
}

/// The status a refused (not throttled) attempt gets in each dialect.
fn refused_status(dialect: Dialect, unknown: bool) -> StatusCode {
    match dialect {
        Dialect::Knox => StatusCode::BAD_REQUEST,
        Dialect::Webitel if unknown => StatusCode::NOT_FOUND,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The exact 429 body of each dialect for a wait of `secs`.
fn throttled_body(dialect: Dialect, secs: u64) -> Value {
    match dialect {
        Dialect::Usertoken => json!({
            "name": "TooManyRequestsError",
            "title": "Too many requests",
            "description": format!("Too many login attempts; try again in {secs} seconds"),
        }),
        Dialect::Knox => json!({"detail": format!("Request was throttled. Expected available in {secs} seconds.")}),
        Dialect::Webitel => {
            json!({"status": "error", "info": format!("Too many login attempts, try again in {secs} seconds")})
        }
        Dialect::DialerUser | Dialect::DialerReseller => {
            json!({"error": format!("Too many login attempts, try again in {secs} seconds")})
        }
    }
}

#[track_caller]
fn assert_throttled(resp: &TestResponse, dialect: Dialect, secs: u64) {
    resp.assert_json(StatusCode::TOO_MANY_REQUESTS, throttled_body(dialect, secs));
    assert_eq!(resp.header("retry-after"), Some(secs.to_string().as_str()), "{dialect:?}");
}

async fn add(app: &TestApp, kind: PrincipalKind, name: &str) {
    app.tokens.create_principal(kind, name, PW.to_owned().into(), &NewProfile::default()).await.unwrap();
}

async fn every_dialect_answers_429_in_its_own_shape_without_hashing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add(&app, PrincipalKind::User, "alice@example.com").await;
    add(&app, PrincipalKind::Reseller, "acme").await;
    for (i, dialect) in DIALECTS.into_iter().enumerate() {
        // Each dialect from its own address, half the guesses on an unknown name: a 429
        // must not tell which accounts exist.
        let ip = [203, 0, 113, u8::try_from(i).unwrap() + 1];
        let known = if let Dialect::DialerReseller = dialect { "acme" } else { "alice@example.com" };
        for n in 0..10 {
            let (name, unknown) = if n % 2 == 0 { (known, false) } else { ("nobody@example.com", true) };
            let resp = attempt(&app, dialect, name, "wrong", ip).await;
            assert_eq!(resp.status, refused_status(dialect, unknown), "{dialect:?} attempt {n}");
        }
        let hashed = app.tokens.password_verifications();
        for (name, pw) in [(known, "wrong"), ("nobody@example.com", "wrong"), (known, PW)] {
            assert_throttled(&attempt(&app, dialect, name, pw, ip).await, dialect, 60);
        }
        assert_eq!(app.tokens.password_verifications(), hashed, "{dialect:?}: a 429 hashed a password");
        // The right password from another address still works.
        let ok = attempt(&app, dialect, known, PW, OWNER).await;
        assert_eq!(ok.status, StatusCode::OK, "{dialect:?}: {}", String::from_utf8_lossy(&ok.body));
    }
}

async fn parallel_guesses_do_not_slip_past_the_limit(backend: Backend) {
    let app = Arc::new(TestApp::with_config(backend, |c| c.database.max_connections = 10).await);
    add(&app, PrincipalKind::User, "alice").await;
    let hashed = app.tokens.password_verifications();
    let guesses = (0..40).map(|i| {
        let app = Arc::clone(&app);
        let name = if i % 2 == 0 { "alice" } else { "nobody" };
        tokio::spawn(async move { attempt(&app, Dialect::Knox, name, "wrong", ATTACKER).await.status })
    });
    let statuses = futures::future::join_all(guesses).await;
    let refused = statuses.iter().filter(|s| matches!(s.as_ref().unwrap(), &StatusCode::BAD_REQUEST)).count();
    let throttled = statuses.iter().filter(|s| matches!(s.as_ref().unwrap(), &StatusCode::TOO_MANY_REQUESTS)).count();
    assert_eq!((refused, throttled), (10, 30), "{statuses:?}");
    assert_eq!(app.tokens.password_verifications() - hashed, 10, "exactly the admitted guesses were hashed");
    // The ten were wrong: the next attempt, even with the password, starts the lockout.
    assert_throttled(&attempt(&app, Dialect::Knox, "alice", PW, ATTACKER).await, Dialect::Knox, 60);
}

/// An office or a backend behind one address: its correct logins at once hold places while
/// they are checked, so some may be asked to retry in a second, but none of that is a
/// failure, and nothing locks the address out.
async fn many_correct_logins_at_once_are_never_locked_out(backend: Backend) {
    // A slow hash, so that the logins overlap.
    let app = Arc::new(
        TestApp::with_config(backend, |c| {
            c.throttle.ip.max_failures = 3;
            c.passwords.iterations = 50;
        })
        .await,
    );
    add(&app, PrincipalKind::User, "alice").await;
    let logins = (0..12).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { attempt(&app, Dialect::Usertoken, "alice", PW, ATTACKER).await })
    });
    let (mut succeeded, mut busy) = (0, 0);
    for resp in futures::future::join_all(logins).await {
        let resp = resp.unwrap();
        match resp.status {
            StatusCode::OK => succeeded += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_throttled(&resp, Dialect::Usertoken, 1);
                busy += 1;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&resp.body)),
        }
    }
    assert!(succeeded >= 3 && busy >= 1, "{succeeded} succeeded, {busy} asked to retry: the logins overlapped");
    // No lockout, no failure, no place left taken: the next login goes straight through.
    assert_eq!(attempt(&app, Dialect::Usertoken, "alice", PW, ATTACKER).await.status, StatusCode::OK);
    let now = tokenauth::token::clock::Clock::now(&*app.clock);
    for c in app.store.list_throttle(now).await.unwrap() {
        assert_eq!((c.failures, c.in_flight, c.strikes, c.locked_until), (0, 0, 0, None), "{c:?}");
    }
}

async fn two_replicas_share_the_counts(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    add(&a, PrincipalKind::User, "alice").await;
    // B: a second store pool, service and router over the same database, as another replica.
    let b = a.replica().await;
    for n in 0..10 {
        let replica = if n % 2 == 0 { &a } else { &b };
        assert_eq!(
            attempt(replica, Dialect::Usertoken, "alice", "wrong", ATTACKER).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(&attempt(&a, Dialect::Usertoken, "alice", "wrong", ATTACKER).await, Dialect::Usertoken, 60);
    assert_throttled(&attempt(&b, Dialect::Webitel, "alice", PW, ATTACKER).await, Dialect::Webitel, 60);
}

async fn an_attacker_at_one_address_does_not_lock_the_owner_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add(&app, PrincipalKind::User, "alice").await;
    let mut throttled = 0;
    for _ in 0..200 {
        let resp = attempt(&app, Dialect::Knox, "alice", "guess", ATTACKER).await;
        throttled += usize::from(resp.status == StatusCode::TOO_MANY_REQUESTS);
        app.advance(Duration::from_secs(1));
    }
    assert!(throttled > 150, "the attacker was mostly refused: {throttled} of 200");
    let ok = attempt(&app, Dialect::Knox, "alice", PW, OWNER).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", String::from_utf8_lossy(&ok.body));
    // Through the IPv6 /64 too: one host's addresses count together.
    for n in 0..10u16 {
        let peer: SocketAddr = format!("[2001:db8:1:2::{n}]:5000").parse().unwrap();
        let resp = app.post("/auth/login/").json(json!({"username": "bob", "password": "x"})).peer(peer).send().await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    }
    let peer: SocketAddr = "[2001:db8:1:2:ffff::1]:5000".parse().unwrap();
    let resp = app.post("/auth/login/").json(json!({"username": "bob", "password": "x"})).peer(peer).send().await;
    assert_throttled(&resp, Dialect::Knox, 60);
}

async fn the_account_limit_holds_across_addresses(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.throttle.account.max_failures = 5).await;
    add(&app, PrincipalKind::User, "alice").await;
    for n in 0..5 {
        let resp = attempt(&app, Dialect::Usertoken, "alice", "wrong", [10, 0, 0, n + 1]).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    }
    // A sixth address: the account is at its limit, whoever asks (even with the password).
    assert_throttled(&attempt(&app, Dialect::Usertoken, "alice", PW, [10, 0, 0, 99]).await, Dialect::Usertoken, 300);
    // Other accounts are not affected.
    add(&app, PrincipalKind::User, "bob").await;
    assert_eq!(attempt(&app, Dialect::Usertoken, "bob", PW, [10, 0, 0, 99]).await.status, StatusCode::OK);
    // Nor is the reseller of the same name: kinds count apart.
    add(&app, PrincipalKind::Reseller, "alice").await;
    assert_eq!(attempt(&app, Dialect::DialerReseller, "alice", PW, [10, 0, 0, 98]).await.status, StatusCode::OK);
}

async fn lockouts_grow_and_counters_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add(&app, PrincipalKind::User, "alice").await;
    let mut waits = Vec::new();
    for _ in 0..3 {
        loop {
            let resp = attempt(&app, Dialect::Webitel, "alice", "wrong", ATTACKER).await;
            if resp.status == StatusCode::TOO_MANY_REQUESTS {
                let secs: u64 = resp.header("retry-after").unwrap().parse().unwrap();
                waits.push(secs);
                // Still locked just before the end...
                app.advance(Duration::from_secs(secs - 1));
                let early = attempt(&app, Dialect::Webitel, "alice", PW, ATTACKER).await;
                assert_throttled(&early, Dialect::Webitel, 1);
                app.advance(Duration::from_secs(1));
                break;
            }
            assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(waits, [60, 120, 240]);
    // ...and open at the end, with the right password.
    assert_eq!(attempt(&app, Dialect::Webitel, "alice", PW, ATTACKER).await.status, StatusCode::OK);
    assert!(!app.tokens.throttle_counters().await.unwrap().is_empty());
    // After forget_after (1 h past the window and lockout) the counters are gone, and the
    // sweep deletes them.
    app.advance(Duration::from_secs(2 * 3600));
    assert!(app.tokens.throttle_counters().await.unwrap().is_empty(), "expired counters are not listed");
    app.tokens.sweep().await.unwrap();
    let left = app.store.list_throttle(tokenauth::token::clock::Clock::now(&*app.clock) - time::Duration::days(365));
    assert!(left.await.unwrap().is_empty(), "the sweep deleted the expired counters");
    for _ in 0..10 {
        assert_eq!(attempt(&app, Dialect::Webitel, "alice", "wrong", ATTACKER).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&attempt(&app, Dialect::Webitel, "alice", "wrong", ATTACKER).await, Dialect::Webitel, 60);
}

async fn a_successful_login_takes_its_attempt_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add(&app, PrincipalKind::User, "alice").await;
    // An office behind one address: many successes never lock it.
    for _ in 0..30 {
        assert_eq!(attempt(&app, Dialect::DialerUser, "alice", PW, ATTACKER).await.status, StatusCode::OK);
    }
    for _ in 0..9 {
        assert_eq!(
            attempt(&app, Dialect::DialerUser, "alice", "wrong", ATTACKER).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(attempt(&app, Dialect::DialerUser, "alice", PW, ATTACKER).await.status, StatusCode::OK);
    // Nine failures counted, the success not: one more failure is allowed, then the lockout.
    assert_eq!(attempt(&app, Dialect::DialerUser, "alice", "wrong", ATTACKER).await.status, StatusCode::UNAUTHORIZED);
    assert_throttled(&attempt(&app, Dialect::DialerUser, "alice", PW, ATTACKER).await, Dialect::DialerUser, 60);
}

async fn operators_list_and_clear_counters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add(&app, PrincipalKind::User, "alice").await;
    for _ in 0..11 {
        attempt(&app, Dialect::Knox, "alice", "wrong", ATTACKER).await;
    }
    let counters = app.tokens.throttle_counters().await.unwrap();
    let listed: Vec<_> = counters
        .iter()
        .map(|c| (c.scope, c.subject.as_str(), app.tokens.throttle().failures(c, app.tokens.now()), c.strikes))
        .collect();
    assert_eq!(listed, [(ThrottleScope::Account, "user:alice", 10, 0), (ThrottleScope::Ip, "192.0.2.66", 10, 1)]);
    assert!(app.tokens.clear_throttle(ThrottleScope::Ip, "192.0.2.66").await.unwrap());
    assert!(!app.tokens.clear_throttle(ThrottleScope::Ip, "192.0.2.66").await.unwrap());
    assert_eq!(attempt(&app, Dialect::Knox, "alice", PW, ATTACKER).await.status, StatusCode::OK);
}

async fn the_throttle_commands_list_and_clear(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    // Failures made by a server process over the same database (here, in-process).
    let config = test_config(&db.url);
    let store = app::open_store(&config).await.unwrap();
    let tokens = app::token_service(&config, store, Arc::new(SystemClock)).await.unwrap();
    let attacker = std::net::IpAddr::from(ATTACKER);
    for _ in 0..11 {
        let _ = tokens.check_password(PrincipalKind::User, "alice", "wrong".to_owned().into(), attacker).await;
    }
    let listed: Value = serde_json::from_str(&ok(&admin(&db, &["throttle", "list", "--json"], None).await)).unwrap();
    let rows: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["scope"].clone(), c["subject"].clone(), c["failures"].clone(), c["lockouts"].clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (json!("account"), json!("user:alice"), json!(10), json!(0)),
            (json!("ip"), json!("192.0.2.66"), json!(10), json!(1)),
        ]
    );
    assert!(listed[0]["locked_until"].is_null() && listed[1]["locked_until"].is_string(), "{listed}");
    let table = ok(&admin(&db, &["throttle", "list"], None).await);
    assert!(table.starts_with("SCOPE") && table.contains("192.0.2.66") && table.contains("user:alice"), "{table}");

    let cleared = ok(&admin(&db, &["throttle", "clear", "--ip", "192.0.2.66"], None).await);
    assert_eq!(cleared, "cleared the throttle counter of 192.0.2.66\n");
    assert_eq!(
        ok(&admin(&db, &["throttle", "clear", "--user", "alice"], None).await),
        "cleared the throttle counter of user:alice\n"
    );
    assert_eq!(
        ok(&admin(&db, &["throttle", "clear", "--reseller", "alice"], None).await),
        "no throttle counter for reseller:alice\n"
    );
    assert_eq!(ok(&admin(&db, &["throttle", "list", "--json"], None).await), "[]\n");
    // The lockout is over: the right password works from the attacker's address again.
    tokens.check_password(PrincipalKind::User, "alice", "pw".to_owned().into(), attacker).await.unwrap();
    // Exactly one subject.
    for args in [&["throttle", "clear"][..], &["throttle", "clear", "--user", "a", "--ip", "192.0.2.1"]] {
        let out = admin(&db, args, None).await;
        assert_eq!(out.status.code(), Some(2), "{args:?} is a usage error");
    }
    tokens.flush_touches().await.unwrap();
}

async fn unknown_names_and_wrong_passwords_do_the_same_work(backend: Backend) {
    let (app, counter) = CountingStore::app(backend, |c| c.throttle.ip.max_failures = 1000).await;
    add(&app, PrincipalKind::User, "alice@example.com").await;
    add(&app, PrincipalKind::Reseller, "acme").await;
    for dialect in DIALECTS {
        let known = if let Dialect::DialerReseller = dialect { "acme" } else { "alice@example.com" };
        let mut work = Vec::new();
        for (name, unknown) in [(known, false), ("nobody@example.com", true), (known, false), ("nobody2", true)] {
            let (verified, writes) = (app.tokens.password_verifications(), counter.writes());
            let resp = attempt(&app, dialect, name, "wrong", ATTACKER).await;
            assert_eq!(resp.status, refused_status(dialect, unknown), "{dialect:?} {name}");
            work.push((app.tokens.password_verifications() - verified, counter.writes() - writes));
        }
        // One verification each (the unknown name's against the dummy hash made with the
        // configured parameters: src/token/password.rs tests that), and the same writes
        // (the throttle counters of the address and the name: a place taken, then turned
        // into a failure).
        assert_eq!(work, [(1, 2); 4], "{dialect:?}: (verifications, store writes) per attempt");
    }
}

async fn an_interrupted_login_gives_its_attempt_back(backend: Backend) {
    // A slow hash, so the login is still hashing when its caller gives up.
    let app = TestApp::with_config(backend, |c| c.passwords.iterations = 200).await;
    add(&app, PrincipalKind::User, "alice").await;
    let attacker = std::net::IpAddr::from(ATTACKER);
    for _ in 0..8 {
        let login = app.tokens.check_password(PrincipalKind::User, "alice", PW.to_owned().into(), attacker);
        let outcome = tokio::time::timeout(Duration::from_millis(20), login).await;
        assert!(outcome.is_err(), "the login was not interrupted: {outcome:?}");
    }
    // (failures, places in flight) over the address's and the account's counters. The test
    // clock stands still, so a place can only go by being given back, not by being forgotten.
    let held = || async {
        let (throttle, now) = (app.tokens.throttle(), app.tokens.now());
        let counters = app.tokens.throttle_counters().await.unwrap();
        assert_eq!(counters.len(), 2, "{counters:?}");
        let failures = counters.iter().map(|c| throttle.failures(c, now)).sum::<u64>();
        (failures, counters.iter().map(|c| throttle.in_flight(c, now)).sum::<u32>())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while held().await != (0, 0) {
        assert!(std::time::Instant::now() < deadline, "interrupted attempts stayed held: {:?}", held().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // All eight given back: ten wrong guesses are allowed again before the lockout.
    for _ in 0..10 {
        let wrong = app.tokens.check_password(PrincipalKind::User, "alice", "wrong".to_owned().into(), attacker).await;
        assert!(matches!(wrong, Err(tokenauth::error::Error::BadCredentials(_))), "{wrong:?}");
    }
}
