//! End to end: the real binary, started with `tokenauth serve`, over real HTTP, on both
//! backends. Users and tokens are made with the CLI, also while the server runs. Covers the
//! usertoken and knox flows, that secrets never reach the logs, graceful shutdown on SIGTERM
//! and SIGINT, and the runtime contract a container relies on (`TOKENAUTH_BIND`).

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::cli::{admin, assert_millis_near, command, is_knox_token, jwt_parts, now_millis, ok, run, stderr};
use crate::helpers::{Backend, TestDb};

const PASSWORD: &str = "e2e-Pa55word-not-for-logs";
/// Bound on every wait: server start, a log line, process exit.
const WAIT: Duration = Duration::from_secs(30);

/// A running `tokenauth serve`, killed when dropped. Its stderr is kept, line by line.
struct Server {
    child: Child,
    /// The address the server logged.
    logged: SocketAddr,
    /// Where to connect: the logged address, with 127.0.0.1 for an unspecified IP.
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// `tokenauth serve --bind 127.0.0.1:0 --database-url URL`.
    async fn serve(db: &TestDb) -> Server {
        Server::spawn(command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url])).await
    }

    /// Start a prepared `serve` command with debug logging and wait until it listens.
    async fn spawn(mut cmd: std::process::Command) -> Server {
        cmd.env("RUST_LOG", "trace").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            logged: SocketAddr::from(([0, 0, 0, 0], 0)),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            logs,
            reader: Some(reader),
        };
        let line = server.wait_for_log("listening on http://").await;
        // The address ends where address characters end (text logs: a space; JSON logs: a quote).
        let rest = line.split("listening on http://").nth(1).unwrap();
        let end = rest.find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c))).unwrap_or(rest.len());
        let logged = &rest[..end];
        server.logged = logged.parse().unwrap_or_else(|e| panic!("{logged:?} in {line:?}: {e}"));
        server.addr = server.logged;
        if server.addr.ip().is_unspecified() {
            server.addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Wait for a stderr line containing `needle` and return it; fail if the server exits first.
    async fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tokenauth exited ({status}) before logging {needle:?}; stderr:\n{}", self.logs().join("\n"));
            }
            assert!(Instant::now() < deadline, "no {needle:?} in stderr:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal (`TERM`, `INT`) with the `kill` command.
    fn signal(&self, name: &str) {
        let status =
            std::process::Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success(), "kill -{name} failed");
    }

    /// Wait for the process to exit, then for its stderr to be read to the end.
    async fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "tokenauth did not exit; stderr:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }

    /// Stop with `signal` and assert a clean exit (status 0) within `WAIT`.
    async fn stop(&mut self, signal: &str) {
        self.signal(signal);
        let status = self.wait_for_exit().await;
        assert_eq!(status.code(), Some(0), "exit after SIG{signal}: {status}; stderr:\n{}", self.logs().join("\n"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    // why no_proxy: the tests talk to 127.0.0.1 only, whatever HTTP_PROXY says.
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Status and body (JSON, or `Value::Null` when empty) of a response.
async fn parts(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"))
    };
    (status, value)
}

async fn add_alice(db: &TestDb) {
    ok(&admin(db, &["user", "add", "alice", "--password-stdin"], Some(&format!("{PASSWORD}\n"))).await);
}

async fn knox_login(http: &reqwest::Client, server: &Server) -> String {
    let resp = http.post(server.url("/auth/login/")).json(&json!({"username": "alice", "password": PASSWORD}));
    let (status, body) = parts(resp.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expiry"], Value::Null, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(is_knox_token(&token), "{token}");
    token
}

async fn knox_post(http: &reqwest::Client, server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let resp = http.post(server.url(path)).header("authorization", format!("Token {token}")).send().await.unwrap();
    parts(resp).await
}

fn invalid_token() -> (StatusCode, Value) {
    (StatusCode::UNAUTHORIZED, json!({"detail": "Invalid token."}))
}

/// The access log carries the resolved client IP and a redacted query, at every log level.
/// The client binds 127.0.0.1 (a trusted proxy here) or 127.0.0.2 (not trusted), so the test
/// proves which address tokenauth believed.
#[tokio::test]
async fn access_log_has_the_client_ip_and_redacts_the_query() {
    let db = TestDb::new(&Backend::Sqlite).await;
    add_alice(&db).await;
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]");
    let mut server = Server::spawn(cmd).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from(ip))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (proxy, stranger) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let resp = proxy.get(server.url("/healthz")).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = stranger.get(server.url("/healthz")).header("x-forwarded-for", "203.0.113.10").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token = knox_login(&proxy, &server).await;
    let resp = proxy.get(server.url(&format!("/nope?token={token}&x_key=k3y-s3cret&page=2"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    server.stop("TERM").await;

    let logs = server.logs().join("\n");
    assert!(logs.contains("client_ip=203.0.113.9"), "a trusted proxy's X-Forwarded-For is believed:\n{logs}");
    assert!(logs.contains("client_ip=127.0.0.2"), "an untrusted peer is itself the client:\n{logs}");
    assert!(!logs.contains("203.0.113.10"), "an untrusted peer's X-Forwarded-For was believed:\n{logs}");
    assert!(logs.contains("query=token=REDACTED&x_key=REDACTED&page=2"), "{logs}");
    for secret in [token.as_str(), "k3y-s3cret", PASSWORD] {
        assert!(!logs.contains(secret), "{secret:?} logged:\n{logs}");
    }
}

backend_tests!(
    dialects_work_over_http_and_secrets_stay_out_of_the_logs,
    sigterm_lets_an_in_flight_request_finish,
    bind_from_env_on_all_interfaces_and_sigint_stops,
    webitel_seed_curl_commands_log_in_and_out,
    webitel_cli_tokens_log_out_through_curl_across_key_rotations,
    webitel_servers_on_one_database_share_the_generated_key,
);

async fn dialects_work_over_http_and_secrets_stay_out_of_the_logs(backend: Backend) {
    let db = TestDb::new(&backend).await;
    add_alice(&db).await;
    let mut server = Server::serve(&db).await;
    let http = client();
    let mut secrets = vec![PASSWORD.to_owned()];
    if let Some(db_password) = url::Url::parse(&db.url).unwrap().password() {
        secrets.push(format!(":{db_password}@"));
    }

    for path in ["/healthz", "/readyz"] {
        let resp = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }

    // usertoken: login (Basic), bump and logout (Bearer).
    let resp = http.post(server.url("/auth/login")).basic_auth("alice", Some(PASSWORD)).send().await.unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&token).unwrap();
    assert_eq!((body["enabled"].clone(), body["version"].clone()), (json!(true), json!(0)), "{body}");
    secrets.push(token.clone());
    let bump = || http.post(server.url("/auth/bump")).bearer_auth(&token).send();
    let (status, body) = parts(bump().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["lastLoginTime"].is_string(), "{body}");
    let resp = http.post(server.url("/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(parts(resp).await, (StatusCode::OK, json!({"success": true})));
    let (status, body) = parts(bump().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["name"], "AuthError", "{body}");

    // knox: logout revokes the presented token, logoutall all of alice's.
    let first = knox_login(&http, &server).await;
    let second = knox_login(&http, &server).await;
    let third = knox_login(&http, &server).await;
    assert!(first != second && second != third && first != third);
    secrets.extend([first.clone(), second.clone(), third.clone()]);
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &first).await, (StatusCode::OK, Value::Null));
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &first).await, invalid_token());
    assert_eq!(knox_post(&http, &server, "/auth/logoutall/", &second).await, (StatusCode::OK, Value::Null));
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &second).await, invalid_token());
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &third).await, invalid_token(), "logoutall revoked it too");

    // A token minted by the CLI while the server runs works at once.
    let minted = ok(&admin(&db, &["token", "issue", "alice", "--dialect", "knox", "--static"], None).await);
    let minted = minted.trim_end().to_owned();
    secrets.push(minted.clone());
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &minted).await, (StatusCode::OK, Value::Null));
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &minted).await, invalid_token());

    // Disabling alice with the CLI stops her tokens at once; enabling her brings them back.
    let kept = knox_login(&http, &server).await;
    secrets.push(kept.clone());
    ok(&admin(&db, &["user", "disable", "alice"], None).await);
    let inactive = (StatusCode::UNAUTHORIZED, json!({"detail": "User inactive or deleted."}));
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &kept).await, inactive);
    let resp = http.post(server.url("/auth/login/")).json(&json!({"username": "alice", "password": PASSWORD}));
    let refused = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
    assert_eq!(parts(resp.send().await.unwrap()).await, (StatusCode::BAD_REQUEST, refused));
    ok(&admin(&db, &["user", "enable", "alice"], None).await);
    assert_eq!(knox_post(&http, &server, "/auth/logout/", &kept).await, (StatusCode::OK, Value::Null));

    // Secrets never logged, with every line flushed: stop the server first.
    server.stop("TERM").await;
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("/auth/login/")), "the access log was captured:\n{}", logs.join("\n"));
    assert!(logs.iter().any(|l| l.contains("DEBUG")), "debug logging was on:\n{}", logs.join("\n"));
    for line in &logs {
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "secret {secret:?} logged: {line}");
        }
    }
}

