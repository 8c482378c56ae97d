//! Credentials imported from the systems tokenauth replaces, kept as they were until first use.
//!
//! A principal's password is either tokenauth's own argon2id PHC string or a legacy hash kept
//! exactly as imported, with the scheme that verifies it (`PasswordScheme`); a pepper is named
//! here, and its value lives in the configuration, never in the database. A token row's digest
//! is either the SHA-256 of the token or, for tokens whose plain text was never known, the
//! legacy system's digest with what recomputing it needs (`TokenDigest`).

use std::fmt;
use std::str::FromStr;

/// How a principal's stored password (`Principal::password_hash`) is verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PasswordScheme {
    /// An argon2 PHC string: tokenauth's own (argon2id), or an imported one.
    Native,
    /// A Django `password` field; the algorithm is named inside it (`pbkdf2_sha256$…`,
    /// `argon2$…`, `bcrypt_sha256$…`, `bcrypt$…`, `scrypt$…`, `md5$…`, `sha1$…`, unsalted md5).
    Django,
    /// szurubooru's password revisions, stored as `base64url(salt)$hash`: 1 is
    /// `sha1("1A2/$_4xVa" + salt + password)`; 2 is `sha256(secret + salt + password)` and 3 a
    /// libsodium argon2id string of the same, `secret` being the named pepper.
    Szurubooru {
        /// 1, 2 or 3.
        revision: u8,
        /// The pepper (revisions 2 and 3): a name in `passwords.peppers`.
        pepper: Option<String>,
    },
    /// Webitel's SIP HA1: hex `md5("user:domain:password")`.
    WebitelHa1,
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`) of the password followed by the named pepper, if any
    /// (Devise's pepper; Rails' `has_secure_password` has none).
    Bcrypt {
        /// The pepper: a name in `passwords.peppers`.
        pepper: Option<String>,
    },
    /// No usable password (Django's `!…`): a password login always fails; tokens still work.
    Unusable,
}

impl PasswordScheme {
    /// The pepper this scheme needs, if any.
    pub fn pepper(&self) -> Option<&str> {
        match self {
            PasswordScheme::Szurubooru { pepper, .. } | PasswordScheme::Bcrypt { pepper } => pepper.as_deref(),
            _ => None,
        }
    }

    /// The value of `principals.password_scheme`: `None` for tokenauth's own.
    pub fn stored(&self) -> Option<String> {
        (*self != PasswordScheme::Native).then(|| self.to_string())
    }

    /// Read `principals.password_scheme`.
    pub fn from_stored(stored: Option<&str>) -> Result<Self, UnknownScheme> {
        stored.map_or(Ok(PasswordScheme::Native), str::parse)
    }
}

impl fmt::Display for PasswordScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, name: &str, pepper: &Option<String>| match pepper {
            Some(p) => write!(f, "{name}:{p}"),
            None => f.write_str(name),
        };
        match self {
            PasswordScheme::Native => f.write_str("argon2"),
            PasswordScheme::Django => f.write_str("django"),
            PasswordScheme::Szurubooru { revision, pepper } => with(f, &format!("szurubooru-{revision}"), pepper),
            PasswordScheme::WebitelHa1 => f.write_str("webitel-ha1"),
            PasswordScheme::Bcrypt { pepper } => with(f, "bcrypt", pepper),
            PasswordScheme::Unusable => f.write_str("unusable"),
        }
    }
}

/// A scheme name tokenauth does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheme {0:?}")]
pub struct UnknownScheme(pub String);

impl FromStr for PasswordScheme {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pepper) = match s.split_once(':') {
            Some((name, pepper)) if !pepper.is_empty() => (name, Some(pepper.to_owned())),
            Some(_) => return Err(UnknownScheme(s.to_owned())),
            None => (s, None),
        };
        let unknown = || UnknownScheme(s.to_owned());
        Ok(match (name, pepper) {
            ("argon2", None) => PasswordScheme::Native,
            ("django", None) => PasswordScheme::Django,
            ("szurubooru-1", None) => PasswordScheme::Szurubooru { revision: 1, pepper: None },
            ("szurubooru-2", pepper @ Some(_)) => PasswordScheme::Szurubooru { revision: 2, pepper },
            ("szurubooru-3", pepper @ Some(_)) => PasswordScheme::Szurubooru { revision: 3, pepper },
            ("webitel-ha1", None) => PasswordScheme::WebitelHa1,
            ("bcrypt", pepper) => PasswordScheme::Bcrypt { pepper },
            ("unusable", None) => PasswordScheme::Unusable,
            _ => return Err(unknown()),
        })
    }
}

/// django-rest-knox's versions, by how they digest a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnoxVersion {
    /// 4.1: `hash(unhex(token) ‖ unhex(salt))`, keyed by the token's first 8 characters.
    V4_1,
    /// 4.2: `hash(unhex(token))`, keyed by the first 8.
    V4_2,
    /// 5.x: `hash(token as UTF-8, prefix included)`, keyed by the first 15.
    V5,
}

impl KnoxVersion {
    /// How many leading characters of a token its `token_key` holds.
    pub const fn key_length(self) -> usize {
        match self {
            KnoxVersion::V4_1 | KnoxVersion::V4_2 => 8,
            KnoxVersion::V5 => 15,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            KnoxVersion::V4_1 => "4.1",
            KnoxVersion::V4_2 => "4.2",
            KnoxVersion::V5 => "5",
        }
    }
}

/// The hash django-rest-knox was configured with (`SECURE_HASH_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnoxHash {
    /// SHA-512, knox's default.
    Sha512,
    /// SHA-384.
    Sha384,
    /// SHA-256.
    Sha256,
}

