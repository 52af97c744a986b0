//! An organisation's resources in a real browser, once with JavaScript (htmx swaps the sections
//! of `/organisations/{id}` and the settings' default in place) and once without (every form a
//! full-page post): an admin creates the organisation's connection and configuration on its
//! page and a webhook whose secret is shown once; a member sees the configuration on
//! `/llm-configurations` under the organisation's heading with its masked key, and picks it as
//! their default on `/settings`.

use crate::harness::{Browser, JavaScript};

const MEMBER_EMAIL: &str = "member@example.com";
const MEMBER_PASSWORD: &str = "member password 0123";
const ORGANISATION: &str = "Platform team";
const ORG_KEY: &str = "sk-organisation-browser-0123456789xQ7z";
const CONNECTION_ROW: &str = "#organisation-connections tr[id^='connection-'][data-name='team-openai']";
const CONFIGURATION_ROW: &str = "#organisation-configurations tr[id^='configuration-'][data-name='team-gpt']";

/// Submits a form with its button: with JavaScript, after marking the page when `in_place`, so
/// that the swap can be proved to have kept it.
async fn submit(browser: &Browser, button: &str, javascript: JavaScript, in_place: bool) {
    if javascript == JavaScript::On && in_place {
        browser.mark().await;
    }
    browser.click(button).await;
}

async fn assert_in_place(browser: &Browser, javascript: JavaScript, action: &str) {
    if javascript == JavaScript::On {
        browser.assert_not_reloaded(action).await;
    }
}

async fn log_in(browser: &Browser, email: &str, password: &str) {
    browser.goto("/login").await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.click("form[action='/login'] button[type=submit]").await;
    browser.wait_for_path("/llm-configurations").await;
}

/// The instance admin creates the member's account on `/admin`.
async fn create_member_account(browser: &Browser) {
    browser.goto("/admin").await;
    browser.click("details:has(#create-user-form) > summary").await;
    browser.fill("#create-user-form #new-email", MEMBER_EMAIL).await;
    browser.fill("#create-user-form #new-password", MEMBER_PASSWORD).await;
    browser.click("#create-user-form button[type=submit]").await;
    browser.wait_for(&format!("tr[data-email='{MEMBER_EMAIL}']")).await;
}

/// Creates the organisation and invites the member; the organisation's page path.
async fn create_organisation(browser: &Browser) -> String {
    browser.goto("/organisations").await;
    browser.fill("#organisation-name", ORGANISATION).await;
    browser.click("#create-organisation-form button[type=submit]").await;
    browser.wait_for("#your-role").await;
    let page = browser.path().await;
    let page = page.split('?').next().unwrap_or_default().to_owned();
    assert!(page.starts_with("/organisations/"), "{page}");
    browser.fill("#invite-email", MEMBER_EMAIL).await;
    browser.select("#invite-role", "member").await;
    browser.click("#invite-form button[type=submit]").await;
    browser
        .wait_for(&format!("tr.invited[data-email='{MEMBER_EMAIL}']"))
        .await;
    page
}

/// The admin adds the connection and the configuration on it with the page's forms; the
/// configuration's id.
async fn add_connection_and_configuration(browser: &Browser, javascript: JavaScript) -> String {
    browser.click("#add-organisation-connection > summary").await;
    browser
        .fill("#organisation-connection-form #connection-name", "team-openai")
        .await;
    browser
        .select("#organisation-connection-form #connection-provider", "openai")
        .await;
    browser
        .fill("#organisation-connection-form #connection-api_key", ORG_KEY)
        .await;
    submit(browser, "#save-organisation-connection", javascript, true).await;
    browser.wait_for(CONNECTION_ROW).await;
    assert_in_place(browser, javascript, "adding the organisation's connection").await;
    browser.check("organisation-connection-added").await;
    let connection = browser.find(CONNECTION_ROW).await.attr("id").await.unwrap().unwrap();
    let connection = connection.trim_start_matches("connection-").to_owned();
    let mask = browser.text(&format!("{CONNECTION_ROW} .masked-key")).await;
    assert!(mask.ends_with("xQ7z") && mask != ORG_KEY, "masked: {mask}");

    browser.click("#add-organisation-configuration > summary").await;
    let form = "#organisation-configurations #configuration-form";
    browser.fill(&format!("{form} #name"), "team-gpt").await;
    browser.select(&format!("{form} #connection_id"), &connection).await;
    browser.fill(&format!("{form} #model"), "gpt-4o").await;
    browser.select(&format!("{form} #member_access"), "use").await;
    submit(browser, &format!("{form} #save-configuration"), javascript, true).await;
    browser.wait_for(CONFIGURATION_ROW).await;
    assert_in_place(browser, javascript, "adding the organisation's configuration").await;
    assert_eq!(
        browser.text(&format!("{CONFIGURATION_ROW} .masked-key")).await,
        mask,
        "the configuration shows its connection's mask"
    );
    assert_eq!(
        browser.text(&format!("{CONFIGURATION_ROW} [data-member-access]")).await,
        "use it"
    );
    browser.check("organisation-configuration-added").await;
    let id = browser.find(CONFIGURATION_ROW).await.attr("id").await.unwrap().unwrap();
    id.trim_start_matches("configuration-").to_owned()
}

