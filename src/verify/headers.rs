//! The identity headers of `/verify`'s 200, in the naming the application behind the proxy
//! expects (`verify.headers`).
//!
//! Policy:
//! - One preset at a time; a preset replaces the `X-Auth-*` set rather than adding to it, so
//!   the proxy passes on one set and the application trusts one set.
//! - tokenauth's principals have a name, an id, a kind and at most one role; no display name
//!   and no e-mail address. So the presets' user name and display name are both the name,
//!   their groups are the role (one group, or none), and their e-mail header is never sent.
//! - The presets have no word for a principal's kind, and a user and a reseller may share a
//!   name: under a preset, a reseller's token is refused (403 `forbidden`), so a reseller can
//!   never reach the application as the user of the same name. `X-Auth-Kind` tells them apart.
//! - A group list is comma-separated: a role whose name contains a comma cannot be written in
//!   one, and is left out (the application then sees no group, which grants less, not more).

use axum::http::{HeaderName, HeaderValue};

use crate::config::IdentityHeaders;
use crate::error::Error;
use crate::model::PrincipalKind;
use crate::surface::rfc3339;
use crate::token::Authenticated;

/// What the headers are made from: the parts of a checked token they show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: i64,
    pub(crate) kind: PrincipalKind,
    pub(crate) role: Option<&'a str>,
    pub(crate) token_id: String,
    pub(crate) dialect: &'a str,
    /// RFC 3339, UTC.
    pub(crate) expires: Option<String>,
}

impl<'a> Identity<'a> {
    pub(crate) fn of(auth: &'a Authenticated) -> Result<Self, Error> {
        Ok(Identity {
            name: &auth.owner().name,
            id: auth.owner().id,
            kind: auth.owner().kind,
            role: auth.owner().role.as_ref().map(|r| r.name.as_str()),
            token_id: auth.token().id.to_string(),
            dialect: auth.token().issuer.as_str(),
            expires: auth.token().expires_at.map(rfc3339).transpose()?,
        })
    }
}

/// The headers for `identity` under `preset`, in order; a header without a value (no role,
/// no expiry) is left out. A reseller under a preset: `Forbidden` (see the module's policy).
pub(crate) fn identity_headers(
    preset: IdentityHeaders,
    identity: &Identity<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let name = Some(identity.name.to_owned());
    let pairs: Vec<(&'static str, Option<String>)> = match preset {
        IdentityHeaders::Tokenauth => vec![
            ("x-auth-user", name),
            ("x-auth-user-id", Some(identity.id.to_string())),
            ("x-auth-kind", Some(identity.kind.as_str().to_owned())),
            ("x-auth-role", identity.role.map(str::to_owned)),
            ("x-auth-token-id", Some(identity.token_id.clone())),
            ("x-auth-dialect", Some(identity.dialect.to_owned())),
            ("x-auth-expires", identity.expires.clone()),
        ],
        _ if identity.kind != PrincipalKind::User => {
            tracing::debug!(preset = preset.as_str(), "verify: a reseller's token is refused under a header preset");
            return Err(Error::Forbidden);
        }
        IdentityHeaders::Authelia => {
            vec![("remote-user", name.clone()), ("remote-groups", groups(identity.role)), ("remote-name", name)]
        }
        IdentityHeaders::Oauth2Proxy => vec![
            ("x-auth-request-user", name.clone()),
            ("x-auth-request-groups", groups(identity.role)),
            ("x-auth-request-preferred-username", name),
        ],
    };
    pairs
        .into_iter()
        .filter_map(|(header, value)| value.map(|v| (header, v)))
        .map(|(header, value)| {
            // why from_bytes: names are UTF-8 without control characters (checked when
            // stored), so they are valid header bytes as they are.
            let value = HeaderValue::from_bytes(value.as_bytes())
                .map_err(|e| Error::Internal(format!("{header} cannot be a header value: {e}")))?;
            Ok((HeaderName::from_static(header), value))
        })
        .collect()
}

