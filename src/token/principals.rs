//! Principal administration on the token service: create, change password, enable, disable,
//! remove, list. Used by the CLI (and later the web page); dialects never call these.
//!
//! Policy: disabling a principal makes its tokens stop working at once (checked on every
//! authenticate) and enabling it brings them back; removing it deletes its tokens; changing
//! its password revokes all its tokens in the same transaction.

use ipnet::IpNet;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};

use super::TokenService;
use super::cache::Invalidation;
use crate::error::Error;
use crate::model::{Attributes, Principal};
use crate::model::{PrincipalKind, Username};
use crate::store::{NewPrincipal, StoreError};

/// What a new principal gets besides its name and password. Which parts fit which kind:
/// users may have a role, a group, `admin` and `sms_from`; resellers `allowed_ips` and a
/// `balance` (0.00 when not given).
#[derive(Debug, Clone, Default)]
pub struct NewProfile {
    /// A role name (must exist).
    pub role: Option<String>,
    /// A user group name (must exist).
    pub group: Option<String>,
    /// The attributes.
    pub attributes: Attributes,
}

/// why 64: a sender is a phone number (15 digits in E.164) or an 11-character alphanumeric
/// sender id; 64 leaves room for a formatted number without letting a JWT claim grow.
const MAX_SMS_FROM_CHARS: usize = 64;

