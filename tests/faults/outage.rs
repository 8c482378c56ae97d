//! Database outages (Postgres only): a real server on a socket, its database reached through
//! a forwarder (see `forwarder`) that stages a stopped Postgres (`down`) and an unreachable
//! one (`blackhole`) for ~2 s each under steady load in every dialect. Every answer is a
//! success or a 503 in the dialect's own shape with a `Retry-After`, within the request
//! timeout; `/readyz` says 503 during the outage and 200 after; service is back within a
//! second of the database. Afterwards the database itself, read directly, confirms that
//! every login answered 200 has its row and every logout answered 200 revoked it.
//! Run with `--nocapture` to see the figures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokenauth::model::PlainToken;
use tokenauth::model::PrincipalKind;
use tokenauth::server::Server;
use tokenauth::token::NewProfile;
use tokenauth::token::clock::SystemClock;

use crate::Failures;
use crate::forwarder::{Forwarder, Mode};
use crate::helpers::{Backend, TestDb, init_test_log, test_config};

/// Short, so that a hang shows; the acquire timeout is below it, as the config requires.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// What a request may take beyond the request timeout (scheduling on a busy machine).
const MARGIN: Duration = Duration::from_millis(500);
/// Service must be back this soon after the database.
const RECOVERY: Duration = Duration::from_secs(1);
const STEADY: Duration = Duration::from_millis(1500);
const OUTAGE: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_millis(2500);
const WORKERS: usize = 8;
/// Between one worker's rounds, so the load is steady but does not take the shared cores.
const PAUSE: Duration = Duration::from_millis(5);
const READYZ_EVERY: Duration = Duration::from_millis(100);
const PASSWORD: &str = "outage-pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outages_answer_503_and_recover() -> Result<(), Failures> {
    let Some(backend) = Backend::postgres() else { return Ok(()) };
    let Backend::Postgres(admin) = &backend else { unreachable!() };
    let _alone = crate::ALONE.lock().await;
    init_test_log();
    let db = TestDb::new(&backend).await;
    let forwarder = Forwarder::start(postgres_addr(admin).await).await;
    let users: Vec<String> = (0..WORKERS).map(|i| format!("worker{i}")).collect();
    add_users(&db, &users).await;
    // why: reconnecting is most of the recovery time; this build's cost of one connection.
    let started = Instant::now();
    let conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    eprintln!("outage: one new Postgres connection takes {:?} in this build", started.elapsed());
    conn.close().await.unwrap();

    let mut config = test_config(&through(&db.url, forwarder.addr()));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.http.request_timeout = REQUEST_TIMEOUT;
    config.database.acquire_timeout = ACQUIRE_TIMEOUT;
    // why: the touch flusher then runs (and meets the outage) several times per phase.
    config.tokens.touch_flush_interval = Duration::from_millis(200);
    // why: eight workers at one address are close to the default limit of ten attempts at
    // once, and the places of logins whose end the outage delayed are given back a moment
    // after the restore, so a login right then may be asked to retry in a second. That is
    // the throttle at work (tests/api/throttle.rs); here the limit is raised so that only the
    // outage shows, and the counters are checked below: every login here has the right
    // password, so an outage must leave no failure and no lockout.
    config.throttle.ip.max_failures = 100;
    config.validate().unwrap();
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    // why no_proxy: the traffic stays on loopback whatever the environment says.
    let http = reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT * 3).build().unwrap();

    let ledger = Arc::new(Ledger::default());
    let mut failures = Vec::new();
    for mode in [Mode::Down, Mode::Blackhole] {
        let phase = run_phase(&http, &base, &forwarder, mode, &users, &ledger).await;
        failures.extend(phase.check());
    }

    stop_server.send(()).unwrap();
    running.await.expect("the server task panicked").expect("the server failed");
    failures.extend(check_database(&db, &ledger).await);
    if failures.is_empty() { Ok(()) } else { Err(Failures(failures)) }
}

