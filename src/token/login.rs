//! Logging in: the options a client may give, the password check (throttled, with a dummy
//! verification for unknown users, IP rules after the password, rehash on login), and the
//! session token issued after it.

use std::net::IpAddr;

use secrecy::SecretString;
use time::OffsetDateTime;

use super::issue::{after, check_note};
use super::{Issued, TokenPolicy, TokenService, clock, throttle};
use crate::error::{CredentialFailure, Error};
use crate::model::{GroupSummary, PasswordScheme, Principal, PrincipalKind, TokenKind, Username};
use crate::store::InsertRules;

/// Options a client may give at login.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// Free-text note, at most `NOTE_MAX_CHARS`.
    pub note: Option<String>,
    /// Absolute expiry, which must be in the future; otherwise the policy's lifetime applies.
    pub expires_at: Option<OffsetDateTime>,
}

impl TokenService {
    /// Check a username and password, and the principal's IP rules against the client's
    /// address, and issue a session token.
    #[tracing::instrument(skip_all, fields(dialect = %policy.issuer))]
    pub async fn login(
        &self,
        policy: &TokenPolicy,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
        options: LoginOptions,
    ) -> Result<Issued, Error> {
        let result = self.login_unmetered(policy, kind, username, password, client_ip, options).await;
        self.metrics.login(policy.issuer, &result);
        result
    }

    async fn login_unmetered(
        &self,
        policy: &TokenPolicy,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
        options: LoginOptions,
    ) -> Result<Issued, Error> {
        let asked = self.check_login_options(options)?;
        let principal = self.check_password(kind, username, password, client_ip).await?;
        self.issue_session(policy, &principal, asked).await
    }