async fn sigterm_lets_an_in_flight_request_finish(backend: Backend) {
    let db = TestDb::new(&backend).await;
    add_alice(&db).await;
    let mut server = Server::serve(&db).await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /auth/login/ HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // why: let the server read the headers and start the request before the signal.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");
    server.wait_for_log("shutting down").await;

    // No new connections while the in-flight request drains.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.child.try_wait().unwrap().is_none(), "exited before answering the in-flight request");

    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("no response").unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let (_, json_body) = response.split_once("\r\n\r\n").unwrap();
    let json_body: Value = serde_json::from_str(json_body).unwrap_or_else(|e| panic!("{e}: {response}"));
    let token = json_body["token"].as_str().unwrap();
    assert!(is_knox_token(token), "{response}");

    let answered = Instant::now();
    let status = server.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", server.logs().join("\n"));
    assert!(answered.elapsed() < Duration::from_secs(5), "exit took {:?} after the last response", answered.elapsed());
    assert!(TcpStream::connect(server.addr).await.is_err(), "connections are refused after shutdown");
    assert!(server.logs().iter().any(|l| l.contains("stopped")), "{}", server.logs().join("\n"));

    // The token issued during shutdown was committed: it works after a restart.
    let server = Server::serve(&db).await;
    let (status, body) = knox_post(&client(), &server, "/auth/logout/", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn bind_from_env_on_all_interfaces_and_sigint_stops(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut cmd = command(&["serve", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_BIND", "0.0.0.0:0");
    let mut server = Server::spawn(cmd).await;
    assert_eq!(server.logged.ip(), Ipv4Addr::UNSPECIFIED, "listening on all interfaces: {}", server.logged);
    assert_ne!(server.logged.port(), 0);
    assert_eq!(server.addr.ip(), Ipv4Addr::LOCALHOST);
    let resp = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop("INT").await;
}

/// `serve --bind` beats `TOKENAUTH_BIND`, which beats the file (`config` cannot show serve's
/// flag, so this starts the server).
#[tokio::test]
async fn serve_bind_flag_beats_env_which_beats_the_file() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenauth.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:1111\"\n").unwrap();
    let file = file.to_str().unwrap();
    // A port we hold: binding it must fail, which shows which layer serve used.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = held.local_addr().unwrap();

    let mut env_only = command(&["--config", file, "serve", "--database-url", &db.url]);
    env_only.env("TOKENAUTH_BIND", held.to_string());
    let out = run(env_only, None).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with(&format!("error: cannot listen on {held}")), "env beats the file: {last}");

    let mut with_flag = command(&["--config", file, "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    with_flag.env("TOKENAUTH_BIND", held.to_string());
    let mut server = Server::spawn(with_flag).await;
    assert_eq!(server.logged.ip(), Ipv4Addr::LOCALHOST);
    assert!(![0, 1111, held.port()].contains(&server.logged.port()), "--bind wins: {}", server.logged);
    let resp = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop("TERM").await;
}

/// The container image's runtime contract, checked without Docker on the same binary: as an
/// unprivileged user (the image uses uid 10001; here uid 65534 when the tests run as root),
/// with the image's environment (`TOKENAUTH_BIND=0.0.0.0:...`, JSON logs) and its data
/// directory as the working directory, the server creates its database there, answers
/// `tokenauth healthcheck` (the image's HEALTHCHECK), and stops on SIGTERM with exit 0.
#[tokio::test]
async fn runs_as_an_unprivileged_user_like_the_image() {
    const NOBODY: u32 = 65534;
    let data = tempfile::tempdir().unwrap();
    let as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap();
    let mut cmd = if as_root {
        std::os::unix::fs::chown(data.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}"), "--clear-groups", "--"]);
        cmd.arg(env!("CARGO_BIN_EXE_tokenauth")).arg("serve");
        for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("TOKENAUTH_")) {
            cmd.env_remove(name);
        }
        cmd
    } else {
        command(&["serve"])
    };
    cmd.current_dir(data.path()).env("TOKENAUTH_BIND", "0.0.0.0:0").env("TOKENAUTH_LOG_FORMAT", "json");
    let mut server = Server::spawn(cmd).await;
    assert!(server.logged.ip().is_unspecified(), "{}", server.logged);

    let db = data.path().join("tokenauth.db");
    assert!(db.is_file(), "the default database is created in the working directory");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&db).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "a new database (it holds password hashes) is private to its owner: {mode:o}");
    if as_root {
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&db).unwrap());
        assert_eq!(owner, NOBODY, "the server ran as the unprivileged user");
    }
    let json_line = server.logs().into_iter().find(|l| l.contains("listening on")).unwrap();
    serde_json::from_str::<Value>(&json_line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {json_line}"));

    let port = server.logged.port().to_string();
    for args in [&["healthcheck"][..], &["healthcheck", "--ready"][..]] {
        let mut check = command(args);
        check.env("TOKENAUTH_BIND", format!("0.0.0.0:{port}"));
        let out = run(check, None).await;
        assert_eq!(ok(&out).trim(), "ok");
    }
    server.stop("TERM").await;
    let mut check = command(&["healthcheck"]);
    check.env("TOKENAUTH_BIND", format!("127.0.0.1:{port}"));
    let out = run(check, None).await;
    assert_eq!(out.status.code(), Some(1), "healthcheck of a stopped server fails: {}", stderr(&out));
}

