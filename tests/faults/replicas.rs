//! Replica faults (Postgres only): three real `tokenauth serve` processes over one database,
//! under a steady mixed load (knox and usertoken logins, `/verify` checks, logouts, knox's
//! logoutall) spread round-robin over the replicas in rotation, as a load balancer would.
//! Mid-load one replica is killed with SIGKILL while a login is in flight on it, taken out of
//! rotation, and started again; then all three are restarted one at a time with SIGTERM (the
//! new one joins once its `/readyz` says 200; the old one stays in rotation until its
//! `/readyz` says 503 and a moment longer, so requests reach it during its shutdown delay).
//!
//! Every request is recorded (replica, kind, answer), and afterwards:
//! - every answer was a 200, except transport errors of requests sent to the killed replica
//!   before it was killed; no 5xx from anyone, and the SIGTERM restarts lost no request;
//! - the database, read directly, has a row for every login answered 200, a revocation for
//!   every token a logout or logoutall answered 200 for, and none for the tokens still held;
//! - every replica in rotation refused each revoked token within `LAG_BOUND` of the logout's
//!   answer (the token was checked, and so cached, on each of them just before), and the
//!   last three replicas refuse every revoked token and accept every held one;
//! - the throttle holds no failure, no lockout, and no attempt in flight beyond the logins the
//!   kill interrupted, and those places are forgotten within two request timeouts.
//!
//! Run with `--nocapture` to see the figures.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokenauth::model::PlainToken;

use crate::Failures;
use crate::helpers::{Backend, TestDb, init_test_log};
use crate::process::{Server, WAIT, admin, command, ok, run};

