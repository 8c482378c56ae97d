//! The access log: one span per request with method, matched route, path, redacted query,
//! request id and client IP, and one line per response with its status and `latency_ms`, a
//! number with fractions (tower-http `TraceLayer`; the README lists every field).
//!
//! Policy: no header and no body is ever logged. The query string is logged with the values
//! of credential-bearing parameters replaced (`?token=`, `access_token`, `x_key`, ...), since
//! some clients put tokens there.

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::Request;
use std::time::Duration;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};

use tower_http::trace::{OnResponse, TraceLayer};
use tracing::Span;

use super::client_ip::ClientIp;
use super::request_id::X_REQUEST_ID;

/// Query parameters whose values are secrets (compared case-insensitively, after decoding).
const SECRET_PARAMS: &[&str] =
    &["token", "access_token", "x_key", "key", "password", "pass", "secret", "api_key", "apikey"];

/// why 256: enough to read a path, not enough for a client to flood the log through it.
const MAX_LOGGED_CHARS: usize = 256;

/// The access-log layer's type: our span maker, the default response line, nothing else.
pub type AccessLog =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, fn(&Request<Body>) -> Span, (), ResponseLine, (), (), ()>;

/// The configured `TraceLayer`; with `enabled` false (`http.access_log`), it makes no span and
/// writes no line.
pub fn layer(enabled: bool) -> AccessLog {
    let span: fn(&Request<Body>) -> Span = if enabled { make_span } else { |_| Span::none() };
    TraceLayer::new_for_http()
        .make_span_with(span)
        .on_request(())
        .on_response(ResponseLine { enabled })
        .on_body_chunk(())
        .on_eos(())
        // why: 5xx are logged once, with their cause, by the error-log layer.
        .on_failure(())
}

/// The response line, at INFO, inside the request's span.
///
/// why not tower-http's `DefaultOnResponse`: it writes the latency as a string in whole
/// units (`"0 ms"` for a cached check); shippers want a number, and a fraction of a
/// millisecond is most of what a check costs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseLine {
    enabled: bool,
}

impl<B> OnResponse<B> for ResponseLine {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, _span: &Span) {
        if !self.enabled {
            return;
        }
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1e3,
            "finished processing request"
        );
    }
}

fn make_span(req: &Request<Body>) -> Span {
    let request_id = req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let client_ip = req.extensions().get::<ClientIp>().map(|c| c.0);
    // why the template: it groups requests by endpoint without the path's variable parts.
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        path = %truncate(req.uri().path()),
        query = tracing::field::Empty,
        request_id = %request_id,
        // why an Option: a request without an address (a misassembled server) leaves the
        // field out, and an address is displayed with no string made for the span first.
        client_ip = client_ip.map(tracing::field::display),
    );
    if let Some(query) = req.uri().query().filter(|q| !q.is_empty()) {
        span.record("query", tracing::field::display(redact_query(query)));
    }
    span
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The query string with the values of secret parameters replaced by `REDACTED`.
pub fn redact_query(query: &str) -> String {
    let redacted: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let key: String = url::form_urlencoded::parse(raw_key.as_bytes()).map(|(k, _)| k.into_owned()).collect();
            if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) {
                format!("{raw_key}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    truncate(&redacted.join("&")).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_queries_are_redacted() {
        assert_eq!(redact_query(""), "");
        assert_eq!(redact_query("a=1&token=abc&b=2"), "a=1&token=REDACTED&b=2");
        assert_eq!(redact_query("ACCESS_TOKEN=x&x_key=y"), "ACCESS_TOKEN=REDACTED&x_key=REDACTED");
        assert_eq!(redact_query("access%5Ftoken=x"), "access%5Ftoken=REDACTED");
        assert_eq!(redact_query("token"), "token=REDACTED");
        assert_eq!(redact_query("page=2"), "page=2");
    }
}
