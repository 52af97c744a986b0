//! With JavaScript: htmx swaps fragments in place and the add/edit form opens in a dialog. A
//! marker set on `window` before each action proves the page was never reloaded.

use std::path::Path;

use crate::harness::{
    BAD_PROVIDER_KEY, Browser, FAKE_MODELS, GOOD_PROVIDER_KEY, HOME, JavaScript, RowState, WORK, fake_good_and_bad,
};

const FLOW: &str = "js-on";
const TEST_FLOW: &str = "js-on-test";
const DIALOG_FORM: &str = "#configuration-dialog[open] #configuration-form";

async fn dialog_is_open(browser: &Browser) -> bool {
    browser.exists("#configuration-dialog[open]").await
}

/// Adds a configuration through the dialog and waits for its row.
async fn add_in_dialog(browser: &Browser, fields: &crate::harness::Configuration<'_>, step: &str) {
    browser.mark().await;
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
    browser.assert_not_reloaded("saving the dialog").await;
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
    browser.assert_starts_empty().await;
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
    browser.mark().await;
    browser
        .row_action_until(HOME.name, "set-default", RowState::Default)
        .await;
    browser.assert_not_reloaded("Set default").await;
    assert_eq!(browser.default_name().await.as_deref(), Some(HOME.name));
    assert!(!browser.exists(&Browser::row_action(HOME.name, "set-default")).await);
    browser.check("set-default").await;

    // Deactivating the default moves the default to the other active configuration.
    browser.mark().await;
    browser
        .row_action_until(HOME.name, "deactivate", RowState::Inactive)
        .await;
    browser.assert_not_reloaded("Deactivate").await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "the default moves off a deactivated one"
    );
    browser.check("deactivated").await;

    browser.mark().await;
    browser.row_action_until(HOME.name, "activate", RowState::Active).await;
    browser.assert_not_reloaded("Activate").await;
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
    browser.mark().await;
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
    browser.assert_not_reloaded("saving an edit").await;
    assert_eq!(
        browser.text(&format!("{row} code.masked-key")).await,
        mask,
        "an empty key field keeps the key"
    );
    browser.check("edited").await;

    // Delete asks for confirmation, then swaps the table.
    browser.mark().await;
    browser.click(&Browser::row_action(HOME.name, "delete")).await;
    let question = browser.accept_confirm().await;
    assert!(
        question.contains(HOME.name),
        "the confirmation names the configuration: {question}"
    );
    browser.wait_gone(&Browser::row(HOME.name)).await;
    browser.assert_not_reloaded("Delete").await;
    assert_eq!(browser.row_names().await, [WORK.name]);
    browser.check("deleted").await;

    // A token is created in place and shown once.
    browser.goto("/settings").await;
    browser.check("settings").await;
    browser.mark().await;
    browser.open_token_form("ci script").await;
    let resolve = browser.find("#token-form input[name='scopes'][value='resolve']").await;
    assert!(
        !resolve.is_selected().await.unwrap(),
        "resolve is not offered by default"
    );
    browser.click("#token-form button[type=submit]").await;
    let secret = browser.shown_token().await;
    browser.assert_not_reloaded("creating a token").await;
    browser.assert_new_token_works(&secret).await;

    browser.client.refresh().await.unwrap();
    browser
        .assert_token_listed_without_its_secret(&secret, "settings-reloaded")
        .await;

    browser.mark().await;
    browser.click("tr[data-name='ci script'] [data-action='revoke']").await;
    let question = browser.accept_confirm().await;
    assert!(
        question.contains("ci script"),
        "the confirmation names the token: {question}"
    );
    browser
        .wait_gone("tr[data-name='ci script'] [data-action='revoke']")
        .await;
    browser.assert_not_reloaded("Revoke").await;
    browser.assert_token_revoked_then_finish(&secret).await;
}

