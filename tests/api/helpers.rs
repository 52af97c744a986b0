//! `spawn_app()`: the real application on port 0 against a fresh database (a SQLite file in a
//! temporary folder, or a uniquely named PostgreSQL database that is dropped afterwards), the
//! one `on_both_backends!` fixture, and a visitor's `Browser`. What several feature files share
//! beyond that sits in the submodules below, each helper defined once.

pub mod command_line;
pub mod configurations;
pub mod connections;
pub mod forms;
pub mod organisations;
pub mod pages;
pub mod providers;
pub mod resolve;
pub mod secrets;
pub mod vault;
pub mod webhooks;

use std::path::PathBuf;

use diesel::prelude::*;
use lanyard::app::{Application, BuildError};
use lanyard::config::{MasterKeySource, Settings};
use lanyard::crypto::{KeyId, MasterKey};
use lanyard::db::{self, Database, DatabaseUrl, DbConnection};
use lanyard::domain::{Email, Password, Scopes, UserCaps};
use lanyard::egress::EgressPolicy;
use lanyard::services::{accounts, tokens};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

pub const POSTGRES_URL_VAR: &str = "LANYARD_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub enum TestDatabase {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        server_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// `None` when the backend is PostgreSQL and no server was given: the test is skipped.
    pub fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let path = dir.path().join("lanyard.db");
                Some(TestDatabase::Sqlite { _dir: dir, path })
            }
            Backend::Postgres => {
                let Ok(server_url) = std::env::var(POSTGRES_URL_VAR) else {
                    eprintln!("notice: {POSTGRES_URL_VAR} is not set; skipping a PostgreSQL test");
                    return None;
                };
                let name = format!("lanyard_test_{}", Uuid::new_v4().simple());
                let mut admin = diesel::PgConnection::establish(&server_url)
                    .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {error}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create database");
                let mut url = url::Url::parse(&server_url).expect("a postgres:// URL");
                url.set_path(&name);
                Some(TestDatabase::Postgres {
                    server_url,
                    name,
                    url: url.to_string(),
                })
            }
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        match self {
            TestDatabase::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            TestDatabase::Postgres { url, .. } => DatabaseUrl::Postgres(url.clone()),
        }
    }

    /// The `DATABASE_URL` a spawned binary would use.
    pub fn url_string(&self) -> String {
        match self {
            TestDatabase::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestDatabase::Postgres { url, .. } => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { server_url, name, .. } = self
            && let Ok(mut admin) = diesel::PgConnection::establish(server_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
        }
    }
}

pub fn master_key_entry(id: &str) -> String {
    MasterKey::generate(KeyId::parse(id).unwrap()).to_entry()
}