/// The Postgres server's address, from TOKENAUTH_TEST_DATABASE_URL.
async fn postgres_addr(admin: &str) -> SocketAddr {
    let url = url::Url::parse(admin).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let port = url.port().unwrap_or(5432);
    tokio::net::lookup_host((host, port)).await.unwrap().next().unwrap()
}

/// `url` with its host and port replaced by the forwarder's (same database, user, password).
fn through(url: &str, forwarder: SocketAddr) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some(&forwarder.ip().to_string())).unwrap();
    url.set_port(Some(forwarder.port())).unwrap();
    url.to_string()
}

/// The users, made directly in the per-test database (not through the forwarder).
async fn add_users(db: &TestDb, users: &[String]) {
    let config = test_config(&db.url);
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let tokens = tokenauth::app::token_service(&config, Arc::clone(&store), Arc::new(SystemClock)).await.unwrap();
    for user in users {
        let password = PASSWORD.to_owned().into();
        tokens.create_principal(PrincipalKind::User, user, password, &NewProfile::default()).await.unwrap();
    }
    store.close().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Usertoken,
    Knox,
    Webitel,
    Dialer,
}

const DIALECTS: [Dialect; 4] = [Dialect::Usertoken, Dialect::Knox, Dialect::Webitel, Dialect::Dialer];

/// Whose shape a response must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Dialect(Dialect),
    Verify,
    Readyz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Login,
    Logout,
    /// `/verify` of a token just issued: 200 (or 503).
    Verify,
    /// `/verify` of a token just logged out: 401 `revoked` (or 503).
    VerifyRevoked,
    Readyz,
}

/// One request and how it went.
#[derive(Debug)]
struct Sample {
    op: Op,
    shape: Shape,
    started: Instant,
    elapsed: Duration,
    status: Option<StatusCode>,
    /// Set when the answer is not one this request may get (status, shape, or none at all).
    problem: Option<String>,
}

impl Sample {
    fn finished(&self) -> Instant {
        self.started + self.elapsed
    }

    fn is(&self, status: StatusCode) -> bool {
        self.status == Some(status)
    }

    fn writes(&self) -> bool {
        matches!(self.op, Op::Login | Op::Logout)
    }
}

/// A token a login answered 200 for.
#[derive(Debug, Clone)]
struct Issued {
    dialect: Dialect,
    token: String,
    /// The row id, where the response shows it (webitel's `key`).
    id: Option<String>,
}

/// What the server said it did, to hold against the database afterwards.
#[derive(Default)]
struct Ledger {
    issued: Mutex<Vec<Issued>>,
    revoked: Mutex<Vec<Issued>>,
}

struct Phase {
    mode: Mode,
    cut: Instant,
    restored: Instant,
    samples: Vec<Sample>,
}

