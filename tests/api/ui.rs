//! The static-token web page (issue 8), in-process: every form, CSRF failures, expired
//! sessions, throttling and IP rules on sign-in, a reseller seeing only its own tokens,
//! non-administrators refused the admin pages, the audit log. The browser test is in
//! `browser.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use tokenauth::model::Attributes;
use tokenauth::model::PrincipalKind;
use tokenauth::token::NewProfile;

use crate::helpers::{Backend, TestApp, TestResponse};
use crate::process::{admin, ok};

backend_tests!(
    the_sign_in_page_sets_a_csrf_cookie,
    signing_in_sets_a_strict_http_only_session_cookie_and_hides_the_session,
    forms_without_the_right_csrf_token_do_nothing,
    wrong_passwords_throttling_and_ip_rules_apply_to_sign_in,
    expired_and_revoked_sessions_go_back_to_sign_in,
    static_tokens_are_created_shown_once_and_work,
    tokens_are_revoked_by_their_owner_only,
    a_reseller_sees_only_its_own_tokens,
    non_administrators_are_refused_the_admin_pages,
    administrators_manage_users_and_tokens_and_are_audited,
    signing_out_everywhere_ends_every_web_session_only,
    cookies_are_secure_over_https_from_a_trusted_proxy,
    administrators_forms_need_their_csrf_token_too,
    token_limits_hold_on_the_web_page,
);

const PW: &str = "correct horse";

/// A browser: a cookie jar over the in-process app.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
    peer: SocketAddr,
    fetch_site: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser { app, cookies: BTreeMap::new(), peer: SocketAddr::from(([198, 51, 100, 20], 50000)), fetch_site: None }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> TestResponse {
        let mut req = self.app.request(method, path).peer(self.peer);
        if let Some(site) = &self.fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            req = req.header("cookie", cookie);
        }
        if let Some(fields) = form {
            let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
            req = req.body(body, "application/x-www-form-urlencoded");
        }
        let resp = req.send().await;
        for set in resp.headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        resp
    }

    /// A form post carrying the `Sec-Fetch-Site` a browser would send.
    async fn send_with(&mut self, method: Method, path: &str, form: &[(&str, &str)], site: &str) -> TestResponse {
        self.fetch_site = Some(site.to_owned());
        let resp = self.send(method, path, Some(form)).await;
        self.fetch_site = None;
        resp
    }

    async fn get(&mut self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Sign in through the form; returns the answer to the form post.
    async fn sign_in(&mut self, kind: &str, name: &str, password: &str) -> TestResponse {
        let page = self.get("/ui/signin").await;
        let csrf = csrf_of(&page);
        self.post("/ui/signin", &[("csrf", &csrf), ("kind", kind), ("name", name), ("password", password)]).await
    }

    /// Sign in and expect to land on the home page; returns its CSRF token.
    async fn signed_in(&mut self, kind: &str, name: &str) -> String {
        let resp = self.sign_in(kind, name, PW).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", text(&resp));
        assert_eq!(resp.header("location"), Some("/ui/"));
        let home = self.get("/ui/").await;
        assert_eq!(home.status, StatusCode::OK, "{}", text(&home));
        csrf_of(&home)
    }
}

