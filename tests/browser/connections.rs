//! Connections in a real browser (JavaScript on): connections added and tested on
//! `/connections`, the configuration form's picker swapping the model list in place; and the
//! management table at a 1280 × 800 window with many long-valued configurations: no horizontal
//! scrolling, no table wider than its container, every row's Edit and Delete reachable by Tab.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use serde_json::{Value, json};

use crate::harness::{Browser, FAKE_MODELS, FakeProvider, GOOD_PROVIDER_KEY, JavaScript, LOOPBACK_EGRESS};

const PICKER_FLOW: &str = "connections-picker";
const WIDTH_FLOW: &str = "connections-1280";
const DIALOG_FORM: &str = "#configuration-dialog[open] #configuration-form";
/// WebDriver's code for the Tab key.
const TAB: char = '\u{e004}';
const OTHER_MODELS: [&str; 3] = ["llama-3.3-70b", "mistral-large", "qwen-2.5-coder"];

/// The connection row named `name`, as a CSS selector.
fn connection_row(name: &str) -> String {
    format!("tr[id^='connection-'][data-name='{name}']")
}

/// Adds a connection with the form on `/connections` (htmx swaps the list) and tests it.
async fn add_and_test_connection(browser: &Browser, name: &str, base_url: &str) -> String {
    browser.fill("#add-connection-form #name", name).await;
    browser
        .select("#add-connection-form #provider", "openai_compatible")
        .await;
    browser.fill("#add-connection-form #api_key", GOOD_PROVIDER_KEY).await;
    browser.fill("#add-connection-form #base_url", base_url).await;
    browser.click("#add-connection-form #save-connection").await;
    let row = connection_row(name);
    browser.wait_for(&row).await;
    browser.click(&format!("{row} [data-action='test']")).await;
    browser
        .wait_until(&format!("{name} to test OK"), async || {
            browser
                .try_text(&format!("{row} [data-badge='status']"))
                .await
                .as_deref()
                == Some("OK")
        })
        .await;
    let id = browser.find(&row).await.attr("id").await.unwrap().unwrap();
    id.trim_start_matches("connection-").to_owned()
}

#[tokio::test]
async fn picking_another_connection_swaps_the_model_list_in_place() {
    let Some(browser) = Browser::start_with(PICKER_FLOW, JavaScript::On, &LOOPBACK_EGRESS).await else {
        return;
    };
    let first = FakeProvider::start().await;
    let second = FakeProvider::listing(&OTHER_MODELS).await;
    browser.register_first_admin().await;

    browser.click(".site-header a[href='/connections']").await;
    browser.wait_for_path("/connections").await;
    browser.check("empty").await;
    browser.mark().await;
    let first_id = add_and_test_connection(&browser, "first-account", &first.base_url()).await;
    let second_id = add_and_test_connection(&browser, "second-account", &second.base_url()).await;
    browser.assert_not_reloaded("adding and testing connections").await;
    assert_eq!(
        browser
            .text(&format!("{} [data-model-count]", connection_row("second-account")))
            .await,
        "3"
    );
    browser.check("two-connections-tested").await;

    browser.goto("/llm-configurations").await;
    browser.mark().await;
    browser.click("#add-configuration").await;
    browser.wait_for(DIALOG_FORM).await;
    assert!(
        browser.model_suggestions().await.is_empty(),
        "a new connection suggests nothing yet"
    );
    let fields = browser.find("#configuration-dialog #connection-fields").await;
    assert!(
        fields.is_displayed().await.unwrap(),
        "a new connection's fields are shown"
    );

    browser.select("#configuration-dialog #connection_id", &first_id).await;
    browser
        .wait_until("the first account's models", async || {
            browser.model_suggestions().await == FAKE_MODELS
        })
        .await;
    assert!(
        !browser
            .find("#configuration-dialog #connection-fields")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "an existing connection needs no provider, key or base URL"
    );
    browser.check("picked-first").await;
    browser.select("#configuration-dialog #connection_id", &second_id).await;
    browser
        .wait_until("the second account's models", async || {
            browser.model_suggestions().await == OTHER_MODELS
        })
        .await;
    assert_eq!(
        browser.count("#model-suggestions").await,
        1,
        "the list is replaced, not added"
    );
    browser.assert_not_reloaded("picking another connection").await;
    browser.check("picked-second").await;

    browser.fill("#configuration-dialog #name", "coder").await;
    browser.fill("#configuration-dialog #model", "qwen-2.5-coder").await;
    browser.click("#configuration-dialog #save-configuration").await;
    let row = Browser::row("coder");
    browser.wait_for(&row).await;
    assert_eq!(browser.text(&format!("{row} .connection-name")).await, "second-account");
    browser.assert_not_reloaded("saving on a picked connection").await;
    browser.check("saved-on-second").await;
    browser.finish().await;
}