/// The comma-separated group list: the role, unless its name would split in two.
fn groups(role: Option<&str>) -> Option<String> {
    let role = role?;
    if role.contains(',') {
        tracing::warn!(role, "verify: a role whose name contains a comma is left out of the group header");
        return None;
    }
    Some(role.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(role: Option<&'static str>, expires: Option<&str>) -> Identity<'static> {
        Identity {
            name: "alice",
            id: 7,
            kind: PrincipalKind::User,
            role,
            token_id: "5f0c3a52-0000-4000-8000-000000000001".into(),
            dialect: "knox",
            expires: expires.map(str::to_owned),
        }
    }

    fn shown(preset: IdentityHeaders, identity: &Identity<'_>) -> Vec<(String, String)> {
        let headers = identity_headers(preset, identity).unwrap();
        headers.into_iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn tokenauth_is_the_x_auth_set() {
        let full = alice(Some("agent"), Some("2030-01-01T08:00:00Z"));
        assert_eq!(
            shown(IdentityHeaders::Tokenauth, &full),
            pairs(&[
                ("x-auth-user", "alice"),
                ("x-auth-user-id", "7"),
                ("x-auth-kind", "user"),
                ("x-auth-role", "agent"),
                ("x-auth-token-id", "5f0c3a52-0000-4000-8000-000000000001"),
                ("x-auth-dialect", "knox"),
                ("x-auth-expires", "2030-01-01T08:00:00Z"),
            ])
        );
        // No role, no expiry: those headers are absent, not empty.
        let names: Vec<String> =
            shown(IdentityHeaders::Tokenauth, &alice(None, None)).into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["x-auth-user", "x-auth-user-id", "x-auth-kind", "x-auth-token-id", "x-auth-dialect"]);
        // Resellers pass: X-Auth-Kind says what they are.
        let reseller = Identity { kind: PrincipalKind::Reseller, ..alice(None, None) };
        assert!(shown(IdentityHeaders::Tokenauth, &reseller).contains(&("x-auth-kind".into(), "reseller".into())));
    }

    #[test]
    fn authelia_names_the_user_and_the_role_as_group() {
        let expiring = alice(Some("agent"), Some("2030-01-01T08:00:00Z"));
        assert_eq!(
            shown(IdentityHeaders::Authelia, &expiring),
            pairs(&[("remote-user", "alice"), ("remote-groups", "agent"), ("remote-name", "alice")])
        );
        assert_eq!(
            shown(IdentityHeaders::Authelia, &alice(None, None)),
            pairs(&[("remote-user", "alice"), ("remote-name", "alice")])
        );
    }

    #[test]
    fn oauth2_proxy_names_the_user_and_the_role_as_group() {
        assert_eq!(
            shown(IdentityHeaders::Oauth2Proxy, &alice(Some("agent"), None)),
            pairs(&[
                ("x-auth-request-user", "alice"),
                ("x-auth-request-groups", "agent"),
                ("x-auth-request-preferred-username", "alice"),
            ])
        );
        assert_eq!(
            shown(IdentityHeaders::Oauth2Proxy, &alice(None, None)),
            pairs(&[("x-auth-request-user", "alice"), ("x-auth-request-preferred-username", "alice")])
        );
    }

    #[test]
    fn presets_refuse_resellers_and_unsplittable_groups() {
        let reseller = Identity { kind: PrincipalKind::Reseller, ..alice(None, None) };
        for preset in [IdentityHeaders::Authelia, IdentityHeaders::Oauth2Proxy] {
            assert!(matches!(identity_headers(preset, &reseller), Err(Error::Forbidden)), "{preset:?}");
            let comma = alice(Some("sales,admin"), None);
            let names: Vec<String> = shown(preset, &comma).into_iter().map(|p| p.0).collect();
            assert!(!names.iter().any(|n| n.ends_with("groups")), "{preset:?}: {names:?}");
        }
    }

    #[test]
    fn non_ascii_names_are_sent_as_they_are() {
        let unicode = Identity { name: "Ålice Ünïcode", ..alice(Some("Sälj"), None) };
        let headers = identity_headers(IdentityHeaders::Authelia, &unicode).unwrap();
        assert_eq!(headers[0].1.as_bytes(), "Ålice Ünïcode".as_bytes());
        assert_eq!(headers[1].1.as_bytes(), "Sälj".as_bytes());
    }

    #[test]
    fn config_values() {
        for (preset, text) in [
            (IdentityHeaders::Tokenauth, "tokenauth"),
            (IdentityHeaders::Authelia, "authelia"),
            (IdentityHeaders::Oauth2Proxy, "oauth2-proxy"),
        ] {
            assert_eq!(preset.as_str(), text);
            assert_eq!(serde_json::to_value(preset).unwrap(), serde_json::json!(text));
            assert_eq!(serde_json::from_value::<IdentityHeaders>(serde_json::json!(text)).unwrap(), preset);
        }
        assert!(serde_json::from_value::<IdentityHeaders>(serde_json::json!("oauth2_proxy")).is_err());
        assert_eq!(IdentityHeaders::default(), IdentityHeaders::Tokenauth);
    }
}