fn text(resp: &TestResponse) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// The value of the first `name="csrf"` hidden input.
fn csrf_of(resp: &TestResponse) -> String {
    attr_after(&text(resp), r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in {}", text(resp)))
}

fn attr_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

/// The token shown once on the page after creating it.
fn new_token(resp: &TestResponse) -> String {
    attr_after(&text(resp), r#"id="new-token" type="text" readonly value=""#).expect("the new token is on the page")
}

fn set_cookie<'r>(resp: &'r TestResponse, name: &str) -> &'r str {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}

async fn add_user(app: &TestApp, name: &str, admin: bool) {
    let profile = NewProfile { attributes: Attributes { admin, ..Attributes::default() }, ..NewProfile::default() };
    app.tokens.create_principal(PrincipalKind::User, name, PW.to_owned().into(), &profile).await.unwrap();
}

async fn verify(app: &TestApp, token: &str) -> StatusCode {
    app.get("/verify").bearer(token).send().await.status
}

async fn the_sign_in_page_sets_a_csrf_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut b = Browser::new(&app);
    let page = b.get("/ui/signin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    let cookie = set_cookie(&page, "tokenauth_csrf");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("; Path=/ui;"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP from an untrusted peer: {cookie}");
    assert_eq!(b.cookies["tokenauth_csrf"], csrf_of(&page), "double submit: the field is the cookie");
    let html = text(&page);
    for needle in [r#"<label for="name">"#, r#"<label for="password">"#, r#"lang="en""#, "/ui/style.css"] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    // The prefix alone goes to the home page, which sends a visitor to sign in.
    assert_eq!(b.get("/ui").await.header("location"), Some("/ui/"));
    assert_eq!(b.get("/ui/").await.header("location"), Some("/ui/signin"));
    let css = b.get("/ui/style.css").await;
    assert_eq!((css.status, css.header("content-type")), (StatusCode::OK, Some("text/css; charset=utf-8")));
    let missing = b.get("/ui/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(text(&missing).contains("There is no such page."), "the web page's own 404: {}", text(&missing));
}

async fn signing_in_sets_a_strict_http_only_session_cookie_and_hides_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    let resp = b.sign_in("user", "alice", PW).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    let cookie = set_cookie(&resp, "tokenauth_session");
    for attr in ["HttpOnly", "SameSite=Strict", "; Path=/ui;", "Max-Age=28800"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let home = b.get("/ui/").await;
    let html = text(&home);
    assert!(html.contains("Signed in as <strong>alice</strong>") && html.contains("No live tokens."), "{html}");
    // The sign-in is a token of its own: stored, never listed, never accepted by /verify.
    let alice = app.tokens.principal(PrincipalKind::User, "alice").await.unwrap();
    let stored = app.store.list_tokens(alice.id).await.unwrap();
    assert_eq!(stored.iter().map(|t| t.issuer.as_str()).collect::<Vec<_>>(), ["ui"]);
    assert!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().is_empty());
    // Odd query strings are no error; a second visit to the form keeps the first's token.
    assert_eq!(b.cookies.get("tokenauth_csrf"), None, "signing in cleared the form's cookie");
    let mut tabs = Browser::new(&app);
    let first = csrf_of(&tabs.get("/ui/signin?expired=1&expired=2").await);
    assert_eq!(csrf_of(&tabs.get("/ui/signin").await), first, "a second tab does not invalidate the first");
    let bad_path = tabs.post("/ui/tokens/%FF/revoke", &[]).await;
    assert_eq!(bad_path.status, StatusCode::SEE_OTHER, "no session: sign in first");
    // Signing in again in a browser that holds a session (the form posted from an old tab)
    // replaces the session.
    b.cookies.insert("tokenauth_csrf".into(), first.clone());
    let again = b.post("/ui/signin", &[("csrf", &first), ("name", "alice"), ("password", PW)]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let stored = app.store.list_tokens(alice.id).await.unwrap();
    assert_eq!(stored.iter().filter(|t| t.revoked_at.is_none()).count(), 1, "the old session ended");
    let session = b.cookies["tokenauth_session"].clone();
    assert_eq!(verify(&app, &session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/auth/logout/").token(&session).send().await.status, StatusCode::UNAUTHORIZED);
}

async fn forms_without_the_right_csrf_token_do_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    // Sign-in: a field that does not match the cookie, or no cookie at all.
    b.get("/ui/signin").await;
    let forged = b.post("/ui/signin", &[("csrf", "0000"), ("name", "alice"), ("password", PW)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!b.cookies.contains_key("tokenauth_session"));
    let mut fresh = Browser::new(&app);
    let csrf = csrf_of(&b.get("/ui/signin").await);
    let cookieless = fresh.post("/ui/signin", &[("csrf", &csrf), ("name", "alice"), ("password", PW)]).await;
    assert_eq!(cookieless.status, StatusCode::FORBIDDEN);
    assert!(!fresh.cookies.contains_key("tokenauth_session"));

    let csrf = b.signed_in("user", "alice").await;
    // Create, with another page's token and with none.
    for bad in ["", "f00d", &csrf[1..]] {
        let resp = b.post("/ui/tokens", &[("csrf", bad), ("dialect", "knox")]).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", text(&resp));
        assert!(text(&resp).contains("did not come from this site"));
    }
    assert!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().is_empty(), "nothing was created");
    // Revoke and sign out, without the token.
    let created = b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await;
    let token = new_token(&created);
    let id = app.tokens.list(PrincipalKind::User, "alice").await.unwrap()[0].id;
    assert_eq!(b.post(&format!("/ui/tokens/{id}/revoke"), &[]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(verify(&app, &token).await, StatusCode::OK, "still live");
    assert_eq!(b.post("/ui/signout", &[("csrf", "nope")]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/ui/").await.status, StatusCode::OK, "still signed in");
    // A form a browser says came from another site, or a sibling subdomain, is refused
    // whatever its tokens; from this origin it goes through.
    for site in ["cross-site", "same-site"] {
        let resp = b.send_with(Method::POST, "/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")], site).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{site}");
        assert!(text(&resp).contains("did not come from this site"), "{site}");
    }
    let mut planted = Browser::new(&app);
    let form_csrf = csrf_of(&planted.get("/ui/signin").await);
    let fields = [("csrf", form_csrf.as_str()), ("name", "alice"), ("password", PW)];
    let login_csrf = planted.send_with(Method::POST, "/ui/signin", &fields, "same-site").await;
    assert_eq!(login_csrf.status, StatusCode::BAD_REQUEST, "a sign-in posted from a sibling site");
    assert!(!planted.cookies.contains_key("tokenauth_session"));
    let same = b.send_with(Method::POST, "/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")], "same-origin").await;
    assert_eq!(same.status, StatusCode::OK);
    // A JSON body is not a form.
    let json = app.post("/ui/tokens").json(serde_json::json!({"csrf": csrf})).send().await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn wrong_passwords_throttling_and_ip_rules_apply_to_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    let wrong = b.sign_in("user", "alice", "wrong").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(text(&wrong).contains("Wrong name or password"));
    assert!(text(&wrong).contains(r#"value="alice""#), "the name is kept in the form");
    assert_eq!(b.sign_in("user", "nobody", "wrong").await.status, StatusCode::UNAUTHORIZED);
    for _ in 0..8 {
        assert_eq!(b.sign_in("user", "alice", "wrong").await.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = b.sign_in("user", "alice", PW).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", text(&throttled));
    assert_eq!(throttled.header("retry-after"), Some("60"));
    assert!(text(&throttled).contains("Too many failed sign-ins. Try again in 60 seconds."));
    // Another address is not locked out.
    b.peer = SocketAddr::from(([198, 51, 100, 21], 50000));
    b.signed_in("user", "alice").await;

    // A reseller's allowed_ips hold on the web page too.
    let profile = NewProfile {
        attributes: Attributes { allowed_ips: vec!["203.0.113.0/24".parse().unwrap()], ..Attributes::default() },
        ..NewProfile::default()
    };
    app.tokens.create_principal(PrincipalKind::Reseller, "acme", PW.to_owned().into(), &profile).await.unwrap();
    let mut r = Browser::new(&app);
    r.peer = SocketAddr::from(([198, 51, 100, 30], 50000));
    assert_eq!(r.sign_in("reseller", "acme", PW).await.status, StatusCode::UNAUTHORIZED);
    r.peer = SocketAddr::from(([203, 0, 113, 9], 50000));
    r.signed_in("reseller", "acme").await;
    drop(app);

    // With the dialer off, resellers have nothing here and cannot sign in.
    let app = TestApp::with_config(Backend::Sqlite, |c| c.dialer.enabled = false).await;
    app.tokens
        .create_principal(PrincipalKind::Reseller, "acme", PW.to_owned().into(), &NewProfile::default())
        .await
        .unwrap();
    let mut r = Browser::new(&app);
    assert!(!text(&r.get("/ui/signin").await).contains("reseller"), "no reseller choice");
    assert_eq!(r.sign_in("reseller", "acme", PW).await.status, StatusCode::UNAUTHORIZED);
}

async fn expired_and_revoked_sessions_go_back_to_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "alice").await;
    app.advance(Duration::from_secs(8 * 3600 + 1));
    let home = b.get("/ui/").await;
    assert_eq!((home.status, home.header("location")), (StatusCode::SEE_OTHER, Some("/ui/signin?expired=1")));
    assert!(set_cookie(&home, "tokenauth_session").contains("Max-Age=0"), "the dead cookie is cleared");
    let page = b.get("/ui/signin?expired=1").await;
    assert!(text(&page).contains("Your session has ended."));
    // A form posted with an expired session does nothing either.
    let mut again = Browser::new(&app);
    let csrf2 = again.signed_in("user", "alice").await;
    app.advance(Duration::from_secs(8 * 3600 + 1));
    let late = again.post("/ui/tokens", &[("csrf", &csrf2), ("dialect", "knox")]).await;
    assert_eq!(late.status, StatusCode::SEE_OTHER);
    assert!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().is_empty());
    // Revoked elsewhere (signed out in another tab): back to sign-in, nothing done.
    let mut tab = Browser::new(&app);
    let tab_csrf = tab.signed_in("user", "alice").await;
    let mut other = Browser { app: &app, cookies: tab.cookies.clone(), peer: tab.peer, fetch_site: None };
    other.post("/ui/signout", &[("csrf", &tab_csrf)]).await;
    let resp = tab.post("/ui/tokens", &[("csrf", &tab_csrf), ("dialect", "knox")]).await;
    assert_eq!((resp.status, resp.header("location")), (StatusCode::SEE_OTHER, Some("/ui/signin?expired=1")));
    assert!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().is_empty());
    // Disabled and enabled again (as `tokenauth user disable` / `enable` do): the web session
    // stays ended.
    let mut kept = Browser::new(&app);
    kept.signed_in("user", "alice").await;
    app.tokens.set_principal_enabled(PrincipalKind::User, "alice", false).await.unwrap();
    app.tokens.set_principal_enabled(PrincipalKind::User, "alice", true).await.unwrap();
    assert_eq!(kept.get("/ui/").await.header("location"), Some("/ui/signin?expired=1"));
    drop(csrf);
}

async fn static_tokens_are_created_shown_once_and_work(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice@example.com", false).await;
    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "alice@example.com").await;
    let home = text(&b.get("/ui/").await);
    for d in ["usertoken", "knox", "webitel", "dialer"] {
        assert!(home.contains(&format!(r#"<option value="{d}">"#)), "{d} offered");
    }
    let created = b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox"), ("note", "CI deploys")]).await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let token = new_token(&created);
    assert_eq!(verify(&app, &token).await, StatusCode::OK);
    // Shown once: the list shows the row, never the token.
    let again = text(&b.get("/ui/").await);
    assert!(!again.contains(&token), "the token is not shown again");
    assert!(again.contains("CI deploys") && again.contains("static") && again.contains("no expiry"), "{again}");
    let rows = app.tokens.list(PrincipalKind::User, "alice@example.com").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].issuer.as_str(), rows[0].expires_at), ("knox", None));

    // An expiry in days; webitel shows its key (X-Key) too, and the key logs the token out.
    let web = b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "webitel"), ("expires_days", "30")]).await;
    let jwt = new_token(&web);
    let key = attr_after(&text(&web), r#"id="new-key" type="text" readonly value=""#).unwrap();
    let row = app.tokens.list(PrincipalKind::User, "alice@example.com").await.unwrap();
    let row = row.iter().find(|t| t.issuer.as_str() == "webitel").unwrap();
    assert_eq!(row.id.to_string(), key);
    assert_eq!(row.expires_at, Some(app.tokens.now() + time::Duration::days(30)));
    let logout = app.post("/logout").header("x-access-token", &jwt).header("x-key", &key).send().await;
    assert_eq!(logout.status, StatusCode::OK, "{}", text(&logout));
    assert_eq!(verify(&app, &jwt).await, StatusCode::UNAUTHORIZED);

    // Refused: unknown dialects, the web page's own, bad expiries, long notes.
    for (dialect, days, note) in
        [("ui", "", ""), ("bogus", "", ""), ("knox", "0", ""), ("knox", "1.5", ""), ("knox", "36501", "")]
    {
        let fields = [("csrf", csrf.as_str()), ("dialect", dialect), ("expires_days", days), ("note", note)];
        let resp = b.post("/ui/tokens", &fields).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{dialect} {days}");
    }
    let long = "x".repeat(129);
    let resp = b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox"), ("note", &long)]).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.tokens.list(PrincipalKind::User, "alice@example.com").await.unwrap().len(), 2);
}

