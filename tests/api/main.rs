//! The integration suite: one binary (zero2prod, crates.io). `helpers` builds a `TestApp`
//! over SQLite or a per-test Postgres database; `backend_tests!` runs a test on both.
//! Set TEST_LOG=1 to see the server's logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

#[macro_use]
mod helpers;

mod browser;
mod cli;
mod config_file;
mod counting_store;
mod dialer;
mod e2e;
mod import;
mod knox;
mod layers;
mod metrics;
mod nginx;
mod openapi;
mod pooling;
mod process;
mod replicas;
mod scale;
mod secrets;
mod service;
mod shutdown;
mod store_contract;
mod throttle;
mod ui;
mod usertoken;
mod verify;
mod webitel;
