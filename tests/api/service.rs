//! The token service's policy with a fixed clock: expiry, the once-a-minute last-used write,
//! principal state, credential failures, rehash, sweep, minting. Dialect shapes are tested in
//! their own files; here the typed outcomes are asserted.

use std::sync::Arc;
use std::time::Duration;

use tokenauth::app;
use tokenauth::error::{AuthFailure, CredentialFailure, Error, Malformation};
use tokenauth::model::{DialectId, Issuer, PrincipalKind, TokenKind};
use tokenauth::token::admin::Actor;
use tokenauth::token::{Authenticated, LoginOptions, MintOptions, RevokeScope, TokenPolicy};

use crate::helpers::{Backend, LOCALHOST, T0, TestApp};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const USER: PrincipalKind = PrincipalKind::User;

fn usertoken(app: &TestApp) -> TokenPolicy {
    tokenauth::dialect::usertoken::policy(&app.config.usertoken)
}

fn knox(app: &TestApp) -> TokenPolicy {
    tokenauth::dialect::knox::policy(&app.config.knox)
}

async fn login(app: &TestApp, policy: &TokenPolicy) -> String {
    let issued = app
        .tokens
        .login(policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, LoginOptions::default())
        .await
        .unwrap();
    issued.token.expose().to_owned()
}

async fn refused(app: &TestApp, policy: &TokenPolicy, token: &str) -> AuthFailure {
    match app.tokens.authenticate(policy, token).await {
        Err(Error::Unauthenticated(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn ok(app: &TestApp, policy: &TokenPolicy, token: &str) -> Authenticated {
    app.tokens.authenticate(policy, token).await.unwrap()
}

backend_tests!(
    audit_entries_are_swept_after_their_retention,
    session_tokens_expire_at_their_ttl,
    explicit_expiry_wins_and_past_expiry_is_refused,
    last_used_is_written_at_most_once_a_minute,
    principal_state_governs_its_tokens,
    tokens_are_refused_by_other_dialects,
    shape_is_checked_before_any_lookup,
    credential_failures_are_typed,
    unknown_users_cost_one_real_verification,
    a_refresh_waiting_to_be_written_already_counts,
    login_rehashes_when_parameters_change,
    sweep_honours_retention,
    minted_tokens,
    notes_are_limited,
    revoke_all_scopes,
    administrators_actions_are_recorded_before_they_are_taken,
);

async fn session_tokens_expire_at_their_ttl(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.token_ttl = Some(HOUR)).await;
    app.add_user("alice", "pw").await;
    let policy = usertoken(&app);
    let token = login(&app, &policy).await;
    let auth = ok(&app, &policy, &token).await;
    assert_eq!(auth.token().expires_at, Some(T0 + HOUR));
    app.advance(HOUR - Duration::from_micros(1));
    ok(&app, &policy, &token).await;
    app.advance(Duration::from_micros(1));
    assert_eq!(refused(&app, &policy, &token).await, AuthFailure::Expired);
}

async fn explicit_expiry_wins_and_past_expiry_is_refused(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.usertoken.token_ttl = Some(HOUR)).await;
    app.add_user("alice", "pw").await;
    let policy = usertoken(&app);
    let at = T0 + HOUR * 48;
    let options = LoginOptions { note: None, expires_at: Some(at) };
    let issued = app.tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, options).await.unwrap();
    assert_eq!(issued.record.expires_at, Some(at));
    for past in [T0, T0 - MINUTE] {
        let options = LoginOptions { note: None, expires_at: Some(past) };
        let err =
            app.tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, options).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    }
    // Nothing was written for the refused logins.
    assert_eq!(app.tokens.list(USER, "alice").await.unwrap().len(), 1);
}

