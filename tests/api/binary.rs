//! Driving the real `lanyard` binary: each child runs in an empty working directory with its
//! environment set explicitly, writes its output to files, and is killed by its handle when the
//! test ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lanyard::http::anonymous_csrf::COOKIE_NAME as CSRF_COOKIE_NAME;
use lanyard::http::session::COOKIE_NAME;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::configurations::{CONFIGURATIONS, Configuration, expect_json};
use crate::helpers::{TEST_PASSWORD, csrf_from, free_port};

const BINARY: &str = env!("CARGO_BIN_EXE_lanyard");
/// A command that is not `serve` finishes well within this.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// A refused start exits within this.
pub const REFUSAL_LIMIT: Duration = Duration::from_secs(10);
/// `serve` answers `/healthz` within this (a database that is down costs one 5 s checkout).
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// A child process that is killed and reaped when dropped, whatever the test did.
pub struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child's status")
    }

    /// Waits for the child to exit; panics (and the guard kills it) after `limit`.
    pub fn finish(mut self, limit: Duration) -> Finished {
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(
                self.started.elapsed() < limit,
                "the command did not finish within {limit:?}; stderr so far:\n{}",
                read(&self.stderr)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            status,
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
            elapsed: self.started.elapsed(),
        }
    }

    /// For a `serve` that must refuse to start: it exits non-zero within `limit`, saying why.
    pub fn refused_within(self, limit: Duration) -> Finished {
        let finished = self.finish(START_LIMIT);
        finished.assert_failure();
        assert!(finished.elapsed < limit, "a refused start took {:?}", finished.elapsed);
        finished
    }
}

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success, got {}; stderr:\n{}",
            self.status,
            self.stderr
        );
        self
    }

    /// A failure by exit code (not a crash by signal), with a sentence on standard error.
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "expected a non-zero exit code, got {}; stderr:\n{}",
            self.status,
            self.stderr
        );
        assert!(
            self.stderr.trim().len() > 10,
            "a failure must say why on standard error"
        );
        self
    }

    /// Whether standard output has a line that reads `line` once trimmed.
    pub fn has_line(&self, line: &str) -> bool {
        self.stdout.lines().any(|candidate| candidate.trim() == line)
    }
}

/// A child's output so far; a file not yet written reads as empty.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts the binary in `workdir` with exactly `envs`, its output going to files in `outdir`.
pub fn start(workdir: &Path, outdir: &Path, envs: &[(&str, String)], args: &[&str], stdin: &str) -> Running {
    let tag = Uuid::new_v4().simple().to_string();
    let stdout = outdir.join(format!("{tag}.stdout"));
    let stderr = outdir.join(format!("{tag}.stderr"));
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
        .current_dir(workdir)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    let mut running = Running {
        child: command.spawn().expect("the lanyard binary starts"),
        stdout,
        stderr,
        started: Instant::now(),
    };
    if let Some(mut input) = running.child.stdin.take() {
        use std::io::Write;
        // A child that exits before reading its input is the test's to judge, not a panic here.
        let _ = input.write_all(stdin.as_bytes());
    }
    running
}

/// An empty working directory for the children (so that no `.env` or `lanyard-data` of the
/// repository is used) and a folder for their output, both removed when dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir(dir.path().join("work")).expect("work folder");
        std::fs::create_dir(dir.path().join("out")).expect("output folder");
        Sandbox { dir }
    }

    /// The folder holding both, for files the test keeps outside the working directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn workdir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn outdir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Starts the binary in the working directory with exactly `envs`.
    pub fn start(&self, envs: &[(&str, String)], args: &[&str], stdin: &str) -> Running {
        start(&self.workdir(), &self.outdir(), envs, args, stdin)
    }
}

/// A running `lanyard serve`, killed when dropped.
pub struct Server {
    running: Running,
    address: String,
    client: reqwest::Client,
}