/// `POST` of a JSON body to the API with the page's session and CSRF token: the status and body.
async fn api_post(browser: &Browser, path: &str, body: Value) -> (u64, Value) {
    let answer = browser
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];
             var csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
             fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                                  body: JSON.stringify(arguments[1])})
               .then(function (r) { return r.text().then(function (t) { done({status: r.status, body: t}); }); })
               .catch(function (e) { done({status: 0, body: String(e)}); });",
            vec![json!(path), body],
        )
        .await
        .expect("the request runs in the page");
    let status = answer["status"].as_u64().unwrap_or(0);
    let text = answer["body"].as_str().unwrap_or("").to_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// How far the page and its tables overflow: `[page overflow, widest table overflow]` in px.
async fn overflow(browser: &Browser) -> (f64, f64) {
    let measured = browser
        .script(
            "var page = document.documentElement.scrollWidth - window.innerWidth;
             var worst = -Infinity;
             document.querySelectorAll('table').forEach(function (table) {
               var box = table.parentElement.clientWidth;
               worst = Math.max(worst, table.scrollWidth - box, table.getBoundingClientRect().width - box);
             });
             return [page, worst === -Infinity ? 0 : worst];",
        )
        .await;
    (measured[0].as_f64().unwrap(), measured[1].as_f64().unwrap())
}

/// Presses Tab from the top of the page until focus has gone round: for each focused row
/// action, `row name:action` and whether it lay inside the window.
async fn tab_through(browser: &Browser, presses: usize) -> Vec<(String, bool)> {
    browser
        .script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return null;")
        .await;
    let mut reached = Vec::new();
    for _ in 0..presses {
        let tab = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: TAB })
            .then(KeyAction::Up { value: TAB });
        browser.client.perform_actions(tab).await.expect("Tab is pressed");
        let focused = browser
            .script(
                "var e = document.activeElement; var row = e && e.closest('tr[data-name]');
                 if (!row || !e.dataset.action) return null;
                 var r = e.getBoundingClientRect();
                 return [row.dataset.name + ':' + e.dataset.action, r.left >= 0 && r.right <= window.innerWidth];",
            )
            .await;
        if let Some([name, inside]) = focused.as_array().map(Vec::as_slice) {
            reached.push((name.as_str().unwrap().to_owned(), inside.as_bool().unwrap()));
        }
    }
    reached
}