async fn last_used_is_written_at_most_once_a_minute(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let token = login(&app, &policy).await;
    let last_used = || async { app.tokens.list(USER, "alice").await.unwrap()[0].last_used_at };

    ok(&app, &policy, &token).await;
    assert_eq!(last_used().await, None, "the check itself never writes");
    app.flush().await;
    assert_eq!(last_used().await, Some(T0));

    app.advance(MINUTE - Duration::from_secs(1));
    ok(&app, &policy, &token).await;
    app.flush().await;
    assert_eq!(last_used().await, Some(T0), "within the minute: no write");

    app.advance(Duration::from_secs(1));
    ok(&app, &policy, &token).await;
    app.flush().await;
    assert_eq!(last_used().await, Some(T0 + MINUTE));
    assert_eq!(app.tokens.flush_touches().await.unwrap(), 0, "queue drained");
}

async fn principal_state_governs_its_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let token = login(&app, &policy).await;

    app.tokens.set_principal_enabled(USER, "alice", false).await.unwrap();
    assert_eq!(refused(&app, &policy, &token).await, AuthFailure::PrincipalDisabled);
    app.tokens.set_principal_enabled(USER, "alice", true).await.unwrap();
    ok(&app, &policy, &token).await;

    let id = app.tokens.list(USER, "alice").await.unwrap()[0].id;
    app.tokens.set_token_enabled(id, false).await.unwrap();
    assert_eq!(refused(&app, &policy, &token).await, AuthFailure::TokenDisabled);
    app.tokens.set_token_enabled(id, true).await.unwrap();
    ok(&app, &policy, &token).await;

    app.tokens.set_password(USER, "alice", "new".to_owned().into()).await.unwrap();
    assert_eq!(refused(&app, &policy, &token).await, AuthFailure::Revoked);
    let err =
        app.tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, LoginOptions::default()).await;
    assert!(matches!(err, Err(Error::BadCredentials(CredentialFailure::WrongPassword))));
    let issued =
        app.tokens.login(&policy, USER, "alice", "new".to_owned().into(), LOCALHOST, LoginOptions::default()).await;
    let fresh = issued.unwrap().token.expose().to_owned();

    app.tokens.remove_principal(USER, "alice").await.unwrap();
    assert_eq!(refused(&app, &policy, &fresh).await, AuthFailure::Unknown);
    assert!(matches!(app.tokens.list(USER, "alice").await, Err(Error::NoSuchPrincipal { .. })));
}

async fn tokens_are_refused_by_other_dialects(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.token_prefix = String::new()).await;
    app.add_user("alice", "pw").await;
    let (u, k) = (usertoken(&app), knox(&app));
    let ut = login(&app, &u).await;
    let kt = login(&app, &k).await;
    assert_eq!(refused(&app, &k, &ut).await, AuthFailure::Malformed(Malformation::BadFormat));
    assert_eq!(refused(&app, &u, &kt).await, AuthFailure::Malformed(Malformation::BadFormat));
    // Same shape, other dialect: found, then refused as another dialect's token.
    let pretend = TokenPolicy { issuer: Issuer::Dialect(DialectId::Webitel), ..k.clone() };
    assert_eq!(refused(&app, &pretend, &kt).await, AuthFailure::WrongDialect);
}

async fn shape_is_checked_before_any_lookup(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let policy = usertoken(&app);
    // The store is closed: any lookup would fail with Unavailable, so these prove no lookup ran.
    app.store.close().await;
    assert_eq!(refused(&app, &policy, "").await, AuthFailure::Malformed(Malformation::Empty));
    assert_eq!(refused(&app, &policy, "garbage").await, AuthFailure::Malformed(Malformation::BadFormat));
    let err = app.tokens.authenticate(&policy, &uuid::Uuid::new_v4().to_string()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable), "a well-formed token does reach the store: {err:?}");
}

async fn credential_failures_are_typed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let attempt = |user: &'static str, pw: &'static str| {
        let app = &app;
        let policy = policy.clone();
        async move { app.tokens.login(&policy, USER, user, pw.to_owned().into(), LOCALHOST, LoginOptions::default()).await }
    };
    assert!(matches!(attempt("bob", "pw").await, Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal))));
    assert!(matches!(attempt(" alice", "pw").await, Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal))));
    assert!(matches!(attempt("Alice", "pw").await, Err(Error::BadCredentials(CredentialFailure::UnknownPrincipal))));
    assert!(matches!(attempt("alice", "PW").await, Err(Error::BadCredentials(CredentialFailure::WrongPassword))));
    app.tokens.set_principal_enabled(USER, "alice", false).await.unwrap();
    assert!(matches!(attempt("alice", "pw").await, Err(Error::BadCredentials(CredentialFailure::Disabled))));
    // A disabled user with a wrong password learns nothing about being disabled.
    assert!(matches!(attempt("alice", "nope").await, Err(Error::BadCredentials(CredentialFailure::WrongPassword))));
    assert!(app.tokens.list(USER, "alice").await.unwrap().is_empty());
}

