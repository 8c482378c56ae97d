//! Role administration on the token service (webitel roles: a name, an integer code, an ACL).
//! Used by the CLI (and later the web page); dialects only read the role a principal carries.
//!
//! Policy: a principal has at most one role; a role given to anyone cannot be removed (checked
//! here for a clear message, and by the database's foreign key against races).

use super::TokenService;
use super::cache::Invalidation;
use crate::error::Error;
use crate::model::{Acl, RoleSummary};
use crate::model::{PrincipalKind, Username};
use crate::store::{NewRole, StoreError};

/// why these bounds: an ACL is a short map of resource paths to a few permission letters;
/// anything longer is a mistake, and names end up in JWTs and headers.
const MAX_RESOURCE_CHARS: usize = 256;
const MAX_PERMISSION_CHARS: usize = 32;
/// why 4 KiB: the ACL travels inside every webitel JWT, which the format check caps at
/// `MAX_JWT_LEN` (8 KiB) once base64 has grown it by a third; 4 KiB of JSON leaves room for
/// the other claims. The seed's root ACL is about 600 bytes.
const MAX_ACL_BYTES: usize = 4 * 1024;
const _: () = assert!(MAX_ACL_BYTES * 4 / 3 + 1024 < crate::token::secret::MAX_JWT_LEN);

/// Parse an ACL given as JSON: an object mapping each resource to a list of permissions
/// (`{"cdr": ["*"], "account": ["r", "w"]}`). The error says what is wrong and where.
pub fn parse_acl(json: &str) -> Result<Acl, Error> {
    let acl: Acl = serde_json::from_str(json).map_err(|e| {
        Error::InvalidAcl(format!(
            "expected a JSON object of resource to list of permissions, like {{\"cdr\": [\"*\"]}}: {e}"
        ))
    })?;
    let size = serde_json::to_string(&acl).map_or(usize::MAX, |j| j.len());
    if size > MAX_ACL_BYTES {
        return Err(Error::InvalidAcl(format!(
            "the ACL is {size} bytes of JSON; at most {MAX_ACL_BYTES} fit in a token"
        )));
    }
    for (resource, permissions) in &acl {
        if resource.is_empty()
            || resource.chars().count() > MAX_RESOURCE_CHARS
            || resource.chars().any(char::is_control)
        {
            return Err(Error::InvalidAcl(format!(
                "resource {resource:?} must be 1 to {MAX_RESOURCE_CHARS} characters without control characters"
            )));
        }
        for p in permissions {
            if p.is_empty()
                || p.chars().count() > MAX_PERMISSION_CHARS
                || p.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(Error::InvalidAcl(format!(
                    "permission {p:?} of {resource:?} must be 1 to {MAX_PERMISSION_CHARS} characters without spaces"
                )));
            }
        }
    }
    Ok(acl)
}

impl TokenService {
    /// Create a role.
    pub async fn create_role(&self, name: &str, code: i64, acl: &Acl) -> Result<RoleSummary, Error> {
        let name = Username::parse(name).map_err(Error::InvalidName)?;
        let new = NewRole { name: name.as_str(), code, acl, created_at: self.clock.now() };
        match self.store.insert_role(&new).await {
            Err(StoreError::Conflict(_)) => Err(Error::RoleExists(name.as_str().to_owned())),
            other => Ok(other?),
        }
    }

    /// Find a role by exact name.
    pub async fn role(&self, name: &str) -> Result<RoleSummary, Error> {
        self.store.role_by_name(name).await?.ok_or_else(|| Error::NoSuchRole(name.to_owned()))
    }

    /// All roles, by name, with how many principals have each.
    pub async fn list_roles(&self) -> Result<Vec<RoleSummary>, Error> {
        Ok(self.store.list_roles().await?)
    }

    /// Remove a role nobody has.
    pub async fn remove_role(&self, name: &str) -> Result<(), Error> {
        let role = self.role(name).await?;
        if role.members > 0 {
            return Err(Error::RoleInUse { name: name.to_owned(), members: role.members });
        }
        match self.store.delete_role(role.id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::NoSuchRole(name.to_owned())),
            // why: a principal was given the role between the check and the delete.
            Err(StoreError::Conflict(_)) => Err(Error::RoleInUse { name: name.to_owned(), members: 1 }),
            Err(e) => Err(e.into()),
        }
    }

    /// Give a principal a role, or take its role away with `None`. Takes effect for its
    /// existing tokens at their next check (the role is read with the token).
    pub async fn set_principal_role(&self, kind: PrincipalKind, name: &str, role: Option<&str>) -> Result<(), Error> {
        let principal = self.principal(kind, name).await?;
        let role_id = match role {
            Some(role) => Some(self.role(role).await?.id),
            None => None,
        };
        let changed = self.store.set_principal_role(principal.id, role_id).await;
        // why: the role travels with a cached lookup (X-Auth-Role, ACL rules).
        self.announce(Invalidation::Principal(principal.id)).await;
        match changed {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::NoSuchPrincipal { kind: kind.as_str(), name: name.to_owned() }),
            Err(StoreError::Conflict(_)) => Err(Error::NoSuchRole(role.unwrap_or_default().to_owned())),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_are_checked() {
        let acl = parse_acl(r#"{"cdr": ["*"], "account": ["r", "w"], "cdr/files": []}"#).unwrap();
        assert_eq!(acl["account"], vec!["r", "w"]);
        assert!(parse_acl("{}").unwrap().is_empty());
        // Big enough to matter, small enough to fit in a token: 150 resources do not.
        let entry = |i: usize| format!(r#""resource/{i:03}": ["r", "w", "u", "d"]"#);
        let big = |n: usize| format!("{{{}}}", (0..n).map(entry).collect::<Vec<_>>().join(","));
        assert!(parse_acl(&big(80)).is_ok());
        assert!(matches!(parse_acl(&big(150)), Err(Error::InvalidAcl(m)) if m.contains("fit in a token")));
        for bad in [
            "",
            "[]",
            "not json",
            r#"{"cdr": "*"}"#,
            r#"{"cdr": [1]}"#,
            r#"{"": ["*"]}"#,
            r#"{"cdr": [""]}"#,
            r#"{"cdr": ["r w"]}"#,
            r#"{"c\u0000dr": ["*"]}"#,
        ] {
            let err = parse_acl(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidAcl(_)), "{bad:?}: {err:?}");
        }
    }
}
