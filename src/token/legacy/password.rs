//! Legacy password hashes: checked (syntax and cost bounds) at import, verified at login.
//!
//! Policy:
//! - Each scheme is verified with its own parameters, as the system that made it did, and
//!   every comparison of a computed hash with a stored one is constant-time.
//! - Costs are bounded at import, as Ory Kratos bounds imported hashes: iteration counts,
//!   memory and bcrypt costs past the limits below are refused, so no imported account can make
//!   one login take seconds or gigabytes. The check runs again at login (a hash written into
//!   the database by hand gets no free pass).
//! - A hash this module does not understand is refused with its scheme named, never imported
//!   as an unusable password.

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, Params};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::model::PasswordScheme;

/// why 2,000,000: twice Django 5.2's default (1,000,000 PBKDF2-SHA256 rounds, a few hundred
/// milliseconds); more would let one login hold a hashing worker for seconds.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;
/// why 256 MiB: Django's argon2 default is 100 MiB (libsodium's moderate limit is 256 MiB);
/// with one hash per worker, more could exhaust memory under a login flood.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// why 10 passes: Django uses 2, libsodium's sensitive limit 4.
pub const MAX_ARGON2_PASSES: u32 = 10;
/// why 768 MiB·passes (memory times passes, the work of one hash): libsodium's moderate limit
/// (256 MiB, 3 passes); Django's default is 200, szurubooru's (libsodium interactive) 128.
pub const MAX_ARGON2_WORK_KIB: u64 = 3 * 256 * 1024;
/// why 16 lanes: Django uses 8.
pub const MAX_ARGON2_LANES: u32 = 16;
/// why 14: cost 12 (Django's and Devise's default) takes about a quarter of a second; each
/// step doubles it, so 14 is about a second.
pub const MAX_BCRYPT_COST: u32 = 14;
/// why 256 MiB (128 · N · r bytes, and 128 · r · p): Django's scrypt default takes 16 MiB.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// why 16: Django uses 1.
pub const MAX_SCRYPT_PARALLELISM: u32 = 16;
/// why 2^21 (N · r · p, the work of one hash): 16 times Django's default (2^14 · 8 · 1).
pub const MAX_SCRYPT_WORK: u64 = 1 << 21;

/// Why a legacy hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{scheme} hash refused: {why}")]
pub struct Refused {
    /// The scheme (for Django, the algorithm inside the string).
    pub scheme: String,
    /// What is wrong, never quoting the hash.
    pub why: String,
}

fn refused(scheme: &str, why: impl Into<String>) -> Refused {
    Refused { scheme: scheme.to_owned(), why: why.into() }
}

