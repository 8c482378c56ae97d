//! The server: bind, serve until told to stop, then shut down gracefully.
//!
//! `Server::bind` is separate from `run` so tests bind port 0 and read the address; `run`
//! takes the shutdown future as a parameter. On shutdown, in-flight requests may finish for
//! up to `http.shutdown_grace`; then queued touches are flushed and the pool is closed.
//!
//! Policy: a client whose connect succeeded gets its answer. On shutdown the listener first
//! takes every connection already in the kernel's accept queue (closing a listener resets
//! those, and their clients have sent their requests), then closes, so later clients are
//! refused; connections that have not sent their first bytes yet get a moment to do so
//! (hyper-util drops a connection told to shut down while it still reads its first bytes to
//! tell HTTP/1 from HTTP/2, which resets a request arriving just then); then every connection
//! is shut down gracefully: idle keep-alive ones are closed, busy ones finish their request
//! and close.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::app::{self, AppState};
use crate::config::Config;
use crate::config::{CacheConfig, InvalidationMode};
use crate::store::{Listen, Store, StoreError, Subscription};
use crate::token::TokenService;
use crate::token::clock::{Clock, SystemClock};

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// `/metrics` on its own address, when `metrics_bind` is set.
    metrics: Option<(TcpListener, Router)>,
    router: Router,
    state: AppState,
    store: Arc<dyn Store>,
    /// Invalidations from other processes: `None` where nothing is heard (`staleness`), or
    /// nothing can be as configured.
    invalidations: Option<Listener>,
}

/// The invalidation subscription, connected at bind or still to be (re)connected.
enum Listener {
    Connected(Box<dyn Subscription>),
    Retrying,
}

/// What trying to hear the revocations other processes make gave (`cache.invalidation`).
enum Hearing {
    /// Listening (LISTEN, or the polled table).
    Listening(Box<dyn Subscription>),
    /// Nothing to listen to, by choice or by fallback: cached checks are trusted for
    /// `max_staleness`, with the cache on.
    Staleness,
    /// The configured way cannot work here (`notify` where there is no LISTEN): the cache
    /// stays off for good.
    Never,
    /// Not yet: the database did not answer; try again.
    NotYet(StoreError),
}

/// Try to hear revocations the way `cache.invalidation` says.
///
/// Policy: `auto` listens where the database can push (LISTEN/NOTIFY), and otherwise says so
/// in one log line and polls the invalidations table, or, with polling off, trusts cached
/// checks for `cache.max_staleness`. A way that should work but cannot be set up yet (the
/// database is down) turns the cache off until it can: a cache that cannot hear revocations
/// must not answer from memory.
async fn try_to_hear(store: &dyn Store, cache: &CacheConfig) -> Hearing {
    let staleness = || {
        tracing::info!(
            max_staleness = %humantime::format_duration(cache.max_staleness),
            "not listening for revocations made elsewhere: a cached check is trusted for max_staleness"
        );
        Hearing::Staleness
    };
    let poll = Listen::Poll(cache.poll_interval);
    let via = match cache.invalidation {
        InvalidationMode::Staleness => return staleness(),
        InvalidationMode::Notify => Listen::Notify,
        InvalidationMode::Poll => poll,
        InvalidationMode::Auto => match store.subscribe(Listen::Notify).await {
            Ok(subscription) => return Hearing::Listening(subscription),
            Err(StoreError::Unsupported(why)) if cache.poll_interval.is_zero() => {
                tracing::info!(reason = %why, "no LISTEN/NOTIFY, and cache.poll_interval is 0");
                return staleness();
            }
            Err(StoreError::Unsupported(why)) if store.backend() == "sqlite" => {
                tracing::debug!(reason = %why, "watching the database file for revocations made by other processes");
                poll
            }
            Err(StoreError::Unsupported(why)) => {
                tracing::info!(
                    reason = %why,
                    every = %humantime::format_duration(cache.poll_interval),
                    "no LISTEN/NOTIFY: polling the invalidations table for revocations made elsewhere"
                );
                poll
            }
            Err(e) => return Hearing::NotYet(e),
        },
    };
    match store.subscribe(via).await {
        Ok(subscription) => Hearing::Listening(subscription),
        Err(StoreError::Unsupported(why)) => {
            tracing::error!(
                reason = %why,
                "cache.invalidation = \"notify\" cannot listen here; the token cache stays off (\"auto\" would poll)"
            );
            Hearing::Never
        }
        Err(e) => Hearing::NotYet(e),
    }
}

