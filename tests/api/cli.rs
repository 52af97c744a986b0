//! The `lanyard` binary itself: keygen, help, users and tokens from the shell, the key file, the
//! start-up key check against what the database holds, and a log without secrets. Each child
//! runs in an empty working directory with its environment set explicitly, and is killed by its
//! handle when the test ends, however it ends.

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
use serde_json::{Value, json};
use uuid::Uuid;

use crate::binary::{COMMAND_LIMIT, Finished, Running, Sandbox, Server};
use crate::helpers::{TestDatabase, distinctive_key, free_port, master_key_entry, spawn_app_on};

/// A refused start exits within this ("within a few seconds").
const REFUSAL_LIMIT: Duration = Duration::from_secs(5);

/// Runs each named `async fn(Cli)` once on SQLite and once on PostgreSQL.
macro_rules! binary_on_both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                use $crate::helpers::{Backend, TestDatabase};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let database = TestDatabase::create(Backend::Sqlite).expect("sqlite is always available");
                    super::$test(super::Cli::new(database)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(database) = TestDatabase::create(Backend::Postgres) {
                        super::$test(super::Cli::new(database)).await;
                    }
                }
            }
        )+
    };
}

binary_on_both_backends!(
    users_and_tokens_created_from_the_shell_work_against_the_api,
    serve_creates_a_private_key_file_for_a_fresh_database_and_migrate_succeeds,
    a_wrong_or_unconfigured_master_key_is_refused_by_name_and_changes_nothing,
    a_deleted_default_key_file_is_refused_by_name_once_data_exists,
    the_server_log_holds_no_api_key_and_no_token,
);

/// Where a child's master keys come from.
#[derive(Clone)]
enum Keys {
    /// `LANYARD_MASTER_KEYS`.
    Entries(String),
    /// `LANYARD_MASTER_KEY_FILE`.
    File(PathBuf),
    /// Neither: the default key file under the working directory.
    DefaultFile,
}

/// The binary's surroundings for one test: a database and an empty working directory.
struct Cli {
    database: TestDatabase,
    sandbox: Sandbox,
}

impl Cli {
    fn new(database: TestDatabase) -> Cli {
        Cli {
            database,
            sandbox: Sandbox::new(),
        }
    }

    fn workdir(&self) -> PathBuf {
        self.sandbox.workdir()
    }

