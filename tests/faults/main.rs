//! The fault tests that measure time (recovery within a second, answers within the request
//! timeout): a binary of their own, because cargo runs test binaries one after another, so
//! these run alone and not beside the `api` suite's password hashing and load generators on
//! the same cores. The helpers are the `api` suite's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

// why dead_code: this binary uses a few of the helpers the `api` suite shares.
#[allow(dead_code, unused_macros)]
#[path = "../api/helpers.rs"]
mod helpers;

mod forwarder;
mod outage;
