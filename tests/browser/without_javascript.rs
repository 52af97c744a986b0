//! Without JavaScript every action is a plain form post answered by a redirect: the form is its
//! own page, Delete goes through a confirmation page, and tokens are created and revoked by
//! full-page posts.

use crate::harness::{
    BAD_PROVIDER_KEY, Browser, Configuration, GOOD_PROVIDER_KEY, HOME, JavaScript, RowState, WORK, fake_good_and_bad,
};

const FLOW: &str = "js-off";
const TEST_FLOW: &str = "js-off-test";

/// Adds a configuration on its own page and comes back to the table.
async fn add_on_its_page(browser: &Browser, fields: &Configuration<'_>, step: &str) {
    browser.click("#add-configuration").await;
    // Without JavaScript, htmx cannot intercept the link: the form is a page of its own.
    browser.wait_for_path("/llm-configurations/new").await;
    assert!(
        !browser.exists("#configuration-dialog").await,
        "the form page has no dialog"
    );
    assert!(
        !browser.exists("[data-close-dialog]").await,
        "the form page has no dialog button"
    );
    browser.fill_configuration("#configuration-form", fields).await;
    browser.check(step).await;
    browser.click("#save-configuration").await;
    browser.wait_for_path("/llm-configurations").await;
    browser.wait_for(&Browser::row(fields.name)).await;
}

#[tokio::test]
async fn every_action_works_as_a_full_page_post_without_javascript() {
    let Some(browser) = Browser::start(FLOW, JavaScript::Off).await else {
        return;
    };

    browser.register_first_admin().await;
    browser.assert_starts_empty().await;

    add_on_its_page(&browser, &WORK, "new-page").await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "the first configuration becomes the default"
    );
    add_on_its_page(&browser, &HOME, "new-page-second").await;
    assert_eq!(
        browser.row_names().await,
        [WORK.name, HOME.name],
        "the default comes first"
    );
    browser.check("two-configurations").await;
    browser.check_on_phone("phone").await;

    // Set default, Deactivate and Activate post the row's form and come back to the page.
    browser
        .row_action_until(HOME.name, "set-default", RowState::Default)
        .await;
    browser.wait_for_path("/llm-configurations").await;
    assert_eq!(browser.default_name().await.as_deref(), Some(HOME.name));
    browser.check("set-default").await;

    browser
        .row_action_until(HOME.name, "deactivate", RowState::Inactive)
        .await;
    assert_eq!(browser.path().await, "/llm-configurations");
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "the default moves off a deactivated one"
    );
    browser.check("deactivated").await;

    browser.row_action_until(HOME.name, "activate", RowState::Active).await;
    assert_eq!(
        browser.default_name().await.as_deref(),
        Some(WORK.name),
        "reactivating does not take the default"
    );
    browser.check("reactivated").await;

    // Edit is its own page; an empty key field keeps the key.
    let row = Browser::row(WORK.name);
    let mask = browser.text(&format!("{row} code.masked-key")).await;
    let id = browser.find(&row).await.attr("id").await.unwrap().unwrap();
    let id = id.trim_start_matches("configuration-").to_owned();
    browser.click(&format!("{row} [data-action='edit']")).await;
    browser.wait_for_path(&format!("/llm-configurations/{id}/edit")).await;
    assert_eq!(
        browser
            .find("#configuration-form #name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(WORK.name)
    );
    assert_eq!(
        browser
            .find("#api_key")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default(),
        ""
    );
    browser.fill("#model", "gpt-4.1").await;
    browser.check("edit-page").await;
    browser.click("#save-configuration").await;
    browser.wait_for_path("/llm-configurations").await;
    assert_eq!(browser.text(&format!("{row} code.model")).await, "gpt-4.1");
    assert_eq!(
        browser.text(&format!("{row} code.masked-key")).await,
        mask,
        "an empty key field keeps the key"
    );
    browser.check("edited").await;

    // Delete leads to a confirmation page, whose button deletes.
    let home_id = browser
        .find(&Browser::row(HOME.name))
        .await
        .attr("id")
        .await
        .unwrap()
        .unwrap();
    let home_id = home_id.trim_start_matches("configuration-").to_owned();
    browser.click(&Browser::row_action(HOME.name, "delete")).await;
    browser
        .wait_for_path(&format!("/llm-configurations/{home_id}/delete"))
        .await;
    assert!(
        browser.text("h1").await.contains(HOME.name),
        "the confirmation names the configuration"
    );
    browser.check("delete-confirmation").await;
    browser.click("#confirm-delete").await;
    browser.wait_for_path("/llm-configurations").await;
    assert_eq!(browser.row_names().await, [WORK.name]);
    browser.check("deleted").await;

    // Tokens: created by a full-page post that shows the token once, revoked by another.
    browser.goto("/settings").await;
    browser.check("settings").await;
    browser.open_token_form("ci script").await;
    browser.click("#token-form button[type=submit]").await;
    let secret = browser.shown_token().await;
    assert_eq!(
        browser.path().await,
        "/settings/tokens",
        "the token is shown in the post's own answer"
    );
    browser.assert_new_token_works(&secret).await;

    browser.goto("/settings").await;
    browser
        .assert_token_listed_without_its_secret(&secret, "settings-again")
        .await;

    browser.click("tr[data-name='ci script'] [data-action='revoke']").await;
    browser.wait_for_path("/settings").await;
    browser
        .wait_until("the token to be revoked", async || {
            !browser.exists("tr[data-name='ci script'] [data-action='revoke']").await
        })
        .await;
    browser.assert_token_revoked_then_finish(&secret).await;
}

