//! The `tokenauth` binary as an administrator uses it: user, role, group, reseller, key and
//! token commands against a real database (both backends), the one-line errors with exit code
//! 1 (clap's usage errors exit 2), `migrate`, and `config` with the precedence of its layers.
//!
//! Every run clears `TOKENAUTH_*` and `RUST_LOG` from the child's environment, so only what a
//! test sets reaches it.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::helpers::{Backend, TestDb};
use crate::process::{admin, command, ok, run, stderr, tokenauth};

/// Assert exit code 1, nothing on stdout, and exactly one stderr line `error: ...` containing
/// `needle`; return that line.
#[track_caller]
pub fn fails(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
    lines[0].to_owned()
}

/// Assert clap's usage error: exit code 2.
#[track_caller]
fn usage_error(out: &Output) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    assert!(stderr(out).starts_with("error: "), "{}", stderr(out));
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `token list NAME --json`, keyed by token id.
pub async fn tokens_of(db: &TestDb, name: &str) -> BTreeMap<String, Value> {
    let list = json(&ok(&admin(db, &["token", "list", name, "--json"], None).await));
    list.as_array().unwrap().iter().map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone())).collect()
}

/// `token issue NAME ARGS --json`, returning (id, token, expires).
pub async fn issue(db: &TestDb, name: &str, args: &[&str]) -> (String, String, Value) {
    let mut all = vec!["token", "issue", name, "--json"];
    all.extend_from_slice(args);
    let out = ok(&admin(db, &all, None).await);
    assert_eq!(out.lines().count(), 1, "one line: {out:?}");
    let v = json(&out);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["expires", "id", "token"], "{v}");
    (v["id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned(), v["expires"].clone())
}

pub fn is_knox_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn rfc3339(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")), &Rfc3339).unwrap()
}

backend_tests!(
    secrets_are_read_from_files,
    migrate_on_start_off_refuses_a_schema_behind,
    users_are_added_listed_and_refused_twice,
    user_commands_refuse_unknown_users,
    tokens_are_issued_in_each_dialects_format,
    token_list_shows_state_but_never_the_token,
    token_commands_change_state_and_refuse_unknown_ids,
    passwd_revokes_and_remove_deletes_tokens,
    migrate_creates_the_schema_and_can_run_twice,
    roles_are_added_listed_and_refused,
    users_get_change_and_lose_roles,
    roles_in_use_cannot_be_removed,
    webitel_tokens_are_jwts_printed_after_their_key,
    keys_rotate_and_old_tokens_keep_their_kid,
    configured_jwt_secret_signs_webitel_tokens,
    groups_are_added_listed_and_removed,
    bad_allowed_regexes_are_refused_and_nothing_is_stored,
    resellers_are_added_listed_and_refused,
    resellers_are_disabled_enabled_repassworded_and_removed,
    users_get_dialer_attributes_and_only_existing_groups,
    users_move_between_groups,
    dialer_tokens_carry_the_seed_claims,
    reseller_tokens_are_dialer_only_and_listed_apart_from_users,
);

async fn users_are_added_listed_and_refused_twice(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let out = ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("correct horse\n")).await);
    assert!(out.contains("alice"), "{out}");

    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["name"], "alice");
    assert_eq!(users[0]["enabled"], true);
    assert!(users[0]["id"].is_i64(), "{users:?}");
    assert!(users[0]["last_login"].is_null(), "{users:?}");

    let table = ok(&admin(&db, &["user", "list"], None).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID  NAME "), "header: {table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "ENABLED", "ROLE", "GROUP", "ADMIN", "CREATED", "LAST", "LOGIN"]
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("alice"), "{table}");
    assert_eq!(lines[1].split_whitespace().nth(2), Some("yes"), "{table}");

    fails(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("other\n")).await, "already exists");
    fails(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("\n")).await, "password is empty");
    fails(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("")).await, "password is empty");
    fails(&admin(&db, &["user", "add", " bob", "--password-stdin"], Some("pw\n")).await, "invalid name");
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    assert_eq!(users.as_array().unwrap().len(), 1, "no user was added by the failed commands: {users}");

    // --password works too, and is exclusive with --password-stdin (clap: exit 2).
    ok(&admin(&db, &["user", "add", "carol", "--password", "pw"], None).await);
    usage_error(&admin(&db, &["user", "add", "dave", "--password", "x", "--password-stdin"], Some("y\n")).await);
    usage_error(&admin(&db, &["user", "add", "dave"], None).await);
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "carol"]);
}

async fn user_commands_refuse_unknown_users(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    for cmd in ["disable", "enable", "remove"] {
        fails(&admin(&db, &["user", cmd, "nobody"], None).await, "no such user");
    }
    fails(&admin(&db, &["user", "passwd", "nobody", "--password-stdin"], Some("pw\n")).await, "no such user");
    fails(&admin(&db, &["token", "issue", "nobody", "--dialect", "knox"], None).await, "no such user");
    fails(&admin(&db, &["token", "list", "nobody"], None).await, "no such user");
    // Names are exact: case matters.
    fails(&admin(&db, &["user", "disable", "Alice"], None).await, "no such user");

    ok(&admin(&db, &["user", "disable", "alice"], None).await);
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    assert_eq!(users[0]["enabled"], false);
    ok(&admin(&db, &["user", "enable", "alice"], None).await);
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    assert_eq!(users[0]["enabled"], true);
}

async fn tokens_are_issued_in_each_dialects_format(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);

    let knox = ok(&admin(&db, &["token", "issue", "alice", "--dialect", "knox"], None).await);
    assert_eq!(knox.lines().count(), 1, "{knox:?}");
    assert!(is_knox_token(knox.trim_end()), "64 lowercase hex: {knox:?}");

    let usertoken = ok(&admin(&db, &["token", "issue", "alice", "--dialect", "usertoken"], None).await);
    assert_eq!(usertoken.lines().count(), 1, "{usertoken:?}");
    let uuid = Uuid::parse_str(usertoken.trim_end()).unwrap_or_else(|e| panic!("{usertoken:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 4);

    let (id, token, expires) = issue(&db, "alice", &["--dialect", "knox", "--static"]).await;
    assert!(is_knox_token(&token), "{token}");
    assert!(expires.is_null(), "a static token without --ttl never expires: {expires}");
    Uuid::parse_str(&id).unwrap();

    let (id, token, expires) = issue(&db, "alice", &["--dialect", "usertoken", "--ttl", "1h"]).await;
    Uuid::parse_str(&token).unwrap();
    assert_ne!(id, token, "a usertoken token is never its row id");
    let listed = &tokens_of(&db, "alice").await[&id];
    let lifetime = rfc3339(&expires) - rfc3339(&listed["created"]);
    assert!((lifetime - time::Duration::HOUR).abs() < time::Duration::SECOND, "{expires} vs {listed}");
    assert_eq!(listed["expires"], expires);

    let (id, _, expires) =
        issue(&db, "alice", &["--dialect", "knox", "--static", "--ttl", "30d", "--note", "ci"]).await;
    let listed = &tokens_of(&db, "alice").await[&id];
    assert_eq!(listed["note"], "ci");
    assert_eq!(listed["kind"], "static");
    let lifetime = rfc3339(&expires) - rfc3339(&listed["created"]);
    assert!((lifetime - time::Duration::days(30)).abs() < time::Duration::SECOND, "{expires} vs {listed}");

    // Every issue produced a distinct row.
    assert_eq!(tokens_of(&db, "alice").await.len(), 5);
    usage_error(&admin(&db, &["token", "issue", "alice", "--dialect", "nope"], None).await);
    usage_error(&admin(&db, &["token", "issue", "alice", "--dialect", "knox", "--ttl", "soon"], None).await);
    usage_error(&admin(&db, &["token", "issue", "alice", "--dialect", "knox", "--ttl", "0s"], None).await);
    usage_error(&admin(&db, &["token", "issue", "alice", "--dialect", "knox", "--ttl", "200years"], None).await);
}

async fn token_list_shows_state_but_never_the_token(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    let (knox_static, knox_static_token, _) = issue(&db, "alice", &["--dialect", "knox", "--static"]).await;
    let (knox_session, knox_session_token, _) = issue(&db, "alice", &["--dialect", "knox"]).await;
    let (user_session, user_session_token, _) = issue(&db, "alice", &["--dialect", "usertoken"]).await;

    let listed = tokens_of(&db, "alice").await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (id, dialect, kind) in
        [(&knox_static, "knox", "static"), (&knox_session, "knox", "session"), (&user_session, "usertoken", "session")]
    {
        let t = &listed[id];
        assert_eq!(
            (t["dialect"].as_str(), t["kind"].as_str(), t["state"].as_str()),
            (Some(dialect), Some(kind), Some("active")),
            "{t}"
        );
    }

    let (short, _, _) = issue(&db, "alice", &["--dialect", "knox", "--ttl", "1s"]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(tokens_of(&db, "alice").await[&short]["state"], "expired");

    let json_out = ok(&admin(&db, &["token", "list", "alice", "--json"], None).await);
    let table = ok(&admin(&db, &["token", "list", "alice"], None).await);
    for secret in [&knox_static_token, &knox_session_token, &user_session_token] {
        assert!(!json_out.contains(secret.as_str()), "token {secret} printed by token list --json");
        assert!(!table.contains(secret.as_str()), "token {secret} printed by token list");
    }
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "DIALECT", "KIND", "STATE", "CREATED", "EXPIRES", "LAST", "USED", "NOTE"]);
    assert_eq!(table.lines().count(), 5, "{table}");
    for id in [&knox_static, &knox_session, &user_session] {
        assert!(table.contains(id.as_str()), "{id} missing from {table}");
    }
}