/// The role the webitel tests give `100@mydomain.com` (part of the seed's root ACL).
const SEED_ACL: &str = r#"{"cdr":["*"],"cdr/files":["*"],"account":["r","w"],"acl/roles":["*"]}"#;

/// Run the real `curl` with `args` (a seed command minus `curl`), preceded by options that
/// keep it quiet, bounded, off any proxy and print the status and content type after the body.
async fn curl(args: &[&str]) -> (u16, String, Value) {
    match std::process::Command::new("curl").arg("--version").stdout(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`curl --version` failed ({status}): the webitel e2e tests need a working curl"),
        Err(e) => panic!("cannot run `curl` ({e}): the webitel e2e tests run the seed's curl commands; install curl"),
    }
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--noproxy", "*"]);
    cmd.args(["--write-out", "\n%{http_code} %{content_type}"]).args(args);
    let out = run(cmd, None).await;
    assert!(out.status.success(), "curl {args:?} failed: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, trailer) = text.rsplit_once('\n').unwrap();
    let (status, content_type) = trailer.split_once(' ').unwrap_or((trailer, ""));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("curl {args:?}: not JSON ({e}): {text}"));
    (status.parse().unwrap(), content_type.to_owned(), body)
}

/// The seed's login command, verbatim but for the URL.
async fn seed_login(server: &Server) -> (u16, String, Value) {
    let url = server.url("/login");
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"username":"100@mydomain.com","password":"secret"}"#,
        &url,
    ])
    .await
}