/// At bind: hear revocations if it can; the listener to run, if any.
async fn hear_invalidations(store: &dyn Store, state: &AppState) -> Option<Listener> {
    match try_to_hear(store, &state.config.cache).await {
        Hearing::Listening(subscription) => Some(Listener::Connected(subscription)),
        Hearing::Staleness => None,
        Hearing::Never => {
            state.tokens.cache().set_listening(false);
            None
        }
        Hearing::NotYet(e) => {
            tracing::warn!(error = %e, "cannot listen for revocations yet; the token cache stays off until then");
            state.tokens.cache().set_listening(false);
            Some(Listener::Retrying)
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Listener::Connected(_) => "Connected",
            Listener::Retrying => "Retrying",
        })
    }
}

impl Server {
    /// Open the configured database (migrating it, or checking it needs no migration, per
    /// `database.migrate_on_start`), then bind the configured address.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let store = app::open_store(&config).await?;
        Self::bind_with(config, store, Arc::new(SystemClock)).await
    }

    /// Bind over an already-open store and a given clock (tests).
    pub async fn bind_with(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let tokens = app::token_service(&config, Arc::clone(&store), clock).await?;
        let bind = config.bind;
        let state = app::state(config, tokens);
        let router = app::router(state.clone())?;
        let listener = TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
        let metrics = match state.config.metrics_bind {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (metrics_bind)"))?;
                Some((listener, app::metrics_router(state.clone())))
            }
            None => None,
        };
        let invalidations = hear_invalidations(&*store, &state).await;
        Ok(Server { listener, metrics, router, state, store, invalidations })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The metrics listener's address, when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        Ok(self.metrics.as_ref().map(|(l, _)| l.local_addr()).transpose()?)
    }

    /// Serve until `shutdown` resolves, then drain in-flight requests (bounded by the grace
    /// period), flush queued writes and close the database pool.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Server { listener, metrics, router, state, store, invalidations } = self;
        let addr = listener.local_addr()?;
        state.tokens.warm_up();
        let (stop_housekeeping, stopped) = tokio::sync::watch::channel(false);
        let mut housekeeping = spawn_housekeeping(&state, &stopped);
        if let Some(first) = invalidations {
            let (tokens, store, stop) = (Arc::clone(&state.tokens), Arc::clone(&store), stopped.clone());
            let cache = state.config.cache.clone();
            housekeeping.push(tokio::spawn(listen_for_invalidations(tokens, store, cache, first, stop)));
        }
        if let Some((metrics_listener, metrics_router)) = metrics {
            let metrics_addr = metrics_listener.local_addr()?;
            tracing::info!("metrics on http://{metrics_addr}/metrics");
            let mut stop = stopped.clone();
            housekeeping.push(tokio::spawn(async move {
                let serve =
                    axum::serve(metrics_listener, metrics_router.into_make_service_with_connect_info::<SocketAddr>())
                        .with_graceful_shutdown(async move {
                            let _ = stop.changed().await;
                        });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            }));
        }
        tracing::info!(backend = store.backend(), "tokenauth listening on http://{addr}");

        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let (closed_tx, closed_rx) = oneshot::channel();
        let unstarted = Arc::new(watch::Sender::new(0));
        let mut silent = unstarted.subscribe();
        let listener = Draining {
            listener: Some(listener),
            queued: VecDeque::new(),
            stop: stopping_tx.subscribe(),
            closed: Some(closed_tx),
            unstarted,
        };
        // why tap_io: axum provides `ConnectInfo<SocketAddr>` for `TcpListener` and for a
        // `TapIo` over any listener, not for a listener of ours; the tap itself does nothing.
        let listener = listener.tap_io(|_| {});
        let (draining, delay) = (Arc::clone(&state.draining), state.config.http.shutdown_delay);
        let serve = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                draining.begin();
                if !delay.is_zero() {
                    tracing::info!(
                        delay = %humantime::format_duration(delay),
                        "shutting down: /readyz answers 503; still serving until the delay ends"
                    );
                    tokio::time::sleep(delay).await;
                }
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stopping_tx.send(true);
                // The listener takes its queued connections and closes; then connections that
                // have sent nothing yet get FIRST_BYTES_WAIT to do so before the graceful
                // shutdown of every connection begins.
                let _ = closed_rx.await;
                if tokio::time::timeout(FIRST_BYTES_WAIT, silent.wait_for(|n| *n == 0)).await.is_err() {
                    let silent = *silent.borrow();
                    tracing::debug!(silent, "closing connections that sent nothing");
                }
            });
        let grace = state.config.http.shutdown_grace;
        let grace_expired = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = serve.into_future() => served.context("server error")?,
            () = grace_expired => tracing::warn!("shutdown grace period expired; dropping remaining connections"),
        }

        // why not abort: a flush or sweep in progress finishes its write instead of losing it.
        let _ = stop_housekeeping.send(true);
        // why bounded: a database connection stranded by a network fault (no reset, no
        // answer) would otherwise hold the exit forever; last-used times are only a courtesy.
        let housekeeping_grace = state.config.database.acquire_timeout.max(Duration::from_secs(1)) * 2;
        let finish = async {
            for task in housekeeping {
                let _ = task.await;
            }
            if let Err(e) = state.tokens.flush_touches().await {
                tracing::warn!(error = %e, "could not flush last-used times at shutdown");
            }
            store.close().await;
        };
        if tokio::time::timeout(housekeeping_grace, finish).await.is_err() {
            tracing::warn!("the database did not answer at shutdown; last-used times not flushed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// why 1 s: a client sends its request right after its connect returns, so the first bytes
/// of a connection follow its acceptance within a round trip; a second covers a slow network
/// or a busy client, and a connection silent for longer (a browser's preconnect) is not a
/// request in flight. Shutdown waits this long only when such a connection exists.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(1);

/// The listener axum serves from. Until `stop`, it accepts. On `stop`, it takes every
/// connection already waiting in the kernel's accept queue (non-blocking accepts until none is
/// left), closes the socket so that later connects are refused, hands the taken connections to
/// axum one by one, then tells `closed` and accepts nothing more. A connection that arrives
/// between the last accept and the close (microseconds) is still reset: no portable socket call
/// stops a listening socket from completing handshakes without discarding its queue.
struct Draining {
    listener: Option<TcpListener>,
    queued: VecDeque<(TcpStream, SocketAddr)>,
    stop: watch::Receiver<bool>,
    closed: Option<oneshot::Sender<()>>,
    /// How many connections handed to axum have not yet read anything.
    unstarted: Arc<watch::Sender<usize>>,
}

impl Draining {
    fn hand_over(&self, stream: TcpStream) -> Tracked {
        self.unstarted.send_modify(|n| *n += 1);
        Tracked { stream, unstarted: Some(Arc::clone(&self.unstarted)) }
    }

    /// Take the accept queue, then close the listening socket.
    fn close(&mut self) {
        let Some(listener) = self.listener.take() else { return };
        // why into_std: a real accept(2) per call, answering WouldBlock once the queue is
        // empty; the reactor's readiness may not have seen the latest connections yet.
        let listener = match listener.into_std() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the queued connections; closing the listener");
                return;
            }
        };
        loop {
            match listener.accept() {
                Ok((stream, addr)) => match stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream)) {
                    Ok(stream) => self.queued.push_back((stream, addr)),
                    Err(e) => tracing::warn!(error = %e, "cannot serve a queued connection"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the queued connections");
                    break;
                }
            }
        }
        // why at once: every moment between the last accept and the close lets another
        // connection into the queue, to be reset.
        drop(listener);
        tracing::info!(queued = self.queued.len(), "listener closed");
    }
}

