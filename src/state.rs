//! `AppState`: what every handler can reach, passed as `State<AppState>`.
//!
//! Policy: surfaces see the token service and the configuration, never the store; the token
//! policies are built once (by `app::state`, from each dialect's config section).

use std::sync::Arc;

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
}
