//! What every HTTP surface shares (the four dialects, `/verify`, the web page): the error
//! shape each renders `Error` in, the error type handlers return, the per-mount layer stack
//! that renders errors raised outside handlers in the same shape, and the credential parsers.
//!
//! Policy: a handler returns `Result<_, ShapedError<S>>` and `?` converts any `Error`; nothing
//! leaves a mount in another surface's shape or as a bare status.

mod credentials;

use std::marker::PhantomData;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub(crate) use self::credentials::{basic_credentials, scheme_credentials};
use crate::config::HttpConfig;
use crate::error::Error;
use crate::middleware::error_log::LoggedError;
use crate::state::AppState;

/// How a surface (a dialect, `/verify`, the web page) says what went wrong: its status codes,
/// headers and bodies.
pub trait ErrorShape: Send + Sync + 'static {
    /// The surface's name, for configuration messages (`the knox and usertoken dialects both
    /// serve ...`).
    const NAME: &'static str;
    /// The documented status, headers and body for `err`.
    fn error_response(err: &Error) -> Response;
}

/// An `Error` on its way out through dialect `D`. Handlers return `Result<_, ShapedError<D>>`
/// and `?` converts any `Error`.
pub struct ShapedError<D>(pub Error, PhantomData<fn() -> D>);

impl<D> From<Error> for ShapedError<D> {
    fn from(err: Error) -> Self {
        ShapedError(err, PhantomData)
    }
}

impl<D> std::fmt::Debug for ShapedError<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Marks a response already rendered by a dialect, so the outside-error layer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rendered;

impl<D: ErrorShape> IntoResponse for ShapedError<D> {
    fn into_response(self) -> Response {
        let mut resp = D::error_response(&self.0);
        if let Some(after) = self.0.retry_after() {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        resp.extensions_mut().insert(Rendered);
        resp.extensions_mut().insert(LoggedError(Arc::new(self.0)));
        resp
    }
}

/// The status and message of the errors that the dialects with a one-message error shape
/// (webitel's `info`, the dialer's `error`) word alike: the request's shape, routing and
/// capacity. `None` for the errors each dialect words its own way.
pub(crate) fn plain_message(err: &Error) -> Option<(StatusCode, String)> {
    Some(match err {
        Error::MalformedJson(msg) => (StatusCode::BAD_REQUEST, format!("Invalid JSON: {msg}")),
        Error::NotAnObject(_) => (StatusCode::BAD_REQUEST, "Request body must be a JSON object".into()),
        Error::Invalid(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
        Error::UnsupportedMediaType(ct) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Unsupported media type {ct:?}: send application/json"))
        }
        Error::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large".into()),
        Error::TokenLimit => (StatusCode::FORBIDDEN, "Too many tokens".into()),
        Error::NotFound => (StatusCode::NOT_FOUND, "Not found".into()),
        Error::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, format!("Method {m} not allowed")),
        Error::Throttled { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many login attempts, try again in {} seconds", retry_after.as_secs()),
        ),
        Error::Overloaded { .. } | Error::Unavailable | Error::Timeout => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable, try again later".into())
        }
        _ => return None,
    })
}

/// A JSON response with an explicit status.
pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// RFC 3339 in UTC (`2030-01-02T03:04:05.123456Z`), as the dialects print times.
pub(crate) fn rfc3339(t: OffsetDateTime) -> Result<String, Error> {
    t.format(&Rfc3339).map_err(|e| Error::Internal(format!("cannot format {t}: {e}")))
}

/// A dialect's router ready to mount: its routes wrapped in its own error-rendering stack.
pub(crate) struct Mount {
    /// Dialect name, for messages.
    pub(crate) name: &'static str,
    /// Where it is mounted (`/` for the root).
    pub(crate) prefix: String,
    /// Its paths relative to the prefix, for the overlap check.
    pub(crate) paths: &'static [&'static str],
    /// The wrapped routes.
    pub(crate) router: Router<AppState>,
    /// Its rendered 404, used as the fallback when it owns its prefix alone.
    pub(crate) not_found: fn() -> Response,
}

impl Mount {
    /// Wrap `routes` of dialect `D` in the per-dialect stack. Layers, outermost first:
    /// render-outside-errors, catch panics, timeout, body limit.
    pub(crate) fn new<D: ErrorShape>(
        prefix: &str,
        paths: &'static [&'static str],
        routes: Router<AppState>,
        http: &HttpConfig,
    ) -> Self {
        let router = routes
            .layer(RequestBodyLimitLayer::new(http.body_limit))
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, http.request_timeout))
            .layer(CatchPanicLayer::new())
            .layer(middleware::from_fn(render_outside_errors::<D>));
        Mount {
            name: D::NAME,
            prefix: if prefix.is_empty() { "/".to_owned() } else { prefix.to_owned() },
            paths,
            router,
            not_found: || ShapedError::<D>::from(Error::NotFound).into_response(),
        }
    }
}

/// Render in `D`'s shape what was produced outside its handlers: axum's 404/405, the body
/// limit's 413, the timeout's 408 (sent as 503), a caught panic's 500.
async fn render_outside_errors<D: ErrorShape>(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let resp = next.run(req).await;
    if resp.extensions().get::<Rendered>().is_some() {
        return resp;
    }
    let err = match resp.status() {
        StatusCode::NOT_FOUND => Error::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Error::MethodNotAllowed(method),
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::REQUEST_TIMEOUT => Error::Timeout,
        s if s.is_server_error() => Error::Internal(format!("unrendered {s} from a layer (a panic?)")),
        _ => return resp,
    };
    let allow = resp.headers().get(header::ALLOW).cloned();
    let mut out = ShapedError::<D>::from(err).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

/// Marks the request body of `POST <path>` optional: an empty body is accepted, while a body
/// that is sent must fit the schema. why: utoipa makes a body optional only for an `Option<T>`
/// content, and then also admits JSON `null`, which the handlers refuse.
pub(crate) struct OptionalBody(pub(crate) &'static str);

impl utoipa::Modify for OptionalBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let op = openapi.paths.paths.get_mut(self.0).and_then(|item| item.post.as_mut());
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}