/// A distinctive API key that appears nowhere else, so that finding it in a log or a page
/// can only mean it leaked.
pub fn distinctive_key(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

/// A port free at the moment of asking, so that the app's public URL can name its own address,
/// as a real deployment's does (the Origin check compares against it), and a child `lanyard`
/// can be told where to listen.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

pub fn settings_for(database: &TestDatabase, master_keys: &str) -> Settings {
    let port = free_port();
    Settings {
        database_url: database.url(),
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        public_url: url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        master_keys: MasterKeySource::Entries(SecretString::from(master_keys.to_owned())),
        egress: EgressPolicy::parse("", "allowlist").unwrap(),
        test_rate_per_minute: 10,
        pool_size: 2,
        fallback: None,
        metrics_token: None,
        trusted_proxies: Vec::new(),
        caps: UserCaps::default(),
        organisation_creation: Default::default(),
        checks: Default::default(),
        webhooks: Default::default(),
        single_sign_on: None,
        password_login: true,
    }
}

/// A token without expiry, as the helpers create them.
fn new_token(name: &str, scopes: Scopes) -> tokens::NewToken {
    tokens::NewToken {
        name: name.to_owned(),
        scopes,
        expires_in_days: None,
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: Database,
    pub master_keys: String,
    // Dropped last: the database outlives the pool that points at it.
    pub test_database: TestDatabase,
}

/// A user of the running app with a token.
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let test_database = TestDatabase::create(backend)?;
    let master_keys = master_key_entry("test-key");
    Some(spawn_app_on(test_database, master_keys).await)
}

/// `spawn_app` with the settings changed by `configure` first (the egress policy, the test
/// rate, …).
pub async fn spawn_app_with(backend: Backend, configure: impl Fn(&mut Settings)) -> Option<TestApp> {
    let test_database = TestDatabase::create(backend)?;
    let master_keys = master_key_entry("test-key");
    Some(spawn_app_on_with(test_database, master_keys, configure).await)
}

/// An egress policy as the operator would write it in `LANYARD_EGRESS_ALLOW` and
/// `LANYARD_EGRESS_MODE`.
pub fn egress_policy(allow: &str, mode: &str) -> EgressPolicy {
    EgressPolicy::parse(allow, mode).unwrap()
}

pub async fn spawn_app_on(test_database: TestDatabase, master_keys: String) -> TestApp {
    spawn_app_on_with(test_database, master_keys, |_| {}).await
}

pub async fn spawn_app_on_with(
    test_database: TestDatabase,
    master_keys: String,
    configure: impl Fn(&mut Settings),
) -> TestApp {
    // The port is chosen before binding; should another socket take it meanwhile, try another.
    let mut attempts = 0;
    let application = loop {
        let mut settings = settings_for(&test_database, &master_keys);
        configure(&mut settings);
        match Application::build(settings).await {
            Ok(application) => break application,
            Err(BuildError::Bind { .. }) if attempts < 5 => attempts += 1,
            Err(error) => panic!("the application starts: {error}"),
        }
    };
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let database = Database::new(db::build_pool(&test_database.url(), 2).unwrap());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        database,
        master_keys,
        test_database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs `work` on a connection of the test's own pool.
    pub async fn with_db<T: Send + 'static>(&self, work: impl FnOnce(&mut DbConnection) -> T + Send + 'static) -> T {
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = database.connection().unwrap();
            work(&mut conn)
        })
        .await
        .unwrap()
    }

    /// Creates a user and a token with `scopes` for them.
    pub async fn user_with_scopes(&self, scopes: &str) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let scopes = Scopes::parse(scopes).unwrap();
        let stored_email = email.clone();
        let (id, token) = self
            .with_db(move |conn| {
                let user = accounts::create_user(
                    conn,
                    &Email::parse(&stored_email).unwrap(),
                    &Password::parse(TEST_PASSWORD).unwrap(),
                    false,
                )
                .unwrap();
                let token = tokens::create_token(conn, user.id, &new_token("test", scopes), UserCaps::default().tokens)
                    .unwrap();
                (user.id, token.secret.expose().to_owned())
            })
            .await;
        TestUser { id, email, token }
    }

    pub async fn user(&self) -> TestUser {
        self.user_with_scopes("read,write").await
    }

    /// A token with other scopes for an existing user.
    pub async fn token_for(&self, user: &TestUser, scopes: &str) -> String {
        let scopes = Scopes::parse(scopes).unwrap();
        let id = user.id;
        self.with_db(move |conn| {
            tokens::create_token(conn, id, &new_token("extra", scopes), UserCaps::default().tokens)
                .unwrap()
                .secret
                .expose()
                .to_owned()
        })
        .await
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts the JSON error shape and code, and returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "unexpected status; body: {body}");
    assert_eq!(body["error"], code, "unexpected error code; body: {body}");
    assert!(body["message"].is_string(), "no message: {body}");
    body
}

/// Runs each named test once on SQLite and once on PostgreSQL (skipped with a notice when
/// `LANYARD_TEST_POSTGRES_URL` is unset). The arm says what each test is handed:
/// - `on_both_backends!(a, b)`: `async fn(TestApp)`, the app with the default settings;
/// - `on_both_backends!(settings(configure): a, b)`: `async fn(TestApp)`, the settings changed
///   first by `configure`, a `fn(&mut Settings)` of the calling module;
/// - `on_both_backends!(database: a, b)`: `async fn(TestDatabase)`, a fresh empty database
///   (typically for driving the real binary);
/// - `on_both_backends!(database(Wrapper::new): a, b)`: `async fn(Wrapper)`, the database handed
///   to a constructor of the calling module;
/// - `on_both_backends!(blocking database: a, b)`: `fn(TestDatabase)`, without a runtime;
/// - `on_both_backends!(backend: a, b)`: `async fn(Backend)`, for tests whose settings depend on
///   servers they start first (they skip PostgreSQL themselves through `spawn_app_with`).
#[macro_export]
macro_rules! on_both_backends {
    (@tokio $backend:ident => $fixture:expr; $($test:ident),+) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    super::$test($fixture.expect("sqlite is always available")).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let $backend = $crate::helpers::Backend::Postgres;
                    if let Some(fixture) = $fixture {
                        super::$test(fixture).await;
                    }
                }
            }
        )+
    };
    (settings($configure:ident): $($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@tokio backend =>
            $crate::helpers::spawn_app_with(backend, super::$configure).await; $($test),+);
    };
    (database: $($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@tokio backend =>
            $crate::helpers::TestDatabase::create(backend); $($test),+);
    };
    (database($($wrap:ident)::+): $($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@tokio backend =>
            $crate::helpers::TestDatabase::create(backend).map(super::$($wrap)::+); $($test),+);
    };
    (backend: $($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@tokio backend => Some(backend); $($test),+);
    };
    (blocking database: $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                use $crate::helpers::{Backend, TestDatabase};

                #[test]
                fn sqlite() {
                    super::$test(TestDatabase::create(Backend::Sqlite).expect("sqlite is always available"));
                }

                #[test]
                fn postgres() {
                    if let Some(database) = TestDatabase::create(Backend::Postgres) {
                        super::$test(database);
                    }
                }
            }
        )+
    };
    ($($test:ident),+ $(,)?) => {
        $crate::on_both_backends!(@tokio backend => $crate::helpers::spawn_app(backend).await; $($test),+);
    };
}

