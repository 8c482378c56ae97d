//! `AppState`: what every handler can reach, passed as `State<AppState>`.
//!
//! Policy: surfaces see the token service and the configuration, never the store; the token
//! policies are built once (by `app::state`, from each dialect's config section).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::token::{Policies, TokenService};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The token service.
    pub tokens: Arc<TokenService>,
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Every dialect's token policy and the web page's, built once from the config.
    pub policies: Arc<Policies>,
    /// Set when a shutdown begins: `/readyz` answers 503 from then on, so load balancers
    /// stop sending new requests before the listener closes (`http.shutdown_delay`).
    pub draining: Arc<Draining>,
}

/// Whether this process has begun to shut down.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    /// Mark the process as shutting down.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