async fn tokens_are_revoked_by_their_owner_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    add_user(&app, "bob", false).await;
    let mut alice = Browser::new(&app);
    let csrf = alice.signed_in("user", "alice").await;
    let token = new_token(&alice.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "usertoken")]).await);
    let id = app.tokens.list(PrincipalKind::User, "alice").await.unwrap()[0].id;

    let mut bob = Browser::new(&app);
    let bob_csrf = bob.signed_in("user", "bob").await;
    let theirs = bob.post(&format!("/ui/tokens/{id}/revoke"), &[("csrf", &bob_csrf)]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "another's token is not found");
    assert_eq!(bob.post("/ui/tokens/not-a-uuid/revoke", &[("csrf", &bob_csrf)]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(verify(&app, &token).await, StatusCode::OK);

    let mine = alice.post(&format!("/ui/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!((mine.status, mine.header("location")), (StatusCode::SEE_OTHER, Some("/ui/")));
    assert_eq!(verify(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert!(text(&alice.get("/ui/").await).contains("No live tokens."));
}

async fn a_reseller_sees_only_its_own_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "acme", false).await;
    app.tokens
        .create_principal(PrincipalKind::Reseller, "acme", PW.to_owned().into(), &NewProfile::default())
        .await
        .unwrap();
    let mut user = Browser::new(&app);
    let ucsrf = user.signed_in("user", "acme").await;
    user.post("/ui/tokens", &[("csrf", &ucsrf), ("dialect", "knox"), ("note", "the user's")]).await;

    let mut reseller = Browser::new(&app);
    let csrf = reseller.signed_in("reseller", "acme").await;
    let home = text(&reseller.get("/ui/").await);
    assert!(home.contains("(reseller)") && home.contains("No live tokens."), "{home}");
    assert!(!home.contains("the user's"));
    assert!(home.contains(r#"<option value="dialer">"#) && !home.contains(r#"<option value="knox">"#), "{home}");
    assert_eq!(
        reseller.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await.status,
        StatusCode::BAD_REQUEST
    );
    let created = reseller.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "dialer"), ("note", "reseller's")]).await;
    let token = new_token(&created);
    let check = app.get("/verify").bearer(&token).send().await;
    assert_eq!((check.status, check.header("x-auth-kind")), (StatusCode::OK, Some("reseller")));
    let home = text(&reseller.get("/ui/").await);
    assert!(home.contains("reseller's") && !home.contains("the user's"), "{home}");
    // Resellers are never administrators.
    assert_eq!(reseller.get("/ui/admin/users").await.status, StatusCode::FORBIDDEN);
}

async fn non_administrators_are_refused_the_admin_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    add_user(&app, "bob", false).await;
    let bob_id = app.tokens.principal(PrincipalKind::User, "bob").await.unwrap().id;
    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "alice").await;
    assert!(!text(&b.get("/ui/").await).contains("/ui/admin/users"), "no admin link");
    for path in ["/ui/admin/users".to_owned(), format!("/ui/admin/users/{bob_id}/tokens")] {
        let resp = b.get(&path).await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{path}");
        assert!(text(&resp).contains("This page is for administrators."));
    }
    let disable = b.post(&format!("/ui/admin/users/{bob_id}/disable"), &[("csrf", &csrf)]).await;
    assert_eq!(disable.status, StatusCode::FORBIDDEN);
    assert!(app.tokens.principal(PrincipalKind::User, "bob").await.unwrap().enabled);
    assert!(app.tokens.audit_log(10).await.unwrap().is_empty());
    // Signed out, the admin pages send to sign-in.
    let mut anon = Browser::new(&app);
    assert_eq!(anon.get("/ui/admin/users").await.header("location"), Some("/ui/signin"));
}

