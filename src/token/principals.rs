//! Principal administration on the token service: create, change password, enable, disable,
//! remove, list. Used by the CLI (and later the web page); dialects never call these.
//!
//! Policy: disabling a principal makes its tokens stop working at once (checked on every
//! authenticate) and enabling it brings them back; removing it deletes its tokens; changing
//! its password revokes all its tokens in the same transaction.

use secrecy::{ExposeSecret, SecretString};

use super::TokenService;
use crate::error::Error;
use crate::principal::{PrincipalKind, Username};
use crate::store::{NewPrincipal, PrincipalRecord, StoreError};

impl TokenService {
    /// Find a principal by kind and exact name.
    pub async fn principal(&self, kind: PrincipalKind, name: &str) -> Result<PrincipalRecord, Error> {
        self.store
            .principal_by_name(kind, name)
            .await?
            .ok_or_else(|| Error::NoSuchPrincipal { kind: kind.as_str(), name: name.to_owned() })
    }

    /// Create a principal with a password and, optionally, a role (which must exist).
    pub async fn create_principal(
        &self,
        kind: PrincipalKind,
        name: &str,
        password: SecretString,
        role: Option<&str>,
    ) -> Result<PrincipalRecord, Error> {
        let name = Username::parse(name).map_err(Error::InvalidName)?;
        check_password_text(&password)?;
        let role_id = match role {
            Some(role) => Some(self.role(role).await?.id),
            None => None,
        };
        let hash = self.passwords.hash(password).await?;
        let new = NewPrincipal { kind, name: &name, password_hash: &hash, created_at: self.clock.now(), role_id };
        match self.store.insert_principal(&new).await {
            Err(StoreError::Conflict(_)) => {
                Err(Error::PrincipalExists { kind: kind.as_str(), name: name.as_str().to_owned() })
            }
            other => Ok(other?),
        }
    }

    /// Replace a principal's password and revoke all its tokens.
    pub async fn set_password(&self, kind: PrincipalKind, name: &str, password: SecretString) -> Result<(), Error> {
        check_password_text(&password)?;
        let principal = self.principal(kind, name).await?;
        let hash = self.passwords.hash(password).await?;
        self.store.set_password_hash(principal.id, &hash, Some(self.clock.now())).await.map_err(|e| gone(e, kind, name))
    }

    /// Enable or disable a principal.
    pub async fn set_principal_enabled(&self, kind: PrincipalKind, name: &str, enabled: bool) -> Result<(), Error> {
        let principal = self.principal(kind, name).await?;
        self.store.set_principal_enabled(principal.id, enabled).await.map_err(|e| gone(e, kind, name))
    }

    /// Remove a principal and its tokens.
    pub async fn remove_principal(&self, kind: PrincipalKind, name: &str) -> Result<(), Error> {
        let principal = self.principal(kind, name).await?;
        self.store.delete_principal(principal.id).await.map_err(|e| gone(e, kind, name))
    }

    /// All principals of a kind.
    pub async fn list_principals(&self, kind: PrincipalKind) -> Result<Vec<PrincipalRecord>, Error> {
        Ok(self.store.list_principals(kind).await?)
    }
}

/// A principal found a moment ago and gone now is reported as absent.
fn gone(err: StoreError, kind: PrincipalKind, name: &str) -> Error {
    match err {
        StoreError::NotFound => Error::NoSuchPrincipal { kind: kind.as_str(), name: name.to_owned() },
        other => other.into(),
    }
}

fn check_password_text(password: &SecretString) -> Result<(), Error> {
    if password.expose_secret().is_empty() {
        return Err(Error::InvalidPassword("the password is empty"));
    }
    Ok(())
}
