//! End to end: the real binary, started with `tokenauth serve`, over real HTTP, on both
//! backends. Users and tokens are made with the CLI, also while the server runs. Covers the
//! usertoken and knox flows, the webitel and dialer seeds' own curl commands (the dialer at
//! the prefix `/a`, its IP rules with real sockets from trusted and untrusted peers), that
//! secrets never reach the logs, graceful shutdown on SIGTERM and SIGINT, and the runtime
//! contract a container relies on (`TOKENAUTH_BIND`).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::cli::{
    assert_millis_near, group_list, is_knox_token, issue, jwt_parts, now_millis, reseller_list, reseller_tokens_of,
    tokens_of, user_list,
};
use crate::helpers::{Backend, TestDb};
use crate::process::{Server, WAIT, admin, client, command, ok, run, stderr};

const PASSWORD: &str = "e2e-Pa55word-not-for-logs";

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

/// `--log-format json`: one JSON object per line; each response line carries the request
/// id, method, matched route, client IP, status and latency; no secret in any line.
#[tokio::test]
async fn json_access_lines_carry_route_status_latency_and_request_id() {
    let db = TestDb::new(&Backend::Sqlite).await;
    add_alice(&db).await;
    let cmd = command(&["--log-format", "json", "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    let mut server = Server::spawn(cmd).await;
    let http = client();
    let token = knox_login(&http, &server).await;
    let resp = http
        .get(server.url("/verify"))
        .header("authorization", format!("Token {token}"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123", "the request id comes back");
    let resp = http.get(server.url("/verify")).header("authorization", "Token nope").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    server.stop("TERM").await;

    let logs = server.logs();
    let lines: Vec<Value> =
        logs.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let finished = |request_id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == request_id && l["message"] == "finished processing request")
            .unwrap_or_else(|| panic!("no access line for {request_id}:\n{}", logs.join("\n")))
            .clone()
    };
    let ok = finished("trace-me-123");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["route"], "/verify");
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert_eq!(ok["status"], 200);
    assert!(ok["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "a number of milliseconds: {ok}");
    let refused = finished(&generated);
    assert_eq!(refused["status"], 401);
    let login = lines.iter().find(|l| l["route"] == "/auth/login/" && l["status"] == 200);
    assert!(login.is_some(), "the login has its line too");
    // Every line is one flat object: the four common keys, nothing nested.
    for line in &lines {
        let ts = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(ts.ends_with('Z') && OffsetDateTime::parse(ts, &Rfc3339).is_ok(), "RFC 3339 UTC: {line}");
        assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&line["level"].as_str().unwrap()), "{line}");
        assert!(line["message"].is_string() && line["target"].is_string(), "{line}");
        assert!(line.as_object().unwrap().values().all(|v| !v.is_object() && !v.is_array()), "flat: {line}");
    }
    for line in &logs {
        for secret in [token.as_str(), PASSWORD, "Token nope"] {
            assert!(!line.contains(secret), "{secret:?} logged: {line}");
        }
    }
}

/// `http.access_log = false`: requests are served and the server logs what it logs at INFO
/// (its start), but no access line.
#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    let db = TestDb::new(&Backend::Sqlite).await;
    add_alice(&db).await;
    let mut cmd = command(&["--log-format", "json", "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_HTTP__ACCESS_LOG", "false");
    let mut server = Server::spawn_logging(cmd, "info").await;
    let http = client();
    let token = knox_login(&http, &server).await;
    let resp = http.get(server.url("/verify")).header("authorization", format!("Token {token}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop("TERM").await;
    let logs = server.logs().join("\n");
    assert!(logs.contains("listening on"), "{logs}");
    assert!(!logs.contains("finished processing request"), "no access line: {logs}");
}

backend_tests!(
    pgbouncer: dialects_work_over_http_and_secrets_stay_out_of_the_logs,
    sigterm_lets_an_in_flight_request_finish,
    bind_from_env_on_all_interfaces_and_sigint_stops,
    webitel_seed_curl_commands_log_in_and_out,
    webitel_cli_tokens_log_out_through_curl_across_key_rotations,
    webitel_servers_on_one_database_share_the_generated_key,
    dialer_seed_curl_commands_log_in_and_out,
    dialer_cli_static_tokens_log_out_through_curl_until_revoked,
    dialer_ip_rules_believe_forwarded_addresses_only_from_trusted_proxies,
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
    assert!(!server.has_exited(), "exited before answering the in-flight request");

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
    let (status, content_type, body) = curl_text(args).await;
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("curl {args:?}: not JSON ({e}): {body}"));
    (status, content_type, body)
}

/// `curl` with the body as sent, unparsed.
async fn curl_text(args: &[&str]) -> (u16, String, String) {
    match std::process::Command::new("curl").arg("--version").stdout(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`curl --version` failed ({status}): the e2e tests need a working curl"),
        Err(e) => panic!("cannot run `curl` ({e}): the e2e tests run the seeds' curl commands; install curl"),
    }
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--noproxy", "*"]);
    cmd.args(["--write-out", "\n%{http_code} %{content_type}"]).args(args);
    let out = run(cmd, None).await;
    assert!(out.status.success(), "curl {args:?} failed: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, trailer) = text.rsplit_once('\n').unwrap();
    let (status, content_type) = trailer.split_once(' ').unwrap_or((trailer, ""));
    (status.parse().unwrap(), content_type.to_owned(), body.to_owned())
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

// ---- dialer (seed 001): the seed's curl commands against `serve` with the prefix `/a` ----

/// The seed's credentials, kept as the seed writes them.
const DIALER_USER: &str = "user@example.com";
const DIALER_RESELLER: &str = "reseller_name";
const DIALER_PASSWORD: &str = "your_password";

/// `tokenauth serve` with the dialer mounted at `/a`, as the seed's URLs have it, plus `env`.
async fn serve_dialer(db: &TestDb, env: &[(&str, &str)]) -> Server {
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_DIALER__PREFIX", "/a");
    for (name, value) in env {
        cmd.env(name, value);
    }
    Server::spawn(cmd).await
}

/// The seed's reseller (balance 1000.00, as in the seed's answer) owning the user group
/// `agents`, and the seed's user in that group with an SMS sender. Returns (user id,
/// reseller id, group id) as `user list`, `reseller list` and `group list` show them.
async fn add_dialer_seed_principals(db: &TestDb) -> (Value, Value, Value) {
    let password = format!("{DIALER_PASSWORD}\n");
    let reseller = ["reseller", "add", DIALER_RESELLER, "--password-stdin", "--balance", "1000.00"];
    ok(&admin(db, &reseller, Some(&password)).await);
    ok(&admin(db, &["group", "add", "agents", "--reseller", DIALER_RESELLER], None).await);
    let user = ["user", "add", DIALER_USER, "--password-stdin", "--group", "agents", "--sms-from", "HelloHunter"];
    ok(&admin(db, &user, Some(&password)).await);
    let user_id = user_list(db).await[DIALER_USER]["id"].clone();
    let reseller_id = reseller_list(db).await[0]["id"].clone();
    let group_id = group_list(db).await[0]["id"].clone();
    (user_id, reseller_id, group_id)
}

/// The seed's user login, verbatim but for the URL, after `before` (curl options such as
/// `--interface`, or extra headers); with `body` instead of the seed's when given.
async fn seed_dialer_user_login(server: &Server, before: &[&str], body: Option<&str>) -> (u16, String, String) {
    let url = server.url("/a/session.json");
    let body = body.unwrap_or(r#"{ "login": "user@example.com", "password": "your_password" }"#);
    let seed = ["-X", "POST", &url, "-H", "Content-Type: application/json", "-d", body];
    curl_text(&[before, &seed[..]].concat()).await
}

/// The seed's reseller login, verbatim but for the URL, after `before`.
async fn seed_dialer_reseller_login(server: &Server, before: &[&str], body: Option<&str>) -> (u16, String, String) {
    let url = server.url("/a/v1/resellers/login.json");
    let body = body.unwrap_or(r#"{ "name": "reseller_name", "pass": "your_password" }"#);
    let seed = ["-X", "POST", &url, "-H", "Content-Type: application/json", "-d", body];
    curl_text(&[before, &seed[..]].concat()).await
}

/// `curl -X METHOD URL -H "Authorization: Bearer TOKEN"` (the seed's token commands), with
/// a JSON answer; `path` may carry `?token=`, and `token` may be `None` for no header.
async fn seed_dialer_token_command(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let url = server.url(path);
    let header = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-X", method, url.as_str()];
    if let Some(header) = &header {
        args.extend(["-H", header.as_str()]);
    }
    let (status, content_type, body) = curl(&args).await;
    assert_eq!(content_type, "application/json", "{status} {body}");
    (status, body)
}

/// The seed's "Delete User Session".
async fn seed_dialer_user_logout(server: &Server, token: &str) -> (u16, Value) {
    seed_dialer_token_command(server, "DELETE", "/a/session.json", Some(token)).await
}

/// The seed's "Reseller Logout".
async fn seed_dialer_reseller_logout(server: &Server, token: &str) -> (u16, Value) {
    seed_dialer_token_command(server, "GET", "/a/v1/resellers/user/logout.json", Some(token)).await
}

fn dialer_success() -> (u16, Value) {
    (200, json!({"success": true}))
}

fn dialer_invalid_token() -> (u16, Value) {
    (401, json!({"error": "Invalid or expired token"}))
}

/// Parse a login answer that must be a 200 with a JSON content type.
#[track_caller]
fn dialer_ok(response: (u16, String, String)) -> Value {
    let (status, content_type, body) = response;
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `token` of a login answer.
#[track_caller]
fn token_in(body: &Value) -> String {
    body["token"].as_str().unwrap_or_else(|| panic!("a token: {body}")).to_owned()
}

/// A refused login: its status and JSON body.
#[track_caller]
fn dialer_refused(response: (u16, String, String)) -> (u16, Value) {
    let (status, content_type, body) = response;
    assert_eq!(content_type, "application/json", "{status} {body}");
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

/// Now, in epoch seconds.
fn now_secs() -> i64 {
    now_millis() / 1000
}

/// Check a dialer JWT's header and its time claims (`exp` in **seconds**, `lifetime` after
/// `iat`, or absent for `None`); return its payload.
#[track_caller]
fn dialer_jwt(token: &str, lifetime: Option<i64>) -> Value {
    let (header, payload) = jwt_parts(token);
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT", "kid": "initial"}), "{token}");
    let iat = payload["iat"].as_i64().unwrap_or_else(|| panic!("iat is an integer: {payload}"));
    assert!((iat - now_secs()).abs() < 60, "iat is now, in seconds: {payload}");
    match lifetime {
        Some(lifetime) => {
            let exp = payload["exp"].as_i64().unwrap_or_else(|| panic!("exp is an integer: {payload}"));
            // why 5 s: exp and iat are read from the clock around the password check.
            assert!((exp - iat - lifetime).abs() <= 5, "exp is {lifetime} s after iat, in seconds: {payload}");
        }
        None => assert!(payload.get("exp").is_none(), "a static token has no exp: {payload}"),
    }
    payload
}

/// The claims other than the times, for an exact comparison.
fn without_times(payload: &Value) -> Value {
    let mut payload = payload.clone();
    for claim in ["exp", "iat"] {
        payload.as_object_mut().unwrap().remove(claim);
    }
    payload
}

/// The only token id `token list` shows for (a user named) `name`.
async fn only_token_id(db: &TestDb, name: &str, reseller: bool) -> String {
    let listed = if reseller { reseller_tokens_of(db, name).await } else { tokens_of(db, name).await };
    assert_eq!(listed.len(), 1, "{listed:?}");
    listed.into_keys().next().unwrap()
}

/// Stop the server and assert its access log saw `paths` and no line holds any of `secrets`.
async fn assert_logs_keep_secrets(server: &mut Server, paths: &[&str], secrets: &[String]) {
    server.stop("TERM").await;
    let logs = server.logs();
    for path in paths {
        assert!(logs.iter().any(|l| l.contains(path)), "{path} in the access log:\n{}", logs.join("\n"));
    }
    for line in &logs {
        for secret in secrets {
            assert!(!line.contains(secret.as_str()), "secret {secret:?} logged: {line}");
        }
    }
}

async fn dialer_seed_curl_commands_log_in_and_out(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (user_id, reseller_id, group_id) = add_dialer_seed_principals(&db).await;
    let mut server = serve_dialer(&db, &[]).await;
    let day = 24 * 3600;
    let mut secrets = vec![DIALER_PASSWORD.to_owned()];

    // 1. Obtaining User Token.
    let body = dialer_ok(seed_dialer_user_login(&server, &[], None).await);
    let token = token_in(&body);
    secrets.push(token.clone());
    assert_eq!(body, json!({"user": {"id": user_id, "blocked": false}, "token": token}));
    let payload = dialer_jwt(&token, Some(day));
    assert!((payload["exp"].as_i64().unwrap() - (now_secs() + day)).abs() < 60, "login + 24 h: {payload}");
    let jti = only_token_id(&db, DIALER_USER, false).await;
    assert_eq!(
        without_times(&payload),
        json!({
            "type": "user", "admin": false, "id": user_id, "name": DIALER_USER,
            "sms_from": "HelloHunter", "user_group_id": group_id, "jti": jti,
        })
    );
    assert!(!user_list(&db).await[DIALER_USER]["last_login"].is_null(), "the login is recorded");

    // 3. Using the Token: `/a/some-endpoint` is the seed's placeholder for the rest of its
    // API, which tokenauth does not serve: a 404 in the dialer's shape.
    let (status, body) = seed_dialer_token_command(&server, "GET", "/a/some-endpoint", Some(&token)).await;
    assert_eq!(status, 404, "{body}");
    let fields = body.as_object().unwrap_or_else(|| panic!("an object: {body}"));
    assert!(fields.len() == 1 && fields["error"].is_string(), "{{\"error\": ...}}: {body}");

    // 4. Delete User Session: revokes the token, once.
    assert_eq!(seed_dialer_user_logout(&server, &token).await, dialer_success());
    assert_eq!(seed_dialer_user_logout(&server, &token).await, dialer_invalid_token());
    assert_eq!(tokens_of(&db, DIALER_USER).await[&jti]["state"], "revoked");

    // 2. Obtaining Reseller Token: the balance exactly as stored (1000.00), not as a float.
    let (status, content_type, text) = seed_dialer_reseller_login(&server, &[], None).await;
    assert!(text.contains(r#""user_balance":1000.00,"#), "{text}");
    let body = dialer_ok((status, content_type, text));
    let reseller_token = token_in(&body);
    secrets.push(reseller_token.clone());
    assert_eq!(
        body,
        json!({
            "token": reseller_token,
            "reseller": {"id": reseller_id, "name": DIALER_RESELLER},
            "user_groups": [{"id": group_id, "name": "agents"}],
            "user_balance": 1000.0,
            "version": env!("CARGO_PKG_VERSION"),
        })
    );
    let payload = dialer_jwt(&reseller_token, Some(day));
    let jti = only_token_id(&db, DIALER_RESELLER, true).await;
    assert_eq!(
        without_times(&payload),
        json!({"type": "reseller", "id": reseller_id, "name": DIALER_RESELLER, "jti": jti})
    );
    assert!(!reseller_list(&db).await[0]["last_login"].is_null(), "the login is recorded");

    // A user's token on the reseller logout and a reseller's on the user logout are refused,
    // and revoke nothing.
    let user_token = token_in(&dialer_ok(seed_dialer_user_login(&server, &[], None).await));
    secrets.push(user_token.clone());
    assert_eq!(seed_dialer_reseller_logout(&server, &user_token).await, dialer_invalid_token());
    assert_eq!(seed_dialer_user_logout(&server, &reseller_token).await, dialer_invalid_token());

    // Reseller Logout, once.
    assert_eq!(seed_dialer_reseller_logout(&server, &reseller_token).await, dialer_success());
    assert_eq!(seed_dialer_reseller_logout(&server, &reseller_token).await, dialer_invalid_token());
    assert_eq!(reseller_tokens_of(&db, DIALER_RESELLER).await[&jti]["state"], "revoked");

    // Real clients send `?token=` too; no token at all is its own 401.
    let path = format!("/a/session.json?token={user_token}");
    assert_eq!(seed_dialer_token_command(&server, "DELETE", &path, None).await, dialer_success());
    assert_eq!(seed_dialer_token_command(&server, "DELETE", &path, None).await, dialer_invalid_token());
    let missing = seed_dialer_token_command(&server, "DELETE", "/a/session.json", None).await;
    assert_eq!(missing, (401, json!({"error": "Token is missing"})));
    let resp = client().delete(server.url("/a/session.json")).bearer_auth(&user_token).send().await.unwrap();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="tokenauth", error="invalid_token""#));
    assert_eq!(parts(resp).await, (StatusCode::UNAUTHORIZED, json!({"error": "Invalid or expired token"})));

    // The seed's errors: wrong passwords; and the unprefixed paths are not served.
    let wrong = r#"{ "login": "user@example.com", "password": "not_your_password" }"#;
    let refused = dialer_refused(seed_dialer_user_login(&server, &[], Some(wrong)).await);
    assert_eq!(refused, (401, json!({"error": "Invalid login credentials"})));
    let wrong = r#"{ "name": "reseller_name", "pass": "not_your_password" }"#;
    let refused = dialer_refused(seed_dialer_reseller_login(&server, &[], Some(wrong)).await);
    assert_eq!(refused, (401, json!({"error": "Invalid ID or Password"})));
    let resp = client().post(server.url("/session.json")).json(&json!({"login": DIALER_USER, "password": "x"}));
    assert_eq!(resp.send().await.unwrap().status(), StatusCode::NOT_FOUND);

    assert_logs_keep_secrets(&mut server, &["/a/session.json", "/a/v1/resellers/login.json"], &secrets).await;
}

async fn dialer_cli_static_tokens_log_out_through_curl_until_revoked(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (user_id, reseller_id, _) = add_dialer_seed_principals(&db).await;
    let mut server = serve_dialer(&db, &[]).await;
    let mut secrets = vec![DIALER_PASSWORD.to_owned()];

    // Minted with the CLI while the server runs; a static token has no expiry and no exp.
    let user_static = ["--dialect", "dialer", "--static"];
    let reseller_static = ["--dialect", "dialer", "--static", "--reseller"];
    let mut mint = Vec::new();
    for (name, args) in [(DIALER_USER, &user_static[..]), (DIALER_RESELLER, &reseller_static[..])] {
        for _ in 0..3 {
            let (id, token, expires) = issue(&db, name, args).await;
            assert!(expires.is_null(), "{expires}");
            let payload = dialer_jwt(&token, None);
            assert_eq!(payload["jti"], id.as_str());
            secrets.push(token.clone());
            mint.push((id, token));
        }
    }
    let [(u1, user1), (u2, user2), (u3, user3), (r1, res1), (r2, res2), (r3, res3)] = &mint[..] else { unreachable!() };
    assert_eq!((&jwt_parts(user1).1["id"], &jwt_parts(res1).1["id"]), (&user_id, &reseller_id));

    // Revoked with `token revoke ID`: refused at once.
    ok(&admin(&db, &["token", "revoke", u1], None).await);
    ok(&admin(&db, &["token", "revoke", r1], None).await);
    assert_eq!(seed_dialer_user_logout(&server, user1).await, dialer_invalid_token());
    assert_eq!(seed_dialer_reseller_logout(&server, res1).await, dialer_invalid_token());

    // Not revoked: refused by the other kind's logout (which revokes nothing), then logged
    // out by its own, once.
    assert_eq!(seed_dialer_reseller_logout(&server, user2).await, dialer_invalid_token());
    assert_eq!(seed_dialer_user_logout(&server, res2).await, dialer_invalid_token());
    assert_eq!(seed_dialer_user_logout(&server, user2).await, dialer_success());
    assert_eq!(seed_dialer_user_logout(&server, user2).await, dialer_invalid_token());
    assert_eq!(seed_dialer_reseller_logout(&server, res2).await, dialer_success());
    assert_eq!(seed_dialer_reseller_logout(&server, res2).await, dialer_invalid_token());
    let listed = tokens_of(&db, DIALER_USER).await;
    assert_eq!((listed[u1]["state"].as_str(), listed[u2]["state"].as_str()), (Some("revoked"), Some("revoked")));
    assert_eq!(listed[u3]["state"], "active");

    // `token disable` and `reseller disable` stop a token; enabling brings it back.
    ok(&admin(&db, &["token", "disable", u3], None).await);
    assert_eq!(seed_dialer_user_logout(&server, user3).await, dialer_invalid_token());
    ok(&admin(&db, &["token", "enable", u3], None).await);
    ok(&admin(&db, &["reseller", "disable", DIALER_RESELLER], None).await);
    assert_eq!(seed_dialer_reseller_logout(&server, res3).await, dialer_invalid_token());
    let refused = dialer_refused(seed_dialer_reseller_login(&server, &[], None).await);
    assert_eq!(refused, (401, json!({"error": "Invalid ID or Password"})), "a disabled reseller cannot log in");
    ok(&admin(&db, &["reseller", "enable", DIALER_RESELLER], None).await);
    assert_eq!(seed_dialer_reseller_logout(&server, res3).await, dialer_success());
    assert_eq!(seed_dialer_user_logout(&server, user3).await, dialer_success());
    let states: Vec<Value> =
        reseller_tokens_of(&db, DIALER_RESELLER).await.values().map(|t| t["state"].clone()).collect();
    assert_eq!(states, ["revoked", "revoked", "revoked"], "{r1} {r2} {r3}");

    // A static token of another dialect, for the same user, is refused by the dialer.
    let (_, knox, _) = issue(&db, DIALER_USER, &["--dialect", "knox", "--static"]).await;
    let (_, webitel, _) = issue(&db, DIALER_USER, &["--dialect", "webitel", "--static"]).await;
    secrets.extend([knox.clone(), webitel.clone()]);
    assert_eq!(seed_dialer_user_logout(&server, &knox).await, dialer_invalid_token());
    assert_eq!(seed_dialer_user_logout(&server, &webitel).await, dialer_invalid_token(), "a JWT of the same keys");

    assert_logs_keep_secrets(&mut server, &["/a/session.json", "/a/v1/resellers/user/logout.json"], &secrets).await;
}

async fn dialer_ip_rules_believe_forwarded_addresses_only_from_trusted_proxies(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let password = format!("{DIALER_PASSWORD}\n");
    let reseller = ["reseller", "add", DIALER_RESELLER, "--password-stdin", "--allowed-ip", "203.0.113.7"];
    ok(&admin(&db, &reseller, Some(&password)).await);
    ok(&admin(&db, &["group", "add", "remote", "--allowed-regex", r"^203\.0\.113\."], None).await);
    ok(&admin(&db, &["user", "add", DIALER_USER, "--password-stdin", "--group", "remote"], Some(&password)).await);
    let mut server = serve_dialer(&db, &[("TOKENAUTH_TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)]).await;
    let mut secrets = vec![DIALER_PASSWORD.to_owned()];
    let user_refused = (406, json!({"error": "Login denied due to IP restriction"}));
    let reseller_refused = (401, json!({"error": "Your IP is not allowed"}));

    // (a) From the trusted proxy (127.0.0.1), its X-Forwarded-For is the client: both log in.
    let proxy = ["--interface", "127.0.0.1", "-H", "X-Forwarded-For: 203.0.113.7"];
    secrets.push(token_in(&dialer_ok(seed_dialer_reseller_login(&server, &proxy, None).await)));
    secrets.push(token_in(&dialer_ok(seed_dialer_user_login(&server, &proxy, None).await)));
    // RFC 7239 `Forwarded` from the proxy too; and a regex is a pattern, the list exact.
    let forwarded = ["--interface", "127.0.0.1", "-H", "Forwarded: for=203.0.113.7"];
    secrets.push(token_in(&dialer_ok(seed_dialer_reseller_login(&server, &forwarded, None).await)));
    let neighbour = ["--interface", "127.0.0.1", "-H", "X-Forwarded-For: 203.0.113.8"];
    secrets.push(token_in(&dialer_ok(seed_dialer_user_login(&server, &neighbour, None).await)));
    assert_eq!(dialer_refused(seed_dialer_reseller_login(&server, &neighbour, None).await), reseller_refused);

    // (b), (c) From an untrusted peer (127.0.0.2) the same header is ignored: the client is
    // 127.0.0.2, which neither rule allows.
    let spoofer = ["--interface", "127.0.0.2", "-H", "X-Forwarded-For: 203.0.113.7"];
    assert_eq!(dialer_refused(seed_dialer_reseller_login(&server, &spoofer, None).await), reseller_refused);
    assert_eq!(dialer_refused(seed_dialer_user_login(&server, &spoofer, None).await), user_refused);
    let spoofer = ["--interface", "127.0.0.2", "-H", "Forwarded: for=203.0.113.7"];
    assert_eq!(dialer_refused(seed_dialer_reseller_login(&server, &spoofer, None).await), reseller_refused);
    // The proxy itself, forwarding nothing, is the client, and not allowed either.
    let bare = ["--interface", "127.0.0.1"];
    assert_eq!(dialer_refused(seed_dialer_reseller_login(&server, &bare, None).await), reseller_refused);
    assert_eq!(dialer_refused(seed_dialer_user_login(&server, &bare, None).await), user_refused);
    // A wrong password is a wrong password wherever it comes from: the rules come after it.
    let spoofer = ["--interface", "127.0.0.2", "-H", "X-Forwarded-For: 203.0.113.7"];
    let wrong = r#"{ "login": "user@example.com", "password": "not_your_password" }"#;
    let refused = dialer_refused(seed_dialer_user_login(&server, &spoofer, Some(wrong)).await);
    assert_eq!(refused, (401, json!({"error": "Invalid login credentials"})));
    let wrong = r#"{ "name": "reseller_name", "pass": "not_your_password" }"#;
    let refused = dialer_refused(seed_dialer_reseller_login(&server, &spoofer, Some(wrong)).await);
    assert_eq!(refused, (401, json!({"error": "Invalid ID or Password"})));

    // Only the logins let in issued tokens.
    assert_eq!(tokens_of(&db, DIALER_USER).await.len(), 2);
    assert_eq!(reseller_tokens_of(&db, DIALER_RESELLER).await.len(), 2);

    server.stop("TERM").await;
    let logs = server.logs().join("\n");
    assert!(logs.contains("client_ip=203.0.113.7"), "the trusted proxy's client:\n{logs}");
    assert!(logs.contains("client_ip=127.0.0.2"), "the untrusted peer is the client:\n{logs}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "secret {secret:?} logged:\n{logs}");
    }
}

/// Unknown paths under a prefix one dialect owns get that dialect's own 404 (dialects.md:
/// "Errors raised outside a handler (unknown path under a dialect's prefix ...) come back in
/// that dialect's shape"), as knox's do under `/k`. The dialer's own 404 is `{"error": "Not
/// found"}` (src/dialect/dialer.rs); today `/a/...` gets the router's catch-all `{"error":
/// "not found"}` instead, because the dialer is mounted as two `Mount`s (users, resellers)
/// and src/app.rs only installs a dialect's fallback when one `Mount` has the prefix alone.
#[tokio::test]
async fn dialer_unknown_paths_under_its_prefix_get_the_dialers_own_404() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let server = serve_dialer(&db, &[("TOKENAUTH_KNOX__PREFIX", "/k")]).await;
    let (status, _, body) = curl(&["-X", "GET", &server.url("/k/some-endpoint")]).await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})), "knox's own 404 under its prefix");
    for path in ["/a/some-endpoint", "/a/session.jsonx", "/a/v1/resellers/nope.json"] {
        let (status, body) = seed_dialer_token_command(&server, "GET", path, Some("t")).await;
        assert_eq!((status, body), (404, json!({"error": "Not found"})), "{path}");
    }
}

/// A dialer session token lives exactly `dialer.token_ttl` after its `iat` (the seed: "expire
/// after 24 hours"). `TokenService::login` (src/token/mod.rs) computes the expiry from a clock
/// reading taken *before* the password check, while `insert` stamps `created_at` (the `iat`)
/// after it, so the JWT's `exp - iat` falls short of the lifetime by the argon2 time. Slow
/// hashing (150 passes, about 2 s here) makes the shortfall at least a second, every time.
#[tokio::test]
async fn dialer_login_token_lives_exactly_the_ttl_after_its_iat() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let slow = ("TOKENAUTH_PASSWORDS__ITERATIONS", "150");
    let mut add = command(&["--database-url", &db.url, "reseller", "add", DIALER_RESELLER, "--password-stdin"]);
    add.env(slow.0, slow.1);
    ok(&run(add, Some(&format!("{DIALER_PASSWORD}\n"))).await);
    let server = serve_dialer(&db, &[slow]).await;
    let body = dialer_ok(seed_dialer_reseller_login(&server, &[], None).await);
    let payload = jwt_parts(&token_in(&body)).1;
    let (exp, iat) = (payload["exp"].as_i64().unwrap(), payload["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, 24 * 3600, "exp - iat: {payload}");
    // And the row agrees with the token.
    let row = reseller_tokens_of(&db, DIALER_RESELLER).await.into_values().next().unwrap();
    let row_secs = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    assert_eq!((row_secs(&row["created"]), row_secs(&row["expires"])), (iat, exp), "{row}");
}
