//! With JavaScript: htmx swaps fragments in place and the add/edit form opens in a dialog. A
//! marker set on `window` before each action proves the page was never reloaded.

use std::path::Path;

use serde_json::json;

use crate::harness::{Browser, HOME, JavaScript, WORK};

const FLOW: &str = "js-on";
const DIALOG_FORM: &str = "#configuration-dialog[open] #configuration-form";

/// Sets a marker that a full page load would wipe out.
async fn mark(browser: &Browser) {
    browser.script("window.__marker = 1; return null;").await;
}

async fn assert_not_reloaded(browser: &Browser, action: &str) {
    let marker = browser
        .script("return window.__marker === undefined ? null : window.__marker;")
        .await;
    assert_eq!(
        marker,
        json!(1),
        "{action} reloaded the whole page instead of swapping a fragment"
    );
}

async fn dialog_is_open(browser: &Browser) -> bool {
    browser.exists("#configuration-dialog[open]").await
}

/// Adds a configuration through the dialog and waits for its row.
async fn add_in_dialog(browser: &Browser, fields: &crate::harness::Configuration<'_>, step: &str) {
    mark(browser).await;
    browser.click("#add-configuration").await;
    browser.wait_for(DIALOG_FORM).await;
    assert_eq!(
        browser.path().await,
        "/llm-configurations",
        "Add configuration must not navigate"
    );
    assert_eq!(
        browser.text("#configuration-dialog #dialog-title").await,
        "Add a configuration"
    );
    browser.fill_configuration("#configuration-dialog", fields).await;
    browser.check(step).await;
    browser.click("#configuration-dialog #save-configuration").await;
    browser.wait_for(&Browser::row(fields.name)).await;
    browser
        .wait_until("the dialog to close", async || !dialog_is_open(browser).await)
        .await;
    assert_not_reloaded(browser, "saving the dialog").await;
    // The dialog's close event (a task queued after closing) empties it: no key outlives it.
    browser.wait_gone("#dialog-body *").await;
}