async fn administrators_manage_users_and_tokens_and_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "root", true).await;
    add_user(&app, "bob", false).await;
    let bob = app.tokens.principal(PrincipalKind::User, "bob").await.unwrap();
    let root = app.tokens.principal(PrincipalKind::User, "root").await.unwrap();
    let bob_token = app.post("/auth/login").basic("bob", PW).send().await.json()["token"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "root").await;
    let users = text(&b.get("/ui/admin/users").await);
    assert!(users.contains(&format!("/ui/admin/users/{}/tokens", bob.id)) && users.contains(">bob<"), "{users}");
    let disable = b.post(&format!("/ui/admin/users/{}/disable", bob.id), &[("csrf", &csrf)]).await;
    assert_eq!((disable.status, disable.header("location")), (StatusCode::SEE_OTHER, Some("/ui/admin/users")));
    assert_eq!(app.post("/auth/login").basic("bob", PW).send().await.status, StatusCode::UNAUTHORIZED);
    assert!(text(&b.get("/ui/admin/users").await).contains("<strong>disabled</strong>"));
    b.post(&format!("/ui/admin/users/{}/enable", bob.id), &[("csrf", &csrf)]).await;
    assert_eq!(verify(&app, &bob_token).await, StatusCode::OK, "enabled again, the token works again");
    // Enabling an enabled user changes nothing and records nothing.
    b.post(&format!("/ui/admin/users/{}/enable", bob.id), &[("csrf", &csrf)]).await;
    let myself = b.post(&format!("/ui/admin/users/{}/disable", root.id), &[("csrf", &csrf)]).await;
    assert_eq!(myself.status, StatusCode::BAD_REQUEST, "an administrator cannot disable themself");

    let list = text(&b.get(&format!("/ui/admin/users/{}/tokens", bob.id)).await);
    let token_id = app.tokens.list(PrincipalKind::User, "bob").await.unwrap()[0].id;
    assert!(list.contains(&format!("/tokens/{token_id}/revoke")), "{list}");
    let revoke = b.post(&format!("/ui/admin/users/{}/tokens/{token_id}/revoke", bob.id), &[("csrf", &csrf)]).await;
    assert_eq!(revoke.status, StatusCode::SEE_OTHER);
    assert_eq!(verify(&app, &bob_token).await, StatusCode::UNAUTHORIZED);
    // A token that is not that user's is not found under them.
    let own = new_token(&b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await);
    let own_id = app.tokens.list(PrincipalKind::User, "root").await.unwrap()[0].id;
    let wrong = b.post(&format!("/ui/admin/users/{}/tokens/{own_id}/revoke", bob.id), &[("csrf", &csrf)]).await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    assert_eq!(verify(&app, &own).await, StatusCode::OK);

    let log: Vec<_> = app
        .tokens
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor_name, e.action, e.target, e.client_ip, e.at))
        .collect();
    let now = app.tokens.now();
    assert_eq!(
        log,
        [
            ("root".into(), "user.disable".into(), "bob".into(), "198.51.100.20".into(), now),
            ("root".into(), "user.enable".into(), "bob".into(), "198.51.100.20".into(), now),
            ("root".into(), "token.revoke".into(), format!("bob usertoken {token_id}"), "198.51.100.20".into(), now),
        ]
    );
}

