//! The `lanyard` binary driven against a test database, with master keys from each source.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use diesel::prelude::*;
use lanyard::crypto::{KeyId, MasterKey};
use lanyard::db::llm_configurations::ConfigurationRow;
use lanyard::db::users::UserRow;
use lanyard::db::{ConnectionManager, DbConnection, master_key_canaries, schema};
use r2d2::ManageConnection;

use crate::binary::{COMMAND_LIMIT, Finished, Running, Sandbox, Server};
use crate::helpers::{TestApp, TestDatabase, free_port};

/// A refused start exits within this ("within a few seconds").
pub const QUICK_REFUSAL_LIMIT: Duration = Duration::from_secs(5);

/// Where a child's master keys come from.
#[derive(Clone)]
pub enum Keys {
    /// `LANYARD_MASTER_KEYS`.
    Entries(String),
    /// `LANYARD_MASTER_KEY_FILE`.
    File(PathBuf),
    /// Neither: the default key file under the working directory.
    DefaultFile,
}

/// The binary's surroundings for one test: a database and an empty working directory.
pub struct Cli {
    pub database: TestDatabase,
    pub sandbox: Sandbox,
}

impl Cli {
    pub fn new(database: TestDatabase) -> Cli {
        Cli {
            database,
            sandbox: Sandbox::new(),
        }
    }

    pub fn workdir(&self) -> PathBuf {
        self.sandbox.workdir()
    }

    pub fn envs(&self, keys: &Keys, port: u16, log: &str) -> Vec<(&'static str, String)> {
        let mut envs = vec![
            ("DATABASE_URL", self.database.url_string()),
            ("LANYARD_BIND", format!("127.0.0.1:{port}")),
            ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
            ("LANYARD_LOG", log.to_owned()),
        ];
        match keys {
            Keys::Entries(entries) => envs.push(("LANYARD_MASTER_KEYS", entries.clone())),
            Keys::File(path) => envs.push(("LANYARD_MASTER_KEY_FILE", path.display().to_string())),
            Keys::DefaultFile => {}
        }
        envs
    }

    pub fn start(&self, keys: &Keys, port: u16, log: &str, args: &[&str], stdin: &str) -> Running {
        self.sandbox.start(&self.envs(keys, port, log), args, stdin)
    }

    /// Runs a command to completion.
    pub fn run(&self, keys: &Keys, args: &[&str], stdin: &str) -> Finished {
        self.start(keys, free_port(), "info", args, stdin).finish(COMMAND_LIMIT)
    }

    /// `lanyard serve`, once `/healthz` answers 200.
    pub async fn serve(&self, keys: &Keys) -> Server {
        let port = free_port();
        let mut server = Server::new(self.start(keys, port, "debug", &["serve"], ""), port);
        server.until_serving().await;
        server
    }

    /// `lanyard serve` that must refuse to start: exits non-zero, quickly, saying why.
    pub fn serve_refused(&self, keys: &Keys) -> Finished {
        self.start(keys, free_port(), "debug", &["serve"], "")
            .refused_within(QUICK_REFUSAL_LIMIT)
    }

    /// Creates a user (password on standard input) and a `read,write` token for them.
    pub fn user_with_token(&self, keys: &Keys, email: &str) -> String {
        self.run(
            keys,
            &["user", "create", "--email", email, "--password-stdin"],
            "correct horse battery\n",
        )
        .assert_success();
        let created = self.run(keys, &["token", "create", "--email", email, "--name", "tests"], "");
        created.assert_success();
        created.stdout.trim().to_owned()
    }

    /// Every stored row that the key check protects, as text, in a stable order.
    pub fn dump(&self) -> Vec<String> {
        let mut conn = ConnectionManager::new(self.database.url())
            .connect()
            .expect("the test connects to its database");
        dump(&mut conn)
    }
}

pub fn dump(conn: &mut DbConnection) -> Vec<String> {
    let configurations: Vec<ConfigurationRow> = schema::llm_configurations::table
        .inner_join(schema::connections::table)
        .order(schema::llm_configurations::id)
        .select(ConfigurationRow::as_select())
        .load(conn)
        .expect("configurations");
    let users: Vec<UserRow> = schema::users::table
        .order(schema::users::id)
        .select(UserRow::as_select())
        .load(conn)
        .expect("users");
    let canaries = master_key_canaries::list(conn).expect("canaries");
    configurations
        .iter()
        .map(|row| format!("{row:?}"))
        .chain(users.iter().map(|row| format!("{row:?}")))
        .chain(canaries.iter().map(|row| format!("{row:?}")))
        .collect()
}

/// Parses a key entry the way the keyring does, asserting the `ID:BASE64` shape of 32 bytes.
pub fn assert_key_entry(line: &str) -> String {
    let (id, encoded) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("not ID:BASE64: {line:?}"));
    assert!(KeyId::parse(id).is_ok(), "invalid key id in {line:?}");
    let bytes = BASE64
        .decode(encoded)
        .unwrap_or_else(|_| panic!("not standard base64: {line:?}"));
    assert_eq!(bytes.len(), 32, "a master key is 32 bytes: {line:?}");
    assert!(MasterKey::parse_entry(line).is_ok());
    id.to_owned()
}

/// Runs `lanyard` against the app's database, as an operator would.
pub fn lanyard(app: &TestApp, sandbox: &Sandbox, args: &[&str], stdin: &str) -> Finished {
    let envs = [
        ("DATABASE_URL", app.test_database.url_string()),
        ("LANYARD_BIND", format!("127.0.0.1:{}", free_port())),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_MASTER_KEYS", app.master_keys.clone()),
    ];
    sandbox.start(&envs, args, stdin).finish(COMMAND_LIMIT)
}
