//! `tokenauth import`, end to end: fixtures made at test time by the legacy systems' real
//! libraries (Django and django-rest-knox 4.2 and 5.x, libsodium through PyNaCl, PyJWT, Python's
//! bcrypt; `tests/legacy/`), imported by the real binary into both backends, then used through
//! a real server over HTTP: every user logs in with the password they had, and every token that
//! worked keeps working, in its own dialect.
//!
//! The fixtures need Python venvs (`tests/legacy/venv.sh`, outside the clone, made once). Where
//! they cannot be made the tests say so and skip; with CI=true that is a failure.

use std::path::PathBuf;
use std::process::Output;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb};
use crate::process::{Server, client, command, ok, run, stderr};

backend_tests!(
    knox_4_2_users_and_tokens_move_in,
    knox_5_with_a_prefix_and_a_custom_user_table_moves_in,
    szurubooru_users_and_tokens_move_in,
    webitel_users_tokens_and_key_move_in,
    a_generic_file_with_bcrypt_and_a_pepper_moves_in,
    hostile_input_is_refused_and_nothing_is_written,
    two_first_logins_at_once_both_succeed,
    unknown_tokens_pay_no_legacy_lookup_while_none_remain,
    a_token_revoked_since_the_import_is_not_brought_back,
);

/// The python of a legacy venv, or `None` (with a loud note) where it cannot be made.
fn python(venv: &str) -> Option<PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/legacy/venv.sh");
    let out = std::process::Command::new(script).arg(venv).output().unwrap();
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
    }
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and the {venv} venv cannot be made: {why}");
    eprintln!("WARNING: the {venv} venv cannot be made, so this import test is SKIPPED: {why}");
    None
}

/// Run a fixture script with the venv's python; its stdout is JSON.
fn fixture(python: &PathBuf, script: &str, args: &[&str]) -> Value {
    let path = format!("{}/tests/legacy/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(python).arg(path).args(args).output().unwrap();
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A database for the legacy system, of the same engine as the test's: (url, keep-alive).
async fn source_db(backend: &Backend) -> (String, TestDb) {
    let db = TestDb::new(backend).await;
    let url = match backend {
        // The Django/szurubooru fixture makes the file; tokenauth's own must not be there.
        Backend::Sqlite => db.url.replace("tokenauth.db", "legacy.db"),
        _ => db.url.clone(),
    };
    (url, db)
}

/// `tokenauth --database-url DB import ARGS` with `env`.
async fn import(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["--database-url", db.url.as_str(), "import"];
    all.extend_from_slice(args);
    let mut cmd = command(&all);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, None).await
}

/// The summary's `--json`.
fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}; {}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

async fn serve(db: &TestDb, env: &[(&str, &str)]) -> Server {
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn_logging(cmd, "info").await
}

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

/// The stored password of a principal: (scheme column, whether it is argon2id now).
async fn stored_password(db: &TestDb, name: &str) -> (Option<String>, bool) {
    let config = crate::helpers::test_config(&db.url);
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let p = store.principal_by_name(tokenauth::model::PrincipalKind::User, name).await.unwrap().unwrap();
    store.close().await;
    (p.password_scheme.stored(), p.password_hash.starts_with("$argon2id$"))
}

async fn legacy_tokens_left(db: &TestDb) -> bool {
    let config = crate::helpers::test_config(&db.url);
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let left = store.has_legacy_tokens().await.unwrap();
    store.close().await;
    left
}

