//! The rows as both engines return them, and their conversion into the model. Written once:
//! the column types in `codec` read the same on SQLite and Postgres.
//!
//! Each row's column list sits beside its struct (`*_COLUMNS`, `*_SELECT`), so adding a column
//! is this struct, its list, the insert that writes it, and a migration per engine.

use ipnet::IpNet;

use super::codec::{Count, Dec, Id, Time};
use super::{StoreError, StoreResult};
use crate::model::{
    Acl, Attributes, AuditEntry, GroupRef, GroupSummary, LegacyToken, Owner, PasswordScheme, Principal, PrincipalKind,
    Role, RoleSummary, SigningKey, ThrottleCounter, ThrottleScope, Token, TokenKind, TokenLookup,
};

fn unreadable(what: &str, value: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("unreadable {what} {value:?}: {e}"))
}

fn kind(s: &str) -> StoreResult<PrincipalKind> {
    PrincipalKind::parse(s).ok_or_else(|| StoreError::Other(format!("unknown principal kind {s:?}")))
}

/// An ACL as stored: JSON text, kept byte for byte as given.
pub(super) fn acl_json(acl: &Acl) -> StoreResult<String> {
    serde_json::to_string(acl).map_err(|e| StoreError::Other(format!("cannot encode an ACL: {e}")))
}

/// Allowed IPs as stored: a JSON array of CIDRs.
pub(super) fn allowed_ips_json(ips: &[IpNet]) -> StoreResult<String> {
    serde_json::to_string(ips).map_err(|e| StoreError::Other(format!("cannot encode allowed IPs: {e}")))
}

/// The role columns of a `LEFT JOIN roles r`.
#[derive(sqlx::FromRow)]
pub(super) struct RoleColumns {
    role_name: Option<String>,
    role_code: Option<i64>,
    role_acl: Option<String>,
}

/// `RoleColumns`' select list.
macro_rules! role_columns {
    () => {
        "r.name AS role_name, r.code AS role_code, r.acl AS role_acl"
    };
}
pub(super) use role_columns;

impl RoleColumns {
    fn into_role(self) -> StoreResult<Option<Role>> {
        match (self.role_name, self.role_code, self.role_acl) {
            (Some(name), Some(code), Some(acl)) => {
                let acl = serde_json::from_str(&acl).map_err(|e| unreadable("ACL of role", &name, e))?;
                Ok(Some(Role { name, code, acl }))
            }
            _ => Ok(None),
        }
    }
}

/// A principal with its role and group (`principal_select!`).
#[derive(sqlx::FromRow)]
pub(super) struct PrincipalRow {
    id: i64,
    kind: String,
    name: String,
    password_hash: String,
    password_scheme: Option<String>,
    enabled: bool,
    created_at: Time,
    last_login_at: Option<Time>,
    #[sqlx(flatten)]
    role: RoleColumns,
    admin: bool,
    sms_from: Option<String>,
    allowed_ips: String,
    balance: Option<Dec>,
    group_id: Option<i64>,
    group_name: Option<String>,
    group_regex: Option<String>,
}

/// `PrincipalRow`'s query, to be followed by a `WHERE`.
macro_rules! principal_select {
    () => {
        concat!(
            "SELECT p.id, p.kind, p.name, p.password_hash, p.password_scheme, p.enabled, p.created_at, p.last_login_at, ",
            $crate::store::rows::role_columns!(),
            ", p.admin, p.sms_from, p.allowed_ips, p.balance, ",
            "g.id AS group_id, g.name AS group_name, g.allowed_regex AS group_regex ",
            "FROM principals p LEFT JOIN roles r ON r.id = p.role_id LEFT JOIN user_groups g ON g.id = p.group_id "
        )
    };
}
pub(super) use principal_select;

