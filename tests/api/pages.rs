//! The configuration pages: redirects to login, rendering, htmx fragments and plain-form
//! redirects, form errors next to their fields, static assets.

use crate::helpers::pages::{assert_marked_invalid, is_fragment, row_of, tag_with_id};
use crate::helpers::{TestApp, location};
use crate::on_both_backends;

on_both_backends!(
    every_page_but_login_and_register_sends_a_visitor_without_a_session_to_login,
    configuration_names_render_inert,
    row_actions_answer_the_table_with_htmx_and_a_redirect_without,
    the_settings_default_selector_answers_a_fragment_with_htmx_and_a_redirect_without,
    an_edit_with_an_empty_key_keeps_the_stored_key,
    an_invalid_form_is_422_with_each_error_next_to_its_field,
    the_add_form_is_a_fragment_for_htmx_and_a_page_without,
    static_assets_are_versioned_and_cached_for_long,
);

fn position_of(html: &str, needle: &str) -> usize {
    html.find(needle).unwrap_or_else(|| panic!("`{needle}` not in {html}"))
}

async fn every_page_but_login_and_register_sends_a_visitor_without_a_session_to_login(app: TestApp) {
    let user = app.user().await;
    let configuration = app.create_openai(&user.token, "mine", "sk-mine-key-000001").await;
    let visitor = app.browser();
    let edit = configuration.page("edit");
    let delete = configuration.page("delete");
    for path in [
        "/",
        "/llm-configurations",
        "/llm-configurations/new",
        "/settings",
        &edit,
        &delete,
    ] {
        let response = visitor.get(path).await;
        assert_eq!(response.status(), 303, "GET {path}");
        assert_eq!(location(&response), "/login", "GET {path}");
        let htmx = visitor.get_htmx(path).await;
        assert_eq!(htmx.status(), 200, "htmx GET {path}");
        assert_eq!(htmx.headers()["hx-redirect"], "/login", "htmx GET {path}");
    }
    assert_eq!(visitor.get("/login").await.status(), 200);
    // No user has registered through the setup link here, but users exist: registration is closed.
    assert_eq!(visitor.get("/register").await.status(), 403);

    let signed_in = app.login(&user.email, crate::helpers::TEST_PASSWORD).await;
    let home = signed_in.get("/").await;
    assert_eq!(home.status(), 303);
    assert_eq!(location(&home), "/llm-configurations");
    assert_eq!(location(&signed_in.get("/login").await), "/llm-configurations");
}