/// The password test users are created with.
pub const TEST_PASSWORD: &str = "correct horse battery";

/// A visitor with a browser's cookie jar, who does not follow redirects (so tests see them).
pub struct Browser {
    pub client: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    address: String,
}

impl Browser {
    /// Opens the setup link and registers `email` (with [`TEST_PASSWORD`]) through its form, as
    /// the first visitor does; the answer as it came.
    pub async fn register_with_setup_link(&self, setup_token: &str, email: &str) -> reqwest::Response {
        let form = self.page(&format!("/register?setup_token={setup_token}")).await;
        self.post_form(
            "/register",
            &[
                ("email", email),
                ("password", TEST_PASSWORD),
                ("setup_token", setup_token),
                ("csrf_token", csrf_from(&form).as_str()),
            ],
        )
        .await
    }

    pub fn new(app: &TestApp) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Browser {
            client,
            jar,
            address: app.address.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The session cookie's value as the jar holds it now.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = url::Url::parse(&self.address).unwrap();
        let cookies = self.jar.cookies(&url)?;
        let name = format!("{}=", lanyard::http::session::COOKIE_NAME);
        cookies
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|pair| pair.strip_prefix(name.as_str()))
            .map(str::to_owned)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET as htmx sends it.
    pub async fn get_htmx(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("HX-Request", "true")
            .send()
            .await
            .unwrap()
    }

    /// The body of a page that must answer 200.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The session's CSRF token, read from a page as a browser would.
    pub async fn csrf(&self) -> String {
        csrf_from(&self.page("/settings").await)
    }

    /// A urlencoded form post; `extra` headers are added (e.g. `HX-Request`, `Origin`).
    pub async fn post_form_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).form(fields);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with(path, fields, &[]).await
    }

    pub async fn post_htmx(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_with(path, fields, &[("HX-Request", "true")]).await
    }
}

/// The CSRF token a page carries: its forms' hidden field, else the `hx-headers` on `<body>`.
pub fn csrf_from(html: &str) -> String {
    for marker in ["name=\"csrf_token\" value=\"", "\"X-CSRF-Token\": \""] {
        if let Some(start) = html.find(marker).map(|at| at + marker.len())
            && let Some(end) = html[start..].find('"')
        {
            return html[start..start + end].to_owned();
        }
    }
    panic!("no CSRF token in the page: {html}");
}

/// The `Location` a redirect points to.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

impl TestApp {
    /// A visitor without a session.
    pub fn browser(&self) -> Browser {
        Browser::new(self)
    }

    /// The first visitor registers through the setup link; returns their browser and email.
    pub async fn register_first_admin(&self) -> (Browser, String) {
        let setup_token = self
            .with_db(|conn| accounts::issue_setup_token(conn).unwrap())
            .await
            .expect("no user exists yet");
        let browser = self.browser();
        let email = "admin@example.com".to_owned();
        let response = browser.register_with_setup_link(&setup_token, &email).await;
        assert_eq!(
            response.status(),
            303,
            "registration failed: {}",
            response.text().await.unwrap()
        );
        assert_eq!(location(&response), "/llm-configurations");
        (browser, email)
    }

    /// A visitor fills in the `/login` form; their browser and the answer as it came.
    pub async fn attempt_login(&self, email: &str, password: &str) -> (Browser, reqwest::Response) {
        let browser = self.browser();
        let csrf = csrf_from(&browser.page("/login").await);
        let fields = [("email", email), ("password", password), ("csrf_token", csrf.as_str())];
        let response = browser.post_form("/login", &fields).await;
        (browser, response)
    }

    /// Logs in through `/login`; panics unless the login succeeds.
    pub async fn login(&self, email: &str, password: &str) -> Browser {
        let (browser, response) = self.attempt_login(email, password).await;
        assert_eq!(
            response.status(),
            303,
            "login failed: {}",
            response.text().await.unwrap()
        );
        assert_eq!(location(&response), "/llm-configurations");
        browser
    }

    /// Asserts that `token` is refused at `path` with 401 `unauthorized`.
    pub async fn assert_unauthorized(&self, path: &str, token: &str) {
        assert_error(self.get(path, token).await, 401, "unauthorized").await;
    }

    /// Disables `user` straight in the database, as an operator's SQL would.
    pub async fn disable_in_database(&self, user: &TestUser) {
        let id = db::DbId(user.id);
        self.with_db(move |conn| {
            diesel::update(lanyard::db::schema::users::table.find(id))
                .set(lanyard::db::schema::users::is_disabled.eq(true))
                .execute(conn)
                .unwrap()
        })
        .await;
    }

    /// A user with a `read,write` token, also signed in through a browser.
    pub async fn signed_in_user(&self) -> (TestUser, Browser) {
        let user = self.user().await;
        let browser = self.login(&user.email, TEST_PASSWORD).await;
        (user, browser)
    }
}