async fn signing_out_everywhere_ends_every_web_session_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "alice", false).await;
    let mut one = Browser::new(&app);
    let mut two = Browser::new(&app);
    let csrf = one.signed_in("user", "alice").await;
    let csrf_two = two.signed_in("user", "alice").await;
    let api = new_token(&one.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await);
    // Sign out in one browser: only that session ends.
    let out = two.post("/ui/signout", &[("csrf", &csrf_two)]).await;
    assert_eq!(out.header("location"), Some("/ui/signin?signed_out=1"));
    assert_eq!(two.get("/ui/").await.header("location"), Some("/ui/signin"), "the cookie was cleared");
    assert_eq!(one.get("/ui/").await.status, StatusCode::OK);
    let mut three = Browser::new(&app);
    three.signed_in("user", "alice").await;
    let everywhere = one.post("/ui/signout-everywhere", &[("csrf", &csrf)]).await;
    assert_eq!(everywhere.status, StatusCode::SEE_OTHER);
    assert_eq!(three.get("/ui/").await.header("location"), Some("/ui/signin?expired=1"), "ended elsewhere too");
    assert_eq!(verify(&app, &api).await, StatusCode::OK, "API tokens keep working");
}

async fn cookies_are_secure_over_https_from_a_trusted_proxy(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.trusted_proxies = vec!["10.0.0.1/32".parse().unwrap()]).await;
    let proxied = app
        .get("/ui/signin")
        .peer(SocketAddr::from(([10, 0, 0, 1], 4000)))
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert!(set_cookie(&proxied, "tokenauth_csrf").contains("Secure"));
    add_user(&app, "alice", false).await;
    let peer = SocketAddr::from(([10, 0, 0, 1], 4000));
    let csrf = csrf_of(&proxied);
    let signin = app
        .post("/ui/signin")
        .peer(peer)
        .header("x-forwarded-proto", "https")
        .header("cookie", format!("tokenauth_csrf={csrf}"))
        .body(format!("csrf={csrf}&name=alice&password=correct+horse"), "application/x-www-form-urlencoded")
        .send()
        .await;
    assert_eq!(signin.status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&signin, "tokenauth_session").contains("; Secure"), "{:?}", signin.headers);
    assert!(set_cookie(&signin, "tokenauth_csrf").contains("; Secure"), "the CSRF cookie's clearing too");
    // Clearing cookies carry Secure as well: the home page's refusal of an ended session, and
    // sign-out.
    let session = set_cookie(&signin, "tokenauth_session").split(';').next().unwrap().to_owned();
    let home = app.get("/ui/").peer(peer).header("x-forwarded-proto", "https").header("cookie", &session).send().await;
    assert_eq!(home.status, StatusCode::OK, "{}", text(&home));
    let signout = app
        .post("/ui/signout")
        .peer(peer)
        .header("x-forwarded-proto", "https")
        .header("cookie", &session)
        .body(format!("csrf={}", csrf_of(&home)), "application/x-www-form-urlencoded")
        .send()
        .await;
    assert_eq!(signout.status, StatusCode::SEE_OTHER, "{}", text(&signout));
    let cleared = set_cookie(&signout, "tokenauth_session");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("; Secure"), "{cleared}");
    let ended = app.get("/ui/").peer(peer).header("x-forwarded-proto", "https").header("cookie", &session).send().await;
    assert_eq!(ended.header("location"), Some("/ui/signin?expired=1"), "the session has ended");
    let cleared = set_cookie(&ended, "tokenauth_session");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("; Secure"), "{cleared}");
    let spoofed = app.get("/ui/signin").header("x-forwarded-proto", "https").send().await;
    assert!(!set_cookie(&spoofed, "tokenauth_csrf").contains("Secure"), "an untrusted peer's header is ignored");
    drop(app);
    let always =
        TestApp::with_config(Backend::Sqlite, |c| c.ui.secure_cookie = tokenauth::config::SecureCookie::Always).await;
    assert!(set_cookie(&always.get("/ui/signin").send().await, "tokenauth_csrf").contains("Secure"));
}