impl KnoxHash {
    /// Its name in a scheme (`sha512`).
    pub const fn name(self) -> &'static str {
        match self {
            KnoxHash::Sha512 => "sha512",
            KnoxHash::Sha384 => "sha384",
            KnoxHash::Sha256 => "sha256",
        }
    }

    /// The length of its hex digest.
    pub const fn hex_len(self) -> usize {
        match self {
            KnoxHash::Sha512 => 128,
            KnoxHash::Sha384 => 96,
            KnoxHash::Sha256 => 64,
        }
    }
}

impl FromStr for KnoxHash {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha512" => Ok(KnoxHash::Sha512),
            "sha384" => Ok(KnoxHash::Sha384),
            "sha256" => Ok(KnoxHash::Sha256),
            other => Err(UnknownScheme(other.to_owned())),
        }
    }
}

/// How a token row's digest was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenDigest {
    /// The SHA-256 of the token string, looked up directly (tokenauth's own).
    Sha256,
    /// A django-rest-knox digest (`legacy_digest`, lowercase hex), found by its `legacy_key`.
    Knox {
        /// The version that made it.
        version: KnoxVersion,
        /// The hash it used.
        hash: KnoxHash,
    },
}

impl fmt::Display for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenDigest::Sha256 => f.write_str("sha256"),
            TokenDigest::Knox { version, hash } => write!(f, "knox-{}-{}", version.name(), hash.name()),
        }
    }
}

impl FromStr for TokenDigest {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "sha256" {
            return Ok(TokenDigest::Sha256);
        }
        let unknown = || UnknownScheme(s.to_owned());
        let rest = s.strip_prefix("knox-").ok_or_else(unknown)?;
        let (version, hash) = rest.rsplit_once('-').ok_or_else(unknown)?;
        let version = match version {
            "4.1" => KnoxVersion::V4_1,
            "4.2" => KnoxVersion::V4_2,
            "5" => KnoxVersion::V5,
            _ => return Err(unknown()),
        };
        Ok(TokenDigest::Knox { version, hash: hash.parse().map_err(|_| unknown())? })
    }
}

/// A token row whose digest is a legacy one, as the check path needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacyToken {
    /// The row id.
    pub id: uuid::Uuid,
    /// How its digest was made.
    pub scheme: TokenDigest,
    /// The legacy digest, lowercase hex.
    pub digest: String,
    /// knox 4.1's salt, lowercase hex.
    pub salt: Option<String>,
}

impl fmt::Debug for LegacyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyToken").field("id", &self.id).field("scheme", &self.scheme).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_round_trip() {
        for s in [
            PasswordScheme::Native,
            PasswordScheme::Django,
            PasswordScheme::Szurubooru { revision: 1, pepper: None },
            PasswordScheme::Szurubooru { revision: 2, pepper: Some("szuru".into()) },
            PasswordScheme::Szurubooru { revision: 3, pepper: Some("szuru".into()) },
            PasswordScheme::WebitelHa1,
            PasswordScheme::Bcrypt { pepper: None },
            PasswordScheme::Bcrypt { pepper: Some("devise".into()) },
            PasswordScheme::Unusable,
        ] {
            assert_eq!(s.to_string().parse::<PasswordScheme>(), Ok(s.clone()), "{s}");
            assert_eq!(PasswordScheme::from_stored(s.stored().as_deref()), Ok(s));
        }
        for bad in ["", "md5", "szurubooru-2", "szurubooru-1:x", "bcrypt:", "argon2:x", "django:p"] {
            assert!(bad.parse::<PasswordScheme>().is_err(), "{bad}");
        }
        for d in [
            TokenDigest::Sha256,
            TokenDigest::Knox { version: KnoxVersion::V4_1, hash: KnoxHash::Sha512 },
            TokenDigest::Knox { version: KnoxVersion::V4_2, hash: KnoxHash::Sha256 },
            TokenDigest::Knox { version: KnoxVersion::V5, hash: KnoxHash::Sha384 },
        ] {
            assert_eq!(d.to_string().parse::<TokenDigest>(), Ok(d.clone()), "{d}");
        }
        for bad in ["knox", "knox-4.2", "knox-4.3-sha512", "knox-5-md5", "sha512"] {
            assert!(bad.parse::<TokenDigest>().is_err(), "{bad}");
        }
    }
}
