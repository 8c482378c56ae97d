//! One argon2id verification at tokenauth's configured parameters (the defaults, or
//! `TOKENAUTH_PASSWORDS__*`), timed alone: the floor under a login's wall time, which
//! bench/run.sh compares a real login with. Prints `argon2id_verify_ms MEDIAN` and the
//! parameters; asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

const RUNS: usize = 31;

fn main() {
    let config = tokenauth::config::load(None, &tokenauth::config::Overrides::default()).unwrap().config;
    let p = &config.passwords;
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"tokenauth-bench-salt").unwrap();
    let hash = argon2.hash_password(b"bench-password-123", &salt).unwrap().to_string();
    let parsed = PasswordHash::new(&hash).unwrap();
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            argon2.verify_password(b"bench-password-123", &parsed).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "argon2id_verify_ms {:.2} (median of {RUNS}; m={} KiB t={} p={})",
        times[RUNS / 2],
        p.memory_kib,
        p.iterations,
        p.parallelism
    );
}
