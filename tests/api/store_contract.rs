//! The store contract: one set of stories run against the store over SQLite and over Postgres, so the two
//! backends cannot drift (the compile-time query check sqlx would give is replaced by this).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokenauth::config::{DatabaseConfig, DatabaseUrl};
use tokenauth::model::{
    Acl, Attributes, DialectId, GroupRef, Issuer, Principal, PrincipalKind, Role, RoleSummary, SigningKey,
    ThrottleCounter, ThrottleScope, TokenHash, TokenKind, Username,
};
use tokenauth::store::{
    self, InsertRules, Inserted, NewGroup, NewPrincipal, NewRole, NewToken, Store, StoreError, ThrottleStep, TokenTouch,
};
use uuid::Uuid;

use crate::helpers::{Backend, T0, TestDb};

const HOUR: Duration = Duration::from_secs(3600);

async fn open(backend: &Backend) -> (Arc<dyn Store>, TestDb) {
    let db = TestDb::new(backend).await;
    let store = store::connect(&DatabaseUrl::new(&db.url), &DatabaseConfig::default()).await.unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

async fn principal(store: &dyn Store, kind: PrincipalKind, name: &str) -> Principal {
    let name = Username::parse(name).unwrap();
    store
        .insert_principal(&NewPrincipal {
            kind,
            name: &name,
            password_hash: "$argon2id$fake",
            created_at: T0,
            role_id: None,
            group_id: None,
            attributes: &Attributes::default(),
        })
        .await
        .unwrap()
}

struct Minted {
    id: Uuid,
    digest: TokenHash,
}

async fn token(
    store: &dyn Store,
    owner: i64,
    dialect: &str,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    rules: InsertRules<'_>,
) -> Result<Inserted, StoreError> {
    token_with(store, owner, dialect, created_at, expires_at, rules).await.map(|(i, _)| i)
}

async fn token_with(
    store: &dyn Store,
    owner: i64,
    dialect: &str,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    rules: InsertRules<'_>,
) -> Result<(Inserted, Minted), StoreError> {
    let minted = Minted { id: Uuid::new_v4(), digest: TokenHash::of(&Uuid::new_v4().to_string()) };
    let new = NewToken {
        id: minted.id,
        principal_id: owner,
        issuer: dialect.parse().unwrap(),
        kind: TokenKind::Session,
        digest: &minted.digest,
        note: Some("a note"),
        created_at,
        expires_at,
    };
    store.insert_token(&new, rules).await.map(|i| (i, minted))
}

async fn mint(store: &dyn Store, owner: i64, dialect: &str, expires_at: Option<OffsetDateTime>) -> Minted {
    let (inserted, minted) = token_with(store, owner, dialect, T0, expires_at, InsertRules::default()).await.unwrap();
    assert_eq!(inserted, Inserted::Yes);
    minted
}

backend_tests!(
    serializable: migrations_are_idempotent_and_ping_works,
    principals_round_trip,
    principal_names_are_exact_and_unique_per_kind,
    principal_changes_report_missing_rows,
    tokens_round_trip_exactly,
    revocation_keeps_a_tombstone,
    revoke_all_is_scoped,
    token_enable_bumps_version,
    bump_writes_both_times,
    touches_never_move_expiry_backwards,
    sweep_deletes_only_past_retention,
    removing_a_principal_cascades,
    password_change_can_revoke_in_one_transaction,
    token_limit_refuses_without_writing,
    token_limit_holds_under_concurrency,
    insert_for_a_missing_owner_is_not_found,
    duplicate_digest_is_a_conflict,
    a_login_loses_to_a_password_change_or_disable_made_meanwhile,
    rehash_is_a_compare_and_swap,
    bump_refuses_a_revoked_token,
    roles_round_trip_exactly_and_names_are_unique,
    roles_are_listed_by_name_with_member_counts,
    principals_and_token_owners_carry_their_role,
    roles_in_use_cannot_be_deleted,
    signing_keys_are_kept_exactly_and_never_overwritten,
    principal_attributes_round_trip_exactly,
    groups_round_trip_and_are_listed_by_owner,
    groups_with_members_cannot_be_deleted,
    removing_a_reseller_leaves_its_groups_unowned,
    throttle_counters_are_written_together_and_returned_in_key_order,
);

async fn migrations_are_idempotent_and_ping_works(backend: Backend) {
    let (store, _db) = open(&backend).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(matches!(store.backend(), "sqlite" | "postgres"));
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store must not answer");
}

async fn principals_round_trip(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let bob = principal(&*store, PrincipalKind::User, "bob").await;
    assert!(bob.id > alice.id);
    assert_eq!(alice.name, "alice");
    assert!(alice.enabled);
    assert_eq!(alice.created_at, T0);
    assert_eq!(alice.last_login_at, None);
    let found = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(found, alice);
    let listed = store.list_principals(PrincipalKind::User).await.unwrap();
    assert_eq!(listed, vec![alice.clone(), bob]);
    assert!(store.list_principals(PrincipalKind::Reseller).await.unwrap().is_empty());

    store.set_principal_enabled(alice.id, false).await.unwrap();
    assert!(!store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap().enabled);
    store.set_password_hash(alice.id, "$argon2id$other", None).await.unwrap();
    let changed = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$other");
}

async fn principal_names_are_exact_and_unique_per_kind(backend: Backend) {
    let (store, _db) = open(&backend).await;
    principal(&*store, PrincipalKind::User, "Alice").await;
    assert!(store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().is_none());
    assert!(store.principal_by_name(PrincipalKind::User, "Alice ").await.unwrap().is_none());
    assert!(store.principal_by_name(PrincipalKind::Reseller, "Alice").await.unwrap().is_none());
    let name = Username::parse("Alice").unwrap();
    let dup = NewPrincipal {
        kind: PrincipalKind::User,
        name: &name,
        password_hash: "h",
        created_at: T0,
        role_id: None,
        group_id: None,
        attributes: &Attributes::default(),
    };
    assert!(matches!(store.insert_principal(&dup).await, Err(StoreError::Conflict(_))));
    // Same name, other kind: a separate principal.
    let reseller = principal(&*store, PrincipalKind::Reseller, "Alice").await;
    assert_eq!(reseller.kind, PrincipalKind::Reseller);
    principal(&*store, PrincipalKind::User, "alice").await;
    assert_eq!(store.list_principals(PrincipalKind::User).await.unwrap().len(), 2);
}

async fn principal_changes_report_missing_rows(backend: Backend) {
    let (store, _db) = open(&backend).await;
    assert!(matches!(store.set_principal_enabled(999, true).await, Err(StoreError::NotFound)));
    assert!(matches!(store.set_password_hash(999, "h", Some(T0)).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_principal(999).await, Err(StoreError::NotFound)));
    assert!(matches!(store.bump(999, Uuid::new_v4(), T0).await, Err(StoreError::NotFound)));
}

async fn tokens_round_trip_exactly(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    // Microsecond precision survives both backends.
    let created = T0 + Duration::from_micros(123_456);
    let expires = created + HOUR;
    let (inserted, minted) =
        token_with(&*store, alice.id, "knox", created, Some(expires), InsertRules::default()).await.unwrap();
    assert_eq!(inserted, Inserted::Yes);

    let found = store.token_by_digest(&minted.digest).await.unwrap().unwrap();
    assert_eq!(found.token.id, minted.id);
    assert_eq!(found.token.principal_id, alice.id);
    assert_eq!(found.token.issuer.as_str(), "knox");
    assert_eq!(found.token.kind, TokenKind::Session);
    assert_eq!(found.token.note.as_deref(), Some("a note"));
    assert_eq!(found.token.created_at, created);
    assert_eq!(found.token.expires_at, Some(expires));
    assert_eq!(found.token.last_used_at, None);
    assert!(found.token.enabled);
    assert_eq!(found.token.version, 0);
    assert_eq!(found.token.revoked_at, None);
    assert_eq!(found.owner.name, "alice");
    assert_eq!(found.owner.kind, PrincipalKind::User);
    assert!(found.owner.enabled);

    assert_eq!(store.token_by_id(minted.id).await.unwrap().unwrap(), found);
    assert!(store.token_by_digest(&TokenHash::of("nope")).await.unwrap().is_none());
    assert!(store.token_by_id(Uuid::new_v4()).await.unwrap().is_none());

    let later =
        token_with(&*store, alice.id, "usertoken", created + HOUR, None, InsertRules::default()).await.unwrap().1;
    let list = store.list_tokens(alice.id).await.unwrap();
    assert_eq!(list.iter().map(|t| t.id).collect::<Vec<_>>(), vec![later.id, minted.id], "newest first");
    assert_eq!(list[0].expires_at, None);
}

async fn revocation_keeps_a_tombstone(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let t = mint(&*store, alice.id, "knox", None).await;
    assert!(store.revoke_token(t.id, T0 + HOUR).await.unwrap());
    assert!(!store.revoke_token(t.id, T0 + HOUR * 2).await.unwrap(), "second revoke is a no-op");
    let row = store.token_by_digest(&t.digest).await.unwrap().unwrap().token;
    assert_eq!(row.revoked_at, Some(T0 + HOUR), "first revocation time kept");
    assert_eq!(row.version, 1);
    assert!(!store.revoke_token(Uuid::new_v4(), T0).await.unwrap());
}

async fn revoke_all_is_scoped(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let bob = principal(&*store, PrincipalKind::User, "bob").await;
    let k1 = mint(&*store, alice.id, "knox", None).await;
    let k2 = mint(&*store, alice.id, "knox", Some(T0 + HOUR)).await;
    let u1 = mint(&*store, alice.id, "usertoken", None).await;
    let b1 = mint(&*store, bob.id, "knox", None).await;
    store.revoke_token(k2.id, T0).await.unwrap();

    assert_eq!(
        store.revoke_all(alice.id, Some(Issuer::Dialect(DialectId::Knox)), T0 + HOUR).await.unwrap(),
        1,
        "k2 was already revoked"
    );
    let revoked = |m: &Minted| {
        let store = Arc::clone(&store);
        let digest = m.digest;
        async move { store.token_by_digest(&digest).await.unwrap().unwrap().token.revoked_at }
    };
    assert_eq!(revoked(&k1).await, Some(T0 + HOUR));
    assert_eq!(revoked(&k2).await, Some(T0));
    assert_eq!(revoked(&u1).await, None);
    assert_eq!(revoked(&b1).await, None);
    assert_eq!(store.revoke_all(alice.id, None, T0 + HOUR * 2).await.unwrap(), 1);
    assert_eq!(revoked(&u1).await, Some(T0 + HOUR * 2));
    assert_eq!(revoked(&b1).await, None);
}

async fn token_enable_bumps_version(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let t = mint(&*store, alice.id, "usertoken", None).await;
    let row = || async { store.token_by_id(t.id).await.unwrap().unwrap().token };
    assert!(store.set_token_enabled(t.id, false).await.unwrap());
    assert!(!row().await.enabled);
    assert_eq!(row().await.version, 1);
    assert!(store.set_token_enabled(t.id, false).await.unwrap());
    assert_eq!(row().await.version, 1, "no change, no new version");
    assert!(store.set_token_enabled(t.id, true).await.unwrap());
    assert!(row().await.enabled);
    assert_eq!(row().await.version, 2);
    assert!(!store.set_token_enabled(Uuid::new_v4(), true).await.unwrap());
}

async fn bump_writes_both_times(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let t = mint(&*store, alice.id, "usertoken", Some(T0 + HOUR)).await;
    let at = T0 + Duration::from_secs(90);
    store.bump(alice.id, t.id, at).await.unwrap();
    let found = store.token_by_id(t.id).await.unwrap().unwrap();
    assert_eq!(found.token.last_used_at, Some(at));
    assert_eq!(found.token.expires_at, Some(T0 + HOUR), "bump never extends expiry");
    let p = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(p.last_login_at, Some(at));
    assert!(matches!(store.bump(alice.id, Uuid::new_v4(), at).await, Err(StoreError::NotFound)));
}

async fn touches_never_move_expiry_backwards(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let sliding = mint(&*store, alice.id, "knox", Some(T0 + HOUR)).await;
    let forever = mint(&*store, alice.id, "knox", None).await;
    let revoked = mint(&*store, alice.id, "knox", Some(T0 + HOUR)).await;
    store.revoke_token(revoked.id, T0).await.unwrap();
    let used = T0 + Duration::from_secs(60);
    store
        .apply_touches(&[
            TokenTouch { id: sliding.id, last_used_at: Some(used), expires_at: Some(T0 + HOUR * 3) },
            TokenTouch { id: forever.id, last_used_at: Some(used), expires_at: Some(T0 + HOUR * 3) },
            TokenTouch { id: revoked.id, last_used_at: None, expires_at: Some(T0 + HOUR * 3) },
            TokenTouch { id: Uuid::new_v4(), last_used_at: Some(used), expires_at: None },
        ])
        .await
        .unwrap();
    let row = |id| {
        let store = Arc::clone(&store);
        async move { store.token_by_id(id).await.unwrap().unwrap().token }
    };
    assert_eq!(row(sliding.id).await.expires_at, Some(T0 + HOUR * 3));
    assert_eq!(row(sliding.id).await.last_used_at, Some(used));
    assert_eq!(row(forever.id).await.expires_at, None, "a never-expiring token gains no expiry");
    assert_eq!(row(revoked.id).await.expires_at, Some(T0 + HOUR), "a revoked token is not extended");
    assert_eq!(row(revoked.id).await.last_used_at, None);

    // Older values lose: neither time moves backwards.
    store
        .apply_touches(&[TokenTouch { id: sliding.id, last_used_at: Some(T0), expires_at: Some(T0 + HOUR * 2) }])
        .await
        .unwrap();
    assert_eq!(row(sliding.id).await.expires_at, Some(T0 + HOUR * 3));
    assert_eq!(row(sliding.id).await.last_used_at, Some(used));
    store.apply_touches(&[]).await.unwrap();
}

async fn sweep_deletes_only_past_retention(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let old_revoked = mint(&*store, alice.id, "knox", None).await;
    let new_revoked = mint(&*store, alice.id, "knox", None).await;
    let old_expired = mint(&*store, alice.id, "knox", Some(T0 + HOUR)).await;
    let new_expired = mint(&*store, alice.id, "knox", Some(T0 + HOUR * 10)).await;
    let live = mint(&*store, alice.id, "knox", None).await;
    store.revoke_token(old_revoked.id, T0).await.unwrap();
    store.revoke_token(new_revoked.id, T0 + HOUR * 10).await.unwrap();
    let deleted = store.sweep(T0 + HOUR * 5).await.unwrap();
    assert_eq!(deleted, 2);
    for (m, kept) in
        [(old_revoked, false), (new_revoked, true), (old_expired, false), (new_expired, true), (live, true)]
    {
        assert_eq!(store.token_by_id(m.id).await.unwrap().is_some(), kept);
    }
}

async fn removing_a_principal_cascades(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let bob = principal(&*store, PrincipalKind::User, "bob").await;
    let a = mint(&*store, alice.id, "knox", None).await;
    let b = mint(&*store, bob.id, "knox", None).await;
    store.delete_principal(alice.id).await.unwrap();
    assert!(store.token_by_id(a.id).await.unwrap().is_none());
    assert!(store.token_by_digest(&a.digest).await.unwrap().is_none());
    assert!(store.token_by_id(b.id).await.unwrap().is_some());
    assert!(store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().is_none());
    // Ids are not reused after a removal.
    let carol = principal(&*store, PrincipalKind::User, "carol").await;
    assert!(carol.id > bob.id);
}

async fn password_change_can_revoke_in_one_transaction(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let a = mint(&*store, alice.id, "knox", None).await;
    let b = mint(&*store, alice.id, "usertoken", None).await;
    store.set_password_hash(alice.id, "$argon2id$new", Some(T0 + HOUR)).await.unwrap();
    for m in [a, b] {
        assert_eq!(store.token_by_id(m.id).await.unwrap().unwrap().token.revoked_at, Some(T0 + HOUR));
    }
}

async fn token_limit_refuses_without_writing(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let rules = InsertRules { max_live_tokens: Some(2), login_at: Some(T0), verified_hash: None };
    let now = T0 + HOUR;
    // Live: one never-expiring, one expiring later. Not live: expired, revoked, other dialect.
    mint(&*store, alice.id, "knox", None).await;
    mint(&*store, alice.id, "knox", Some(T0 + HOUR * 2)).await;
    mint(&*store, alice.id, "knox", Some(T0 + HOUR / 2)).await;
    let revoked = mint(&*store, alice.id, "knox", None).await;
    store.revoke_token(revoked.id, T0).await.unwrap();
    mint(&*store, alice.id, "usertoken", None).await;
    let before = store.list_tokens(alice.id).await.unwrap().len();

    let refused = token(&*store, alice.id, "knox", now, None, rules).await.unwrap();
    assert_eq!(refused, Inserted::LimitReached);
    assert_eq!(store.list_tokens(alice.id).await.unwrap().len(), before, "nothing written");
    let p = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(p.last_login_at, None, "a refused login does not count as a login");

    // Another dialect has its own count; a login there records the login time.
    let other = token(&*store, alice.id, "usertoken", now, None, rules).await.unwrap();
    assert_eq!(other, Inserted::Yes);
    let p = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(p.last_login_at, Some(T0));
}

async fn token_limit_holds_under_concurrency(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let rules = InsertRules { max_live_tokens: Some(3), login_at: Some(T0), verified_hash: None };
    let attempts = (0..12).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { token(&*store, alice.id, "knox", T0, None, rules).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let inserted = results.iter().filter(|r| **r == Inserted::Yes).count();
    assert_eq!(inserted, 3, "{results:?}");
    assert_eq!(store.list_tokens(alice.id).await.unwrap().len(), 3);
}

async fn insert_for_a_missing_owner_is_not_found(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let result = token(&*store, 4242, "knox", T0, None, InsertRules::default()).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

async fn duplicate_digest_is_a_conflict(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let first = mint(&*store, alice.id, "knox", None).await;
    let again = NewToken {
        id: Uuid::new_v4(),
        principal_id: alice.id,
        issuer: Issuer::Dialect(DialectId::Knox),
        kind: TokenKind::Static,
        digest: &first.digest,
        note: None,
        created_at: T0,
        expires_at: None,
    };
    assert!(matches!(store.insert_token(&again, InsertRules::default()).await, Err(StoreError::Conflict(_))));
}

async fn a_login_loses_to_a_password_change_or_disable_made_meanwhile(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let verified = alice.password_hash.clone();
    fn login(hash: &str) -> InsertRules<'_> {
        InsertRules { max_live_tokens: None, login_at: Some(T0), verified_hash: Some(hash) }
    }
    // The hash verified is still current: the insert goes through.
    assert_eq!(token(&*store, alice.id, "knox", T0, None, login(&verified)).await.unwrap(), Inserted::Yes);
    // The password changed while the old one was being verified: refused, nothing written.
    store.set_password_hash(alice.id, "$argon2id$new", Some(T0)).await.unwrap();
    let before = store.list_tokens(alice.id).await.unwrap().len();
    assert_eq!(
        token(&*store, alice.id, "knox", T0, None, login(&verified)).await.unwrap(),
        Inserted::CredentialsChanged
    );
    assert_eq!(store.list_tokens(alice.id).await.unwrap().len(), before);
    // The principal was disabled meanwhile: refused too.
    store.set_principal_enabled(alice.id, false).await.unwrap();
    let current = "$argon2id$new";
    assert_eq!(token(&*store, alice.id, "knox", T0, None, login(current)).await.unwrap(), Inserted::CredentialsChanged);
    // Removed meanwhile: refused, not an error.
    store.delete_principal(alice.id).await.unwrap();
    assert_eq!(token(&*store, alice.id, "knox", T0, None, login(current)).await.unwrap(), Inserted::CredentialsChanged);
}

async fn rehash_is_a_compare_and_swap(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    assert!(store.replace_password_hash(alice.id, "$argon2id$fake", "$argon2id$rehashed").await.unwrap());
    // An administrator changed it meanwhile: the stale rehash must not undo that.
    store.set_password_hash(alice.id, "$argon2id$admin", None).await.unwrap();
    assert!(!store.replace_password_hash(alice.id, "$argon2id$rehashed", "$argon2id$stale").await.unwrap());
    let p = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(p.password_hash, "$argon2id$admin");
}

async fn bump_refuses_a_revoked_token(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = principal(&*store, PrincipalKind::User, "alice").await;
    let t = mint(&*store, alice.id, "usertoken", None).await;
    store.revoke_token(t.id, T0).await.unwrap();
    assert!(matches!(store.bump(alice.id, t.id, T0 + HOUR).await, Err(StoreError::NotFound)));
    let row = store.token_by_id(t.id).await.unwrap().unwrap();
    assert_eq!(row.token.last_used_at, None, "nothing written");
    let p = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(p.last_login_at, None, "the transaction rolled back");
}

fn acl(entries: &[(&str, &[&str])]) -> Acl {
    entries
        .iter()
        .map(|(resource, perms)| ((*resource).to_owned(), perms.iter().map(|p| (*p).to_owned()).collect()))
        .collect()
}

async fn role(store: &dyn Store, name: &str, code: i64, acl: &Acl) -> RoleSummary {
    store.insert_role(&NewRole { name, code, acl, created_at: T0 }).await.unwrap()
}

async fn principal_with_role(store: &dyn Store, name: &str, role_id: Option<i64>) -> Principal {
    let name = Username::parse(name).unwrap();
    let new = NewPrincipal {
        kind: PrincipalKind::User,
        name: &name,
        password_hash: "$argon2id$fake",
        created_at: T0,
        role_id,
        group_id: None,
        attributes: &Attributes::default(),
    };
    store.insert_principal(&new).await.unwrap()
}

async fn owner_role(store: &dyn Store, token: &Minted) -> Option<Role> {
    let by_digest = store.token_by_digest(&token.digest).await.unwrap().unwrap().owner.role;
    let by_id = store.token_by_id(token.id).await.unwrap().unwrap().owner.role;
    assert_eq!(by_digest, by_id, "both lookups join the same role");
    by_digest
}

async fn roles_round_trip_exactly_and_names_are_unique(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let rules = acl(&[
        ("cdr", &["*"]),
        ("account", &["r", "w"]),
        ("cdr/files", &["r", "w", "u", "d"]),
        ("acl/roles", &[]),
        ("домен/ü", &["*"]),
    ]);
    let created_at = T0 + Duration::from_micros(654_321);
    let root = store.insert_role(&NewRole { name: "root", code: 2, acl: &rules, created_at }).await.unwrap();
    assert_eq!(root.role, Role { name: "root".into(), code: 2, acl: rules.clone() });
    assert_eq!(root.created_at, created_at);
    assert_eq!(root.members, 0);
    assert_eq!(store.role_by_name("root").await.unwrap(), Some(root.clone()));

    let empty = Acl::new();
    let negative = store.insert_role(&NewRole { name: "guest", code: -7, acl: &empty, created_at: T0 }).await.unwrap();
    assert_eq!(negative.role, Role { name: "guest".into(), code: -7, acl: Acl::new() });
    assert_ne!(negative.id, root.id);
    assert_eq!(store.role_by_name("guest").await.unwrap(), Some(negative));

    // Names are exact and unique; a refused duplicate changes nothing.
    let other = acl(&[("hook", &["r"])]);
    let dup = store.insert_role(&NewRole { name: "root", code: 1, acl: &other, created_at: T0 }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(store.role_by_name("root").await.unwrap(), Some(root));
    assert_eq!(store.role_by_name("Root").await.unwrap(), None);
    assert_eq!(store.role_by_name("nope").await.unwrap(), None);
    assert_eq!(store.list_roles().await.unwrap().len(), 2);
}

async fn roles_are_listed_by_name_with_member_counts(backend: Backend) {
    let (store, _db) = open(&backend).await;
    assert!(store.list_roles().await.unwrap().is_empty());
    let user = role(&*store, "user", 0, &acl(&[("book", &["r"])])).await;
    let admin = role(&*store, "admin", 1, &acl(&[("book", &["*"]), ("cdr", &["r"])])).await;
    let root = role(&*store, "root", 2, &acl(&[("*", &["*"])])).await;
    principal_with_role(&*store, "a", Some(root.id)).await;
    principal_with_role(&*store, "b", Some(root.id)).await;
    principal_with_role(&*store, "c", Some(admin.id)).await;
    principal_with_role(&*store, "d", None).await;

    let listed = store.list_roles().await.unwrap();
    let summary: Vec<(&str, i64, i64)> =
        listed.iter().map(|r| (r.role.name.as_str(), r.role.code, r.members)).collect();
    assert_eq!(summary, [("admin", 1, 1), ("root", 2, 2), ("user", 0, 0)]);
    assert_eq!(listed[0].role, admin.role);
    assert_eq!(listed[2], user);
    assert_eq!(store.role_by_name("root").await.unwrap().unwrap().members, 2);
}

async fn principals_and_token_owners_carry_their_role(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let root = role(&*store, "root", 2, &acl(&[("cdr", &["*"]), ("account", &["r", "w"])])).await;
    let admin = role(&*store, "admin", 1, &acl(&[("cdr", &["r"])])).await;

    let alice = principal_with_role(&*store, "100@mydomain.com", Some(root.id)).await;
    assert_eq!(alice.role, Some(root.role.clone()), "the inserted record carries its role");
    let found = store.principal_by_name(PrincipalKind::User, "100@mydomain.com").await.unwrap().unwrap();
    assert_eq!(found, alice);
    let bob = principal(&*store, PrincipalKind::User, "bob").await;
    assert_eq!(bob.role, None);
    assert_eq!(store.list_principals(PrincipalKind::User).await.unwrap(), vec![alice.clone(), bob.clone()]);

    let t = mint(&*store, alice.id, "webitel", None).await;
    let b = mint(&*store, bob.id, "webitel", None).await;
    assert_eq!(owner_role(&*store, &t).await, Some(root.role.clone()));
    assert_eq!(owner_role(&*store, &b).await, None);

    // A change is seen by the very next lookup of an existing token.
    store.set_principal_role(alice.id, Some(admin.id)).await.unwrap();
    assert_eq!(owner_role(&*store, &t).await, Some(admin.role.clone()));
    let found = store.principal_by_name(PrincipalKind::User, "100@mydomain.com").await.unwrap().unwrap();
    assert_eq!(found.role, Some(admin.role.clone()));
    store.set_principal_role(alice.id, None).await.unwrap();
    assert_eq!(owner_role(&*store, &t).await, None);
    assert_eq!(store.principal_by_name(PrincipalKind::User, "100@mydomain.com").await.unwrap().unwrap().role, None);
    store.set_principal_role(bob.id, Some(root.id)).await.unwrap();
    assert_eq!(owner_role(&*store, &b).await, Some(root.role.clone()));
    assert_eq!(owner_role(&*store, &t).await, None, "only bob changed");

    let missing = store.set_principal_role(9999, Some(root.id)).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert!(matches!(store.set_principal_role(9999, None).await, Err(StoreError::NotFound)));
    // A role that does not exist is refused by the foreign key and nothing changes.
    let no_role = store.set_principal_role(bob.id, Some(root.id + admin.id + 100)).await;
    assert!(matches!(no_role, Err(StoreError::Conflict(_))), "{no_role:?}");
    assert_eq!(owner_role(&*store, &b).await, Some(root.role));
}

async fn roles_in_use_cannot_be_deleted(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let root = role(&*store, "root", 2, &acl(&[("cdr", &["*"])])).await;
    let admin = role(&*store, "admin", 1, &acl(&[("cdr", &["r"])])).await;
    let alice = principal_with_role(&*store, "alice", Some(root.id)).await;
    let bob = principal_with_role(&*store, "bob", Some(admin.id)).await;

    let refused = store.delete_role(root.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "a role in use must not be deleted: {refused:?}");
    assert_eq!(store.role_by_name("root").await.unwrap(), Some(RoleSummary { members: 1, ..root.clone() }));
    let still = store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().unwrap();
    assert_eq!(still.role, Some(root.role.clone()), "the member keeps its role");

    store.set_principal_role(alice.id, None).await.unwrap();
    store.delete_role(root.id).await.unwrap();
    assert_eq!(store.role_by_name("root").await.unwrap(), None);
    assert!(matches!(store.delete_role(root.id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.delete_role(root.id + admin.id + 100).await, Err(StoreError::NotFound)));

    // Removing the last member makes a role deletable too.
    let refused = store.delete_role(admin.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    store.delete_principal(bob.id).await.unwrap();
    store.delete_role(admin.id).await.unwrap();
    assert!(store.list_roles().await.unwrap().is_empty());
    assert!(store.principal_by_name(PrincipalKind::User, "alice").await.unwrap().is_some());
}

async fn signing_keys_are_kept_exactly_and_never_overwritten(backend: Backend) {
    let (store, _db) = open(&backend).await;
    assert!(store.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, secret: Vec<u8>, created_at| SigningKey { kid: kid.into(), secret, created_at };
    // Every byte value, including NUL and 0xff, must survive.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let middle = key("k-000000000002", (0..32u8).map(|b| b.wrapping_mul(37)).collect(), T0 + Duration::from_micros(7));
    let newest = key("k-000000000003", all_bytes, T0 + HOUR);
    let oldest = key("initial", vec![0u8; 32], T0 - HOUR);

    assert!(store.insert_signing_key(&middle).await.unwrap());
    assert!(store.insert_signing_key(&newest).await.unwrap());
    assert!(store.insert_signing_key(&oldest).await.unwrap());
    let replay = key("k-000000000002", vec![0xffu8; 48], T0 + HOUR * 5);
    assert!(!store.insert_signing_key(&replay).await.unwrap(), "an existing kid is not inserted again");

    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored, vec![oldest.clone(), middle.clone(), newest.clone()], "oldest first, bytes and times exact");

    let short = key("k-short", vec![1u8; 31], T0);
    let refused = store.insert_signing_key(&short).await;
    assert!(refused.is_err(), "a 31-byte secret must be refused: {refused:?}");
    assert_eq!(store.signing_keys().await.unwrap(), vec![oldest, middle, newest]);
}

/// `delete_role` documents `Conflict` while principals have the role (`TokenService::remove_role`
/// turns that into "still given to N users" when a member appears after its check).
mod deleting_a_role_in_use_is_a_conflict {
    use crate::helpers::Backend;

    #[tokio::test]
    async fn sqlite() {
        super::deleting_a_role_in_use_is_a_conflict(Backend::Sqlite).await
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(backend) = Backend::postgres() {
            super::deleting_a_role_in_use_is_a_conflict(backend).await
        }
    }
}

async fn deleting_a_role_in_use_is_a_conflict(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let root = role(&*store, "root", 2, &acl(&[("cdr", &["*"])])).await;
    principal_with_role(&*store, "alice", Some(root.id)).await;
    let refused = store.delete_role(root.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(store.role_by_name("root").await.unwrap().map(|r| r.members), Some(1));
}

async fn principal_with(
    store: &dyn Store,
    kind: PrincipalKind,
    name: &str,
    group_id: Option<i64>,
    attributes: &Attributes,
) -> StoreResultOf<Principal> {
    let name = Username::parse(name).unwrap();
    let new = NewPrincipal {
        kind,
        name: &name,
        password_hash: "$argon2id$fake",
        created_at: T0,
        role_id: None,
        group_id,
        attributes,
    };
    store.insert_principal(&new).await
}

type StoreResultOf<T> = Result<T, StoreError>;

async fn group(store: &dyn Store, name: &str, regex: Option<&str>, reseller_id: Option<i64>) -> i64 {
    let new = NewGroup { name, allowed_regex: regex, reseller_id, created_at: T0 };
    store.insert_group(&new).await.unwrap().group.id
}

async fn principal_attributes_round_trip_exactly(backend: Backend) {
    let (store, _db) = open(&backend).await;
    // Defaults: what every principal made before the dialer existed reads back as.
    let plain = principal(&*store, PrincipalKind::User, "plain").await;
    assert_eq!(plain.attributes, Attributes::default());
    assert_eq!(plain.group, None);

    let regex = r"^10\.(1|2)\.";
    let gid = group(&*store, "office", Some(regex), None).await;
    let user_attrs = Attributes { admin: true, sms_from: Some("+1 555 0100 ü".into()), ..Attributes::default() };
    let user = principal_with(&*store, PrincipalKind::User, "u", Some(gid), &user_attrs).await.unwrap();
    assert_eq!(user.attributes, user_attrs);
    assert_eq!(user.group, Some(GroupRef { id: gid, name: "office".into(), allowed_regex: Some(regex.into()) }));
    let read = store.principal_by_name(PrincipalKind::User, "u").await.unwrap().unwrap();
    assert_eq!(read, user);

    for balance in ["1000.00", "-12.345", "0.00", "999999999999999.9999"] {
        let attrs = Attributes {
            allowed_ips: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
            balance: Some(balance.parse().unwrap()),
            ..Attributes::default()
        };
        let name = format!("r{balance}");
        let reseller = principal_with(&*store, PrincipalKind::Reseller, &name, None, &attrs).await.unwrap();
        assert_eq!(reseller.attributes, attrs);
        // Exact text, scale kept: 1000.00 stays 1000.00, not 1000 or 1000.0.
        assert_eq!(reseller.attributes.balance.unwrap().to_string(), balance);
        let listed = store.list_principals(PrincipalKind::Reseller).await.unwrap();
        assert_eq!(listed.iter().find(|p| p.name == name), Some(&reseller));
    }
    // A group that does not exist is refused by the foreign key, and nothing is written.
    let missing = principal_with(&*store, PrincipalKind::User, "ghost", Some(gid + 1000), &Attributes::default()).await;
    assert!(matches!(missing, Err(StoreError::Conflict(_))), "{missing:?}");
    assert!(store.principal_by_name(PrincipalKind::User, "ghost").await.unwrap().is_none());
    // The owner of a token is the principal as joined: a lookup does not need the attributes.
    let t = mint(&*store, user.id, "dialer", None).await;
    assert_eq!(store.token_by_digest(&t.digest).await.unwrap().unwrap().owner.name, "u");
}

async fn groups_round_trip_and_are_listed_by_owner(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let acme = principal(&*store, PrincipalKind::Reseller, "acme").await;
    let other = principal(&*store, PrincipalKind::Reseller, "other").await;
    let created_at = T0 + Duration::from_micros(123_456);
    let new = NewGroup { name: "west", allowed_regex: Some(r"^192\.168\."), reseller_id: Some(acme.id), created_at };
    let west = store.insert_group(&new).await.unwrap();
    assert_eq!(west.group.name, "west");
    assert_eq!(west.group.allowed_regex.as_deref(), Some(r"^192\.168\."));
    assert_eq!(west.reseller, Some((acme.id, "acme".to_owned())));
    assert_eq!(west.created_at, created_at);
    assert_eq!(west.members, 0);
    assert_eq!(store.group_by_name("west").await.unwrap(), Some(west.clone()));
    assert_eq!(store.group_by_name("West").await.unwrap(), None);

    group(&*store, "east", None, Some(acme.id)).await;
    group(&*store, "theirs", None, Some(other.id)).await;
    group(&*store, "free", None, None).await;
    let dup =
        store.insert_group(&NewGroup { name: "west", allowed_regex: None, reseller_id: None, created_at: T0 }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let names = |list: Vec<tokenauth::model::GroupSummary>| list.into_iter().map(|g| g.group.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_groups(None).await.unwrap()), ["east", "free", "theirs", "west"]);
    assert_eq!(names(store.list_groups(Some(acme.id)).await.unwrap()), ["east", "west"]);
    assert_eq!(names(store.list_groups(Some(other.id)).await.unwrap()), ["theirs"]);
    assert!(store.list_groups(Some(other.id + 1000)).await.unwrap().is_empty());
    // Byte order on both backends, whatever the database's locale: upper case first.
    for name in ["B2", "b-sales", "bsales", "West"] {
        group(&*store, name, None, None).await;
    }
    assert_eq!(
        names(store.list_groups(None).await.unwrap()),
        ["B2", "West", "b-sales", "bsales", "east", "free", "theirs", "west"]
    );
    // A reseller that does not exist cannot own a group.
    let orphan = NewGroup { name: "orphan", allowed_regex: None, reseller_id: Some(other.id + 1000), created_at: T0 };
    assert!(matches!(store.insert_group(&orphan).await, Err(StoreError::Conflict(_))));
}

async fn groups_with_members_cannot_be_deleted(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let gid = group(&*store, "office", None, None).await;
    let user = principal_with(&*store, PrincipalKind::User, "u", Some(gid), &Attributes::default()).await.unwrap();
    assert_eq!(store.group_by_name("office").await.unwrap().unwrap().members, 1);
    let refused = store.delete_group(gid).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert!(store.group_by_name("office").await.unwrap().is_some());
    // Out of the group, then back in, then removed with it.
    store.set_principal_group(user.id, None).await.unwrap();
    assert_eq!(store.group_by_name("office").await.unwrap().unwrap().members, 0);
    assert!(matches!(store.set_principal_group(user.id, Some(gid + 1000)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.set_principal_group(user.id + 1000, None).await, Err(StoreError::NotFound)));
    store.set_principal_group(user.id, Some(gid)).await.unwrap();
    let read = store.principal_by_name(PrincipalKind::User, "u").await.unwrap().unwrap();
    assert_eq!(read.group.map(|g| g.id), Some(gid));
    store.delete_principal(user.id).await.unwrap();
    store.delete_group(gid).await.unwrap();
    assert!(store.group_by_name("office").await.unwrap().is_none());
    assert!(matches!(store.delete_group(gid).await, Err(StoreError::NotFound)));
}

async fn removing_a_reseller_leaves_its_groups_unowned(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let acme = principal(&*store, PrincipalKind::Reseller, "acme").await;
    let gid = group(&*store, "west", None, Some(acme.id)).await;
    principal_with(&*store, PrincipalKind::User, "u", Some(gid), &Attributes::default()).await.unwrap();
    store.delete_principal(acme.id).await.unwrap();
    let west = store.group_by_name("west").await.unwrap().unwrap();
    assert_eq!(west.reseller, None);
    assert_eq!(west.members, 1);
    let user = store.principal_by_name(PrincipalKind::User, "u").await.unwrap().unwrap();
    assert_eq!(user.group.map(|g| g.id), Some(gid), "its users stay in it");
}

/// `update_throttle` locks and writes several counters in one statement each: every counter
/// gets its own values, the step and the result see them in the order of the keys whatever
/// order they are locked in, and a key named twice or no key at all changes nothing.
async fn throttle_counters_are_written_together_and_returned_in_key_order(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let (ip, account) = ((ThrottleScope::Ip, "192.0.2.7"), (ThrottleScope::Account, "user:alice"));
    // Distinct values in every column, from the counter's place in the keys.
    let set: ThrottleStep<'_> = &|counters: &mut [ThrottleCounter]| {
        for (n, c) in (1u32..).zip(counters.iter_mut()) {
            let at = T0 + time::Duration::minutes(i64::from(n));
            c.window_start = at;
            c.failures = n;
            c.prev_failures = 10 * n;
            c.strikes = 100 * n;
            c.locked_until = (n == 2).then_some(at);
            c.expires_at = at + time::Duration::hours(1);
            c.in_flight = 1000 * n;
            c.prev_in_flight = 10_000 * n;
            c.in_flight_bucket = at;
        }
    };
    let written = store.update_throttle(&[ip, account], set).await.unwrap();
    assert_eq!(
        written.iter().map(|c| (c.scope, c.subject.as_str(), c.failures)).collect::<Vec<_>>(),
        [(ip.0, ip.1, 1), (account.0, account.1, 2)]
    );
    let mut listed = store.list_throttle(T0).await.unwrap();
    listed.sort_by_key(|c| c.failures);
    assert_eq!(listed, written, "both counters were written, each with its own values");
    // The other way round: each counter is handed to the step as stored, in the keys' order.
    let seen = std::sync::Mutex::new(Vec::new());
    let record: ThrottleStep<'_> = &|counters: &mut [ThrottleCounter]| {
        *seen.lock().unwrap() = counters.to_vec();
        for c in counters.iter_mut() {
            c.failures += 1;
        }
    };
    let again = store.update_throttle(&[account, ip], record).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![written[1].clone(), written[0].clone()]);
    assert_eq!(again.iter().map(|c| (c.subject.as_str(), c.failures)).collect::<Vec<_>>(), [(account.1, 3), (ip.1, 2)]);
    // A key twice is refused before anything is written; no key is nothing to do.
    let twice = store.update_throttle(&[ip, account, ip], set).await;
    assert!(matches!(twice, Err(StoreError::Other(_))), "{twice:?}");
    let mut after = store.list_throttle(T0).await.unwrap();
    after.sort_by_key(|c| c.failures);
    assert_eq!(after, vec![again[1].clone(), again[0].clone()], "unchanged");
    assert_eq!(store.update_throttle(&[], set).await.unwrap(), Vec::new());
}
