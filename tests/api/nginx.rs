//! nginx in front of tokenauth, for real: the operators' example `deploy/nginx/tokenauth.conf`
//! itself (only its placeholder addresses and certificate paths substituted), run by a real
//! nginx on loopback, over TLS with a self-signed certificate made here with `openssl`, in
//! front of real `tokenauth serve` processes (one, or two replicas over one database) and a
//! tiny upstream written here that records what it receives. Clients connect from 127.0.0.2;
//! nginx connects to tokenauth from 127.0.0.3 (`proxy_bind`), the one trusted proxy, so the
//! tests show which address tokenauth believed.
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

use crate::cli::{issue, now_millis, reseller_list, reseller_tokens_of, tokens_of, user_list};
use crate::helpers::{Backend, TestDb};
use crate::process::{Server, admin, command, ok};

const PASSWORD: &str = "nginx-Pa55word";
/// The HSTS header the example sends on every HTTPS response.
const HSTS: &str = "max-age=63072000";
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

/// Two free ports on loopback, distinct. why both bound at once: a port given back at once can
/// be handed out again by the next bind, and nginx with both servers on one port fails to start
/// ("no ssl_certificate is defined for the listen ... ssl directive", seen once in CI).
fn two_free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (a, b) = (bind(), bind());
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// A self-signed certificate for 127.0.0.1 (and `localhost`), made with `openssl` in `dir`:
/// the certificate's and the key's paths, and the certificate, the one root a client trusts.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    // why CA:FALSE: rustls refuses a CA certificate as a server's own, and `req -x509` marks
    // it a CA unless told otherwise.
    let output = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    assert!(output.status.success(), "openssl req -x509: {}", String::from_utf8_lossy(&output.stderr));
    let pem = std::fs::read(&cert).unwrap();
    (cert, key, pem)
}

/// Uncomment the example's block for `verify.headers = "{preset}"` (the `# auth_request_set`
/// and `# proxy_set_header` lines right after the comment naming the preset).
fn enable_preset(text: &str, preset: &str) -> String {
    let heading = format!("verify.headers = \"{preset}\"");
    let (mut inside, mut enabled) = (false, 0);
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') && trimmed.contains(&heading) {
                inside = true;
                return line.to_owned();
            }
            let directive = trimmed.strip_prefix("# ").filter(|rest| {
                inside && (rest.starts_with("auth_request_set ") || rest.starts_with("proxy_set_header "))
            });
            match directive {
                Some(rest) => {
                    enabled += 1;
                    format!("{}{rest}", &line[..line.len() - trimmed.len()])
                }
                None => {
                    inside = inside && trimmed.starts_with('#');
                    line.to_owned()
                }
            }
        })
        .collect();
    assert!(enabled >= 6, "the commented block for {preset} in {}: {enabled} lines", example_config().display());
    lines.join("\n") + "\n"
}