#[tokio::test]
async fn every_action_works_in_place_with_javascript() {
    let Some(browser) = Browser::start(FLOW, JavaScript::On).await else {
        return;
    };

    // Registration with the setup link lands on the (empty) management page.
    browser.register_first_admin().await;
    assert!(
        browser.exists(".empty-state").await,
        "a new account starts with no configurations"
    );
    browser.check("empty").await;
    // The console check is not vacuous: an error logged by a script is caught.
    browser
        .script("console.error('lanyard-console-probe'); return null;")
        .await;
    let caught = browser.console_problems().await;
    assert!(
        caught.iter().any(|problem| problem.contains("lanyard-console-probe")),
        "the console check missed {caught:?}"
    );

    // Add configuration opens the form in the dialog; saving closes it and shows the row.
    add_in_dialog(&browser, &WORK, "add-dialog").await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "the first configuration becomes the default"
    );
    browser.check("first-added").await;
    add_in_dialog(&browser, &HOME, "add-dialog-second").await;
    assert_eq!(
        browser.row_names().await,
        [WORK.name, HOME.name],
        "the default comes first"
    );
    assert_eq!(browser.default_name().await.as_deref(), Some(WORK.name));
    let management = browser.check("two-configurations").await;
    publish_management_screenshot(&management);
    browser.check_on_phone("phone").await;

    // Set default swaps the table: the badge moves to the other row.
    mark(&browser).await;
    browser
        .click(&format!("{} [data-action='set-default']", Browser::row(HOME.name)))
        .await;
    browser
        .wait_until("home-claude to become the default", async || {
            browser.is_default(HOME.name).await
        })
        .await;
    assert_not_reloaded(&browser, "Set default").await;
    assert_eq!(browser.default_name().await.as_deref(), Some(HOME.name));
    assert!(
        !browser
            .exists(&format!("{} [data-action='set-default']", Browser::row(HOME.name)))
            .await
    );
    browser.check("set-default").await;

    // Deactivating the default moves the default to the other active configuration.
    mark(&browser).await;
    browser
        .click(&format!("{} [data-action='deactivate']", Browser::row(HOME.name)))
        .await;
    browser
        .wait_until("home-claude to become inactive", async || {
            browser.is_inactive(HOME.name).await
        })
        .await;
    assert_not_reloaded(&browser, "Deactivate").await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "the default moves off a deactivated one"
    );
    browser.check("deactivated").await;

    mark(&browser).await;
    browser
        .click(&format!("{} [data-action='activate']", Browser::row(HOME.name)))
        .await;
    browser
        .wait_until("home-claude to become active", async || {
            !browser.is_inactive(HOME.name).await
        })
        .await;
    assert_not_reloaded(&browser, "Activate").await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "reactivating does not take the default"
    );
    browser.check("reactivated").await;

    // Edit in the dialog: a new model, the key left empty, so the masked key stays.
    let row = Browser::row(WORK.name);
    let mask = browser.text(&format!("{row} code.masked-key")).await;
    assert!(
        !mask.is_empty() && !mask.contains(WORK.api_key),
        "the key is shown masked: {mask}"
    );
    mark(&browser).await;
    browser.click(&format!("{row} [data-action='edit']")).await;
    browser.wait_for(DIALOG_FORM).await;
    assert_eq!(browser.path().await, "/llm-configurations", "Edit must not navigate");
    assert_eq!(
        browser
            .find("#configuration-dialog #api_key")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default(),
        ""
    );
    browser.fill("#configuration-dialog #model", "gpt-4.1").await;
    browser.check("edit-dialog").await;
    browser.click("#configuration-dialog #save-configuration").await;
    browser
        .wait_until("the new model in the row", async || {
            browser.try_text(&format!("{row} code.model")).await.as_deref() == Some("gpt-4.1")
        })
        .await;
    browser
        .wait_until("the dialog to close", async || !dialog_is_open(&browser).await)
        .await;
    assert_not_reloaded(&browser, "saving an edit").await;
    assert_eq!(
        browser.text(&format!("{row} code.masked-key")).await,
        mask,
        "an empty key field keeps the key"
    );
    browser.check("edited").await;

    // Delete asks for confirmation, then swaps the table.
    mark(&browser).await;
    browser
        .click(&format!("{} [data-action='delete']", Browser::row(HOME.name)))
        .await;
    let question = browser.accept_confirm().await;
    assert!(
        question.contains(HOME.name),
        "the confirmation names the configuration: {question}"
    );
    browser.wait_gone(&Browser::row(HOME.name)).await;
    assert_not_reloaded(&browser, "Delete").await;
    assert_eq!(browser.row_names().await, [WORK.name]);
    browser.check("deleted").await;

    // A token is created in place and shown once.
    browser.goto("/settings").await;
    browser.check("settings").await;
    mark(&browser).await;
    browser.click("#tokens-section details > summary").await;
    browser.fill("#token-form #token-name", "ci script").await;
    let resolve = browser.find("#token-form input[name='scopes'][value='resolve']").await;
    assert!(
        !resolve.is_selected().await.unwrap(),
        "resolve is not offered by default"
    );
    browser.click("#token-form button[type=submit]").await;
    let secret = browser
        .wait_for("#new-token-value")
        .await
        .text()
        .await
        .unwrap()
        .trim()
        .to_owned();
    assert_not_reloaded(&browser, "creating a token").await;
    assert!(secret.len() >= 20, "a token is shown: {secret:?}");
    browser.check("token-created").await;
    assert_eq!(
        browser.server.api_status_with(&secret).await,
        200,
        "the new token works on the API"
    );

    browser.client.refresh().await.unwrap();
    browser.wait_for("tr[id^='token-'][data-name='ci script']").await;
    assert!(!browser.exists("#new-token-value").await, "a token is shown only once");
    assert!(
        !browser.client.source().await.unwrap().contains(&secret),
        "the reloaded page holds no token"
    );
    browser.check("settings-reloaded").await;

    mark(&browser).await;
    browser.click("tr[data-name='ci script'] [data-action='revoke']").await;
    let question = browser.accept_confirm().await;
    assert!(
        question.contains("ci script"),
        "the confirmation names the token: {question}"
    );
    browser
        .wait_gone("tr[data-name='ci script'] [data-action='revoke']")
        .await;
    assert_not_reloaded(&browser, "Revoke").await;
    assert_eq!(browser.text("tr[data-name='ci script'] .badge").await, "Revoked");
    assert_eq!(
        browser.server.api_status_with(&secret).await,
        401,
        "a revoked token is refused"
    );
    browser.check("token-revoked").await;

    browser.log_out().await;
    browser.finish().await;
}

/// The README shows the management page with two configurations.
fn publish_management_screenshot(screenshot: &Path) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("screenshots");
    std::fs::create_dir_all(&docs).expect("docs/screenshots");
    std::fs::copy(screenshot, docs.join("management.png")).expect("the screenshot is copied into docs");
}