async fn token_commands_change_state_and_refuse_unknown_ids(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    let (a, _, _) = issue(&db, "alice", &["--dialect", "knox", "--static"]).await;
    let (b, _, _) = issue(&db, "alice", &["--dialect", "usertoken"]).await;
    let state = |list: &BTreeMap<String, Value>, id: &str| list[id]["state"].as_str().unwrap().to_owned();

    ok(&admin(&db, &["token", "revoke", &a], None).await);
    let list = tokens_of(&db, "alice").await;
    assert_eq!((state(&list, &a), state(&list, &b)), ("revoked".into(), "active".into()));
    assert!(!list[&a]["revoked"].is_null(), "{}", list[&a]);

    ok(&admin(&db, &["token", "disable", &b], None).await);
    let list = tokens_of(&db, "alice").await;
    assert_eq!(state(&list, &b), "disabled");
    assert_eq!(list[&b]["enabled"], false);
    ok(&admin(&db, &["token", "enable", &b], None).await);
    let list = tokens_of(&db, "alice").await;
    assert_eq!(state(&list, &b), "active");
    assert_eq!(state(&list, &a), "revoked", "enable of another token leaves a revoked one revoked");

    let unknown = Uuid::new_v4().to_string();
    for cmd in ["revoke", "disable", "enable"] {
        fails(&admin(&db, &["token", cmd, &unknown], None).await, "no such token");
        usage_error(&admin(&db, &["token", cmd, "not-a-uuid"], None).await);
    }
}

async fn passwd_revokes_and_remove_deletes_tokens(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("pw\n")).await);
    let (a, _, _) = issue(&db, "alice", &["--dialect", "knox", "--static"]).await;
    let (b, _, _) = issue(&db, "alice", &["--dialect", "usertoken"]).await;
    let (bobs, _, _) = issue(&db, "bob", &["--dialect", "knox"]).await;

    fails(&admin(&db, &["user", "passwd", "alice", "--password-stdin"], Some("\n")).await, "password is empty");
    let list = tokens_of(&db, "alice").await;
    assert!(list.values().all(|t| t["state"] == "active"), "a refused passwd changes nothing: {list:?}");

    ok(&admin(&db, &["user", "passwd", "alice", "--password-stdin"], Some("new password\n")).await);
    let list = tokens_of(&db, "alice").await;
    assert_eq!(list.len(), 2);
    for id in [&a, &b] {
        assert_eq!(list[id]["state"], "revoked", "{}", list[id]);
    }
    assert_eq!(tokens_of(&db, "bob").await[&bobs]["state"], "active", "other users' tokens are untouched");

    ok(&admin(&db, &["user", "remove", "alice"], None).await);
    fails(&admin(&db, &["token", "list", "alice"], None).await, "no such user");
    // The rows are gone, not just their owner: the ids are unknown now.
    for id in [&a, &b] {
        fails(&admin(&db, &["token", "revoke", id], None).await, "no such token");
    }
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob"]);
    assert_eq!(tokens_of(&db, "bob").await[&bobs]["state"], "active");
}

async fn migrate_creates_the_schema_and_can_run_twice(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let sqlite_file = db.url.strip_prefix("sqlite://").map(std::path::PathBuf::from);
    if let Some(file) = &sqlite_file {
        assert!(!file.exists(), "{} should not exist yet", file.display());
    }
    for _ in 0..2 {
        let out = ok(&admin(&db, &["migrate"], None).await);
        assert!(out.starts_with("migrations applied to "), "{out}");
        if let Some(password) = url::Url::parse(&db.url).unwrap().password() {
            assert!(!out.contains(&format!(":{password}@")), "{out}");
            assert!(out.contains(":***@"), "{out}");
        }
    }
    if let Some(file) = &sqlite_file {
        assert!(file.is_file(), "{} was not created", file.display());
    }
    let users = json(&ok(&admin(&db, &["user", "list", "--json"], None).await));
    assert_eq!(users, serde_json::json!([]));
}

#[tokio::test]
async fn unsupported_scheme_names_the_accepted_ones() {
    let line = fails(&tokenauth(&["--database-url", "mysql://x/y", "user", "list"], None).await, "mysql");
    assert!(line.contains("sqlite://") && line.contains("postgres://"), "{line}");
}

#[tokio::test]
async fn unreachable_database_fails_fast_without_showing_the_password() {
    let started = Instant::now();
    let out = tokenauth(&["--database-url", "postgres://u:secretpw@127.0.0.1:1/db", "user", "list"], None).await;
    let elapsed = started.elapsed();
    let line = fails(&out, "127.0.0.1:1");
    assert!(!line.contains("secretpw"), "{line}");
    assert!(line.contains("***"), "the password is shown redacted: {line}");
    // why 15s: the pool gives up after database.acquire_timeout (5s by default).
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn missing_config_file_is_named() {
    let out = tokenauth(&["--config", "/nonexistent.toml", "config"], None).await;
    let line = fails(&out, "/nonexistent.toml");
    assert!(line.contains("does not exist"), "{line}");
    // The same through TOKENAUTH_CONFIG.
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_CONFIG", "/nonexistent.toml");
    fails(&run(cmd, None).await, "does not exist");
}

#[tokio::test]
async fn unknown_keys_in_the_config_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (body, key) in [("bindd = \"127.0.0.1:1\"\n", "bindd"), ("[knox]\ntoken_ttll = \"1h\"\n", "token_ttll")] {
        let file = dir.path().join("tokenauth.toml");
        std::fs::write(&file, body).unwrap();
        fails(&tokenauth(&["--config", file.to_str().unwrap(), "config"], None).await, key);
    }
}

#[tokio::test]
async fn invalid_values_fail_validation() {
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_KNOX__LOGOUT_STATUS", "201");
    fails(&run(cmd, None).await, "logout_status");

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_DATABASE__ACQUIRE_TIMEOUT", "1m");
    fails(&run(cmd, None).await, "acquire_timeout");

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_BIND", "not an address");
    fails(&run(cmd, None).await, "BIND");
}

#[tokio::test]
async fn config_prints_parseable_toml_with_the_password_redacted() {
    let out = ok(&tokenauth(&["--database-url", "postgres://u:topsecret@h/db", "config"], None).await);
    assert!(!out.contains("topsecret"), "{out}");
    let printed: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("not TOML ({e}): {out}"));
    assert_eq!(printed["database_url"].as_str(), Some("postgres://u:***@h/db"));

    // With no layers at all, it prints the defaults and parses back to them.
    let out = ok(&tokenauth(&["config"], None).await);
    let parsed: tokenauth::config::Config = toml::from_str(&out).unwrap();
    assert_eq!(parsed, tokenauth::config::Config::default());
}

#[tokio::test]
async fn config_layers_env_beats_file_and_flag_beats_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenauth.toml");
    std::fs::write(
        &file,
        "bind = \"127.0.0.1:1111\"\ndatabase_url = \"sqlite://from-file.db\"\n[knox]\nlogout_status = 204\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let printed = |out: &Output| ok(out).parse::<toml::Table>().unwrap();

    let from_file = printed(&tokenauth(&["--config", file, "config"], None).await);
    assert_eq!(from_file["bind"].as_str(), Some("127.0.0.1:1111"));
    assert_eq!(from_file["database_url"].as_str(), Some("sqlite://from-file.db"));
    assert_eq!(from_file["knox"]["logout_status"].as_integer(), Some(204));

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_CONFIG", file).env("TOKENAUTH_BIND", "127.0.0.1:2222");
    let env_over_file = printed(&run(cmd, None).await);
    assert_eq!(env_over_file["bind"].as_str(), Some("127.0.0.1:2222"), "env beats the file");
    assert_eq!(
        env_over_file["knox"]["logout_status"].as_integer(),
        Some(204),
        "the file named by TOKENAUTH_CONFIG is read"
    );

    let mut cmd = command(&["--config", file, "--database-url", "sqlite://from-flag.db", "config"]);
    cmd.env("TOKENAUTH_DATABASE_URL", "sqlite://from-env.db");
    let flag_over_env = printed(&run(cmd, None).await);
    assert_eq!(flag_over_env["database_url"].as_str(), Some("sqlite://from-flag.db"), "--database-url beats env");

    let mut cmd = command(&["--config", file, "config"]);
    cmd.env("TOKENAUTH_DATABASE_URL", "sqlite://from-env.db");
    let env_over_file = printed(&run(cmd, None).await);
    assert_eq!(env_over_file["database_url"].as_str(), Some("sqlite://from-env.db"), "env beats the file");
}

#[tokio::test]
async fn unknown_env_vars_are_warned_about_and_ignored() {
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_FOO", "1").env("TOKENAUTH_KNOX__TOKEN_TTLL", "1h");
    // A variable tokenauth reads that is not a configuration key: no warning.
    cmd.env("TOKENAUTH_TEST_DATABASE_URL", "postgres://x/y");
    let out = run(cmd, None).await;
    let printed = ok(&out);
    let warnings = stderr(&out);
    assert!(warnings.contains("TOKENAUTH_FOO"), "{warnings}");
    assert!(warnings.contains("TOKENAUTH_KNOX__TOKEN_TTLL"), "{warnings}");
    assert_eq!(warnings.lines().count(), 2, "one warning each: {warnings}");
    assert!(!printed.contains("foo") && !printed.contains("ttll"), "{printed}");
    let parsed: tokenauth::config::Config = toml::from_str(&printed).unwrap();
    assert_eq!(parsed, tokenauth::config::Config::default(), "ignored, so the defaults apply");
}

