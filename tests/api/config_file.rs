//! `config/tokenauth.toml` documents every configuration key at its default: it must load to
//! exactly `Config::default()`, and a key added to `Config` without documentation fails here.
//!
//! These tests read the process environment through `config::load`; nothing in this suite sets
//! `TOKENAUTH_*` variables in-process (child processes get theirs on their `Command`), and
//! `TOKENAUTH_TEST_DATABASE_URL` is ignored by the loader by design.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokenauth::config::{self, Config, Overrides};

fn documented_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/tokenauth.toml")
}

fn documented_text() -> String {
    std::fs::read_to_string(documented_file()).unwrap()
}

/// The documented file with its commented-out examples (`# key = value` lines) enabled.
fn with_examples_enabled(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_assignment(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_assignment(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(key, _)| !key.is_empty() && key.bytes().all(|b| b == b'_' || b.is_ascii_lowercase()))
}

/// Every field serde accepts in the table `table` of `Config` ("" for the top level), read
/// from serde's own "unknown field ..., expected one of ..." message, so fields that are
/// skipped when serialized (the absent `Option`s) are included.
fn accepted_fields(table: &str) -> BTreeSet<String> {
    let probe = if table.is_empty() { "zz_probe = 1".to_owned() } else { format!("[{table}]\nzz_probe = 1") };
    let err = toml::from_str::<Config>(&probe).unwrap_err().to_string();
    let expected = err.split_once("expected").unwrap_or_else(|| panic!("unexpected serde message: {err}")).1;
    let fields: BTreeSet<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    assert!(!fields.is_empty(), "no fields found in: {err}");
    fields
}

#[test]
fn documented_file_loads_to_the_defaults() {
    let loaded = config::load(Some(&documented_file()), &Overrides::default()).unwrap();
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn documented_file_sets_every_serialized_key() {
    let defaults: toml::Table = toml::from_str(&Config::default().to_redacted_toml().unwrap()).unwrap();
    let documented: toml::Table = toml::from_str(&documented_text()).unwrap();
    assert!(defaults.len() >= 11, "the defaults look too small to be real: {defaults:?}");
    for (key, value) in &defaults {
        let doc = documented.get(key).unwrap_or_else(|| panic!("`{key}` is missing from config/tokenauth.toml"));
        if let toml::Value::Table(table) = value {
            let doc = doc.as_table().unwrap_or_else(|| panic!("`{key}` should be a table"));
            for sub in table.keys() {
                assert!(doc.contains_key(sub), "`{key}.{sub}` is missing from config/tokenauth.toml");
            }
        }
    }
}

#[test]
fn every_accepted_key_is_documented_and_examples_are_valid() {
    let text = documented_text();
    let enabled = with_examples_enabled(&text);
    assert_ne!(enabled, text, "the file should show absent keys as commented-out examples");
    // The examples must be real keys with valid values: deny_unknown_fields and validate() check.
    let examples: Config = toml::from_str(&enabled).unwrap_or_else(|e| panic!("an example is not a valid key: {e}"));
    examples.validate().unwrap();
    assert!(examples.usertoken.token_ttl.is_some());
    assert!(examples.knox.token_ttl.is_some());
    assert!(examples.knox.max_lifetime.is_some());
    assert!(examples.knox.max_tokens_per_user.is_some());

    let documented: toml::Table = toml::from_str(&enabled).unwrap();
    let top = accepted_fields("");
    assert_eq!(top, documented.keys().cloned().collect(), "top-level keys");
    for (table, value) in &documented {
        if let toml::Value::Table(doc) = value {
            assert_eq!(accepted_fields(table), doc.keys().cloned().collect(), "keys of [{table}]");
        }
    }
}

#[test]
fn every_documented_key_has_a_comment() {
    let is_example = |line: &str| line.strip_prefix("# ").is_some_and(is_assignment);
    let mut previous = "";
    let mut keys = 0;
    for line in documented_text().lines() {
        if !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ") {
            keys += 1;
            assert!(previous.starts_with('#') && !is_example(previous), "no comment right above `{line}`");
        }
        previous = line;
    }
    let defaults: toml::Table = toml::from_str(&Config::default().to_redacted_toml().unwrap()).unwrap();
    fn leaves(v: &toml::Value) -> usize {
        v.as_table().map_or(1, |t| t.values().map(leaves).sum())
    }
    let leaves: usize = defaults.values().map(leaves).sum();
    assert_eq!(keys, leaves, "every key set in the file is checked");
}
