//! Browser sessions, tokens and registration as tests drive them.

use lanyard::services::accounts;
use serde_json::Value;

use crate::helpers::{Browser, TestApp, location};

/// A form post carrying the session's CSRF token, as the page's forms do.
pub async fn post_form(browser: &Browser, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    submit(browser, path, fields, false).await
}

/// The same form post, sent by htmx (`HX-Request`) when `htmx` is set.
pub async fn submit(browser: &Browser, path: &str, fields: &[(&str, &str)], htmx: bool) -> reqwest::Response {
    let csrf = browser.csrf().await;
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", csrf.as_str()));
    if htmx {
        browser.post_htmx(path, &fields).await
    } else {
        browser.post_form(path, &fields).await
    }
}

/// `POST /api/tokens` from the browser session, with its CSRF header.
pub async fn create_token(browser: &Browser, body: Value) -> reqwest::Response {
    let csrf = browser.csrf().await;
    browser
        .client
        .post(browser.url("/api/tokens"))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The session's tokens as `GET /api/tokens` lists them, by name: whether each is revoked.
pub async fn revoked_by_name(browser: &Browser) -> Vec<(String, bool)> {
    let response = browser.get("/api/tokens").await;
    assert_eq!(response.status(), 200);
    let tokens: Vec<Value> = response.json().await.unwrap();
    let mut listed: Vec<(String, bool)> = tokens
        .iter()
        .map(|token| {
            (
                token["name"].as_str().unwrap().to_owned(),
                token["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    listed.sort();
    listed
}

pub async fn open_registration(app: &TestApp) {
    app.with_db(|conn| accounts::set_registration_open(conn, true).unwrap())
        .await;
}

pub async fn token_names(browser: &Browser) -> Vec<String> {
    let response = browser.get("/api/tokens").await;
    assert_eq!(response.status(), 200);
    let tokens: Vec<Value> = response.json().await.unwrap();
    tokens
        .iter()
        .map(|token| token["name"].as_str().unwrap().to_owned())
        .collect()
}

impl Browser {
    /// Posts a page's form (by htmx when `htmx`); panics unless the answer has `status`; the
    /// page or fragment it answered with.
    pub async fn form_answer(&self, path: &str, fields: &[(&str, &str)], htmx: bool, status: u16) -> String {
        let response = submit(self, path, fields, htmx).await;
        let actual = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(actual, status, "POST {path} (htmx {htmx}): {body}");
        body
    }

    /// Posts a page's form as a plain post; panics unless 303; where it leads.
    pub async fn form_redirect(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let response = submit(self, path, fields, false).await;
        let to = location(&response);
        let status = response.status();
        assert_eq!(status, 303, "POST {path}: {}", response.text().await.unwrap());
        to
    }
}
