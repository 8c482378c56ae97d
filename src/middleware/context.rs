//! The outermost layer: what every request gets before anything else sees it, in one pass.
//!
//! 1. Counted and timed by matched route into `/metrics` (`metrics.rs` has the labels).
//! 2. Its `X-Request-Id` kept if acceptable, or replaced by a fresh id (`request_id.rs`).
//! 3. Its client address resolved through the trusted proxies (`client_ip`).
//!
//! why one hand-written layer rather than one `from_fn` each (as it was): each `from_fn`
//! boxes a future and clones the whole stack inside it on every request, and three of them
//! nested did that three times over; issue 15's profile of a cached token check put the
//! clones, drops and boxes of those layers at several percent of the request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::client_ip::{self, TrustedProxies};
use super::metrics::{intern, method_label};
use super::request_id::{self, RequestIds};
use crate::token::TokenService;

/// The layer: the service whose metrics count the requests, and the trusted proxies.
#[derive(Clone)]
pub struct RequestContextLayer {
    tokens: Arc<TokenService>,
    trusted: TrustedProxies,
    ids: RequestIds,
}

impl RequestContextLayer {
    /// Count into `tokens`' metrics; believe forwarded addresses from `trusted` only.
    pub fn new(tokens: Arc<TokenService>, trusted: TrustedProxies) -> Self {
        RequestContextLayer { tokens, trusted, ids: RequestIds::default() }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext { inner, layer: self.clone() }
    }
}

/// The service of `RequestContextLayer`.
#[derive(Clone)]
pub struct RequestContext<S> {
    inner: S,
    layer: RequestContextLayer,
}

impl<S, B> Service<Request> for RequestContext<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(req.method());
        let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| intern(m.as_str()));
        request_id::ensure(req.headers_mut(), &self.layer.ids);
        client_ip::annotate(&mut req, &self.layer.trusted);
        Counted { inner: self.inner.call(req), tokens: Arc::clone(&self.layer.tokens), method, route, started }
    }
}

pin_project! {
    /// The inner service's response, counted when it is ready.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        tokens: Arc<TokenService>,
        method: &'static str,
        route: &'static str,
        started: Instant,
    }
}

impl<F, B> Future for Counted<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = std::task::ready!(this.inner.poll(cx));
        let seconds = this.started.elapsed().as_secs_f64();
        this.tokens.metrics().observe_http(this.method, this.route, resp.status(), seconds);
        Poll::Ready(Ok(resp))
    }
}