/// An empty `TOKENAUTH_CONFIG` (as `TOKENAUTH_CONFIG=` in a compose file or an env file
/// leaves it) names no file, so the other layers apply. Today clap takes the empty value as
/// `--config ""` and refuses it with a usage error about a flag the operator never passed.
#[tokio::test]
async fn empty_config_env_var_names_no_file() {
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_CONFIG", "").env("TOKENAUTH_BIND", "127.0.0.1:2222");
    let out = run(cmd, None).await;
    let printed: toml::Table = ok(&out).parse().unwrap();
    assert_eq!(printed["bind"].as_str(), Some("127.0.0.1:2222"));
}

#[tokio::test]
async fn nested_env_vars_set_table_keys() {
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_KNOX__TOKEN_TTL", "10h");
    let out = ok(&run(cmd, None).await);
    let knox = out.split("\n[knox]\n").nth(1).unwrap_or_else(|| panic!("no [knox] table: {out}"));
    let knox = knox.split("\n[").next().unwrap();
    assert!(knox.lines().any(|l| l == "token_ttl = \"10h\""), "{out}");
    let printed: toml::Table = toml::from_str(&out).unwrap();
    assert!(printed["usertoken"].get("token_ttl").is_none(), "only knox's: {out}");
}

const ROOT_ACL: &str = r#"{"cdr":["*"],"account":["r","w"]}"#;

/// Decode one base64url (unpadded) JWT segment as JSON.
fn jwt_segment(segment: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("not base64url ({e}): {segment}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// A JWT's header and payload, after checking it has three non-empty base64url segments.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "three segments: {token}");
    for seg in &segments {
        assert!(
            !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "base64url segment {seg:?} in {token}"
        );
    }
    (jwt_segment(segments[0]), jwt_segment(segments[1]))
}

/// The real time: the commands under test run on the system clock.
fn wall_clock() -> OffsetDateTime {
    use tokenauth::token::clock::Clock as _;
    tokenauth::token::clock::SystemClock.now()
}

/// Now, in epoch milliseconds.
pub fn now_millis() -> i64 {
    i64::try_from(wall_clock().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Assert `ms` is within a minute of `now_millis() + lifetime`.
#[track_caller]
pub fn assert_millis_near(ms: i64, lifetime: Duration) {
    let expected = now_millis() + i64::try_from(lifetime.as_millis()).unwrap();
    assert!((ms - expected).abs() < 60_000, "{ms} is not within a minute of {expected} (epoch milliseconds)");
}

/// `token issue NAME --dialect webitel ARGS` (plain output): (key, token, header, payload).
async fn webitel_token(db: &TestDb, name: &str, args: &[&str]) -> (String, String, Value, Value) {
    let mut all = vec!["token", "issue", name, "--dialect", "webitel"];
    all.extend_from_slice(args);
    let out = ok(&admin(db, &all, None).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "the key, then the token: {out:?}");
    assert!(out.ends_with('\n'), "{out:?}");
    let key = Uuid::parse_str(lines[0]).unwrap_or_else(|e| panic!("the key is a UUID ({e}): {out:?}"));
    assert_eq!(key.get_version_num(), 4, "{key}");
    let (header, payload) = jwt_parts(lines[1]);
    (lines[0].to_owned(), lines[1].to_owned(), header, payload)
}

async fn role_list(db: &TestDb) -> Vec<Value> {
    json(&ok(&admin(db, &["role", "list", "--json"], None).await)).as_array().unwrap().clone()
}

/// `user list --json`: name to role (null when none).
async fn user_roles(db: &TestDb) -> BTreeMap<String, Value> {
    let users = json(&ok(&admin(db, &["user", "list", "--json"], None).await));
    users.as_array().unwrap().iter().map(|u| (u["name"].as_str().unwrap().to_owned(), u["role"].clone())).collect()
}

async fn roles_are_added_listed_and_refused(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let out = ok(&admin(&db, &["role", "add", "root", "--code", "2", "--acl", ROOT_ACL], None).await);
    assert!(out.contains("root"), "{out}");
    let roles = role_list(&db).await;
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0]["name"], "root");
    assert_eq!(roles[0]["code"], 2);
    assert_eq!(roles[0]["users"], 0);
    assert_eq!(roles[0]["acl"], json(ROOT_ACL));
    let created = rfc3339(&roles[0]["created"]);
    assert!((wall_clock() - created).abs() < time::Duration::minutes(1), "{created}");

    let line = fails(&admin(&db, &["role", "add", "root", "--code", "1", "--acl", "{}"], None).await, "already exists");
    assert!(line.contains("root"), "{line}");
    fails(&admin(&db, &["role", "add", "bad", "--code", "1", "--acl", "{bad"], None).await, "invalid ACL");
    fails(&admin(&db, &["role", "add", "bad", "--code", "1", "--acl", r#"{"cdr":"*"}"#], None).await, "invalid ACL");
    fails(&admin(&db, &["role", "add", "bad", "--code", "1", "--acl", r#"["cdr"]"#], None).await, "invalid ACL");
    fails(
        &admin(&db, &["role", "add", "bad", "--code", "1", "--acl-file", "/nonexistent/acl.json"], None).await,
        "/nonexistent/acl.json",
    );
    usage_error(&admin(&db, &["role", "add", "bad", "--code", "1"], None).await);
    usage_error(&admin(&db, &["role", "add", "bad", "--acl", "{}"], None).await);
    usage_error(&admin(&db, &["role", "add", "bad", "--code", "one", "--acl", "{}"], None).await);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.json");
    std::fs::write(&file, "{\n  \"cdr/files\": [\"r\"],\n  \"dialer\": [\"r\", \"w\", \"u\", \"d\"]\n}\n").unwrap();
    let file = file.to_str().unwrap();
    usage_error(&admin(&db, &["role", "add", "both", "--code", "1", "--acl", "{}", "--acl-file", file], None).await);
    ok(&admin(&db, &["role", "add", "admin", "--code", "1", "--acl-file", file], None).await);
    ok(&admin(&db, &["role", "add", "guest", "--code", "-1", "--acl", "{}"], None).await);

    let roles = role_list(&db).await;
    let summary: Vec<(&str, i64)> =
        roles.iter().map(|r| (r["name"].as_str().unwrap(), r["code"].as_i64().unwrap())).collect();
    assert_eq!(summary, [("admin", 1), ("guest", -1), ("root", 2)], "by name; no refused role was added");
    assert_eq!(roles[0]["acl"], serde_json::json!({"cdr/files": ["r"], "dialer": ["r", "w", "u", "d"]}));
    assert_eq!(roles[1]["acl"], serde_json::json!({}));

    let table = ok(&admin(&db, &["role", "list"], None).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "CODE", "USERS", "CREATED", "ACL"]);
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[3].starts_with("root ") && lines[3].ends_with(r#"{"account":["r","w"],"cdr":["*"]}"#), "{table}");
}

async fn users_get_change_and_lose_roles(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["role", "add", "root", "--code", "2", "--acl", ROOT_ACL], None).await);
    ok(&admin(&db, &["role", "add", "other", "--code", "0", "--acl", r#"{"book":["r"]}"#], None).await);
    let name = "100@mydomain.com";
    let out = ok(&admin(&db, &["user", "add", name, "--password-stdin", "--role", "root"], Some("secret\n")).await);
    assert!(out.contains("root"), "{out}");
    assert_eq!(user_roles(&db).await[name], "root");

    let line = fails(
        &admin(&db, &["user", "add", "bob", "--password-stdin", "--role", "nope"], Some("pw\n")).await,
        "no such role",
    );
    assert!(line.contains("nope"), "{line}");
    assert_eq!(user_roles(&db).await.keys().collect::<Vec<_>>(), [name], "bob was not created");

    ok(&admin(&db, &["user", "set-role", name, "other"], None).await);
    assert_eq!(user_roles(&db).await[name], "other");
    let members: Vec<(String, Value)> =
        role_list(&db).await.iter().map(|r| (r["name"].as_str().unwrap().to_owned(), r["users"].clone())).collect();
    assert_eq!(members, [("other".into(), 1.into()), ("root".into(), 0.into())]);

    ok(&admin(&db, &["user", "set-role", name, "--none"], None).await);
    assert_eq!(user_roles(&db).await[name], Value::Null);
    let table = ok(&admin(&db, &["user", "list"], None).await);
    assert_eq!(table.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)), Some("-"), "{table}");

    usage_error(&admin(&db, &["user", "set-role", name], None).await);
    usage_error(&admin(&db, &["user", "set-role", name, "root", "--none"], None).await);
    fails(&admin(&db, &["user", "set-role", name, "nope"], None).await, "no such role");
    fails(&admin(&db, &["user", "set-role", "nobody", "root"], None).await, "no such user");
    assert_eq!(user_roles(&db).await[name], Value::Null, "refused commands change nothing");
}

async fn roles_in_use_cannot_be_removed(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["role", "add", "root", "--code", "2", "--acl", ROOT_ACL], None).await);
    ok(&admin(&db, &["role", "add", "other", "--code", "0", "--acl", "{}"], None).await);
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin", "--role", "root"], Some("pw\n")).await);
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin", "--role", "other"], Some("pw\n")).await);

    let line = fails(&admin(&db, &["role", "remove", "root"], None).await, "still given to 1 user");
    assert!(line.contains("root"), "{line}");
    assert_eq!(role_list(&db).await.len(), 2, "nothing removed");
    assert_eq!(user_roles(&db).await["alice"], "root");

    ok(&admin(&db, &["user", "set-role", "alice", "--none"], None).await);
    let out = ok(&admin(&db, &["role", "remove", "root"], None).await);
    assert!(out.contains("root"), "{out}");
    let names: Vec<Value> = role_list(&db).await.iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["other"]);
    fails(&admin(&db, &["role", "remove", "root"], None).await, "no such role");
    fails(&admin(&db, &["role", "remove", "nope"], None).await, "no such role");

    // Removing its last user frees a role too.
    fails(&admin(&db, &["role", "remove", "other"], None).await, "still given to 1 user");
    ok(&admin(&db, &["user", "remove", "bob"], None).await);
    ok(&admin(&db, &["role", "remove", "other"], None).await);
    assert!(role_list(&db).await.is_empty());
}

async fn webitel_tokens_are_jwts_printed_after_their_key(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["role", "add", "root", "--code", "2", "--acl", ROOT_ACL], None).await);
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin", "--role", "root"], Some("pw\n")).await);
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("pw\n")).await);
    let day = Duration::from_secs(24 * 3600);

    let (key, _, header, payload) = webitel_token(&db, "alice", &[]).await;
    assert_eq!(header["alg"], "HS256", "{header}");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()), "{header}");
    assert_eq!(payload["jti"], key.as_str(), "{payload}");
    let exp = payload["exp"].as_i64().unwrap_or_else(|| panic!("exp is an integer: {payload}"));
    assert_millis_near(exp, day);
    assert_eq!(payload["acl"], json(ROOT_ACL), "{payload}");

    let (key, _, _, payload) = webitel_token(&db, "bob", &["--static"]).await;
    assert_eq!(payload["jti"], key.as_str());
    assert!(payload.get("exp").is_none(), "a static token has no exp: {payload}");
    assert_eq!(payload["acl"], serde_json::json!({}), "no role, empty ACL: {payload}");

    let (_, _, _, payload) = webitel_token(&db, "bob", &["--ttl", "1h"]).await;
    assert_millis_near(payload["exp"].as_i64().unwrap(), Duration::from_secs(3600));

    let (id, token, expires) = issue(&db, "alice", &["--dialect", "webitel"]).await;
    let (header, payload) = jwt_parts(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(payload["jti"], id.as_str());
    let expires = rfc3339(&expires);
    assert_eq!(
        payload["exp"].as_i64(),
        Some(i64::try_from(expires.unix_timestamp_nanos() / 1_000_000).unwrap()),
        "exp is `expires` in milliseconds: {payload}"
    );
    assert_millis_near(payload["exp"].as_i64().unwrap(), day);
    let (_, token, expires) = issue(&db, "alice", &["--dialect", "webitel", "--static"]).await;
    assert!(expires.is_null(), "{expires}");
    assert!(jwt_parts(&token).1.get("exp").is_none());

    // Every issue made a webitel row: 3 for alice, 2 for bob.
    let listed = tokens_of(&db, "alice").await;
    assert_eq!(listed.len(), 3);
    assert!(listed.values().all(|t| t["dialect"] == "webitel"), "{listed:?}");
    assert_eq!(tokens_of(&db, "bob").await.len(), 2);
}