impl Server {
    /// A `lanyard serve` child listening on `port`, not yet known to answer.
    pub fn new(running: Running, port: u16) -> Server {
        Server {
            running,
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Waits until `/healthz` answers 200; panics if the process exits first.
    pub async fn until_serving(&mut self) {
        loop {
            if let Some(status) = self.running.exited() {
                panic!(
                    "lanyard serve exited ({status}) before serving; stderr:\n{}",
                    read(&self.running.stderr)
                );
            }
            if let Ok(response) = self.client.get(self.url("/healthz")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                self.running.started.elapsed() < START_LIMIT,
                "lanyard serve did not answer /healthz within {START_LIMIT:?}; stderr:\n{}",
                read(&self.running.stderr)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("a response")
    }

    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("a response")
    }

    /// A page request carrying a session cookie (`name=value`), as a browser sends it.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("a response")
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("a response")
    }

    /// Creates a configuration; panics unless 201.
    pub async fn create(&self, token: &str, body: Value) -> Configuration {
        let response = self
            .send_json(reqwest::Method::POST, CONFIGURATIONS, token, &body)
            .await;
        expect_json(response, 201, "create").await
    }

    pub async fn list(&self, token: &str) -> Vec<Configuration> {
        expect_json(self.get(CONFIGURATIONS, token).await, 200, "list").await
    }

    /// Logs in through `/login` and returns the session cookie (`name=value`).
    pub async fn login(&self, email: &str, password: &str) -> String {
        let form = self.get_anonymous("/login").await;
        assert_eq!(form.status(), 200);
        // The form's token is double-submitted with its cookie; viewing it starts no session.
        let cookie = cookie_named(&form, CSRF_COOKIE_NAME).expect("the login form sets its CSRF cookie");
        let csrf = csrf_from(&form.text().await.expect("a page"));
        let response = self
            .client
            .post(self.url("/login"))
            .header(COOKIE, &cookie)
            .form(&[("email", email), ("password", password), ("csrf_token", csrf.as_str())])
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), 303, "login failed");
        cookie_named(&response, COOKIE_NAME).expect("the session id changes at login")
    }

    /// Stops the server and returns its log (standard error).
    pub fn stop(mut self) -> String {
        let _ = self.running.child.kill();
        let _ = self.running.child.wait();
        read(&self.running.stderr)
    }
}

/// The cookie `name` a response sets, as `name=value`.
fn cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&prefix))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

/// Environment variables for a child, beyond the database and the listen address.
pub type Env = Vec<(&'static str, String)>;

/// `LANYARD_MASTER_KEYS`.
pub fn master_keys(entries: &str) -> Env {
    vec![("LANYARD_MASTER_KEYS", entries.to_owned())]
}

/// `LANYARD_MASTER_PASSPHRASE`.
pub fn master_passphrase(passphrase: &str) -> Env {
    vec![("LANYARD_MASTER_PASSPHRASE", passphrase.to_owned())]
}

/// The binary's surroundings: one database and a sandbox for the children.
pub struct Site {
    pub database_url: String,
    pub sandbox: Sandbox,
}

impl Site {
    pub fn new(database_url: String) -> Site {
        Site {
            database_url,
            sandbox: Sandbox::new(),
        }
    }

    /// Starts the binary with exactly the database, `port`, a locked-down egress policy and `env`
    /// (which may override any of them).
    pub fn spawn(&self, env: &[(&'static str, String)], port: u16, args: &[&str], stdin: &str) -> Running {
        let mut envs = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("LANYARD_BIND", format!("127.0.0.1:{port}")),
            ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
            ("LANYARD_LOG", "info".to_owned()),
        ];
        envs.extend_from_slice(env);
        self.sandbox.start(&envs, args, stdin)
    }

    /// Runs a command to completion.
    pub fn run(&self, env: &[(&'static str, String)], args: &[&str], stdin: &str) -> Finished {
        self.spawn(env, free_port(), args, stdin).finish(COMMAND_LIMIT)
    }

    /// `lanyard serve`, started but not yet known to answer.
    pub fn launch(&self, env: &[(&'static str, String)]) -> Server {
        let port = free_port();
        Server::new(self.spawn(env, port, &["serve"], ""), port)
    }

    /// `lanyard serve`, once `/healthz` answers 200.
    pub async fn serve(&self, env: &[(&'static str, String)]) -> Server {
        let mut server = self.launch(env);
        server.until_serving().await;
        server
    }

    /// `lanyard serve` that must refuse to start: exits non-zero, quickly, saying why.
    pub fn serve_refused(&self, env: &[(&'static str, String)]) -> Finished {
        self.spawn(env, free_port(), &["serve"], "")
            .refused_within(REFUSAL_LIMIT)
    }

    /// Creates a user from the shell and returns a `read,write` and a `resolve` token.
    pub fn user_with_tokens(&self, env: &[(&'static str, String)], email: &str) -> (String, String) {
        self.run(
            env,
            &["user", "create", "--email", email, "--password-stdin"],
            &format!("{TEST_PASSWORD}\n"),
        )
        .assert_success();
        let token = |name: &str, scopes: &str| {
            let created = self.run(
                env,
                &["token", "create", "--email", email, "--name", name, "--scopes", scopes],
                "",
            );
            created.assert_success();
            created.stdout.trim().to_owned()
        };
        (token("scripts", "read,write"), token("agent", "resolve"))
    }
}