async fn configuration_names_render_inert(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let image = app
        .create_openai(&user.token, "<img src=x onerror=alert(1)>", "sk-image-key-000001")
        .await;
    let attribute = app
        .create_openai(&user.token, r#"" hx-get="/x"#, "sk-attribute-key-0001")
        .await;

    let mut pages = vec![
        browser.page("/llm-configurations").await,
        browser.page("/settings").await,
        browser.get_htmx("/llm-configurations").await.text().await.unwrap(),
    ];
    for configuration in [&image, &attribute] {
        pages.push(browser.page(&configuration.page("edit")).await);
        pages.push(browser.page(&configuration.page("delete")).await);
    }
    let csrf = browser.csrf().await;
    let fragment = browser
        .post_htmx(
            &format!("/llm-configurations/{}/set-default", attribute.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(fragment.status(), 200);
    pages.push(fragment.text().await.unwrap());

    for page in &pages {
        assert!(!page.contains("<img"), "a raw <img> tag: {page}");
        assert!(!page.contains(r#"hx-get="/x"#), "a raw hx-get attribute: {page}");
    }
    assert!(
        pages[0].contains("&#60;img src=x onerror=alert(1)&#62;"),
        "the name is shown, escaped"
    );
    assert!(pages[0].contains("&#34; hx-get=&#34;/x"), "the name is shown, escaped");
}

async fn row_actions_answer_the_table_with_htmx_and_a_redirect_without(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-000001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-00002").await;
    let third = app.create_openai(&user.token, "third", "sk-third-key-000003").await;
    let csrf = browser.csrf().await;

    // Set default.
    let response = browser
        .post_htmx(&second.page("set-default"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 200);
    let table = response.text().await.unwrap();
    assert!(is_fragment(&table), "{table}");
    assert!(row_of(&table, second.id).unwrap().contains(r#"data-badge="default""#));
    assert!(!row_of(&table, first.id).unwrap().contains(r#"data-badge="default""#));
    let response = browser
        .post_form(&third.page("set-default"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/llm-configurations");
    assert_eq!(app.configurations(&user.token).await[0].id, third.id);
    let page = browser.page("/llm-configurations").await;
    assert!(row_of(&page, third.id).unwrap().contains(r#"data-badge="default""#));

    // Deactivating the default moves the default; both rows change in the returned table.
    let response = browser
        .post_htmx(&third.page("active"), &[("is_active", "false"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 200);
    let table = response.text().await.unwrap();
    assert!(is_fragment(&table), "{table}");
    let third_row = row_of(&table, third.id).unwrap();
    assert!(third_row.contains(r#"data-badge="inactive""#), "{third_row}");
    assert!(!third_row.contains(r#"data-badge="default""#));
    assert!(third_row.contains(r#"data-action="activate""#));
    let listed = app.configurations(&user.token).await;
    assert_ne!(listed[0].id, third.id);
    assert!(table.contains(&format!(
        r#"<tr id="configuration-{}" data-name="{}" class="is-default""#,
        listed[0].id, listed[0].name
    )));
    let response = browser
        .post_form(&third.page("active"), &[("is_active", "true"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/llm-configurations");
    let third_now = app
        .configurations(&user.token)
        .await
        .into_iter()
        .find(|c| c.id == third.id)
        .unwrap();
    assert!(third_now.is_active);

    // Delete.
    let response = browser.post_htmx(&first.page("delete"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 200);
    let table = response.text().await.unwrap();
    assert!(is_fragment(&table), "{table}");
    assert!(row_of(&table, first.id).is_none());
    assert!(row_of(&table, second.id).is_some());
    let response = browser
        .post_form(&second.page("delete"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/llm-configurations");
    let remaining: Vec<uuid::Uuid> = app.configurations(&user.token).await.iter().map(|c| c.id).collect();
    assert_eq!(remaining, [third.id]);
}

async fn the_settings_default_selector_answers_a_fragment_with_htmx_and_a_redirect_without(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-000001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-00002").await;
    let csrf = browser.csrf().await;

    let response = browser
        .post_htmx(
            "/settings/default",
            &[
                ("configuration_id", second.id.to_string().as_str()),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(is_fragment(&fragment), "{fragment}");
    assert!(
        fragment.contains(&format!(r#"<option value="{}" selected>"#, second.id)),
        "{fragment}"
    );
    assert!(
        fragment.contains("<strong>second</strong>"),
        "the details show the new default: {fragment}"
    );
    assert_eq!(app.configurations(&user.token).await[0].id, second.id);

    let response = browser
        .post_form(
            "/settings/default",
            &[
                ("configuration_id", first.id.to_string().as_str()),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/settings");
    assert_eq!(app.configurations(&user.token).await[0].id, first.id);
    let page = browser.page("/settings").await;
    assert!(page.contains(&format!(r#"<option value="{}" selected>"#, first.id)));

    // Someone else's or a missing id is an error next to the selector, and nothing moves.
    let response = browser
        .post_htmx(
            "/settings/default",
            &[
                ("configuration_id", &uuid::Uuid::new_v4().to_string()),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let fragment = response.text().await.unwrap();
    assert_marked_invalid(&fragment, "configuration_id");
    assert!(fragment.contains(r#"id="configuration_id-error""#));
    assert_eq!(app.configurations(&user.token).await[0].id, first.id);
}

async fn an_edit_with_an_empty_key_keeps_the_stored_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let configuration = app.create_openai(&user.token, "keep", "sk-keep-this-key-x7Qa").await;
    let ciphertext = app.stored_ciphertext(&configuration).await;
    assert!(ciphertext.is_some());
    let csrf = browser.csrf().await;
    let path = format!("/llm-configurations/{}", configuration.id);
    let edit = |name: &'static str| {
        [
            ("name", name),
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("api_key", ""),
            ("base_url", ""),
            ("is_active", "true"),
        ]
    };

    let mut fields = edit("kept").to_vec();
    fields.push(("csrf_token", &csrf));
    let response = browser.post_form(&path, &fields).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/llm-configurations");
    let mut fields = edit("kept again").to_vec();
    fields.push(("csrf_token", &csrf));
    let response = browser.post_htmx(&path, &fields).await;
    assert_eq!(response.status(), 200);
    let table = response.text().await.unwrap();
    assert!(is_fragment(&table));
    assert!(row_of(&table, configuration.id).unwrap().contains("kept again"));
    assert!(row_of(&table, configuration.id).unwrap().contains("sk-…x7Qa"));

    let fetched = app.refetch(&user.token, &configuration).await;
    assert_eq!(fetched.name, "kept again");
    assert_eq!(fetched.model, "gpt-4o-mini");
    assert_eq!(fetched.api_key_masked.as_deref(), Some("sk-…x7Qa"));
    assert!(fetched.has_api_key);
    assert_eq!(
        app.stored_ciphertext(&configuration).await,
        ciphertext,
        "the stored key is untouched"
    );
}

async fn assert_form_errors(response: reqwest::Response, htmx: bool) {
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert_eq!(is_fragment(&html), htmx, "htmx {htmx}: {html}");
    assert_marked_invalid(&html, "name");
    assert_marked_invalid(&html, "model");
    assert!(!tag_with_id(&html, "provider").contains("aria-invalid"), "{html}");
    // Each message sits right after its field, before the next field.
    let name_error = position_of(&html, r#"id="name-error""#);
    assert!(position_of(&html, r#"id="name""#) < name_error);
    assert!(name_error < position_of(&html, r#"id="provider""#));
    let model_error = position_of(&html, r#"id="model-error""#);
    assert!(position_of(&html, r#"id="model""#) < model_error);
    assert!(model_error < position_of(&html, r#"id="api_key""#));
    // The submitted values come back, the key never does.
    assert!(tag_with_id(&html, "model").contains(r#"value="a b""#));
    assert!(!html.contains("sk-invalid-form-key-01"));
}

async fn an_invalid_form_is_422_with_each_error_next_to_its_field(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;
    let fields = [
        ("name", ""),
        ("provider", "openai"),
        ("model", "a b"),
        ("api_key", "sk-invalid-form-key-01"),
        ("base_url", ""),
        ("is_active", "true"),
        ("csrf_token", &csrf),
    ];
    assert_form_errors(browser.post_form("/llm-configurations", &fields).await, false).await;
    assert_form_errors(browser.post_htmx("/llm-configurations", &fields).await, true).await;
    assert!(app.configurations(&user.token).await.is_empty());

    let existing = app.create_openai(&user.token, "existing", "sk-existing-key-0001").await;
    let path = format!("/llm-configurations/{}", existing.id);
    assert_form_errors(browser.post_form(&path, &fields).await, false).await;
    assert_form_errors(browser.post_htmx(&path, &fields).await, true).await;
    let unchanged = &app.configurations(&user.token).await[0];
    assert_eq!(unchanged.name, "existing");
    assert_eq!(unchanged.api_key_masked, existing.api_key_masked);
}

async fn the_add_form_is_a_fragment_for_htmx_and_a_page_without(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;
    let response = browser.get_htmx("/llm-configurations/new").await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(is_fragment(&fragment), "{fragment}");
    assert!(fragment.contains(r#"<form id="configuration-form""#));
    assert!(fragment.contains(r#"hx-post="/llm-configurations""#));
    assert!(fragment.contains(r#"name="csrf_token""#));

    let page = browser.page("/llm-configurations/new").await;
    assert!(page.contains("<html"));
    assert!(page.contains(r#"<form id="configuration-form""#));
    assert!(page.contains(r#"action="/llm-configurations""#));
    assert!(
        !page.contains(r#"hx-post="/llm-configurations""#),
        "without JavaScript it is a plain form"
    );
}

async fn static_assets_are_versioned_and_cached_for_long(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;
    let mut assets = Vec::new();
    for page in [
        browser.page("/llm-configurations").await,
        app.browser().page("/login").await,
    ] {
        for marker in [r#"<script src=""#, r#"<link rel="stylesheet" href=""#] {
            for (at, _) in page.match_indices(marker) {
                let start = at + marker.len();
                let end = start + page[start..].find('"').unwrap();
                assets.push(page[start..end].to_owned());
            }
        }
    }
    assert!(
        assets
            .iter()
            .any(|url| url.starts_with("/static/vendor/htmx-2.0.11.min.js?v=")),
        "{assets:?}"
    );
    assert!(
        assets.iter().any(|url| url.starts_with("/static/app.css?v=")),
        "{assets:?}"
    );
    for url in &assets {
        assert!(
            url.starts_with("/static/") && url.contains("?v="),
            "an unversioned asset: {url}"
        );
        let response = browser.get(url).await;
        assert_eq!(response.status(), 200, "{url}");
        let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("max-age=31536000"), "{url}: {cache}");
        assert!(cache.contains("immutable"), "{url}: {cache}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    let htmx = browser.get("/static/vendor/htmx-2.0.11.min.js?v=1").await;
    assert!(htmx.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let css = browser.get("/static/app.css?v=1").await;
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    // Unversioned, the same asset may change under its name: a short cache.
    let unversioned = browser.get("/static/app.css").await;
    assert!(
        !unversioned.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("31536000")
    );
}