/// One client task per user, each doing one request at a time.
const WORKERS: usize = 4;
const PASSWORD: &str = "replicas-Pa55word";
/// Short, so that a place in the throttle that the killed replica never gave back is
/// forgotten (one to two request timeouts after it was taken) within the test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// Below the request timeout, as the config requires.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a SIGTERM'd replica keeps serving with `/readyz` at 503.
const SHUTDOWN_DELAY: Duration = Duration::from_millis(1500);
/// How long the balancer keeps a replica in rotation after its `/readyz` first says 503 (its
/// probe interval): requests sent meanwhile land in the shutdown delay. why well below the
/// delay: a request picked just before the replica leaves the rotation must still find it
/// serving on a loaded machine.
const BALANCER_LAG: Duration = Duration::from_millis(400);
/// A revocation on one replica must be refused by the others this soon (tests/api/replicas.rs).
const LAG_BOUND: Duration = Duration::from_secs(2);
/// Between one worker's requests, so the load is steady without taking the shared cores.
const PAUSE: Duration = Duration::from_millis(5);
/// Every so many steps a worker calls knox's logoutall; see `Worker::step`.
const LOGOUTALL_EVERY: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_a_kill_and_a_rolling_restart() -> Result<(), Failures> {
    let Some(backend) = Backend::postgres() else { return Ok(()) };
    let _alone = crate::ALONE.lock().await;
    init_test_log();
    let db = TestDb::new(&backend).await;
    let users: Vec<String> = (0..WORKERS).map(|i| format!("worker{i}")).collect();
    for user in &users {
        ok(&admin(&db, &["user", "add", user, "--password-stdin"], Some(&format!("{PASSWORD}\n"))).await);
    }
    let started = Instant::now();
    let mut replicas = Replicas { db: &db, cluster: Arc::new(Cluster::default()), servers: Vec::new() };
    for name in ["A", "B", "C"] {
        replicas.start(name).await;
    }
    eprintln!("replicas: three replicas up in {:.1?}", started.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(n, user)| tokio::spawn(Worker::new(n, user, Arc::clone(&replicas.cluster), Arc::clone(&stop)).run()))
        .collect();
    let t0 = Instant::now();
    let mut failures = Vec::new();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kill = replicas.kill(1).await;
    failures.extend(kill.failures.iter().cloned());
    eprintln!("replicas: B killed at {:.1?} with {} login(s) in flight on it", kill.at - t0, kill.logins);
    // The others carry the load for a second, then B comes back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    replicas.start("B2").await;
    eprintln!("replicas: B2 in rotation at {:.1?}", t0.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rolling = Instant::now();
    let mut exits = Vec::new();
    for old in replicas.cluster.rotation() {
        let (exit, problem) = replicas.replace(old).await;
        exits.push(exit);
        failures.extend(problem);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rolling = rolling.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let load_took = t0.elapsed();

    let mut ledgers = Vec::new();
    for worker in load {
        ledgers.push(worker.await.expect("a load task panicked"));
    }
    let mut probes = ProbeReport::default();
    for ledger in &mut ledgers {
        for probe in ledger.probes.drain(..) {
            probes.add(probe.await.expect("a probe panicked"));
        }
    }
    failures.append(&mut probes.failures);
    if probes.lags.is_empty() {
        failures.push("no revocation lag was measured: the load logged nothing out".into());
    }
    let mut complaints = warnings("B", &kill.logs);
    for exit in exits {
        let (name, status, logs) = exit.await.unwrap();
        if status.code() != Some(0) {
            failures.push(format!("{name} exited with {status} after SIGTERM; log tail:\n{}", tail(&logs)));
        }
        complaints.extend(warnings(&name, &logs));
    }
    for (id, server) in replicas.servers.iter().enumerate() {
        if let Some(server) = server {
            complaints.extend(warnings(&replicas.cluster.name(id), &server.logs()));
        }
    }

    let cluster = &replicas.cluster;
    let records: Vec<&Record> = ledgers.iter().flat_map(|l| &l.records).collect();
    failures.extend(ledgers.iter().flat_map(|l| l.failures.iter().cloned()));
    failures.extend(check_answers(cluster, &records, &kill, t0));
    // The rolling restart was tested only if requests reached the replicas in their delay.
    let drained = records.iter().filter(|r| cluster.draining_at(r.instance, r.sent)).count();
    if drained == 0 {
        failures.push("no request reached a replica during its shutdown delay".into());
    }
    let interrupted: Vec<&Record> =
        records.iter().copied().filter(|r| r.kind.is_login() && matches!(r.answer, Answer::Transport(_))).collect();
    let (rows, problems) = check_database(&db, &ledgers, interrupted.len()).await;
    failures.extend(problems);
    let (final_checks, problems) = check_last_replicas(cluster, &ledgers).await;
    failures.extend(problems);

    // The throttle: nothing but the interrupted logins' places, forgotten in time.
    let throttle_after_load = throttle_list(&db).await;
    failures.extend(throttle_problems(&throttle_after_load, interrupted.len(), "after the load"));
    let forgotten_by = kill.at + 2 * REQUEST_TIMEOUT + Duration::from_secs(1);
    tokio::time::sleep_until(forgotten_by.into()).await;
    let throttle_at_end = throttle_list(&db).await;
    failures.extend(throttle_problems(&throttle_at_end, 0, "two request timeouts after the kill"));

    // The figures.
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut by_replica: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *by_kind.entry((format!("{:?}", r.kind), r.answer.label())).or_default() += 1;
        *by_replica.entry(cluster.name(r.instance)).or_default() += 1;
    }
    eprintln!(
        "replicas: {} requests in {load_took:.1?} (rolling restart {rolling:.1?}), by replica {by_replica:?}",
        records.len()
    );
    for ((kind, answer), n) in &by_kind {
        eprintln!("replicas:   {kind:<16} {answer:<10} {n}");
    }
    for r in records.iter().filter(|r| matches!(r.answer, Answer::Transport(_))) {
        eprintln!("replicas:   {:?} on {}: {:?}", r.kind, cluster.name(r.instance), r.answer);
    }
    let count = |f: fn(&Ledger) -> usize| ledgers.iter().map(f).sum::<usize>();
    eprintln!(
        "replicas: {rows} token rows checked against {} logins answered 200, {} tokens revoked, {} held, \
         {} of unknown fate (logout interrupted); {} login(s) interrupted by the kill",
        count(|l| l.issued.len()),
        count(|l| l.revoked.len()),
        count(|l| l.held.len()),
        count(|l| l.unknown.len()),
        interrupted.len()
    );
    eprintln!("replicas: {}; {final_checks} checks on the last three replicas", probes.summary());
    eprintln!(
        "replicas: throttle places in flight: right after the kill {}, after the load {}, two request timeouts \
         after the kill {}",
        in_flight_summary(&kill.throttle),
        in_flight_summary(&throttle_after_load),
        in_flight_summary(&throttle_at_end)
    );
    eprintln!("replicas: {drained} requests sent to replicas in their shutdown delay");
    eprintln!("replicas: {} warning or error lines in the replicas' logs", complaints.len());
    for line in complaints.iter().take(10) {
        eprintln!("replicas:   {line}");
    }
    if failures.is_empty() { Ok(()) } else { Err(Failures(failures)) }
}

/// The replicas' processes, and the rotation the load picks from.
struct Replicas<'a> {
    db: &'a TestDb,
    cluster: Arc<Cluster>,
    /// By index in `cluster`; `None` once stopped.
    servers: Vec<Option<Server>>,
}