/// `keys list`: (kid, signing) per row.
async fn keys_list(db: &TestDb) -> Vec<(String, bool)> {
    let table = ok(&admin(db, &["keys", "list"], None).await);
    let mut lines = table.lines();
    assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["KID", "CREATED", "SIGNING"]);
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert!(cells.len() == 2 || (cells.len() == 3 && cells[2] == "yes"), "{table}");
            (cells[0].to_owned(), cells.len() == 3)
        })
        .collect()
}

fn is_rotated_kid(kid: &str) -> bool {
    kid.len() == 14
        && kid.starts_with("k-")
        && kid[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn keys_rotate_and_old_tokens_keep_their_kid(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    assert_eq!(keys_list(&db).await, [("initial".to_owned(), true)]);
    let (_, before, header, _) = webitel_token(&db, "alice", &[]).await;
    assert_eq!(header["kid"], "initial");

    let out = ok(&admin(&db, &["keys", "rotate"], None).await);
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let first = out.trim_end().to_owned();
    assert!(is_rotated_kid(&first), "k- and 12 hex: {first:?}");
    assert_eq!(keys_list(&db).await, [("initial".to_owned(), false), (first.clone(), true)]);
    let (_, after, header, _) = webitel_token(&db, "alice", &[]).await;
    assert_eq!(header["kid"], first.as_str(), "issued after the rotation");
    assert_eq!(jwt_parts(&before).0["kid"], "initial", "issued before the rotation");
    assert_ne!(before, after);

    let second = ok(&admin(&db, &["keys", "rotate"], None).await).trim_end().to_owned();
    assert!(is_rotated_kid(&second) && second != first, "{second:?}");
    let keys = keys_list(&db).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(
        keys.iter().filter(|(_, signing)| *signing).map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [second.as_str()]
    );
    assert_eq!(webitel_token(&db, "alice", &[]).await.2["kid"], second.as_str());
}

const JWT_SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL";

#[tokio::test]
async fn config_never_prints_the_jwt_secret() {
    assert_eq!(JWT_SECRET.len(), 48);
    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_JWT_SECRET", JWT_SECRET);
    let out = run(cmd, None).await;
    let printed = ok(&out);
    assert!(!printed.contains(JWT_SECRET) && !printed.contains(&JWT_SECRET[..16]), "{printed}");
    assert!(printed.lines().any(|l| l == r#"jwt_secret = "[REDACTED]""#), "{printed}");
    assert_eq!(stderr(&out), "", "no warning about TOKENAUTH_JWT_SECRET");
    toml::from_str::<toml::Table>(&printed).unwrap_or_else(|e| panic!("not TOML ({e}): {printed}"));
    assert!(!ok(&tokenauth(&["config"], None).await).contains("jwt_secret"), "not shown when unset");

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_JWT_SECRET", "0123456789");
    let line = fails(&run(cmd, None).await, "jwt_secret");
    assert!(!line.contains("0123456789"), "{line}");
}

async fn configured_jwt_secret_signs_webitel_tokens(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "alice", "--password-stdin"], Some("pw\n")).await);
    let with_secret = |args: &[&str]| {
        let mut all = vec!["--database-url", db.url.as_str()];
        all.extend_from_slice(args);
        let mut cmd = command(&all);
        cmd.env("TOKENAUTH_JWT_SECRET", JWT_SECRET);
        cmd
    };
    let out = ok(&run(with_secret(&["token", "issue", "alice", "--dialect", "webitel"]), None).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    let (header, payload) = jwt_parts(lines[1]);
    let kid = header["kid"].as_str().unwrap();
    assert!(kid.starts_with("cfg-"), "{header}");
    let expected = tokenauth::token::jwt::configured_kid(&secrecy::SecretString::from(JWT_SECRET));
    assert_eq!(kid, expected);
    assert_eq!(payload["jti"], lines[0]);

    // Signed with exactly the configured secret.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let verify = |secret: &str| {
        jsonwebtoken::decode::<Value>(lines[1], &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()), &validation)
    };
    verify(JWT_SECRET).unwrap_or_else(|e| panic!("not signed with the configured secret: {e}"));
    assert!(verify(&JWT_SECRET.replace('0', "1")).is_err());

    let table = ok(&run(with_secret(&["keys", "list"]), None).await);
    assert!(!table.contains(JWT_SECRET), "{table}");
    let signing: Vec<&str> = table.lines().filter(|l| l.ends_with(" yes")).collect();
    assert_eq!(signing.len(), 1, "{table}");
    assert!(signing[0].starts_with(&format!("{expected} ")), "{table}");
}

// ---- dialer: user groups, resellers, user attributes, dialer tokens ----

/// `group list --json`, in name order.
pub async fn group_list(db: &TestDb) -> Vec<Value> {
    json(&ok(&admin(db, &["group", "list", "--json"], None).await)).as_array().unwrap().clone()
}

/// `reseller list --json`, in id order.
pub async fn reseller_list(db: &TestDb) -> Vec<Value> {
    json(&ok(&admin(db, &["reseller", "list", "--json"], None).await)).as_array().unwrap().clone()
}

/// `user list --json`, keyed by name.
pub async fn user_list(db: &TestDb) -> BTreeMap<String, Value> {
    let users = json(&ok(&admin(db, &["user", "list", "--json"], None).await));
    users.as_array().unwrap().iter().map(|u| (u["name"].as_str().unwrap().to_owned(), u.clone())).collect()
}

/// `token list NAME --reseller --json`, keyed by token id.
pub async fn reseller_tokens_of(db: &TestDb, name: &str) -> BTreeMap<String, Value> {
    let list = json(&ok(&admin(db, &["token", "list", name, "--reseller", "--json"], None).await));
    list.as_array().unwrap().iter().map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone())).collect()
}

/// A listed row without its `created` time, after checking that time is RFC 3339 and recent.
#[track_caller]
fn without_created(row: &Value) -> Value {
    let created = rfc3339(&row["created"]);
    assert!((wall_clock() - created).abs() < time::Duration::minutes(1), "{row}");
    let mut row = row.clone();
    row.as_object_mut().unwrap().remove("created");
    row
}

/// A JWT payload's keys, sorted.
fn claim_names(payload: &Value) -> Vec<&str> {
    payload.as_object().unwrap().keys().map(String::as_str).collect()
}

/// An RFC 3339 time from a listing, in epoch seconds (what dialer JWTs carry).
fn epoch_secs(v: &Value) -> i64 {
    rfc3339(v).unix_timestamp()
}

