//! Secrets stay secret (issue 7): a scenario through every dialect and every token transport
//! against the real binary, with JSON logs at debug level, leaves no password, token,
//! `Authorization` value or Basic credential in its stdout or stderr, and no token or
//! password in the database (every table, every column, and the raw SQLite files); and the
//! `Debug` of every type holding a secret, and `tokenauth config`, redact it.
//!
//! Each check is made able to fail: the log must hold the scenario's request paths and a
//! canary path, the database dump must hold each token's digest and the password hashes, and
//! each `Debug` must show the type's other fields.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, Row as _};

use crate::cli::issue;
use crate::helpers::{Backend, TestApp, TestDb, test_config};
use crate::process::{Server, admin, client, command, ok, run, stderr};

const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "Alice-Pa55word-never-logged";
const WRONG_PASSWORD: &str = "Wrong-Pa55word-never-logged";
const RESELLER: &str = "acme";
const RESELLER_PASSWORD: &str = "Acme-Pa55word-never-logged";
const RESELLER_WRONG_PASSWORD: &str = "Acme-Wrong-Pa55word-never-logged";
/// The configured JWT secret (at least 32 bytes).
const JWT_SECRET: &str = "jwt-secret-never-logged-0123456789abcdefghijklmnop";

/// What the scenario used and was given: every secret, and the tokens among them.
#[derive(Default)]
struct Used {
    /// Passwords (right and wrong), the JWT secret, `Authorization` values, Basic
    /// credentials, tokens, the database password.
    secrets: Vec<String>,
    /// Every token the server or the CLI issued.
    tokens: Vec<String>,
    /// Every path the scenario requested, which the access log must show.
    paths: BTreeSet<String>,
    /// A random path requested once: the log must show it, or the capture proves nothing.
    canary: String,
}

impl Used {
    fn token(&mut self, token: &str) -> String {
        self.tokens.push(token.to_owned());
        self.secrets.push(token.to_owned());
        token.to_owned()
    }

    fn basic(&mut self, user: &str, password: &str) -> String {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        // why trimmed: a log that dropped the padding would still show the credentials.
        self.secrets.push(credentials.trim_end_matches('=').to_owned());
        let header = format!("Basic {credentials}");
        self.secrets.push(header.clone());
        header
    }

    fn authorization(&mut self, scheme: &str, token: &str) -> String {
        let header = format!("{scheme} {token}");
        self.secrets.push(header.clone());
        header
    }

    /// Each secret, and the halves of each token's random part (a JWT's signature): a log
    /// that cut a token short would still leak half of it.
    fn needles(&self) -> Vec<String> {
        let mut needles = self.secrets.clone();
        for token in &self.tokens {
            let random = token.rsplit('.').next().unwrap_or(token);
            let (a, b) = random.split_at(random.len() / 2);
            assert!(a.len() >= 16, "{token}");
            needles.extend([a.to_owned(), b.to_owned()]);
        }
        needles
    }
}

/// The scenario's requests, each path remembered.
struct Scenario<'a> {
    server: &'a Server,
    http: reqwest::Client,
    paths: std::cell::RefCell<BTreeSet<String>>,
}

impl Scenario<'_> {
    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let path = path_and_query.split('?').next().unwrap().to_owned();
        self.paths.borrow_mut().insert(path);
        self.http.request(method, self.server.url(path_and_query))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// A POST whose redirect is returned, not followed (the web page answers forms with 303).
    fn post_form(&self, path: &str) -> reqwest::RequestBuilder {
        self.paths.borrow_mut().insert(path.to_owned());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        http.post(self.server.url(path)).header("content-type", "application/x-www-form-urlencoded")
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }
}

/// Send and return the status and the JSON body (`Null` when empty).
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = request.send().await.unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    let value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    (status, value)
}

#[track_caller]
fn token_of(answer: &(StatusCode, Value)) -> &str {
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    answer.1["token"].as_str().unwrap_or_else(|| panic!("a token: {}", answer.1))
}