/// What the kill left.
struct Kill {
    victim: usize,
    at: Instant,
    /// Logins in flight on the replica when it was killed, by the client's count.
    logins: usize,
    /// `throttle list` right after.
    throttle: Vec<Value>,
    logs: Vec<String>,
    failures: Vec<String>,
}

/// A SIGTERM'd replica's exit: its name, status and log.
type Exit = tokio::task::JoinHandle<(String, std::process::ExitStatus, Vec<String>)>;

impl Replicas<'_> {
    /// Start a replica, wait for its `/readyz` to answer 200, and put it in rotation.
    async fn start(&mut self, name: &str) -> usize {
        let server = spawn(self.db).await;
        ready(&server).await;
        let id = self.cluster.add(name, &server);
        self.servers.push(Some(server));
        self.cluster.enter(id);
        id
    }

    /// SIGKILL replica `id` while a login is in flight on it (best effort, bounded), having
    /// taken it out of rotation: only requests sent before can meet the kill.
    async fn kill(&mut self, id: usize) -> Kill {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.cluster.logins_in_flight(id) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // why a moment: the login has then most likely taken its place in the throttle.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let logins = self.cluster.logins_in_flight(id);
        self.cluster.leave(id);
        let mut server = self.servers[id].take().unwrap();
        server.signal("KILL");
        let at = Instant::now();
        let status = server.wait_for_exit().await;
        let mut failures = Vec::new();
        if status.signal() != Some(9) {
            failures.push(format!("the killed replica exited with {status}, not by SIGKILL"));
        }
        let throttle = throttle_list(self.db).await;
        Kill { victim: id, at, logins, throttle, logs: server.logs(), failures }
    }

    /// Replace replica `old` as a rolling restart does: the new one joins the rotation once
    /// ready; then `old` gets SIGTERM and stays in rotation until its `/readyz` answers 503
    /// and `BALANCER_LAG` longer. Returns the wait for its exit, and what went wrong.
    async fn replace(&mut self, old: usize) -> (Exit, Option<String>) {
        let name = self.cluster.name(old);
        self.start(&format!("{name}'")).await;
        let mut server = self.servers[old].take().unwrap();
        server.signal("TERM");
        self.cluster.terminated(old);
        let problem = draining(&server).await.err().map(|e| format!("{name}: {e}"));
        tokio::time::sleep(BALANCER_LAG).await;
        self.cluster.leave(old);
        let exit = tokio::spawn(async move {
            let status = server.wait_for_exit().await;
            let logs = server.logs();
            (name, status, logs)
        });
        (exit, problem)
    }
}

/// Every answer a 200, but for transport errors of requests sent to the killed replica before
/// the kill.
fn check_answers(cluster: &Cluster, records: &[&Record], kill: &Kill, t0: Instant) -> Vec<String> {
    let mut failures = Vec::new();
    for r in records {
        match &r.answer {
            Answer::Status(200) => {}
            Answer::Transport(_) if r.instance == kill.victim && r.sent < kill.at => {}
            answer => failures.push(format!(
                "{} {:?} on {} at {:.3?}: {answer:?}",
                r.worker,
                r.kind,
                cluster.name(r.instance),
                r.sent.duration_since(t0)
            )),
        }
    }
    failures
}