/// Without JavaScript the Test button posts the row's form and the redirect brings back the
/// page with the new status; "Test before saving" is not offered.
#[tokio::test]
async fn the_test_button_is_a_full_page_post_without_javascript() {
    let Some((browser, provider)) = Browser::start_with_fake_provider(TEST_FLOW, JavaScript::Off).await else {
        return;
    };
    let base_url = provider.base_url();

    // The form page has the button in its markup, hidden: nothing to click without a script.
    browser.click("#add-configuration").await;
    browser.wait_for_path("/llm-configurations/new").await;
    let button = browser.find("#test-before-saving").await;
    assert!(
        button.attr("hidden").await.unwrap().is_some(),
        "Test before saving keeps its hidden attribute"
    );
    assert!(
        !button.is_displayed().await.unwrap(),
        "Test before saving is not shown without JavaScript"
    );
    assert!(browser.exists("#save-configuration").await);
    browser.check("form-without-test-before-saving").await;
    browser.goto("/llm-configurations").await;

    let (good, bad) = fake_good_and_bad(&base_url);
    add_on_its_page(&browser, &good, "new-fake-good").await;
    add_on_its_page(&browser, &bad, "new-fake-bad").await;
    assert_eq!(browser.row_status(good.name).await.0, "Untested");
    assert!(provider.keys_seen().await.is_empty(), "saving does not test");
    browser.check("untested").await;

    for (fields, label, expected) in [
        (&good, "OK", "listed 2 model(s)"),
        (&bad, "Failed", "rejected the API key"),
    ] {
        let row = Browser::row(fields.name);
        let id = browser.find(&row).await.attr("id").await.unwrap().unwrap();
        let id = id.trim_start_matches("configuration-").to_owned();
        let before = browser.find(&row).await;
        browser.redirects().await;
        browser.click(&format!("{row} [data-action='test']")).await;
        let message = browser.wait_for_row_status(fields.name, label).await;
        assert_eq!(browser.path().await, "/llm-configurations");
        assert!(
            before.text().await.is_err(),
            "Test loaded a new page: the old row is gone with the old document"
        );
        let redirects = browser.redirects().await;
        assert!(
            redirects.iter().any(
                |redirect| redirect.from.ends_with(&format!("/llm-configurations/{id}/test"))
                    && redirect.status == 303
                    && redirect.location == "/llm-configurations"
            ),
            "Test posts the row's form and is answered 303 to /llm-configurations: {redirects:?}"
        );
        assert!(message.contains(expected), "{}: the row says {message:?}", fields.name);
        browser.check(&format!("tested-{}", fields.name)).await;
    }
    assert_eq!(
        browser.row_status(good.name).await.0,
        "OK",
        "each row keeps its own status"
    );
    assert_eq!(
        provider.keys_seen().await,
        [GOOD_PROVIDER_KEY, BAD_PROVIDER_KEY],
        "each test made one request with its configuration's key"
    );

    // After a reload the status is still there: it was recorded, not just shown.
    browser.client.refresh().await.unwrap();
    browser.wait_for(&Browser::row(good.name)).await;
    assert_eq!(browser.row_status(good.name).await.0, "OK");
    assert_eq!(browser.row_status(bad.name).await.0, "Failed");
    browser.check("reloaded").await;
    browser.finish().await;
}
