//! The `tokenauth` binary as a child process: one-shot commands (`command`, `run`, `admin`)
//! and a running `tokenauth serve` (`Server`). Shared by the `api` suite and the `faults`
//! binary, which includes this file by `#[path]`.
//!
//! Every run clears `TOKENAUTH_*` and `RUST_LOG` from the child's environment, so only what a
//! test sets reaches it.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;

use crate::helpers::TestDb;

/// How long any one command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// `tokenauth ARGS` with a clean environment; add `.env(..)` before `run`. A `serve` stops
/// at once on SIGTERM (`http.shutdown_delay` 0): the tests that stop a server want it
/// stopped now; `shutdown::readyz_turns_503_during_the_shutdown_delay` sets a delay.
pub fn command(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenauth"));
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOKENAUTH_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    if args.contains(&"serve") {
        cmd.env("TOKENAUTH_HTTP__SHUTDOWN_DELAY", "0s");
    }
    // why: a database reached through the tests' PgBouncer needs its settings in every
    // process, servers and administration commands alike.
    for arg in args {
        if let Some(env) = crate::helpers::pooled_env(arg) {
            cmd.envs(env);
        }
    }
    cmd
}

/// Run a prepared command, writing `stdin` (if any) to it, within `COMMAND_TIMEOUT`.
pub async fn run(cmd: std::process::Command, stdin: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // why: a command refused by clap exits without reading its input.
        if let Err(e) = pipe.write_all(input.as_bytes()).await {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await.expect("tokenauth took too long").unwrap()
}

/// `tokenauth ARGS`, with `stdin` written to it.
pub async fn tokenauth(args: &[&str], stdin: Option<&str>) -> Output {
    run(command(args), stdin).await
}

/// `tokenauth --database-url DB ARGS`.
pub async fn admin(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["--database-url", db.url.as_str()];
    all.extend_from_slice(args);
    tokenauth(&all, stdin).await
}

/// Assert success and return stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "expected success, got {:?}; stderr: {}", out.status, stderr(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bound on every wait: server start, a log line, process exit.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A running `tokenauth serve`, killed when dropped. Its stderr is kept, line by line.
pub(crate) struct Server {
    child: Child,
    /// The address the server logged.
    pub(crate) logged: SocketAddr,
    /// Where to connect: the logged address, with 127.0.0.1 for an unspecified IP.
    pub(crate) addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// Lines written to stdout (logs go to stderr; this should stay empty).
    out: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// `tokenauth serve --bind 127.0.0.1:0 --database-url URL`.
    pub(crate) async fn serve(db: &TestDb) -> Server {
        Server::spawn(command(&["serve", "--bind", "127.0.0.1:0", "--database-url", &db.url])).await
    }

    /// Start a prepared `serve` command with trace logging and wait until it listens.
    pub(crate) async fn spawn(cmd: std::process::Command) -> Server {
        Server::spawn_logging(cmd, "trace").await
    }

    /// Start a prepared `serve` command with `RUST_LOG=filter`, keeping its stderr and its
    /// stdout line by line, and wait until it listens.
    pub(crate) async fn spawn_logging(mut cmd: std::process::Command, filter: &str) -> Server {
        cmd.env("RUST_LOG", filter).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (logs, stderr_reader) = read_lines(child.stderr.take().unwrap());
        let (out, stdout_reader) = read_lines(child.stdout.take().unwrap());
        let mut server = Server {
            child,
            logged: SocketAddr::from(([0, 0, 0, 0], 0)),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            logs,
            out,
            readers: vec![stderr_reader, stdout_reader],
        };
        let line = server.wait_for_log("listening on http://").await;
        // The address ends where address characters end (text logs: a space; JSON logs: a quote).
        let rest = line.split("listening on http://").nth(1).unwrap();
        let end = rest.find(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c))).unwrap_or(rest.len());
        let logged = &rest[..end];
        server.logged = logged.parse().unwrap_or_else(|e| panic!("{logged:?} in {line:?}: {e}"));
        server.addr = server.logged;
        if server.addr.ip().is_unspecified() {
            server.addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        server
    }

    /// The server process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// What the server wrote to stdout.
    pub(crate) fn stdout(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// Wait for a stderr line containing `needle` and return it; fail if the server exits first.
    pub(crate) async fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tokenauth exited ({status}) before logging {needle:?}; stderr:\n{}", self.logs().join("\n"));
            }
            assert!(Instant::now() < deadline, "no {needle:?} in stderr:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal (`TERM`, `INT`) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
        let status =
            std::process::Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success(), "kill -{name} failed");
    }

    /// Wait for the process to exit, then for its stderr and stdout to be read to the end.
    pub(crate) async fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "tokenauth did not exit; stderr:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        status
    }

    /// Whether the process has exited, without waiting.
    pub(crate) fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Stop with `signal` and assert a clean exit (status 0) within `WAIT`.
    pub(crate) async fn stop(&mut self, signal: &str) {
        self.signal(signal);
        let status = self.wait_for_exit().await;
        assert_eq!(status.code(), Some(0), "exit after SIG{signal}: {status}; stderr:\n{}", self.logs().join("\n"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collect `pipe`'s lines on a thread of their own, until it closes.
fn read_lines(pipe: impl std::io::Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

pub(crate) fn client() -> reqwest::Client {
    // why no_proxy: the tests talk to 127.0.0.1 only, whatever HTTP_PROXY says.
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}
