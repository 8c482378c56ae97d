//! `tokenauth healthcheck`: ask the running server's `/healthz` (or `/readyz`) over loopback,
//! for container HEALTHCHECKs in an image that has no curl (lldap does the same).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// why 5 s: a health probe that takes longer is a failed probe.
const TIMEOUT: Duration = Duration::from_secs(5);

/// GET `path` from the server bound at `bind` and succeed only on a 200.
pub(super) async fn run(bind: SocketAddr, path: &str) -> anyhow::Result<()> {
    let mut addr = bind;
    // why: a server listening on all interfaces is reached through loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    let status = tokio::time::timeout(TIMEOUT, get(addr, path))
        .await
        .with_context(|| format!("no answer from http://{addr}{path} within {}s", TIMEOUT.as_secs()))??;
    if status != 200 {
        bail!("http://{addr}{path} answered {status}");
    }
    println!("ok");
    Ok(())
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = stream.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    // "HTTP/1.1 200 OK"
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response from {addr}: {line:?}"))
}