#[tokio::test]
async fn tokenauth_audit_prints_the_log() {
    let db = crate::helpers::TestDb::new(&Backend::Sqlite).await;
    ok(&admin(&db, &["user", "add", "root", "--admin", "--password-stdin"], Some("pw\n")).await);
    assert_eq!(ok(&admin(&db, &["audit", "--json"], None).await), "[]\n");
    let config = crate::helpers::test_config(&db.url);
    let store = tokenauth::app::open_store(&config).await.unwrap();
    let clock = std::sync::Arc::new(tokenauth::token::clock::SystemClock);
    let tokens = tokenauth::app::token_service(&config, store, clock).await.unwrap();
    ok(&admin(&db, &["user", "add", "bob", "--password-stdin"], Some("pw\n")).await);
    let root = tokens.principal(PrincipalKind::User, "root").await.unwrap();
    let bob = tokens.principal(PrincipalKind::User, "bob").await.unwrap();
    let actor =
        tokenauth::token::admin::Actor::Administrator { principal: &root, client_ip: "192.0.2.1".parse().unwrap() };
    tokens.set_enabled_as(actor, &bob, false).await.unwrap();
    let table = ok(&admin(&db, &["audit"], None).await);
    let lines: Vec<_> = table.lines().collect();
    assert!(lines[0].starts_with("AT") && lines[0].contains("ACTION"), "{table}");
    assert!(
        lines[1].contains("user:root") && lines[1].contains("user.disable") && lines[1].ends_with("bob"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&admin(&db, &["audit", "--json"], None).await)).unwrap();
    assert_eq!(json[0]["client_ip"], "192.0.2.1");
    assert_eq!(json[0]["actor_name"], "root");
}

