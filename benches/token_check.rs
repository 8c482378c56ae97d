//! In-process benchmark of `TokenService::authenticate`, the token check every request pays:
//! shape check, SHA-256, one indexed lookup, state checks. Prints figures; asserts nothing.
//!
//! `cargo bench --bench token_check` runs it on SQLite, and on Postgres too when
//! `TOKENAUTH_BENCH_DATABASE_URL` names a role that may create databases (bench/run.sh sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use tokenauth::app;
use tokenauth::config::{Config, DatabaseUrl};
use tokenauth::model::PrincipalKind;
use tokenauth::token::clock::SystemClock;
use tokenauth::token::{LoginOptions, NewProfile, TokenService};

/// The client address of every benchmarked login.
const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

const SEQUENTIAL: usize = 20_000;
const CONCURRENT_TASKS: usize = 16;
const PER_TASK: usize = 5_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &sqlite).await;
        if let Ok(admin) = std::env::var("TOKENAUTH_BENCH_DATABASE_URL") {
            let name = format!("tokenauth_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&name);
            run("postgres", url.as_str()).await;
            sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).execute(&mut conn).await.unwrap();
        } else {
            println!("postgres: skipped (set TOKENAUTH_BENCH_DATABASE_URL)");
        }
    });
}

async fn run(backend: &str, url: &str) {
    let mut config = Config { database_url: DatabaseUrl::new(url), ..Config::default() };
    config.database.max_connections = 16;
    let store = app::open_store(&config).await.unwrap();
    let tokens = app::token_service(&config, store, Arc::new(SystemClock)).await.unwrap();
    let policy = tokenauth::dialect::knox::policy(&config.knox);
    tokens
        .create_principal(PrincipalKind::User, "bench", "bench-password".to_owned().into(), &NewProfile::default())
        .await
        .unwrap();

    let started = Instant::now();
    let issued = tokens
        .login(
            &policy,
            PrincipalKind::User,
            "bench",
            "bench-password".to_owned().into(),
            LOCALHOST,
            LoginOptions::default(),
        )
        .await
        .unwrap();
    let login = started.elapsed();
    let token = issued.token.expose().to_owned();

    // Warm the pool and caches.
    for _ in 0..1_000 {
        tokens.authenticate(&policy, &token).await.unwrap();
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        tokens.authenticate(&policy, &token).await.unwrap();
        latencies.push(t.elapsed());
    }
    let sequential = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();
    latencies.sort();

    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|_| {
            let tokens: Arc<TokenService> = Arc::clone(&tokens);
            let policy = policy.clone();
            let token = token.clone();
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    tokens.authenticate(&policy, &token).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let concurrent = (CONCURRENT_TASKS * PER_TASK) as f64 / started.elapsed().as_secs_f64();

    let unknown = "0".repeat(64);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        tokens.authenticate(&policy, &unknown).await.unwrap_err();
    }
    let unknown_rate = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();

    // Timing of refused logins: an unknown user must cost what a wrong password costs. The
    // server precomputes the dummy hash at start; here one unknown login does it first.
    let _ = tokens
        .login(&policy, PrincipalKind::User, "nobody", "x".to_owned().into(), LOCALHOST, LoginOptions::default())
        .await;
    let mut wrong = Duration::ZERO;
    let mut unknown_user = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let _ = tokens
            .login(&policy, PrincipalKind::User, "bench", "wrong".to_owned().into(), LOCALHOST, LoginOptions::default())
            .await;
        wrong += t.elapsed();
        let t = Instant::now();
        let _ = tokens
            .login(
                &policy,
                PrincipalKind::User,
                "nobody",
                "wrong".to_owned().into(),
                LOCALHOST,
                LoginOptions::default(),
            )
            .await;
        unknown_user += t.elapsed();
    }
    println!(
        "{backend}: refused login, mean of 20: wrong password {}, unknown user {}",
        ms(wrong / 20),
        ms(unknown_user / 20)
    );

    println!(
        "{backend}: authenticate sequential {sequential:.0}/s (p50 {} p99 {}), {CONCURRENT_TASKS} tasks {concurrent:.0}/s, unknown token {unknown_rate:.0}/s; one login at default argon2 {}",
        us(latencies[latencies.len() / 2]),
        us(latencies[latencies.len() * 99 / 100]),
        ms(login),
    );
}

fn us(d: Duration) -> String {
    format!("{:.0}µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}