async fn login_rehashes_when_parameters_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let hash = || async { app.store.principal_by_name(USER, "alice").await.unwrap().unwrap().password_hash };
    assert!(hash().await.contains("m=1024,t=1,p=1"), "{}", hash().await);

    let mut stronger = app.config.clone();
    stronger.passwords.memory_kib = 2048;
    stronger.passwords.iterations = 2;
    let tokens = app::token_service(&stronger, Arc::clone(&app.store), app.clock.clone()).await.unwrap();
    let policy = knox(&app);
    tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, LoginOptions::default()).await.unwrap();
    assert!(hash().await.contains("m=2048,t=2,p=1"), "{}", hash().await);
    // The new hash still verifies, with either service.
    tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, LoginOptions::default()).await.unwrap();
    app.tokens.login(&policy, USER, "alice", "pw".to_owned().into(), LOCALHOST, LoginOptions::default()).await.unwrap();
}

async fn sweep_honours_retention(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.tokens.retention = HOUR * 24;
        c.usertoken.token_ttl = Some(HOUR);
    })
    .await;
    app.add_user("alice", "pw").await;
    let policy = usertoken(&app);
    let revoked = login(&app, &policy).await;
    let expired = login(&app, &policy).await;
    let auth = ok(&app, &policy, &revoked).await;
    app.tokens.revoke(&auth).await.unwrap();
    let mint = MintOptions { static_token: true, ..Default::default() };
    let forever = app.tokens.mint(&policy, USER, "alice", mint).await.unwrap().token.expose().to_owned();

    app.advance(HOUR * 24);
    assert_eq!(app.tokens.sweep().await.unwrap(), 0, "tombstones are kept for the retention period");
    assert_eq!(refused(&app, &policy, &revoked).await, AuthFailure::Revoked);
    assert_eq!(refused(&app, &policy, &expired).await, AuthFailure::Expired);
    app.advance(HOUR + MINUTE);
    assert_eq!(app.tokens.sweep().await.unwrap(), 2);
    assert_eq!(refused(&app, &policy, &revoked).await, AuthFailure::Unknown);
    assert_eq!(refused(&app, &policy, &expired).await, AuthFailure::Unknown);
    ok(&app, &policy, &forever).await;
}

/// `audit.retention`: the sweep deletes audit entries older than it, and only those.
async fn audit_entries_are_swept_after_their_retention(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.audit.retention = HOUR * 48).await;
    let entry = |action: &str| tokenauth::model::AuditEntry {
        at: tokenauth::token::clock::Clock::now(&*app.clock),
        actor_kind: PrincipalKind::User,
        actor_name: "root".into(),
        action: action.into(),
        target: "alice".into(),
        client_ip: "127.0.0.1".into(),
    };
    app.store.insert_audit(&entry("user.disable")).await.unwrap();
    app.advance(HOUR * 24);
    app.store.insert_audit(&entry("user.enable")).await.unwrap();
    app.advance(HOUR * 24);
    app.tokens.sweep().await.unwrap();
    assert_eq!(app.store.list_audit(10).await.unwrap().len(), 2, "kept for exactly the retention period");
    app.advance(MINUTE);
    app.tokens.sweep().await.unwrap();
    let left: Vec<String> = app.store.list_audit(10).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(left, ["user.enable"], "the older entry is swept, the newer kept");
}

