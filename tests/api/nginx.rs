//! nginx in front of tokenauth, for real: the operators' example `deploy/nginx/tokenauth.conf`
//! itself (only its placeholder addresses substituted), run by a real nginx on loopback in
//! front of the real `tokenauth serve` and a tiny upstream written here that records what it
//! receives. Clients connect from 127.0.0.2; nginx connects to tokenauth from 127.0.0.3
//! (`proxy_bind`), the one trusted proxy, so the tests show which address tokenauth believed.
//!
//! Without an nginx binary the tests are skipped with a loud warning, or fail when `CI=true`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::{admin, command, issue, now_millis, ok, reseller_list, reseller_tokens_of, tokens_of, user_list};
use crate::e2e::Server;
use crate::helpers::{Backend, TestDb};

const PASSWORD: &str = "nginx-Pa55word";
/// The address clients connect from, and the one nginx connects to tokenauth from.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PROXY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Bound on every wait: nginx start, a request, nginx exit.
const WAIT: Duration = Duration::from_secs(20);

/// The example file, read when a test runs (never a copy).
fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/tokenauth.conf")
}

/// The nginx binary: `nginx` on PATH, else `/usr/sbin/nginx`. None (after a loud warning)
/// when there is neither; with `CI=true` that is a failure instead.
fn nginx_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("nginx")).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = on_path.into_iter().chain([PathBuf::from("/usr/sbin/nginx")]).find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but no nginx binary (not on PATH, no /usr/sbin/nginx): install it (.ci/run does)");
        }
        static WARN: Once = Once::new();
        WARN.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPING the nginx tests: no nginx binary (not on PATH, no /usr/sbin/nginx). \
                 Install it: scripts/apt-install.sh nginx ***\n"
            );
        });
    }
    found
}

/// Replace `from` on the one directive line (not a comment) that starts with it; fail if
/// there is not exactly one, so an edit to the example that the test no longer matches is
/// noticed.
fn substitute(text: &str, from: &str, to: &str) -> String {
    let mut found = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with(from) {
                found += 1;
                line.replacen(from, to, 1)
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(found, 1, "one directive line {from:?} in {}", example_config().display());
    lines.join("\n") + "\n"
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A real nginx running the example config, stopped when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx in front of `tokenauth` and `app`, or None when there is no nginx to run.
    async fn start(tokenauth: SocketAddr, app: SocketAddr) -> Option<Nginx> {
        let binary = nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        let port = free_port();
        let example = std::fs::read_to_string(example_config()).unwrap();
        let site = substitute(&example, "server 127.0.0.1:8080;", &format!("server {tokenauth};"));
        let site = substitute(&site, "server 127.0.0.1:9000;", &format!("server {app};"));
        let site = substitute(&site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
        std::fs::write(prefix.join("tokenauth.conf"), site).unwrap();
        let p = prefix.display();
        // why master_process off: one process, so killing it leaves no orphaned worker holding
        // the port; nothing in the example depends on workers.
        let main = format!(
            "# Test-only wrapper around deploy/nginx/tokenauth.conf (tests/api/nginx.rs).
daemon off;
master_process off;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    # Connect to the upstreams from {PROXY}, tokenauth's one trusted proxy in these tests.
    proxy_bind {PROXY};
    include {p}/tokenauth.conf;
}}
"
        );
        std::fs::write(prefix.join("nginx.conf"), main).unwrap();

        let mut cmd = std::process::Command::new(&binary);
        cmd.arg("-p").arg(prefix).arg("-c").arg(prefix.join("nginx.conf"));
        cmd.arg("-e").arg(prefix.join("error.log"));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut nginx = Nginx { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), dir };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(nginx.addr).await.is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}) before listening on {}:\n{}", nginx.addr, nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx is not listening on {}:\n{}", nginx.addr, nginx.error_log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(nginx)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A fast shutdown (SIGTERM), within a bound; then SIGKILL.
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the upstream received: method, request target, headers (names lowercased,
/// in order, repeats kept).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    /// The X-Auth-* headers, which must each appear at most once.
    fn identity(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, value) in self.headers.iter().filter(|(n, _)| n.starts_with("x-auth") || n.starts_with("x_auth")) {
            assert!(out.insert(name.clone(), value.clone()).is_none(), "{name} twice: {self:?}");
        }
        out
    }
}