async fn run_phase(
    http: &reqwest::Client,
    base: &str,
    forwarder: &Forwarder,
    mode: Mode,
    users: &[String],
    ledger: &Arc<Ledger>,
) -> Phase {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let client = Client { http: http.clone(), base: base.to_owned(), samples: Arc::clone(&samples) };
        let (user, stop, ledger) = (user.clone(), Arc::clone(&stop), Arc::clone(ledger));
        tasks.push(tokio::spawn(async move {
            let mut round = i;
            while !stop.load(Ordering::Relaxed) {
                client.round(DIALECTS[round % DIALECTS.len()], &user, &ledger).await;
                round += 1;
                tokio::time::sleep(PAUSE).await;
            }
        }));
    }
    let client = Client { http: http.clone(), base: base.to_owned(), samples: Arc::clone(&samples) };
    let readyz_stop = Arc::clone(&stop);
    tasks.push(tokio::spawn(async move {
        while !readyz_stop.load(Ordering::Relaxed) {
            client.send(Op::Readyz, Shape::Readyz, client.http.get(client.url("/readyz"))).await;
            tokio::time::sleep(READYZ_EVERY).await;
        }
    }));

    tokio::time::sleep(STEADY).await;
    let cut = Instant::now();
    forwarder.set(mode);
    tokio::time::sleep(OUTAGE).await;
    let restored = Instant::now();
    forwarder.set(Mode::Up);
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Phase { mode, cut, restored, samples }
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Log in, check the token, log out, check it is refused.
    async fn round(&self, dialect: Dialect, user: &str, ledger: &Ledger) {
        let Some(issued) = self.login(dialect, user).await else { return };
        ledger.issued.lock().unwrap().push(issued.clone());
        let verify = || self.http.get(self.url("/verify")).bearer_auth(&issued.token);
        self.send(Op::Verify, Shape::Verify, verify()).await;
        let logout = match dialect {
            Dialect::Usertoken => self.http.post(self.url("/auth/logout")).bearer_auth(&issued.token),
            Dialect::Knox => {
                self.http.post(self.url("/auth/logout/")).header("authorization", format!("Token {}", issued.token))
            }
            Dialect::Webitel => self
                .http
                .post(self.url("/logout"))
                .header("x-access-token", &issued.token)
                .header("x-key", issued.id.as_deref().unwrap_or_default()),
            Dialect::Dialer => self.http.delete(self.url("/session.json")).bearer_auth(&issued.token),
        };
        if self.send(Op::Logout, Shape::Dialect(dialect), logout).await.is_some() {
            ledger.revoked.lock().unwrap().push(issued.clone());
            self.send(Op::VerifyRevoked, Shape::Verify, verify()).await;
        }
    }

    async fn login(&self, dialect: Dialect, user: &str) -> Option<Issued> {
        let credentials = json!({"username": user, "password": PASSWORD});
        let req = match dialect {
            Dialect::Usertoken => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"));
                self.http.post(self.url("/auth/login")).header("authorization", format!("Basic {basic}"))
            }
            Dialect::Knox => self.http.post(self.url("/auth/login/")).json(&credentials),
            Dialect::Webitel => self.http.post(self.url("/login")).json(&credentials),
            Dialect::Dialer => {
                self.http.post(self.url("/session.json")).json(&json!({"login": user, "password": PASSWORD}))
            }
        };
        let body = self.send(Op::Login, Shape::Dialect(dialect), req).await?;
        let token = body["token"].as_str()?.to_owned();
        let id = (dialect == Dialect::Webitel).then(|| body["key"].as_str().unwrap_or_default().to_owned());
        Some(Issued { dialect, token, id })
    }

    /// Send, time and judge one request; the JSON body (`null` if empty) of a success.
    async fn send(&self, op: Op, shape: Shape, req: reqwest::RequestBuilder) -> Option<Value> {
        let started = Instant::now();
        let result = async {
            let resp = req.send().await?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            Ok::<_, reqwest::Error>((status, headers, resp.bytes().await?))
        }
        .await;
        let elapsed = started.elapsed();
        let (status, problem, success) = match result {
            Err(e) => (None, Some(format!("no answer after {elapsed:?}: {e}")), None),
            Ok((status, headers, body)) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                let json: Option<Value> =
                    if body.is_empty() { Some(Value::Null) } else { serde_json::from_slice(&body).ok() };
                let judged = match (status, json) {
                    (_, None) => Err("not JSON".to_owned()),
                    (StatusCode::SERVICE_UNAVAILABLE, Some(json)) => unavailable(shape, &headers, &json).map(|()| None),
                    (status, Some(json)) => answered(op, shape, status, &headers, &json).map(|()| Some(json)),
                };
                match judged {
                    Ok(success) => (Some(status), None, success),
                    Err(why) => (Some(status), Some(format!("{op:?} {shape:?}: {status} {why}; body {text:?}")), None),
                }
            }
        };
        let success = success.filter(|_| status.is_some_and(|s| s.is_success()));
        self.samples.lock().unwrap().push(Sample { op, shape, started, elapsed, status, problem });
        success
    }
}

