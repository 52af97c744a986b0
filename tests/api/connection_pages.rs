//! The connection pages: `/connections` (list, add, edit with an empty key keeping it, delete
//! refused while in use, Test and Refresh models against a fake provider), a connection's own
//! page, the configuration form's connection picker and its model `<datalist>` (JavaScript off)
//! and the fragment htmx swaps in; someone else's connection is a 404 on every route.

use serde_json::{Value, json};

use crate::helpers::configurations::CONFIGURATIONS;
use crate::helpers::connections::{
    connection_path, create_connection, create_on, id_str, list_connections, openai_connection,
};
use crate::helpers::pages::tag_with_id;
use crate::helpers::providers::{GOOD_KEY, PROVIDER_SECRET, fake_openai, loopback_allowed, openai_base};
use crate::helpers::{Browser, TestApp, location};
use crate::on_both_backends;

on_both_backends!(
    the_connections_page_lists_each_connection_with_its_mask_status_and_counts,
    adding_a_connection_creates_it_and_an_invalid_form_shows_each_error_beside_its_field,
    an_update_with_an_empty_key_keeps_the_stored_key,
    deleting_a_connection_is_refused_naming_its_configurations_while_they_use_it,
    someone_elses_connection_is_not_found_on_every_route,
    the_configuration_form_creates_on_a_picked_connection_and_the_old_way_still_works,
    an_edit_moves_a_configuration_to_another_connection_or_onto_a_new_one,
);

on_both_backends!(settings(loopback_allowed):
    test_and_refresh_models_record_the_result_and_store_the_models,
    the_configuration_form_offers_the_connections_models_in_a_datalist_without_javascript,
    the_models_fragment_is_the_datalist_of_the_picked_connection,
);

fn is_fragment(html: &str) -> bool {
    !html.contains("<html") && !html.contains("<body")
}

/// The `<tr>` of a connection in a page or fragment, if it is there.
fn connection_row<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"<tr id="connection-{id}""#))?;
    let end = html[start..].find("</tr>")?;
    Some(&html[start..start + end])
}