/// Check an `sms_from` value: 1 to 64 characters, no control characters.
pub fn check_sms_from(s: &str) -> Result<(), Error> {
    if s.is_empty() || s.chars().count() > MAX_SMS_FROM_CHARS || s.chars().any(char::is_control) {
        return Err(Error::InvalidAttribute(format!(
            "sms_from {s:?} must be 1 to {MAX_SMS_FROM_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// why 11 + 4 digits: 15 significant digits are what a JavaScript client's double holds
/// exactly, so the balance it reads is the balance stored; 11 before the point is a hundred
/// billion, far past any account, and larger is a typo.
const MAX_BALANCE_INTEGER_DIGITS: usize = 11;
/// why 4: cents, with room for sub-cent rates.
const MAX_BALANCE_SCALE: u32 = 4;

/// Parse a balance: a plain decimal number (`1000`, `-12.5`, `0.0125`), shown with at least
/// two decimals (`1000.00`), as the dialer seed prints it.
pub fn parse_balance(s: &str) -> Result<Decimal, Error> {
    let bad = || {
        Error::InvalidAttribute(format!(
            "balance {s:?} must be a decimal number like 1000.00 (at most {MAX_BALANCE_INTEGER_DIGITS} digits before the point and {MAX_BALANCE_SCALE} after)"
        ))
    };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > MAX_BALANCE_INTEGER_DIGITS
        || frac.len() > MAX_BALANCE_SCALE as usize
        || (digits.contains('.') && frac.is_empty())
        || !all_digits(int)
        || !all_digits(frac)
    {
        return Err(bad());
    }
    let mut value: Decimal = s.parse().map_err(|_| bad())?;
    if value.scale() < 2 {
        value.rescale(2);
    }
    Ok(value)
}

/// Refuse attributes that do not fit the kind, and check the values of those that do.
fn check_profile(kind: PrincipalKind, profile: &NewProfile) -> Result<(), Error> {
    let a = &profile.attributes;
    let misfit = match kind {
        PrincipalKind::User => (!a.allowed_ips.is_empty() || a.balance.is_some()).then_some(
            "allowed IPs and a balance are for resellers; a user's addresses are limited by its group's allowed_regex",
        ),
        PrincipalKind::Reseller => {
            (profile.role.is_some() || profile.group.is_some() || a.admin || a.sms_from.is_some())
                .then_some("a role, a group, admin and sms_from are for users; a reseller owns groups instead")
        }
    };
    if let Some(why) = misfit {
        return Err(Error::InvalidAttribute(why.into()));
    }
    if let Some(sms_from) = &a.sms_from {
        check_sms_from(sms_from)?;
    }
    Ok(())
}

/// A reseller's allowed IPs, each an address or a CIDR; a bare address is one host. An
/// IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) is stored as its IPv4 network, since
/// client addresses are compared in that form.
pub fn parse_allowed_ip(s: &str) -> Result<IpNet, Error> {
    let bad = |why: &str| Error::InvalidAttribute(format!("allowed IP {s:?} {why}"));
    // why the host bits are cleared last: clearing them first would hide the mapped address of
    // `::ffff:192.0.2.0/64` (it becomes `::/64`) from the check below.
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| bad("is not an address or a CIDR like 10.0.0.0/8"))?;
    match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|v4| IpNet::V4(v4.trunc()))
                .map_err(|_| bad("is not a valid network")),
            Some(_) => Err(bad("mixes IPv4-mapped and other IPv6 addresses: give the IPv4 network instead")),
            None => Ok(net.trunc()),
        },
        v4 => Ok(v4.trunc()),
    }
}

impl TokenService {
    /// Find a principal by kind and exact name.
    pub async fn principal(&self, kind: PrincipalKind, name: &str) -> Result<Principal, Error> {
        self.store
            .principal_by_name(kind, name)
            .await?
            .ok_or_else(|| Error::NoSuchPrincipal { kind: kind.as_str(), name: name.to_owned() })
    }

    /// Create a principal with a password and a profile (see `NewProfile` for what fits
    /// which kind; a named role or group must exist).
    pub async fn create_principal(
        &self,
        kind: PrincipalKind,
        name: &str,
        password: SecretString,
        profile: &NewProfile,
    ) -> Result<Principal, Error> {
        let name = Username::parse(name).map_err(Error::InvalidName)?;
        check_password_text(&password)?;
        check_profile(kind, profile)?;
        let role_id = match &profile.role {
            Some(role) => Some(self.role(role).await?.id),
            None => None,
        };
        let group_id = match &profile.group {
            Some(group) => Some(self.group(group).await?.group.id),
            None => None,
        };
        let mut attributes = profile.attributes.clone();
        if kind == PrincipalKind::Reseller && attributes.balance.is_none() {
            attributes.balance = Some(Decimal::new(0, 2));
        }
        let hash = self.passwords.hash(password).await?;
        let new = NewPrincipal {
            kind,
            name: &name,
            password_hash: &hash,
            created_at: self.clock.now(),
            role_id,
            group_id,
            attributes: &attributes,
        };
        match self.store.insert_principal(&new).await {
            Err(StoreError::Conflict(_)) if self.store.principal_by_name(kind, name.as_str()).await?.is_some() => {
                Err(Error::PrincipalExists { kind: kind.as_str(), name: name.as_str().to_owned() })
            }
            // why: the role or group was removed between the lookup and the insert.
            Err(StoreError::Conflict(_)) => {
                Err(Error::InvalidAttribute("its role or group was removed meanwhile; try again".into()))
            }
            other => Ok(other?),
        }
    }

    /// Replace a principal's password and revoke all its tokens.
    pub async fn set_password(&self, kind: PrincipalKind, name: &str, password: SecretString) -> Result<(), Error> {
        check_password_text(&password)?;
        let principal = self.principal(kind, name).await?;
        let hash = self.passwords.hash(password).await?;
        let changed = self.store.set_password_hash(principal.id, &hash, Some(self.clock.now())).await;
        self.announce(Invalidation::Principal(principal.id)).await;
        changed.map_err(|e| gone(e, kind, name))
    }

    /// Enable or disable a principal. Disabling also ends its web-page sign-ins for good:
    /// its API tokens come back when it is enabled again, a possibly stolen browser session
    /// must not.
    pub async fn set_principal_enabled(&self, kind: PrincipalKind, name: &str, enabled: bool) -> Result<(), Error> {
        let principal = self.principal(kind, name).await?;
        let changed = self.store.set_principal_enabled(principal.id, enabled).await;
        let ended = if enabled || changed.is_err() {
            Ok(0)
        } else {
            self.store.revoke_all(principal.id, Some(crate::model::Issuer::WebPage), self.clock.now()).await
        };
        self.announce(Invalidation::Principal(principal.id)).await;
        changed.map_err(|e| gone(e, kind, name))?;
        ended.map(|_| ()).map_err(Error::from)
    }

    /// Remove a principal and its tokens.
    pub async fn remove_principal(&self, kind: PrincipalKind, name: &str) -> Result<(), Error> {
        let principal = self.principal(kind, name).await?;
        let changed = self.store.delete_principal(principal.id).await;
        self.announce(Invalidation::Principal(principal.id)).await;
        changed.map_err(|e| gone(e, kind, name))
    }

    /// All principals of a kind.
    pub async fn list_principals(&self, kind: PrincipalKind) -> Result<Vec<Principal>, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression, found by `proptests::mapped_addresses_with_short_prefixes_are_refused`:
    /// the network was truncated before the IPv4-mapped check, which so never saw a mapped
    /// address with a short prefix: `::ffff:192.0.2.0/64` was accepted as `::/64` and
    /// `::ffff:0:0/95` as `::fffe:0:0/95`, instead of being refused as documented.
    #[test]
    fn mapped_addresses_with_short_prefixes_were_accepted() {
        for s in ["::ffff:192.0.2.0/64", "::ffff:0:0/95", "::ffff:10.0.0.0/80", "0:0:0:0:0:ffff:c000:0200/0"] {
            let got = parse_allowed_ip(s);
            assert!(matches!(got, Err(Error::InvalidAttribute(_))), "{s}: {got:?}");
        }
        assert_eq!(parse_allowed_ip("::ffff:192.0.2.7/96").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(parse_allowed_ip("::ffff:192.0.2.7/120").unwrap().to_string(), "192.0.2.0/24");
        assert_eq!(parse_allowed_ip("::/64").unwrap().to_string(), "::/64");
    }
}

#[cfg(test)]
mod proptests {
    //! Property tests of `parse_allowed_ip`: a reseller's allowed address or CIDR. (The
    //! configuration's `trusted_proxies` are read by `ipnet`'s own deserializer: no parser of
    //! ours.) Why property tests, and which oracles: `crate::test_strategies`.

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use proptest::prelude::*;

    use crate::error::Error;
    use crate::test_strategies::canonical;
    use crate::token::parse_allowed_ip;

    /// An IPv6 address written out in full, eight groups of four hex digits (no `::`).
    fn expanded(ip: Ipv6Addr) -> String {
        ip.segments().iter().map(|s| format!("{s:04x}")).collect::<Vec<_>>().join(":")
    }

    /// An IPv6 address that is not IPv4-mapped.
    fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
        any::<Ipv6Addr>().prop_filter("not IPv4-mapped", |ip| ip.to_ipv4_mapped().is_none())
    }

    /// The standard spelling of an address, or (IPv6) all eight groups written out.
    fn spell(ip: Ipv6Addr, full: bool) -> String {
        if full { expanded(ip) } else { ip.to_string() }
    }

    /// Arbitrary strings and strings near an address or a CIDR.
    fn candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9./]{1,20}",
            "[0-9a-fA-F:./]{1,45}",
            "(::ffff:)?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,3})?",
        ]
    }

    proptest! {
        /// Any IPv4 address with any prefix length 0 to 32 is that network (host bits cleared).
        #[test]
        fn ipv4_networks_round_trip(ip in any::<Ipv4Addr>(), len in 0..=32u8) {
            let want = IpNet::V4(Ipv4Net::new(ip, len).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{ip}/{len}")).unwrap(), want);
        }

        /// Any IPv6 address (not IPv4-mapped) with any prefix length 0 to 128, compressed or
        /// written out, is that network (host bits cleared).
        #[test]
        fn ipv6_networks_round_trip(ip in ipv6(), len in 0..=128u8, full in any::<bool>()) {
            let want = IpNet::V6(Ipv6Net::new(ip, len).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{}/{len}", spell(ip, full))).unwrap(), want);
        }

        /// An IPv4-mapped network with a prefix of 96 or more is its IPv4 network.
        #[test]
        fn mapped_networks_fold_to_ipv4(ip in any::<Ipv4Addr>(), len in 96..=128u8, full in any::<bool>()) {
            let want = IpNet::V4(Ipv4Net::new(ip, len - 96).unwrap().trunc());
            prop_assert_eq!(parse_allowed_ip(&format!("{}/{len}", spell(ip.to_ipv6_mapped(), full))).unwrap(), want);
        }

        /// An IPv4-mapped address with a prefix under 96 (a network that mixes mapped and
        /// other IPv6 addresses) is refused, as `parse_allowed_ip` documents.
        #[test]
        fn mapped_addresses_with_short_prefixes_are_refused(ip in any::<Ipv4Addr>(), len in 0..96u8, full in any::<bool>()) {
            let s = format!("{}/{len}", spell(ip.to_ipv6_mapped(), full));
            let got = parse_allowed_ip(&s);
            prop_assert!(matches!(got, Err(Error::InvalidAttribute(_))), "{}: {:?}", s, got);
        }

        /// A bare address is one host; an IPv4-mapped one is that IPv4 host.
        #[test]
        fn bare_addresses_are_one_host(ip in any::<IpAddr>()) {
            let want = match canonical(ip) {
                IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, 32).unwrap()),
                IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, 128).unwrap()),
            };
            prop_assert_eq!(parse_allowed_ip(&ip.to_string()).unwrap(), want);
        }

        /// A prefix length past the address's width is refused.
        #[test]
        fn invalid_prefix_lengths_are_refused(ip in any::<IpAddr>(), extra in prop_oneof![0..=4u64, 0..=1000u64, Just(u64::from(u32::MAX))]) {
            let len = extra + if ip.is_ipv4() { 33 } else { 129 };
            let s = format!("{ip}/{len}");
            prop_assert!(matches!(parse_allowed_ip(&s), Err(Error::InvalidAttribute(_))), "{}", s);
        }

        /// Arbitrary strings never panic; an accepted network has its host bits cleared, is
        /// never an IPv4-mapped IPv6 network, and contains the address it was written with.
        #[test]
        fn accepted_networks_are_canonical(s in candidate()) {
            let Ok(net) = parse_allowed_ip(&s) else { return Ok(()) };
            prop_assert_eq!(net, net.trunc(), "{}", s);
            if let IpNet::V6(v6) = net {
                prop_assert!(v6.addr().to_ipv4_mapped().is_none(), "{}: {}", s, net);
            }
            let written = s.split_once('/').map_or(s.as_str(), |(addr, _)| addr);
            if let Ok(ip) = written.parse::<IpAddr>() {
                prop_assert!(net.contains(&canonical(ip)), "{}: {}", s, net);
            }
        }
    }
}
