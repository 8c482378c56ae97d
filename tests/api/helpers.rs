//! Test harness: backends, per-test databases, an in-process app with a fixed clock, and
//! typed request helpers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Once};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde_json::Value;
use sqlx::Connection as _;
use time::OffsetDateTime;
use time::macros::datetime;
use tokenauth::app;
use tokenauth::config::{Config, DatabaseUrl};
use tokenauth::model::Principal;
use tokenauth::model::PrincipalKind;
use tokenauth::store::Store;
use tokenauth::token::clock::FixedClock;
use tokenauth::token::{NewProfile, TokenService};
use tower::ServiceExt as _;

/// Run an `async fn name(backend: Backend)` on SQLite and on Postgres; with `serializable:`
/// also on Postgres with every transaction SERIALIZABLE (as distributed engines run), and
/// with `pgbouncer:` also through a real PgBouncer in transaction mode, once without
/// `database.listen_url` (revocations polled) and once with it (LISTEN on a direct
/// connection).
macro_rules! backend_tests {
    (serializable: $($name:ident),* $(,)?) => {$(
        mod $name {
            backend_tests!(@common $name);
            #[tokio::test]
            async fn postgres_serializable() {
                if let Some(backend) = $crate::helpers::Backend::postgres_serializable() {
                    super::$name(backend).await
                }
            }
        }
    )*};
    (pgbouncer: $($name:ident),* $(,)?) => {$(
        mod $name {
            backend_tests!(@common $name);
            #[tokio::test]
            async fn pgbouncer() {
                if let Some(backend) = $crate::helpers::Backend::pgbouncer(false) {
                    super::$name(backend).await
                }
            }
            #[tokio::test]
            async fn pgbouncer_listen_url() {
                if let Some(backend) = $crate::helpers::Backend::pgbouncer(true) {
                    super::$name(backend).await
                }
            }
        }
    )*};
    (@common $name:ident) => {
        #[tokio::test]
        async fn sqlite() {
            super::$name($crate::helpers::Backend::Sqlite).await
        }
        #[tokio::test]
        async fn postgres() {
            if let Some(backend) = $crate::helpers::Backend::postgres() {
                super::$name(backend).await
            }
        }
    };
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            backend_tests!(@common $name);
        }
    )*};
}

/// The client address of in-process requests and direct service calls.
pub const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The moment every test starts at.
pub const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a role that may create databases.
    Postgres(String),
    /// The same, every transaction of the test's database SERIALIZABLE (set through the URL's
    /// `options`, as an operator would).
    PostgresSerializable(String),
    /// The same, reached through a PgBouncer in transaction mode started for the test; with
    /// `listen_url`, LISTEN goes to the database directly.
    PgBouncer {
        admin: String,
        listen_url: bool,
    },
}

impl Backend {
    /// `postgres()`, SERIALIZABLE.
    pub fn postgres_serializable() -> Option<Backend> {
        match Backend::postgres()? {
            Backend::Postgres(admin) => Some(Backend::PostgresSerializable(admin)),
            _ => None,
        }
    }

    /// `postgres()`, through PgBouncer (installed by `.ci/run`; required with `CI=true`).
    pub fn pgbouncer(listen_url: bool) -> Option<Backend> {
        let Backend::Postgres(admin) = Backend::postgres()? else { return None };
        if bouncer::binary().is_none() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but pgbouncer is not installed");
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPING the PgBouncer tests: pgbouncer is not installed. ***\n"
                );
            });
            return None;
        }
        Some(Backend::PgBouncer { admin, listen_url })
    }

    /// The admin URL of a Postgres backend.
    pub fn admin(&self) -> Option<&str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(a) | Backend::PostgresSerializable(a) | Backend::PgBouncer { admin: a, .. } => Some(a),
        }
    }

    /// Postgres when `TOKENAUTH_TEST_DATABASE_URL` is set. Otherwise `None` with a loud
    /// warning written straight to the terminal (libtest's capture would hide it), or a
    /// failure when `CI=true`.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("TOKENAUTH_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but TOKENAUTH_TEST_DATABASE_URL is not set: the Postgres tests must run in CI")
            }
            _ => {
                static WARN: Once = Once::new();
                WARN.call_once(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n*** SKIPPING the Postgres tests: TOKENAUTH_TEST_DATABASE_URL is not set. \
                         Run scripts/test.sh to run them. ***\n"
                    );
                });
                None
            }
        }
    }
}