/// The protected application: answers every request 200 `app` and records it.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(WAIT, answer(stream, &sink)).await;
                });
            }
        });
        Upstream { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one HTTP/1.x request (head and `Content-Length` body), record it in `sink`, answer
/// 200, close. Recorded before the answer, so a client that has its response sees the record.
async fn answer(mut stream: TcpStream, sink: &Mutex<Vec<Seen>>) -> Option<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = buf.len() - head_end - 4;
    while body < length.unwrap_or(0) {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body += n;
    }
    sink.lock().unwrap().push(Seen { method, target, headers });
    let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\napp";
    stream.write_all(response.as_bytes()).await.ok()?;
    let _ = stream.shutdown().await;
    Some(())
}

/// What a client got back.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.body))
    }
}

/// An HTTP client bound to `from`.
fn client_from(from: Ipv4Addr) -> reqwest::Client {
    // why no_proxy: loopback only, whatever HTTP_PROXY says.
    reqwest::Client::builder().no_proxy().local_address(IpAddr::V4(from)).timeout(WAIT).build().unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let resp = request.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    Answer { status, headers, body: resp.text().await.unwrap() }
}

/// Forged headers a client sends along with every protected request: an identity, and a
/// description of the request that would dodge the ACL rule on /cdr.
const FORGED: &[(&str, &str)] = &[
    ("X-Original-URI", "/public"),
    ("X-Original-Method", "GET"),
    ("X-Forwarded-Uri", "/public"),
    ("X-Forwarded-Method", "GET"),
    ("X-Auth-User", "mallory"),
    ("X-Auth-User-Id", "1"),
    ("X-Auth-Kind", "reseller"),
    ("X-Auth-Role", "root"),
    ("X-Auth-Token-Id", "00000000-0000-4000-8000-000000000000"),
    ("X-Auth-Dialect", "knox"),
    ("X-Auth-Expires", "2999-01-01T00:00:00Z"),
    ("X-Auth-Reason", "mallory"),
    ("X_Auth_User", "mallory"),
];

/// The whole stack: tokenauth (with `config` as its config file), the upstream, nginx.
struct Stack {
    server: Server,
    upstream: Upstream,
    nginx: Nginx,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// None when there is no nginx (the test is then skipped).
    async fn start(db: &TestDb, config: &str) -> Option<Stack> {
        nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokenauth.toml");
        std::fs::write(&file, config).unwrap();
        let file = file.to_str().unwrap();
        let mut cmd = command(&["--config", file, "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
        cmd.env("TOKENAUTH_TRUSTED_PROXIES", format!("[\"{PROXY}/32\"]"));
        let server = Server::spawn(cmd).await;
        let upstream = Upstream::start().await;
        let nginx = Nginx::start(server.addr, upstream.addr).await?;
        Some(Stack { server, upstream, nginx, http: client_from(CLIENT), _dir: dir })
    }

    /// `METHOD path` through nginx with `headers`.
    async fn call(&self, method: reqwest::Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.request(method, self.nginx.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    /// A protected request carrying `credentials` and the forged headers: it must reach the
    /// upstream (200 `app`); returns what the upstream received.
    async fn granted(&self, method: reqwest::Method, path: &str, credentials: &[(&str, &str)]) -> Seen {
        let before = self.upstream.count();
        let answer = self.call(method.clone(), path, &[credentials, FORGED].concat()).await;
        assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "app"), "{method} {path}: {answer:?}");
        assert_eq!(answer.header("x-auth-reason"), None, "{answer:?}");
        let seen = self.upstream.seen();
        assert_eq!(seen.len(), before + 1, "one request reached the upstream: {seen:?}");
        let last = seen.last().unwrap().clone();
        assert_eq!((last.method.as_str(), last.target.as_str()), (method.as_str(), path), "{last:?}");
        last
    }

    /// A protected request that nginx must refuse with `status` and tokenauth's `reason`,
    /// without the upstream seeing it; returns the answer.
    async fn refused(
        &self,
        method: reqwest::Method,
        path: &str,
        credentials: &[(&str, &str)],
        status: u16,
        reason: &str,
    ) -> Answer {
        let before = self.upstream.count();
        let answer = self.call(method.clone(), path, &[credentials, FORGED].concat()).await;
        assert_eq!(answer.status.as_u16(), status, "{method} {path}: {answer:?}");
        assert_eq!(answer.header("x-auth-reason"), Some(reason), "{method} {path}: {answer:?}");
        let challenge = answer.header("www-authenticate");
        if status == 401 {
            let challenge = challenge.unwrap_or_else(|| panic!("a 401 carries WWW-Authenticate: {answer:?}"));
            assert!(challenge.starts_with("Bearer realm=\"tokenauth\""), "{challenge}");
            assert_eq!(challenge.contains("error=\"invalid_token\""), reason != "missing", "{challenge}");
        } else {
            assert_eq!(challenge, None, "{answer:?}");
        }
        assert_eq!(self.upstream.count(), before, "the upstream got nothing: {:?}", self.upstream.seen());
        answer
    }

    /// A dialect endpoint through nginx: status and JSON body (Null when empty).
    async fn endpoint(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let before = self.upstream.count();
        let answer = send(request).await;
        assert_eq!(self.upstream.count(), before, "a tokenauth endpoint reached the upstream: {answer:?}");
        let body = if answer.body.is_empty() { Value::Null } else { answer.json() };
        (answer.status, body)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.nginx.url(path))
    }
}

/// A protected request and the identity the upstream must see for it.
struct Case<'a> {
    what: &'static str,
    path: String,
    credentials: Vec<(&'a str, &'a str)>,
    want: BTreeMap<String, String>,
}