    /// A reseller logs in (the dialer's reseller login): as `login`, and its user groups too.
    /// The groups are read before the token is issued, so a failure to read them issues
    /// nothing.
    #[tracing::instrument(skip_all, fields(dialect = %policy.issuer))]
    pub async fn reseller_login(
        &self,
        policy: &TokenPolicy,
        name: &str,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<(Issued, Vec<GroupSummary>), Error> {
        let result = async {
            let asked = self.check_login_options(LoginOptions::default())?;
            let reseller = self.check_password(PrincipalKind::Reseller, name, password, client_ip).await?;
            let groups = self.store.list_groups(Some(reseller.id)).await?;
            Ok((self.issue_session(policy, &reseller, asked).await?, groups))
        }
        .await;
        self.metrics.login(policy.issuer, &result);
        result
    }

    /// A login's note and expiry, checked before the (slow) password check.
    fn check_login_options(&self, options: LoginOptions) -> Result<LoginOptions, Error> {
        let note = check_note(options.note)?;
        // why: stored and echoed in UTC, to the microsecond, like every other time.
        let expires_at = match options.expires_at {
            Some(at) => Some(
                clock::to_utc_checked(at)
                    .ok_or_else(|| Error::Invalid("expiration time is outside the years 1 to 9999".into()))?,
            ),
            None => None,
        };
        if expires_at.is_some_and(|at| at <= self.clock.now()) {
            return Err(Error::Invalid("expiration time is in the past".into()));
        }
        Ok(LoginOptions { note, expires_at })
    }

    /// Issue a session token to a principal whose password was just verified (`asked` as
    /// `check_login_options` returned it).
    async fn issue_session(
        &self,
        policy: &TokenPolicy,
        principal: &Principal,
        asked: LoginOptions,
    ) -> Result<Issued, Error> {
        // why a new reading: the token is issued now, after the (slow) password check, so
        // that its creation, its expiry and a JWT's iat/exp all come from this one instant.
        let now = self.clock.now();
        let expires_at = match asked.expires_at {
            Some(at) => Some(at),
            None => policy.session_ttl.map(|ttl| after(now, ttl)).transpose()?,
        };
        let rules = InsertRules {
            max_live_tokens: policy.max_live_tokens,
            login_at: Some(now),
            verified_hash: Some(&principal.password_hash),
        };
        self.insert(policy, principal, TokenKind::Session, asked.note, (now, expires_at), rules).await
    }

    /// Verify a password, then the principal's IP rules against the client's address; an
    /// unknown user costs one verification against a dummy hash. The login throttle counts
    /// the attempt first, and refuses it before any hashing when a limit is reached.
    #[tracing::instrument(skip_all, fields(kind = %kind))]
    pub async fn check_password(
        &self,
        kind: PrincipalKind,
        username: &str,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<Principal, Error> {
        // why a guard: a request cancelled here (its timeout, a client gone) must give its
        // place back too, or an outage would leave every interrupted login in flight and
        // refuse the addresses that were logging in.
        // why the principal is read while the attempt is admitted: the read does not depend on
        // the admission, and the two round trips overlap. A refused attempt wasted one read; one
        // that waited in a line reads again, so what is verified is no older than it was.
        let admit = throttle::Pending::admit(&self.throttle, &self.store, &self.clock, (kind, username, client_ip));
        let (admitted, record) = tokio::join!(admit, self.principal_named(kind, username));
        let mut pending = admitted?;
        let record = if pending.waited() { self.principal_named(kind, username).await } else { record };
        let result = match record {
            Ok(record) => self.check_password_unthrottled(kind, record, password, client_ip).await,
            Err(e) => Err(e),
        };
        // why only refused credentials count: a login that failed for the server's sake (a
        // full hashing queue, a database error) says nothing about guessing, and counting it
        // would lock out a busy office behind one address during a flood.
        let outcome = match result {
            Err(Error::BadCredentials(_)) => throttle::Outcome::Failed,
            _ => throttle::Outcome::Released,
        };
        pending.finish(outcome).await;
        result
    }

    /// The principal a login names, if the name is valid and exists.
    async fn principal_named(&self, kind: PrincipalKind, username: &str) -> Result<Option<Principal>, Error> {
        Ok(match Username::parse(username) {
            Ok(name) => self.store.principal_by_name(kind, name.as_str()).await?,
            Err(_) => None,
        })
    }

    async fn check_password_unthrottled(
        &self,
        kind: PrincipalKind,
        record: Option<Principal>,
        password: SecretString,
        client_ip: IpAddr,
    ) -> Result<Principal, Error> {
        let verified = match &record {
            Some(r) if r.password_scheme != PasswordScheme::Native => {
                self.passwords.verify_legacy(r, password.clone()).await?
            }
            _ => self.passwords.verify(record.as_ref().map(|r| r.password_hash.clone()), password.clone()).await?,
        };
        let Some(record) = record else {
            return Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal));
        };
        if !verified.ok {
            return Err(Error::BadCredentials(CredentialFailure::WrongPassword));
        }
        if !record.enabled {
            return Err(Error::BadCredentials(CredentialFailure::Disabled));
        }
        // why after the password: checked first, the rules would tell anyone which accounts
        // exist and are restricted. The cost: from a refused address a guesser still learns
        // whether a password is right (but cannot use it); login throttling bounds that.
        // Before the rehash, so a refused login writes nothing.
        self.ip_rules.check(&record, client_ip)?;
        if verified.needs_rehash {
            // why: a failed rehash must not fail a login that verified; it is retried next login
            // (an imported hash keeps working until then). It is a compare-and-swap, so it never
            // undoes a password change made meanwhile.
            match self.passwords.hash(password.clone()).await {
                Ok(hash) => match self.store.replace_password_hash(record.id, &record.password_hash, &hash).await {
                    Ok(true) => {
                        return Ok(Principal {
                            password_hash: hash,
                            password_scheme: PasswordScheme::Native,
                            ..record
                        });
                    }
                    Ok(false) => return self.after_a_concurrent_change(kind, record, password).await,
                    Err(e) => tracing::warn!(error = %e, "could not store rehashed password"),
                },
                Err(e) => tracing::warn!(error = %e, "could not rehash password"),
            }
        }
        Ok(record)
    }

    /// The stored hash changed while this login verified it: another login of the same
    /// principal rehashed it (two first logins of an imported account at once, both with the
    /// right password), or the password was changed. Read it again and verify against what is
    /// stored now: the first case succeeds, for one more verification, so concurrent logins do
    /// not fail each other; the second is refused, as a password change always wins.
    async fn after_a_concurrent_change(
        &self,
        kind: PrincipalKind,
        record: Principal,
        password: SecretString,
    ) -> Result<Principal, Error> {
        let fresh = self.store.principal_by_name(kind, &record.name).await?.filter(|p| p.id == record.id);
        let Some(fresh) = fresh else {
            return Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal));
        };
        let again = if fresh.password_scheme == PasswordScheme::Native {
            self.passwords.verify(Some(fresh.password_hash.clone()), password).await?
        } else {
            self.passwords.verify_legacy(&fresh, password).await?
        };
        if !again.ok {
            tracing::info!("password changed during login");
            return Err(Error::BadCredentials(CredentialFailure::WrongPassword));
        }
        if !fresh.enabled {
            return Err(Error::BadCredentials(CredentialFailure::Disabled));
        }
        tracing::info!("the stored password changed during this login; verified again against it");
        Ok(fresh)
    }
}
