//! Webhook deliveries across restarts and instances (issue 15, Must show 4): deliveries are
//! queued in the database, so an instance restarted between two attempts loses none, and with
//! two instances on one database every delivery is sent once (claims in the database, as for
//! scheduled checks). Runs the real `lanyard serve` processes against a local receiver, on
//! SQLite and, when LANYARD_TEST_POSTGRES_URL is set, on PostgreSQL.
//!
//! Its own test binary: it starts and kills servers, which the in-process suite cannot do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use lanyard::crypto::{KeyId, MasterKey};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const BINARY: &str = env!("CARGO_BIN_EXE_lanyard");
const POSTGRES_URL_VAR: &str = "LANYARD_TEST_POSTGRES_URL";

/// A database for one run, dropped (PostgreSQL) or deleted (SQLite) afterwards.
enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres {
        server_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(dir) => format!("sqlite://{}", dir.path().join("lanyard.db").display()),
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

fn database_for(postgres: bool) -> Option<TestDatabase> {
    if !postgres {
        return Some(TestDatabase::Sqlite(tempfile::tempdir().unwrap()));
    }
    let Ok(server_url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("notice: {POSTGRES_URL_VAR} is not set; skipping the PostgreSQL run");
        return None;
    };
    let name = format!("lanyard_hooks_{}", uuid::Uuid::new_v4().simple());
    let mut admin = diesel::PgConnection::establish(&server_url).expect("PostgreSQL answers");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    let mut url = url::Url::parse(&server_url).unwrap();
    url.set_path(&name);
    Some(TestDatabase::Postgres {
        server_url,
        name,
        url: url.to_string(),
    })
}

/// A `lanyard serve` child, killed and reaped when dropped.
struct Instance {
    child: Child,
    port: u16,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Site {
    database: TestDatabase,
    workdir: tempfile::TempDir,
    master_keys: String,
    retry_schedule: &'static str,
}

impl Site {
    fn new(database: TestDatabase, retry_schedule: &'static str) -> Site {
        Site {
            database,
            workdir: tempfile::tempdir().unwrap(),
            master_keys: MasterKey::generate(KeyId::parse("hooks1").unwrap()).to_entry(),
            retry_schedule,
        }
    }

    fn command(&self, args: &[&str], log: &Path) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .current_dir(self.workdir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.database.url())
            .env("LANYARD_MASTER_KEYS", &self.master_keys)
            .env("LANYARD_EGRESS_MODE", "allowlist")
            .env("LANYARD_WEBHOOK_ALLOW", "127.0.0.1/32")
            .env("LANYARD_WEBHOOK_RETRY_SCHEDULE", self.retry_schedule)
            .env("LANYARD_CHECK_INTERVAL", "off")
            .env("LANYARD_LOG", "warn")
            .stdout(Stdio::from(std::fs::File::create(log.with_extension("out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()));
        command
    }

    fn log(&self, name: &str) -> PathBuf {
        self.workdir.path().join(name)
    }

    /// Runs a command to completion with `stdin`; its standard output.
    fn run(&self, args: &[&str], stdin: &str) -> String {
        let log = self.log("command");
        let mut child = self.command(args, &log).stdin(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        assert!(status.success(), "lanyard {args:?} failed: {stderr}");
        std::fs::read_to_string(log.with_extension("out")).unwrap()
    }

    /// A user and a `read,write` token.
    fn token(&self) -> String {
        self.run(
            &["user", "create", "--email", "hooks@example.com", "--password-stdin"],
            "correct horse battery\n",
        );
        self.run(
            &["token", "create", "--email", "hooks@example.com", "--name", "tests"],
            "",
        )
        .trim()
        .to_owned()
    }

    async fn serve(&self, name: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = self.command(&["serve"], &self.log(name));
        command.env("LANYARD_BIND", format!("127.0.0.1:{port}"));
        let instance = Instance {
            child: command.stdin(Stdio::null()).spawn().unwrap(),
            port,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(instance.url("/healthz")).send().await
                && response.status() == 200
            {
                return instance;
            }
            assert!(
                Instant::now() < deadline,
                "an instance did not start serving within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn post(client: &reqwest::Client, instance: &Instance, path: &str, token: &str, body: Value) -> Value {
    let response = client
        .post(instance.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {answer}");
    answer
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

async fn until_received(server: &MockServer, count: usize, within: Duration) -> Vec<Request> {
    let deadline = Instant::now() + within;
    loop {
        let requests = received(server).await;
        if requests.len() >= count {
            return requests;
        }
        assert!(
            Instant::now() < deadline,
            "{count} deliveries did not arrive within {within:?} (got {})",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries_log(client: &reqwest::Client, instance: &Instance, webhook: &str, token: &str) -> Vec<Value> {
    client
        .get(instance.url(&format!("/api/webhooks/{webhook}/deliveries")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn event_id(request: &Request) -> String {
    request.headers["lanyard-event-id"].to_str().unwrap().to_owned()
}

/// The receiver answers 500 once; the instance that tried is stopped before the retry is due,
/// and a restarted one sends it.
async fn an_instance_restarted_between_attempts_loses_no_delivery(postgres: bool) {
    let Some(database) = database_for(postgres) else { return };
    let site = Site::new(database, "3s,3s");
    let token = site.token();
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let client = reqwest::Client::new();

    let first = site.serve("serve-first").await;
    let webhook = post(
        &client,
        &first,
        "/api/webhooks",
        &token,
        json!({"url": format!("{}/hook", receiver.uri())}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let ping = post(&client, &first, &format!("/api/webhooks/{id}/ping"), &token, json!({})).await;
    until_received(&receiver, 1, Duration::from_secs(10)).await;
    // Between attempts: the first one is recorded (an instance killed while sending leaves its
    // claim to lapse instead, a minute later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliveries_log(&client, &first, &id, &token).await.is_empty() {
        assert!(Instant::now() < deadline, "the first attempt was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(first);

    // The retry falls due while no instance runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(received(&receiver).await.len(), 1);
    let second = site.serve("serve-second").await;
    let requests = until_received(&receiver, 2, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(event_id(request), ping["event_id"].as_str().unwrap());
    }
    let log = deliveries_log(&client, &second, &id, &token).await;
    let attempts: Vec<(i64, i64)> = log
        .iter()
        .map(|entry| {
            (
                entry["attempt"].as_i64().unwrap(),
                entry["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(2, 200), (1, 500)], "{log:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        received(&receiver).await.len(),
        2,
        "a delivered event is not sent again"
    );
}

/// Two instances share the queue: forty pings queued through both arrive once each.
async fn two_instances_send_every_delivery_once(postgres: bool) {
    const PINGS: usize = 40;
    let Some(database) = database_for(postgres) else { return };
    let site = Site::new(database, "1s,2s");
    let token = site.token();
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(50)))
        .mount(&receiver)
        .await;
    let client = reqwest::Client::new();
    let instances = [site.serve("serve-a").await, site.serve("serve-b").await];
    let webhook = post(
        &client,
        &instances[0],
        "/api/webhooks",
        &token,
        json!({"url": format!("{}/hook", receiver.uri())}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let mut queued = HashSet::new();
    for n in 0..PINGS {
        let ping = post(
            &client,
            &instances[n % 2],
            &format!("/api/webhooks/{id}/ping"),
            &token,
            json!({}),
        )
        .await;
        queued.insert(ping["event_id"].as_str().unwrap().to_owned());
    }
    until_received(&receiver, PINGS, Duration::from_secs(30)).await;
    // Anything sent twice would arrive meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = received(&receiver).await;
    let ids: Vec<String> = requests.iter().map(event_id).collect();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), PINGS, "sent {} deliveries for {PINGS} events", ids.len());
    assert_eq!(unique, queued, "each event once");
    drop(instances);
}

/// The runs start and stop servers: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_attempts_loses_no_delivery_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    an_instance_restarted_between_attempts_loses_no_delivery(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_attempts_loses_no_delivery_on_postgresql() {
    let _turn = ONE_AT_A_TIME.lock().await;
    an_instance_restarted_between_attempts_loses_no_delivery(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_sqlite_send_every_delivery_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    two_instances_send_every_delivery_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_send_every_delivery_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    two_instances_send_every_delivery_once(true).await;
}
