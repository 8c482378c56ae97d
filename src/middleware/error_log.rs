//! Log each error response once, inside the request's span: server faults at ERROR with
//! their cause (which the client never sees), refusals at DEBUG with their reason.
//! `ShapedError::into_response` attaches the error; this layer reads it.
//!
//! A 503 (database unavailable, request timeout, full hashing queue) is a state of the
//! deployment, not a bug, and comes in floods: every request fails while the database is
//! away. So 503s are logged at WARN, at most one line a second, each saying how many were
//! left out since the last one; `/metrics` counts every one of them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::Error;

/// The error behind a response, attached by `ShapedError::into_response` for this layer (logged
/// once, inside the request span).
#[derive(Debug, Clone)]
pub(crate) struct LoggedError(pub(crate) Arc<Error>);

/// The 503 log lines of the whole process.
static UNAVAILABLE: Sampler = Sampler::new(Duration::from_secs(1));

/// Layer: log the error attached to the response, if any.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if let Some(LoggedError(err)) = resp.extensions().get::<LoggedError>() {
        let status = resp.status().as_u16();
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            // why Instant: a monotonic interval between log lines, not a time any token
            // depends on, so it does not go through the clock.
            if let Some(left_out) = UNAVAILABLE.admit(Instant::now()) {
                tracing::warn!(status, error = %err, left_out, "request failed: service unavailable");
            }
        } else if resp.status().is_server_error() {
            tracing::error!(status, error = %err, "request failed");
        } else {
            tracing::debug!(status, error = %err, "request refused");
        }
    }
    resp
}

/// Lets one event through per `every`, and counts the others.
struct Sampler {
    every: Duration,
    state: Mutex<SamplerState>,
}

struct SamplerState {
    last: Option<Instant>,
    left_out: u64,
}

impl Sampler {
    const fn new(every: Duration) -> Self {
        Sampler { every, state: Mutex::new(SamplerState { last: None, left_out: 0 }) }
    }

    /// `Some(number left out since the last admitted event)` if this event is to be logged.
    fn admit(&self, now: Instant) -> Option<u64> {
        // why into_inner on poison: the state is two plain numbers, valid whatever panicked.
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.last.is_some_and(|last| now.saturating_duration_since(last) < self.every) {
            state.left_out += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.left_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_period_gets_through_with_the_count_of_the_others() {
        let sampler = Sampler::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(sampler.admit(t0), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(sampler.admit(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(sampler.admit(t0 + Duration::from_millis(1000)), Some(3));
        assert_eq!(sampler.admit(t0 + Duration::from_millis(1001)), None);
        assert_eq!(sampler.admit(t0 + Duration::from_secs(5)), Some(1));
        // why: an instant from before the last line (another thread's) is not a new period.
        assert_eq!(sampler.admit(t0), None);
        assert_eq!(sampler.admit(t0 + Duration::from_secs(6)), Some(1));
    }
}