/// A legacy hash, parsed: what verifying it needs.
enum Parsed<'a> {
    /// PBKDF2 over HMAC-SHA256 or HMAC-SHA1.
    Pbkdf2 { sha1: bool, iterations: u32, salt: &'a str, hash: Vec<u8> },
    /// An argon2 PHC string (Django's after its `argon2` prefix, libsodium's, an imported one).
    Argon2(PasswordHash<'a>),
    /// bcrypt, of the password itself or (Django's `bcrypt_sha256`) of its hex SHA-256.
    Bcrypt { hash: &'a str, sha256_first: bool },
    /// scrypt (Django's: a 64-byte key).
    Scrypt { params: scrypt::Params, salt: &'a str, hash: Vec<u8> },
    /// Hex of a fast digest of `salt + password` (Django's md5/sha1, salted or not).
    SaltedDigest { sha1: bool, salt: &'a str, hex: String },
    /// szurubooru revisions 1 and 2: hex of `sha1("1A2/$_4xVa" + salt + password)` or of
    /// `sha256(secret + salt + password)`.
    Szurubooru { revision: u8, salt: String, hex: String },
    /// szurubooru revision 3: libsodium argon2id of `secret + salt + password`.
    SzurubooruArgon2 { salt: String, hash: PasswordHash<'a> },
    /// hex `md5("user:domain:password")`.
    Ha1(String),
    /// No password.
    Unusable,
}

/// Check a legacy hash's syntax and cost bounds (at import, and again at login).
pub fn check(scheme: &PasswordScheme, encoded: &str) -> Result<(), Refused> {
    parse(scheme, encoded).map(drop)
}

/// Whether `password` matches the legacy hash `encoded` of `scheme`, for the principal named
/// `name` (Webitel's HA1 includes it), with the scheme's pepper if it has one.
pub fn verify(
    scheme: &PasswordScheme,
    encoded: &str,
    name: &str,
    password: &[u8],
    pepper: Option<&[u8]>,
) -> Result<bool, Refused> {
    let parsed = parse(scheme, encoded)?;
    let pepper = || pepper.ok_or_else(|| refused(&scheme.to_string(), "its pepper is not configured"));
    Ok(match parsed {
        Parsed::Pbkdf2 { sha1, iterations, salt, hash } => {
            let mut out = vec![0u8; hash.len()];
            if sha1 {
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), iterations, &mut out);
            } else {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), iterations, &mut out);
            }
            bool::from(out.ct_eq(&hash))
        }
        Parsed::Argon2(hash) => argon2_verify(password, &hash),
        Parsed::Bcrypt { hash, sha256_first } => {
            let hex_digest;
            let input = if sha256_first {
                hex_digest = hex::encode(Sha256::digest(password));
                hex_digest.as_bytes()
            } else {
                password
            };
            bcrypt_verify(input, pepper_for(scheme, pepper)?, hash)?
        }
        Parsed::Scrypt { params, salt, hash } => {
            let mut out = vec![0u8; hash.len()];
            scrypt::scrypt(password, salt.as_bytes(), &params, &mut out)
                .map_err(|e| refused("scrypt", format!("cannot compute: {e}")))?;
            bool::from(out.ct_eq(&hash))
        }
        Parsed::SaltedDigest { sha1, salt, hex } => {
            let computed = if sha1 {
                hex::encode(Sha1::new().chain_update(salt).chain_update(password).finalize())
            } else {
                hex::encode(Md5::new().chain_update(salt).chain_update(password).finalize())
            };
            bool::from(computed.as_bytes().ct_eq(hex.as_bytes()))
        }
        Parsed::Szurubooru { revision, salt, hex } => {
            let computed = if revision == 1 {
                hex::encode(
                    Sha1::new().chain_update(b"1A2/$_4xVa").chain_update(&salt).chain_update(password).finalize(),
                )
            } else {
                hex::encode(Sha256::new().chain_update(pepper()?).chain_update(&salt).chain_update(password).finalize())
            };
            bool::from(computed.as_bytes().ct_eq(hex.as_bytes()))
        }
        Parsed::SzurubooruArgon2 { salt, hash } => {
            let input = [pepper()?, salt.as_bytes(), password].concat();
            argon2_verify(&input, &hash)
        }
        Parsed::Ha1(hex) => {
            // why replacen: Webitel computes `login.replace('@', ':')`, which in JavaScript
            // replaces the first `@` only.
            let realm = name.replacen('@', ":", 1);
            let computed =
                hex::encode(Md5::new().chain_update(realm).chain_update(b":").chain_update(password).finalize());
            bool::from(computed.as_bytes().ct_eq(hex.as_bytes()))
        }
        Parsed::Unusable => false,
    })
}

/// Verify an argon2 PHC string with its own algorithm, version and parameters. why the
/// version 0x10 default: old strings carry no `v=`, and argon2-cffi (hence Django) reads them as
/// version 0x10; the argon2 crate would assume 0x13.
pub fn argon2_verify(password: &[u8], hash: &PasswordHash<'_>) -> bool {
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm) else { return false };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::V0x10,
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(hash), hash.salt, hash.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut computed = vec![0u8; expected.len()];
    if Argon2::new(algorithm, version, params).hash_password_into(password, salt, &mut computed).is_err() {
        return false;
    }
    bool::from(computed.as_slice().ct_eq(expected.as_bytes()))
}