/// A 503 must be in the shape's own words, as JSON, with a `Retry-After` of whole seconds.
fn unavailable(shape: Shape, headers: &HeaderMap, body: &Value) -> Result<(), String> {
    let expected = match shape {
        Shape::Dialect(Dialect::Usertoken) => json!({
            "name": "ServiceUnavailableError",
            "title": "Service unavailable",
            "description": "The service is busy or unavailable; try again later",
        }),
        Shape::Dialect(Dialect::Knox) => json!({"detail": "Service temporarily unavailable, try again later."}),
        Shape::Dialect(Dialect::Webitel) => json!({"status": "error", "info": "Service unavailable, try again later"}),
        Shape::Dialect(Dialect::Dialer) => json!({"error": "Service unavailable, try again later"}),
        Shape::Verify => json!({"status": "unavailable", "reason": "unavailable"}),
        Shape::Readyz => json!({"status": "unavailable"}),
    };
    if *body != expected {
        return Err(format!("503 body is not {expected}"));
    }
    json_content_type(headers)?;
    // why not /readyz: a probe, not a client to pace; it answers no Retry-After.
    if shape != Shape::Readyz {
        let retry = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if retry.is_none_or(|s| s < 1) {
            return Err(format!("Retry-After missing or not whole seconds: {:?}", headers.get("retry-after")));
        }
    }
    Ok(())
}

/// Anything but a 503: the one answer this request may get when the database answers.
fn answered(op: Op, shape: Shape, status: StatusCode, headers: &HeaderMap, body: &Value) -> Result<(), String> {
    let expected_status = if op == Op::VerifyRevoked { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    if status != expected_status {
        return Err(format!("expected {expected_status} or 503"));
    }
    let fine = match (op, shape) {
        (Op::Login, Shape::Dialect(d)) => {
            body["token"].is_string()
                && match d {
                    Dialect::Webitel => body["key"].is_string(),
                    Dialect::Dialer => body["user"]["id"].is_i64(),
                    Dialect::Usertoken | Dialect::Knox => true,
                }
        }
        (Op::Logout, Shape::Dialect(Dialect::Knox)) => {
            return if body.is_null() { Ok(()) } else { Err("knox logout body should be empty".into()) };
        }
        (Op::Logout, Shape::Dialect(Dialect::Webitel)) => {
            *body == json!({"status": "OK", "info": "Successful logout."})
        }
        (Op::Logout, Shape::Dialect(_)) => *body == json!({"success": true}),
        (Op::Verify, _) => body["token_id"].is_string(),
        (Op::VerifyRevoked, _) => *body == json!({"status": "unauthorized", "reason": "revoked"}),
        (Op::Readyz, _) => *body == json!({"status": "ready"}),
        _ => false,
    };
    if !fine {
        return Err("unexpected body".into());
    }
    json_content_type(headers)
}

fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    match headers.get("content-type").and_then(|v| v.to_str().ok()) {
        Some("application/json") => Ok(()),
        other => Err(format!("content-type {other:?}")),
    }
}

