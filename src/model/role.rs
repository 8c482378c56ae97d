//! Roles (webitel's codes and ACLs) and user groups (the dialer's), as principals carry them
//! and as the administrators' listings show them.

use std::collections::BTreeMap;

use time::OffsetDateTime;

/// A resource name mapped to its permissions (`"*"`, `"r"`, `"w"`, ...), as Webitel's ACLs.
pub type Acl = BTreeMap<String, Vec<String>>;

/// A role as a principal carries it: what the dialects render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Unique name (`root`, `admin`, ...).
    pub name: String,
    /// Integer code (Webitel: root=2, admin=1, user=0).
    pub code: i64,
    /// Its ACL.
    pub acl: Acl,
}

/// A role in the administrators' listing: the role, its row id, when it was made and how
/// many principals have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSummary {
    /// Row id.
    pub id: i64,
    /// The role.
    pub role: Role,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// How many principals have it.
    pub members: i64,
}

/// The user group a principal is in, as a principal carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// Row id (the dialer JWT's `user_group_id`).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// A regular expression the client IP must match at login, checked valid when stored.
    pub allowed_regex: Option<String>,
}

/// A user group in the administrators' listing (and the reseller login's `user_groups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group: GroupRef,
    /// The owning reseller's id and name, if any.
    pub reseller: Option<(i64, String)>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// How many principals are in it.
    pub members: i64,
}
