//! The pages in a real browser: the `lanyard` binary on a loopback port, driven through
//! chromedriver and headless Chromium, once with JavaScript (htmx, the dialog) and once without
//! (every action a full-page post). Each page visited is screenshotted under
//! `target/screenshots/` and its console must hold no error and no CSP violation.
//!
//! Without chromedriver the suite passes with a notice, unless `LANYARD_BROWSER_TESTS=required`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod connections;
mod organisations;
mod single_sign_on;
mod two_factor;
mod with_javascript;
mod without_javascript;