impl axum::serve::Listener for Draining {
    type Io = Tracked;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Tracked, SocketAddr) {
        loop {
            if let Some((stream, addr)) = self.queued.pop_front() {
                return (self.hand_over(stream), addr);
            }
            let Some(listener) = &self.listener else {
                if let Some(closed) = self.closed.take() {
                    let _ = closed.send(());
                }
                // why pending: axum stops calling once the graceful shutdown signal resolves.
                return std::future::pending().await;
            };
            let accepted = tokio::select! {
                biased;
                // why: a dropped sender means stop too.
                _ = self.stop.wait_for(|stop| *stop) => None,
                accepted = listener.accept() => Some(accepted),
            };
            match accepted {
                None => self.close(),
                Some(Ok((stream, addr))) => return (self.hand_over(stream), addr),
                Some(Err(e)) if is_connection_error(&e) => {}
                Some(Err(e)) => {
                    // As axum's own TcpListener does: e.g. EMFILE, which may pass once some
                    // connections close.
                    tracing::error!(error = %e, "accept error");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "the listener is closed")),
        }
    }
}

/// Errors of one connection, not of the listener (as axum's own TcpListener treats them).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A served connection that counts itself out of `unstarted` at its first completed read (or
/// when dropped without one).
struct Tracked {
    stream: TcpStream,
    unstarted: Option<Arc<watch::Sender<usize>>>,
}

