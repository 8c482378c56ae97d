//! User-group administration on the token service (dialer: a name, an optional IP regex, an
//! optional owning reseller). Used by the CLI; the dialer dialect reads a reseller's groups.
//!
//! Policy: a group's `allowed_regex` is compiled when it is stored and refused there if it is
//! invalid, never at login time. A group with members cannot be removed (checked here for a
//! clear message, and by the database's foreign key against races).

use super::TokenService;
use super::ip_rules;
use crate::error::Error;
use crate::model::GroupSummary;
use crate::model::{PrincipalKind, Username};
use crate::store::{NewGroup, StoreError};

/// Check that `pattern` is an acceptable `allowed_regex`: it compiles within the limits.
pub fn check_allowed_regex(pattern: &str) -> Result<(), Error> {
    if pattern.is_empty() {
        // why: an empty pattern matches every address, which reads like a restriction but is none.
        return Err(Error::InvalidAttribute(
            "allowed_regex is empty: it would match every address; leave it out for no restriction".into(),
        ));
    }
    ip_rules::compile(pattern).map(|_| ()).map_err(Error::InvalidAttribute)
}

impl TokenService {
    /// Create a user group, optionally with an IP regex and an owning reseller (which must exist).
    pub async fn create_group(
        &self,
        name: &str,
        allowed_regex: Option<&str>,
        reseller: Option<&str>,
    ) -> Result<GroupSummary, Error> {
        let name = Username::parse(name).map_err(Error::InvalidName)?;
        if let Some(pattern) = allowed_regex {
            check_allowed_regex(pattern)?;
        }
        let reseller_id = match reseller {
            Some(reseller) => Some(self.principal(PrincipalKind::Reseller, reseller).await?.id),
            None => None,
        };
        let new = NewGroup { name: name.as_str(), allowed_regex, reseller_id, created_at: self.clock.now() };
        match self.store.insert_group(&new).await {
            Err(StoreError::Conflict(_)) if self.store.group_by_name(name.as_str()).await?.is_some() => {
                Err(Error::GroupExists(name.as_str().to_owned()))
            }
            // why: the reseller was removed between the lookup and the insert.
            Err(StoreError::Conflict(_)) => Err(Error::NoSuchPrincipal {
                kind: PrincipalKind::Reseller.as_str(),
                name: reseller.unwrap_or_default().to_owned(),
            }),
            other => Ok(other?),
        }
    }

    /// Find a user group by exact name.
    pub async fn group(&self, name: &str) -> Result<GroupSummary, Error> {
        self.store.group_by_name(name).await?.ok_or_else(|| Error::NoSuchGroup(name.to_owned()))
    }

    /// All user groups by name, or those of one reseller (by principal id).
    pub async fn list_groups(&self, reseller_id: Option<i64>) -> Result<Vec<GroupSummary>, Error> {
        Ok(self.store.list_groups(reseller_id).await?)
    }

    /// Put a user in a group, or take it out with `None`. Its IP rule applies from its next
    /// login; its `user_group_id` claim changes with its next token.
    pub async fn set_principal_group(&self, kind: PrincipalKind, name: &str, group: Option<&str>) -> Result<(), Error> {
        if kind != PrincipalKind::User {
            return Err(Error::InvalidAttribute("only users are in user groups; resellers own them".into()));
        }
        let principal = self.principal(kind, name).await?;
        let group_id = match group {
            Some(group) => Some(self.group(group).await?.group.id),
            None => None,
        };
        match self.store.set_principal_group(principal.id, group_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::NoSuchPrincipal { kind: kind.as_str(), name: name.to_owned() }),
            Err(StoreError::Conflict(_)) => Err(Error::NoSuchGroup(group.unwrap_or_default().to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove a user group nobody is in.
    pub async fn remove_group(&self, name: &str) -> Result<(), Error> {
        let group = self.group(name).await?;
        if group.members > 0 {
            return Err(Error::GroupInUse { name: name.to_owned(), members: group.members });
        }
        match self.store.delete_group(group.group.id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(Error::NoSuchGroup(name.to_owned())),
            // why: a user was put in the group between the check and the delete.
            Err(StoreError::Conflict(_)) => Err(Error::GroupInUse { name: name.to_owned(), members: 1 }),
            Err(e) => Err(e.into()),
        }
    }
}