/// The `<datalist id="model-suggestions">` of a page or fragment: the values it offers.
fn suggestions(html: &str) -> Vec<String> {
    let start = html
        .find(r#"<datalist id="model-suggestions""#)
        .unwrap_or_else(|| panic!("no model datalist in {html}"));
    let end = start + html[start..].find("</datalist>").unwrap();
    html[start..end]
        .split(r#"<option value=""#)
        .skip(1)
        .map(|option| option[..option.find('"').unwrap()].to_owned())
        .collect()
}

async fn post(browser: &Browser, path: &str, fields: &[(&str, &str)], htmx: bool) -> reqwest::Response {
    let csrf = browser.csrf().await;
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", csrf.as_str()));
    if htmx {
        browser.post_htmx(path, &fields).await
    } else {
        browser.post_form(path, &fields).await
    }
}

async fn connection(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get(&connection_path(id), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn the_connections_page_lists_each_connection_with_its_mask_status_and_counts(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let shared = create_connection(
        &app,
        &user.token,
        openai_connection("team-openai", "sk-team-key-0123456789x7Qa", None),
    )
    .await;
    let idle = create_connection(
        &app,
        &user.token,
        json!({"name": "local-ollama", "provider": "ollama", "base_url": "https://ollama.example.com"}),
    )
    .await;
    create_on(&app, &user.token, "writer", &shared, "gpt-4o").await;
    create_on(&app, &user.token, "reviewer", &shared, "gpt-4o-mini").await;

    let page = browser.page("/connections").await;
    assert!(
        page.contains(r#"<a href="/connections" aria-current="page">Connections</a>"#),
        "the site navigation leads here: {page}"
    );
    let row = connection_row(&page, &id_str(&shared)).expect("the shared connection's row");
    assert!(row.contains("team-openai"), "{row}");
    assert!(row.contains("OpenAI"), "{row}");
    assert!(row.contains("sk-…x7Qa"), "the key is shown masked: {row}");
    assert!(
        !row.contains("sk-team-key-0123456789x7Qa"),
        "never the key itself: {row}"
    );
    assert!(row.contains(r#"data-badge="status">Untested"#), "{row}");
    assert!(row.contains("<span data-model-count>0</span>"), "{row}");
    assert!(row.contains("<span data-configuration-count>2</span>"), "{row}");
    for action in ["test", "refresh-models", "edit", "delete"] {
        assert!(row.contains(&format!(r#"data-action="{action}""#)), "{action}: {row}");
    }
    let idle_row = connection_row(&page, &id_str(&idle)).expect("the idle connection's row");
    assert!(idle_row.contains("https://ollama.example.com"), "{idle_row}");
    assert!(
        idle_row.contains("<span data-configuration-count>0</span>"),
        "{idle_row}"
    );
    assert!(page.contains(r#"<form id="add-connection-form" method="post" action="/connections""#));
    for field in ["name", "provider", "api_key", "base_url"] {
        assert!(
            tag_with_id(&page, field).contains(&format!(r#"name="{field}""#)),
            "{field}"
        );
    }
    // In order of name.
    assert!(page.find("local-ollama").unwrap() < page.find("team-openai").unwrap());

    let visitor = app.browser();
    let response = visitor.get("/connections").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
}

async fn adding_a_connection_creates_it_and_an_invalid_form_shows_each_error_beside_its_field(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let response = post(
        &browser,
        "/connections",
        &[
            ("name", "plain"),
            ("provider", "openai"),
            ("api_key", "sk-plain-form-key-0001"),
            ("base_url", ""),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/connections");

    let response = post(
        &browser,
        "/connections",
        &[
            ("name", "with-htmx"),
            ("provider", "openai"),
            ("api_key", "sk-htmx-form-key-0002"),
            ("base_url", ""),
        ],
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(is_fragment(&fragment), "{fragment}");
    let listed = list_connections(&app, &user.token).await;
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plain", "with-htmx"]);
    assert_eq!(listed[1]["api_key_masked"], "sk-…0002");
    assert!(connection_row(&fragment, &id_str(&listed[1])).is_some(), "{fragment}");
    assert!(!fragment.contains("sk-htmx-form-key-0002"));

    for htmx in [false, true] {
        let response = post(
            &browser,
            "/connections",
            &[
                ("name", ""),
                ("provider", "openai"),
                ("api_key", "sk-…masked"),
                ("base_url", "ftp://nowhere"),
            ],
            htmx,
        )
        .await;
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        assert_eq!(is_fragment(&html), htmx, "{html}");
        for field in ["name", "api_key", "base_url"] {
            assert!(
                tag_with_id(&html, field).contains(r#"aria-invalid="true""#),
                "{field}: {html}"
            );
            let error = html.find(&format!(r#"id="{field}-error""#)).unwrap();
            assert!(html.find(&format!(r#"id="{field}""#)).unwrap() < error, "{field}");
        }
        assert!(!tag_with_id(&html, "provider").contains("aria-invalid"));
        assert!(tag_with_id(&html, "base_url").contains(r#"value="ftp://nowhere""#));
        assert!(!html.contains("sk-…masked"), "the key never comes back");
    }
    // A name taken (ignoring case) is an error beside the name.
    let response = post(
        &browser,
        "/connections",
        &[
            ("name", "PLAIN"),
            ("provider", "openai"),
            ("api_key", "sk-another-key-00003"),
            ("base_url", ""),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="name-error""#), "{html}");
    assert_eq!(
        list_connections(&app, &user.token).await.len(),
        2,
        "nothing more was created"
    );
}

async fn an_update_with_an_empty_key_keeps_the_stored_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let created = create_connection(
        &app,
        &user.token,
        openai_connection("keep", "sk-keep-this-key-x7Qa", None),
    )
    .await;
    let id = id_str(&created);
    let configuration = create_on(&app, &user.token, "user-of-it", &created, "gpt-4o").await;
    let ciphertext = app.stored_ciphertext(&configuration).await;
    assert!(ciphertext.is_some());

    let detail = browser.page(&format!("/connections/{id}")).await;
    assert!(detail.contains(&format!(
        r#"<form id="connection-form" method="post" action="/connections/{id}""#
    )));
    assert!(tag_with_id(&detail, "name").contains(r#"value="keep""#));
    assert!(
        !tag_with_id(&detail, "api_key").contains("value="),
        "the key field is empty"
    );
    assert!(detail.contains("sk-…x7Qa"));
    assert!(detail.contains("user-of-it"), "its configurations are named: {detail}");

    let response = post(
        &browser,
        &format!("/connections/{id}"),
        &[
            ("name", "kept"),
            ("provider", "openai"),
            ("api_key", ""),
            ("base_url", ""),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/connections");
    let now = connection(&app, &user.token, &id).await;
    assert_eq!(now["name"], "kept");
    assert_eq!(now["api_key_masked"], "sk-…x7Qa");
    assert_eq!(
        app.stored_ciphertext(&configuration).await,
        ciphertext,
        "the stored key is untouched"
    );

    // A new base URL without the key is refused beside the key field, and nothing changes.
    let response = post(
        &browser,
        &format!("/connections/{id}"),
        &[
            ("name", "kept"),
            ("provider", "openai"),
            ("api_key", ""),
            ("base_url", "https://proxy.example.com/v1"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        tag_with_id(&html, "api_key").contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert_eq!(connection(&app, &user.token, &id).await["base_url"], Value::Null);

    // A new key reaches the connection (and so every configuration of it).
    let response = post(
        &browser,
        &format!("/connections/{id}"),
        &[
            ("name", "kept"),
            ("provider", "openai"),
            ("api_key", "sk-rotated-key-0000NEW1"),
            ("base_url", ""),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(connection(&app, &user.token, &id).await["api_key_masked"], "sk-…NEW1");
    let fetched: Value = app
        .get(&format!("{CONFIGURATIONS}/{}", configuration.id), &user.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["api_key_masked"], "sk-…NEW1");
}

async fn deleting_a_connection_is_refused_naming_its_configurations_while_they_use_it(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let used = create_connection(
        &app,
        &user.token,
        openai_connection("in-use", "sk-in-use-key-000001", None),
    )
    .await;
    let spare = create_connection(
        &app,
        &user.token,
        openai_connection("spare", "sk-spare-key-0000002", None),
    )
    .await;
    let alpha = create_on(&app, &user.token, "alpha", &used, "gpt-4o").await;
    let beta = create_on(&app, &user.token, "beta", &used, "gpt-4o").await;
    let delete = |connection: &Value| format!("/connections/{}/delete", id_str(connection));

    for htmx in [false, true] {
        let response = post(&browser, &delete(&used), &[], htmx).await;
        assert_eq!(response.status(), 409);
        let html = response.text().await.unwrap();
        assert_eq!(is_fragment(&html), htmx, "{html}");
        let notice = &html[html.find("error-message").expect("the refusal is shown")..];
        assert!(notice.contains("alpha") && notice.contains("beta"), "{notice}");
        assert!(
            connection_row(&html, &id_str(&used)).is_some(),
            "the connection stays listed"
        );
    }
    assert_eq!(list_connections(&app, &user.token).await.len(), 2);

    // Once its configurations are gone, it goes.
    for configuration in [&alpha, &beta] {
        let response = app
            .delete(&format!("{CONFIGURATIONS}/{}", configuration.id), &user.token)
            .await;
        assert_eq!(response.status(), 204);
    }
    let response = post(&browser, &delete(&used), &[], false).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/connections");
    let response = post(&browser, &delete(&spare), &[], true).await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(is_fragment(&fragment), "{fragment}");
    assert!(connection_row(&fragment, &id_str(&spare)).is_none());
    assert!(list_connections(&app, &user.token).await.is_empty());
}

async fn test_and_refresh_models_record_the_result_and_store_the_models(app: TestApp) {
    let provider = fake_openai().await;
    let (user, browser) = app.signed_in_user().await;
    let good = create_connection(
        &app,
        &user.token,
        openai_connection("good", GOOD_KEY, Some(&openai_base(&provider))),
    )
    .await;
    let id = id_str(&good);

    let response = post(&browser, &format!("/connections/{id}/test"), &[], true).await;
    assert_eq!(response.status(), 200);
    let row = response.text().await.unwrap();
    assert!(
        row.starts_with(&format!(r#"<tr id="connection-{id}""#)),
        "the row alone: {row}"
    );
    assert!(row.contains(r#"data-badge="status">OK"#), "{row}");
    assert!(row.contains("<span data-model-count>2</span>"), "{row}");
    let models: Value = app
        .get(&format!("{}/models", connection_path(&id)), &user.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(models["models"], json!([{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]));

    let response = post(&browser, &format!("/connections/{id}/test"), &[], false).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/connections");

    let response = post(&browser, &format!("/connections/{id}/models/refresh"), &[], true).await;
    assert_eq!(response.status(), 200);
    let row = response.text().await.unwrap();
    assert!(row.starts_with(&format!(r#"<tr id="connection-{id}""#)), "{row}");
    assert!(row.contains("<span data-model-count>2</span>"), "{row}");
    let response = post(&browser, &format!("/connections/{id}/models/refresh"), &[], false).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/connections");

    let detail = browser.page(&format!("/connections/{id}")).await;
    assert!(detail.contains("<li><code>gpt-4o</code></li>"), "{detail}");
    assert!(detail.contains("<li><code>gpt-4o-mini</code></li>"), "{detail}");

    // A rejected key: Failed, said in the row, never the provider's words.
    let bad = create_connection(
        &app,
        &user.token,
        openai_connection("bad", "sk-rejected-key-00001", Some(&openai_base(&provider))),
    )
    .await;
    let response = post(&browser, &format!("/connections/{}/test", id_str(&bad)), &[], true).await;
    assert_eq!(response.status(), 200);
    let row = response.text().await.unwrap();
    assert!(row.contains(r#"data-badge="status">Failed"#), "{row}");
    assert!(row.contains("rejected the API key"), "{row}");
    assert!(!row.contains(PROVIDER_SECRET));
    let response = post(
        &browser,
        &format!("/connections/{}/models/refresh", id_str(&bad)),
        &[],
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    let row = response.text().await.unwrap();
    assert!(row.contains("Models not refreshed"), "{row}");
    assert!(row.contains("<span data-model-count>0</span>"), "{row}");
}

async fn the_configuration_form_offers_the_connections_models_in_a_datalist_without_javascript(app: TestApp) {
    let provider = fake_openai().await;
    let (user, browser) = app.signed_in_user().await;
    let listed = create_connection(
        &app,
        &user.token,
        openai_connection("listed", GOOD_KEY, Some(&openai_base(&provider))),
    )
    .await;
    let untested = create_connection(
        &app,
        &user.token,
        openai_connection("untested", "sk-untested-key-0001", None),
    )
    .await;
    let id = id_str(&listed);
    let response = post(&browser, &format!("/connections/{id}/test"), &[], false).await;
    assert_eq!(response.status(), 303);

    let page = browser
        .page(&format!("/llm-configurations/new?connection_id={id}"))
        .await;
    assert!(page.contains("<html"));
    let picker = &page[page.find(r#"<select id="connection_id""#).unwrap()..];
    let picker = &picker[..picker.find("</select>").unwrap()];
    assert!(
        picker.contains(&format!(r#"<option value="{id}" selected>listed (OpenAI)</option>"#)),
        "{picker}"
    );
    assert!(
        picker.contains(&format!(
            r#"<option value="{}">untested (OpenAI)</option>"#,
            id_str(&untested)
        )),
        "{picker}"
    );
    assert!(picker.contains(r#"<option value="new">"#), "{picker}");
    assert!(tag_with_id(&page, "model").contains(r#"list="model-suggestions""#));
    assert_eq!(suggestions(&page), ["gpt-4o", "gpt-4o-mini"]);
    // The new connection's fields are there without JavaScript (used only for "new").
    for field in ["provider", "api_key", "base_url"] {
        tag_with_id(&page, field);
    }

    // Without a preselection the form starts on a new connection, with nothing to suggest.
    let page = browser.page("/llm-configurations/new").await;
    assert!(page.contains(r#"<option value="new" selected>"#), "{page}");
    assert!(suggestions(&page).is_empty());

    // The edit form of a configuration on it offers the same list.
    let configuration = create_on(&app, &user.token, "writer", &listed, "gpt-4o").await;
    let edit = browser
        .page(&format!("/llm-configurations/{}/edit", configuration.id))
        .await;
    assert!(edit.contains(&format!(r#"<option value="{id}" selected>"#)), "{edit}");
    assert_eq!(suggestions(&edit), ["gpt-4o", "gpt-4o-mini"]);
    // And the management table names the connection in its Connection column.
    let table = browser.page("/llm-configurations").await;
    let row = crate::helpers::pages::row_of(&table, configuration.id).unwrap();
    assert!(
        row.contains(r#"<span class="connection-name clip" title="listed">listed</span>"#),
        "{row}"
    );
    assert!(row.contains(&format!(r#"title="{}""#, openai_base(&provider))), "{row}");
}

async fn the_models_fragment_is_the_datalist_of_the_picked_connection(app: TestApp) {
    let provider = fake_openai().await;
    let (user, browser) = app.signed_in_user().await;
    let listed = create_connection(
        &app,
        &user.token,
        openai_connection("listed", GOOD_KEY, Some(&openai_base(&provider))),
    )
    .await;
    let id = id_str(&listed);
    assert_eq!(
        post(&browser, &format!("/connections/{id}/test"), &[], false)
            .await
            .status(),
        303
    );

    let response = browser
        .get_htmx(&format!("/llm-configurations/models?connection_id={id}"))
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(is_fragment(&fragment), "{fragment}");
    assert!(
        fragment
            .trim_start()
            .starts_with(r#"<datalist id="model-suggestions">"#),
        "{fragment}"
    );
    assert_eq!(suggestions(&fragment), ["gpt-4o", "gpt-4o-mini"]);

    let response = browser.get_htmx("/llm-configurations/models?connection_id=new").await;
    assert_eq!(response.status(), 200);
    assert!(suggestions(&response.text().await.unwrap()).is_empty());

    // The picker asks for it when it changes, into the datalist, and sends nothing but its value.
    let page = browser.page("/llm-configurations/new").await;
    let select = tag_with_id(&page, "connection_id");
    assert!(select.contains(r#"hx-get="/llm-configurations/models""#), "{select}");
    assert!(select.contains(r##"hx-target="#model-suggestions""##), "{select}");
}

async fn someone_elses_connection_is_not_found_on_every_route(app: TestApp) {
    let owner = app.user().await;
    let theirs = create_connection(
        &app,
        &owner.token,
        openai_connection("theirs", "sk-theirs-key-000001", None),
    )
    .await;
    let id = id_str(&theirs);
    let (stranger, browser) = app.signed_in_user().await;
    let missing = uuid::Uuid::new_v4().to_string();

    for id in [id.as_str(), missing.as_str(), "not-a-uuid"] {
        for path in [
            format!("/connections/{id}"),
            format!("/llm-configurations/new?connection_id={id}"),
            format!("/llm-configurations/models?connection_id={id}"),
        ] {
            let response = browser.get(&path).await;
            assert_eq!(response.status(), 404, "GET {path}");
            let response = browser.get_htmx(&path).await;
            assert_eq!(response.status(), 404, "htmx GET {path}");
        }
        for (path, fields) in [
            (
                format!("/connections/{id}"),
                vec![
                    ("name", "taken"),
                    ("provider", "openai"),
                    ("api_key", "sk-stolen-key-0000001"),
                    ("base_url", ""),
                ],
            ),
            (format!("/connections/{id}/delete"), vec![]),
            (format!("/connections/{id}/test"), vec![]),
            (format!("/connections/{id}/models/refresh"), vec![]),
        ] {
            for htmx in [false, true] {
                let response = post(&browser, &path, &fields, htmx).await;
                assert_eq!(response.status(), 404, "POST {path} (htmx {htmx})");
            }
        }
    }
    // The configuration form refuses it beside the picker, and creates nothing.
    let response = post(
        &browser,
        "/llm-configurations",
        &[
            ("name", "borrowed"),
            ("connection_id", &id),
            ("model", "gpt-4o"),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        tag_with_id(&html, "connection_id").contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains(r#"id="connection_id-error""#));
    assert!(
        !html.contains(&format!(r#"<option value="{id}""#)),
        "only the user's own are offered"
    );
    assert!(app.configurations(&stranger.token).await.is_empty());

    let unchanged = connection(&app, &owner.token, &id).await;
    assert_eq!(unchanged["name"], "theirs");
    assert_eq!(unchanged["api_key_masked"], theirs["api_key_masked"]);
    assert_eq!(unchanged["test_status"], "untested");
}

async fn the_configuration_form_creates_on_a_picked_connection_and_the_old_way_still_works(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let team = create_connection(
        &app,
        &user.token,
        openai_connection("team", "sk-team-key-00000001", None),
    )
    .await;

    // On a picked connection: provider, key and base URL in the same form are not used.
    let response = post(
        &browser,
        "/llm-configurations",
        &[
            ("name", "on-team"),
            ("connection_id", &id_str(&team)),
            ("model", "gpt-4o"),
            ("provider", "anthropic"),
            ("api_key", ""),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/llm-configurations");
    let created = app.configurations(&user.token).await;
    assert_eq!(created[0].name, "on-team");
    assert_eq!(json!(created[0].connection_id), team["id"]);
    assert_eq!(created[0].provider, "openai");
    assert_eq!(
        list_connections(&app, &user.token).await.len(),
        1,
        "no connection was added"
    );

    // "A new connection": the form's provider and key make one of its own (htmx: the table).
    let response = post(
        &browser,
        "/llm-configurations",
        &[
            ("name", "own-key"),
            ("connection_id", "new"),
            ("model", "claude-sonnet-4-5"),
            ("provider", "anthropic"),
            ("api_key", "sk-ant-own-key-0123456789-0001"),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(is_fragment(&response.text().await.unwrap()));
    // And the old way (no picker at all) still does the same.
    let response = post(
        &browser,
        "/llm-configurations",
        &[
            ("name", "old-way"),
            ("model", "gpt-4o"),
            ("provider", "openai"),
            ("api_key", "sk-old-way-key-000001"),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303);
    let connections = list_connections(&app, &user.token).await;
    let names: Vec<&str> = connections.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["old-way", "own-key", "team"]);
    assert_eq!(connections[1]["provider"], "anthropic");
    assert_eq!(connections[1]["api_key_masked"], "sk-ant-…0001");

    // "A new connection" without the key its provider needs: the error sits beside the key.
    let response = post(
        &browser,
        "/llm-configurations",
        &[
            ("name", "keyless"),
            ("connection_id", "new"),
            ("model", "gpt-4o"),
            ("provider", "openai"),
            ("api_key", ""),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        tag_with_id(&html, "api_key").contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<option value="new" selected>"#),
        "the choice is kept: {html}"
    );
    assert_eq!(app.configurations(&user.token).await.len(), 3);
}

async fn an_edit_moves_a_configuration_to_another_connection_or_onto_a_new_one(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = create_connection(
        &app,
        &user.token,
        openai_connection("first", "sk-first-key-0000001", None),
    )
    .await;
    let second = create_connection(
        &app,
        &user.token,
        openai_connection("second", "sk-second-key-000002", None),
    )
    .await;
    let configuration = create_on(&app, &user.token, "mover", &first, "gpt-4o").await;
    let _sharer = create_on(&app, &user.token, "sharer", &first, "gpt-4o").await;
    let path = format!("/llm-configurations/{}", configuration.id);
    let fetch = async || -> Value {
        app.get(&format!("{CONFIGURATIONS}/{}", configuration.id), &user.token)
            .await
            .json()
            .await
            .unwrap()
    };

    // On its own, shared connection: a new key there is refused beside the key field.
    let response = post(
        &browser,
        &path,
        &[
            ("name", "mover"),
            ("connection_id", &id_str(&first)),
            ("model", "gpt-4o"),
            ("provider", "openai"),
            ("api_key", "sk-sneaky-new-key-0001"),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        tag_with_id(&html, "api_key").contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains("change the connection instead"), "{html}");
    assert_eq!(
        connection(&app, &user.token, &id_str(&first)).await["api_key_masked"],
        first["api_key_masked"]
    );

    // Another connection: it moves.
    let response = post(
        &browser,
        &path,
        &[
            ("name", "mover"),
            ("connection_id", &id_str(&second)),
            ("model", "gpt-4.1"),
            ("provider", "openai"),
            ("api_key", ""),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let moved = fetch().await;
    assert_eq!(moved["connection_id"], second["id"]);
    assert_eq!(moved["model"], "gpt-4.1");
    assert_eq!(moved["api_key_masked"], second["api_key_masked"]);

    // A new connection from the form: one of its own, with the form's key.
    let response = post(
        &browser,
        &path,
        &[
            ("name", "mover"),
            ("connection_id", "new"),
            ("model", "gpt-4.1"),
            ("provider", "openai"),
            ("api_key", "sk-mover-own-key-00NEW"),
            ("base_url", ""),
            ("is_active", "true"),
        ],
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    let own = fetch().await;
    assert_ne!(own["connection_id"], second["id"]);
    assert_ne!(own["connection_id"], first["id"]);
    assert_eq!(own["api_key_masked"], "sk-…0NEW");
    let connections = list_connections(&app, &user.token).await;
    assert_eq!(connections.len(), 3, "first, second and the new one");
    assert!(connections.iter().any(|c| c["id"] == own["connection_id"]));

    // A picker value that names nothing is an error beside the picker.
    let response = post(
        &browser,
        &path,
        &[("name", "mover"), ("connection_id", "nonsense"), ("model", "gpt-4.1")],
        false,
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        tag_with_id(&html, "connection_id").contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert_eq!(fetch().await["connection_id"], own["connection_id"]);
}