impl TryFrom<PrincipalRow> for Principal {
    type Error = StoreError;
    fn try_from(r: PrincipalRow) -> StoreResult<Self> {
        let allowed_ips =
            serde_json::from_str(&r.allowed_ips).map_err(|e| unreadable("allowed_ips", &r.allowed_ips, e))?;
        let group = match (r.group_id, r.group_name) {
            (Some(id), Some(name)) => Some(GroupRef { id, name, allowed_regex: r.group_regex }),
            _ => None,
        };
        Ok(Principal {
            id: r.id,
            kind: kind(&r.kind)?,
            name: r.name,
            password_hash: r.password_hash,
            password_scheme: PasswordScheme::from_stored(r.password_scheme.as_deref())
                .map_err(|e| unreadable("password scheme", r.password_scheme.as_deref().unwrap_or_default(), e))?,
            enabled: r.enabled,
            created_at: r.created_at.0,
            last_login_at: r.last_login_at.map(|t| t.0),
            role: r.role.into_role()?,
            group,
            attributes: Attributes {
                admin: r.admin,
                sms_from: r.sms_from,
                allowed_ips,
                balance: r.balance.map(|b| b.0),
            },
        })
    }
}

/// A token row (`token_columns!`). The digest is never read back.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: Id,
    principal_id: i64,
    dialect: String,
    kind: String,
    note: Option<String>,
    created_at: Time,
    expires_at: Option<Time>,
    last_used_at: Option<Time>,
    enabled: bool,
    version: i64,
    revoked_at: Option<Time>,
}