async fn minted_tokens(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.knox.token_ttl = Some(HOUR)).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let mint = |options| app.tokens.mint(&policy, USER, "alice", options);
    let fixed = mint(MintOptions { static_token: true, ..Default::default() }).await.unwrap();
    assert_eq!(fixed.record.kind, TokenKind::Static);
    assert_eq!(fixed.record.expires_at, None);
    let fixed_ttl =
        mint(MintOptions { static_token: true, ttl: Some(HOUR * 2), note: Some("ci".into()) }).await.unwrap();
    assert_eq!(fixed_ttl.record.expires_at, Some(T0 + HOUR * 2));
    assert_eq!(fixed_ttl.record.note.as_deref(), Some("ci"));
    let session = mint(MintOptions::default()).await.unwrap();
    assert_eq!(session.record.kind, TokenKind::Session);
    assert_eq!(session.record.expires_at, Some(T0 + HOUR), "the dialect's lifetime");
    let absurd = mint(MintOptions { ttl: Some(Duration::from_secs(u64::MAX / 4)), ..Default::default() }).await;
    assert!(matches!(absurd, Err(Error::Invalid(_))), "{absurd:?}");
    for issued in [fixed, fixed_ttl, session] {
        ok(&app, &policy, issued.token.expose()).await;
    }
    let missing = app.tokens.mint(&policy, USER, "nobody", MintOptions::default()).await;
    assert!(matches!(missing, Err(Error::NoSuchPrincipal { .. })));
    // Minting is an administrator's act: it does not count as the user logging in.
    assert_eq!(app.tokens.principal(USER, "alice").await.unwrap().last_login_at, None);
}

async fn notes_are_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let policy = usertoken(&app);
    let login = |note: String| {
        app.tokens.login(
            &policy,
            USER,
            "alice",
            "pw".to_owned().into(),
            LOCALHOST,
            LoginOptions { note: Some(note), expires_at: None },
        )
    };
    assert_eq!(login("é".repeat(128)).await.unwrap().record.note, Some("é".repeat(128)));
    assert!(matches!(login("x".repeat(129)).await, Err(Error::Invalid(_))));
}

async fn revoke_all_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let (u, k) = (usertoken(&app), knox(&app));
    let k1 = login(&app, &k).await;
    let k2 = login(&app, &k).await;
    let u1 = login(&app, &u).await;
    let auth = ok(&app, &k, &k1).await;
    assert_eq!(app.tokens.revoke_all(&auth, RevokeScope::SameDialect).await.unwrap(), 2);
    assert_eq!(refused(&app, &k, &k2).await, AuthFailure::Revoked);
    let auth = ok(&app, &u, &u1).await;
    assert_eq!(app.tokens.revoke_all(&auth, RevokeScope::AllDialects).await.unwrap(), 1);
    assert_eq!(refused(&app, &u, &u1).await, AuthFailure::Revoked);
    // A second revoke of the same token is refused, not silently accepted.
    assert!(matches!(app.tokens.revoke(&auth).await, Err(Error::Unauthenticated(AuthFailure::Revoked))));
}

async fn unknown_users_cost_one_real_verification(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    for (user, pw) in [("nobody", "pw"), ("alice", "wrong"), ("not a valid\nname", "pw"), ("alice", "pw")] {
        let before = app.tokens.password_verifications();
        let _ = app.tokens.login(&policy, USER, user, pw.to_owned().into(), LOCALHOST, LoginOptions::default()).await;
        assert_eq!(app.tokens.password_verifications(), before + 1, "{user:?} cost one verification");
    }
}

async fn a_refresh_waiting_to_be_written_already_counts(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.knox.token_ttl = Some(HOUR * 10);
        c.knox.auto_refresh = true;
    })
    .await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let token = login(&app, &policy).await;
    app.advance(HOUR * 9);
    ok(&app, &policy, &token).await; // queues expiry T0 + 19h, not yet written
    app.advance(HOUR * 2); // T0 + 11h: past the stored expiry, before the queued one
    let auth = ok(&app, &policy, &token).await;
    assert_eq!(auth.token().expires_at, Some(T0 + HOUR * 19), "the queued expiry is the one in force");
    app.flush().await;
    assert_eq!(app.tokens.list(USER, "alice").await.unwrap()[0].expires_at, Some(T0 + HOUR * 21));
}

