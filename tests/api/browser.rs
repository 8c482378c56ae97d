//! The web page in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! fantoccini) against the real binary. Sign in, create a static token, read it off the
//! page, use it against `/verify` and the dialect's logout, revoke another token with its
//! button and see `/verify` refuse it, sign out. Screenshots of the sign-in page and the token
//! list go to `target/tmp/ui-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `.ci/run` installs them. Without them the
//! test is skipped loudly, and with `CI=true` it fails instead.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestDb};
use crate::process::{Server, admin, ok};

const PASSWORD: &str = "browser-Pa55word";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

async fn driver() -> Option<(Driver, PathBuf)> {
    let (Some(chromedriver), Some(chromium)) = (
        find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]),
        find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"]),
    ) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but chromium / chromium-driver are missing: .ci/run installs them"
        );
        eprintln!("WARNING: browser test SKIPPED: install chromium and chromium-driver to run it");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = reqwest::Client::new();
    while http.get(format!("{}/status", driver.url)).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((driver, chromium))
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_person_manages_tokens_in_a_real_browser() {
    let Some((driver, chromium)) = driver().await else { return };
    let db = TestDb::new(&Backend::Sqlite).await;
    ok(&admin(&db, &["user", "add", "alice@example.com", "--password-stdin"], Some(&format!("{PASSWORD}\n"))).await);
    let server = Server::serve(&db).await;
    let http = reqwest::Client::new();

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // why --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"],
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");
    let result = run(&browser, &server, &http).await;
    let _ = browser.close().await;
    result.unwrap();
}

async fn run(
    b: &fantoccini::Client,
    server: &Server,
    http: &reqwest::Client,
) -> Result<(), fantoccini::error::CmdError> {
    let shots = screenshots();
    // Visiting the page sends a stranger to sign in.
    b.goto(&server.url("/ui/")).await?;
    assert!(b.current_url().await?.path().ends_with("/ui/signin"));
    assert_eq!(b.find(Locator::Css("h1")).await?.text().await?, "Sign in");
    std::fs::write(shots.join("signin.png"), b.screenshot().await?).unwrap();

    b.find(Locator::Css("#name")).await?.send_keys("alice@example.com").await?;
    b.find(Locator::Css("#password")).await?.send_keys(PASSWORD).await?;
    b.find(Locator::Css("form.card button[type=submit]")).await?.click().await?;
    wait_for_h1(b, "My tokens").await?;

    // Create a static knox token and read it off the page.
    let knox = create(b, "knox", "deploys").await?;
    let check = http.get(server.url("/verify")).header("authorization", format!("Token {knox}")).send().await.unwrap();
    assert_eq!(check.status(), StatusCode::OK);
    assert_eq!(check.headers()["x-auth-user"], "alice@example.com");
    // The dialect's own logout takes it, and /verify refuses it after.
    let logout =
        http.post(server.url("/auth/logout/")).header("authorization", format!("Token {knox}")).send().await.unwrap();
    assert!(logout.status().is_success(), "knox logout: {}", logout.status());
    let check = http.get(server.url("/verify")).header("authorization", format!("Token {knox}")).send().await.unwrap();
    assert_eq!(check.status(), StatusCode::UNAUTHORIZED);

    // Another token, revoked with its button in the list.
    let usertoken = create(b, "usertoken", "to revoke").await?;
    let bearer = |t: &str| format!("Bearer {t}");
    let check = http.get(server.url("/verify")).header("authorization", bearer(&usertoken)).send().await.unwrap();
    assert_eq!(check.status(), StatusCode::OK);
    b.goto(&server.url("/ui/")).await?;
    let row = b.find(Locator::XPath("//tr[td[text()='to revoke']]")).await?;
    std::fs::write(shots.join("tokens.png"), b.screenshot().await?).unwrap();
    assert!(!b.source().await?.contains(&usertoken), "the list never shows the token");
    row.find(Locator::Css("button.danger")).await?.click().await?;
    wait_for_h1(b, "My tokens").await?;
    assert!(b.find_all(Locator::XPath("//tr[td[text()='to revoke']]")).await?.is_empty(), "gone from the list");
    let check = http.get(server.url("/verify")).header("authorization", bearer(&usertoken)).send().await.unwrap();
    assert_eq!(check.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(check.headers()["x-auth-reason"], "revoked");

    // Sign out: back to the sign-in page, and the home page no longer opens.
    b.find(Locator::Css("nav button[type=submit]")).await?.click().await?;
    wait_for_h1(b, "Sign in").await?;
    assert!(b.source().await?.contains("You have signed out."));
    b.goto(&server.url("/ui/")).await?;
    assert!(b.current_url().await?.path().ends_with("/ui/signin"));
    eprintln!("screenshots: {}", shots.display());
    Ok(())
}

/// Fill in and submit the creation form; return the token the page shows once.
async fn create(b: &fantoccini::Client, dialect: &str, note: &str) -> Result<String, fantoccini::error::CmdError> {
    // From a fresh list, so the token field found below is the new page's.
    b.find(Locator::LinkText("My tokens")).await?.click().await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.find_all(Locator::Css("#new-token")).await?.is_empty() {
        assert!(Instant::now() < deadline, "the list did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.find(Locator::Css("#dialect")).await?.select_by_value(dialect).await?;
    b.find(Locator::Css("#note")).await?.send_keys(note).await?;
    b.find(Locator::XPath("//button[text()='Create token']")).await?.click().await?;
    let field = b.wait().for_element(Locator::Css("#new-token")).await?;
    let token = field.prop("value").await?.expect("the token is in the field");
    assert!(!token.is_empty());
    Ok(token)
}

async fn wait_for_h1(b: &fantoccini::Client, text: &str) -> Result<(), fantoccini::error::CmdError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(h1) = b.find(Locator::Css("h1")).await
            && h1.text().await.is_ok_and(|t| t == text)
        {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "no <h1>{text}</h1> at {}", b.current_url().await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
