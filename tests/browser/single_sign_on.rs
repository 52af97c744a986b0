//! Single sign-on in a real browser against a real OpenID provider: the certified
//! `oidc-provider` package on loopback (`tests/oidc-provider/server.mjs`), through its own login
//! and consent pages. Needs `npm ci --prefix tests/oidc-provider`; without its packages the
//! tests pass with a notice, unless `LANYARD_OIDC_TESTS=required`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::{Browser, EMAIL, JavaScript, PASSWORD, free_port};

const CLIENT_ID: &str = "lanyard";
const CLIENT_SECRET: &str = "lanyard-browser-test-secret";

/// The provider's process, ended by its handle when dropped; and the people it knows.
struct OidcProvider {
    child: Child,
    issuer: String,
    users_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the provider for a Lanyard on `lanyard_port`, or `None` (after a notice) when its
    /// packages are not installed and `LANYARD_OIDC_TESTS` is not `required`.
    fn start(lanyard_port: u16, people: serde_json::Value) -> Option<OidcProvider> {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("oidc-provider");
        if !folder.join("node_modules").join("oidc-provider").exists() {
            let required = std::env::var("LANYARD_OIDC_TESTS").is_ok_and(|value| value == "required");
            assert!(
                !required,
                "LANYARD_OIDC_TESTS=required, but tests/oidc-provider has no node_modules (npm ci --prefix tests/oidc-provider)"
            );
            eprintln!("NOTICE: single sign-on browser test skipped: run `npm ci --prefix tests/oidc-provider`");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let users_file = dir.path().join("users.json");
        std::fs::write(&users_file, people.to_string()).expect("the provider's people");
        let mut child = Command::new("node")
            .arg(folder.join("server.mjs"))
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "OIDC_REDIRECT_URI",
                format!("http://127.0.0.1:{lanyard_port}/auth/oidc/callback"),
            )
            .env("OIDC_USERS_FILE", &users_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts the provider");
        let stdout = child.stdout.take().expect("the provider's output");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the provider says where it listens");
        Some(OidcProvider {
            child,
            issuer,
            users_file,
            _dir: dir,
        })
    }

    /// Changes the people (and their groups) at the provider; read again at every sign-in.
    fn set_people(&self, people: serde_json::Value) {
        std::fs::write(&self.users_file, people.to_string()).expect("the provider's people");
    }
}

/// Lanyard's settings for this provider.
fn lanyard_env(port: u16, provider: &OidcProvider, create_users: bool) -> Vec<(&'static str, String)> {
    vec![
        ("LANYARD_BIND", format!("127.0.0.1:{port}")),
        ("LANYARD_OIDC_ISSUER", provider.issuer.clone()),
        ("LANYARD_OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
        ("LANYARD_OIDC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("LANYARD_OIDC_NAME", "Test IdP".to_owned()),
        ("LANYARD_OIDC_SCOPES", "openid email profile groups".to_owned()),
        (
            "LANYARD_OIDC_CREATE_USERS",
            if create_users { "on" } else { "off" }.to_owned(),
        ),
        (
            "LANYARD_OIDC_ORGANISATIONS",
            r#"[{"group": "eng", "organisation": "Engineering", "role": "member"}]"#.to_owned(),
        ),
    ]
}

/// Whether the browser is back on a Lanyard page.
async fn at_lanyard(browser: &Browser) -> bool {
    let path = browser.path().await;
    ["/llm-configurations", "/settings", "/auth/oidc/callback", "/login"]
        .iter()
        .any(|page| path.starts_with(page))
}

/// Through the provider's login (any password) and consent pages, back to Lanyard. The
/// provider's own pages are not Lanyard's: their console noise (a web font they cannot fetch
/// offline) is drained here, and anything else is still a failure.
async fn through_provider(browser: &Browser, login: &str) {
    browser
        .wait_until("the provider's page", async || {
            browser.exists("input[name=login]").await
                || browser.exists("form input[name=prompt][value=consent]").await
                || at_lanyard(browser).await
        })
        .await;
    if browser.exists("input[name=login]").await {
        browser.fill("input[name=login]", login).await;
        browser.fill("input[name=password]", "any password").await;
        browser.click("button[type=submit]").await;
        browser
            .wait_until("the consent page or Lanyard", async || {
                browser.exists("form input[name=prompt][value=consent]").await || at_lanyard(browser).await
            })
            .await;
    }
    if browser.exists("form input[name=prompt][value=consent]").await {
        browser.click("button[type=submit]").await;
    }
    browser
        .wait_until("back at Lanyard", async || at_lanyard(browser).await)
        .await;
    // A refused sign-in's page is a 400, which Chromium reports as a failed load.
    let refused = browser.exists("#sign-in-refused").await;
    let lanyard_problems: Vec<String> = browser
        .console_problems()
        .await
        .into_iter()
        .filter(|problem| !problem.contains("fonts.googleapis") && !problem.contains("/interaction/"))
        .filter(|problem| !(refused && problem.contains("/auth/oidc/callback") && problem.contains("status of 400")))
        .collect();
    assert!(lanyard_problems.is_empty(), "console problems: {lanyard_problems:?}");
}

/// From `/login`'s single sign-on button, through the provider, back to Lanyard.
async fn sign_in_at_provider(browser: &Browser, login: &str) {
    browser.goto("/login").await;
    browser.click("#single-sign-on-button").await;
    through_provider(browser, login).await;
}

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_their_groups_follow_them() {
    let port = free_port();
    let people = json!({"alice": {"email": "alice@example.com", "email_verified": true, "groups": ["eng"]}});
    let Some(provider) = OidcProvider::start(port, people) else {
        return;
    };
    let env = lanyard_env(port, &provider, true);
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let Some(browser) = Browser::start_with("single-sign-on", JavaScript::On, &env).await else {
        return;
    };
    // The setup link makes the first (admin) account; single sign-on never does.
    browser.register_first_admin().await;
    browser.log_out().await;
    browser.goto("/login").await;
    assert!(
        browser
            .text("#single-sign-on-button")
            .await
            .contains("Sign in with Test IdP")
    );
    browser.check("login-with-single-sign-on").await;

    sign_in_at_provider(&browser, "alice").await;
    browser.wait_for_path("/llm-configurations").await;
    browser.goto("/settings").await;
    assert!(browser.text("body").await.contains("alice@example.com"));
    assert!(!browser.exists("a[href='/admin']").await, "never an admin");
    assert_eq!(browser.text("#single-sign-on-state").await, "linked");
    browser.goto("/organisations").await;
    assert!(
        browser.text("main").await.contains("Engineering"),
        "a member of the managed organisation"
    );

    // Out of the group at the provider: out of the organisation at the next sign-in, which
    // lands in the same account.
    provider.set_people(json!({"alice": {"email": "alice@example.com", "email_verified": true, "groups": []}}));
    browser.log_out().await;
    sign_in_at_provider(&browser, "alice").await;
    browser.wait_for_path("/llm-configurations").await;
    browser.goto("/organisations").await;
    assert!(!browser.text("main").await.contains("Engineering"));
    browser.goto("/settings").await;
    assert!(browser.text("body").await.contains("alice@example.com"));
    browser.finish().await;
}

#[tokio::test]
async fn without_account_creation_only_a_linked_account_gets_in() {
    let port = free_port();
    let people = json!({
        "stranger": {"email": "stranger@example.com", "email_verified": true, "groups": []},
        "admin-at-idp": {"email": "someone-else@example.com", "email_verified": true, "groups": []},
    });
    let Some(provider) = OidcProvider::start(port, people) else {
        return;
    };
    let env = lanyard_env(port, &provider, false);
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let Some(browser) = Browser::start_with("single-sign-on-linking", JavaScript::On, &env).await else {
        return;
    };
    browser.register_first_admin().await;
    browser.log_out().await;

    // An unknown person is refused: no account, no session.
    sign_in_at_provider(&browser, "stranger").await;
    browser.wait_for("#sign-in-refused").await;
    assert!(browser.text("#sign-in-refused").await.contains("no account is linked"));
    browser.goto("/llm-configurations").await;
    browser.wait_for_path("/login").await;

    // The admin links single sign-on from /settings, after their password.
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form[action='/login'] button[type=submit]").await;
    browser.wait_for_path("/llm-configurations").await;
    browser.goto("/settings").await;
    assert_eq!(browser.text("#single-sign-on-state").await, "not linked");
    browser.fill("#link-current-password", PASSWORD).await;
    browser.click("#single-sign-on-link button[type=submit]").await;
    through_provider(&browser, "admin-at-idp").await;
    browser
        .wait_until("back at /settings", async || {
            browser.path().await.starts_with("/settings")
        })
        .await;
    assert_eq!(browser.text("#single-sign-on-state").await, "linked");

    // Signed out, single sign-on gets into that same account.
    browser.log_out().await;
    sign_in_at_provider(&browser, "admin-at-idp").await;
    browser.wait_for_path("/llm-configurations").await;
    browser.goto("/settings").await;
    assert!(browser.text("body").await.contains(EMAIL));
    browser.finish().await;
}