/// The Test button swaps its row in place with the new status; "Test before saving" shows the
/// result in the dialog and offers the models found in the model field.
#[tokio::test]
async fn the_test_buttons_work_in_place_with_javascript() {
    let Some((browser, provider)) = Browser::start_with_fake_provider(TEST_FLOW, JavaScript::On).await else {
        return;
    };
    let base_url = provider.base_url();

    let (good, bad) = fake_good_and_bad(&base_url);
    add_in_dialog(&browser, &good, "add-fake-good").await;
    add_in_dialog(&browser, &bad, "add-fake-bad").await;
    assert_eq!(browser.row_status(good.name).await.0, "Untested");
    assert_eq!(browser.row_status(bad.name).await.0, "Untested");
    assert!(provider.keys_seen().await.is_empty(), "saving does not test");
    browser.check("untested").await;

    // Test on a good key: the row alone is swapped, with OK and the models listed.
    browser.mark().await;
    browser.click(&Browser::row_action(good.name, "test")).await;
    let message = browser.wait_for_row_status(good.name, "OK").await;
    browser.assert_not_reloaded("Test").await;
    assert_eq!(browser.path().await, "/llm-configurations");
    assert!(
        message.contains("listed 2 model(s)"),
        "the row says what was found: {message}"
    );
    assert!(
        browser
            .exists(&format!("{} [data-badge='status'].badge-ok", Browser::row(good.name)))
            .await,
        "the OK badge has its style"
    );
    assert_eq!(
        browser.row_status(bad.name).await.0,
        "Untested",
        "only that row was tested"
    );
    assert_eq!(
        browser.row_names().await,
        [good.name, bad.name],
        "the table keeps its rows"
    );
    assert_eq!(
        provider.keys_seen().await,
        [GOOD_PROVIDER_KEY],
        "one request, with the bearer key"
    );
    browser.check("row-tested-ok").await;

    // Test on a rejected key: Failed, saying why. The row keeps working afterwards.
    browser.mark().await;
    browser.click(&Browser::row_action(bad.name, "test")).await;
    let message = browser.wait_for_row_status(bad.name, "Failed").await;
    browser.assert_not_reloaded("Test with a rejected key").await;
    assert!(message.contains("rejected the API key"), "the row says why: {message}");
    assert!(
        !browser
            .client
            .source()
            .await
            .unwrap()
            .contains("Incorrect API key provided"),
        "the provider's body is never shown"
    );
    assert_eq!(browser.row_status(good.name).await.0, "OK");
    browser.check("row-tested-failed").await;

    // Test before saving, in the Add dialog: the result in place, the models as suggestions.
    browser.mark().await;
    browser.click("#add-configuration").await;
    browser.wait_for(DIALOG_FORM).await;
    let button = browser.find("#configuration-dialog #test-before-saving").await;
    assert!(
        button.is_displayed().await.unwrap() && button.attr("hidden").await.unwrap().is_none(),
        "Test before saving is shown with JavaScript"
    );
    assert!(
        browser.model_suggestions().await.is_empty(),
        "no suggestions before a test"
    );
    browser
        .select("#configuration-dialog #provider", "openai_compatible")
        .await;
    browser.fill("#configuration-dialog #base_url", &base_url).await;
    browser.fill("#configuration-dialog #api_key", GOOD_PROVIDER_KEY).await;
    browser.fill("#configuration-dialog #model", "gpt-4o").await;
    browser.click("#configuration-dialog #test-before-saving").await;
    browser
        .wait_until("the test result to say OK", async || {
            browser.try_text("#test-result .badge").await.as_deref() == Some("OK")
        })
        .await;
    browser.assert_not_reloaded("Test before saving").await;
    assert!(dialog_is_open(&browser).await, "the dialog stays open");
    let result = browser.text("#test-result").await;
    assert!(
        result.contains("listed 2 model(s)"),
        "the result says what was found: {result}"
    );
    assert_eq!(
        browser.model_suggestions().await,
        FAKE_MODELS,
        "the model field offers the models found"
    );
    assert_eq!(
        browser.count("#model-suggestions").await,
        1,
        "the suggestions are replaced, not added"
    );
    assert_eq!(
        browser
            .find("#configuration-dialog #model")
            .await
            .attr("list")
            .await
            .unwrap()
            .as_deref(),
        Some("model-suggestions"),
        "the model field uses the suggestions"
    );
    assert_eq!(browser.row_names().await, [good.name, bad.name], "nothing was saved");
    let overflow = browser
        .script(
            "var box = document.querySelector('#configuration-dialog > article').getBoundingClientRect(); \
             var result = document.querySelector('#test-result .test-result').getBoundingClientRect(); \
             return Math.max(box.left - result.left, result.right - box.right);",
        )
        .await;
    assert!(
        overflow.as_f64().unwrap() <= 0.5,
        "the test result fits in the dialog (overflows by {overflow}px)"
    );
    browser.check("test-before-saving-ok").await;

    // A rejected key: Failed, saying why, and no suggestions left over.
    browser.fill("#configuration-dialog #api_key", BAD_PROVIDER_KEY).await;
    browser.click("#configuration-dialog #test-before-saving").await;
    browser
        .wait_until("the test result to say Failed", async || {
            browser.try_text("#test-result .badge").await.as_deref() == Some("Failed")
        })
        .await;
    browser
        .assert_not_reloaded("Test before saving with a rejected key")
        .await;
    let result = browser.text("#test-result").await;
    assert!(result.contains("rejected the API key"), "the result says why: {result}");
    assert!(
        browser.model_suggestions().await.is_empty(),
        "a failed test suggests nothing"
    );
    browser.check("test-before-saving-failed").await;
    assert_eq!(
        provider.keys_seen().await,
        [GOOD_PROVIDER_KEY, BAD_PROVIDER_KEY, GOOD_PROVIDER_KEY, BAD_PROVIDER_KEY],
        "each test made one request with the key it was given"
    );

    browser.click("#configuration-dialog [data-close-dialog]").await;
    browser
        .wait_until("the dialog to close", async || !dialog_is_open(&browser).await)
        .await;
    browser.assert_not_reloaded("closing the dialog").await;
    browser.check("dialog-closed").await;
    browser.finish().await;
}

/// The README shows the management page with two configurations. Refreshed only on request
/// (`LANYARD_UPDATE_SCREENSHOTS=1`), so that test runs leave the work tree as it was.
fn publish_management_screenshot(screenshot: &Path) {
    if std::env::var_os("LANYARD_UPDATE_SCREENSHOTS").is_none() {
        return;
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("screenshots");
    std::fs::create_dir_all(&docs).expect("docs/screenshots");
    std::fs::copy(screenshot, docs.join("management.png")).expect("the screenshot is copied into docs");
}
