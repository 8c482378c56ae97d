//! What an import did (or would do, or refused), for people (`text`) and machines (`json`).

use serde::Serialize;
use serde_json::{Value, json};

/// Something left out or refused, and why: the line (or row) and the name, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The line of the file, or the row of the table (1-based).
    pub line: usize,
    /// The principal it concerns.
    pub name: String,
    /// Why.
    pub why: String,
}

/// Figures of one kind of thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Written new.
    pub created: u64,
    /// Changed (`--on-conflict update`).
    pub updated: u64,
    /// There already, as imported.
    pub unchanged: u64,
    /// Left out (see `Report::skipped`).
    pub skipped: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Where the records came from.
    pub source: String,
    /// `--dry-run`: the transaction was rolled back.
    pub dry_run: bool,
    /// The transaction was committed.
    pub written: bool,
    /// Principals.
    pub principals: Counts,
    /// Tokens.
    pub tokens: Counts,
    /// Roles created.
    pub roles_created: u64,
    /// Legacy JWT keys added.
    pub keys_created: u64,
    /// Left out on purpose (expired tokens, `--on-conflict skip`).
    pub skipped: Vec<Refusal>,
    /// Refused: any of these, and nothing is written.
    pub refused: Vec<Refusal>,
    /// Names that exist with another password, under `--on-conflict fail`: nothing is written.
    pub conflicts: Vec<Refusal>,
}

impl Report {
    /// An empty report for `source`.
    pub fn new(source: String, dry_run: bool) -> Self {
        Report { source, dry_run, ..Report::default() }
    }

    /// Whether the import went (or, dry, would go) through: nothing refused, no conflict.
    pub fn ok(&self) -> bool {
        self.refused.is_empty() && self.conflicts.is_empty()
    }

    /// For people: one summary line per kind, then every skip, refusal and conflict.
    pub fn text(&self) -> String {
        let outcome = if !self.ok() {
            "refused, nothing written"
        } else if self.dry_run {
            "dry run, nothing written"
        } else {
            "written"
        };
        let counts = |c: &Counts| {
            format!("{} created, {} updated, {} unchanged, {} skipped", c.created, c.updated, c.unchanged, c.skipped)
        };
        let mut out = format!("{}: {outcome}\n", self.source);
        out.push_str(&format!("principals: {}\n", counts(&self.principals)));
        out.push_str(&format!("tokens:     {}\n", counts(&self.tokens)));
        if self.roles_created > 0 || self.keys_created > 0 {
            out.push_str(&format!("roles: {} created; JWT keys: {} added\n", self.roles_created, self.keys_created));
        }
        for (label, list) in [("skipped", &self.skipped), ("refused", &self.refused), ("conflict", &self.conflicts)] {
            for r in list {
                out.push_str(&format!("{label}: line {} ({}): {}\n", r.line, r.name, r.why));
            }
        }
        if self.ok() && !self.written && !self.dry_run {
            out.push_str("nothing was written\n");
        }
        out
    }

    /// For machines.
    pub fn json(&self) -> Value {
        json!({
            "source": self.source,
            "ok": self.ok(),
            "dry_run": self.dry_run,
            "written": self.written,
            "principals": self.principals,
            "tokens": self.tokens,
            "roles_created": self.roles_created,
            "keys_created": self.keys_created,
            "skipped": self.skipped,
            "refused": self.refused,
            "conflicts": self.conflicts,
        })
    }
}