/// A database for one test, dropped with it.
pub struct TestDb {
    /// The URL the server is given (through PgBouncer for that backend).
    pub url: String,
    /// The database's own URL, bypassing any pooler (for a test's direct checks).
    pub direct_url: String,
    postgres: Option<(String, String)>,
    /// Kept running while the database lives.
    _bouncer: Option<bouncer::Bouncer>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        let Some(admin) = backend.admin() else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("tokenauth.db").display());
            return TestDb { direct_url: url.clone(), url, postgres: None, _bouncer: None, _dir: Some(dir) };
        };
        let name = format!("tokenauth_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to TOKENAUTH_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&name);
        let direct = url.to_string();
        let postgres = Some((admin.to_owned(), name.clone()));
        match backend {
            Backend::PostgresSerializable(_) => {
                url.query_pairs_mut().append_pair("options", "-c default_transaction_isolation=serializable");
                TestDb { url: url.to_string(), direct_url: direct, postgres, _bouncer: None, _dir: None }
            }
            Backend::PgBouncer { listen_url, .. } => {
                let bouncer = bouncer::Bouncer::start(&url).await;
                let through = bouncer.url(&name);
                register_pooled(&through, listen_url.then(|| direct.clone()));
                TestDb { url: through, direct_url: direct, postgres, _bouncer: Some(bouncer), _dir: None }
            }
            _ => TestDb { url: direct.clone(), direct_url: direct, postgres, _bouncer: None, _dir: None },
        }
    }
}

/// The settings a server needs for a database URL that goes through PgBouncer: no prepared
/// statements, and maybe a direct URL to LISTEN on. Read by `test_config` and by the CLI
/// tests' `command`, so every test runs through the pooler unchanged.
fn pooled() -> &'static std::sync::Mutex<std::collections::HashMap<String, Option<String>>> {
    static POOLED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Option<String>>>> =
        std::sync::OnceLock::new();
    POOLED.get_or_init(Default::default)
}

fn register_pooled(url: &str, listen_url: Option<String>) {
    pooled().lock().unwrap().insert(url.to_owned(), listen_url);
}

/// For a URL through PgBouncer, the environment a `tokenauth` process needs.
pub fn pooled_env(url: &str) -> Option<Vec<(&'static str, String)>> {
    let listen = pooled().lock().unwrap().get(url)?.clone();
    let mut env = vec![("TOKENAUTH_DATABASE__PREPARED_STATEMENTS", "false".to_owned())];
    if let Some(direct) = listen {
        env.push(("TOKENAUTH_DATABASE__LISTEN_URL", direct));
    }
    Some(env)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else { return };
        // why: Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A real PgBouncer in transaction mode, one per test database, stopped with it.
pub mod bouncer {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// The marker in every config path, so that `scripts/test.sh` can stop leftovers.
    pub const MARKER: &str = "tokenauth-test-pgbouncer";

    pub fn binary() -> Option<&'static str> {
        ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].into_iter().find(|p| std::path::Path::new(p).exists())
    }

    pub struct Bouncer {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Bouncer {
        /// Start one in front of the database of `direct` (a URL with user and password).
        pub async fn start(direct: &url::Url) -> Bouncer {
            let dir = tempfile::Builder::new().prefix(MARKER).tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let (user, password) = (direct.username(), direct.password().unwrap_or_default());
            let (host, pg_port) = (direct.host_str().unwrap(), direct.port().unwrap_or(5432));
            // why a pool of 4: fewer server connections than the server's pool has clients,
            // so one server connection serves several of them, which is what breaks named
            // prepared statements and LISTEN.
            let ini = format!(
                "[databases]\n* = host={host} port={pg_port} user={user} password={password}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {auth}\npool_mode = transaction\ndefault_pool_size = 4\n\
                 max_client_conn = 500\nignore_startup_parameters = extra_float_digits,options\n",
                auth = dir.path().join("users.txt").display()
            );
            std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
            std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
            let mut cmd = Command::new(super::bouncer::binary().expect("pgbouncer installed"));
            // why -u: PgBouncer refuses to run as root; it switches to that user itself.
            let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
            if root.unwrap_or(false) {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
                for f in ["pgbouncer.ini", "users.txt"] {
                    std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
                }
                cmd.args(["-u", "postgres"]);
            }
            // why a file: a pipe nobody reads would fill with its log lines and stop it.
            let log_path = dir.path().join("pgbouncer.log");
            let log = std::fs::File::create(&log_path).unwrap();
            cmd.arg(dir.path().join("pgbouncer.ini")).stdout(Stdio::null()).stderr(log);
            let mut child = cmd.spawn().expect("start pgbouncer");
            let started = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = child.try_wait() {
                    let err = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("pgbouncer exited at start ({status}): {err}");
                }
                assert!(started.elapsed() < Duration::from_secs(10), "pgbouncer did not listen within 10 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Bouncer { child, port, _dir: dir }
        }

        /// A URL of `database` through this PgBouncer.
        pub fn url(&self, database: &str) -> String {
            format!("postgres://tokenauth_test@127.0.0.1:{}/{database}", self.port)
        }
    }

    impl Drop for Bouncer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A config for tests: cheap argon2 so the suite stays fast, everything else default.
pub fn test_config(db_url: &str) -> Config {
    let defaults = Config::default();
    let mut database = tokenauth::config::DatabaseConfig { max_connections: 5, ..defaults.database };
    if let Some(listen) = pooled().lock().unwrap().get(db_url) {
        database.prepared_statements = false;
        database.listen_url = listen.as_deref().map(DatabaseUrl::new);
    }
    Config {
        database_url: DatabaseUrl::new(db_url),
        passwords: tokenauth::config::PasswordConfig { memory_kib: 1024, iterations: 1, ..defaults.passwords },
        database,
        ..defaults
    }
}

pub fn init_test_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _unbatched = tokenauth::telemetry::init(tokenauth::config::LogFormat::Pretty, "debug,sqlx=warn", false);
        }
    });
}

