//! PostgreSQL behind PgBouncer in transaction mode, and migrations for engines that refuse
//! sqlx's way (distributed SQL): what `database.prepared_statements`, `migration_lock` and
//! `migration_transactions` change, against a real PgBouncer and a real PostgreSQL.

use std::sync::Arc;

use sqlx::Connection as _;
use tokenauth::config::{DatabaseConfig, DatabaseUrl, MigrationTransactions};
use tokenauth::model::PrincipalKind;
use tokenauth::store::{self, Store};

use crate::helpers::{Backend, TestDb};

async fn connect(url: &str, cfg: DatabaseConfig) -> Arc<dyn Store> {
    store::connect(&DatabaseUrl::new(url), &cfg).await.unwrap()
}

/// Two clients with named prepared statements meet on one server connection through the
/// pooler, and the second one's `sqlx_s_1` already exists there; unnamed statements, each in
/// its own short transaction, do not collide, however the pooler hands connections out.
#[tokio::test]
async fn named_statements_collide_through_pgbouncer_and_unnamed_do_not() {
    let Some(backend) = Backend::pgbouncer(false) else { return };
    let db = TestDb::new(&backend).await;
    let direct = connect(&db.direct_url, DatabaseConfig::default()).await;
    direct.migrate().await.unwrap();

    let named = DatabaseConfig { max_connections: 1, ..DatabaseConfig::default() };
    let (a, b) = (connect(&db.url, named.clone()).await, connect(&db.url, named).await);
    let mut errors = Vec::new();
    for _ in 0..5 {
        for store in [&a, &b] {
            if let Err(e) = store.principal_by_name(PrincipalKind::User, "nobody").await {
                errors.push(e.to_string());
            }
        }
    }
    assert!(!errors.is_empty(), "named statements through a transaction pooler should have collided");
    assert!(
        errors.iter().all(|e| e.contains("set database.prepared_statements = false")),
        "the error names the setting: {errors:?}"
    );

    let unnamed = DatabaseConfig { max_connections: 4, prepared_statements: false, ..DatabaseConfig::default() };
    let stores: Vec<Arc<dyn Store>> =
        futures::future::join_all((0..3).map(|_| connect(&db.url, unnamed.clone()))).await;
    let reads = stores
        .iter()
        .flat_map(|s| (0..20).map(move |_| async move { s.principal_by_name(PrincipalKind::User, "nobody").await }));
    for read in futures::future::join_all(reads).await {
        assert!(read.unwrap().is_none());
    }
    // Migrations go through the pooler too: each file's transaction takes its own lock.
    stores[0].migrate().await.unwrap();
    assert!(stores[1].pending_migrations().await.unwrap().is_empty());
}