impl Tracked {
    fn started(&mut self) {
        if let Some(unstarted) = self.unstarted.take() {
            unstarted.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.started();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if polled.is_ready() {
            self.started();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// why 1 s: a lost listener connection is retried quickly; the cache is off meanwhile, so
/// the cost of waiting is database reads, not stale answers.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// Apply the other replicas' invalidations to the cache until `stop`. A lost connection
/// turns the cache off (it may miss notices) until a new subscription is listening, and
/// reconnecting flushes it, since notices sent meanwhile are gone.
async fn listen_for_invalidations(
    tokens: Arc<TokenService>,
    store: Arc<dyn Store>,
    cache: CacheConfig,
    first: Listener,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = Some(first);
    loop {
        let mut subscription = match next.take() {
            Some(Listener::Connected(s)) => s,
            Some(Listener::Retrying) | None => match try_to_hear(&*store, &cache).await {
                Hearing::Listening(s) => {
                    tracing::info!("listening for revocations again; token cache flushed");
                    tokens.metrics().listener_reconnected();
                    s
                }
                Hearing::Staleness => {
                    tokens.cache().set_listening(true);
                    return;
                }
                Hearing::Never => return,
                Hearing::NotYet(e) => {
                    tracing::warn!(error = %e, "cannot listen for revocations; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(LISTENER_RETRY) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            },
        };
        // Flushes what was cached while nothing was heard, and turns the cache on.
        tokens.cache().set_listening(true);
        loop {
            tokio::select! {
                notice = subscription.next() => match notice {
                    Ok(Some(payload)) => tokens.hear(&payload),
                    Ok(None) | Err(_) => {
                        tracing::warn!("lost the revocation listener's connection; token cache off until it is back");
                        tokens.cache().set_listening(false);
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// How often signing keys are re-read from the database.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// The periodic flush of deferred writes and the sweep of old tombstones, until `stop`.
fn spawn_housekeeping(state: &AppState, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let tokens_cfg = &state.config.tokens;
    vec![
        every(tokens_cfg.touch_flush_interval, Arc::clone(&state.tokens), stop.clone(), |tokens| async move {
            if let Err(e) = tokens.flush_touches().await {
                tracing::warn!(error = %e, "could not flush last-used times");
            }
        }),
        // why a minute: `tokenauth keys rotate` promises running servers sign with the new key
        // within a minute. Verification reloads on its own when it meets an unknown kid (at
        // most once per 5 s, so random kids cannot flood the database).
        every(KEY_RELOAD_INTERVAL, Arc::clone(&state.tokens), stop.clone(), |tokens| async move {
            if let Err(e) = tokens.reload_keys().await {
                tracing::warn!(error = %e, "could not reload the JWT signing keys");
            }
        }),
        every(tokens_cfg.sweep_interval, Arc::clone(&state.tokens), stop.clone(), |tokens| async move {
            match tokens.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "swept revoked and expired tokens"),
                Err(e) => tracing::warn!(error = %e, "token sweep failed"),
            }
        }),
    ]
}

/// Run `work` every `period` until `stop` turns true; a run in progress is never cut short.
fn every<F, Fut>(
    period: Duration,
    tokens: Arc<TokenService>,
    mut stop: watch::Receiver<bool>,
    work: F,
) -> JoinHandle<()>
where
    F: Fn(Arc<TokenService>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => work(Arc::clone(&tokens)).await,
                // why changed(): a send or the sender going away both mean stop.
                _ = stop.changed() => break,
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
