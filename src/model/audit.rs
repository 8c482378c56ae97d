//! The audit log's entries.

use time::OffsetDateTime;

use super::principal::PrincipalKind;

/// One administrator action, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened.
    pub at: OffsetDateTime,
    /// The administrator's kind.
    pub actor_kind: PrincipalKind,
    /// The administrator's name.
    pub actor_name: String,
    /// What was done (`user.disable`, `token.revoke`, ...).
    pub action: String,
    /// What it was done to (a user name, a token id).
    pub target: String,
    /// The client address it came from.
    pub client_ip: String,
}