/// The pepper a bcrypt hash takes (Devise's), or none.
fn pepper_for<'p>(
    scheme: &PasswordScheme,
    pepper: impl FnOnce() -> Result<&'p [u8], Refused>,
) -> Result<&'p [u8], Refused> {
    match scheme {
        PasswordScheme::Bcrypt { pepper: Some(_) } => pepper(),
        _ => Ok(&[]),
    }
}

fn bcrypt_verify(password: &[u8], pepper: &[u8], hash: &str) -> Result<bool, Refused> {
    let input = [password, pepper].concat();
    // why truncate: bcrypt reads at most 72 bytes; the systems that made these hashes (Ruby's
    // and Python's bcrypt before 5.0) cut longer input there, so must we.
    let input = &input[..input.len().min(72)];
    bcrypt::verify(input, hash).map_err(|e| refused("bcrypt", format!("cannot verify: {e}")))
}

fn parse<'a>(scheme: &PasswordScheme, encoded: &'a str) -> Result<Parsed<'a>, Refused> {
    match scheme {
        PasswordScheme::Native => Ok(Parsed::Argon2(argon2_phc("argon2", encoded)?)),
        PasswordScheme::Django => django(encoded),
        PasswordScheme::Szurubooru { revision, pepper } => szurubooru(*revision, pepper.is_some(), encoded),
        PasswordScheme::WebitelHa1 => Ok(Parsed::Ha1(lower_hex("webitel-ha1", encoded, 32)?)),
        PasswordScheme::Bcrypt { .. } => {
            Ok(Parsed::Bcrypt { hash: bcrypt_hash("bcrypt", encoded)?, sha256_first: false })
        }
        PasswordScheme::Unusable => Ok(Parsed::Unusable),
    }
}

