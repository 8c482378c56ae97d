//! Dialects by name, and who issued a token.

use std::fmt;
use std::str::FromStr;

/// One of the four wire dialects. The one place their names are spelled: config sections,
/// the CLI's `--dialect`, the `tokens.dialect` column and the metrics' labels all go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DialectId {
    /// The Atheneum API (szurubooru's UserToken): UUID tokens.
    Usertoken,
    /// django-rest-knox (Papermerge): prefixed hex tokens.
    Knox,
    /// The Webitel v3 engine: HS256 JWTs with an `X-Key`.
    Webitel,
    /// Hello Hunter's dialer.rocks API: HS256 JWTs, users and resellers.
    Dialer,
}

impl DialectId {
    /// All four, in the order the README lists them.
    pub const ALL: [DialectId; 4] = [DialectId::Usertoken, DialectId::Knox, DialectId::Webitel, DialectId::Dialer];

    /// The name: the config section, the stored value, the metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DialectId::Usertoken => "usertoken",
            DialectId::Knox => "knox",
            DialectId::Webitel => "webitel",
            DialectId::Dialer => "dialer",
        }
    }

    /// A dense index, for tables with one entry per dialect.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DialectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a dialect's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?}: expected usertoken, knox, webitel or dialer")]
pub struct UnknownDialect(pub String);

impl FromStr for DialectId {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DialectId::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| UnknownDialect(s.to_owned()))
    }
}

impl serde::Serialize for DialectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Who issued a token: a dialect (whose endpoints, and `/verify`, accept it), or the web page
/// (its sign-ins, which nothing else accepts). Stored in `tokens.dialect` as the dialect's name,
/// or `ui`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Issuer {
    /// A wire dialect.
    Dialect(DialectId),
    /// The web page's sign-in session.
    WebPage,
}

impl Issuer {
    /// The stored value for the web page's sessions. why `ui`: the name it has had since the
    /// web page's migration; changing it would need one.
    const WEB_PAGE: &'static str = "ui";

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Issuer::Dialect(d) => d.as_str(),
            Issuer::WebPage => Issuer::WEB_PAGE,
        }
    }

    /// The dialect, unless the web page issued it.
    pub const fn dialect(self) -> Option<DialectId> {
        match self {
            Issuer::Dialect(d) => Some(d),
            Issuer::WebPage => None,
        }
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Issuer {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == Issuer::WEB_PAGE { Ok(Issuer::WebPage) } else { s.parse().map(Issuer::Dialect) }
    }
}

impl From<DialectId> for Issuer {
    fn from(d: DialectId) -> Self {
        Issuer::Dialect(d)
    }
}

impl PartialEq<DialectId> for Issuer {
    fn eq(&self, other: &DialectId) -> bool {
        *self == Issuer::Dialect(*other)
    }
}

impl serde::Serialize for Issuer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What knox's logout and logoutall answer on success: the seed's 200 (the default) or real
/// knox's 204. Written in the config as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutStatus {
    /// `200 OK`, empty body (the seed).
    #[default]
    Ok,
    /// `204 No Content` (django-rest-knox).
    NoContent,
}

impl LogoutStatus {
    /// The status code.
    pub const fn code(self) -> u16 {
        match self {
            LogoutStatus::Ok => 200,
            LogoutStatus::NoContent => 204,
        }
    }
}

impl serde::Serialize for LogoutStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for LogoutStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u16::deserialize(d)? {
            200 => Ok(LogoutStatus::Ok),
            204 => Ok(LogoutStatus::NoContent),
            other => Err(serde::de::Error::custom(format!("{other}: must be 200 or 204"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DialectId::ALL {
            assert_eq!(d.as_str().parse::<DialectId>(), Ok(d));
            assert_eq!(d.to_string().parse::<Issuer>(), Ok(Issuer::Dialect(d)));
            assert_eq!(DialectId::ALL[d.index()], d);
        }
        assert_eq!("ui".parse::<Issuer>(), Ok(Issuer::WebPage));
        assert_eq!(Issuer::WebPage.as_str(), "ui");
        assert!("ui".parse::<DialectId>().is_err());
        assert!("Knox".parse::<DialectId>().is_err(), "names are exact");
    }

    #[test]
    fn logout_status_is_200_or_204() {
        let parse = |s: &str| serde_json::from_str::<LogoutStatus>(s);
        assert_eq!(parse("200").unwrap(), LogoutStatus::Ok);
        assert_eq!(parse("204").unwrap(), LogoutStatus::NoContent);
        assert!(parse("201").unwrap_err().to_string().contains("must be 200 or 204"));
        assert_eq!(serde_json::to_string(&LogoutStatus::NoContent).unwrap(), "204");
    }
}