async fn administrators_forms_need_their_csrf_token_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    add_user(&app, "root", true).await;
    add_user(&app, "bob", false).await;
    let bob = app.tokens.principal(PrincipalKind::User, "bob").await.unwrap();
    let bob_token = app.post("/auth/login").basic("bob", PW).send().await.json()["token"].as_str().unwrap().to_owned();
    let token_id = app.tokens.list(PrincipalKind::User, "bob").await.unwrap()[0].id;
    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "root").await;
    for path in [
        format!("/ui/admin/users/{}/disable", bob.id),
        format!("/ui/admin/users/{}/tokens/{token_id}/revoke", bob.id),
        "/ui/signout-everywhere".to_owned(),
    ] {
        for bad in ["", "0123", &csrf[..63]] {
            assert_eq!(b.post(&path, &[("csrf", bad)]).await.status, StatusCode::BAD_REQUEST, "{path} {bad:?}");
        }
    }
    assert!(app.tokens.principal(PrincipalKind::User, "bob").await.unwrap().enabled);
    assert_eq!(verify(&app, &bob_token).await, StatusCode::OK);
    assert!(app.tokens.audit_log(10).await.unwrap().is_empty());
    assert_eq!(b.get("/ui/").await.status, StatusCode::OK, "still signed in");

    // Disabling a user ends its web sessions for good: enabling it again does not revive them.
    let mut bobs = Browser::new(&app);
    bobs.peer = SocketAddr::from(([198, 51, 100, 99], 50000));
    bobs.signed_in("user", "bob").await;
    b.post(&format!("/ui/admin/users/{}/disable", bob.id), &[("csrf", &csrf)]).await;
    b.post(&format!("/ui/admin/users/{}/enable", bob.id), &[("csrf", &csrf)]).await;
    assert_eq!(bobs.get("/ui/").await.header("location"), Some("/ui/signin?expired=1"));
    assert_eq!(verify(&app, &bob_token).await, StatusCode::OK, "its API tokens came back");
}