/// The seed's logout command, verbatim but for the URL, the token and the key.
async fn seed_logout(server: &Server, token: &str, key: &str) -> (u16, Value) {
    let url = server.url("/logout");
    let (status, content_type, body) =
        curl(&["-X", "POST", "-H", &format!("X-Access-Token: {token}"), "-H", &format!("X-Key: {key}"), &url]).await;
    assert_eq!(content_type, "application/json", "{status} {body}");
    (status, body)
}

fn logged_out() -> (u16, Value) {
    (200, json!({"status": "OK", "info": "Successful logout."}))
}

fn invalid_credentials() -> (u16, Value) {
    (401, json!({"status": "error", "info": "Invalid credentials"}))
}

/// The role `root` (code 2, `SEED_ACL`) and the seed's user with password `secret` and that role.
async fn add_seed_user(db: &TestDb) {
    ok(&admin(db, &["role", "add", "root", "--code", "2", "--acl", SEED_ACL], None).await);
    ok(&admin(db, &["user", "add", "100@mydomain.com", "--password-stdin", "--role", "root"], Some("secret\n")).await);
}

/// A successful seed login: checks the whole body and the JWT; returns (key, token).
#[track_caller]
fn check_login(response: (u16, String, Value)) -> (String, String) {
    let (status, content_type, body) = response;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["acl", "domain", "expires", "key", "role", "roleName", "token", "username"], "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&key).unwrap().get_version_num(), 4, "{body}");
    assert_eq!(body["username"], "100@mydomain.com");
    assert_eq!(body["domain"], "mydomain.com");
    assert_eq!(body["role"], 2);
    assert_eq!(body["roleName"], "root");
    let acl: Value = serde_json::from_str(SEED_ACL).unwrap();
    assert_eq!(body["acl"], acl);
    let expires = body["expires"].as_i64().unwrap_or_else(|| panic!("expires is an integer: {body}"));
    assert!(expires > now_millis(), "in the future: {body}");
    assert_millis_near(expires, Duration::from_secs(24 * 3600));

    let token = body["token"].as_str().unwrap().to_owned();
    let (header, payload) = jwt_parts(&token);
    assert_eq!(header["alg"], "HS256", "{header}");
    assert_eq!(payload["exp"].as_i64(), Some(expires), "exp is `expires`, in milliseconds: {payload}");
    assert_eq!(payload["jti"], key.as_str(), "{payload}");
    assert_eq!(payload["acl"], acl, "{payload}");
    (key, token)
}

