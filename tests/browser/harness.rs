//! The pieces a browser flow stands on: the real `lanyard` binary with a fresh database,
//! chromedriver with a headless Chromium session, and the checks made on every page (a
//! screenshot, and a console free of errors and CSP violations), and a fake OpenAI-compatible
//! provider on loopback for the Test buttons. Every process is owned by a guard that ends it by
//! its handle when dropped, on success and on panic alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BINARY: &str = env!("CARGO_BIN_EXE_lanyard");
const SETUP_MARK: &str = "Create the first (admin) account at: ";
/// How long a page or a swapped fragment may take to show what the test waits for. Generous:
/// a debug build hashes passwords (argon2id, 19 MiB) slowly.
const PATIENCE: Duration = Duration::from_secs(30);

pub const EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// Where screenshots go: `<manifest dir>/target/screenshots`, whatever `CARGO_TARGET_DIR` says,
/// so that they are easy to find next to the code.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots")
}

/// The running `lanyard serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    setup_link: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary on a free loopback port with a fresh SQLite database in a temporary
    /// working directory, with `env` added to its environment, and waits for the setup link it
    /// prints.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let keygen = Command::new(BINARY)
            .arg("keygen")
            .env_clear()
            .current_dir(dir.path())
            .output()
            .expect("`lanyard keygen` runs");
        assert!(
            keygen.status.success(),
            "`lanyard keygen` failed: {}",
            String::from_utf8_lossy(&keygen.stderr)
        );
        let master_keys = String::from_utf8(keygen.stdout)
            .expect("a UTF-8 key entry")
            .trim()
            .to_owned();

        // A test that must know the port beforehand (an identity provider's redirect URI names
        // it) passes its own `LANYARD_BIND`.
        let port = env
            .iter()
            .find(|(name, _)| *name == "LANYARD_BIND")
            .and_then(|(_, bind)| bind.rsplit(':').next()?.parse().ok())
            .unwrap_or_else(free_port);
        let database = dir.path().join("lanyard.db");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", format!("sqlite://{}", database.display()))
            .env("LANYARD_MASTER_KEYS", master_keys)
            .env("LANYARD_BIND", format!("127.0.0.1:{port}"))
            .env("LANYARD_EGRESS_MODE", "allowlist")
            .env("LANYARD_LOG", "info")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lanyard binary starts");

        // The log is read to its end (so the pipe never fills) and kept for failure reports.
        let stderr = child.stderr.take().expect("the server's standard error");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (link_tx, link_rx) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find(SETUP_MARK) {
                    let link: String = line[at + SETUP_MARK.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let _ = link_tx.send(link);
                }
                kept.lock().expect("the log").push(line);
            }
        });

        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            setup_link: String::new(),
            log,
            _dir: dir,
        };
        server.setup_link = match link_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(link) => link,
            Err(_) => panic!("the server printed no setup link; its log:\n{}", server.log_text()),
        };
        assert!(
            server
                .setup_link
                .starts_with(&format!("{}/register?setup_token=", server.base)),
            "unexpected setup link {}",
            server.setup_link
        );
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&self) {
        let client = http();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the server never became healthy; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one-time link to create the first (admin) account, as printed in the log.
    pub fn setup_link(&self) -> &str {
        &self.setup_link
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|lines| lines.join("\n")).unwrap_or_default()
    }

    /// `GET /api/llm-configurations` with a bearer token: its status.
    pub async fn api_status_with(&self, token: &str) -> u16 {
        http()
            .get(self.url("/api/llm-configurations"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the API answers")
            .status()
            .as_u16()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- lanyard's log ---\n{}\n---", self.log_text());
        }
    }
}