async fn token_limits_hold_on_the_web_page(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.max_tokens_per_user = Some(1)).await;
    add_user(&app, "alice", false).await;
    let mut b = Browser::new(&app);
    let csrf = b.signed_in("user", "alice").await;
    assert_eq!(b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await.status, StatusCode::OK);
    let second = b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "knox")]).await;
    assert_eq!(second.status, StatusCode::FORBIDDEN);
    assert!(text(&second).contains("as many live tokens of this dialect as allowed"));
    assert_eq!(app.tokens.list(PrincipalKind::User, "alice").await.unwrap().len(), 1);
    // Other dialects have their own (no) limit.
    assert_eq!(b.post("/ui/tokens", &[("csrf", &csrf), ("dialect", "usertoken")]).await.status, StatusCode::OK);
}

#[test]
fn the_web_page_needs_a_prefix_and_a_sane_session_length() {
    for (prefix, ttl) in [("/", "8h"), ("", "8h"), ("/ü", "8h"), ("/ui", "0s"), ("/ui", "400d")] {
        let mut config = tokenauth::config::Config::default();
        config.ui.prefix = prefix.into();
        config.ui.session_ttl = humantime::parse_duration(ttl).unwrap();
        assert!(config.validate().is_err(), "{prefix:?} {ttl}");
    }
}
