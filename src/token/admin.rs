//! Administrators' actions, for the web page's admin pages and the CLI alike: who may take
//! them, which ones are refused, and the audit record written before each.
//!
//! Policy: an administrator is a user with the `admin` attribute. An action by an
//! administrator is recorded in the audit log *before* it is taken (an action that cannot be
//! recorded is not taken), and only when it changes something. The operator at the command
//! line holds the database itself and is not a principal, so the audit log (which names
//! principals) does not record the operator's actions.

use std::net::IpAddr;

use uuid::Uuid;

use super::TokenService;
use crate::error::Error;
use crate::model::{AuditEntry, Principal, PrincipalKind};

/// Who asks for an administrative action.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An administrator signed in on the web page, from a client address.
    Administrator {
        /// The administrator.
        principal: &'a Principal,
        /// Where the request came from, for the audit log.
        client_ip: IpAddr,
    },
    /// The operator at the command line.
    Operator,
}

/// Whether `principal` may use the administrators' pages: a user with the `admin` attribute
/// (the dialer JWT's `admin` claim). Resellers never are.
pub fn is_administrator(principal: &Principal) -> bool {
    principal.kind == PrincipalKind::User && principal.attributes.admin
}

impl TokenService {
    /// Enable or disable `target` as `actor`. Nothing is recorded or done when it is already
    /// so; an administrator cannot disable themself (another one must).
    pub async fn set_enabled_as(&self, actor: Actor<'_>, target: &Principal, enabled: bool) -> Result<(), Error> {
        if let Actor::Administrator { principal, .. } = actor
            && principal.id == target.id
            && !enabled
        {
            return Err(Error::Invalid("You cannot disable yourself: ask another administrator.".into()));
        }
        if target.enabled == enabled {
            return Ok(());
        }
        let action = if enabled { "user.enable" } else { "user.disable" };
        self.record(actor, action, &target.name).await?;
        // Disabling also ends the principal's web sessions (see `set_principal_enabled`).
        self.set_principal_enabled(target.kind, &target.name, enabled).await
    }

    /// Revoke the token `id` as `actor`; recorded with its owner and dialect.
    pub async fn revoke_token_as(&self, actor: Actor<'_>, id: Uuid) -> Result<(), Error> {
        if let Actor::Administrator { .. } = actor {
            let found = self.store.token_by_id(id).await?.ok_or_else(|| Error::NoSuchToken(id.to_string()))?;
            self.record(actor, "token.revoke", &format!("{} {} {id}", found.owner.name, found.token.issuer)).await?;
        }
        self.revoke_by_id(id).await
    }

    /// A user by id (the admin pages address users by id).
    pub async fn user_by_id(&self, id: i64) -> Result<Option<Principal>, Error> {
        Ok(self.store.principal_by_id(id).await?.filter(|p| p.kind == PrincipalKind::User))
    }

    /// The newest `limit` audit log entries, oldest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store.list_audit(limit).await?)
    }

    /// Write `actor`'s `action` on `target` to the audit log (an administrator's only).
    async fn record(&self, actor: Actor<'_>, action: &str, target: &str) -> Result<(), Error> {
        let Actor::Administrator { principal, client_ip } = actor else { return Ok(()) };
        if !is_administrator(principal) {
            return Err(Error::Forbidden);
        }
        let entry = AuditEntry {
            at: self.clock.now(),
            actor_kind: principal.kind,
            actor_name: principal.name.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            client_ip: client_ip.to_string(),
        };
        Ok(self.store.insert_audit(&entry).await?)
    }
}