/// A Django `password` field (django.contrib.auth.hashers).
fn django(encoded: &str) -> Result<Parsed<'_>, Refused> {
    if encoded.is_empty() || encoded.starts_with('!') {
        return Ok(Parsed::Unusable);
    }
    // Unsalted MD5 as 32 bare hex digits (Django's oldest form).
    if !encoded.contains('$') {
        return Ok(Parsed::SaltedDigest { sha1: false, salt: "", hex: lower_hex("md5", encoded, 32)? });
    }
    let (algorithm, rest) = encoded.split_once('$').unwrap_or((encoded, ""));
    let parts: Vec<&str> = rest.split('$').collect();
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let [iterations, salt, hash] = parts[..] else {
                return Err(refused(algorithm, "expected pbkdf2_…$<iterations>$<salt>$<hash>"));
            };
            let iterations: u32 =
                iterations.parse().map_err(|_| refused(algorithm, "the iterations are not a number"))?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return Err(refused(algorithm, format!("{iterations} iterations (at most {MAX_PBKDF2_ITERATIONS})")));
            }
            let sha1 = algorithm == "pbkdf2_sha1";
            let hash = STANDARD.decode(hash).map_err(|_| refused(algorithm, "the hash is not base64"))?;
            if hash.len() != if sha1 { 20 } else { 32 } {
                return Err(refused(algorithm, format!("a {}-byte hash", hash.len())));
            }
            check_salt(algorithm, salt)?;
            Ok(Parsed::Pbkdf2 { sha1, iterations, salt, hash })
        }
        "argon2" => Ok(Parsed::Argon2(argon2_phc("argon2", &encoded["argon2".len()..])?)),
        "bcrypt_sha256" | "bcrypt" => {
            Ok(Parsed::Bcrypt { hash: bcrypt_hash(algorithm, rest)?, sha256_first: algorithm == "bcrypt_sha256" })
        }
        "scrypt" => {
            let [n, salt, r, p, hash] = parts[..] else {
                return Err(refused("scrypt", "expected scrypt$<N>$<salt>$<r>$<p>$<hash>"));
            };
            let number = |v: &str| v.parse::<u32>().map_err(|_| refused("scrypt", "a parameter is not a number"));
            let (n, r, p) = (u64::from(number(n)?), number(r)?, number(p)?);
            if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > MAX_SCRYPT_PARALLELISM {
                return Err(refused(
                    "scrypt",
                    format!("N={n}, r={r}, p={p} (N a power of two, p at most {MAX_SCRYPT_PARALLELISM})"),
                ));
            }
            let (r64, p64) = (u64::from(r), u64::from(p));
            if 128 * n * r64 > MAX_SCRYPT_MEMORY || 128 * r64 * p64 > MAX_SCRYPT_MEMORY {
                let mib = MAX_SCRYPT_MEMORY >> 20;
                return Err(refused("scrypt", format!("N={n}, r={r}, p={p} needs more than {mib} MiB")));
            }
            if n * r64 * p64 > MAX_SCRYPT_WORK {
                return Err(refused("scrypt", format!("N={n}, r={r}, p={p}: N·r·p at most {MAX_SCRYPT_WORK}")));
            }
            let hash = STANDARD.decode(hash).map_err(|_| refused("scrypt", "the hash is not base64"))?;
            let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| refused("scrypt", "bad work factor"))?;
            // why here: the parameters scrypt itself refuses (a key length outside 10 to 64
            // bytes, N too large for r) are refused at import, not at every login.
            let params = scrypt::Params::new(log_n, r, p, hash.len())
                .map_err(|e| refused("scrypt", format!("parameters scrypt refuses: {e}")))?;
            check_salt("scrypt", salt)?;
            Ok(Parsed::Scrypt { params, salt, hash })
        }
        "md5" | "sha1" => {
            let [salt, hex] = parts[..] else {
                return Err(refused(algorithm, format!("expected {algorithm}$<salt>$<hex>")));
            };
            let sha1 = algorithm == "sha1";
            let hex = lower_hex(algorithm, hex, if sha1 { 40 } else { 32 })?;
            if !salt.is_empty() {
                check_salt(algorithm, salt)?;
            }
            Ok(Parsed::SaltedDigest { sha1, salt, hex })
        }
        // why the name only when it looks like one: a password column that holds something
        // else (a plaintext password, by mistake) must not be printed.
        other if is_algorithm_name(other) => Err(refused(&format!("django {other}"), "not a hasher tokenauth knows")),
        _ => Err(refused("django", "an unknown algorithm")),
    }
}

fn szurubooru(revision: u8, peppered: bool, encoded: &str) -> Result<Parsed<'_>, Refused> {
    let name = format!("szurubooru-{revision}");
    let (salt, hash) = encoded.split_once('$').ok_or_else(|| refused(&name, "expected <salt>$<hash>"))?;
    let salt = URL_SAFE_NO_PAD.decode(salt).ok().and_then(|s| String::from_utf8(s).ok());
    let salt = salt.ok_or_else(|| refused(&name, "the salt is not base64url UTF-8"))?;
    match (revision, peppered) {
        (1, false) => Ok(Parsed::Szurubooru { revision, salt, hex: lower_hex(&name, hash, 40)? }),
        (2, true) => Ok(Parsed::Szurubooru { revision, salt, hex: lower_hex(&name, hash, 64)? }),
        (3, true) => Ok(Parsed::SzurubooruArgon2 { salt, hash: argon2_phc(&name, hash)? }),
        _ => Err(refused(&name, "revision 1 takes no pepper; 2 and 3 need one")),
    }
}