/// A real nginx running the example config, stopped when dropped.
struct Nginx {
    child: Child,
    /// The HTTPS server (the example's `listen 443 ssl`).
    https: SocketAddr,
    /// The plain-HTTP server (the example's `listen 80`).
    http: SocketAddr,
    /// Its certificate, for clients to trust.
    certificate: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx in front of the two `tokenauth` replicas (the same address twice for one) and
    /// `app`, with the example's block for `preset` uncommented; None when there is no nginx.
    async fn start(tokenauth: [SocketAddr; 2], app: SocketAddr, preset: Option<&str>) -> Option<Nginx> {
        let binary = nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        let (cert, key, certificate) = self_signed_certificate(prefix);
        let (https, http) = two_free_ports();
        let example = std::fs::read_to_string(example_config()).unwrap();
        let [a, b] = tokenauth;
        let mut site = example;
        for (from, to) in [
            ("server 127.0.0.1:8080 ", format!("server {a} ")),
            ("server 127.0.0.1:8081 ", format!("server {b} ")),
            ("server 127.0.0.1:9000;", format!("server {app};")),
            ("listen 443 ssl http2;", format!("listen 127.0.0.1:{https} ssl http2;")),
            ("listen 80;", format!("listen 127.0.0.1:{http};")),
            ("ssl_certificate     /etc/ssl/tokenauth/fullchain.pem;", format!("ssl_certificate {};", cert.display())),
            ("ssl_certificate_key /etc/ssl/tokenauth/privkey.pem;", format!("ssl_certificate_key {};", key.display())),
        ] {
            site = substitute(&site, from, &to);
        }
        if let Some(preset) = preset {
            site = enable_preset(&site, preset);
        }
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
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut nginx = Nginx { child, https: loopback(https), http: loopback(http), certificate, dir };
        let deadline = Instant::now() + WAIT;
        for addr in [nginx.https, nginx.http] {
            while TcpStream::connect(addr).await.is_err() {
                if let Some(status) = nginx.child.try_wait().unwrap() {
                    panic!("nginx exited ({status}) before listening on {addr}:\n{}", nginx.error_log());
                }
                assert!(Instant::now() < deadline, "nginx is not listening on {addr}:\n{}", nginx.error_log());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Some(nginx)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// `path` on the HTTPS server. The certificate names 127.0.0.1, so the name checks out.
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// `path` on the plain-HTTP server.
    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
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

/// The protected application: answers every request 200 `app` and records it. Or, as a
/// stand-in for a tokenauth replica whose database is down, 503 to everything.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the application answers.
const APP: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\napp";
/// What a tokenauth replica without its database answers (its `/verify` shape).
const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
    X-Auth-Reason: unavailable\r\nRetry-After: 1\r\nContent-Length: 47\r\nConnection: close\r\n\r\n\
    {\"status\":\"unavailable\",\"reason\":\"unavailable\"}";

impl Upstream {
    async fn start() -> Upstream {
        Upstream::answering(APP).await
    }

    async fn answering(response: &'static str) -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(WAIT, answer(stream, &sink, response)).await;
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
/// `response`, close. Recorded before the answer, so a client that has its response sees the record.
async fn answer(mut stream: TcpStream, sink: &Mutex<Vec<Seen>>, response: &str) -> Option<()> {
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

/// An HTTP client bound to `from`, trusting only `certificate`, following no redirect (the
/// tests look at them).
fn client_from(from: Ipv4Addr, certificate: &[u8]) -> reqwest::Client {
    // why no_proxy: loopback only, whatever HTTP_PROXY says.
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(from))
        .timeout(WAIT)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(certificate).unwrap())
        .build()
        .unwrap()
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

/// How to start a stack.
#[derive(Clone, Copy)]
struct Setup<'a> {
    /// tokenauth's config file.
    config: &'a str,
    /// How many `tokenauth serve` processes, over the one database (1 or 2).
    replicas: usize,
    /// `verify.headers` (as TOKENAUTH_VERIFY__HEADERS), and the example's block for it.
    preset: Option<&'a str>,
    /// With one replica: the example's second `server` line names a stand-in that answers
    /// everything 503, as a replica whose database is unreachable does.
    unavailable_second: bool,
}

impl Setup<'_> {
    const ONE: Setup<'static> = Setup { config: "", replicas: 1, preset: None, unavailable_second: false };
}

/// The whole stack: tokenauth's replicas (with `config` as their config file), the upstream,
/// nginx.
struct Stack {
    servers: Vec<Server>,
    upstream: Upstream,
    /// The 503 stand-in (`Setup::unavailable_second`).
    unavailable: Option<Upstream>,
    nginx: Nginx,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// None when there is no nginx (the test is then skipped).
    async fn start(db: &TestDb, setup: Setup<'_>) -> Option<Stack> {
        nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokenauth.toml");
        std::fs::write(&file, setup.config).unwrap();
        let file = file.to_str().unwrap();
        let mut servers = Vec::new();
        for _ in 0..setup.replicas {
            let mut cmd = command(&["--config", file, "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
            cmd.env("TOKENAUTH_TRUSTED_PROXIES", format!("[\"{PROXY}/32\"]"));
            if let Some(preset) = setup.preset {
                cmd.env("TOKENAUTH_VERIFY__HEADERS", preset);
            }
            servers.push(Server::spawn(cmd).await);
        }
        let upstream = Upstream::start().await;
        let unavailable = if setup.unavailable_second { Some(Upstream::answering(UNAVAILABLE).await) } else { None };
        // One replica: both of the example's `server` lines name it (or the stand-in).
        let second = unavailable.as_ref().map_or(servers[servers.len() - 1].addr, |u| u.addr);
        let nginx = Nginx::start([servers[0].addr, second], upstream.addr, setup.preset).await?;
        let http = client_from(CLIENT, &nginx.certificate);
        Some(Stack { servers, upstream, unavailable, nginx, http, _dir: dir })
    }

    /// The first (or only) replica.
    fn server(&mut self) -> &mut Server {
        &mut self.servers[0]
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
    nginx_serves_https_only_and_fails_over_between_replicas,
    nginx_retries_a_check_on_a_503_but_never_a_login,
    nginx_passes_a_header_preset,
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
    let Some(mut stack) = Stack::start(&db, Setup { config: ACL_CONFIG, ..Setup::ONE }).await else { return };
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
    stack.server().stop("TERM").await;
    let logs = stack.server().logs().join("\n");
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
    let Some(mut stack) = Stack::start(&db, Setup::ONE).await else { return };
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
    let direct = client_from(PROXY, &stack.nginx.certificate);
    let direct = direct.post(format!("http://{}/v1/resellers/login.json", stack.server().addr));
    let answer = send(direct.header("X-Forwarded-For", "203.0.113.7").json(&reseller("remote"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    stack.server().stop("TERM").await;
    let logs = stack.server().logs();
    let logins: Vec<&String> = logs.iter().filter(|l| l.contains("path=/v1/resellers/login.json")).collect();
    assert!(!logins.is_empty(), "{}", logs.join("\n"));
    assert!(logins.iter().any(|l| l.contains("client_ip=127.0.0.2")), "{}", logs.join("\n"));
    let through_nginx = logins.iter().filter(|l| !l.contains("client_ip=203.0.113.7")).count();
    let from_client = logins.iter().filter(|l| l.contains("client_ip=127.0.0.2")).count();
    assert_eq!(through_nginx, from_client, "every login through nginx is from 127.0.0.2:\n{}", logs.join("\n"));
}

/// The `Set-Cookie` of a response that sets `name`, and the cookie's value.
#[track_caller]
fn set_cookie(answer: &Answer, name: &str) -> (String, String) {
    let line = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie: {answer:?}"));
    let value = line[name.len() + 1..].split(';').next().unwrap().to_owned();
    (line, value)
}

/// Whether a `Set-Cookie` line has the `Secure` attribute.
fn is_secure(set_cookie: &str) -> bool {
    set_cookie.split(';').skip(1).any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
}

/// The HTTP version curl negotiates with nginx for `path` when asked for HTTP/2, or None
/// (with a note) when there is no curl with HTTP/2 here.
fn curl_http_version(nginx: &Nginx, path: &str) -> Option<String> {
    let features = std::process::Command::new("curl").arg("-V").output().ok()?;
    if !String::from_utf8_lossy(&features.stdout).contains("HTTP2") {
        eprintln!("note: no curl with HTTP/2 here; the HTTP/2 check is skipped");
        return None;
    }
    let output = std::process::Command::new("curl")
        .args(["--http2", "--silent", "--show-error", "--noproxy", "*", "--output", "/dev/null"])
        .args(["--write-out", "%{http_version}", "--max-time", "20", "--cacert"])
        .arg(nginx.dir.path().join("cert.pem"))
        .arg(nginx.url(path))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The example as a whole: plain HTTP only redirects; every HTTPS answer carries HSTS; the
/// web page (its cookies `Secure` through nginx) and /openapi.json are tokenauth's, not behind
/// the check; logins work over TLS; and with one of the two replicas killed, checks and
/// logins are still answered, by the other.
async fn nginx_serves_https_only_and_fails_over_between_replicas(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some(&format!("{PASSWORD}\n"))).await);
    let Some(mut stack) = Stack::start(&db, Setup { replicas: 2, ..Setup::ONE }).await else { return };
    let hsts = |answer: &Answer, what: &str| {
        assert_eq!(answer.header("strict-transport-security"), Some(HSTS), "{what}: {answer:?}");
    };
    let creds = json!({"username": "alice", "password": PASSWORD});

    // Plain HTTP: a 301 to the same URI over HTTPS, for the application and tokenauth alike,
    // reaching neither; only the ACME challenge is served (here: no such file).
    for (method, path) in [(M::GET, "/app/page?x=1"), (M::POST, "/auth/login/"), (M::GET, "/ui/signin")] {
        let answer = send(stack.http.request(method.clone(), stack.nginx.http_url(path)).json(&creds)).await;
        assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY, "{method} {path}: {answer:?}");
        let https = format!("https://127.0.0.1{path}");
        assert_eq!(answer.header("location"), Some(https.as_str()), "{method} {path}: {answer:?}");
        assert_eq!(answer.header("strict-transport-security"), None, "HSTS over plain HTTP means nothing");
    }
    let answer = send(stack.http.get(stack.nginx.http_url("/.well-known/acme-challenge/probe"))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(stack.upstream.count(), 0);

    // HTTPS. The check's refusals carry HSTS (`location /` repeats it beside its own add_header).
    let answer = stack.refused(M::GET, "/app/page", &[], 401, "missing").await;
    hsts(&answer, "a 401 from the check");
    // /openapi.json and the web page are tokenauth's own: no check, no 401.
    let answer = stack.call(M::GET, "/openapi.json", &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.json()["paths"]["/verify"].is_object(), "{}", answer.body);
    hsts(&answer, "/openapi.json");
    for (path, to) in [("/ui", "/ui/"), ("/ui/", "/ui/signin")] {
        let answer = stack.call(M::GET, path, &[]).await;
        assert_eq!((answer.status, answer.header("location")), (StatusCode::SEE_OTHER, Some(to)), "{answer:?}");
        hsts(&answer, path);
    }
    assert_eq!(stack.upstream.count(), 0, "{:?}", stack.upstream.seen());

    // Signing in on the web page through nginx: its cookies come back `Secure`, because nginx
    // says `X-Forwarded-Proto: https` and tokenauth trusts nginx.
    let form = stack.call(M::GET, "/ui/signin", &[]).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    hsts(&form, "the sign-in page");
    let (line, csrf) = set_cookie(&form, "tokenauth_csrf");
    assert!(is_secure(&line), "{line}");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("name", "alice"), ("password", PASSWORD), ("csrf", csrf.as_str())])
        .finish();
    let signin = stack
        .post("/ui/signin")
        .header("Cookie", format!("tokenauth_csrf={csrf}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    let signed_in = send(signin).await;
    assert_eq!(
        (signed_in.status, signed_in.header("location")),
        (StatusCode::SEE_OTHER, Some("/ui/")),
        "{signed_in:?}"
    );
    let (line, session) = set_cookie(&signed_in, "tokenauth_session");
    assert!(is_secure(&line) && line.contains("HttpOnly"), "{line}");
    let home = stack.call(M::GET, "/ui/", &[("Cookie", &format!("tokenauth_session={session}"))]).await;
    assert_eq!(home.status, StatusCode::OK, "{home:?}");
    assert!(home.body.contains("alice"), "{}", home.body);

    // HTTP/2 is offered (curl asks for it; the test's reqwest client speaks HTTP/1.1).
    if let Some(version) = curl_http_version(&stack.nginx, "/openapi.json") {
        assert_eq!(version, "2", "HTTP version curl got");
    }

    // A dialect's login over TLS, and its token through the check, a few times: round robin
    // sends the logins and the checks to both replicas.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let answer = send(stack.post("/auth/login/").json(&creds)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        hsts(&answer, "a login");
        tokens.push(format!("Token {}", answer.json()["token"].as_str().unwrap()));
        let seen = stack.granted(M::GET, "/app/page", &[("Authorization", tokens.last().unwrap())]).await;
        assert_eq!(seen.identity()["x-auth-user"], "alice", "{seen:?}");
    }
    let answer = stack.call(M::GET, "/app/page", &[("Authorization", &tokens[0])]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    hsts(&answer, "the application's 200");
    for (i, server) in stack.servers.iter().enumerate() {
        let logs = server.logs();
        assert!(logs.iter().any(|l| l.contains("path=/verify")), "replica {i} checked nothing:\n{}", logs.join("\n"));
    }

    // One replica dies (SIGKILL: no goodbye). nginx finds its connections refused and sends
    // every request to the other: checks (GET) and logins (POST, never sent to the dead one)
    // are all answered, none with a 5xx.
    let dead = stack.servers[0].addr;
    stack.servers[0].signal("KILL");
    stack.servers[0].wait_for_exit().await;
    let served_before = stack.servers[1].logs().len();
    for round in 0..6 {
        let token = &tokens[round % tokens.len()];
        let answer = stack.call(M::GET, "/app/page", &[("Authorization", token)]).await;
        assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "app"), "round {round}: {answer:?}");
        let answer = send(stack.post("/auth/login/").json(&creds)).await;
        assert_eq!(answer.status, StatusCode::OK, "round {round}, knox login: {answer:?}");
        let fresh = format!("Token {}", answer.json()["token"].as_str().unwrap());
        stack.granted(M::GET, "/app/page", &[("Authorization", &fresh)]).await;
        let answer = send(stack.post("/auth/login").basic_auth("alice", Some(PASSWORD))).await;
        assert_eq!(answer.status, StatusCode::OK, "round {round}, usertoken login: {answer:?}");
    }
    let error_log = stack.nginx.error_log();
    assert!(
        error_log.lines().any(|l| l.contains("Connection refused") && l.contains(&dead.to_string())),
        "nginx did try the dead replica {dead} (the failover was exercised):\n{error_log}"
    );
    let survivor = stack.servers[1].logs();
    assert!(survivor.len() > served_before, "the other replica answered");
    assert!(survivor[served_before..].iter().any(|l| l.contains("path=/auth/login/")), "{}", survivor.join("\n"));
}

/// A `verify.headers` preset through nginx, with the example's commented block for it
/// enabled: the application gets the preset's headers (and a client's own are replaced),
/// no X-Auth-* identity, and a reseller is refused.
async fn nginx_passes_a_header_preset(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let pw = format!("{PASSWORD}\n");
    ok(&admin(&db, &["role", "add", "agent", "--code", "0", "--acl", "{}"], None).await);
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin", "--role", "agent"], Some(&pw)).await);
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some(&pw)).await);
    ok(&admin(&db, &["reseller", "add", "alice", "--password-stdin"], Some(&pw)).await);
    for (preset, names) in [
        ("authelia", ["remote-user", "remote-groups", "remote-name", "remote-email"]),
        (
            "oauth2-proxy",
            [
                "x-auth-request-user",
                "x-auth-request-groups",
                "x-auth-request-preferred-username",
                "x-auth-request-email",
            ],
        ),
    ] {
        let Some(stack) = Stack::start(&db, Setup { preset: Some(preset), ..Setup::ONE }).await else { return };
        let [user, groups, name, _email] = names;
        let forged: Vec<(&str, &str)> = names.iter().map(|n| (*n, "mallory")).chain(FORGED.iter().copied()).collect();
        for (who, want) in [
            ("alice", vec![(user, "alice"), (groups, "agent"), (name, "alice")]),
            ("bob", vec![(user, "bob"), (name, "bob")]),
        ] {
            let (status, body) =
                stack.endpoint(stack.post("/auth/login/").json(&json!({"username": who, "password": PASSWORD}))).await;
            assert_eq!(status, StatusCode::OK, "{preset}: {body}");
            let token = format!("Token {}", body["token"].as_str().unwrap());
            let answer =
                stack.call(M::GET, "/app/page", &[&[("Authorization", token.as_str())], &forged[..]].concat()).await;
            assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "app"), "{preset} {who}: {answer:?}");
            let seen = stack.upstream.seen().last().unwrap().clone();
            let got: BTreeMap<&str, &str> = seen
                .headers
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let want: BTreeMap<&str, &str> = want.into_iter().collect();
            // The preset's headers, each once, from tokenauth: the client's forged ones
            // (Remote-Email / X-Auth-Request-Email included) are gone.
            assert_eq!(got, want, "{preset} {who}: {seen:?}");
            assert_eq!(seen.headers.iter().filter(|(n, _)| names.contains(&n.as_str())).count(), want.len());
            let x_auth: Vec<String> = seen.identity().into_keys().filter(|n| !names.contains(&n.as_str())).collect();
            assert_eq!(x_auth, Vec::<String>::new(), "{preset} {who}: no X-Auth-* identity: {seen:?}");
            assert!(!seen.headers.iter().any(|(_, v)| v.contains("mallory")), "{preset} {who}: {seen:?}");
        }
        // A reseller (here one named like the user alice) cannot be told apart under a
        // preset: refused.
        let (status, body) = stack
            .endpoint(stack.post("/v1/resellers/login.json").json(&json!({"name": "alice", "pass": PASSWORD})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let reseller = format!("Bearer {}", body["token"].as_str().unwrap());
        stack.refused(M::GET, "/app/page", &[("Authorization", reseller.as_str())], 403, "forbidden").await;
    }
}

/// proxy_next_upstream as the example sets it, against a replica that answers 503 (as one
/// whose database is unreachable does): a check (a GET subrequest) that got the 503 is asked
/// again of the other replica and passes; a login (a POST) that got it is not sent again,
/// since it had been sent once: the client gets the 503.
async fn nginx_retries_a_check_on_a_503_but_never_a_login(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some(&format!("{PASSWORD}\n"))).await);
    let Some(stack) = Stack::start(&db, Setup { unavailable_second: true, ..Setup::ONE }).await else { return };
    let unavailable = stack.unavailable.as_ref().unwrap();
    let creds = json!({"username": "alice", "password": PASSWORD});

    // Round robin over two peers: of two logins, one goes to each. The one that met the 503
    // is answered 503, not retried on the good replica.
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(send(stack.post("/auth/login/").json(&creds)).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert!(statuses == [200, 503] || statuses == [503, 200], "{answers:?}");
    let refused = answers.iter().find(|a| a.status == StatusCode::SERVICE_UNAVAILABLE).unwrap();
    assert_eq!(refused.header("strict-transport-security"), Some(HSTS), "{refused:?}");
    let logins = |seen: Vec<Seen>| seen.iter().filter(|s| s.method == "POST" && s.target == "/auth/login/").count();
    assert_eq!(logins(unavailable.seen()), 1, "{:?}", unavailable.seen());
    let good = answers.iter().find(|a| a.status == StatusCode::OK).unwrap();
    let token = format!("Token {}", good.json()["token"].as_str().unwrap());

    // Checks: every one passes, those that met the 503 by the retry on the good replica.
    for _ in 0..4 {
        stack.granted(M::GET, "/app/page", &[("Authorization", token.as_str())]).await;
    }
    let checks = unavailable.seen().iter().filter(|s| s.target == "/verify").count();
    assert!(checks >= 1, "a check met the stand-in and was retried: {:?}", unavailable.seen());
}
