//! The service's side of `tokenauth import` (`crate::import` plans; the store applies): what
//! an import reads of the accounts already here, and what every replica must learn after it.

use super::TokenService;
use super::cache::Invalidation;
use crate::error::Error;
use crate::model::PrincipalKind;
use crate::store::{ImportApplied, ImportBatch, PrincipalAction};

impl TokenService {
    /// `(id, name, fingerprint)` of the principals of `kind` that an import created.
    pub async fn imported_credentials(&self, kind: PrincipalKind) -> Result<Vec<(i64, String, String)>, Error> {
        Ok(self.store.imported_credentials(kind).await?)
    }

    /// Apply a planned import in one transaction; without `commit`, roll it back (a dry run).
    /// After a commit, every replica drops what it cached of the updated principals and starts
    /// looking for legacy tokens; an old system's JWT key is loaded here, and by the other
    /// servers at the first token without a `kid` they see.
    pub async fn apply_import(&self, batch: &ImportBatch<'_>, commit: bool) -> Result<ImportApplied, Error> {
        let applied = self.store.apply_import(batch, self.clock.now(), commit).await?;
        if !commit {
            return Ok(applied);
        }
        for p in &batch.principals {
            if let PrincipalAction::Update(id) = p.action {
                self.announce(Invalidation::Principal(id)).await;
            }
        }
        if batch.tokens.iter().any(|t| t.legacy.is_some()) {
            self.announce_legacy_tokens().await;
        }
        if applied.keys_created > 0 {
            self.reload_keys().await?;
        }
        Ok(applied)
    }

    /// The secret of the old system's JWT key `name`, if one was imported.
    pub async fn legacy_jwt_key(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.store.legacy_jwt_key(name).await?)
    }

    /// Whether a JWT's signature verifies: with tokenauth's keys (by its `kid`), the old
    /// systems' keys already imported, or one of `extra` (keys being imported with it).
    pub fn jwt_verifies(&self, token: &str, extra: &[&[u8]]) -> bool {
        self.keys.verify(token).is_ok() || extra.iter().any(|key| super::jwt::verifies_with(token, key))
    }

    /// The value of a configured pepper (the import compares a given secret with it).
    pub fn pepper(&self, name: &str) -> Option<&secrecy::SecretString> {
        self.passwords.pepper(name)
    }
}