async fn webitel_seed_curl_commands_log_in_and_out(backend: Backend) {
    let db = TestDb::new(&backend).await;
    add_seed_user(&db).await;
    let mut server = Server::serve(&db).await;

    let (key, token) = check_login(seed_login(&server).await);
    assert_eq!(jwt_parts(&token).0["kid"], "initial", "the key generated on first use signs");
    assert_eq!(seed_logout(&server, &token, &key).await, logged_out());
    assert_eq!(seed_logout(&server, &token, &key).await, invalid_credentials(), "a revoked token");

    // A second login is a new token; a wrong key or a tampered token does not revoke it.
    let (key2, token2) = check_login(seed_login(&server).await);
    assert_ne!((&key2, &token2), (&key, &token));
    assert_eq!(seed_logout(&server, &token2, &key).await, invalid_credentials(), "another token's key");
    let (head, signature) = token2.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &signature[1..]);
    assert_eq!(seed_logout(&server, &tampered, &key2).await, invalid_credentials(), "a tampered signature");
    assert_eq!(seed_logout(&server, &token2, &key2).await, logged_out());

    server.stop("TERM").await;
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("/logout")), "the access log was captured:\n{}", logs.join("\n"));
    for line in &logs {
        for secret in [&token, &token2] {
            assert!(!line.contains(secret.as_str()), "token logged: {line}");
        }
    }
}

