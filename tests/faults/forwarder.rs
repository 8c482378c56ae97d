//! A TCP forwarder in front of the test Postgres server, to stage database outages for one
//! server under test without disturbing the other tests sharing that Postgres.
//!
//! - `Mode::Up`: bytes flow both ways.
//! - `Mode::Down`, like a stopped Postgres: every live forwarded connection is closed at
//!   once, and new connections are accepted and closed straight away.
//! - `Mode::Blackhole`, like an unreachable host (dropped packets): connections are still
//!   accepted, but nothing is forwarded in either direction and existing connections stall.
//!   Nothing is lost: when the mode goes back to `Up`, the held bytes flow on, as TCP's
//!   retransmissions would deliver them once the network heals.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the forwarder does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    Down,
    Blackhole,
}

/// A running forwarder on 127.0.0.1; stopped (all its connections closed) when dropped.
pub struct Forwarder {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl Forwarder {
    /// Listen on 127.0.0.1:0 and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watching) = watch::channel(Mode::Up);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if *watching.borrow() == Mode::Down {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, watching.clone()));
            }
        });
        Forwarder { addr, mode, accept }
    }

    /// Where to connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Down);
        self.accept.abort();
    }
}

/// Wait while blackholed; true when up, false when down (or the forwarder is gone).
async fn wait_up(mode: &mut watch::Receiver<Mode>) -> bool {
    match mode.wait_for(|m| *m != Mode::Blackhole).await {
        Ok(m) => *m == Mode::Up,
        Err(_) => false,
    }
}

/// One forwarded connection, until either side closes it or the mode goes down.
async fn forward(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // why wait before connecting: a connection accepted while blackholed must not reach the
    // server (its startup message stays here) until the network is back.
    if !wait_up(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut down = mode.clone();
    // why select: when one direction ends, or the mode goes down, both sockets are dropped
    // (closed) together.
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
        _ = down.wait_for(|m| *m == Mode::Down) => {}
    }
}

/// Copy `from` to `to`, holding the bytes (and reading no more) while blackholed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !wait_up(&mut mode).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // why again: the blackhole may have begun while this read was waiting.
        if !wait_up(&mut mode).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