/// An argon2 PHC string within the bounds.
fn argon2_phc<'a>(scheme: &str, phc: &'a str) -> Result<PasswordHash<'a>, Refused> {
    let hash = PasswordHash::new(phc).map_err(|e| refused(scheme, format!("not an argon2 PHC string: {e}")))?;
    if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(refused(scheme, format!("algorithm {} is not argon2", hash.algorithm)));
    }
    let params = Params::try_from(&hash).map_err(|e| refused(scheme, format!("bad parameters: {e}")))?;
    let work = u64::from(params.m_cost()) * u64::from(params.t_cost());
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_PASSES
        || params.p_cost() > MAX_ARGON2_LANES
        || work > MAX_ARGON2_WORK_KIB
    {
        return Err(refused(
            scheme,
            format!(
                "m={} KiB, t={}, p={} (at most {MAX_ARGON2_MEMORY_KIB} KiB, {MAX_ARGON2_PASSES} passes, \
                 {MAX_ARGON2_LANES} lanes, {MAX_ARGON2_WORK_KIB} KiB·passes)",
                params.m_cost(),
                params.t_cost(),
                params.p_cost()
            ),
        ));
    }
    if hash.hash.is_none() {
        return Err(refused(scheme, "no hash in the PHC string"));
    }
    Ok(hash)
}

/// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`) within the cost bound.
fn bcrypt_hash<'a>(scheme: &str, hash: &'a str) -> Result<&'a str, Refused> {
    let shape = || refused(scheme, "expected $2a$, $2b$ or $2y$, a two-digit cost and 53 characters");
    let rest = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| hash.strip_prefix(p)).ok_or_else(shape)?;
    let (cost, tail) = rest.split_once('$').ok_or_else(shape)?;
    let cost: u32 = cost.parse().map_err(|_| shape())?;
    if cost.to_string().len() > 2
        || tail.len() != 53
        || !tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return Err(shape());
    }
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(refused(scheme, format!("cost {cost} (4 to {MAX_BCRYPT_COST})")));
    }
    Ok(hash)
}

/// Lowercase hex of `len` digits (upper case accepted and folded).
fn lower_hex(scheme: &str, s: &str, len: usize) -> Result<String, Refused> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused(scheme, format!("expected {len} hex digits, got {} characters", s.len())));
    }
    Ok(s.to_ascii_lowercase())
}