async fn knox_moves_in(backend: Backend, venv: &str, prefix: &str, core_user: bool) {
    let Some(python) = python(venv) else { return };
    let db = TestDb::new(&backend).await;
    let (source, _source_db) = source_db(&backend).await;
    let mut args = vec![source.as_str()];
    if !prefix.is_empty() {
        args.extend(["--prefix", prefix]);
    }
    if core_user {
        args.push("--core-user");
    }
    let made = fixture(&python, "make_knox.py", &args);
    let env = [("TOKENAUTH_KNOX__TOKEN_PREFIX", prefix)];
    let mut import_args = vec!["knox", "--from", source.as_str(), "--token-prefix", prefix, "--json"];
    if core_user {
        import_args.extend(["--user-table", "core_user"]);
    }

    // A dry run writes nothing and says what would be written.
    let dry = [import_args.clone(), vec!["--dry-run"]].concat();
    let out = import(&db, &dry, &env).await;
    let report = summary(&out);
    assert!(out.status.success(), "{report}; {}", stderr(&out));
    assert_eq!((report["dry_run"].clone(), report["written"].clone()), (json!(true), json!(false)));
    assert_eq!(report["principals"]["created"], 13, "{report}");
    let users = ok(&crate::process::admin(&db, &["user", "list", "--json"], None).await);
    assert_eq!(serde_json::from_str::<Value>(&users).unwrap(), json!([]), "the dry run wrote nothing");

    // The server runs while the import happens, as on the day of the switch.
    let server = serve(&db, &env).await;
    let out = import(&db, &import_args, &env).await;
    let report = summary(&out);
    assert!(out.status.success(), "{report}; {}", stderr(&out));
    let expected_source = format!("knox {} (sha512)", if venv == "knox5" { "5" } else { "4.2" });
    assert!(report["source"].as_str().unwrap().starts_with(&expected_source), "{report}");
    assert_eq!(report["principals"], json!({"created": 13, "updated": 0, "unchanged": 0, "skipped": 0}));
    assert_eq!(report["tokens"], json!({"created": 8, "updated": 0, "unchanged": 0, "skipped": 1}), "{report}");
    assert_eq!(report["skipped"][0]["name"], "alice", "the expired token: {report}");
    // Again: nothing changes, and the summary says so.
    let again = summary(&import(&db, &import_args, &env).await);
    assert_eq!(again["principals"], json!({"created": 0, "updated": 0, "unchanged": 13, "skipped": 0}));
    assert_eq!(again["tokens"], json!({"created": 0, "updated": 0, "unchanged": 8, "skipped": 1}));

    let http = client();
    let knox = |path: &str, token: &str| http.post(server.url(path)).header("authorization", format!("Token {token}"));
    let verify = |token: &str| http.get(server.url("/verify")).header("authorization", format!("Token {token}"));
    // The running server heard of the imported tokens (the import's notice, or its recheck).
    let first = made["tokens"][0]["token"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while call(verify(first)).await.0 != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "the running server never accepted the imported tokens");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Every old token works in its dialect, once checked it is a tokenauth token like any other.
    for t in made["tokens"].as_array().unwrap() {
        let (token, user, expired) = (t["token"].as_str().unwrap(), t["user"].as_str().unwrap(), t["expired"] == true);
        let (status, body) = call(verify(token)).await;
        match (user, expired) {
            (_, true) => assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("unknown"))),
            ("dave", _) => assert_eq!((status, body["reason"].clone()), (StatusCode::UNAUTHORIZED, json!("disabled"))),
            _ => assert_eq!((status, body["user"].clone()), (StatusCode::OK, json!(user)), "{body}"),
        }
    }
    assert!(!legacy_tokens_left(&db).await, "every live legacy token was adopted at its first check");
    let (status, body) = call(knox("/auth/logout/", made["tokens"][6]["token"].as_str().unwrap())).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null), "heidi logs out");
    assert_eq!(call(verify(made["tokens"][6]["token"].as_str().unwrap())).await.1["reason"], "revoked");
    // logoutall ends all of alice's knox tokens (never-expiring ones too).
    assert_eq!(call(knox("/auth/logoutall/", made["tokens"][0]["token"].as_str().unwrap())).await.0, StatusCode::OK);
    assert_eq!(call(verify(made["tokens"][1]["token"].as_str().unwrap())).await.1["reason"], "revoked");
    let (status, body) = call(knox("/auth/logout/", made["tokens"][4]["token"].as_str().unwrap())).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"detail": "User inactive or deleted."})));

    // Every user logs in with the password they had; the first login replaces the hash.
    for u in made["users"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let Some(password) = u["password"].as_str() else {
            let (status, _) =
                call(http.post(server.url("/auth/login/")).json(&json!({"username": name, "password": "x"}))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name} has no usable password");
            continue;
        };
        let before = stored_password(&db, name).await;
        assert_eq!(before, (Some("django".into()), false), "{name}");
        let login = json!({"username": name, "password": password});
        let (status, body) = call(http.post(server.url("/auth/login/")).json(&login)).await;
        if u["active"] == false {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
            assert_eq!(body, json!({"non_field_errors": ["Unable to log in with provided credentials."]}));
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{name} ({}): {body}", u["hasher"]);
        assert_eq!(stored_password(&db, name).await, (None, true), "{name}'s hash is argon2id after its first login");
        let (status, _) = call(http.post(server.url("/auth/login/")).json(&login)).await;
        assert_eq!(status, StatusCode::OK, "{name} logs in again, now against argon2id");
        // why two: every refusal counts toward the throttle's 10 a minute from this address.
        if ["alice", "bob"].contains(&name) {
            let wrong = json!({"username": name, "password": format!("{password}!")});
            assert_eq!(call(http.post(server.url("/auth/login/")).json(&wrong)).await.0, StatusCode::BAD_REQUEST);
        }
    }
}

