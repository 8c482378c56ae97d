//! Request ids: an incoming `X-Request-Id` is kept only if it is short and made of
//! `[A-Za-z0-9._-]`; otherwise it is dropped and a fresh UUID is set by tower-http's
//! `SetRequestIdLayer`. Why: the id is copied into every log line of the request, so a client
//! must not be able to inject newlines, fake fields or megabytes into the logs through it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

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

/// Layer (`map_request`): drop an unacceptable or repeated `X-Request-Id`.
pub async fn sanitize(mut req: Request) -> Request {
    let values = req.headers().get_all(&X_REQUEST_ID);
    let mut iter = values.iter();
    let keep = match (iter.next(), iter.next()) {
        (Some(v), None) => acceptable(v),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
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
}