#[tokio::test]
async fn the_management_table_fits_a_1280_pixel_window() {
    let Some(browser) = Browser::start_with(WIDTH_FLOW, JavaScript::On, &LOOPBACK_EGRESS).await else {
        return;
    };
    browser.register_first_admin().await;
    browser
        .client
        .set_window_size(1280, 800)
        .await
        .expect("the window resizes");

    let long = |stem: &str| format!("{stem}-{}", "x".repeat(64 - stem.len() - 1));
    let ollama_base = format!(
        "http://127.0.0.1:11434/{}/api-gateway/tenant-0123456789abcdef/ollama-proxy",
        "very-long-path-segment".repeat(4)
    );
    let configurations = [
        json!({"name": long("research-assistant-with-a-very-long-name"), "provider": "openai",
               "model": "gpt-4o-2024-11-20-with-a-fine-tune-suffix-ft-personal-0123456789abcdef",
               "api_key": "sk-proj-browser-width-test-0123456789ABCD"}),
        json!({"name": "local-llama", "provider": "ollama", "model": "llama3.3:70b-instruct-q4_K_M",
               "base_url": ollama_base}),
        json!({"name": long("anthropic-claude-for-long-documents"), "provider": "anthropic",
               "model": "claude-sonnet-4-5-20250929", "api_key": "sk-ant-browser-width-test-0123456789ABCD"}),
        json!({"name": "azure-deployment", "provider": "azure_openai", "model": "gpt-4o-deployment-eastus2-production",
               "api_key": "azure-browser-width-test-0123456789ABCDEF",
               "base_url": "https://my-company-openai-resource-eastus2-production.openai.azure.com"}),
        json!({"name": "groq-fast", "provider": "groq", "model": "llama-3.3-70b-versatile",
               "api_key": "gsk_browser_width_test_0123456789ABCDEFGH"}),
        json!({"name": "openrouter-everything", "provider": "openrouter",
               "model": "anthropic/claude-3.5-sonnet:beta-with-a-long-variant-name",
               "api_key": "sk-or-v1-browser-width-test-0123456789ABCD"}),
        json!({"name": "custom-gateway", "provider": "openai_compatible", "model": "company/internal-model-v7",
               "api_key": "sk-custom-browser-width-test-0123456789",
               "base_url": "http://127.0.0.1:9/v1/an/internal/gateway/with/a/long/path/to/the/openai/compatible/api"}),
    ];
    let mut ids = Vec::new();
    for configuration in configurations {
        let (status, created) = api_post(&browser, "/api/llm-configurations", configuration.clone()).await;
        assert_eq!(status, 201, "{configuration}: {created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Failed tests leave long status messages (nothing listens on these loopback ports).
    for id in [&ids[1], &ids[6]] {
        let (status, result) = api_post(&browser, &format!("/api/llm-configurations/{id}/test"), json!({})).await;
        assert_eq!(status, 200, "{result}");
    }

    browser.goto("/llm-configurations").await;
    assert_eq!(browser.row_names().await.len(), 7);
    let size = browser.script("return [window.innerWidth, window.innerHeight];").await;
    assert_eq!(size[0], json!(1280), "the window is 1280 px wide: {size}");
    browser.check("management-1280").await;
    let (page, table) = overflow(&browser).await;
    assert!(page <= 0.0, "the page scrolls sideways by {page}px at 1280 px");
    assert!(table <= 0.5, "a table is wider than its container by {table}px");
    // Long values are shortened, with the full value in their title.
    let title = browser
        .find(&format!("{} code.base-url", Browser::row("local-llama")))
        .await
        .attr("title")
        .await
        .unwrap();
    assert!(title.is_some_and(|title| title.contains("very-long-path-segment")));

    let reached = tab_through(&browser, 90).await;
    for name in browser.row_names().await {
        for action in ["edit", "delete"] {
            let key = format!("{name}:{action}");
            let hit = reached.iter().find(|(reached, _)| *reached == key);
            assert!(hit.is_some(), "{key} is not reachable by Tab: {reached:?}");
            assert!(hit.unwrap().1, "{key} was focused outside the window");
        }
    }
    browser.check_on_phone("management-phone").await;

    browser.goto("/connections").await;
    browser.check("connections-1280").await;
    let (page, table) = overflow(&browser).await;
    assert!(page <= 0.0, "/connections scrolls sideways by {page}px at 1280 px");
    assert!(
        table <= 0.5,
        "the connections table is wider than its container by {table}px"
    );
    browser.check_on_phone("connections-phone").await;
    browser.finish().await;
}