/// The app in-process: router, service, store and a fixed clock.
pub struct TestApp {
    pub router: Router,
    pub tokens: Arc<TokenService>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub config: Config,
    /// Kept so the database outlives the app (dropped, and for Postgres deleted, with it);
    /// `None` for a replica, which borrows the database of the app it was made from.
    _db: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::with_config(backend, |_| {}).await
    }

    pub async fn with_config(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::wrapping_store(backend, adjust, |store| store).await
    }

    /// As `with_config`, with the opened store wrapped by `wrap` (e.g. to count its writes).
    pub async fn wrapping_store(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> TestApp {
        init_test_log();
        let db = TestDb::new(&backend).await;
        let mut config = test_config(&db.url);
        adjust(&mut config);
        config.validate().unwrap();
        let store = wrap(app::open_store(&config).await.unwrap());
        let clock = Arc::new(FixedClock::new(T0));
        let tokens = app::token_service(&config, Arc::clone(&store), clock.clone()).await.unwrap();
        let router = app::router(app::state(config.clone(), Arc::clone(&tokens))).unwrap();
        TestApp { router, tokens, store, clock, config, _db: Some(db) }
    }

    /// Another replica over the same database, config and clock: its own store pool, token
    /// service (and cache) and router, as a second process would have. Drop it first.
    pub async fn replica(&self) -> TestApp {
        let store = app::open_store(&self.config).await.unwrap();
        let tokens = app::token_service(&self.config, Arc::clone(&store), self.clock.clone()).await.unwrap();
        let router = app::router(app::state(self.config.clone(), Arc::clone(&tokens))).unwrap();
        TestApp { router, tokens, store, clock: self.clock.clone(), config: self.config.clone(), _db: None }
    }

    /// The token policies this app's handlers use (every dialect's and the web page's).
    pub fn policies(&self) -> Arc<tokenauth::token::Policies> {
        app::state(self.config.clone(), Arc::clone(&self.tokens)).policies
    }

    pub async fn add_user(&self, name: &str, password: &str) -> Principal {
        self.tokens
            .create_principal(PrincipalKind::User, name, password.to_owned().into(), &NewProfile::default())
            .await
            .unwrap()
    }

    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            builder: Request::builder().method(method).uri(path),
            body: Vec::new(),
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        }
    }

    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    pub async fn flush(&self) {
        self.tokens.flush_touches().await.unwrap();
    }
}

pub struct TestRequest<'a> {
    app: &'a TestApp,
    builder: axum::http::request::Builder,
    body: Vec<u8>,
    peer: SocketAddr,
}

impl TestRequest<'_> {
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.builder = self.builder.header(name, value.as_ref());
        self
    }

    pub fn json(self, value: impl serde::Serialize) -> Self {
        self.body(serde_json::to_vec(&value).unwrap(), "application/json")
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn basic(self, user: &str, password: &str) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", format!("Basic {encoded}"))
    }

    /// Send the request from `peer` (default 127.0.0.1:40000).
    pub fn peer(mut self, peer: impl Into<SocketAddr>) -> Self {
        self.peer = peer.into();
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn token(self, token: &str) -> Self {
        self.header("authorization", format!("Token {token}"))
    }

    pub async fn send(self) -> TestResponse {
        let mut req = self.builder.body(Body::from(self.body)).unwrap();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let resp = self.app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        TestResponse { status, headers, body }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Assert the status and that the body is exactly `body`, as JSON with a JSON content type.
    #[track_caller]
    pub fn assert_json(&self, status: StatusCode, body: impl Into<Value>) {
        let body: Value = body.into();
        assert_eq!(self.status, status, "status; body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/json"), "content-type");
        assert_eq!(self.json(), body);
    }

    #[track_caller]
    pub fn assert_empty(&self, status: StatusCode) {
        assert_eq!(self.status, status, "status; body: {}", String::from_utf8_lossy(&self.body));
        assert!(self.body.is_empty(), "body should be empty: {:?}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.headers.get(header::CONTENT_TYPE), None);
    }
}

/// RFC 3339 as the dialects print it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}