async fn groups_are_added_listed_and_removed(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["reseller", "add", "acme", "--password-stdin"], Some("pw\n")).await);
    let out =
        ok(&admin(&db, &["group", "add", "office", "--allowed-regex", r"^10\.1\.", "--reseller", "acme"], None).await);
    assert!(out.starts_with("created user group office (id "), "{out}");
    ok(&admin(&db, &["group", "add", "callers"], None).await);

    let groups = group_list(&db).await;
    let ids: Vec<i64> = groups.iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(
        groups.iter().map(without_created).collect::<Vec<_>>(),
        [
            serde_json::json!({"id": ids[0], "name": "callers", "allowed_regex": null, "reseller": null, "users": 0}),
            serde_json::json!({
                "id": ids[1], "name": "office", "allowed_regex": r"^10\.1\.", "reseller": "acme", "users": 0
            }),
        ],
        "by name"
    );
    assert!(ids[1] < ids[0], "office was created first: {groups:?}");

    let table = ok(&admin(&db, &["group", "list"], None).await);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "NAME", "RESELLER", "USERS", "CREATED", "ALLOWED", "REGEX"], "{table}");
    assert_eq!(rows.len(), 3, "{table}");
    let (callers, office) = (&rows[1], &rows[2]);
    assert_eq!((callers[1], callers[2], callers[3], callers[5]), ("callers", "-", "0", "-"), "{table}");
    assert_eq!((office[1], office[2], office[3], office[5]), ("office", "acme", "0", r"^10\.1\."), "{table}");

    // Refused: a second group of the same name, an unknown owner, a bad name.
    let line = fails(&admin(&db, &["group", "add", "office"], None).await, "already exists");
    assert!(line.contains("office"), "{line}");
    let line = fails(&admin(&db, &["group", "add", "west", "--reseller", "ghost"], None).await, "no such reseller");
    assert!(line.contains("ghost"), "{line}");
    // A user's name is not a reseller's.
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("pw\n")).await);
    fails(&admin(&db, &["group", "add", "west", "--reseller", "bob"], None).await, "no such reseller");
    fails(&admin(&db, &["group", "add", " west"], None).await, "invalid name");
    assert_eq!(group_list(&db).await.len(), 2, "no group was added by the refused commands");

    // A group with a member cannot be removed; once empty it can.
    ok(&admin(&db, &["user", "add", "agent", "--password-stdin", "--group", "office"], Some("pw\n")).await);
    assert_eq!(group_list(&db).await[1]["users"], 1);
    let line = fails(&admin(&db, &["group", "remove", "office"], None).await, "office");
    assert!(line.contains("1 member"), "{line}");
    assert_eq!(group_list(&db).await.len(), 2, "nothing removed");
    assert_eq!(user_list(&db).await["agent"]["group"], "office", "the member keeps its group");
    ok(&admin(&db, &["user", "remove", "agent"], None).await);
    let out = ok(&admin(&db, &["group", "remove", "office"], None).await);
    assert_eq!(out, "removed user group office\n");
    let names: Vec<Value> = group_list(&db).await.iter().map(|g| g["name"].clone()).collect();
    assert_eq!(names, ["callers"]);
    fails(&admin(&db, &["group", "remove", "office"], None).await, "no such user group");
    fails(&admin(&db, &["group", "remove", "Callers"], None).await, "no such user group");
}

async fn bad_allowed_regexes_are_refused_and_nothing_is_stored(backend: Backend) {
    let db = TestDb::new(&backend).await;
    for pattern in ["(", "[0-9", "a{2,1}", "*", r"\p{Nope}"] {
        let out = admin(&db, &["group", "add", "bad", "--allowed-regex", pattern], None).await;
        usage_error(&out);
        let err = stderr(&out);
        assert!(err.contains("allowed_regex") && err.contains("not a valid regular expression"), "{pattern:?}: {err}");
    }
    // A pattern whose compiled form is too large, and one that is too long.
    let out = admin(&db, &["group", "add", "bad", "--allowed-regex", "a{99999999}"], None).await;
    usage_error(&out);
    assert!(stderr(&out).contains("size limit"), "{}", stderr(&out));
    let long = "1".repeat(1025);
    let out = admin(&db, &["group", "add", "bad", "--allowed-regex", &long], None).await;
    usage_error(&out);
    assert!(stderr(&out).contains("longer than 1024 characters"), "{}", stderr(&out));
    assert!(group_list(&db).await.is_empty(), "no group was stored");

    // At the limit, it is stored as given.
    let longest = "1".repeat(1024);
    ok(&admin(&db, &["group", "add", "ok", "--allowed-regex", &longest], None).await);
    assert_eq!(group_list(&db).await[0]["allowed_regex"], longest.as_str());
}

/// A bad `--allowed-regex` is refused with a clear one-line error, as the brief (and every
/// other refused value: `--allowed-ip`, `--balance`, `--ttl`) has it. Today the regex crate's
/// multi-line diagnostic (the pattern, a caret line, then `error: ...`) is embedded as is.
#[tokio::test]
async fn bad_allowed_regex_is_explained_in_one_line() {
    for pattern in ["(", "[0-9", "a{2,1}"] {
        let out =
            tokenauth(&["--database-url", "sqlite::memory:", "group", "add", "g", "--allowed-regex", pattern], None)
                .await;
        let err = stderr(&out);
        assert!(matches!(out.status.code(), Some(1 | 2)), "{pattern:?}: {:?}: {err}", out.status);
        let message: Vec<&str> = err.lines().take_while(|l| !l.is_empty()).collect();
        assert_eq!(message.len(), 1, "the error for {pattern:?} is one line: {err:?}");
        assert!(message[0].starts_with("error: ") && message[0].contains("not a valid regular expression"), "{err:?}");
    }
}

async fn resellers_are_added_listed_and_refused(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let out =
        ok(&admin(&db, &["reseller", "add", "acme", "--password-stdin", "--balance", "1000"], Some("pw\n")).await);
    assert!(out.starts_with("created reseller acme (id "), "{out}");
    let ips = ["--allowed-ip", "203.0.113.7", "--allowed-ip", "10.1.2.3/16", "--allowed-ip", "2001:db8::1"];
    let mut args = vec!["reseller", "add", "precise", "--password", "pw", "--balance", "12.345"];
    args.extend_from_slice(&ips);
    ok(&admin(&db, &args, None).await);
    ok(&admin(&db, &["reseller", "add", "plain", "--password-stdin"], Some("pw\n")).await);
    ok(&admin(&db, &["reseller", "add", "owing", "--password", "pw", "--balance", "-0.5"], None).await);

    let list = reseller_list(&db).await;
    let ids: Vec<i64> = list.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id: {list:?}");
    let row = |i: usize, name: &str, balance: &str, ips: &[&str]| {
        serde_json::json!({
            "id": ids[i], "name": name, "enabled": true, "balance": balance, "allowed_ips": ips, "last_login": null
        })
    };
    assert_eq!(
        list.iter().map(without_created).collect::<Vec<_>>(),
        [
            row(0, "acme", "1000.00", &[]),
            row(1, "precise", "12.345", &["203.0.113.7/32", "10.1.0.0/16", "2001:db8::1/128"]),
            row(2, "plain", "0.00", &[]),
            row(3, "owing", "-0.50", &[]),
        ],
        "balances as strings, exactly as given with at least two decimals; CIDRs normalised"
    );

    let table = ok(&admin(&db, &["reseller", "list"], None).await);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "NAME", "ENABLED", "BALANCE", "CREATED", "LAST", "LOGIN", "ALLOWED", "IPS"], "{table}");
    let cells: Vec<(&str, &str, &str, &str)> = rows[1..].iter().map(|r| (r[1], r[2], r[3], r[6])).collect();
    assert_eq!(
        cells,
        [
            ("acme", "yes", "1000.00", "any"),
            ("precise", "yes", "12.345", "203.0.113.7/32,10.1.0.0/16,2001:db8::1/128"),
            ("plain", "yes", "0.00", "any"),
            ("owing", "yes", "-0.50", "any"),
        ],
        "{table}"
    );

    // Refused, with nothing stored.
    let line =
        fails(&admin(&db, &["reseller", "add", "acme", "--password-stdin"], Some("pw\n")).await, "already exists");
    assert!(line.contains("acme"), "{line}");
    for ip in ["10.0.0.300", "10.0.0.0/33", "example.com", "", "10.0.0.1 "] {
        let out = admin(&db, &["reseller", "add", "bad", "--password", "pw", "--allowed-ip", ip], None).await;
        usage_error(&out);
        assert!(stderr(&out).contains("--allowed-ip"), "{ip:?}: {}", stderr(&out));
    }
    for balance in ["1e3", "1.23456", "abc", "1,5", "1.", ".5", "+1", "1234567890123456", "", "NaN"] {
        let out = admin(&db, &["reseller", "add", "bad", "--password", "pw", "--balance", balance], None).await;
        usage_error(&out);
        assert!(stderr(&out).contains("--balance"), "{balance:?}: {}", stderr(&out));
    }
    fails(&admin(&db, &["reseller", "add", " bad", "--password", "pw"], None).await, "invalid name");
    fails(&admin(&db, &["reseller", "add", "bad", "--password-stdin"], Some("\n")).await, "password is empty");
    // User attributes are not reseller options.
    usage_error(&admin(&db, &["reseller", "add", "bad", "--password", "pw", "--admin"], None).await);
    usage_error(&admin(&db, &["reseller", "add", "bad", "--password", "pw", "--group", "g"], None).await);
    usage_error(&admin(&db, &["reseller", "add", "bad"], None).await);
    assert_eq!(reseller_list(&db).await.len(), 4, "no reseller was added by the refused commands");

    // Users and resellers are separate name spaces: the same name may be both.
    ok(&admin(&db, &["user", "add", "acme", "--password-stdin"], Some("pw\n")).await);
    ok(&admin(&db, &["user", "add", "carol", "--password-stdin"], Some("pw\n")).await);
    ok(&admin(&db, &["reseller", "add", "carol", "--password-stdin"], Some("pw\n")).await);
    assert_eq!(user_list(&db).await.keys().collect::<Vec<_>>(), ["acme", "carol"]);
    let names: Vec<Value> = reseller_list(&db).await.iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["acme", "precise", "plain", "owing", "carol"]);
}

