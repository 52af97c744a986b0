//! Operating Lanyard: database outages, instances sharing a database, moving SQLite to
//! PostgreSQL, metrics and request logs. Every child process is killed by its handle when the
//! test ends, however it ends.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lanyard::db::{ConnectionManager, DatabaseUrl, users};
use lanyard::http::session::COOKIE_NAME;
use r2d2::ManageConnection;
use serde_json::json;
use uuid::Uuid;

use crate::binary::{Sandbox, Server, Site, master_keys};
use crate::helpers::configurations::Configuration;
use crate::helpers::vault::{assert_every_key_resolves, fill_vault};
use crate::helpers::{
    Backend, POSTGRES_URL_VAR, TEST_PASSWORD, TestApp, TestDatabase, assert_error, distinctive_key, free_port,
    master_key_entry,
};
use crate::on_both_backends;

on_both_backends!(made_up_methods_and_paths_add_no_metric_labels,);

const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Every value the exposition gives the label `name`.
fn label_values<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("{name}=\"");
    let mut values = Vec::new();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        for (at, _) in line.match_indices(marker.as_str()) {
            let rest = &line[at + marker.len()..];
            values.push(&rest[..rest.find('"').unwrap_or(rest.len())]);
        }
    }
    values
}

async fn made_up_methods_and_paths_add_no_metric_labels(app: TestApp) {
    let user = app.user().await;
    let mut strangers = Vec::new();
    for _ in 0..20 {
        let tag = Uuid::new_v4().simple().to_string();
        let method = reqwest::Method::from_bytes(format!("M{tag}").to_uppercase().as_bytes()).unwrap();
        for path in [
            format!("/p{tag}"),
            format!("/api/p{tag}"),
            format!("/llm-configurations/{tag}/p{tag}"),
        ] {
            let response = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
            assert!(response.status().is_client_error(), "{method} {path}");
            let response = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "GET {path}");
        }
        // A made-up method on a real route.
        let response = app
            .client
            .request(method.clone(), app.url("/api/llm-configurations"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{method} on a route");
        strangers.push(tag);
    }

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let exposition = response.text().await.unwrap();
    for tag in &strangers {
        assert!(
            !exposition.to_ascii_lowercase().contains(tag.as_str()),
            "a stranger's method or path became a label:\n{exposition}"
        );
    }
    let methods = label_values(&exposition, "method");
    assert!(
        methods.contains(&"OTHER"),
        "made-up methods count as OTHER:\n{exposition}"
    );
    for method in methods {
        assert!(
            method == "OTHER" || STANDARD_METHODS.contains(&method),
            "method label `{method}`"
        );
    }
    let routes = label_values(&exposition, "route");
    assert!(routes.contains(&"unmatched"), "{exposition}");
    assert!(routes.contains(&"/api/llm-configurations"), "{exposition}");
    for route in routes {
        assert!(route == "unmatched" || route.starts_with('/'), "route label `{route}`");
    }
}

/// `lanyard serve` on a fresh SQLite database, with `env` added; returns it once it answers.
async fn serve(sandbox: &Sandbox, database: &TestDatabase, env: &[(&'static str, String)]) -> Server {
    let port = free_port();
    let mut envs = vec![
        ("DATABASE_URL", database.url_string()),
        ("LANYARD_MASTER_KEYS", master_key_entry("log-key")),
        ("LANYARD_BIND", format!("127.0.0.1:{port}")),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_LOG", "info".to_owned()),
    ];
    envs.extend_from_slice(env);
    let mut server = Server::new(sandbox.start(&envs, &["serve"], ""), port);
    server.until_serving().await;
    server
}

/// Requests whose query string carries `secret` and that claim to come from `forwarded`.
async fn send_revealing_requests(server: &Server, secret: &str, forwarded: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        format!("/healthz?api_key={secret}"),
        format!("/login?api_key={secret}"),
        format!("/api/llm-configurations?api_key={secret}"),
        format!("/no-such-page?api_key={secret}"),
    ] {
        let response = client
            .get(server.url(&path))
            .header("X-Forwarded-For", forwarded)
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 500, "GET {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_the_path_without_its_query_and_ignore_a_strangers_forwarded_address() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sandbox = Sandbox::new();
    let server = serve(&sandbox, &database, &[]).await;
    let secret = distinctive_key("sk-logged-");
    send_revealing_requests(&server, &secret, "203.0.113.9").await;
    let log = server.stop();

    assert!(log.contains("http.target=/login"), "the request is logged:\n{log}");
    assert!(log.contains("http.target=/api/llm-configurations"), "{log}");
    assert!(!log.contains(&secret), "the query string reached the log:\n{log}");
    assert!(!log.contains("api_key"), "the query string reached the log:\n{log}");
    assert!(log.contains("http.client_ip=127.0.0.1"), "the peer is logged:\n{log}");
    assert!(
        !log.contains("203.0.113.9"),
        "a stranger's X-Forwarded-For reached the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_request_logs_carry_the_forwarded_address() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sandbox = Sandbox::new();
    let proxy = [("LANYARD_TRUSTED_PROXIES", "127.0.0.1/32".to_owned())];
    let server = serve(&sandbox, &database, &proxy).await;
    let secret = distinctive_key("sk-logged-");
    send_revealing_requests(&server, &secret, "198.51.100.7, 203.0.113.9").await;
    let log = server.stop();

    assert!(
        log.contains("http.client_ip=203.0.113.9"),
        "the address the proxy saw is logged:\n{log}"
    );
    assert!(
        !log.contains("198.51.100.7"),
        "entries the client wrote itself prove nothing:\n{log}"
    );
    assert!(!log.contains(&secret), "the query string reached the log:\n{log}");
}

/// The database going away must give 503 within 5 s; this allows for a loaded test machine.
const OUTAGE_LIMIT: Duration = Duration::from_secs(7);

/// Service resumes by itself within this once the database is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_database_moves_a_sqlite_vault_into_an_empty_postgres_database() {
    let Some(target) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let source = TestDatabase::create(Backend::Sqlite).expect("sqlite is always available");
    let site = Site::new(source.url_string());
    let env = master_keys(&master_key_entry("moving"));
    let email = "mover@example.com";
    let (write, resolve) = site.user_with_tokens(&env, email);
    let server = site.serve(&env).await;
    let vault = fill_vault(&server, &write).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    let webhook = server
        .send_json(
            reqwest::Method::POST,
            "/api/webhooks",
            &write,
            &json!({"url": "https://hooks.example.com/moved", "events": ["connection.failed"]}),
        )
        .await;
    assert_eq!(webhook.status(), 201);
    let webhooks_before = server.get("/api/webhooks", &write).await.text().await.unwrap();
    // An organisation with a service token that revealed the owner's shared default.
    let organisation: serde_json::Value = server
        .send_json(
            reqwest::Method::POST,
            "/api/organisations",
            &write,
            &json!({"name": "Movers"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let organisation = organisation["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            format!("/api/organisations/{organisation}"),
            json!({"policy": {"allow_personal_configurations": true}}),
        ),
        (
            format!("/api/organisations/{organisation}/membership"),
            json!({"share_personal_configurations": true}),
        ),
    ] {
        let response = server.send_json(reqwest::Method::PUT, &path, &write, &body).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let service = {
        let mut conn = ConnectionManager::new(source.url()).connect().expect("the source");
        let owner = users::find_by_email_key(&mut conn, email).unwrap().unwrap().id.0;
        let new = lanyard::services::tokens::NewToken {
            name: "runtime".into(),
            scopes: lanyard::domain::Scopes::parse("read,resolve").unwrap(),
            expires_in_days: None,
        };
        let caps = lanyard::domain::UserCaps::default();
        let keyring = lanyard::crypto::MasterKeyring::parse(&master_key_entry("moving")).unwrap();
        let proof = lanyard::services::accounts::Reauthentication {
            current_password: Some(TEST_PASSWORD),
            totp_code: None,
            single_sign_on: false,
        };
        lanyard::services::service_tokens::create(
            &mut conn,
            &keyring,
            owner,
            organisation.parse().unwrap(),
            &new,
            caps.tokens,
            &proof,
            "127.0.0.1",
        )
        .unwrap()
        .secret
        .expose()
        .to_owned()
    };
    let for_owner = format!("/api/resolve?user={email}");
    assert_eq!(server.get(&for_owner, &service).await.status(), 200);
    let listed = server.list(&write).await;
    server.stop();

    let copied = site.run(&env, &["copy-database", "--to", &target.url_string()], "");
    copied.assert_success();
    assert!(copied.stdout.contains("verified the counts"), "{}", copied.stdout);
    for line in [
        "users: 1",
        "api_tokens: 2",
        "llm_configurations: 5",
        "conversation_overrides: 5",
        "key_reveals: 7",
        "master_key_canaries: 1",
        "webhooks: 1",
        "service_tokens: 1",
        "organisation_reveals: 1",
    ] {
        assert!(copied.has_line(line), "`{line}` in:\n{}", copied.stdout);
    }

    let moved = Site::new(target.url_string());
    let server = moved.serve(&env).await;
    assert_eq!(
        server.get("/api/webhooks", &write).await.text().await.unwrap(),
        webhooks_before,
        "the webhook moved too"
    );
    assert_eq!(
        server.list(&write).await,
        listed,
        "the same configurations, field for field"
    );
    assert_every_key_resolves(&server, &resolve, &vault).await;
    assert_eq!(
        server.get(&for_owner, &service).await.status(),
        200,
        "the service token moved"
    );
    let cookie = server.login(email, TEST_PASSWORD).await;
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200
    );
    server.stop();

    let again = site.run(&env, &["copy-database", "--to", &target.url_string()], "");
    again.assert_failure();
    assert!(again.stderr.contains("empty"), "{}", again.stderr);
    let mut conn = ConnectionManager::new(target.url()).connect().expect("the target");
    assert_eq!(users::count(&mut conn).unwrap(), 1, "a refused copy changes nothing");
    assert_eq!(
        lanyard::db::connections::count_keys_by_key_id(&mut conn).unwrap(),
        vec![("moving".to_owned(), 5)]
    );
}

/// A PostgreSQL server in a temporary folder on a free loopback port, with trust
/// authentication; stopped and removed when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    // Dropped last, after the server has been stopped.
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// An initialised server, not yet started; `None` (with a notice) when Debian's PostgreSQL
    /// binaries are missing, unless the PostgreSQL suite is required (CI), where that fails.
    fn create() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
            .max_by_key(|bin| {
                bin.parent()
                    .and_then(|version| version.file_name())
                    .and_then(|name| name.to_str())
                    .and_then(|name| name.parse::<u32>().ok())
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var(POSTGRES_URL_VAR).is_err(),
                "{POSTGRES_URL_VAR} is set, but /usr/lib/postgresql/*/bin/initdb and pg_ctl are missing"
            );
            eprintln!("notice: PostgreSQL's initdb and pg_ctl are missing; skipping an outage test");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary folder");
        // PostgreSQL refuses to run as root: the server runs as `postgres`, in a folder it owns.
        let as_postgres_user = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").map(|meta| meta.uid()).unwrap_or(1) == 0
        };
        if as_postgres_user {
            let chowned = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(chowned.success(), "chown the private PostgreSQL folder");
        }
        let postgres = PrivatePostgres {
            bin,
            port: free_port(),
            as_postgres_user,
            dir,
        };
        let data = postgres.data();
        postgres.pg_tool(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        Some(postgres)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    /// Runs a PostgreSQL tool to completion; panics with its output if it fails.
    fn pg_tool(&self, tool: &str, args: &[&str]) {
        let output = self.command(tool, args).output().expect("the PostgreSQL tool runs");
        assert!(
            output.status.success(),
            "{tool} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.pg_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would.
    fn stop(&self) {
        self.pg_tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        // Not running is fine: nothing to stop.
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Sends requests until one answers `status`; panics after `limit`.
async fn until_status(limit: Duration, status: u16, send: impl AsyncFn() -> reqwest::Response) {
    let started = Instant::now();
    loop {
        let last = send().await.status().as_u16();
        if last == status {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "no {status} within {limit:?} (last answer {last})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A response that must arrive within `limit`.
async fn within(limit: Duration, what: &str, response: impl Future<Output = reqwest::Response>) -> reqwest::Response {
    tokio::time::timeout(limit, response)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_quickly_and_service_resumes_without_a_restart() {
    let Some(postgres) = PrivatePostgres::create() else {
        return;
    };
    postgres.start();
    let site = Site::new(postgres.url());
    let env = master_keys(&master_key_entry("outage"));
    let email = "steady@example.com";
    let (write, _) = site.user_with_tokens(&env, email);
    let server = site.serve(&env).await;
    server
        .create(
            &write,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    let cookie = server.login(email, TEST_PASSWORD).await;
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200
    );

    postgres.stop();
    let (api, ready, page, health) = tokio::join!(
        within(OUTAGE_LIMIT, "the API", server.get("/api/llm-configurations", &write)),
        within(OUTAGE_LIMIT, "/readyz", server.get_anonymous("/readyz")),
        within(
            OUTAGE_LIMIT,
            "a page",
            server.get_with_cookie("/llm-configurations", &cookie)
        ),
        within(Duration::from_secs(2), "/healthz", server.get_anonymous("/healthz")),
    );
    assert_error(api, 503, "unavailable").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(page.status(), 503);
    assert_eq!(health.status(), 200, "the process itself is fine");

    postgres.start();
    until_status(RECOVERY_LIMIT, 200, async || {
        server.get("/api/llm-configurations", &write).await
    })
    .await;
    assert_eq!(server.list(&write).await.len(), 1);
    assert_eq!(server.get_anonymous("/readyz").await.status(), 200);
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200,
        "the session outlived the outage"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanyard_started_while_the_database_is_down_becomes_ready_when_it_answers() {
    let Some(postgres) = PrivatePostgres::create() else {
        return;
    };
    let site = Site::new(postgres.url());
    let env = master_keys(&master_key_entry("patient"));
    let server = site.serve(&env).await;
    assert_eq!(server.get_anonymous("/readyz").await.status(), 503);
    assert_error(
        server.get("/api/llm-configurations", "lny_not-a-real-token").await,
        503,
        "unavailable",
    )
    .await;

    postgres.start();
    until_status(RECOVERY_LIMIT, 200, async || server.get_anonymous("/readyz").await).await;
    let mut conn = ConnectionManager::new(DatabaseUrl::Postgres(postgres.url()))
        .connect()
        .expect("the test connects to its server");
    assert!(
        lanyard::db::migrations::vault_tables_exist(&mut conn).unwrap(),
        "the server ran the migrations"
    );
    drop(conn);
    let (write, _) = site.user_with_tokens(&env, "late@example.com");
    assert!(server.list(&write).await.is_empty());
    server
        .create(
            &write,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_start_together_on_an_empty_database_and_share_sessions() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let site = Site::new(database.url_string());
    let env = master_keys(&master_key_entry("shared"));
    let metrics_token = format!("metrics-{}", Uuid::new_v4().simple());
    let mut with_metrics_token = env.clone();
    with_metrics_token.push(("LANYARD_METRICS_TOKEN", metrics_token.clone()));
    let mut a = site.launch(&env);
    let mut b = site.launch(&with_metrics_token);
    a.until_serving().await;
    b.until_serving().await;
    for server in [&a, &b] {
        until_status(Duration::from_secs(10), 200, async || {
            server.get_anonymous("/readyz").await
        })
        .await;
    }

    let email = "roaming@example.com";
    let (write, _) = site.user_with_tokens(&env, email);
    let cookie = a.login(email, TEST_PASSWORD).await;
    let on_b = b.get_with_cookie("/settings", &cookie).await;
    assert_eq!(on_b.status(), 200, "a session made on A works on B");
    assert!(on_b.headers().contains_key("x-request-id"));
    assert!(on_b.text().await.unwrap().contains(&format!("Signed in as {email}")));

    let key = distinctive_key("sk-proj-");
    let created = a
        .create(
            &write,
            json!({"name": "shared", "provider": "openai", "model": "gpt-4o", "api_key": key}),
        )
        .await;
    let fetched = b.get(&created.path(), &write).await;
    assert_eq!(fetched.status(), 200);
    let request_id = fetched.headers().get("x-request-id").cloned();
    assert!(
        request_id.is_some_and(|id| !id.is_empty()),
        "responses carry a request id"
    );
    assert_eq!(fetched.json::<Configuration>().await.unwrap(), created);
    let fetched = a.get(&created.path(), &write).await;
    assert_eq!(fetched.status(), 200);
    assert!(a.get_anonymous("/healthz").await.headers().contains_key("x-request-id"));

    let metrics = a.get_anonymous("/metrics").await;
    assert_eq!(metrics.status(), 200, "no LANYARD_METRICS_TOKEN on A: open");
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain")),
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE lanyard_http_requests_total counter"), "{text}");
    assert!(
        text.contains("route=\"/api/llm-configurations/{id}\""),
        "routes are labelled by pattern:\n{text}"
    );
    let id = created.id.to_string();
    for secret in [
        id.as_str(),
        key.as_str(),
        write.as_str(),
        &cookie[COOKIE_NAME.len() + 1..],
    ] {
        assert!(!text.contains(secret), "the metrics carry no id, key, token or session");
    }

    assert_eq!(b.get_anonymous("/metrics").await.status(), 401);
    assert_eq!(b.get("/metrics", "not-the-metrics-token").await.status(), 401);
    assert_eq!(b.get("/metrics", &write).await.status(), 401);
    let metrics = b.get("/metrics", &metrics_token).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("# TYPE lanyard_http_requests_total counter")
    );
    a.stop();
    b.stop();
}