    fn envs(&self, keys: &Keys, port: u16, log: &str) -> Vec<(&'static str, String)> {
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

    fn start(&self, keys: &Keys, port: u16, log: &str, args: &[&str], stdin: &str) -> Running {
        self.sandbox.start(&self.envs(keys, port, log), args, stdin)
    }

    /// Runs a command to completion.
    fn run(&self, keys: &Keys, args: &[&str], stdin: &str) -> Finished {
        self.start(keys, free_port(), "info", args, stdin).finish(COMMAND_LIMIT)
    }

    /// `lanyard serve`, once `/healthz` answers 200.
    async fn serve(&self, keys: &Keys) -> Server {
        let port = free_port();
        let mut server = Server::new(self.start(keys, port, "debug", &["serve"], ""), port);
        server.until_serving().await;
        server
    }

    /// `lanyard serve` that must refuse to start: exits non-zero, quickly, saying why.
    fn serve_refused(&self, keys: &Keys) -> Finished {
        self.start(keys, free_port(), "debug", &["serve"], "")
            .refused_within(REFUSAL_LIMIT)
    }

    /// Creates a user (password on standard input) and a `read,write` token for them.
    fn user_with_token(&self, keys: &Keys, email: &str) -> String {
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
    fn dump(&self) -> Vec<String> {
        let mut conn = ConnectionManager::new(self.database.url())
            .connect()
            .expect("the test connects to its database");
        dump(&mut conn)
    }
}

fn dump(conn: &mut DbConnection) -> Vec<String> {
    let configurations: Vec<ConfigurationRow> = schema::llm_configurations::table
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
fn assert_key_entry(line: &str) -> String {
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

/// A command that needs no database, with no environment at all.
fn run_bare(sandbox: &Sandbox, args: &[&str]) -> Finished {
    sandbox.start(&[], args, "").finish(COMMAND_LIMIT)
}

#[test]
fn keygen_prints_one_ready_master_key_entry() {
    let sandbox = Sandbox::new();
    let first = run_bare(&sandbox, &["keygen"]);
    first.assert_success();
    assert_eq!(first.stdout.lines().count(), 1, "{:?}", first.stdout);
    assert!(first.stdout.ends_with('\n'));
    let entry = first.stdout.trim_end();
    assert_key_entry(entry);

    let named = run_bare(&sandbox, &["keygen", "--id", "k7"]);
    named.assert_success();
    assert_eq!(named.stdout.lines().count(), 1, "{:?}", named.stdout);
    assert_eq!(assert_key_entry(named.stdout.trim_end()), "k7");
    assert_ne!(named.stdout.trim_end(), entry);

    run_bare(&sandbox, &["keygen", "--id", "not valid!"]).assert_failure();
    // keygen touches no database: nothing appears in the working directory.
    let created: Vec<_> = std::fs::read_dir(sandbox.workdir()).expect("work folder").collect();
    assert!(created.is_empty(), "keygen created files: {created:?}");
}

#[test]
fn every_command_and_subcommand_answers_help() {
    let sandbox = Sandbox::new();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut answered = Vec::new();
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = run_bare(&sandbox, &args);
        help.assert_success();
        let usage = ["lanyard".to_owned()].into_iter().chain(path.iter().cloned());
        let usage = format!("Usage: {}", usage.collect::<Vec<_>>().join(" "));
        assert!(help.stdout.contains(&usage), "`{}`:\n{}", args.join(" "), help.stdout);
        for command in subcommands(&help.stdout) {
            let mut child = path.clone();
            child.push(command);
            pending.push(child);
        }
        answered.push(path.join(" "));
    }
    for expected in [
        "",
        "serve",
        "migrate",
        "keygen",
        "user",
        "user create",
        "token",
        "token create",
    ] {
        assert!(
            answered.iter().any(|path| path == expected),
            "`lanyard {expected}` is missing from the help tree: {answered:?}"
        );
    }
}

/// The commands listed in a clap help text (without clap's own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .map(str::to_owned)
        .collect()
}

async fn users_and_tokens_created_from_the_shell_work_against_the_api(cli: Cli) {
    let entry = master_key_entry("cli-key");
    let keys = Keys::Entries(entry.clone());
    let email = "ada@example.com";
    let created = cli.run(
        &keys,
        &["user", "create", "--email", email, "--password-stdin"],
        "correct horse battery\n",
    );
    created.assert_success();
    assert!(created.stderr.contains(email), "{}", created.stderr);

    let read_write = cli.run(&keys, &["token", "create", "--email", email, "--name", "laptop"], "");
    read_write.assert_success();
    let read_write = read_write.stdout;
    assert_eq!(read_write.lines().count(), 1, "the token alone: {read_write:?}");
    let read_write = read_write
        .strip_suffix('\n')
        .expect("one line ends with a newline")
        .to_owned();
    assert!(
        read_write.starts_with("lny_") && read_write.len() >= 36,
        "{read_write:?}"
    );
    assert!(!read_write.contains(char::is_whitespace));

    let resolve = cli.run(
        &keys,
        &[
            "token", "create", "--email", email, "--name", "agent", "--scopes", "resolve",
        ],
        "",
    );
    resolve.assert_success();
    assert_eq!(resolve.stdout.lines().count(), 1, "{:?}", resolve.stdout);
    let resolve = resolve.stdout.trim_end().to_owned();
    assert!(resolve.starts_with("lny_") && resolve != read_write);

    let unknown = cli.run(
        &keys,
        &["token", "create", "--email", "nobody@example.com", "--name", "x"],
        "",
    );
    unknown.assert_failure();
    assert!(unknown.stderr.contains("nobody@example.com"), "{}", unknown.stderr);
    assert!(unknown.stdout.is_empty(), "no token on failure: {:?}", unknown.stdout);

    let short = cli.run(
        &keys,
        &["user", "create", "--email", "bo@example.com", "--password-stdin"],
        "short\n",
    );
    short.assert_failure();
    assert!(short.stderr.contains("password"), "{}", short.stderr);
    cli.run(
        &keys,
        &["token", "create", "--email", "bo@example.com", "--name", "x"],
        "",
    )
    .assert_failure();

    // The tokens carry the scopes asked for: read,write by default, resolve alone otherwise.
    let Cli { database, .. } = cli;
    let app = spawn_app_on(database, entry).await;
    assert_eq!(app.get("/api/llm-configurations", &read_write).await.status(), 200);
    app.create_openai(&read_write, "from-shell", "sk-shell-key-000001")
        .await;
    assert_eq!(app.get("/api/llm-configurations", &resolve).await.status(), 403);
}

async fn serve_creates_a_private_key_file_for_a_fresh_database_and_migrate_succeeds(cli: Cli) {
    let key_file = cli.sandbox.path().join("secrets/nested/master.key");
    let keys = Keys::File(key_file.clone());
    let server = cli.serve(&keys).await;
    let health = server.get_anonymous("/healthz").await;
    assert_eq!(health.status(), 200);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("the key file exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let contents = std::fs::read_to_string(&key_file).expect("the key file");
    let entries: Vec<&str> = contents
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(entries.len(), 1, "{contents}");
    assert_key_entry(entries[0]);
    let log = server.stop();
    assert!(
        log.contains(&key_file.display().to_string()),
        "the log names the new key file:\n{log}"
    );
    assert!(!log.contains(entries[0]), "the log must not carry the key");

    cli.run(&keys, &["migrate"], "").assert_success();
    assert_eq!(std::fs::read_to_string(&key_file).expect("the key file"), contents);
}

async fn a_wrong_or_unconfigured_master_key_is_refused_by_name_and_changes_nothing(cli: Cli) {
    let original = Keys::Entries(master_key_entry("vault-a"));
    let token = cli.user_with_token(&original, "keeper@example.com");
    let server = cli.serve(&original).await;
    server
        .create(
            &token,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-proj-")}),
        )
        .await;
    server
        .create(
            &token,
            json!({"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4", "api_key": distinctive_key("sk-ant-")}),
        )
        .await;
    server
        .create(
            &token,
            json!({"name": "fast", "provider": "groq", "model": "llama-3.3-70b", "api_key": distinctive_key("gsk_")}),
        )
        .await;
    let listed = server.list(&token).await;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|c| c["api_key_masked"].is_string()));
    server.stop();
    let before = cli.dump();

    let same_id = cli.serve_refused(&Keys::Entries(master_key_entry("vault-a")));
    assert!(
        same_id.stderr.contains("`vault-a`") && same_id.stderr.contains("does not match"),
        "the refusal names the mismatched key id:\n{}",
        same_id.stderr
    );
    let other_id = cli.serve_refused(&Keys::Entries(master_key_entry("vault-b")));
    assert!(
        other_id.stderr.contains("`vault-a`") && other_id.stderr.contains("not configured"),
        "the refusal names the missing key id:\n{}",
        other_id.stderr
    );
    assert_eq!(cli.dump(), before, "a refused start changes nothing");

    let server = cli.serve(&original).await;
    assert_eq!(server.list(&token).await, listed);
    for configuration in &listed {
        let path = format!(
            "/api/llm-configurations/{}",
            configuration["id"].as_str().expect("an id")
        );
        let response = server.get(&path, &token).await;
        assert_eq!(response.status(), 200);
        let fetched: Value = response.json().await.expect("a resource");
        assert_eq!(&fetched, configuration);
    }
}

async fn a_deleted_default_key_file_is_refused_by_name_once_data_exists(cli: Cli) {
    let keys = Keys::DefaultFile;
    let key_file = cli.workdir().join("lanyard-data/master.key");
    let token = cli.user_with_token(&keys, "filed@example.com");
    assert!(key_file.exists(), "the first command created the default key file");
    let server = cli.serve(&keys).await;
    server
        .create(
            &token,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    server.stop();
    let before = cli.dump();

    std::fs::remove_file(&key_file).expect("delete the key file");
    let refused = cli.serve_refused(&keys);
    assert!(
        refused.stderr.contains("lanyard-data/master.key") && refused.stderr.contains("missing"),
        "the refusal names the missing file:\n{}",
        refused.stderr
    );
    assert!(!key_file.exists(), "no new key file replaces the lost one");
    assert_eq!(cli.dump(), before, "a refused start changes nothing");
}

async fn the_server_log_holds_no_api_key_and_no_token(cli: Cli) {
    let entry = master_key_entry("log-key");
    let master_key = entry.split_once(':').expect("ID:BASE64").1.to_owned();
    let keys = Keys::Entries(entry);
    let token = cli.user_with_token(&keys, "quiet@example.com");
    let server = cli.serve(&keys).await;
    let mut secrets = vec![token.clone(), master_key];
    for (name, provider, prefix) in [
        ("one", "openai", "sk-proj-"),
        ("two", "anthropic", "sk-ant-"),
        ("three", "openrouter", "sk-or-v1-"),
    ] {
        let key = distinctive_key(prefix);
        let created = server
            .create(
                &token,
                json!({"name": name, "provider": provider, "model": "some-model", "api_key": key}),
            )
            .await;
        secrets.push(key);
        let path = format!("/api/llm-configurations/{}", created["id"].as_str().expect("an id"));
        let new_key = distinctive_key(prefix);
        let updated = server
            .send_json(reqwest::Method::PUT, &path, &token, &json!({"api_key": new_key}))
            .await;
        assert_eq!(updated.status(), 200);
        secrets.push(new_key);
        // Rejected keys must not be logged either.
        let bad_key = format!("{} {}", distinctive_key(prefix), Uuid::new_v4().simple());
        let rejected = server
            .send_json(reqwest::Method::PUT, &path, &token, &json!({"api_key": bad_key}))
            .await;
        assert_eq!(rejected.status(), 422);
        secrets.extend(bad_key.split(' ').map(str::to_owned));
        assert_eq!(server.get(&path, &token).await.status(), 200);
    }
    let invalid_create = distinctive_key("sk-");
    let rejected = server
        .send_json(
            reqwest::Method::POST,
            "/api/llm-configurations",
            &token,
            &json!({"name": "", "provider": "openai", "model": "gpt-4o", "api_key": invalid_create}),
        )
        .await;
    assert_eq!(rejected.status(), 422);
    secrets.push(invalid_create);
    server.list(&token).await;

    let log = server.stop();
    assert!(log.contains("Lanyard is listening"), "the log was captured:\n{log}");
    for secret in &secrets {
        let chars: Vec<char> = secret.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(!log.contains(&piece), "the log contains `{piece}`, a piece of a secret");
        }
    }
}