async fn resellers_are_disabled_enabled_repassworded_and_removed(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["reseller", "add", "acme", "--password-stdin"], Some("pw\n")).await);
    ok(&admin(&db, &["group", "add", "west", "--reseller", "acme"], None).await);
    // A user of the same name, whose tokens nothing below may touch.
    ok(&admin(&db, &["user", "add", "acme", "--password-stdin"], Some("pw\n")).await);
    let (users, _, _) = issue(&db, "acme", &["--dialect", "dialer"]).await;
    let reseller = ["--reseller", "--dialect", "dialer"];
    let (a, _, _) = issue(&db, "acme", &reseller).await;
    let (b, _, _) = issue(&db, "acme", &[&reseller[..], &["--static"]].concat()).await;

    assert_eq!(ok(&admin(&db, &["reseller", "disable", "acme"], None).await), "disabled reseller acme\n");
    assert_eq!(reseller_list(&db).await[0]["enabled"], false);
    assert_eq!(user_list(&db).await["acme"]["enabled"], true, "the user of that name is another principal");
    assert_eq!(ok(&admin(&db, &["reseller", "enable", "acme"], None).await), "enabled reseller acme\n");
    assert_eq!(reseller_list(&db).await[0]["enabled"], true);

    fails(&admin(&db, &["reseller", "passwd", "acme", "--password-stdin"], Some("\n")).await, "password is empty");
    assert!(reseller_tokens_of(&db, "acme").await.values().all(|t| t["state"] == "active"), "a refused passwd");
    let out = ok(&admin(&db, &["reseller", "passwd", "acme", "--password-stdin"], Some("new\n")).await);
    assert!(out.starts_with("password changed for reseller acme"), "{out}");
    let list = reseller_tokens_of(&db, "acme").await;
    assert_eq!(list.keys().collect::<Vec<_>>().len(), 2);
    for id in [&a, &b] {
        assert_eq!(list[id]["state"], "revoked", "{}", list[id]);
    }
    assert_eq!(tokens_of(&db, "acme").await[&users]["state"], "active", "the user's token is untouched");

    let (c, _, _) = issue(&db, "acme", &reseller).await;
    assert_eq!(ok(&admin(&db, &["reseller", "remove", "acme"], None).await), "removed reseller acme and its tokens\n");
    assert!(reseller_list(&db).await.is_empty());
    fails(&admin(&db, &["token", "list", "acme", "--reseller"], None).await, "no such reseller");
    for id in [&a, &b, &c] {
        fails(&admin(&db, &["token", "revoke", id], None).await, "no such token");
    }
    // Its groups stay, unowned; the user of the same name and its token stay.
    let groups = group_list(&db).await;
    assert_eq!((groups.len(), &groups[0]["name"], &groups[0]["reseller"]), (1, &"west".into(), &Value::Null));
    assert_eq!(tokens_of(&db, "acme").await[&users]["state"], "active");

    // Unknown resellers, exact names, and a name only a user has.
    for name in ["nobody", "Acme", "acme"] {
        for cmd in ["disable", "enable", "remove"] {
            let line = fails(&admin(&db, &["reseller", cmd, name], None).await, "no such reseller");
            assert!(line.contains(name), "{line}");
        }
        let out = admin(&db, &["reseller", "passwd", name, "--password-stdin"], Some("pw\n")).await;
        fails(&out, "no such reseller");
    }
    assert_eq!(user_list(&db).await["acme"]["enabled"], true);
}

async fn users_get_dialer_attributes_and_only_existing_groups(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["group", "add", "callers"], None).await);
    let args = ["user", "add", "agent@example.com", "--password-stdin", "--group", "callers", "--admin"];
    let out = ok(&admin(&db, &[&args[..], &["--sms-from", "+15550100"]].concat(), Some("pw\n")).await);
    assert!(out.starts_with("created user agent@example.com (id "), "{out}");
    assert!(out.trim_end().ends_with(" with group callers, admin"), "{out}");
    ok(&admin(&db, &["user", "add", "plain", "--password", "pw"], None).await);

    let users = user_list(&db).await;
    let pick = |u: &Value| serde_json::json!({"group": u["group"], "admin": u["admin"], "sms_from": u["sms_from"], "role": u["role"]});
    assert_eq!(
        pick(&users["agent@example.com"]),
        serde_json::json!({"group": "callers", "admin": true, "sms_from": "+15550100", "role": null})
    );
    assert_eq!(
        pick(&users["plain"]),
        serde_json::json!({"group": null, "admin": false, "sms_from": null, "role": null})
    );
    for u in users.values() {
        assert!(u.as_object().unwrap().contains_key("sms_from") && u.as_object().unwrap().contains_key("group"), "{u}");
    }
    assert_eq!(group_list(&db).await[0]["users"], 1);

    let table = ok(&admin(&db, &["user", "list"], None).await);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["ID", "NAME", "ENABLED", "ROLE", "GROUP", "ADMIN", "CREATED", "LAST", "LOGIN"]);
    let cells: Vec<(&str, &str, &str)> = rows[1..].iter().map(|r| (r[1], r[4], r[5])).collect();
    assert_eq!(cells, [("agent@example.com", "callers", "yes"), ("plain", "-", "no")], "{table}");

    // Refused, with nothing stored: an unknown group, bad SMS senders, reseller options.
    let line = fails(
        &admin(&db, &["user", "add", "bob", "--password-stdin", "--group", "nope"], Some("pw\n")).await,
        "no such user group",
    );
    assert!(line.contains("nope"), "{line}");
    fails(
        &admin(&db, &["user", "add", "bob", "--password-stdin", "--group", "Callers"], Some("pw\n")).await,
        "Callers",
    );
    for sender in ["", "a\tb", &"x".repeat(65)] {
        let out = admin(&db, &["user", "add", "bob", "--password", "pw", "--sms-from", sender], None).await;
        usage_error(&out);
        assert!(stderr(&out).contains("sms_from"), "{sender:?}: {}", stderr(&out));
    }
    usage_error(&admin(&db, &["user", "add", "bob", "--password", "pw", "--allowed-ip", "10.0.0.1"], None).await);
    usage_error(&admin(&db, &["user", "add", "bob", "--password", "pw", "--balance", "1"], None).await);
    assert_eq!(user_list(&db).await.keys().collect::<Vec<_>>(), ["agent@example.com", "plain"], "bob was not added");
    assert_eq!(group_list(&db).await[0]["users"], 1);

    // The longest sender is accepted.
    ok(&admin(&db, &["user", "add", "bob", "--password", "pw", "--sms-from", &"x".repeat(64)], None).await);
    assert_eq!(user_list(&db).await["bob"]["sms_from"], "x".repeat(64));
}