/// A flush that cannot write keeps its batch for the next one. SQLite only: another
/// connection holds the write lock until the flush has given up.
#[tokio::test]
async fn a_failed_flush_is_retried() {
    use sqlx::Connection as _;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user("alice", "pw").await;
    let policy = knox(&app);
    let token = login(&app, &policy).await;
    ok(&app, &policy, &token).await;

    let mut locker = sqlx::SqliteConnection::connect(app.config.database_url.expose()).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.unwrap();
    let failed = app.tokens.flush_touches().await;
    assert!(matches!(failed, Err(Error::Unavailable)), "{failed:?}");
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();

    assert_eq!(app.tokens.flush_touches().await.unwrap(), 1, "the batch was kept");
    assert_eq!(app.tokens.list(USER, "alice").await.unwrap()[0].last_used_at, Some(T0));
}

/// The admin facade: one place for who may act, what is refused, and the audit record.
async fn administrators_actions_are_recorded_before_they_are_taken(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let profile = tokenauth::token::NewProfile {
        attributes: tokenauth::model::Attributes { admin: true, ..Default::default() },
        ..Default::default()
    };
    let root = app.tokens.create_principal(USER, "root", "pw".to_owned().into(), &profile).await.unwrap();
    let bob = app.add_user("bob", "pw").await;
    let ip = "192.0.2.9".parse().unwrap();
    let admin = Actor::Administrator { principal: &root, client_ip: ip };
    let audit = |limit| {
        let tokens = Arc::clone(&app.tokens);
        async move { tokens.audit_log(limit).await.unwrap() }
    };

    // Administrators cannot disable themselves; nothing is recorded.
    let err = app.tokens.set_enabled_as(admin, &root, false).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m.contains("cannot disable yourself")), "{err:?}");
    // A change is recorded, then made; the same again changes nothing and records nothing.
    app.tokens.set_enabled_as(admin, &bob, false).await.unwrap();
    let bob = app.tokens.principal(USER, "bob").await.unwrap();
    assert!(!bob.enabled);
    app.tokens.set_enabled_as(admin, &bob, false).await.unwrap();
    let log = audit(10).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].action.as_str(), log[0].target.as_str(), log[0].actor_name.as_str()),
        ("user.disable", "bob", "root")
    );
    assert_eq!(log[0].client_ip, "192.0.2.9");
    // The operator's actions are taken and not recorded (the log names principals).
    app.tokens.set_enabled_as(Actor::Operator, &bob, true).await.unwrap();
    assert!(app.tokens.principal(USER, "bob").await.unwrap().enabled);
    assert_eq!(audit(10).await.len(), 1);

    // A revocation is recorded with the token's owner and dialect.
    let policy = knox(&app);
    let issued = app.tokens.mint(&policy, USER, "bob", Default::default()).await.unwrap();
    app.tokens.revoke_token_as(admin, issued.record.id).await.unwrap();
    let log = audit(10).await;
    assert_eq!(log[1].action, "token.revoke");
    assert_eq!(log[1].target, format!("bob knox {}", issued.record.id));
    assert_eq!(refused(&app, &policy, issued.token.expose()).await, AuthFailure::Revoked);
    let missing = uuid::Uuid::new_v4();
    assert!(matches!(app.tokens.revoke_token_as(admin, missing).await, Err(Error::NoSuchToken(_))));
    assert_eq!(audit(10).await.len(), 2, "an action on nothing is not recorded");

    // Someone who is not an administrator is refused, and nothing is recorded or done.
    let not_admin = Actor::Administrator { principal: &bob, client_ip: ip };
    let carol = app.add_user("carol", "pw").await;
    assert!(matches!(app.tokens.set_enabled_as(not_admin, &carol, false).await, Err(Error::Forbidden)));
    assert!(app.tokens.principal(USER, "carol").await.unwrap().enabled);
    assert_eq!(audit(10).await.len(), 2);
    // Users by id: users only.
    assert_eq!(app.tokens.user_by_id(carol.id).await.unwrap().map(|p| p.name), Some("carol".to_owned()));
    assert_eq!(app.tokens.user_by_id(carol.id + 1000).await.unwrap(), None);
}
