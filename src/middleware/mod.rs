//! Cross-cutting HTTP layers, applied once in `app::router` (see the order documented there).

pub mod access_log;
pub mod client_ip;
pub mod context;
pub mod error_log;
pub mod metrics;
pub mod request_id;