/// What the upstream must see for a token: exactly these X-Auth-* headers.
fn identity(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(n, v)| (format!("x-auth-{n}"), (*v).to_owned())).collect()
}

backend_tests!(
    nginx_passes_identity_for_every_dialect_and_refuses_bad_tokens,
    nginx_logins_see_the_client_address_through_the_trusted_proxy,
);

/// The ACL rules of the first test: reading under /cdr needs `cdr: r`, writing `cdr: w`
/// (a method neither names, such as PATCH, is refused there).
const ACL_CONFIG: &str = r#"
[[verify.acl]]
prefix = "/cdr"
methods = ["GET"]
resource = "cdr"
permission = "r"

[[verify.acl]]
prefix = "/cdr"
methods = ["POST", "PUT", "DELETE"]
resource = "cdr"
permission = "w"
"#;

async fn nginx_passes_identity_for_every_dialect_and_refuses_bad_tokens(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let pw = format!("{PASSWORD}\n");
    ok(&admin(&db, &["role", "add", "agent", "--code", "0", "--acl", r#"{"cdr": ["r"]}"#], None).await);
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin", "--role", "agent"], Some(&pw)).await);
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some(&pw)).await);
    ok(&admin(&db, &["reseller", "add", "acme", "--password-stdin"], Some(&pw)).await);
    let Some(mut stack) = Stack::start(&db, ACL_CONFIG).await else { return };
    let users = user_list(&db).await;
    let alice_id = users["alice"]["id"].to_string();
    let bob_id = users["bob"]["id"].to_string();
    let acme_id = reseller_list(&db).await[0]["id"].to_string();
    let creds = json!({"username": "alice", "password": PASSWORD});

    // No token, or a bad one: 401 from /verify, passed on with its challenge and reason.
    stack.refused(M::GET, "/app/page", &[], 401, "missing").await;
    stack.refused(M::GET, "/app/page", &[("Authorization", "Bearer not-a-token")], 401, "malformed").await;
    let unknown = format!("Bearer {}", uuid::Uuid::new_v4());
    stack.refused(M::GET, "/app/page", &[("Authorization", unknown.as_str())], 401, "unknown").await;
    // Paths next to the login locations are the application's, behind the check.
    for path in ["/auth/loginx", "/auth/login/extra", "/login/", "/verify"] {
        stack.refused(M::POST, path, &[], 401, "missing").await;
    }
    // The internal check location cannot be called from outside.
    let answer = stack.call(M::GET, "/_tokenauth/verify", &[("Authorization", "Bearer x")]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");

    // Session tokens of each dialect, from the logins through nginx.
    let (status, body) = stack.endpoint(stack.post("/auth/login").basic_auth("alice", Some(PASSWORD))).await;
    assert_eq!(status, StatusCode::OK, "usertoken login: {body}");
    let usertoken = body["token"].as_str().unwrap().to_owned();
    let (status, body) = stack.endpoint(stack.post("/auth/login/").json(&creds)).await;
    assert_eq!(status, StatusCode::OK, "knox login: {body}");
    let knox = body["token"].as_str().unwrap().to_owned();
    let (status, body) = stack.endpoint(stack.post("/login").json(&creds)).await;
    assert_eq!(status, StatusCode::OK, "webitel login: {body}");
    let (webitel, webitel_key) = (body["token"].as_str().unwrap().to_owned(), body["key"].as_str().unwrap().to_owned());
    let (status, body) =
        stack.endpoint(stack.post("/session.json").json(&json!({"login": "alice", "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::OK, "dialer login: {body}");
    let dialer = body["token"].as_str().unwrap().to_owned();
    let reseller_login = json!({"name": "acme", "pass": PASSWORD});
    let (status, body) = stack.endpoint(stack.post("/v1/resellers/login.json").json(&reseller_login)).await;
    assert_eq!(status, StatusCode::OK, "reseller login: {body}");
    let reseller = body["token"].as_str().unwrap().to_owned();
    // `/auth/login` and `/auth/login/` stay two endpoints: each refuses the other's request
    // in its own shape.
    let (status, body) = stack.endpoint(stack.post("/auth/login").json(&creds)).await;
    assert_eq!((status, body["name"].as_str()), (StatusCode::UNAUTHORIZED, Some("AuthError")), "{body}");
    let (status, body) = stack.endpoint(stack.post("/auth/login/").basic_auth("alice", Some(PASSWORD))).await;
    assert_eq!((status, &body["username"]), (StatusCode::BAD_REQUEST, &json!(["This field is required."])), "{body}");
    // And a static token minted with the CLI, for bob, who has no role.
    let (static_id, static_token, _) = issue(&db, "bob", &["--dialect", "usertoken", "--static"]).await;

    let rows = tokens_of(&db, "alice").await;
    let row = |dialect: &str| {
        let (id, row) = rows.iter().find(|(_, r)| r["dialect"] == dialect).unwrap_or_else(|| panic!("{rows:?}"));
        (id.clone(), row["expires"].as_str().map(str::to_owned))
    };
    let (reseller_token_id, reseller_row) = reseller_tokens_of(&db, "acme").await.into_iter().next().unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let (ut_bearer, knox_header, reseller_bearer, static_bearer) =
        (bearer(&usertoken), format!("Token {knox}"), bearer(&reseller), bearer(&static_token));
    let dialer_path = format!("/app/calls?token={dialer}&page=2");
    let case = |what, path: &str, credentials, want| Case { what, path: path.to_owned(), credentials, want };
    let alice = |dialect: &str| {
        let (id, expires) = row(dialect);
        let mut want = identity(&[("user", "alice"), ("user-id", &alice_id), ("kind", "user"), ("role", "agent")]);
        want.insert("x-auth-token-id".into(), id);
        want.insert("x-auth-dialect".into(), dialect.into());
        if let Some(expires) = expires {
            want.insert("x-auth-expires".into(), expires);
        }
        want
    };
    let reseller_identity = identity(&[
        ("user", "acme"),
        ("user-id", &acme_id),
        ("kind", "reseller"),
        ("token-id", &reseller_token_id),
        ("dialect", "dialer"),
        ("expires", reseller_row["expires"].as_str().unwrap()),
    ]);
    let bob_identity = identity(&[
        ("user", "bob"),
        ("user-id", &bob_id),
        ("kind", "user"),
        ("token-id", &static_id),
        ("dialect", "usertoken"),
    ]);
    let cases = [
        case("usertoken (Bearer)", "/app/page", vec![("Authorization", ut_bearer.as_str())], alice("usertoken")),
        case("knox (Token)", "/app/page", vec![("Authorization", knox_header.as_str())], alice("knox")),
        case(
            "webitel (X-Access-Token, X-Key)",
            "/app/page",
            vec![("X-Access-Token", webitel.as_str()), ("X-Key", webitel_key.as_str())],
            alice("webitel"),
        ),
        case("dialer user (?token= in the URI)", &dialer_path, vec![], alice("dialer")),
        case(
            "dialer reseller (Bearer)",
            "/app/page",
            vec![("Authorization", reseller_bearer.as_str())],
            reseller_identity,
        ),
        case("static CLI token, no role", "/app/page", vec![("Authorization", static_bearer.as_str())], bob_identity),
    ];
    for Case { what, path, credentials, want } in &cases {
        let seen = stack.granted(M::GET, path, credentials).await;
        // Exactly tokenauth's identity: the forged X-Auth-* values (and X_Auth_User) are gone,
        // and a header tokenauth did not send (no role, no expiry) is absent, not forged.
        assert_eq!(&seen.identity(), want, "{what}: {seen:?}");
        assert!(!seen.headers.iter().any(|(_, v)| v.contains("mallory")), "{what}: {seen:?}");
    }
    let expiring = cases.iter().filter(|c| c.want.contains_key("x-auth-expires")).count();
    assert_eq!(expiring, 3, "webitel, dialer user and reseller sessions expire; the rest never do");

    // ACL rules see the original path and method (X-Original-URI, X-Original-Method): alice's
    // role reads cdr but does not write it. The check itself is always a GET subrequest, and
    // the client's own X-Original-*/X-Forwarded-* (FORGED: "GET /public") are overridden.
    let knox_auth = [("Authorization", knox_header.as_str())];
    stack.granted(M::GET, "/cdr/1", &knox_auth).await;
    stack.granted(M::POST, "/other/1", &knox_auth).await;
    let answer = stack.refused(M::POST, "/cdr/1", &knox_auth, 403, "forbidden").await;
    assert!(!answer.body.contains("mallory"), "{answer:?}");
    stack.refused(M::DELETE, "/cdr", &knox_auth, 403, "forbidden").await;
    stack.refused(M::PUT, "/%63dr/1", &knox_auth, 403, "forbidden").await;
    // Paths an application could read as another path, and methods no rule names, are
    // refused under a protected prefix (nginx passes the raw request URI).
    stack.refused(M::GET, "/cdr/1%2F..%2F..%2Fother", &knox_auth, 403, "forbidden").await;
    stack.refused(M::PATCH, "/cdr/1", &knox_auth, 403, "forbidden").await;

    // Logouts through nginx revoke; the tokens are then refused at the check.
    let (status, body) = stack.endpoint(stack.post("/auth/bump").bearer_auth(&usertoken)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = stack.endpoint(stack.post("/auth/logout").bearer_auth(&usertoken)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, _) = stack.endpoint(stack.post("/auth/logout/").header("Authorization", &knox_header)).await;
    assert_eq!(status, StatusCode::OK);
    let logout = stack.post("/logout").header("X-Access-Token", &webitel).header("X-Key", &webitel_key);
    assert_eq!(stack.endpoint(logout).await, (StatusCode::OK, json!({"status": "OK", "info": "Successful logout."})));
    let logout = stack.http.delete(stack.nginx.url("/session.json")).bearer_auth(&dialer);
    assert_eq!(stack.endpoint(logout).await, (StatusCode::OK, json!({"success": true})));
    let logout = stack.http.get(stack.nginx.url("/v1/resellers/user/logout.json")).bearer_auth(&reseller);
    assert_eq!(stack.endpoint(logout).await, (StatusCode::OK, json!({"success": true})));
    ok(&admin(&db, &["token", "revoke", &static_id], None).await);
    // The CLI is another process: the server hears of its revocation by NOTIFY (Postgres) or
    // by polling (SQLite, every 100 ms) and drops its cached check; allow a generous 2 s.
    let static_case = cases.iter().find(|c| c.what.contains("static")).expect("a static-token case");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while stack.call(M::GET, &static_case.path, &static_case.credentials).await.status != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "the CLI's revocation was not seen within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for Case { what, path, credentials, .. } in &cases {
        let answer = stack.refused(M::GET, path, credentials, 401, "revoked").await;
        assert!(answer.header("www-authenticate").is_some(), "{what}");
    }

    // knox's logoutall through nginx: every knox token of alice's stops at once.
    let mut knox_tokens = Vec::new();
    for _ in 0..2 {
        let (status, body) = stack.endpoint(stack.post("/auth/login/").json(&creds)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        knox_tokens.push(format!("Token {}", body["token"].as_str().unwrap()));
    }
    stack.granted(M::GET, "/app/page", &[("Authorization", &knox_tokens[1])]).await;
    let (status, _) = stack.endpoint(stack.post("/auth/logoutall/").header("Authorization", &knox_tokens[0])).await;
    assert_eq!(status, StatusCode::OK);
    for token in &knox_tokens {
        stack.refused(M::GET, "/app/page", &[("Authorization", token)], 401, "revoked").await;
    }

    // An expired token: good until its lifetime ends, then refused.
    let (_, short, expires) = issue(&db, "alice", &["--dialect", "knox", "--ttl", "3s"]).await;
    let expires = time::OffsetDateTime::parse(expires.as_str().unwrap(), &Rfc3339).unwrap();
    let short = format!("Token {short}");
    let short = [("Authorization", short.as_str())];
    stack.granted(M::GET, "/app/page", &short).await;
    let left = i64::try_from(expires.unix_timestamp_nanos() / 1_000_000).unwrap() - now_millis() + 500;
    assert!(left < 4000, "expires in 3 s: {expires}");
    tokio::time::sleep(Duration::from_millis(left.try_into().unwrap_or_default())).await;
    stack.refused(M::GET, "/app/page", &short, 401, "expired").await;

    // tokenauth saw the client (127.0.0.2) behind its trusted proxy, for checks and logins.
    stack.server.stop("TERM").await;
    let logs = stack.server.logs().join("\n");
    assert!(logs.lines().any(|l| l.contains("/verify") && l.contains("client_ip=127.0.0.2")), "{logs}");
    assert!(logs.lines().any(|l| l.contains("/auth/login/") && l.contains("client_ip=127.0.0.2")), "{logs}");
    assert!(!logs.contains("client_ip=127.0.0.3"), "nginx itself is never the client:\n{logs}");
    assert!(!logs.contains(&dialer), "the token in X-Original-URI is not logged:\n{logs}");
}

async fn nginx_logins_see_the_client_address_through_the_trusted_proxy(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let pw = format!("{PASSWORD}\n");
    for (name, ip) in [("near", "127.0.0.2"), ("far", "127.0.0.3"), ("remote", "203.0.113.7")] {
        ok(&admin(&db, &["reseller", "add", name, "--password-stdin", "--allowed-ip", ip], Some(&pw)).await);
    }
    ok(&admin(&db, &["group", "add", "here", "--allowed-regex", r"^127\.0\.0\.2$"], None).await);
    ok(&admin(&db, &["group", "add", "proxy", "--allowed-regex", r"^127\.0\.0\.3$"], None).await);
    ok(&admin(&db, &["user", "add", "carol", "--password-stdin", "--group", "here"], Some(&pw)).await);
    ok(&admin(&db, &["user", "add", "dave", "--password-stdin", "--group", "proxy"], Some(&pw)).await);
    let Some(mut stack) = Stack::start(&db, "").await else { return };
    let reseller = |name: &str| json!({"name": name, "pass": PASSWORD});
    let user = |name: &str| json!({"login": name, "password": PASSWORD});
    let not_allowed = (StatusCode::UNAUTHORIZED, json!({"error": "Your IP is not allowed"}));
    let ip_restricted = (StatusCode::NOT_ACCEPTABLE, json!({"error": "Login denied due to IP restriction"}));

    // tokenauth believed nginx (127.0.0.3, trusted): the client is 127.0.0.2, not nginx.
    let (status, body) = stack.endpoint(stack.post("/v1/resellers/login.json").json(&reseller("near"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    assert_eq!(stack.endpoint(stack.post("/v1/resellers/login.json").json(&reseller("far"))).await, not_allowed);
    let (status, body) = stack.endpoint(stack.post("/session.json").json(&user("carol"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stack.endpoint(stack.post("/session.json").json(&user("dave"))).await, ip_restricted);
    // The IP rules hold at every dialect's login (knox here), through nginx too.
    let knox = |name: &str| json!({"username": name, "password": PASSWORD});
    let (status, body) = stack.endpoint(stack.post("/auth/login/").json(&knox("carol"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = stack.endpoint(stack.post("/auth/login/").json(&knox("dave"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A client naming its own address gets nowhere: nginx appends the real peer to its
    // X-Forwarded-For (read from the right) and clears its Forwarded (which tokenauth prefers).
    for header in [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.7"), ("X-Real-IP", "203.0.113.7")] {
        let spoofed = stack.post("/v1/resellers/login.json").header(header.0, header.1).json(&reseller("remote"));
        assert_eq!(stack.endpoint(spoofed).await, not_allowed, "{header:?}");
    }
    // ... while the same header from the trusted proxy itself is believed: the refusals above
    // are nginx's doing, not a rule that never matches.
    let direct = client_from(PROXY).post(format!("http://{}/v1/resellers/login.json", stack.server.addr));
    let answer = send(direct.header("X-Forwarded-For", "203.0.113.7").json(&reseller("remote"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    stack.server.stop("TERM").await;
    let logs = stack.server.logs();
    let logins: Vec<&String> = logs.iter().filter(|l| l.contains("path=/v1/resellers/login.json")).collect();
    assert!(!logins.is_empty(), "{}", logs.join("\n"));
    assert!(logins.iter().any(|l| l.contains("client_ip=127.0.0.2")), "{}", logs.join("\n"));
    let through_nginx = logins.iter().filter(|l| !l.contains("client_ip=203.0.113.7")).count();
    let from_client = logins.iter().filter(|l| l.contains("client_ip=127.0.0.2")).count();
    assert_eq!(through_nginx, from_client, "every login through nginx is from 127.0.0.2:\n{}", logs.join("\n"));
}
