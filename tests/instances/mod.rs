//! `lanyard` processes of the real binary on a database of their own, for the test binaries that
//! run several instances side by side (`scheduled_checks`, `webhook_deliveries`).
// Each test binary compiles its own copy and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use lanyard::crypto::{KeyId, MasterKey};

const BINARY: &str = env!("CARGO_BIN_EXE_lanyard");
const POSTGRES_URL_VAR: &str = "LANYARD_TEST_POSTGRES_URL";

/// A database for one run, dropped (PostgreSQL) or deleted (SQLite) afterwards.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres {
        server_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// A fresh SQLite database, or a fresh PostgreSQL database named `<prefix>_<uuid>` on the
    /// server of `LANYARD_TEST_POSTGRES_URL` (`None`, with a notice, when it is not set).
    pub fn create(postgres: bool, prefix: &str) -> Option<TestDatabase> {
        if !postgres {
            return Some(TestDatabase::Sqlite(tempfile::tempdir().unwrap()));
        }
        let Ok(server_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("notice: {POSTGRES_URL_VAR} is not set; skipping the PostgreSQL run");
            return None;
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
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

    pub fn url(&self) -> String {
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

/// A `lanyard serve` child, killed and reaped when dropped.
pub struct Instance {
    child: Child,
    pub port: u16,
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until it answers `/healthz` (at most 30 s).
    pub async fn until_serving(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send().await
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
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One deployment: a database, a master key, the settings every process of it runs with, and a
/// working directory for their output.
pub struct Site {
    database: TestDatabase,
    workdir: tempfile::TempDir,
    master_keys: String,
    settings: Vec<(&'static str, String)>,
}

impl Site {
    /// `settings` are environment variables added to the base ones (database, master key,
    /// `LANYARD_EGRESS_MODE=allowlist`, `LANYARD_LOG=warn`).
    pub fn new(database: TestDatabase, key_id: &str, settings: Vec<(&'static str, String)>) -> Site {
        Site {
            database,
            workdir: tempfile::tempdir().unwrap(),
            master_keys: MasterKey::generate(KeyId::parse(key_id).unwrap()).to_entry(),
            settings,
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
            .env("LANYARD_LOG", "warn")
            .envs(self.settings.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::from(std::fs::File::create(log.with_extension("out")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()));
        command
    }

    fn log(&self, name: &str) -> PathBuf {
        self.workdir.path().join(name)
    }

    /// Runs a command to completion with `stdin`; its standard output.
    pub fn run(&self, args: &[&str], stdin: &str) -> String {
        let log = self.log("command");
        let mut child = self.command(args, &log).stdin(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        assert!(status.success(), "lanyard {args:?} failed: {stderr}");
        std::fs::read_to_string(log.with_extension("out")).unwrap()
    }

    /// A user `email` and a `read,write` token of theirs, made with the command line.
    pub fn token(&self, email: &str) -> String {
        self.run(
            &["user", "create", "--email", email, "--password-stdin"],
            "correct horse battery\n",
        );
        self.run(&["token", "create", "--email", email, "--name", "tests"], "")
            .trim()
            .to_owned()
    }

    /// Starts `lanyard serve` on a free loopback port, its output kept under `name`; it may
    /// not answer yet ([`Instance::until_serving`]).
    pub fn serve(&self, name: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = self.command(&["serve"], &self.log(name));
        command.env("LANYARD_BIND", format!("127.0.0.1:{port}"));
        Instance {
            child: command.stdin(Stdio::null()).spawn().unwrap(),
            port,
        }
    }

    /// The same, once it answers.
    pub async fn serving(&self, name: &str) -> Instance {
        let instance = self.serve(name);
        instance.until_serving(&reqwest::Client::new()).await;
        instance
    }
}