async fn webitel_cli_tokens_log_out_through_curl_across_key_rotations(backend: Backend) {
    let db = TestDb::new(&backend).await;
    add_seed_user(&db).await;
    let mint = |args: &'static [&'static str]| {
        let db = &db;
        async move {
            let mut all = vec!["token", "issue", "100@mydomain.com", "--dialect", "webitel"];
            all.extend_from_slice(args);
            let out = ok(&admin(db, &all, None).await);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out:?}");
            (lines[0].to_owned(), lines[1].to_owned())
        }
    };
    let kid = |token: &str| jwt_parts(token).0["kid"].as_str().unwrap().to_owned();

    let (old_key, old_token) = mint(&[]).await;
    let (static_key, static_token) = mint(&["--static"]).await;
    let rotated = ok(&admin(&db, &["keys", "rotate"], None).await).trim_end().to_owned();
    let (new_key, new_token) = mint(&[]).await;
    assert_eq!((kid(&old_token), kid(&static_token)), ("initial".to_owned(), "initial".to_owned()));
    assert_eq!(kid(&new_token), rotated);

    let server = Server::serve(&db).await;
    assert_eq!(seed_logout(&server, &old_token, &old_key).await, logged_out(), "signed before the rotation");
    assert_eq!(seed_logout(&server, &new_token, &new_key).await, logged_out(), "signed after the rotation");
    assert_eq!(seed_logout(&server, &static_token, &old_key).await, invalid_credentials(), "the key of another token");
    assert_eq!(seed_logout(&server, &static_token, &static_key).await, logged_out());
    for (token, key) in [(&old_token, &old_key), (&new_token, &new_key), (&static_token, &static_key)] {
        assert_eq!(seed_logout(&server, token, key).await, invalid_credentials());
    }
    let (login_key, login_token) = check_login(seed_login(&server).await);
    assert_eq!(kid(&login_token), rotated, "the server signs with the newest key");

    // A key rotated in while the server runs: a token it signs is accepted once the server
    // reloads its keys, which an unknown kid triggers at most once per 5 s (token::jwt).
    let during = ok(&admin(&db, &["keys", "rotate"], None).await).trim_end().to_owned();
    let (key, token) = mint(&[]).await;
    assert_eq!(kid(&token), during);
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let answer = seed_logout(&server, &token, &key).await;
        if answer == logged_out() {
            break;
        }
        assert_eq!(answer, invalid_credentials());
        assert!(Instant::now() < deadline, "a token signed by a key rotated in is still refused");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seed_logout(&server, &login_token, &login_key).await, logged_out(), "older keys still verify");
}

async fn webitel_servers_on_one_database_share_the_generated_key(backend: Backend) {
    let db = TestDb::new(&backend).await;
    // Migrated but keyless (`migrate` creates no key): both servers race to generate the first
    // key (a fixed kid); one wins and both must sign and verify with the winner.
    ok(&admin(&db, &["migrate"], None).await);
    servers_share_the_generated_key(&db).await;
}

/// Two servers started at once on a database nobody has used yet (replicas, or a server and
/// a CLI command, on their first start): both must come up, migrated once, sharing one key.
mod webitel_servers_starting_together_on_a_fresh_database {
    use crate::helpers::{Backend, TestDb};

    #[tokio::test]
    async fn sqlite() {
        super::servers_share_the_generated_key(&TestDb::new(&Backend::Sqlite).await).await
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(backend) = Backend::postgres() {
            super::servers_share_the_generated_key(&TestDb::new(&backend).await).await
        }
    }
}

async fn servers_share_the_generated_key(db: &TestDb) {
    let (a, b) = tokio::join!(Server::serve(db), Server::serve(db));
    add_seed_user(db).await;
    let keys = ok(&admin(db, &["keys", "list"], None).await);
    assert_eq!(keys.lines().count(), 2, "one key, shared: {keys}");

    let (key, token) = check_login(seed_login(&a).await);
    assert_eq!(seed_logout(&b, &token, &key).await, logged_out(), "a token from A logs out through B");
    assert_eq!(seed_logout(&a, &token, &key).await, invalid_credentials(), "and is revoked for A too");
    let (key, token) = check_login(seed_login(&b).await);
    assert_eq!(seed_logout(&a, &token, &key).await, logged_out(), "a token from B logs out through A");
}
