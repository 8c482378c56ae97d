//! `ConfigError`, and the rendering of figment's errors, which never quotes a secret's value or
//! a line of the file.

/// A configuration that could not be loaded or is inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Keys whose values are secrets: an error about one names the key and where it was set,
/// never the value (figment's "invalid type: found string \"...\"" would quote it).
const SECRET_KEYS: &[&str] = &["jwt_secret", "database_url", "peppers"];

pub(super) fn flatten(err: figment::Error) -> String {
    err.into_iter()
        .map(|mut e| {
            if e.path.iter().any(|key| SECRET_KEYS.contains(&key.as_str())) {
                e.kind = figment::error::Kind::Message(format!(
                    "invalid value (not shown: it is a secret), expected a string{}",
                    match &e.kind {
                        figment::error::Kind::InvalidType(actual, _) => format!(", found {}", kind_of(actual)),
                        _ => String::new(),
                    }
                ));
            }
            // why the path: figment names an environment variable's key in upper case
            // (`KNOX.LOGOUT_STATUS`), which is not how the file or the docs spell it.
            let path = e.path.join(".");
            let message = without_excerpt(&e.to_string());
            if path.is_empty() || message.contains(&path) { message } else { format!("{path}: {message}") }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TOML syntax error quotes the offending line of the file (`3 | jwt_secret = "...`), and
/// a file may hold a secret on any line: keep the message and its line and column, drop the
/// excerpt.
fn without_excerpt(message: &str) -> String {
    let is_excerpt =
        |line: &str| line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|');
    message
        .lines()
        .filter(|line| !is_excerpt(line))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The kind of a value figment found, without the value.
fn kind_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, load};

    #[test]
    fn errors_about_a_config_file_never_quote_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenauth.toml");
        for (file, secret, names) in [
            // a secret of digits only: a TOML integer, so figment reports "found unsigned int ..."
            ("jwt_secret = 9182736455463728199\n", "9182736455", "jwt_secret"),
            ("database_url = [\"postgres://u:hunter2secret@h/db\"]\n", "hunter2secret", "database_url"),
            // a syntax error: the toml crate quotes the line it stopped at
            ("bind = \"127.0.0.1:8080\"\njwt_secret = \"unterminated-s3cr3t-value\n", "s3cr3t", "line 2"),
        ] {
            std::fs::write(&path, file).unwrap();
            let err = load(Some(&path), &Overrides::default()).unwrap_err().to_string();
            assert!(!err.contains(secret), "{file:?} gave {err}");
            assert!(err.contains(names), "{file:?} gave {err}, which does not say where");
        }
        // why: the redaction must not hide what is wrong with the other keys.
        std::fs::write(&path, "bind = 5\n").unwrap();
        let err = load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("bind") && err.contains('5'), "{err}");
    }
}
