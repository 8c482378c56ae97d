//! Parsing credentials out of the `Authorization` header, shared by the dialects.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

use crate::error::{AuthFailure, CredentialFailure, Malformation};

/// The value of `Authorization: <scheme> <value>`, scheme compared case-insensitively.
///
/// No header, or another scheme: `Missing` (so a client using another scheme for another
/// service is told nothing was presented). The scheme alone: `Malformed(Empty)`. More than one
/// word after it: `Malformed(ContainsSpaces)`. Not visible ASCII: `Malformed(InvalidCharacters)`.
pub(crate) fn scheme_credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Result<&'h str, AuthFailure> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure::Missing);
    };
    // why raw bytes first: a header of another scheme is "not provided", whatever its bytes.
    let first = raw.as_bytes().split(u8::is_ascii_whitespace).find(|w| !w.is_empty());
    if !first.is_some_and(|w| w.eq_ignore_ascii_case(scheme.as_bytes())) {
        return Err(AuthFailure::Missing);
    }
    let Ok(value) = raw.to_str() else {
        return Err(AuthFailure::Malformed(Malformation::InvalidCharacters));
    };
    let mut words = value.split_ascii_whitespace();
    words.next();
    let Some(token) = words.next() else {
        return Err(AuthFailure::Malformed(Malformation::Empty));
    };
    if words.next().is_some() {
        return Err(AuthFailure::Malformed(Malformation::ContainsSpaces));
    }
    Ok(token)
}

/// `Authorization: Basic base64(username:password)`.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Result<(String, SecretString), CredentialFailure> {
    let encoded = match scheme_credentials(headers, "Basic") {
        Ok(v) => v,
        Err(AuthFailure::Missing) => return Err(CredentialFailure::Missing),
        Err(_) => return Err(CredentialFailure::Malformed),
    };
    let decoded = STANDARD.decode(encoded).map_err(|_| CredentialFailure::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| CredentialFailure::Malformed)?;
    let (user, password) = text.split_once(':').ok_or(CredentialFailure::Malformed)?;
    Ok((user.to_owned(), SecretString::from(password)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use secrecy::ExposeSecret;

    fn auth(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn scheme_values() {
        assert_eq!(scheme_credentials(&HeaderMap::new(), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"Bearer abc"), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"token abc"), "Token"), Ok("abc"));
        assert_eq!(scheme_credentials(&auth(b"TOKEN  abc "), "Token"), Ok("abc"));
        assert_eq!(scheme_credentials(&auth(b"Token"), "Token"), Err(AuthFailure::Malformed(Malformation::Empty)));
        assert_eq!(
            scheme_credentials(&auth(b"Token a b"), "Token"),
            Err(AuthFailure::Malformed(Malformation::ContainsSpaces))
        );
        assert_eq!(
            scheme_credentials(&auth(b"Token \xff\xfe"), "Token"),
            Err(AuthFailure::Malformed(Malformation::InvalidCharacters))
        );
        assert_eq!(scheme_credentials(&auth(b"Bearer \xff\xfe"), "Token"), Err(AuthFailure::Missing));
        assert_eq!(scheme_credentials(&auth(b"Tokenx abc"), "Token"), Err(AuthFailure::Missing));
    }

    #[test]
    fn basic_values() {
        let (u, p) = basic_credentials(&auth(b"Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z")).unwrap();
        assert_eq!(u, "alice");
        assert_eq!(p.expose_secret(), "s3cr3t:with:colons");
        assert_eq!(basic_credentials(&HeaderMap::new()).unwrap_err(), CredentialFailure::Missing);
        assert_eq!(basic_credentials(&auth(b"Bearer x")).unwrap_err(), CredentialFailure::Missing);
        assert_eq!(basic_credentials(&auth(b"Basic")).unwrap_err(), CredentialFailure::Malformed);
        assert_eq!(basic_credentials(&auth(b"Basic !!!")).unwrap_err(), CredentialFailure::Malformed);
        // base64("nocolon")
        assert_eq!(basic_credentials(&auth(b"Basic bm9jb2xvbg==")).unwrap_err(), CredentialFailure::Malformed);
        // base64 of invalid UTF-8 bytes ff fe 3a 61
        assert_eq!(basic_credentials(&auth(b"Basic //46YQ==")).unwrap_err(), CredentialFailure::Malformed);
    }
}
