//! Scheduled checks across instances (issue 15, Must show 1): three `lanyard serve` processes
//! on one PostgreSQL database (and one on SQLite) with `LANYARD_CHECK_INTERVAL=5s` and 20
//! connections pointing at a local fake provider that counts requests per key. Over 30 s every
//! connection is checked 5 to 7 times in all (not per instance), never twice within 4 s.
//!
//! Its own test binary: it runs for about 35 s per backend and measures time, so it does not
//! share the machine with the rest of the suite's tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use lanyard::crypto::{KeyId, MasterKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BINARY: &str = env!("CARGO_BIN_EXE_lanyard");
const POSTGRES_URL_VAR: &str = "LANYARD_TEST_POSTGRES_URL";
const CONNECTIONS: usize = 20;
const WATCHED: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_secs(5);

/// When each key was presented to the fake provider.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// An OpenAI-compatible model list on 127.0.0.1 that notes every request's bearer key.
async fn fake_provider() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let noted = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let noted = noted.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let key = text
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().trim_start_matches("Bearer ").to_owned())
                    })
                    .unwrap_or_default();
                noted.lock().unwrap().entry(key).or_default().push(Instant::now());
                let body = json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, seen)
}

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

/// A `lanyard` child, killed and reaped when dropped.
struct Instance {
    child: Child,
    port: u16,
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
    provider_port: u16,
}

impl Site {
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
            .env("LANYARD_EGRESS_ALLOW", "127.0.0.1/32")
            .env("LANYARD_CHECK_INTERVAL", "5s")
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

    fn serve(&self, index: usize) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = self.command(&["serve"], &self.log(&format!("serve-{index}")));
        command.env("LANYARD_BIND", format!("127.0.0.1:{port}"));
        Instance {
            child: command.stdin(Stdio::null()).spawn().unwrap(),
            port,
        }
    }
}

async fn until_serving(client: &reqwest::Client, instance: &Instance) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("http://127.0.0.1:{}/healthz", instance.port);
        if let Ok(response) = client.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "an instance did not start serving within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let name = format!("lanyard_checks_{}", uuid::Uuid::new_v4().simple());
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

/// `instances` servers on one database check each of 20 connections once per interval in all.
async fn every_connection_is_checked_once_per_interval(postgres: bool, instances: usize) {
    let Some(database) = database_for(postgres) else { return };
    let (provider_port, seen) = fake_provider().await;
    let site = Site {
        database,
        workdir: tempfile::tempdir().unwrap(),
        master_keys: MasterKey::generate(KeyId::parse("checks1").unwrap()).to_entry(),
        provider_port,
    };
    site.run(
        &["user", "create", "--email", "checks@example.com", "--password-stdin"],
        "correct horse battery\n",
    );
    let token = site
        .run(
            &["token", "create", "--email", "checks@example.com", "--name", "tests"],
            "",
        )
        .trim()
        .to_owned();
    let servers: Vec<Instance> = (0..instances).map(|index| site.serve(index)).collect();
    let client = reqwest::Client::new();
    for server in &servers {
        until_serving(&client, server).await;
    }

    let keys: Vec<String> = (0..CONNECTIONS)
        .map(|index| format!("sk-scheduled-{index:02}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for (index, key) in keys.iter().enumerate() {
        // Spread over the instances, as a load balancer would.
        let server = &servers[index % servers.len()];
        let body = json!({
            "name": format!("checked {index}"),
            "provider": "openai",
            "api_key": key,
            "base_url": format!("http://127.0.0.1:{}/v1", site.provider_port),
        });
        let response = client
            .post(format!("http://127.0.0.1:{}/api/connections", server.port))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    let watched_from = Instant::now();
    tokio::time::sleep(WATCHED).await;
    let watched_until = Instant::now();
    drop(servers);

    let seen = seen.lock().unwrap().clone();
    let mut report = Vec::new();
    for key in &keys {
        let times: Vec<Instant> = seen
            .get(key)
            .map(|times| {
                times
                    .iter()
                    .copied()
                    .filter(|at| *at >= watched_from && *at <= watched_until)
                    .collect()
            })
            .unwrap_or_default();
        let closest = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .min()
            .unwrap_or(Duration::MAX);
        report.push((times.len(), closest));
    }
    eprintln!("checks per connection in 30 s, and the closest two: {report:?}");
    for (index, (count, closest)) in report.iter().enumerate() {
        assert!(
            (5..=7).contains(count),
            "connection {index} was checked {count} times in 30 s (want 5 to 7); all: {report:?}"
        );
        assert!(
            *closest >= INTERVAL * 4 / 5,
            "connection {index} was checked twice within {closest:?} (want at least 4 s); all: {report:?}"
        );
    }
    assert!(
        !seen.keys().any(|key| !keys.contains(key)),
        "the provider saw a key it was not given: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
}

/// The two runs measure time: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgresql_check_each_connection_once_per_interval() {
    let _turn = ONE_AT_A_TIME.lock().await;
    every_connection_is_checked_once_per_interval(true, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_sqlite_checks_each_connection_once_per_interval() {
    let _turn = ONE_AT_A_TIME.lock().await;
    every_connection_is_checked_once_per_interval(false, 1).await;
}