impl Phase {
    /// Print the figures; return what went wrong.
    fn check(&self) -> Vec<String> {
        let name = format!("{:?}", self.mode).to_lowercase();
        let mut failures = Vec::new();
        let s = &self.samples;
        let count = |f: &dyn Fn(&Sample) -> bool| s.iter().filter(|x| f(x)).count();
        let total = s.len();
        let ok = count(&|x| x.status.is_some_and(|st| st.is_success()) && x.problem.is_none());
        let refused = count(&|x| x.op == Op::VerifyRevoked && x.is(StatusCode::UNAUTHORIZED) && x.problem.is_none());
        let unavailable = count(&|x| x.is(StatusCode::SERVICE_UNAVAILABLE) && x.problem.is_none());
        let during = count(&|x| x.is(StatusCode::SERVICE_UNAVAILABLE) && x.writes());
        let problems: Vec<&Sample> = s.iter().filter(|x| x.problem.is_some()).collect();
        let max = s.iter().map(|x| x.elapsed).max().unwrap_or_default();
        let slowest = s.iter().max_by_key(|x| x.elapsed);

        // Recovery: the first login or logout answered 200 after the database came back.
        let recovered_at = s
            .iter()
            .filter(|x| x.writes() && x.is(StatusCode::OK) && x.finished() > self.restored)
            .map(Sample::finished)
            .min();
        let recovery = recovered_at.map(|at| at - self.restored);
        let ready_again = s
            .iter()
            .filter(|x| x.op == Op::Readyz && x.is(StatusCode::OK) && x.finished() > self.restored)
            .map(|x| x.finished() - self.restored)
            .min();
        let late_503s: Vec<&Sample> = s
            .iter()
            .filter(|x| x.is(StatusCode::SERVICE_UNAVAILABLE) && x.started >= self.restored + RECOVERY)
            .collect();
        let outage_503s_before = count(&|x| x.is(StatusCode::SERVICE_UNAVAILABLE) && x.finished() < self.cut);
        // why by the time of the answer: a probe waiting when the blackhole lifts gets its
        // answer (200) from the healed connection, so one started during it may say 200.
        let readyz_down = count(&|x| {
            x.op == Op::Readyz
                && x.is(StatusCode::SERVICE_UNAVAILABLE)
                && x.finished() >= self.cut
                && x.finished() <= self.restored
        });
        let readyz_up_during = count(&|x| {
            x.op == Op::Readyz
                && !x.is(StatusCode::SERVICE_UNAVAILABLE)
                && x.started >= self.cut
                && x.finished() <= self.restored
        });
        let readyz_late_not_ok =
            count(&|x| x.op == Op::Readyz && x.started >= self.restored + RECOVERY && !x.is(StatusCode::OK));
        let readyz_late = count(&|x| x.op == Op::Readyz && x.started >= self.restored + RECOVERY);

        eprintln!(
            "outage {name}: {total} requests, {ok} 2xx, {refused} 401 (revoked, expected), {unavailable} 503 \
             ({during} of them logins/logouts), {} other; max latency {max:?} ({:?} {:?}); \
             first login/logout 200 {recovery:?} after restore; /readyz 200 again {ready_again:?} after restore; \
             /readyz 503s during the outage: {readyz_down}",
            problems.len(),
            slowest.map(|x| x.op),
            slowest.map(|x| x.shape),
        );

        for p in problems.iter().take(10) {
            let problem = p.problem.as_deref().unwrap_or_default();
            let at = p.started.saturating_duration_since(self.cut);
            failures.push(format!("{name}: {problem} (sent {at:?} after the cut)"));
        }
        if problems.len() > 10 {
            failures.push(format!("{name}: ... and {} more unexpected answers", problems.len() - 10));
        }
        if max > REQUEST_TIMEOUT + MARGIN {
            failures.push(format!("{name}: a request took {max:?}, over the {REQUEST_TIMEOUT:?} timeout + {MARGIN:?}"));
        }
        // why the acquire timeout: /readyz bounds its database check by it (it has no request
        // timeout), so a probe never waits on a database that stopped answering.
        let slowest_readyz = s.iter().filter(|x| x.op == Op::Readyz).map(|x| x.elapsed).max().unwrap_or_default();
        if slowest_readyz > ACQUIRE_TIMEOUT + MARGIN {
            failures.push(format!(
                "{name}: /readyz took {slowest_readyz:?}, over the {ACQUIRE_TIMEOUT:?} acquire timeout + {MARGIN:?}"
            ));
        }
        if during == 0 {
            failures.push(format!("{name}: no login or logout got a 503: was there an outage?"));
        }
        if outage_503s_before > 0 {
            failures.push(format!("{name}: {outage_503s_before} 503s before the outage began"));
        }
        if readyz_down == 0 {
            failures.push(format!("{name}: /readyz never said 503 during the outage"));
        }
        if readyz_up_during > 0 {
            failures.push(format!(
                "{name}: /readyz asked and answered during the outage said 200 {readyz_up_during} times"
            ));
        }
        if readyz_late == 0 || readyz_late_not_ok > 0 {
            failures.push(format!(
                "{name}: {readyz_late_not_ok} of {readyz_late} /readyz probes {RECOVERY:?} after the restore were not 200"
            ));
        }
        match recovery {
            Some(r) if r <= RECOVERY => {}
            other => failures.push(format!("{name}: first successful login/logout {other:?} after restore")),
        }
        if !late_503s.is_empty() {
            failures.push(format!(
                "{name}: {} requests started {RECOVERY:?} after the restore still got 503 (first: {:?} {:?} at {:?})",
                late_503s.len(),
                late_503s[0].op,
                late_503s[0].shape,
                late_503s[0].started - self.restored,
            ));
        }
        failures
    }
}