async fn dialer_tokens_carry_the_seed_claims(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let day = 24 * 3600;
    ok(&admin(&db, &["group", "add", "callers"], None).await);
    let args = ["user", "add", "agent@example.com", "--password", "pw", "--group", "callers", "--admin"];
    ok(&admin(&db, &[&args[..], &["--sms-from", "Acme Ltd"]].concat(), None).await);
    ok(&admin(&db, &["user", "add", "plain", "--password", "pw"], None).await);
    ok(&admin(&db, &["reseller", "add", "acme", "--password", "pw"], None).await);
    let users = user_list(&db).await;
    let (agent_id, plain_id) = (users["agent@example.com"]["id"].clone(), users["plain"]["id"].clone());
    let group_id = group_list(&db).await[0]["id"].clone();
    let reseller_id = reseller_list(&db).await[0]["id"].clone();
    assert!(agent_id.is_i64() && group_id.is_i64() && reseller_id.is_i64());
    let now_secs = now_millis() / 1000;

    // Plain output: the JWT alone, on one line.
    let out = ok(&admin(&db, &["token", "issue", "agent@example.com", "--dialect", "dialer"], None).await);
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let token = out.trim_end();
    let (header, payload) = jwt_parts(token);
    assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "initial"}));
    let listed = tokens_of(&db, "agent@example.com").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (id, row) = listed.iter().next().unwrap();
    assert_eq!((row["dialect"].as_str(), row["kind"].as_str()), (Some("dialer"), Some("session")), "{row}");
    assert_eq!(
        claim_names(&payload),
        ["admin", "exp", "iat", "id", "jti", "name", "sms_from", "type", "user_group_id"]
    );
    assert_eq!(payload["type"], "user");
    assert_eq!(payload["admin"], true);
    assert_eq!(payload["id"], agent_id);
    assert_eq!(payload["name"], "agent@example.com");
    assert_eq!(payload["sms_from"], "Acme Ltd");
    assert_eq!(payload["user_group_id"], group_id);
    assert_eq!(payload["jti"], id.as_str(), "the token row's id");
    let (exp, iat) = (payload["exp"].as_i64().unwrap(), payload["iat"].as_i64().unwrap());
    assert_eq!(exp, epoch_secs(&row["expires"]), "exp is the row's expiry in epoch seconds: {payload}");
    assert_eq!(iat, epoch_secs(&row["created"]), "iat is the row's creation in epoch seconds: {payload}");
    assert!((iat - now_secs).abs() < 60, "{payload}");
    assert!((exp - iat - day).abs() <= 1, "a session lasts 24 h by default: {payload}");

    // --json: the same token format, with the row id and the expiry; a plain user's claims are null.
    let (id, token, expires) = issue(&db, "plain", &["--dialect", "dialer"]).await;
    let payload = jwt_parts(&token).1;
    assert_eq!(payload["jti"], id.as_str());
    assert_eq!(payload["exp"].as_i64(), Some(epoch_secs(&expires)), "{payload}");
    assert_eq!(
        (&payload["type"], &payload["admin"], &payload["id"], &payload["name"]),
        (&"user".into(), &false.into(), &plain_id, &"plain".into())
    );
    assert_eq!(
        claim_names(&payload),
        ["admin", "exp", "iat", "id", "jti", "name", "sms_from", "type", "user_group_id"]
    );
    assert_eq!((&payload["sms_from"], &payload["user_group_id"]), (&Value::Null, &Value::Null), "{payload}");

    // --static: no exp; --ttl: exp that far after iat.
    let (id, token, expires) = issue(&db, "agent@example.com", &["--dialect", "dialer", "--static"]).await;
    assert!(expires.is_null(), "{expires}");
    let payload = jwt_parts(&token).1;
    assert_eq!(claim_names(&payload), ["admin", "iat", "id", "jti", "name", "sms_from", "type", "user_group_id"]);
    assert_eq!(payload["jti"], id.as_str());
    assert_eq!(tokens_of(&db, "agent@example.com").await[&id]["kind"], "static");
    let (_, token, expires) = issue(&db, "plain", &["--dialect", "dialer", "--ttl", "1h"]).await;
    let payload = jwt_parts(&token).1;
    assert_eq!(payload["exp"].as_i64(), Some(epoch_secs(&expires)));
    assert!((payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap() - 3600).abs() <= 1, "{payload}");

    // Resellers: type, id, name, exp, iat, jti and nothing else.
    let (id, token, expires) = issue(&db, "acme", &["--reseller", "--dialect", "dialer"]).await;
    let (header, payload) = jwt_parts(&token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claim_names(&payload), ["exp", "iat", "id", "jti", "name", "type"]);
    assert_eq!(
        (&payload["type"], &payload["id"], &payload["name"], &payload["jti"]),
        (&"reseller".into(), &reseller_id, &"acme".into(), &Value::from(id.as_str()))
    );
    let row = &reseller_tokens_of(&db, "acme").await[&id];
    assert_eq!(payload["exp"].as_i64(), Some(epoch_secs(&expires)));
    assert_eq!(payload["iat"].as_i64(), Some(epoch_secs(&row["created"])));
    assert!((payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap() - day).abs() <= 1, "{payload}");
    let (id, token, expires) = issue(&db, "acme", &["--reseller", "--dialect", "dialer", "--static"]).await;
    assert!(expires.is_null());
    let payload = jwt_parts(&token).1;
    assert_eq!(claim_names(&payload), ["iat", "id", "jti", "name", "type"], "a static token has no exp: {payload}");
    assert_eq!(payload["jti"], id.as_str());

    // The configured session lifetime (dialer.token_ttl) is the CLI's default too.
    let mut cmd = command(&["--database-url", &db.url, "token", "issue", "plain", "--dialect", "dialer"]);
    cmd.env("TOKENAUTH_DIALER__TOKEN_TTL", "2h");
    let payload = jwt_parts(ok(&run(cmd, None).await).trim_end()).1;
    assert!((payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap() - 7200).abs() <= 1, "{payload}");
}

async fn reseller_tokens_are_dialer_only_and_listed_apart_from_users(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["user", "add", "bob", "--password", "pw"], None).await);
    ok(&admin(&db, &["reseller", "add", "bob", "--password", "pw"], None).await);
    for dialect in ["knox", "usertoken", "webitel"] {
        let out = admin(&db, &["token", "issue", "bob", "--reseller", "--dialect", dialect], None).await;
        fails(&out, "--reseller works with --dialect dialer only");
    }
    assert!(reseller_tokens_of(&db, "bob").await.is_empty(), "nothing issued by the refusals");
    assert!(tokens_of(&db, "bob").await.is_empty(), "nor for the user of that name");

    let (r, reseller_token, _) = issue(&db, "bob", &["--reseller", "--dialect", "dialer", "--static"]).await;
    let (u, user_token, _) = issue(&db, "bob", &["--dialect", "dialer"]).await;
    let reseller_id = reseller_list(&db).await[0]["id"].clone();
    let user_id = user_list(&db).await["bob"]["id"].clone();
    assert_ne!(reseller_id, user_id);
    let (rp, up) = (jwt_parts(&reseller_token).1, jwt_parts(&user_token).1);
    assert_eq!((&rp["type"], &rp["id"]), (&"reseller".into(), &reseller_id), "{rp}");
    assert_eq!((&up["type"], &up["id"]), (&"user".into(), &user_id), "{up}");

    let listed = reseller_tokens_of(&db, "bob").await;
    assert_eq!(listed.keys().collect::<Vec<_>>(), [&r], "only the reseller's token");
    let row = &listed[&r];
    assert_eq!(
        (row["dialect"].as_str(), row["kind"].as_str(), row["state"].as_str(), &row["expires"]),
        (Some("dialer"), Some("static"), Some("active"), &Value::Null),
        "{row}"
    );
    assert_eq!(tokens_of(&db, "bob").await.keys().collect::<Vec<_>>(), [&u], "only the user's token");

    let table = ok(&admin(&db, &["token", "list", "bob", "--reseller"], None).await);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "DIALECT", "KIND", "STATE", "CREATED", "EXPIRES", "LAST", "USED", "NOTE"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains(r.as_str()) && !table.contains(u.as_str()), "{table}");
    assert!(!table.contains(&reseller_token) && !table.contains(&user_token), "never the token: {table}");

    ok(&admin(&db, &["token", "revoke", &r], None).await);
    assert_eq!(reseller_tokens_of(&db, "bob").await[&r]["state"], "revoked");
    assert_eq!(tokens_of(&db, "bob").await[&u]["state"], "active");

    // A name only a user has is no reseller's.
    ok(&admin(&db, &["user", "add", "carol", "--password", "pw"], None).await);
    for name in ["carol", "nobody"] {
        fails(&admin(&db, &["token", "list", name, "--reseller"], None).await, "no such reseller");
        let out = admin(&db, &["token", "issue", name, "--reseller", "--dialect", "dialer"], None).await;
        fails(&out, "no such reseller");
    }
}

async fn users_move_between_groups(backend: Backend) {
    let db = TestDb::new(&backend).await;
    ok(&admin(&db, &["group", "add", "a"], None).await);
    ok(&admin(&db, &["group", "add", "b"], None).await);
    ok(&admin(&db, &["user", "add", "u", "--password", "pw", "--group", "a"], None).await);
    ok(&admin(&db, &["reseller", "add", "r", "--password", "pw"], None).await);
    assert_eq!(user_list(&db).await["u"]["group"], "a");
    let out = ok(&admin(&db, &["user", "set-group", "u", "b"], None).await);
    assert_eq!(out.trim_end(), "user u is now in group b");
    assert_eq!(user_list(&db).await["u"]["group"], "b");
    // The refusal to remove a group with members names the way out, and it works.
    let line = fails(&admin(&db, &["group", "remove", "b"], None).await, "user set-group");
    assert!(line.contains("1 member"), "{line}");
    assert_eq!(
        ok(&admin(&db, &["user", "set-group", "u", "--none"], None).await).trim_end(),
        "user u is in no group now"
    );
    assert_eq!(user_list(&db).await["u"]["group"], Value::Null);
    ok(&admin(&db, &["group", "remove", "b"], None).await);
    fails(&admin(&db, &["user", "set-group", "u", "b"], None).await, "no such user group");
    fails(&admin(&db, &["user", "set-group", "ghost", "a"], None).await, "no such user");
    fails(&admin(&db, &["user", "set-group", "r", "a"], None).await, "no such user");
    usage_error(&admin(&db, &["user", "set-group", "u"], None).await);
    usage_error(&admin(&db, &["user", "set-group", "u", "a", "--none"], None).await);
    assert_eq!(user_list(&db).await["u"]["group"], Value::Null, "refusals changed nothing");
}

