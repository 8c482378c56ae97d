//! Request ids: an incoming `X-Request-Id` is kept only if it is short and made of
//! `[A-Za-z0-9._-]`; otherwise it is dropped and a fresh UUID, made by `RequestIds`, is set
//! (by `context.rs`; tower-http's `PropagateRequestIdLayer` copies it to the response).
//! Why: the id is copied into every log line of the request, so a client must not be able to
//! inject newlines, fake fields or megabytes into the logs through it.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// why 64: a UUID is 36, a W3C trace id 32; anything longer is not an id.
const MAX_LEN: usize = 64;

fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Makes request ids: UUIDs (version 4 in form) whose first half is random per process and
/// whose second half counts. why not a random UUID each time: that is a `getrandom` system
/// call per request; an id needs to be unique (per process by the counter, across replicas by
/// the random half), not unguessable: it is no secret and grants nothing.
#[derive(Debug, Clone)]
pub struct RequestIds {
    prefix: [u8; 8],
    counter: std::sync::Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let random = uuid::Uuid::new_v4();
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&random.as_bytes()[..8]);
        RequestIds { prefix, counter: std::sync::Arc::new(AtomicU64::new(0)) }
    }
}

impl RequestIds {
    fn next(&self) -> uuid::Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.prefix);
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        // why from_random_bytes: it sets the version and variant bits (in the random half's
        // byte 6 and the counter's top byte, which a count below 2^62 never reaches).
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A fresh id, as a header value.
    fn header_value(&self) -> HeaderValue {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = self.next().hyphenated().encode_lower(&mut buf);
        // why no failure: a hyphenated UUID is plain ASCII.
        HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// Keep a single acceptable `X-Request-Id`; otherwise (none, an unacceptable one, several)
/// set a fresh one from `ids`.
pub(crate) fn ensure(headers: &mut HeaderMap, ids: &RequestIds) {
    let values = headers.get_all(&X_REQUEST_ID);
    let mut iter = values.iter();
    if let (Some(v), None) = (iter.next(), iter.next())
        && acceptable(v)
    {
        return;
    }
    headers.insert(&X_REQUEST_ID, ids.header_value());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_X.y")));
        assert!(acceptable(&HeaderValue::from_static("7db2665d-1e59-4f80-b65c-2372f32d678d")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("a b")));
        assert!(!acceptable(&HeaderValue::from_static("a\"b")));
        assert!(!acceptable(&HeaderValue::from_str(&"a".repeat(65)).unwrap()));
    }

    #[test]
    fn made_ids_are_acceptable_distinct_uuids() {
        let ids = RequestIds::default();
        let other = RequestIds::default();
        let made: Vec<String> = (0..1000).map(|_| ids.header_value().to_str().unwrap().to_owned()).collect();
        let distinct: std::collections::BTreeSet<&String> = made.iter().collect();
        assert_eq!(distinct.len(), made.len());
        for id in &made {
            assert!(acceptable(&HeaderValue::from_str(id).unwrap()), "{id}");
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        assert_ne!(ids.prefix, other.prefix, "another process (or replica) has another random half");
    }
}