/// The admin adds a webhook: its secret is shown once, and not after the page is loaded again.
async fn add_webhook(browser: &Browser, page: &str, javascript: JavaScript) {
    browser.click("#webhooks-section details > summary").await;
    browser
        .fill("#webhook-form #webhook-url", "https://hooks.example.com/platform")
        .await;
    submit(browser, "#webhook-form button[type=submit]", javascript, true).await;
    let secret = browser.wait_for("#new-webhook-secret").await.text().await.unwrap();
    assert!(secret.trim().starts_with("whsec_"), "the secret is shown: {secret:?}");
    assert_in_place(browser, javascript, "adding the organisation's webhook").await;
    browser.check("organisation-webhook-created").await;
    browser.goto(page).await;
    browser.wait_for("#webhooks-section tr[id^='webhook-']").await;
    assert!(
        !browser.exists("#new-webhook-secret").await,
        "a secret is shown only once"
    );
    assert!(
        !browser.client.source().await.unwrap().contains(secret.trim()),
        "the page no longer holds the secret"
    );
}

/// The member accepts the invitation, finds the configuration under the organisation's heading
/// and makes it their default on `/settings`.
async fn member_uses_it(browser: &Browser, configuration: &str, javascript: JavaScript) {
    log_in(browser, MEMBER_EMAIL, MEMBER_PASSWORD).await;
    browser.goto("/organisations").await;
    browser
        .click(&format!(
            "tr[id^='invitation-'][data-name='{ORGANISATION}'] [data-action='accept']"
        ))
        .await;
    browser.wait_for(CONFIGURATION_ROW).await;
    assert!(
        !browser.exists("#organisation-configurations #configuration-form").await,
        "a member gets no form"
    );
    browser.check("member-sees-the-organisation").await;

    browser.goto("/llm-configurations").await;
    let section = format!("section[data-organisation='{ORGANISATION}']");
    let row = format!("{section} {}", Browser::row("team-gpt"));
    browser.wait_for(&row).await;
    assert_eq!(
        browser.text(&format!("{section} .organisation-heading")).await,
        ORGANISATION,
        "the section is headed by the organisation's name"
    );
    let mask = browser.text(&format!("{row} .masked-key")).await;
    assert!(mask.ends_with("xQ7z") && mask != ORG_KEY, "masked: {mask}");
    assert!(
        !browser.client.source().await.unwrap().contains(ORG_KEY),
        "no page a member sees holds the key"
    );
    browser.check("member-management-page").await;

    browser.goto("/settings").await;
    assert_eq!(
        browser
            .find(&format!(
                "#configuration_id optgroup[label='{ORGANISATION}'] option[value='{configuration}']"
            ))
            .await
            .text()
            .await
            .unwrap()
            .split(" — ")
            .next(),
        Some("team-gpt"),
        "the selector offers it under the organisation"
    );
    browser.select("#configuration_id", configuration).await;
    submit(browser, "#default-form button[type=submit]", javascript, true).await;
    browser
        .wait_until("the default to be team-gpt", async || {
            browser.try_text("#default-details header strong").await.as_deref() == Some("team-gpt")
        })
        .await;
    assert_in_place(browser, javascript, "choosing the default").await;
    browser.check("member-default-chosen").await;
    browser.goto("/llm-configurations").await;
    assert!(
        browser.is_default("team-gpt").await,
        "the management page shows it as the default"
    );
    browser.check("member-default-on-management-page").await;
}

async fn the_organisation_flow(flow: &'static str, javascript: JavaScript) {
    let Some(browser) = Browser::start(flow, javascript).await else {
        return;
    };
    browser.register_first_admin().await;
    create_member_account(&browser).await;
    let page = create_organisation(&browser).await;
    browser.check("organisation-created").await;
    let configuration = add_connection_and_configuration(&browser, javascript).await;
    add_webhook(&browser, &page, javascript).await;
    assert!(!browser.client.source().await.unwrap().contains(ORG_KEY));
    browser.log_out().await;
    member_uses_it(&browser, &configuration, javascript).await;
    browser.finish().await;
}

#[tokio::test]
async fn an_admin_shares_a_configuration_that_a_member_picks_as_default_with_javascript() {
    the_organisation_flow("organisation-js-on", JavaScript::On).await;
}

#[tokio::test]
async fn an_admin_shares_a_configuration_that_a_member_picks_as_default_without_javascript() {
    the_organisation_flow("organisation-js-off", JavaScript::Off).await;
}