/// The schema of a database: its columns and its indexes, as text to compare.
async fn schema(url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let columns: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let indexes: Vec<(String,)> =
        sqlx::query_as("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    columns
        .into_iter()
        .map(|c| format!("{c:?}"))
        .chain(indexes.into_iter().map(|(i,)| i))
        .chain(applied.into_iter().map(|a| format!("{a:?}")))
        .collect()
}

/// Statement by statement and without the lock, as a distributed engine needs, the schema is
/// the same as sqlx's own migrator makes, recorded the same way: sqlx's migrator, and
/// tokenauth's default, then find nothing left to do.
#[tokio::test]
async fn every_way_of_migrating_makes_the_same_schema() {
    let Some(backend) = Backend::postgres() else { return };
    let (by_sqlx, per_statement, by_default) =
        (TestDb::new(&backend).await, TestDb::new(&backend).await, TestDb::new(&backend).await);

    let pool = sqlx::PgPool::connect(&by_sqlx.url).await.unwrap();
    sqlx::migrate!("migrations/postgres").run(&pool).await.unwrap();
    pool.close().await;
    let reference = schema(&by_sqlx.url).await;
    assert!(reference.iter().any(|l| l.contains("cache_invalidations_at_idx")), "{reference:#?}");

    let distributed = DatabaseConfig {
        migration_lock: false,
        migration_transactions: MigrationTransactions::PerStatement,
        ..DatabaseConfig::default()
    };
    let store = connect(&per_statement.url, distributed).await;
    store.migrate().await.unwrap();
    assert_eq!(schema(&per_statement.url).await, reference);
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    let pool = sqlx::PgPool::connect(&per_statement.url).await.unwrap();
    sqlx::migrate!("migrations/postgres").run(&pool).await.expect("sqlx's migrator accepts what tokenauth recorded");
    pool.close().await;

    // A database sqlx migrated is up to date for tokenauth.
    let store = connect(&by_sqlx.url, DatabaseConfig::default()).await;
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.migrate().await.unwrap();

    let store = connect(&by_default.url, DatabaseConfig::default()).await;
    store.migrate().await.unwrap();
    assert_eq!(schema(&by_default.url).await, reference);
}

/// Replicas starting together on a fresh database: each file applied once, none fails.
#[tokio::test]
async fn replicas_migrating_at_once_apply_each_file_once() {
    let Some(backend) = Backend::postgres() else { return };
    let db = TestDb::new(&backend).await;
    let stores: Vec<Arc<dyn Store>> =
        futures::future::join_all((0..4).map(|_| connect(&db.url, DatabaseConfig::default()))).await;
    for result in futures::future::join_all(stores.iter().map(|s| s.migrate())).await {
        result.unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (rows, versions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, versions);
    assert_eq!(usize::try_from(rows).unwrap(), sqlx::migrate!("migrations/postgres").iter().count());
}

/// A database whose recorded migration differs from this build's file, or which records one
/// this build lacks, is refused with a message that says which.
#[tokio::test]
async fn a_changed_or_unknown_migration_is_refused() {
    let Some(backend) = Backend::postgres() else { return };
    let db = TestDb::new(&backend).await;
    let store = connect(&db.url, DatabaseConfig::default()).await;
    store.migrate().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 3").execute(&mut conn).await.unwrap();
    let err = store.migrate().await.unwrap_err().to_string();
    assert!(err.contains("migration 3 was changed after it was applied"), "{err}");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 3").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', TRUE, '\\x00', 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = store.migrate().await.unwrap_err().to_string();
    assert!(err.contains("migration 9999 is applied to the database but unknown to this build"), "{err}");
}

/// The polled table (`cache.invalidation = "poll"`, or `auto` without LISTEN): every notice
/// is delivered once, in order, including one written with a time a moment before notices
/// already read (a transaction that committed late, or a node whose clock is behind); a
/// flood too large to apply one by one is one "*" (everything).
#[tokio::test]
async fn polled_notices_arrive_once_late_ones_too_and_a_flood_flushes() {
    use std::time::Duration;
    use tokenauth::store::Listen;
    let Some(backend) = Backend::postgres() else { return };
    let db = TestDb::new(&backend).await;
    let store = connect(&db.url, DatabaseConfig::default()).await;
    store.migrate().await.unwrap();
    let mut sub = store.subscribe(Listen::Poll(Duration::from_millis(10))).await.unwrap();
    for i in 0..3 {
        store.publish_invalidation(&format!("t:{i}")).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(next(&mut sub).await, format!("t:{i}"));
    }
    // A row written "half a second ago", after the poller has read past that moment.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("INSERT INTO cache_invalidations (id, payload, at) VALUES ($1, 'late', clock_timestamp() - interval '500 milliseconds')")
        .bind(uuid::Uuid::new_v4())
        .execute(&mut conn)
        .await
        .unwrap();
    store.publish_invalidation("after").await.unwrap();
    let mut got = vec![next(&mut sub).await, next(&mut sub).await];
    got.sort();
    assert_eq!(got, ["after", "late"]);
    // Nothing more: the overlap re-reads them, and they are not delivered twice.
    assert!(tokio::time::timeout(Duration::from_millis(300), sub.next()).await.is_err(), "delivered twice");
    // A flood: more new notices in one poll than are worth applying one by one.
    sqlx::query(
        "INSERT INTO cache_invalidations (id, payload, at) \
         SELECT gen_random_uuid(), 't:' || n, clock_timestamp() FROM generate_series(1, 20001) AS n",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(next(&mut sub).await, "*");
    assert!(tokio::time::timeout(Duration::from_millis(300), sub.next()).await.is_err(), "the flood is one flush");
}

async fn next(sub: &mut Box<dyn tokenauth::store::Subscription>) -> String {
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await;
    notice.expect("a notice within 5 s").unwrap().unwrap()
}

/// A database dropped under a running server (or a login revoked) is an outage to its
/// clients: a 503 with `Retry-After` in the dialect's shape, not a 500.
#[tokio::test]
async fn a_database_dropped_under_the_server_is_a_503() {
    let Some(backend) = Backend::postgres() else { return };
    let app = crate::helpers::TestApp::spawn(backend.clone()).await;
    app.add_user("alice", "pw-alice-1").await;
    let name = url::Url::parse(app.config.database_url.expose()).unwrap().path().trim_start_matches('/').to_owned();
    let mut admin = sqlx::PgConnection::connect(backend.admin().unwrap()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).execute(&mut admin).await.unwrap();
    let resp = app
        .request(axum::http::Method::POST, "/auth/login/")
        .json(serde_json::json!({"username": "alice", "password": "pw-alice-1"}))
        .send()
        .await;
    assert_eq!(resp.status, axum::http::StatusCode::SERVICE_UNAVAILABLE, "{:?}", resp.json());
    assert!(resp.header("retry-after").is_some());
}