/// The database agrees with the answers: a row for every login answered 200, revoked for
/// every token logged out, not revoked for every token held; and no more rows than logins
/// answered or interrupted (an interrupted one may have written its row). Returns the number
/// of rows.
async fn check_database(db: &TestDb, ledgers: &[Ledger], interrupted: usize) -> (usize, Vec<String>) {
    let rows = token_rows(db).await;
    let mut failures = Vec::new();
    let mut issued = 0;
    for l in ledgers {
        issued += l.issued.len();
        let mut expect = |tokens: &[Token], want: Option<bool>, what: &str| {
            for t in tokens {
                let got = rows.get(&digest(&t.text)).copied();
                if want.map_or(got.is_none(), |want| got != Some(want)) {
                    failures
                        .push(format!("{}: a {:?} token {what}: its row says revoked {got:?}", l.worker, t.dialect));
                }
            }
        };
        expect(&l.issued, None, "answered 200 at login has no row");
        expect(&l.revoked, Some(true), "logged out (200) is not revoked");
        expect(&l.held, Some(false), "never logged out is revoked or missing");
    }
    if rows.len() < issued || rows.len() > issued + interrupted {
        failures
            .push(format!("{} token rows for {issued} logins answered 200 and {interrupted} interrupted", rows.len()));
    }
    (rows.len(), failures)
}

/// The replicas in rotation at the end refuse every token logged out and accept every token
/// held. Returns the number of checks.
async fn check_last_replicas(cluster: &Cluster, ledgers: &[Ledger]) -> (usize, Vec<String>) {
    let http = client();
    let expected: Vec<(&Token, u16)> = ledgers
        .iter()
        .flat_map(|l| l.revoked.iter().map(|t| (t, 401)).chain(l.held.iter().map(|t| (t, 200))))
        .collect();
    let last = cluster.snapshot();
    let checks: Vec<_> =
        last.iter().flat_map(|(id, base)| expected.iter().map(move |&(t, want)| (*id, base, t, want))).collect();
    let count = checks.len();
    let failures = futures::stream::iter(checks)
        .map(|(id, base, t, want)| {
            let http = &http;
            async move {
                let got = verify(http, base, &t.text).await;
                (got != Answer::Status(want))
                    .then(|| format!("{}: a {:?} token expected {want}, got {got:?}", cluster.name(id), t.dialect))
            }
        })
        .buffer_unordered(4)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    (count, failures)
}

/// `tokenauth serve` on `db`, as every replica here is configured, with info-level logs (a
/// trace log of thousands of requests would slow the servers more than the load does).
async fn spawn(db: &TestDb) -> Server {
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_HTTP__SHUTDOWN_DELAY", humantime::format_duration(SHUTDOWN_DELAY).to_string());
    timeouts(&mut cmd)
        // why an hour: a refusal within the lag bound then comes from the revocation notice,
        // not from the cache entry growing stale.
        .env("TOKENAUTH_CACHE__MAX_STALENESS", "1h");
    Server::spawn_logging(cmd, "info").await
}

/// The replicas' request and acquire timeouts (the CLI needs them too: the throttle's buckets
/// of attempts in flight are as long as the request timeout).
fn timeouts(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("TOKENAUTH_HTTP__REQUEST_TIMEOUT", humantime::format_duration(REQUEST_TIMEOUT).to_string())
        .env("TOKENAUTH_DATABASE__ACQUIRE_TIMEOUT", humantime::format_duration(ACQUIRE_TIMEOUT).to_string())
}