/// `TokenRow`'s select list, over `tokens t`.
macro_rules! token_columns {
    () => {
        "t.id, t.principal_id, t.dialect, t.kind, t.note, t.created_at, t.expires_at, t.last_used_at, t.enabled, \
         t.version, t.revoked_at"
    };
}
pub(super) use token_columns;

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> StoreResult<Self> {
        Ok(Token {
            id: r.id.0,
            principal_id: r.principal_id,
            issuer: r.dialect.parse().map_err(|e| unreadable("token issuer", &r.dialect, e))?,
            kind: TokenKind::parse(&r.kind).ok_or_else(|| unreadable("token kind", &r.kind, "unknown"))?,
            note: r.note,
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
            enabled: r.enabled,
            version: r.version,
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

/// A token with its owner, in one query (`lookup_select!`).
#[derive(sqlx::FromRow)]
pub(super) struct LookupRow {
    #[sqlx(flatten)]
    token: TokenRow,
    owner_kind: String,
    owner_name: String,
    owner_enabled: bool,
    #[sqlx(flatten)]
    role: RoleColumns,
}

/// `LookupRow`'s query, to be followed by a `WHERE`.
macro_rules! lookup_select {
    () => {
        concat!(
            "SELECT ",
            $crate::store::rows::token_columns!(),
            ", p.kind AS owner_kind, p.name AS owner_name, p.enabled AS owner_enabled, ",
            $crate::store::rows::role_columns!(),
            " FROM tokens t JOIN principals p ON p.id = t.principal_id LEFT JOIN roles r ON r.id = p.role_id "
        )
    };
}
pub(super) use lookup_select;

impl TryFrom<LookupRow> for TokenLookup {
    type Error = StoreError;
    fn try_from(r: LookupRow) -> StoreResult<Self> {
        let token = Token::try_from(r.token)?;
        Ok(TokenLookup {
            owner: Owner {
                id: token.principal_id,
                kind: kind(&r.owner_kind)?,
                name: r.owner_name,
                enabled: r.owner_enabled,
                role: r.role.into_role()?,
            },
            token,
        })
    }
}

/// A role with its member count (`role_select!`).
#[derive(sqlx::FromRow)]
pub(super) struct RoleRow {
    id: i64,
    name: String,
    code: i64,
    acl: String,
    created_at: Time,
    members: i64,
}

/// `RoleRow`'s query, to be followed by a `WHERE` or nothing.
macro_rules! role_select {
    () => {
        concat!(
            "SELECT r.id, r.name, r.code, r.acl, r.created_at, ",
            "(SELECT count(*) FROM principals p WHERE p.role_id = r.id) AS members FROM roles r "
        )
    };
}
pub(super) use role_select;

impl TryFrom<RoleRow> for RoleSummary {
    type Error = StoreError;
    fn try_from(r: RoleRow) -> StoreResult<Self> {
        let acl: Acl = serde_json::from_str(&r.acl).map_err(|e| unreadable("ACL of role", &r.name, e))?;
        Ok(RoleSummary {
            id: r.id,
            role: Role { name: r.name, code: r.code, acl },
            created_at: r.created_at.0,
            members: r.members,
        })
    }
}

/// A user group with its owner and member count (`group_select!`).
#[derive(sqlx::FromRow)]
pub(super) struct GroupRow {
    id: i64,
    name: String,
    allowed_regex: Option<String>,
    reseller_id: Option<i64>,
    reseller_name: Option<String>,
    created_at: Time,
    members: i64,
}

/// `GroupRow`'s query, to be followed by a `WHERE`.
macro_rules! group_select {
    () => {
        concat!(
            "SELECT g.id, g.name, g.allowed_regex, g.reseller_id, rp.name AS reseller_name, g.created_at, ",
            "(SELECT count(*) FROM principals p WHERE p.group_id = g.id) AS members ",
            "FROM user_groups g LEFT JOIN principals rp ON rp.id = g.reseller_id "
        )
    };
}
pub(super) use group_select;

impl From<GroupRow> for GroupSummary {
    fn from(r: GroupRow) -> Self {
        GroupSummary {
            group: GroupRef { id: r.id, name: r.name, allowed_regex: r.allowed_regex },
            reseller: r.reseller_id.zip(r.reseller_name),
            created_at: r.created_at.0,
            members: r.members,
        }
    }
}

/// An audit log entry.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    at: Time,
    actor_kind: String,
    actor_name: String,
    action: String,
    target: String,
    client_ip: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<Self> {
        Ok(AuditEntry {
            at: r.at.0,
            actor_kind: kind(&r.actor_kind)?,
            actor_name: r.actor_name,
            action: r.action,
            target: r.target,
            client_ip: r.client_ip,
        })
    }
}

/// A login throttle counter (`throttle_columns!`).
#[derive(sqlx::FromRow)]
pub(super) struct ThrottleRow {
    scope: String,
    subject: String,
    window_start: Time,
    failures: Count,
    prev_failures: Count,
    strikes: Count,
    locked_until: Option<Time>,
    expires_at: Time,
    in_flight: Count,
    prev_in_flight: Count,
    in_flight_bucket: Time,
}

/// `ThrottleRow`'s columns.
macro_rules! throttle_columns {
    () => {
        "scope, subject, window_start, failures, prev_failures, strikes, locked_until, expires_at, in_flight, \
         prev_in_flight, in_flight_bucket"
    };
}
pub(super) use throttle_columns;

impl TryFrom<ThrottleRow> for ThrottleCounter {
    type Error = StoreError;
    fn try_from(r: ThrottleRow) -> StoreResult<Self> {
        Ok(ThrottleCounter {
            scope: ThrottleScope::parse(&r.scope).ok_or_else(|| unreadable("throttle scope", &r.scope, "unknown"))?,
            subject: r.subject,
            window_start: r.window_start.0,
            failures: r.failures.0,
            prev_failures: r.prev_failures.0,
            strikes: r.strikes.0,
            locked_until: r.locked_until.map(|t| t.0),
            expires_at: r.expires_at.0,
            in_flight: r.in_flight.0,
            prev_in_flight: r.prev_in_flight.0,
            in_flight_bucket: r.in_flight_bucket.0,
        })
    }
}

/// A JWT signing key.
#[derive(sqlx::FromRow)]
pub(super) struct SigningKeyRow {
    kid: String,
    secret: Vec<u8>,
    created_at: Time,
}

impl From<SigningKeyRow> for SigningKey {
    fn from(r: SigningKeyRow) -> Self {
        SigningKey { kid: r.kid, secret: r.secret, created_at: r.created_at.0 }
    }
}

/// A token row with a legacy digest, as the check path needs it.
#[derive(sqlx::FromRow)]
pub(super) struct LegacyTokenRow {
    id: Id,
    digest_scheme: String,
    legacy_digest: Option<String>,
    legacy_salt: Option<String>,
}

impl TryFrom<LegacyTokenRow> for LegacyToken {
    type Error = StoreError;
    fn try_from(r: LegacyTokenRow) -> StoreResult<Self> {
        Ok(LegacyToken {
            id: r.id.0,
            scheme: r.digest_scheme.parse().map_err(|e| unreadable("digest scheme", &r.digest_scheme, e))?,
            digest: r.legacy_digest.ok_or_else(|| StoreError::Other("a legacy token row without its digest".into()))?,
            salt: r.legacy_salt,
        })
    }
}