/// Hold what the server answered against the database, read directly (not through the
/// forwarder): every 200 login has its row, every 200 logout revoked it.
async fn check_database(db: &TestDb, ledger: &Ledger) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let issued = ledger.issued.lock().unwrap().clone();
    let revoked = ledger.revoked.lock().unwrap().clone();
    let mut failures = Vec::new();
    let mut live = 0;
    for token in &issued {
        let digest = PlainToken::new(token.token.as_str()).digest();
        let row: Option<(uuid::Uuid, String, bool)> =
            sqlx::query_as("SELECT id, dialect, revoked_at IS NOT NULL FROM tokens WHERE digest = $1")
                .bind(digest.as_bytes().as_slice())
                .fetch_optional(&pool)
                .await
                .unwrap();
        let was_revoked = revoked.iter().any(|r| r.token == token.token);
        match row {
            None => failures.push(format!("a {:?} login answered 200 but its token has no row", token.dialect)),
            Some((id, dialect, is_revoked)) => {
                if token.id.as_deref().is_some_and(|key| key != id.to_string()) {
                    failures.push(format!("a {:?} login's key {:?} is not its row's id {id}", token.dialect, token.id));
                }
                if dialect != format!("{:?}", token.dialect).to_lowercase() {
                    failures.push(format!("a {:?} token's row says dialect {dialect}", token.dialect));
                }
                if was_revoked && !is_revoked {
                    failures.push(format!("a {:?} logout answered 200 but its row {id} is not revoked", token.dialect));
                }
                if !is_revoked {
                    live += 1;
                }
            }
        }
    }
    eprintln!(
        "outage database check: {} logins answered 200, all with their row: {}; {} logouts answered 200, \
         all revoked: {}; {live} tokens left live (their logout got a 503)",
        issued.len(),
        !failures.iter().any(|f| f.contains("no row")),
        revoked.len(),
        !failures.iter().any(|f| f.contains("not revoked")),
    );
    // The throttle counters: no failure and no lockout (only right passwords were sent).
    let counters: Vec<(String, String, i32, i32)> =
        sqlx::query_as("SELECT scope, subject, failures + prev_failures, strikes FROM login_throttle")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (scope, subject, failed, strikes) in &counters {
        if *failed > 0 || *strikes > 0 {
            failures
                .push(format!("throttle {scope} {subject}: {failed} failures, {strikes} lockouts after the outages"));
        }
    }
    eprintln!("outage throttle check: {} counters, none with a failure or a lockout: {}", counters.len(), {
        !failures.iter().any(|f| f.starts_with("throttle "))
    });
    pool.close().await;
    failures
}