async fn knox_4_2_users_and_tokens_move_in(backend: Backend) {
    knox_moves_in(backend, "knox42", "", false).await;
}

async fn knox_5_with_a_prefix_and_a_custom_user_table_moves_in(backend: Backend) {
    knox_moves_in(backend, "knox5", "pm_", true).await;
}

async fn szurubooru_users_and_tokens_move_in(backend: Backend) {
    let Some(python) = python("tools") else { return };
    let db = TestDb::new(&backend).await;
    let (source, _source_db) = source_db(&backend).await;
    let made = fixture(&python, "make_szurubooru.py", &[&source, "szuru-secret"]);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "szuru-secret\n").unwrap();
    let args = ["szurubooru", "--from", &source, "--secret-file", secret_file.to_str().unwrap(), "--json"];
    // Without the pepper configured the import refuses, naming what to configure.
    let out = import(&db, &args, &[]).await;
    assert!(!out.status.success());
    assert!(
        summary(&out)["refused"][0]["why"].as_str().unwrap().contains("passwords.peppers.szurubooru"),
        "{}",
        summary(&out)
    );
    let env = [("TOKENAUTH_PASSWORDS__PEPPERS__SZURUBOORU", "szuru-secret")];
    let wrong = import(&db, &args, &[("TOKENAUTH_PASSWORDS__PEPPERS__SZURUBOORU", "another")]).await;
    assert!(!wrong.status.success(), "a configured pepper that is not the given secret is refused");
    let out = import(&db, &args, &env).await;
    let report = summary(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["principals"]["created"], 3);
    assert_eq!(report["tokens"], json!({"created": 4, "updated": 0, "unchanged": 0, "skipped": 1}));

    let server = serve(&db, &env).await;
    let http = client();
    for u in made["users"].as_array().unwrap() {
        let (name, password) = (u["name"].as_str().unwrap(), u["password"].as_str().unwrap());
        let (status, body) = call(http.post(server.url("/auth/login")).basic_auth(name, Some(password))).await;
        assert_eq!(status, StatusCode::OK, "revision {} {name}: {body}", u["revision"]);
        assert_eq!(stored_password(&db, name).await, (None, true));
        let (status, _) = call(http.post(server.url("/auth/login")).basic_auth(name, Some("nope"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for t in made["tokens"].as_array().unwrap() {
        let token = t["token"].as_str().unwrap();
        let (status, body) = call(http.post(server.url("/auth/bump")).bearer_auth(token)).await;
        if t["refused"] == true {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{t}");
            assert_eq!(body["name"], "AuthError");
        } else {
            assert_eq!(status, StatusCode::OK, "{t}: {body}");
            assert!(body["lastLoginTime"].is_string());
        }
    }
    // The plain tokens were digested at import: no row holds one.
    let config = crate::helpers::test_config(&db.url);
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let ann = store.principal_by_name(tokenauth::model::PrincipalKind::User, "ann").await.unwrap().unwrap();
    let rows = store.list_tokens(ann.id).await.unwrap();
    assert_eq!(rows.len(), 2, "the imported token, and the session of ann's login above");
    let imported = rows.iter().find(|r| r.note.as_deref() == Some("laptop")).unwrap();
    assert_ne!(imported.id.to_string(), made["tokens"][0]["token"].as_str().unwrap());
    store.close().await;
}

async fn webitel_users_tokens_and_key_move_in(backend: Backend) {
    let Some(python) = python("tools") else { return };
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let made = fixture(&python, "make_webitel.py", &[dir.path().to_str().unwrap()]);
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    let (tokens, directory, key) = (path("authToken.json"), path("directory.csv"), path("token.key"));
    let args = ["webitel", "--tokens", &tokens, "--directory", &directory, "--jwt-key-file", &key, "--json"];
    let server = serve(&db, &[]).await;
    let out = import(&db, &args, &[]).await;
    let report = summary(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["principals"]["created"], 3);
    assert_eq!(report["tokens"], json!({"created": 3, "updated": 0, "unchanged": 0, "skipped": 1}));
    assert_eq!((report["roles_created"].clone(), report["keys_created"].clone()), (json!(2), json!(1)));
    // Another key file under the same name is refused: the tokens imported would not verify.
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "another key").unwrap();
    let args2 =
        ["webitel", "--tokens", &tokens, "--directory", &directory, "--jwt-key-file", other_key.to_str().unwrap()];
    assert!(!import(&db, &args2, &[]).await.status.success());

    let http = client();
    let logout =
        |token: &str, key: &str| http.post(server.url("/logout")).header("x-access-token", token).header("x-key", key);
    let verify = |token: &str| http.get(server.url("/verify")).header("x-access-token", token);
    for t in made["tokens"].as_array().unwrap() {
        let status = call(verify(t["token"].as_str().unwrap())).await.0;
        let expected = if t["expired"] == true { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
        assert_eq!(status, expected, "{t}");
    }
    // A JWT signed with another key than the engine's is not a token that worked.
    let forged = made["forged"]["token"].as_str().unwrap();
    assert_eq!(call(verify(forged)).await.0, StatusCode::UNAUTHORIZED);
    // Old tokens log out with their old X-Key.
    let first = &made["tokens"][0];
    let (status, body) = call(logout(first["token"].as_str().unwrap(), first["key"].as_str().unwrap())).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "OK", "info": "Successful logout."})));
    assert_eq!(call(verify(first["token"].as_str().unwrap())).await.0, StatusCode::UNAUTHORIZED);
    let second = &made["tokens"][1];
    let (status, _) = call(logout(second["token"].as_str().unwrap(), first["key"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another token's key");
    // Old users log in with their passwords and get tokenauth's JWTs, with their roles.
    for u in made["users"].as_array().unwrap() {
        let login = json!({"username": u["name"], "password": u["password"]});
        let (status, body) = call(http.post(server.url("/login")).json(&login)).await;
        assert_eq!(status, StatusCode::OK, "{u}: {body}");
        assert_eq!(body["roleName"], u["role"]);
        let header = tokenauth_jwt_header(body["token"].as_str().unwrap());
        assert!(header["kid"].is_string(), "a new-format JWT: {header}");
        assert_eq!(call(verify(body["token"].as_str().unwrap())).await.0, StatusCode::OK);
    }
    let admin = json!({"username": "100@mydomain.com", "password": "secret-100"});
    let body = call(http.post(server.url("/login")).json(&admin)).await.1;
    assert_eq!((body["role"].clone(), body["acl"].clone()), (json!(1), json!({"cdr": ["*"], "account": ["r", "w"]})));
}

fn tokenauth_jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

async fn a_generic_file_with_bcrypt_and_a_pepper_moves_in(backend: Backend) {
    let Some(python) = python("tools") else { return };
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dialer.key");
    let key = key.to_str().unwrap();
    let made = fixture(&python, "make_generic.py", &["devise-pepper", key]);
    let file = dir.path().join("principals.jsonl");
    std::fs::write(&file, made["file"].as_str().unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let env = [("TOKENAUTH_PASSWORDS__PEPPERS__DEVISE", "devise-pepper"), ("PEPPER", "devise-pepper")];
    // A JWT no key here verifies is refused: it would never pass a check.
    let out = import(&db, &["file", file, "--pepper-env", "PEPPER", "--json"], &env).await;
    assert!(
        summary(&out)["refused"][0]["why"].as_str().unwrap().contains("no known key verifies"),
        "{}",
        summary(&out)
    );
    let args =
        ["file", file, "--pepper-env", "PEPPER", "--jwt-key-file", key, "--jwt-key-name", "hellohunter", "--json"];
    let out = import(&db, &args, &env).await;
    let report = summary(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["principals"]["created"], 3);
    assert_eq!(report["tokens"]["created"], 4);
    assert_eq!(report["keys_created"], 1);
    let out = import(&db, &["file", file, "--pepper-env", "PEPPER"], &[("PEPPER", "another"), env[0]]).await;
    assert!(!out.status.success(), "a --pepper-env that is not the configured pepper is refused");

    let server = serve(&db, &env[..1]).await;
    let http = client();
    for u in made["users"].as_array().unwrap() {
        let (name, password) = (u["name"].as_str().unwrap(), u["password"].as_str().unwrap());
        let (status, body) = call(http.post(server.url("/auth/login")).basic_auth(name, Some(password))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    let reseller = json!({"name": "acme", "pass": "acme-pw"});
    assert_eq!(call(http.post(server.url("/v1/resellers/login.json")).json(&reseller)).await.0, StatusCode::OK);
    for t in made["tokens"].as_array().unwrap() {
        let token = t["token"].as_str().unwrap();
        let req = match t["dialect"].as_str().unwrap() {
            "knox" => http.post(server.url("/auth/logout/")).header("authorization", format!("Token {token}")),
            "dialer" => http.delete(server.url("/session.json")).bearer_auth(token),
            _ => http.post(server.url("/auth/bump")).bearer_auth(token),
        };
        assert_eq!(call(req).await.0, StatusCode::OK, "{t}");
    }
}

/// Refusals: each names the line and what is wrong, exits 1, and writes nothing.
async fn hostile_input_is_refused_and_nothing_is_written(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let good =
        r#"{"name": "fine", "password": {"scheme": "django", "encoded": "md5$salt$0123456789abcdef0123456789abcdef"}}"#;
    let cases = [
        (r#"{"name": "x", "password": {"scheme": "django", "encoded": "pbkdf2_sha256$10$salt"}}"#, "expected pbkdf2"),
        (
            r#"{"name": "x", "password": {"scheme": "django", "encoded": "pbkdf2_sha256$1000000000$salt$AAAA"}}"#,
            "1000000000 iterations",
        ),
        (r#"{"name": "x", "password": {"scheme": "django", "encoded": "crypt$$ab$cdef"}}"#, "django crypt"),
        (
            r#"{"name": "x", "password": {"scheme": "bcrypt", "encoded": "$2b$31$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza"}}"#,
            "cost 31",
        ),
        (
            r#"{"name": "x", "password": {"scheme": "django", "encoded": "argon2$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}"#,
            "m=4194304",
        ),
        (r#"{"name": "fine", "password": null}"#, "a second user"),
        (
            r#"{"name": "x", "tokens": [{"dialect": "knox", "knox": {"version": "4.2", "key": "abcdef01", "digest": "abcd"}}]}"#,
            "expected 128",
        ),
        (r#"{"name": "x", "tokens": [{"dialect": "usertoken", "token": "not-a-uuid"}]}"#, "would never accept"),
        (r#"{"name": " x"}"#, "invalid name"),
        (r#"{"name": "x", "role": "nope"}"#, "no role"),
        (
            r#"{"kind": "reseller", "name": "x", "tokens": [{"dialect": "knox", "token": "0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
            "dialer tokens only",
        ),
    ];
    ok(&crate::process::admin(&db, &["user", "add", "existing", "--password-stdin"], Some("pw\n")).await);
    let count = || async {
        serde_json::from_str::<Value>(&ok(&crate::process::admin(&db, &["user", "list", "--json"], None).await))
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    for (bad, expected) in cases {
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, format!("{good}\n{bad}\n")).unwrap();
        let out = import(&db, &["file", file.to_str().unwrap()], &[]).await;
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("refused: line 2") && text.contains(expected), "{bad}: {text}");
        assert!(text.contains("refused, nothing written"), "{text}");
        assert!(stderr(&out).contains("nothing was written"), "{}", stderr(&out));
        assert!(!text.contains("0123456789abcdef") && !stderr(&out).contains("AAAA"), "no hash is printed: {text}");
        assert_eq!(count().await, 1, "nothing was written for {bad}");
        assert_eq!(ok(&crate::process::admin(&db, &["role", "list", "--json"], None).await).trim(), "[]");
    }
    // A name that exists with another password: fail (default), skip or update.
    let file = dir.path().join("conflict.jsonl");
    std::fs::write(&file, format!("{good}\n{}\n", good.replace("fine", "existing"))).unwrap();
    let file = file.to_str().unwrap();
    let out = import(&db, &["file", file, "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(summary(&out)["conflicts"][0]["why"].as_str().unwrap().contains("exists with another password"));
    assert_eq!(count().await, 1);
    let out = import(&db, &["file", file, "--json", "--on-conflict", "skip"], &[]).await;
    assert_eq!(summary(&out)["principals"], json!({"created": 1, "updated": 0, "unchanged": 0, "skipped": 1}));
    let out = import(&db, &["file", file, "--json", "--on-conflict", "update"], &[]).await;
    assert_eq!(summary(&out)["principals"], json!({"created": 0, "updated": 1, "unchanged": 1, "skipped": 0}));
    assert_eq!(stored_password(&db, "existing").await, (Some("django".into()), false), "replaced by the imported hash");
    // Unreadable lines and unknown sources are clear errors too.
    std::fs::write(dir.path().join("junk.jsonl"), "{\"name\": \"x\", \"password\": \"secret-in-clear\"}\n").unwrap();
    let out = import(&db, &["file", dir.path().join("junk.jsonl").to_str().unwrap()], &[]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a principal line"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret-in-clear"), "values are never quoted");
    let out = import(&db, &["knox", "--from", "sqlite:///nonexistent/db.sqlite3"], &[]).await;
    assert!(stderr(&out).contains("no such database file"), "{}", stderr(&out));
}

/// Two first logins of one imported user at once: both succeed, and one argon2id hash is left.
async fn two_first_logins_at_once_both_succeed(backend: Backend) {
    let Some(python) = python("tools") else { return };
    let db = TestDb::new(&backend).await;
    let made = fixture(&python, "make_generic.py", &["p"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("principals.jsonl");
    std::fs::write(&file, made["file"].as_str().unwrap()).unwrap();
    // why one worker: the three verifications queue, so the later logins verify the imported
    // hash before the first one's rehash lands, and lose its compare-and-swap.
    let env = [("TOKENAUTH_PASSWORDS__PEPPERS__DEVISE", "p"), ("TOKENAUTH_PASSWORDS__WORKERS", "1")];
    assert!(import(&db, &["file", file.to_str().unwrap()], &env).await.status.success());
    let server = serve(&db, &env).await;
    let http = client();
    let login = || call(http.post(server.url("/auth/login")).basic_auth("rails", Some("rails-pw")));
    let (a, b, c) = tokio::join!(login(), login(), login());
    for (status, body) in [a, b, c] {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(stored_password(&db, "rails").await, (None, true));
    assert_eq!(
        call(http.post(server.url("/auth/login")).basic_auth("rails", Some("rails-pw"))).await.0,
        StatusCode::OK
    );
    assert!(
        server.logs().iter().any(|l| l.contains("verified again")),
        "a login lost the compare-and-swap and verified again: {:?}",
        server.logs()
    );
}

/// While no legacy token remains, an unknown token costs no legacy lookup; an import turns the
/// lookup on, and the sweep turns it off again once the last one was adopted.
async fn unknown_tokens_pay_no_legacy_lookup_while_none_remain(backend: Backend) {
    use sha2::Digest as _;
    use std::sync::atomic::Ordering;
    let (app, store) = crate::counting_store::CountingStore::app(backend, |_| {}).await;
    let unknown = "e".repeat(64);
    let token = "a1".repeat(32);
    let digest = hex::encode(sha2::Sha512::digest(hex::decode(&token).unwrap()));
    assert_eq!(app.post("/auth/logout/").token(&unknown).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.legacy_lookups.load(Ordering::SeqCst), 0);
    let line = json!({"name": "legacy", "tokens": [{"dialect": "knox", "knox": {"version": "4.2", "key": &token[..8], "digest": digest}}]});
    let batch = tokenauth::import::file::parse(&format!("{line}\n"), "test");
    let report = tokenauth::import::run(&app.tokens, &app.policies(), batch, Default::default()).await.unwrap();
    assert!(report.ok() && report.tokens.created == 1, "{report:?}");
    assert_eq!(app.post("/auth/logout/").token(&unknown).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.legacy_lookups.load(Ordering::SeqCst), 1, "a legacy token remains: unknown ones are looked up");
    assert_eq!(app.get("/verify").token(&token).send().await.status, StatusCode::OK);
    app.tokens.sweep().await.unwrap();
    assert!(!app.tokens.legacy_tokens_remain());
    assert_eq!(app.post("/auth/logout/").token(&unknown).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.legacy_lookups.load(Ordering::SeqCst), 2, "the adopted one was the last: no lookup");
    assert_eq!(app.get("/verify").token(&token).send().await.status, StatusCode::OK, "and it still works");
}

/// Running an import again after a token was logged out, and swept, does not bring it back.
async fn a_token_revoked_since_the_import_is_not_brought_back(backend: Backend) {
    let app = crate::helpers::TestApp::spawn(backend).await;
    let token = uuid::Uuid::new_v4().to_string();
    let line = json!({"name": "sam", "tokens": [{"dialect": "usertoken", "token": &token}]});
    let text = format!("{line}\n");
    let policies = app.policies();
    let run = || {
        tokenauth::import::run(&app.tokens, &policies, tokenauth::import::file::parse(&text, "t"), Default::default())
    };
    assert_eq!(run().await.unwrap().tokens.created, 1);
    assert_eq!(app.post("/auth/bump").bearer(&token).send().await.status, StatusCode::OK);
    assert_eq!(app.post("/auth/logout").bearer(&token).send().await.status, StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(30 * 24 * 3600));
    assert_eq!(app.tokens.sweep().await.unwrap(), 1, "the tombstone is swept");
    let again = run().await.unwrap();
    assert_eq!((again.tokens.created, again.tokens.unchanged), (0, 1), "{again:?}");
    assert_eq!(app.post("/auth/bump").bearer(&token).send().await.status, StatusCode::UNAUTHORIZED);
}