fn client() -> reqwest::Client {
    // why no_proxy: the traffic stays on loopback whatever the environment says.
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Wait for the new replica's `/readyz` to answer 200, as a balancer would before sending it
/// traffic.
async fn ready(server: &Server) {
    let http = client();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(resp) = http.get(server.url("/readyz")).send().await
            && resp.status() == StatusCode::OK
        {
            return;
        }
        assert!(Instant::now() < deadline, "the new replica never became ready:\n{}", tail(&server.logs()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait for a SIGTERM'd replica's `/readyz` to answer 503 (it keeps serving meanwhile).
async fn draining(server: &Server) -> Result<(), String> {
    let http = client();
    let deadline = Instant::now() + WAIT;
    loop {
        match http.get(server.url("/readyz")).send().await {
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => return Ok(()),
            Ok(resp) if resp.status() == StatusCode::OK => {}
            Ok(resp) => return Err(format!("/readyz answered {} after SIGTERM", resp.status())),
            Err(e) => return Err(format!("/readyz failed after SIGTERM, within the shutdown delay: {e}")),
        }
        if Instant::now() > deadline {
            return Err("/readyz still 200 long after SIGTERM".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The warning and error lines of a replica's log, named.
fn warnings(name: &str, logs: &[String]) -> Vec<String> {
    logs.iter().filter(|l| l.contains(" WARN ") || l.contains("ERROR")).map(|l| format!("{name}: {l}")).collect()
}

/// The last lines of a log, for a failure message.
fn tail(logs: &[String]) -> String {
    logs[logs.len().saturating_sub(20)..].join("\n")
}

/// The replicas: every one ever started (by index), and which of them the load may pick.
#[derive(Default)]
struct Cluster {
    /// Name and base URL of every replica started, by index.
    instances: Mutex<Vec<(String, String)>>,
    /// The replicas in rotation, in order.
    rotation: Mutex<Vec<usize>>,
    next: AtomicUsize,
    /// Logins in flight per replica (the kill waits for one).
    logins: Mutex<HashMap<usize, usize>>,
    /// When each replica given SIGTERM was given it.
    terminated: Mutex<HashMap<usize, Instant>>,
}

impl Cluster {
    fn add(&self, name: &str, server: &Server) -> usize {
        let mut instances = self.instances.lock().unwrap();
        instances.push((name.to_owned(), server.url("")));
        instances.len() - 1
    }

    fn name(&self, id: usize) -> String {
        self.instances.lock().unwrap()[id].0.clone()
    }

    fn enter(&self, id: usize) {
        self.rotation.lock().unwrap().push(id);
    }

    fn leave(&self, id: usize) {
        self.rotation.lock().unwrap().retain(|&i| i != id);
    }

    fn contains(&self, id: usize) -> bool {
        self.rotation.lock().unwrap().contains(&id)
    }

    fn rotation(&self) -> Vec<usize> {
        self.rotation.lock().unwrap().clone()
    }

    fn base(&self, id: usize) -> String {
        self.instances.lock().unwrap()[id].1.clone()
    }

    /// The replicas in rotation with their base URLs.
    fn snapshot(&self) -> Vec<(usize, String)> {
        // why one lock at a time: no lock order to get wrong.
        self.rotation().into_iter().map(|id| (id, self.base(id))).collect()
    }

    /// The next replica in rotation (round-robin).
    fn pick(&self) -> (usize, String) {
        let id = {
            let rotation = self.rotation.lock().unwrap();
            rotation[self.next.fetch_add(1, Ordering::Relaxed) % rotation.len()]
        };
        (id, self.base(id))
    }

    fn terminated(&self, id: usize) {
        self.terminated.lock().unwrap().insert(id, Instant::now());
    }

    /// Whether `at` is after `id` was given SIGTERM.
    fn draining_at(&self, id: usize, at: Instant) -> bool {
        self.terminated.lock().unwrap().get(&id).is_some_and(|&t| at >= t)
    }

    fn logins_in_flight(&self, id: usize) -> usize {
        self.logins.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn login_started(&self, id: usize) {
        *self.logins.lock().unwrap().entry(id).or_default() += 1;
    }

    fn login_ended(&self, id: usize) {
        *self.logins.lock().unwrap().entry(id).or_default() -= 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KnoxLogin,
    UsertokenLogin,
    Check,
    KnoxLogout,
    UsertokenLogout,
    Logoutall,
}

impl Kind {
    fn is_login(self) -> bool {
        matches!(self, Kind::KnoxLogin | Kind::UsertokenLogin)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Knox,
    Usertoken,
}

/// A token a login answered 200 for.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    dialect: Dialect,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// No answer: connect, write or read failed (the message says which).
    Transport(String),
}

impl Answer {
    fn label(&self) -> String {
        match self {
            Answer::Status(s) => s.to_string(),
            Answer::Transport(_) => "transport".into(),
        }
    }
}

/// One request of the load.
#[derive(Debug)]
struct Record {
    worker: String,
    instance: usize,
    kind: Kind,
    answer: Answer,
    /// Before the replica was picked.
    sent: Instant,
}

/// What a worker did and what it knows at the end.
#[derive(Default)]
struct Ledger {
    worker: String,
    records: Vec<Record>,
    /// Every token a login answered 200 for.
    issued: Vec<Token>,
    /// Tokens a logout or logoutall answered 200 for.
    revoked: Vec<Token>,
    /// Tokens never logged out.
    held: Vec<Token>,
    /// Tokens whose logout got no answer: revoked or not.
    unknown: Vec<Token>,
    /// Answers that were 200 but not in the documented shape.
    failures: Vec<String>,
    /// The lag probes started after each revocation.
    probes: Vec<tokio::task::JoinHandle<ProbeReport>>,
}

/// One client task: logs in as its own user, one request at a time, so that what it holds and
/// what it revoked is known exactly (a logoutall revokes every knox token it holds).
struct Worker {
    n: usize,
    user: String,
    http: reqwest::Client,
    cluster: Arc<Cluster>,
    stop: Arc<AtomicBool>,
    ledger: Ledger,
}

impl Worker {
    fn new(n: usize, user: &str, cluster: Arc<Cluster>, stop: Arc<AtomicBool>) -> Worker {
        let ledger = Ledger { worker: user.to_owned(), ..Ledger::default() };
        Worker { n, user: user.to_owned(), http: client(), cluster, stop, ledger }
    }

    async fn run(mut self) -> Ledger {
        // why offset by worker: the workers' logins and logouts do not all fall together.
        let mut step = self.n * 3;
        while !self.stop.load(Ordering::Relaxed) {
            step += 1;
            self.step(step).await;
            tokio::time::sleep(PAUSE).await;
        }
        self.ledger
    }

    /// Of every 8 steps: a knox login, a usertoken login, a logout, five checks; every
    /// `LOGOUTALL_EVERY` steps, a logoutall instead of a check.
    async fn step(&mut self, step: usize) {
        if step % LOGOUTALL_EVERY == LOGOUTALL_EVERY / 2 {
            return self.logoutall().await;
        }
        match step % 8 {
            0 => self.login(Dialect::Knox).await,
            4 => self.login(Dialect::Usertoken).await,
            7 => self.logout().await,
            _ => match self.ledger.held.get(step % self.ledger.held.len().max(1)).cloned() {
                Some(token) => {
                    self.check(&token).await;
                }
                None => self.login(Dialect::Knox).await,
            },
        }
    }

    /// Send a request built for the next replica in rotation, and record it.
    async fn send(
        &mut self,
        kind: Kind,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> (Answer, Option<Value>) {
        let sent = Instant::now();
        let (instance, base) = self.cluster.pick();
        self.send_to(kind, instance, &base, sent, build).await
    }

    async fn send_to(
        &mut self,
        kind: Kind,
        instance: usize,
        base: &str,
        sent: Instant,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> (Answer, Option<Value>) {
        if kind.is_login() {
            self.cluster.login_started(instance);
        }
        let result = async {
            let resp = build(&self.http, base).send().await?;
            let status = resp.status().as_u16();
            Ok::<_, reqwest::Error>((status, resp.bytes().await?))
        }
        .await;
        if kind.is_login() {
            self.cluster.login_ended(instance);
        }
        let (answer, body) = match result {
            Ok((status, body)) => (Answer::Status(status), serde_json::from_slice(&body).ok()),
            // why the chain: reqwest's own message is only "error sending request".
            Err(e) => (Answer::Transport(error_chain(&e)), None),
        };
        self.ledger.records.push(Record { worker: self.user.clone(), instance, kind, answer: answer.clone(), sent });
        (answer, body)
    }

    async fn login(&mut self, dialect: Dialect) {
        let user = self.user.clone();
        let kind = match dialect {
            Dialect::Knox => Kind::KnoxLogin,
            Dialect::Usertoken => Kind::UsertokenLogin,
        };
        let (answer, body) = self
            .send(kind, |http, base| match dialect {
                Dialect::Knox => {
                    http.post(format!("{base}/auth/login/")).json(&json!({"username": user, "password": PASSWORD}))
                }
                Dialect::Usertoken => http.post(format!("{base}/auth/login")).basic_auth(&user, Some(PASSWORD)),
            })
            .await;
        if answer != Answer::Status(200) {
            return;
        }
        match body.as_ref().and_then(|b| b["token"].as_str()) {
            Some(text) => {
                let token = Token { text: text.to_owned(), dialect };
                self.ledger.issued.push(token.clone());
                self.ledger.held.push(token);
            }
            None => {
                self.ledger.failures.push(format!("{}: a {dialect:?} login's 200 has no token: {body:?}", self.user))
            }
        }
    }

    async fn check(&mut self, token: &Token) -> Answer {
        let text = token.text.clone();
        self.send(Kind::Check, |http, base| {
            http.get(format!("{base}/verify")).header("authorization", format!("Token {text}"))
        })
        .await
        .0
    }

    /// Check `tokens` on every replica in rotation, so that each has them cached.
    async fn warm(&mut self, tokens: &[Token]) {
        for (instance, base) in self.cluster.snapshot() {
            for token in tokens {
                let text = token.text.clone();
                let sent = Instant::now();
                // why: the snapshot is a moment old; a replica that left since is not picked.
                if !self.cluster.contains(instance) {
                    continue;
                }
                self.send_to(Kind::Check, instance, &base, sent, |http, base| {
                    http.get(format!("{base}/verify")).header("authorization", format!("Token {text}"))
                })
                .await;
            }
        }
    }

    /// Log out the oldest token held, in its own dialect.
    async fn logout(&mut self) {
        if self.ledger.held.is_empty() {
            return self.login(Dialect::Usertoken).await;
        }
        let token = self.ledger.held.remove(0);
        self.warm(std::slice::from_ref(&token)).await;
        let text = token.text.clone();
        let (kind, path, scheme) = match token.dialect {
            Dialect::Knox => (Kind::KnoxLogout, "/auth/logout/", "Token"),
            Dialect::Usertoken => (Kind::UsertokenLogout, "/auth/logout", "Bearer"),
        };
        let (answer, _) = self
            .send(kind, |http, base| {
                http.post(format!("{base}{path}")).header("authorization", format!("{scheme} {text}"))
            })
            .await;
        self.revoked(&answer, vec![token]);
    }

    /// knox's logoutall with the newest knox token held: every knox token held is revoked,
    /// the usertoken ones are not.
    async fn logoutall(&mut self) {
        let knox: Vec<Token> = self.ledger.held.iter().filter(|t| t.dialect == Dialect::Knox).cloned().collect();
        let Some(newest) = knox.last().cloned() else { return self.login(Dialect::Knox).await };
        self.warm(&knox).await;
        let text = newest.text.clone();
        let (answer, _) = self
            .send(Kind::Logoutall, |http, base| {
                http.post(format!("{base}/auth/logoutall/")).header("authorization", format!("Token {text}"))
            })
            .await;
        self.ledger.held.retain(|t| t.dialect != Dialect::Knox);
        self.revoked(&answer, knox);
    }

    /// Book `tokens` as revoked (and probe the replicas for them) if the logout answered 200,
    /// or as of unknown fate if it did not answer.
    fn revoked(&mut self, answer: &Answer, tokens: Vec<Token>) {
        if *answer != Answer::Status(200) {
            self.ledger.unknown.extend(tokens);
            return;
        }
        let probe = probe(self.http.clone(), Arc::clone(&self.cluster), tokens.clone(), Instant::now());
        self.ledger.probes.push(tokio::spawn(probe));
        self.ledger.revoked.extend(tokens);
    }
}

/// The source chain of a transport error, one message.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn verify(http: &reqwest::Client, base: &str, token: &str) -> Answer {
    let resp = http.get(format!("{base}/verify")).header("authorization", format!("Token {token}")).send().await;
    match resp {
        Ok(resp) => Answer::Status(resp.status().as_u16()),
        Err(e) => Answer::Transport(error_chain(&e)),
    }
}

/// How soon the replicas refused the tokens of logouts.
#[derive(Default)]
struct ProbeReport {
    /// From a logout's answer to the answer of the first check refusing its token, one per
    /// (token, replica): an upper bound of the replica's lag, by one check's round trip.
    lags: Vec<Duration>,
    failures: Vec<String>,
    checks: usize,
    /// Pairs dropped because their replica left the rotation meanwhile.
    skipped: usize,
}

impl ProbeReport {
    fn add(&mut self, other: ProbeReport) {
        self.lags.extend(other.lags);
        self.failures.extend(other.failures);
        self.checks += other.checks;
        self.skipped += other.skipped;
    }

    fn summary(&mut self) -> String {
        self.lags.sort();
        let at = |q: f64| {
            let i = ((self.lags.len().saturating_sub(1)) as f64 * q).round() as usize;
            self.lags.get(i).copied().unwrap_or_default()
        };
        format!(
            "revocation lag over {} (token, replica) pairs ({} probe checks, {} pairs left rotation): \
             median {:.1?}, p99 {:.1?}, max {:.1?}",
            self.lags.len(),
            self.checks,
            self.skipped,
            at(0.5),
            at(0.99),
            at(1.0)
        )
    }
}

/// Check each of `tokens` on every replica in rotation until it refuses it, for at most
/// `LAG_BOUND` after `answered` (when the logout answered); the pairs in parallel, so that
/// one's lag does not include the others' checks.
async fn probe(http: reqwest::Client, cluster: Arc<Cluster>, tokens: Vec<Token>, answered: Instant) -> ProbeReport {
    let pairs = cluster.snapshot().into_iter().flat_map(|(id, base)| tokens.iter().map(move |t| (id, base.clone(), t)));
    let mut report = ProbeReport::default();
    let reports = futures::future::join_all(pairs.map(|(id, base, token)| {
        let (http, cluster) = (&http, &cluster);
        async move {
            let mut report = ProbeReport::default();
            loop {
                if !cluster.contains(id) {
                    report.skipped += 1;
                    return report;
                }
                // why the time sent decides: a check sent within the bound whose answer a busy
                // machine delays past it says nothing against the replica.
                let sent = answered.elapsed();
                let answer = verify(http, &base, &token.text).await;
                report.checks += 1;
                match answer {
                    Answer::Status(401) => report.lags.push(answered.elapsed()),
                    Answer::Status(200) if sent <= LAG_BOUND => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Answer::Status(200) => report.failures.push(format!(
                        "{} still accepts a revoked {:?} token {sent:?} after the logout",
                        cluster.name(id),
                        token.dialect
                    )),
                    Answer::Transport(_) if !cluster.contains(id) => report.skipped += 1,
                    answer => report.failures.push(format!(
                        "{}: checking a revoked {:?} token: {answer:?}",
                        cluster.name(id),
                        token.dialect
                    )),
                }
                return report;
            }
        }
    }))
    .await;
    reports.into_iter().for_each(|r| report.add(r));
    report
}

/// Digest → revoked, for every row of the tokens table.
async fn token_rows(db: &TestDb) -> HashMap<Vec<u8>, bool> {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let rows: Vec<(Vec<u8>, bool)> =
        sqlx::query_as("SELECT digest, revoked_at IS NOT NULL FROM tokens").fetch_all(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    rows.into_iter().collect()
}

fn digest(token: &str) -> Vec<u8> {
    PlainToken::new(token).digest().as_bytes().to_vec()
}

/// `tokenauth throttle list --json`, with the replicas' request timeout (the buckets of
/// attempts in flight are as long as it).
async fn throttle_list(db: &TestDb) -> Vec<Value> {
    let mut cmd = command(&["--database-url", &db.url, "throttle", "list", "--json"]);
    timeouts(&mut cmd);
    serde_json::from_str(&ok(&run(cmd, None).await)).unwrap()
}

/// No failure, no lockout, and at most `in_flight` attempts in flight per counter.
fn throttle_problems(counters: &[Value], in_flight: usize, when: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for c in counters {
        let subject = &c["subject"];
        if c["failures"] != 0 || c["lockouts"] != 0 || !c["locked_until"].is_null() {
            problems.push(format!("{when}: throttle counter {subject} holds failures or a lockout: {c}"));
        }
        if c["in_flight"].as_u64().unwrap() > in_flight as u64 {
            problems.push(format!("{when}: throttle counter {subject} holds more than {in_flight} place(s): {c}"));
        }
    }
    problems
}

/// `subject=in_flight` of the counters holding any.
fn in_flight_summary(counters: &[Value]) -> String {
    let held: Vec<String> = counters
        .iter()
        .filter(|c| c["in_flight"] != 0)
        .map(|c| format!("{}={}", c["subject"].as_str().unwrap_or("?"), c["in_flight"]))
        .collect();
    if held.is_empty() { "none".into() } else { held.join(" ") }
}
