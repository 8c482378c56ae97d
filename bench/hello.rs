//! The machine's HTTP ceiling for `bench/run.sh`: a hello-world axum 0.8 server with no
//! middleware, on the same tokio runtime, allocator and release profile as tokenauth, so
//! every figure of tokenauth's is read as a fraction of what this machine can serve at all.
//!
//!     cargo run --release --example hello -- 127.0.0.1:18180
//!
//! `GET /` answers `{"status":"ok"}` (the size of tokenauth's `/healthz`); it stops on
//! SIGTERM or SIGINT.

use axum::Router;
use axum::routing::get;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18180".to_owned());
    let app = Router::new()
        .route("/", get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("hello listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(tokenauth::server::shutdown_signal()).await
}