fn find_program(env_var: &str, default: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let default = Path::new(default);
    if default.is_file() {
        return Some(default.to_owned());
    }
    let name = default.file_name()?;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// chromedriver (and through it Chromium), ended when dropped: the session first, so that
/// chromedriver stops its Chromium, then chromedriver itself.
struct Chromedriver {
    child: Child,
    port: u16,
    session_id: Option<String>,
    _profile: tempfile::TempDir,
}

impl Chromedriver {
    async fn start(program: &Path) -> Chromedriver {
        let port = free_port();
        let profile = tempfile::tempdir().expect("a temporary profile folder");
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Chromedriver {
            child,
            port,
            session_id: None,
            _profile: profile,
        };
        let client = http();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(driver.url("/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == json!(true)
            {
                return driver;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver never became ready on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn profile(&self) -> &Path {
        self._profile.path()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Blocking and minimal on purpose: this also runs while a failed test unwinds.
        if let Some(session) = self.session_id.take()
            && let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let request = format!(
                "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                self.port
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether JavaScript runs in the page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum JavaScript {
    On,
    Off,
}

/// A headless Chromium session, the server it talks to, and the checks made on each page.
pub struct Browser {
    pub client: Client,
    pub server: Server,
    flow: &'static str,
    step: AtomicU32,
    http: reqwest::Client,
    // Dropped last: ends the Chromium session and chromedriver.
    driver: Chromedriver,
}

impl Browser {
    /// A browser on a fresh server, or `None` (after a notice) when chromedriver or Chromium is
    /// not installed and `LANYARD_BROWSER_TESTS` is not `required`.
    pub async fn start(flow: &'static str, javascript: JavaScript) -> Option<Browser> {
        Browser::start_with(flow, javascript, &[]).await
    }

    /// As `start`, with `env` added to the server's environment (such as `LANYARD_EGRESS_ALLOW`).
    /// A fake provider, and a browser on a server allowed to reach it (plain http to loopback)
    /// whose first admin has registered.
    pub async fn start_with_fake_provider(
        flow: &'static str,
        javascript: JavaScript,
    ) -> Option<(Browser, FakeProvider)> {
        let provider = FakeProvider::start().await;
        let browser = Browser::start_with(flow, javascript, &LOOPBACK_EGRESS).await?;
        browser.register_first_admin().await;
        Some((browser, provider))
    }

    pub async fn start_with(flow: &'static str, javascript: JavaScript, env: &[(&str, &str)]) -> Option<Browser> {
        let chromedriver = find_program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = find_program("CHROMIUM", "/usr/bin/chromium");
        let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) else {
            let required = std::env::var("LANYARD_BROWSER_TESTS").is_ok_and(|value| value == "required");
            assert!(
                !required,
                "LANYARD_BROWSER_TESTS=required, but chromedriver or chromium is not installed"
            );
            eprintln!(
                "NOTICE: browser test `{flow}` skipped: chromedriver and chromium are not installed \
                 (set CHROMEDRIVER/CHROMIUM, or LANYARD_BROWSER_TESTS=required to fail instead)"
            );
            return None;
        };

        let server = Server::start(env).await;
        let mut driver = Chromedriver::start(&chromedriver).await;
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver.profile().display()),
                "--window-size=1280,900",
            ],
        });
        if javascript == JavaScript::Off {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            // The performance log holds the network events, redirects included.
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
            "goog:chromeOptions": options,
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&driver.url(""))
            .await
            .expect("a Chromium session");
        driver.session_id = client.session_id().await.expect("the session id");
        let browser = Browser {
            client,
            server,
            flow,
            step: AtomicU32::new(0),
            http: http(),
            driver,
        };
        std::fs::create_dir_all(screenshot_dir()).expect("the screenshot folder");
        Some(browser)
    }

    /// Ends the Chromium session cleanly (the guards still stop the processes).
    pub async fn finish(mut self) {
        let client = self.client.clone();
        client.close().await.expect("the session closes");
        self.driver.session_id = None;
    }

    fn session(&self) -> &str {
        self.driver.session_id.as_deref().expect("a live session")
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&self.server.url(path)).await.expect("the page loads");
    }

    pub async fn goto_url(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// The current page's path (and query, if any).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn wait_for_path(&self, expected: &str) {
        self.wait_until(&format!("the browser at {expected}"), async || {
            self.path().await == expected
        })
        .await;
    }

    /// Saves `<flow>-<nn>-<step>.png` and asserts the console since the last check holds no
    /// error and no CSP violation. Returns the screenshot's path.
    pub async fn check(&self, step: &str) -> PathBuf {
        let number = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let png = self.full_page_screenshot().await;
        let path = screenshot_dir().join(format!("{}-{number:02}-{step}.png", self.flow));
        std::fs::write(&path, png).expect("the screenshot is saved");
        let problems = self.console_problems().await;
        assert!(
            problems.is_empty(),
            "{} at step `{step}` ({}): console problems:\n{}",
            self.flow,
            self.path().await,
            problems.join("\n")
        );
        path
    }

    /// The browser console's errors and CSP violations since the last call (chromedriver's
    /// legacy log endpoint drains the log). A missing favicon is not a problem.
    pub async fn console_problems(&self) -> Vec<String> {
        self.log_entries("browser")
            .await
            .iter()
            .filter_map(|entry| {
                let level = entry["level"].as_str().unwrap_or("");
                let message = entry["message"].as_str().unwrap_or("");
                let csp = message.contains("Content Security Policy") || message.contains("Content-Security-Policy");
                let problem = (level == "SEVERE" || csp) && !message.contains("favicon.ico");
                problem.then(|| format!("[{level}] {message}"))
            })
            .collect()
    }

    /// Drains one of chromedriver's logs (`browser` or `performance`): its entries.
    async fn log_entries(&self, kind: &str) -> Vec<Value> {
        let mut answer: Value = self
            .http
            .post(self.driver.url(&format!("/session/{}/se/log", self.session())))
            .json(&json!({ "type": kind }))
            .send()
            .await
            .expect("chromedriver answers the log request")
            .json()
            .await
            .expect("the log as JSON");
        match answer["value"].take() {
            Value::Array(entries) => entries,
            other => panic!("no {kind} log: {other}"),
        }
    }

    /// The redirects the browser followed since the last call, in order: the URL that
    /// redirected, its status and its `Location`.
    pub async fn redirects(&self) -> Vec<Redirect> {
        self.log_entries("performance")
            .await
            .iter()
            .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
            .filter(|event| event["message"]["method"] == json!("Network.requestWillBeSent"))
            .filter_map(|event| {
                let response = &event["message"]["params"]["redirectResponse"];
                let headers = response["headers"].as_object()?;
                let location = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("location"))
                    .and_then(|(_, value)| value.as_str())
                    .unwrap_or("")
                    .to_owned();
                Some(Redirect {
                    from: response["url"].as_str()?.to_owned(),
                    status: u16::try_from(response["status"].as_u64()?).ok()?,
                    location,
                })
            })
            .collect()
    }

    /// A screenshot of the current page as a phone shows it (390×844), then back to the desktop size.
    pub async fn check_on_phone(&self, step: &str) -> PathBuf {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
        let path = self.check(step).await;
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({})).await;
        path
    }

    /// The whole page, not only the viewport (WebDriver's screenshot stops at the fold).
    async fn full_page_screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let viewport = &metrics["cssLayoutViewport"];
        let width = size["width"]
            .as_f64()
            .unwrap_or(0.0)
            .max(viewport["clientWidth"].as_f64().unwrap_or(0.0));
        let height = size["height"]
            .as_f64()
            .unwrap_or(0.0)
            .max(viewport["clientHeight"].as_f64().unwrap_or(0.0));
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        let data = shot["data"].as_str().expect("a screenshot's data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("a base64 PNG")
    }

    /// A Chrome DevTools Protocol command through chromedriver: its result.
    async fn cdp(&self, command: &str, params: Value) -> Value {
        let response = self
            .http
            .post(
                self.driver
                    .url(&format!("/session/{}/goog/cdp/execute", self.session())),
            )
            .json(&json!({ "cmd": command, "params": params }))
            .send()
            .await
            .expect("chromedriver answers the CDP request");
        assert!(
            response.status().is_success(),
            "{command} failed: {}",
            response.text().await.unwrap_or_default()
        );
        let mut answer: Value = response.json().await.expect("the CDP result as JSON");
        answer["value"].take()
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no `{css}` on the page: {error}"))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|found| found.len())
            .unwrap_or(0)
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.count(css).await > 0
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .expect("the element's text")
            .trim()
            .to_owned()
    }

    /// The element's text, or `None` when it is missing or was swapped out while being read.
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok().map(|text| text.trim().to_owned())
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("cannot click `{css}`: {error}"));
    }

    /// Replaces a field's value by typing, as a user would.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("the field clears");
        if !value.is_empty() {
            field.send_keys(value).await.expect("the field takes the text");
        }
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|error| panic!("cannot choose {value} in `{css}`: {error}"));
    }

    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_until(&format!("`{css}` to appear"), async || self.exists(css).await)
            .await;
        self.find(css).await
    }

    pub async fn wait_gone(&self, css: &str) {
        self.wait_until(&format!("`{css}` to disappear"), async || !self.exists(css).await)
            .await;
    }

    pub async fn wait_until(&self, what: &str, mut ready: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        while !ready().await {
            if started.elapsed() > PATIENCE {
                let png = self.client.screenshot().await.unwrap_or_default();
                let path = screenshot_dir().join(format!("{}-timeout.png", self.flow));
                let _ = std::fs::write(&path, png);
                panic!(
                    "{}: timed out waiting for {what} (at {}; see {})",
                    self.flow,
                    self.path().await,
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Accepts the `confirm()` dialog that the last action opened.
    pub async fn accept_confirm(&self) -> String {
        let mut text = None;
        self.wait_until("a confirmation dialog", async || {
            text = self.client.get_alert_text().await.ok();
            text.is_some()
        })
        .await;
        self.client.accept_alert().await.expect("the dialog is accepted");
        text.unwrap_or_default()
    }

    /// Runs a script in the page (JavaScript on only).
    pub async fn script(&self, source: &str) -> Value {
        self.client
            .execute(source, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("script `{source}` failed: {error}"))
    }

    /// Sets a marker on `window` that a full page load would wipe out (JavaScript on only).
    pub async fn mark(&self) {
        self.script("window.__marker = 1; return null;").await;
    }

    /// Panics if the page was loaded again since `mark`: `action` should have swapped a fragment.
    pub async fn assert_not_reloaded(&self, action: &str) {
        let marker = self
            .script("return window.__marker === undefined ? null : window.__marker;")
            .await;
        assert_eq!(
            marker,
            serde_json::json!(1),
            "{action} reloaded the whole page instead of swapping a fragment"
        );
    }

    /// The flow's registration: the setup link, the form, and the management page after it.
    pub async fn register_first_admin(&self) {
        self.goto_url(self.server.setup_link()).await;
        assert_eq!(self.text("h1").await, "Set up Lanyard");
        self.check("register").await;
        self.fill("#email", EMAIL).await;
        self.fill("#password", PASSWORD).await;
        self.click("form[action='/register'] button[type=submit]").await;
        self.wait_for_path("/llm-configurations").await;
    }

    /// The configuration row named `name`, as a CSS selector.
    pub fn row(name: &str) -> String {
        format!("tr[id^='configuration-'][data-name='{name}']")
    }

    /// The control for `action` (its `data-action`) in the configuration row named `name`.
    pub fn row_action(name: &str, action: &str) -> String {
        format!("{} [data-action='{action}']", Browser::row(name))
    }

    /// Clicks `action` in the row named `name` and waits until the row is in `state`.
    pub async fn row_action_until(&self, name: &str, action: &str, state: RowState) {
        self.click(&Browser::row_action(name, action)).await;
        self.wait_until(&format!("{name} to become {state:?}"), async || match state {
            RowState::Default => self.is_default(name).await,
            RowState::Inactive => self.is_inactive(name).await,
            RowState::Active => !self.is_inactive(name).await,
        })
        .await;
    }

    /// Screenshots the token just shown (`token-created`) and proves it works on the API.
    pub async fn assert_new_token_works(&self, secret: &str) {
        self.check("token-created").await;
        assert_eq!(
            self.server.api_status_with(secret).await,
            200,
            "the new token works on the API"
        );
    }

    pub async fn row_names(&self) -> Vec<String> {
        let rows = self
            .client
            .find_all(Locator::Css("tr[id^='configuration-']"))
            .await
            .expect("the rows");
        let mut names = Vec::new();
        for row in rows {
            names.push(row.attr("data-name").await.expect("a row name").unwrap_or_default());
        }
        names
    }

    pub async fn is_default(&self, name: &str) -> bool {
        self.exists(&format!("{} [data-badge='default']", Browser::row(name)))
            .await
    }

    pub async fn is_inactive(&self, name: &str) -> bool {
        self.exists(&format!("{} [data-badge='inactive']", Browser::row(name)))
            .await
    }

    /// The default configuration's name, when exactly one row says it is the default.
    pub async fn default_name(&self) -> Option<String> {
        let mut defaults = Vec::new();
        for name in self.row_names().await {
            if self.is_default(&name).await {
                defaults.push(name);
            }
        }
        assert!(defaults.len() <= 1, "more than one default: {defaults:?}");
        defaults.pop()
    }

    /// Fills the add/edit form (on its page or in the dialog). An empty `api_key` or `base_url`
    /// leaves the field empty.
    pub async fn fill_configuration(&self, scope: &str, fields: &Configuration<'_>) {
        self.fill(&format!("{scope} #name"), fields.name).await;
        self.select(&format!("{scope} #provider"), fields.provider).await;
        self.fill(&format!("{scope} #model"), fields.model).await;
        self.fill(&format!("{scope} #api_key"), fields.api_key).await;
        self.fill(&format!("{scope} #base_url"), fields.base_url).await;
    }

    /// The status badge's label and the message of the configuration row named `name`.
    pub async fn row_status(&self, name: &str) -> (String, String) {
        let row = Browser::row(name);
        let label = self
            .try_text(&format!("{row} [data-badge='status']"))
            .await
            .unwrap_or_default();
        let message = self
            .try_text(&format!("{row} .status-message"))
            .await
            .unwrap_or_default();
        (label, message)
    }

    /// Waits until the row named `name` shows the status `label` (OK, Failed, Untested).
    pub async fn wait_for_row_status(&self, name: &str, label: &str) -> String {
        let mut message = String::new();
        self.wait_until(&format!("{name} to show the status {label}"), async || {
            let (shown, shown_message) = self.row_status(name).await;
            message = shown_message;
            shown == label
        })
        .await;
        message
    }

    /// The values the form's model field suggests (`<datalist id="model-suggestions">`).
    ///
    /// htmx may swap the list between finding its options and reading them (the tests poll
    /// this while a swap is under way): a read that finds an option gone reads the list again.
    pub async fn model_suggestions(&self) -> Vec<String> {
        for _ in 0..20 {
            if let Some(values) = self.read_model_suggestions().await {
                return values;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the model suggestions kept changing while they were read");
    }

    /// One read of the suggestions; `None` when an option went stale under it.
    async fn read_model_suggestions(&self) -> Option<Vec<String>> {
        let options = self
            .client
            .find_all(Locator::Css("#model-suggestions option"))
            .await
            .expect("the suggestions");
        let mut values = Vec::new();
        for option in options {
            match option.attr("value").await {
                Ok(value) => values.push(value.unwrap_or_default()),
                Err(fantoccini::error::CmdError::Standard(error))
                    if error.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    return None;
                }
                Err(error) => panic!("a value: {error:?}"),
            }
        }
        Some(values)
    }

    /// Logs out with the header's button: back at the login page, and the management page
    /// now leads there too.
    pub async fn log_out(&self) {
        self.click(".site-header form[action='/logout'] button[type=submit]")
            .await;
        self.wait_for_path("/login").await;
        self.wait_for("form[action='/login']").await;
        self.check("logged-out").await;
        self.goto("/llm-configurations").await;
        assert_eq!(
            self.path().await,
            "/login",
            "a signed-out visitor must be sent to /login"
        );
        self.check("signed-out-redirect").await;
    }

    /// The management page as a new account sees it: no configurations yet.
    pub async fn assert_starts_empty(&self) {
        assert!(
            self.exists(".empty-state").await,
            "a new account starts with no configurations"
        );
        self.check("empty").await;
    }

    /// Opens the settings' token form and names the new token.
    pub async fn open_token_form(&self, name: &str) {
        self.click("#tokens-section details > summary").await;
        self.fill("#token-form #token-name", name).await;
    }

    /// The token the page shows once after creating it (asserting one is shown).
    pub async fn shown_token(&self) -> String {
        let secret = self
            .wait_for("#new-token-value")
            .await
            .text()
            .await
            .unwrap()
            .trim()
            .to_owned();
        assert!(secret.len() >= 20, "a token is shown: {secret:?}");
        secret
    }

    /// The tokens table lists `ci script` without showing `secret` again.
    pub async fn assert_token_listed_without_its_secret(&self, secret: &str, step: &str) {
        self.wait_for("tr[id^='token-'][data-name='ci script']").await;
        assert!(!self.exists("#new-token-value").await, "a token is shown only once");
        assert!(
            !self.client.source().await.unwrap().contains(secret),
            "the page holds no token"
        );
        self.check(step).await;
    }

    /// After revoking `ci script`: its badge says so, the API refuses it; then logs out and
    /// ends the session.
    pub async fn assert_token_revoked_then_finish(self, secret: &str) {
        assert_eq!(self.text("tr[data-name='ci script'] .badge").await, "Revoked");
        assert_eq!(
            self.server.api_status_with(secret).await,
            401,
            "a revoked token is refused"
        );
        self.check("token-revoked").await;
        self.log_out().await;
        self.finish().await;
    }
}

/// A redirect the browser followed.
/// What a row action leads to, as the row shows it.
#[derive(Debug, Clone, Copy)]
pub enum RowState {
    Default,
    Inactive,
    Active,
}

#[derive(Debug)]
pub struct Redirect {
    pub from: String,
    pub status: u16,
    pub location: String,
}

/// What the test types into the configuration form.
pub struct Configuration<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub api_key: &'a str,
    pub base_url: &'a str,
}

pub const WORK: Configuration<'static> = Configuration {
    name: "work-gpt",
    provider: "openai",
    model: "gpt-4o",
    api_key: "sk-browser-test-work-1234567890WXYZ",
    base_url: "",
};
pub const HOME: Configuration<'static> = Configuration {
    name: "home-claude",
    provider: "anthropic",
    model: "claude-sonnet-4-5",
    api_key: "sk-ant-browser-test-home-0987654321ABCD",
    base_url: "",
};

/// `fake-good` and `fake-bad`: the fake provider at `base_url` with its accepted and its
/// rejected key.
pub fn fake_good_and_bad(base_url: &str) -> (Configuration<'_>, Configuration<'_>) {
    let good = Configuration {
        name: "fake-good",
        provider: "openai_compatible",
        model: "gpt-4o",
        api_key: GOOD_PROVIDER_KEY,
        base_url,
    };
    let bad = Configuration {
        name: "fake-bad",
        api_key: BAD_PROVIDER_KEY,
        ..good
    };
    (good, bad)
}

/// The key the fake provider accepts, and one it rejects with 401.
pub const GOOD_PROVIDER_KEY: &str = "sk-fake-provider-good-0123456789ABCD";
pub const BAD_PROVIDER_KEY: &str = "sk-fake-provider-revoked-9876543210ZYXW";
/// What the fake provider lists.
pub const FAKE_MODELS: [&str; 2] = ["gpt-4o", "gpt-4o-mini"];

/// The server's environment for flows that test against the fake provider: plain http to
/// loopback is allowed, nothing else.
pub const LOOPBACK_EGRESS: [(&str, &str); 1] = [("LANYARD_EGRESS_ALLOW", "127.0.0.1/32")];

/// A fake OpenAI-compatible provider on 127.0.0.1: `GET /models` with the good bearer key lists
/// `FAKE_MODELS`, with the bad one answers 401. Stopped when dropped.
pub struct FakeProvider {
    server: MockServer,
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        FakeProvider::listing(&FAKE_MODELS).await
    }

    /// The same provider, listing `models` instead.
    pub async fn listing(models: &[&str]) -> FakeProvider {
        let server = MockServer::builder().start().await;
        let data: Vec<Value> = models.iter().map(|id| json!({ "id": id })).collect();
        Mock::given(method("GET"))
            .and(path("/models"))
            .and(header("authorization", format!("Bearer {GOOD_PROVIDER_KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "object": "list", "data": data })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/models"))
            .and(header("authorization", format!("Bearer {BAD_PROVIDER_KEY}").as_str()))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(json!({ "error": { "message": "Incorrect API key provided" } })),
            )
            .mount(&server)
            .await;
        FakeProvider { server }
    }

    /// `http://127.0.0.1:<port>`, the base URL to configure.
    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    /// The bearer keys of the `GET /models` requests received so far, in order.
    pub async fn keys_seen(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.method.as_str() == "GET" && request.url.path() == "/models")
            .map(|request| {
                request
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("")
                    .trim_start_matches("Bearer ")
                    .to_owned()
            })
            .collect()
    }
}