/// `TOKENAUTH_<KEY>_FILE` (the Docker and Kubernetes secrets convention): the secret is read
/// from the file, beats the config file like any environment variable, and reaches the
/// database; both forms at once, or an unreadable file, are one-line errors naming the
/// variable, never quoting the secret.
async fn secrets_are_read_from_files(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("database_url");
    std::fs::write(&url_file, format!("{}\n", db.url)).unwrap();
    let jwt_file = dir.path().join("jwt_secret");
    std::fs::write(&jwt_file, "jwt-secret-from-a-file-0123456789abcdef\n").unwrap();
    let config_file = dir.path().join("tokenauth.toml");
    std::fs::write(&config_file, "database_url = \"sqlite://from-file.db\"\n").unwrap();

    let mut cmd = command(&["--config", config_file.to_str().unwrap(), "config"]);
    cmd.env("TOKENAUTH_DATABASE_URL_FILE", &url_file).env("TOKENAUTH_JWT_SECRET_FILE", &jwt_file);
    let printed: toml::Table = ok(&run(cmd, None).await).parse().unwrap();
    assert_eq!(
        printed["database_url"].as_str(),
        Some(tokenauth::config::DatabaseUrl::new(&db.url).redacted().as_str()),
        "the file beats the config file"
    );
    assert_eq!(printed["jwt_secret"].as_str(), Some("[REDACTED]"), "the JWT secret was read");

    let mut cmd = command(&["user", "add", "filed", "--password-stdin"]);
    cmd.env("TOKENAUTH_DATABASE_URL_FILE", &url_file);
    ok(&run(cmd, Some("Filed-Pa55word\n")).await);
    assert!(user_list(&db).await.contains_key("filed"), "the user is in the file's database");

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_DATABASE_URL_FILE", &url_file).env("TOKENAUTH_DATABASE_URL", &db.url);
    let line = fails(&run(cmd, None).await, "both TOKENAUTH_DATABASE_URL and TOKENAUTH_DATABASE_URL_FILE");
    assert!(!line.contains("jwt-secret-from"), "{line}");

    let mut cmd = command(&["config"]);
    cmd.env("TOKENAUTH_JWT_SECRET_FILE", dir.path().join("absent"));
    fails(&run(cmd, None).await, "TOKENAUTH_JWT_SECRET_FILE: cannot read the secret file");
    // PostgreSQL: the password out of the URL, from PGPASSWORD or a PGPASSFILE (libpq's format),
    // which the driver reads.
    if let Backend::Postgres(_) = backend {
        let mut bare = url::Url::parse(&db.url).unwrap();
        let password = bare.password().unwrap().to_owned();
        bare.set_password(None).unwrap();
        let mut cmd = command(&["user", "list", "--database-url", bare.as_str()]);
        cmd.env("PGPASSWORD", &password).env_remove("PGPASSFILE");
        assert!(ok(&run(cmd, None).await).contains("filed"), "PGPASSWORD");
        let pgpass = dir.path().join("pgpass");
        let line = format!(
            "{}:{}:{}:{}:{password}\n",
            bare.host_str().unwrap(),
            bare.port().unwrap_or(5432),
            bare.path().trim_start_matches('/'),
            bare.username()
        );
        std::fs::write(&pgpass, line).unwrap();
        std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let mut cmd = command(&["user", "list", "--database-url", bare.as_str()]);
        cmd.env_remove("PGPASSWORD").env("PGPASSFILE", &pgpass);
        assert!(ok(&run(cmd, None).await).contains("filed"), "PGPASSFILE");
        let mut cmd = command(&["user", "list", "--database-url", bare.as_str()]);
        cmd.env_remove("PGPASSWORD").env("PGPASSFILE", dir.path().join("absent"));
        assert!(!run(cmd, None).await.status.success(), "without a password the login fails");
        postgres_over_tls(&db, dir.path()).await;
    }
}

/// PostgreSQL over TLS, the README's way: `sslmode=verify-full` and `sslrootcert` in the URL,
/// trusting the CA whose certificate for `localhost` scripts/ensure-postgres.sh has the
/// cluster serve. Another CA is refused, and so is a host name the certificate does not carry
/// (127.0.0.1), so both checks are real.
async fn postgres_over_tls(db: &TestDb, dir: &std::path::Path) {
    const CLUSTER_CA: &str = "/var/lib/postgresql/tokenauth-tls/ca.crt";
    if !std::path::Path::new(CLUSTER_CA).is_file() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but no {CLUSTER_CA}");
        eprintln!("*** SKIPPING PostgreSQL over TLS: no {CLUSTER_CA} (run scripts/ensure-postgres.sh) ***");
        return;
    }
    let with = |host: &str, root: &std::path::Path| {
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_host(Some(host)).unwrap();
        url.query_pairs_mut()
            .append_pair("sslmode", "verify-full")
            .append_pair("sslrootcert", &root.display().to_string());
        url.to_string()
    };
    let list = |url: String| async move { run(command(&["user", "list", "--database-url", &url]), None).await };
    let out = list(with("localhost", std::path::Path::new(CLUSTER_CA))).await;
    assert!(ok(&out).contains("filed"), "over TLS, the server's certificate and name checked");

    let stranger = dir.join("stranger.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(dir.join("stranger.key"))
        .arg("-out")
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let refused = list(with("localhost", &stranger)).await;
    assert!(stderr(&refused).contains("certificate"), "another CA's: {}", stderr(&refused));
    let refused = list(with("127.0.0.1", std::path::Path::new(CLUSTER_CA))).await;
    assert!(stderr(&refused).contains("not valid for name"), "a name not in it: {}", stderr(&refused));
}

/// `database.migrate_on_start = false`: a command or `serve` on a schema that is behind
/// refuses to start, naming what is pending and `tokenauth migrate`; after `migrate` both
/// start. On PostgreSQL the server then runs as a role that may only read and write rows
/// (no right to change the schema), which is what the setting is for.
async fn migrate_on_start_off_refuses_a_schema_behind(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let off = |args: &[&str]| {
        let mut all = vec!["--database-url", db.url.as_str()];
        all.extend_from_slice(args);
        let mut cmd = command(&all);
        cmd.env("TOKENAUTH_DATABASE__MIGRATE_ON_START", "false");
        cmd
    };
    let line = fails(&run(off(&["user", "list"]), None).await, "tokenauth migrate");
    assert!(line.contains("migrations pending: 0001_"), "{line}");
    assert!(line.contains("migrate_on_start is false"), "{line}");
    let mut serve = off(&["serve", "--bind", "127.0.0.1:0"]);
    serve.env("RUST_LOG", "info");
    let out = run(serve, None).await;
    assert!(!out.status.success(), "serve must refuse to start");
    assert!(stderr(&out).contains("run `tokenauth migrate` first"), "{}", stderr(&out));

    let migrated = ok(&run(off(&["migrate"]), None).await);
    assert!(migrated.contains("migrations applied"), "{migrated}");
    ok(&run(off(&["user", "add", "rw", "--password-stdin"]), Some("Rw-Pa55word\n")).await);

    let url = match &backend {
        Backend::Sqlite => db.url.clone(),
        _ => row_writer(&db).await,
    };
    let mut cmd = command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &url]);
    cmd.env("TOKENAUTH_DATABASE__MIGRATE_ON_START", "false");
    let server = crate::process::Server::spawn(cmd).await;
    let http = reqwest::Client::new();
    let login = http
        .post(server.url("/auth/login/"))
        .json(&serde_json::json!({"username": "rw", "password": "Rw-Pa55word"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK, "a login writes a token as the row-only role");
    if let Backend::Postgres(_) = backend {
        // The role really cannot change the schema: migrating as it fails.
        let mut cmd = command(&["migrate", "--database-url", &url]);
        cmd.env("TOKENAUTH_DATABASE__MIGRATE_ON_START", "false");
        let out = run(cmd, None).await;
        assert!(!out.status.success(), "the row-only role migrated: {}", stderr(&out));
    }
}

/// A PostgreSQL role for `db` that may only read and write the rows of its tables (and use
/// their sequences), and its URL. Dropped with the cluster's other test leftovers by name.
async fn row_writer(db: &TestDb) -> String {
    use sqlx::Connection as _;
    let name = format!("tokenauth_rw_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut conn).await.unwrap();
    for statement in [
        format!("CREATE ROLE {name} LOGIN PASSWORD '{name}'"),
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO {name}"),
        format!("GRANT USAGE ON SCHEMA public TO {name}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"),
        format!("REVOKE CREATE ON SCHEMA public FROM {name}, PUBLIC"),
    ] {
        sqlx::query(&statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&name).unwrap();
    url.set_password(Some(&name)).unwrap();
    url.to_string()
}

/// `completions` and `man` need no configuration and print what a packager installs: a bash
/// script that bash accepts and that completes the subcommands, zsh and fish scripts, and a
/// manual page naming the build.
#[tokio::test]
async fn completions_and_man_page() {
    let bash = ok(&tokenauth(&["completions", "bash"], None).await);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tokenauth.bash");
    std::fs::write(&script, &bash).unwrap();
    // Sourced by a real bash, the function completes `tokenauth se` to `serve`.
    let probe = format!(
        "source {}; COMP_WORDS=(tokenauth se); COMP_CWORD=1; _tokenauth tokenauth se tokenauth; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offered = String::from_utf8(out.stdout).unwrap();
    assert!(offered.lines().any(|l| l == "serve"), "bash offered {offered:?}");

    let zsh = ok(&tokenauth(&["completions", "zsh"], None).await);
    assert!(zsh.starts_with("#compdef tokenauth") && zsh.contains("migrate"), "{zsh}");
    let fish = ok(&tokenauth(&["completions", "fish"], None).await);
    assert!(fish.contains("complete -c tokenauth") && fish.contains("import"), "{fish}");
    let unknown = tokenauth(&["completions", "tcsh"], None).await;
    usage_error(&unknown);
    assert!(stderr(&unknown).contains("tcsh"), "{}", stderr(&unknown));

    let man = ok(&tokenauth(&["man"], None).await);
    assert!(man.contains(".TH tokenauth 1"), "{man}");
    assert!(man.contains(tokenauth::model::build::COMMIT), "the page names the build");
    for subcommand in ["serve", "migrate", "import", "healthcheck"] {
        assert!(man.contains(subcommand), "no {subcommand} in the man page");
    }
    // Without a database or a configuration: a configuration that cannot load is not read.
    let mut cmd = command(&["man"]);
    cmd.env("TOKENAUTH_BIND", "not an address");
    ok(&run(cmd, None).await);
}