/// The value of cookie `name` set by `resp`.
fn cookie_value(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).and_then(|rest| rest.split(';').next()))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// The text between `start` and the next `end` in `html`.
fn between(html: &str, start: &str, end: &str) -> String {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start:?} in {html}")) + start.len();
    html[from..].split(end).next().unwrap().to_owned()
}

/// `/verify` must let `request` through.
async fn verified(request: reqwest::RequestBuilder) {
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.headers().get("x-auth-reason"));
    assert!(!resp.headers()["x-auth-user"].is_empty());
}

/// The principals, made with the CLI (passwords on stdin); the CLI's own output is checked
/// for the passwords too.
async fn principals(db: &TestDb, used: &mut Used) {
    let role = ["role", "add", "root", "--code", "2", "--acl", r#"{"cdr": ["*"]}"#];
    ok(&admin(db, &role, None).await);
    let outputs = [
        admin(db, &["user", "add", ALICE, "--password-stdin", "--role", "root"], Some(&format!("{ALICE_PASSWORD}\n")))
            .await,
        admin(db, &["reseller", "add", RESELLER, "--password-stdin"], Some(&format!("{RESELLER_PASSWORD}\n"))).await,
    ];
    for out in &outputs {
        let printed = format!("{}{}", ok(out), stderr(out));
        for password in [ALICE_PASSWORD, RESELLER_PASSWORD] {
            assert!(!printed.contains(password), "the CLI printed a password: {printed}");
        }
    }
    used.secrets.extend(
        [ALICE_PASSWORD, WRONG_PASSWORD, RESELLER_PASSWORD, RESELLER_WRONG_PASSWORD, JWT_SECRET].map(String::from),
    );
    if let Some(password) = url::Url::parse(&db.url).unwrap().password() {
        // why this form: the test role's password is its name, which may show on its own.
        used.secrets.push(format!(":{password}@"));
    }
}

/// `tokenauth serve` on `db` with the JWT secret configured, JSON logs, `RUST_LOG=debug`.
async fn serve(db: &TestDb) -> Server {
    let mut cmd = command(&["--log-format", "json", "serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    cmd.env("TOKENAUTH_JWT_SECRET", JWT_SECRET);
    Server::spawn_logging(cmd, "debug").await
}

/// Every dialect: logins with right and wrong passwords (and a malformed body holding the
/// password), bumps, `/verify` with every transport, logouts, a reseller; a static token
/// minted by the CLI. Leaves the server stopped (every log line flushed) and some tokens live.
async fn scenario(db: &TestDb) -> (Server, Used) {
    let mut used = Used::default();
    principals(db, &mut used).await;
    let (_, minted, _) = issue(db, ALICE, &["--dialect", "knox", "--static"]).await;
    used.token(&minted);
    let mut server = serve(db).await;
    let s = Scenario { server: &server, http: client(), paths: Default::default() };

    // usertoken: Basic login (right, wrong, unknown user), bump, logout, a revoked bump.
    let basic = used.basic(ALICE, ALICE_PASSWORD);
    let note = json!({"note": "secrets test"});
    let login = send(s.post("/auth/login").header("authorization", &basic).json(&note)).await;
    let u1 = used.token(token_of(&login));
    let u2 = used.token(token_of(&send(s.post("/auth/login").header("authorization", &basic)).await));
    for (user, password) in [(ALICE, WRONG_PASSWORD), ("mallory", ALICE_PASSWORD)] {
        let wrong = used.basic(user, password);
        assert_eq!(send(s.post("/auth/login").header("authorization", wrong)).await.0, StatusCode::UNAUTHORIZED);
    }
    let bearer = used.authorization("Bearer", &u1);
    assert_eq!(send(s.post("/auth/bump").header("authorization", &bearer)).await.0, StatusCode::OK);
    verified(s.get("/verify").header("authorization", &bearer)).await;
    assert_eq!(send(s.post("/auth/logout").header("authorization", &bearer)).await.0, StatusCode::OK);
    assert_eq!(send(s.post("/auth/bump").header("authorization", &bearer)).await.0, StatusCode::UNAUTHORIZED);
    let bearer2 = used.authorization("Bearer", &u2);
    assert_eq!(send(s.post("/auth/bump").header("authorization", &bearer2)).await.0, StatusCode::OK, "stays live");

    // knox: JSON login (right, wrong, malformed with the password in it), every /verify
    // transport, logout, logoutall, the CLI's static token.
    let right = json!({"username": ALICE, "password": ALICE_PASSWORD});
    let k1 = used.token(token_of(&send(s.post("/auth/login/").json(&right)).await));
    let k2 = used.token(token_of(&send(s.post("/auth/login/").json(&right)).await));
    let k3 = used.token(token_of(&send(s.post("/auth/login/").json(&right)).await));
    let wrong = json!({"username": ALICE, "password": WRONG_PASSWORD});
    assert_eq!(send(s.post("/auth/login/").json(&wrong)).await.0, StatusCode::BAD_REQUEST);
    let malformed = format!(r#"{{"username": "{ALICE}", "password": "{ALICE_PASSWORD}""#);
    let resp = send(s.post("/auth/login/").header("content-type", "application/json").body(malformed)).await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
    let token_header = used.authorization("Token", &k1);
    verified(s.get("/verify").header("authorization", &token_header)).await;
    verified(s.get(&format!("/verify?token={k2}"))).await;
    verified(s.get(&format!("/verify?access_token={k2}"))).await;
    verified(s.get("/verify").header("x-original-uri", format!("/app/page?token={k2}&page=2"))).await;
    verified(s.get("/verify").header("x-forwarded-uri", format!("/app/page?access_token={k2}"))).await;
    verified(s.get(&format!("/verify/app/page?token={k2}"))).await;
    let minted_header = used.authorization("Token", &minted);
    verified(s.get("/verify").header("authorization", &minted_header)).await;
    assert_eq!(
        send(s.post("/auth/logout/").header("authorization", &token_header)).await,
        (StatusCode::OK, Value::Null)
    );
    let k2_header = used.authorization("Token", &k2);
    assert_eq!(send(s.post("/auth/logoutall/").header("authorization", &k2_header)).await.0, StatusCode::OK);
    let k3_header = used.authorization("Token", &k3);
    let refused = send(s.post("/auth/logout/").header("authorization", &k3_header)).await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED, "logoutall revoked it");

    // webitel: login (right, wrong), /verify with X-Access-Token + X-Key and ?access_token=,
    // logout by headers, by query, by JSON body.
    let right = json!({"username": ALICE, "password": ALICE_PASSWORD});
    let mut webitel = Vec::new();
    for _ in 0..3 {
        let (status, body) = send(s.post("/login").json(&right)).await;
        let token = used.token(token_of(&(status, body.clone())));
        webitel.push((token, body["key"].as_str().unwrap().to_owned()));
    }
    let wrong = json!({"username": ALICE, "password": WRONG_PASSWORD});
    assert_eq!(send(s.post("/login").json(&wrong)).await.0, StatusCode::UNAUTHORIZED);
    let [(w1, key1), (w2, key2), (w3, key3)] = &webitel[..] else { unreachable!() };
    verified(s.get("/verify").header("x-access-token", w1).header("x-key", key1)).await;
    verified(s.get(&format!("/verify?access_token={w2}&x_key={key2}"))).await;
    let logout = send(s.post("/logout").header("x-access-token", w1).header("x-key", key1)).await;
    assert_eq!(logout.0, StatusCode::OK, "{}", logout.1);
    assert_eq!(send(s.post(&format!("/logout?access_token={w2}&x_key={key2}"))).await.0, StatusCode::OK);
    assert_eq!(send(s.post("/logout").json(&json!({"access_token": w3, "x_key": key3}))).await.0, StatusCode::OK);

    // dialer users: login (right, wrong), /verify by Bearer, logout by Bearer and ?token=.
    let right = json!({"login": ALICE, "password": ALICE_PASSWORD});
    let d1 = used.token(token_of(&send(s.post("/session.json").json(&right)).await));
    let d2 = used.token(token_of(&send(s.post("/session.json").json(&right)).await));
    let wrong = json!({"login": ALICE, "password": WRONG_PASSWORD});
    assert_eq!(send(s.post("/session.json").json(&wrong)).await.0, StatusCode::UNAUTHORIZED);
    let d1_bearer = used.authorization("Bearer", &d1);
    verified(s.get("/verify").header("authorization", &d1_bearer)).await;
    assert_eq!(send(s.delete("/session.json").header("authorization", &d1_bearer)).await.0, StatusCode::OK);
    assert_eq!(send(s.delete(&format!("/session.json?token={d2}"))).await.0, StatusCode::OK);

    // dialer resellers: login (right, wrong), /verify by ?token=, logout by ?token= and Bearer.
    let right = json!({"name": RESELLER, "pass": RESELLER_PASSWORD});
    let r1 = used.token(token_of(&send(s.post("/v1/resellers/login.json").json(&right)).await));
    let r2 = used.token(token_of(&send(s.post("/v1/resellers/login.json").json(&right)).await));
    let wrong = json!({"name": RESELLER, "pass": RESELLER_WRONG_PASSWORD});
    assert_eq!(send(s.post("/v1/resellers/login.json").json(&wrong)).await.0, StatusCode::UNAUTHORIZED);
    verified(s.get(&format!("/verify?token={r1}"))).await;
    assert_eq!(send(s.get(&format!("/v1/resellers/user/logout.json?token={r1}"))).await.0, StatusCode::OK);
    let r2_bearer = used.authorization("Bearer", &r2);
    assert_eq!(
        send(s.get("/v1/resellers/user/logout.json").header("authorization", &r2_bearer)).await.0,
        StatusCode::OK
    );

    // The web page: sign in (the session cookie is a token), create a static token (shown
    // in the page), revoke it, sign out. Cookies are sent by hand, as a browser would.
    let signin = s.get("/ui/signin").send().await.unwrap();
    let csrf = cookie_value(&signin, "tokenauth_csrf");
    let form = format!("csrf={csrf}&name={ALICE}&password={ALICE_PASSWORD}");
    let signed_in =
        s.post_form("/ui/signin").header("cookie", format!("tokenauth_csrf={csrf}")).body(form).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = used.token(&cookie_value(&signed_in, "tokenauth_session"));
    used.secrets.push(format!("tokenauth_session={session}"));
    let cookie = format!("tokenauth_session={session}");
    let home = s.get("/ui/").header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let page_csrf = between(&home, r#"name="csrf" value=""#, "\"");
    let created = s
        .post_form("/ui/tokens")
        .header("cookie", &cookie)
        .body(format!("csrf={page_csrf}&dialect=webitel&note=secrets"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let web_token = used.token(&between(&created, r#"id="new-token" type="text" readonly value=""#, "\""));
    verified(s.get("/verify").header("authorization", used.authorization("Bearer", &web_token))).await;
    let out =
        s.post_form("/ui/signout").header("cookie", &cookie).body(format!("csrf={page_csrf}")).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);

    // The canary: the access log shows paths, so it must show this one.
    used.canary = format!("/canary-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(send(s.get(&used.canary)).await.0, StatusCode::NOT_FOUND);
    used.paths = s.paths.into_inner();
    server.stop("TERM").await;
    (server, used)
}

backend_tests!(no_secret_reaches_stdout_or_stderr_at_debug_level, no_token_or_password_is_in_the_database);

async fn no_secret_reaches_stdout_or_stderr_at_debug_level(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (server, used) = scenario(&db).await;
    let stderr = server.logs();
    let stdout = server.stdout();

    assert!(stderr.len() > 50, "a debug log was captured: {stderr:?}");
    let lines: Vec<Value> = stderr
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "debug lines were logged:\n{}", stderr.join("\n"));
    let all = [stderr.join("\n"), stdout.join("\n")].join("\n");
    // The check can fail: what reaches the log is found there (every path requested, among
    // them a random one).
    assert!(used.paths.contains(&used.canary));
    for path in &used.paths {
        assert!(all.contains(&format!("\"path\":\"{path}\"")), "{path} in the access log:\n{all}");
    }
    let needles = used.needles();
    assert!(needles.len() > 40, "{} secrets", needles.len());
    for (stream, lines) in [("stderr", &stderr), ("stdout", &stdout)] {
        for line in lines.iter() {
            for needle in &needles {
                assert!(!line.contains(needle.as_str()), "{stream} shows {needle:?}: {line}");
            }
        }
    }
}

/// Every table, every row, every column of the database, as bytes (SQLite: each value cast
/// to a BLOB; Postgres: each row as JSON text, bytea as `\x` hex); and for SQLite the raw
/// files too (database, WAL, shared memory), which hold deleted rows and old pages.
async fn dump(db: &TestDb) -> (Vec<String>, Vec<u8>) {
    let mut tables = Vec::new();
    let mut bytes = Vec::new();
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for table in names {
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            let select: Vec<String> = columns.iter().map(|c| format!("CAST(\"{c}\" AS BLOB)")).collect();
            let rows = sqlx::query(&format!("SELECT {} FROM \"{table}\"", select.join(", ")))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            for row in rows {
                for i in 0..columns.len() {
                    let value: Option<Vec<u8>> = row.try_get(i).unwrap();
                    bytes.extend(value.unwrap_or_default());
                    bytes.push(b'\n');
                }
            }
            tables.push(table);
        }
        conn.close().await.unwrap();
        let path = db.url.strip_prefix("sqlite://").unwrap();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(file) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(file);
            }
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for table in names {
            let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            for row in rows {
                bytes.extend(row.into_bytes());
                bytes.push(b'\n');
            }
            tables.push(table);
        }
        conn.close().await.unwrap();
    }
    (tables, bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn no_token_or_password_is_in_the_database(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (_server, used) = scenario(&db).await;
    let (tables, dump) = dump(&db).await;

    // The dump is the whole database: both tables that matter, every token's digest (raw in
    // SQLite, `\x` hex in Postgres's JSON), the argon2 hashes of the passwords.
    for table in ["tokens", "principals", "signing_keys"] {
        assert!(tables.iter().any(|t| t.ends_with(table)), "{table} dumped: {tables:?}");
    }
    for token in &used.tokens {
        let digest = Sha256::digest(token.as_bytes());
        assert!(
            contains(&dump, &digest) || contains(&dump, hex::encode(digest).as_bytes()),
            "the digest of {token} is stored"
        );
    }
    assert!(contains(&dump, b"$argon2id$"), "the password hashes are dumped");

    // And no token, no password, in any form a column could hold them: as text, or as the
    // hex of their bytes (a bytea or BLOB column rendered as hex).
    let mut needles = used.tokens.clone();
    needles.extend(
        [ALICE_PASSWORD, WRONG_PASSWORD, RESELLER_PASSWORD, RESELLER_WRONG_PASSWORD, JWT_SECRET].map(String::from),
    );
    for needle in &needles {
        assert!(!contains(&dump, needle.as_bytes()), "{needle:?} is in the database");
        assert!(!contains(&dump, hex::encode(needle).as_bytes()), "{needle:?} is in the database, as hex");
    }
    for token in &used.tokens {
        let random = token.rsplit('.').next().unwrap();
        let half = &random[..random.len() / 2];
        assert!(!contains(&dump, half.as_bytes()), "half of {token} is in the database");
    }
    let label = if db.url.starts_with("sqlite:") { "sqlite" } else { "postgres" };
    eprintln!("{label}: {} tables, {} bytes dumped, {} tokens checked", tables.len(), dump.len(), used.tokens.len());
}

// ---- Debug and `tokenauth config` ----

const DB_PASSWORD: &str = "Db-Pa55-in-the-url";
const DB_QUERY_PASSWORD: &str = "Db-Pa55-in-the-query";

fn db_url() -> String {
    format!("postgres://tokenauth:{DB_PASSWORD}@db.example:5432/tokenauth?password={DB_QUERY_PASSWORD}&sslmode=require")
}

#[track_caller]
fn hides(what: &str, shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{what} shows {secret:?}: {shown}");
    }
}

#[tokio::test]
async fn config_debug_serialize_and_the_config_command_redact_secrets() {
    let mut config = tokenauth::config::Config::default();
    config.database_url = tokenauth::config::DatabaseUrl::new(db_url());
    config.jwt_secret = Some(tokenauth::config::Secret::new(JWT_SECRET));
    let secrets = [DB_PASSWORD, DB_QUERY_PASSWORD, JWT_SECRET];
    for (what, shown) in [
        ("Config {:?}", format!("{config:?}")),
        ("Config {:#?}", format!("{config:#?}")),
        ("Config as TOML", toml::to_string(&config).unwrap()),
        ("Config as JSON", serde_json::to_string(&config).unwrap()),
        ("Secret", format!("{:?}", config.jwt_secret)),
        ("DatabaseUrl {:?}", format!("{:?}", config.database_url)),
        ("DatabaseUrl {}", config.database_url.to_string()),
    ] {
        hides(what, &shown, &secrets);
        assert!(shown.contains("db.example") || shown.contains("REDACTED"), "{what} shows something: {shown}");
    }
    assert!(format!("{config:?}").contains("sslmode=require"), "the rest of the URL shows");

    let overrides = tokenauth::config::Overrides { database_url: Some(db_url()), ..Default::default() };
    let shown = format!("{overrides:?}");
    hides("Overrides", &shown, &secrets);
    assert!(shown.contains("db.example"), "{shown}");

    // `tokenauth config`, with the secrets from the command line and the environment, then
    // from a file.
    let mut cmd = command(&["--database-url", &db_url(), "config"]);
    cmd.env("TOKENAUTH_JWT_SECRET", JWT_SECRET);
    let out = run(cmd, None).await;
    let printed = format!("{}{}", ok(&out), stderr(&out));
    hides("tokenauth config (flag, env)", &printed, &secrets);
    assert!(printed.contains("db.example") && printed.contains("[REDACTED]"), "{printed}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenauth.toml");
    std::fs::write(&file, format!("database_url = \"{}\"\njwt_secret = \"{JWT_SECRET}\"\n", db_url())).unwrap();
    let out = run(command(&["--config", file.to_str().unwrap(), "config"]), None).await;
    let printed = format!("{}{}", ok(&out), stderr(&out));
    hides("tokenauth config (file)", &printed, &secrets);
    assert!(printed.contains("db.example") && printed.contains("[REDACTED]"), "{printed}");
}

#[test]
fn cli_debug_redacts_the_database_url_and_a_password_flag() {
    use clap::Parser as _;
    let password = "Cli-Pa55word-flag";
    let url = db_url();
    let cli = tokenauth::cli::Cli::try_parse_from([
        "tokenauth",
        "--database-url",
        &url,
        "user",
        "add",
        "alice",
        "--password",
        password,
    ])
    .unwrap();
    let shown = format!("{cli:?}");
    hides("Cli", &shown, &[DB_PASSWORD, DB_QUERY_PASSWORD, password]);
    assert!(shown.contains("db.example") && shown.contains("alice"), "{shown}");
}

#[test]
fn token_and_key_types_redact_in_debug() {
    use tokenauth::model::{PlainToken, TokenHash};
    let token = "5f0c5e0b2d1f4e7a9c3b8a6d4e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
    let digest_hex = hex::encode(Sha256::digest(token.as_bytes()));
    let plain = PlainToken::new(token);
    hides("PlainToken", &format!("{plain:?}"), &[token, &token[..16]]);
    let hash = TokenHash::of(token);
    hides("TokenHash", &format!("{hash:?}"), &[token, &digest_hex[..16]]);
    assert!(format!("{hash:?}").starts_with(&format!("TokenHash({}", &digest_hex[..8])), "{hash:?}");

    let password = secrecy::SecretString::from(ALICE_PASSWORD.to_owned());
    hides("SecretString", &format!("{password:?}"), &[ALICE_PASSWORD]);

    let key_secret = b"signing-key-secret-0123456789abcdef".to_vec();
    let key = tokenauth::model::SigningKey {
        kid: "kid-1".into(),
        secret: key_secret.clone(),
        created_at: crate::helpers::T0,
    };
    let shown = format!("{key:?}");
    hides("SigningKey", &shown, &["signing-key-secret", format!("{:?}", &key_secret[..8]).trim_end_matches(']')]);
    assert!(shown.contains("kid-1"), "{shown}");
}

/// A principal's and a login's types: the argon2 hash and the token never show.
#[tokio::test]
async fn store_and_service_types_redact_in_debug() {
    use tokenauth::model::Attributes;
    use tokenauth::model::{PrincipalKind, Username};
    use tokenauth::store::{InsertRules, NewPrincipal};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let principal = app.add_user(ALICE, ALICE_PASSWORD).await;
    let hash = principal.password_hash.clone();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // The salt and the digest, the parts of the PHC string that are the secret.
    let hash_tail = hash.rsplit('$').next().unwrap().to_owned();
    let shown = format!("{principal:?}");
    hides("Principal", &shown, &[&hash, &hash_tail]);
    assert!(shown.contains(ALICE), "{shown}");

    let name = Username::parse(ALICE).unwrap();
    let attributes = Attributes::default();
    let new = NewPrincipal {
        kind: PrincipalKind::User,
        name: &name,
        password_hash: &hash,
        created_at: crate::helpers::T0,
        role_id: None,
        group_id: None,
        attributes: &attributes,
    };
    let shown = format!("{new:?}");
    hides("NewPrincipal", &shown, &[&hash_tail]);
    assert!(shown.contains(ALICE), "{shown}");
    let rules = InsertRules { max_live_tokens: Some(3), login_at: None, verified_hash: Some(&hash) };
    let shown = format!("{rules:?}");
    hides("InsertRules", &shown, &[&hash_tail]);
    assert!(shown.contains("max_live_tokens"), "{shown}");

    let policy = tokenauth::dialect::knox::policy(&app.config.knox);
    let issued = app
        .tokens
        .login(
            &policy,
            PrincipalKind::User,
            ALICE,
            ALICE_PASSWORD.to_owned().into(),
            crate::helpers::LOCALHOST,
            Default::default(),
        )
        .await
        .unwrap();
    let token = issued.token.expose().to_owned();
    let shown = format!("{issued:?}");
    hides("Issued", &shown, &[&token, &hash_tail]);
    assert!(shown.contains(&issued.record.id.to_string()), "{shown}");
    let auth = app.tokens.authenticate(&policy, &token).await.unwrap();
    hides("Authenticated", &format!("{auth:?}"), &[&token, &hash_tail]);
    hides("TokenService", &format!("{:?}", app.tokens), &[&token, &hash_tail]);
}

/// The service, the store and the server hold the database URL (Postgres: the pool's connect
/// options) and the JWT secret: their `Debug` shows neither.
async fn service_store_and_server_hide_the_database_password(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = test_config(&db.url);
    config.jwt_secret = Some(tokenauth::config::Secret::new(JWT_SECRET));
    config.bind = "127.0.0.1:0".parse().unwrap();
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let clock = Arc::new(tokenauth::token::clock::FixedClock::new(crate::helpers::T0));
    let tokens = tokenauth::app::token_service(&config, Arc::clone(&store), clock.clone()).await.unwrap();
    let state = tokenauth::app::state(config.clone(), Arc::clone(&tokens));
    let server = tokenauth::server::Server::bind_with(config.clone(), Arc::clone(&store), clock).await.unwrap();
    let url = url::Url::parse(&db.url).unwrap();
    for (what, shown) in [
        ("Store", format!("{store:?}")),
        ("TokenService", format!("{tokens:?}")),
        ("AppState", format!("{state:?}")),
        ("Server", format!("{server:?}")),
    ] {
        hides(what, &shown, &[JWT_SECRET]);
        if let Some(password) = url.password() {
            if password == url.username() {
                // The test role's password is its name, which may show as the user name: look
                // for the password's own forms (in a URL, in sqlx's connect options, quoted).
                let forms = [format!(":{password}@"), format!("password: Some({password:?})")];
                hides(what, &shown, &forms.iter().map(String::as_str).collect::<Vec<_>>());
                hides(what, &shown, &[&format!("{password:?}")]);
            } else {
                hides(what, &shown, &[password]);
            }
        }
    }
    store.close().await;
}

backend_tests!(service_store_and_server_hide_the_database_password);
