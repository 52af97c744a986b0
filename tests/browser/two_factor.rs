//! Two-factor authentication in a real browser: the set-up page (its QR code an inline SVG),
//! turning it on with a code computed from the secret the page shows, then logging out and in
//! again with a code.

use totp_rs::{Algorithm, Secret, TOTP};

use crate::harness::{Browser, EMAIL, JavaScript, PASSWORD};

const FLOW: &str = "two-factor";

fn code_now(secret: &str) -> String {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap().generate(now)
}

#[tokio::test]
async fn two_factor_is_set_up_in_the_browser_and_then_asked_at_login() {
    let Some(browser) = Browser::start(FLOW, JavaScript::On).await else {
        return;
    };
    browser.register_first_admin().await;

    browser.goto("/settings").await;
    assert_eq!(browser.text("#two-factor-state").await, "off");
    browser.click("#two-factor-link").await;
    browser.wait_for_path("/settings/two-factor").await;
    assert!(
        browser.exists("#two-factor-qr > svg").await,
        "the QR code is an inline <svg>"
    );
    browser.check("set-up").await;
    let secret = browser.text("#two-factor-secret").await;
    // The step before now: the login below needs a later one (a used step never works again).
    let bytes = Secret::Encoded(secret.clone()).to_bytes().unwrap();
    let earlier = u64::try_from(chrono::Utc::now().timestamp() - 30).unwrap();
    let enrol_code = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).unwrap().generate(earlier);
    browser.fill("#two-factor-code", &enrol_code).await;
    browser.click("#two-factor-enable-form button[type=submit]").await;
    browser.wait_for("#recovery-codes").await;
    assert_eq!(browser.count("#recovery-codes li").await, 10);
    browser.check("recovery-codes").await;

    browser.click("form[action='/logout'] button[type=submit]").await;
    browser.wait_for_path("/login").await;
    browser.fill("#email", EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form[action='/login'] button[type=submit]").await;
    browser.wait_for_path("/login/two-factor").await;
    browser.check("second-step").await;
    browser.fill("#code", &code_now(&secret)).await;
    browser
        .click("form[action='/login/two-factor'] button[type=submit]")
        .await;
    browser.wait_for_path("/llm-configurations").await;
    browser.goto("/settings").await;
    assert_eq!(browser.text("#two-factor-state").await, "on");
    browser.finish().await;
}