fn is_algorithm_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_salt(scheme: &str, salt: &str) -> Result<(), Refused> {
    if salt.is_empty() || salt.len() > 256 || salt.chars().any(char::is_control) {
        return Err(refused(scheme, "the salt is empty, too long or has control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn django(encoded: &str, password: &str) -> bool {
        verify(&PasswordScheme::Django, encoded, "u", password.as_bytes(), None).unwrap()
    }

    /// Hashes made by Django 4.2's own hashers (tests/legacy/make_knox.py), checked here
    /// without a database; the import tests check every scheme end to end.
    #[test]
    fn django_hashes_verify() {
        let cases = [
            ("md5$ADnxn1IrnUjczxBoL0jZ9l$f2cd6725bbcb07313e5107a26830cd00", "erin-pw-5"),
            ("5968287e4bc07008b4a862796f670cd3", "judy-pw-10"),
            ("sha1$$b197934db0395400da9ea810151368c65177998e", "mallory-pw-11"),
            ("sha1$ERG3VBDBNSJpiJFdhM91bd$7f0fa0b562ccb7b548b116249a0c20e48b5a3f8a", "ivan-pw-9"),
            (
                "scrypt$16384$JHKN90CsGa9m42nO6Iz8FC$8$1$JA7Ty92y3bx01c2y1MoS8T8rwWfEz2R8oCBONRSiF5XEbquvTv9GmEFUpOpR5DwzSpWGvUqKvbcwLbUJ8SJK3w==",
                "frank-pw-6",
            ),
            ("bcrypt$$2b$12$xXFoRGL33u.UtehIb0Cks.SwBDfwjeNVbtFrSSTwFx9qJDMYCxg1W", "grace-pw-7"),
            ("bcrypt_sha256$$2b$12$CPYmrJjtxrnRkpIR7Q//euXxQvOEMMyBmAZQkZTNFNfCWskEORrXK", "carol-pw-3"),
        ];
        for (encoded, password) in cases {
            assert!(django(encoded, password), "{encoded}");
            assert!(!django(encoded, &format!("{password}x")), "{encoded} with a wrong password");
        }
        assert!(!django("!e1jpSlJjmMQBvCNO5p7oT6gXjClQBW7fHtbtXJ5b", ""), "unusable");
    }

    #[test]
    fn costs_past_the_bounds_are_refused() {
        let refused = |e: &str| check(&PasswordScheme::Django, e).unwrap_err().to_string();
        assert!(refused("pbkdf2_sha256$2000001$salt$AAAA").contains("2000001 iterations"));
        assert!(refused("pbkdf2_sha256$0$salt$AAAA").contains("0 iterations"));
        assert!(refused("scrypt$1048576$salt$8$1$AAAA").contains("MiB"));
        assert!(refused("scrypt$1000$salt$8$1$AAAA").contains("power of two"));
        assert!(refused("bcrypt$$2b$15$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza").contains("cost 15"));
        assert!(
            refused("argon2$argon2id$v=19$m=262145,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").contains("m=262145")
        );
        assert!(refused("argon2$argon2id$v=19$m=65536,t=11,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").contains("t=11"));
        assert!(refused("unknown$x").contains("django unknown"));
        assert!(refused("md5$salt$abc").contains("32 hex digits"));
        for ok in [
            "pbkdf2_sha256$2000000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "argon2$argon2id$v=19$m=262144,t=2,p=8$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "argon2$argon2i$m=512,t=2,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "!unusable",
        ] {
            check(&PasswordScheme::Django, ok).unwrap();
        }
        let ha1 = check(&PasswordScheme::WebitelHa1, "B4B4395E1BF61B6AE69C6964CE709D71");
        assert!(ha1.is_ok(), "upper-case hex is folded");
        assert!(check(&PasswordScheme::WebitelHa1, "b4b4").is_err());
        assert!(check(&PasswordScheme::Szurubooru { revision: 2, pepper: None }, "c2FsdA$00").is_err());
    }

    #[test]
    fn webitel_ha1_and_szurubooru_verify() {
        // md5("100:mydomain.com:secret-100"), as tests/legacy/make_webitel.py writes it.
        let ha1 = "b4b4395e1bf61b6ae69c6964ce709d71";
        assert!(verify(&PasswordScheme::WebitelHa1, ha1, "100@mydomain.com", b"secret-100", None).unwrap());
        assert!(!verify(&PasswordScheme::WebitelHa1, ha1, "100@mydomain.com", b"secret-101", None).unwrap());
        assert!(!verify(&PasswordScheme::WebitelHa1, ha1, "101@mydomain.com", b"secret-100", None).unwrap());
        // Revision 1: sha1("1A2/$_4xVa" + salt + password), salt "ze4ko11ibo", as szurubooru.
        let encoded = format!("{}$4276117486bcd9d34f7d04bac5210ab8e770b304", URL_SAFE_NO_PAD.encode("ze4ko11ibo"));
        let scheme = PasswordScheme::Szurubooru { revision: 1, pepper: None };
        assert!(verify(&scheme, &encoded, "ann", b"ann-old-sha1", None).unwrap());
        assert!(!verify(&scheme, &encoded, "ann", b"ann-old-sha2", None).unwrap());
        let peppered = PasswordScheme::Szurubooru { revision: 2, pepper: Some("s".into()) };
        let missing = verify(&peppered, &format!("c2FsdA${}", "0".repeat(64)), "ben", b"pw", None).unwrap_err();
        assert!(missing.to_string().contains("pepper is not configured"), "{missing}");
    }
}
