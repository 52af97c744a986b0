//! The connection pages: `/connections` (list, add, edit with an empty key keeping it, delete
//! refused while in use, Test and Refresh models against a fake provider), a connection's own
//! page, the configuration form's connection picker and its model `<datalist>` (JavaScript off)
//! and the fragment htmx swaps in; someone else's connection is a 404 on every route.

use serde_json::json;

use crate::helpers::connections::{
    Connection, create_connection, create_connection_to, create_on, create_openai_connection, fetch_connection,
    list_connections, models_of, openai_connection,
};
use crate::helpers::pages::{assert_marked_invalid, is_fragment, row_with_id, tag_with_id};
use crate::helpers::providers::{PROVIDER_SECRET, fake_openai, loopback_allowed, openai_base};
use crate::helpers::{TestApp, location};
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

/// The `<tr>` of a connection in a page or fragment, if it is there.
fn connection_row(html: &str, id: uuid::Uuid) -> Option<&str> {
    row_with_id(html, &format!("connection-{id}"))
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

/// The fields of the connection form for an OpenAI connection.
fn connection_form<'a>(name: &'a str, api_key: &'a str, base_url: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("name", name),
        ("provider", "openai"),
        ("api_key", api_key),
        ("base_url", base_url),
    ]
}

/// The fields of the configuration form: on `connection_id` (`"new"` for one of its own, `None`
/// for the form without the picker), with the new connection's provider and key.
fn configuration_form<'a>(
    name: &'a str,
    connection_id: Option<&'a str>,
    model: &'a str,
    provider: &'a str,
    api_key: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut fields = vec![("name", name)];
    fields.extend(connection_id.map(|id| ("connection_id", id)));
    fields.extend([
        ("model", model),
        ("provider", provider),
        ("api_key", api_key),
        ("base_url", ""),
        ("is_active", "true"),
    ]);
    fields
}

async fn the_connections_page_lists_each_connection_with_its_mask_status_and_counts(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let shared = create_openai_connection(&app, &user.token, "team-openai", "sk-team-key-0123456789x7Qa").await;
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
    let row = connection_row(&page, shared.id).expect("the shared connection's row");
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
    let idle_row = connection_row(&page, idle.id).expect("the idle connection's row");
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
    assert_eq!(
        browser
            .form_redirect("/connections", &connection_form("plain", "sk-plain-form-key-0001", ""))
            .await,
        "/connections"
    );

    let fragment = browser
        .form_answer(
            "/connections",
            &connection_form("with-htmx", "sk-htmx-form-key-0002", ""),
            true,
            200,
        )
        .await;
    assert!(is_fragment(&fragment), "{fragment}");
    let listed = list_connections(&app, &user.token).await;
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["plain", "with-htmx"]);
    assert_eq!(listed[1].api_key_masked.as_deref(), Some("sk-…0002"));
    assert!(connection_row(&fragment, listed[1].id).is_some(), "{fragment}");
    assert!(!fragment.contains("sk-htmx-form-key-0002"));

    for htmx in [false, true] {
        let html = browser
            .form_answer(
                "/connections",
                &connection_form("", "sk-…masked", "ftp://nowhere"),
                htmx,
                422,
            )
            .await;
        assert_eq!(is_fragment(&html), htmx, "{html}");
        for field in ["name", "api_key", "base_url"] {
            assert_marked_invalid(&html, field);
            let error = html.find(&format!(r#"id="{field}-error""#)).unwrap();
            assert!(html.find(&format!(r#"id="{field}""#)).unwrap() < error, "{field}");
        }
        assert!(!tag_with_id(&html, "provider").contains("aria-invalid"));
        assert!(tag_with_id(&html, "base_url").contains(r#"value="ftp://nowhere""#));
        assert!(!html.contains("sk-…masked"), "the key never comes back");
    }
    // A name taken (ignoring case) is an error beside the name.
    let html = browser
        .form_answer(
            "/connections",
            &connection_form("PLAIN", "sk-another-key-00003", ""),
            false,
            422,
        )
        .await;
    assert!(html.contains(r#"id="name-error""#), "{html}");
    assert_eq!(
        list_connections(&app, &user.token).await.len(),
        2,
        "nothing more was created"
    );
}

async fn an_update_with_an_empty_key_keeps_the_stored_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let created = create_openai_connection(&app, &user.token, "keep", "sk-keep-this-key-x7Qa").await;
    let id = created.id.to_string();
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

    assert_eq!(
        browser
            .form_redirect(&format!("/connections/{id}"), &connection_form("kept", "", ""))
            .await,
        "/connections"
    );
    let now = fetch_connection(&app, &user.token, created.id).await;
    assert_eq!(now.name, "kept");
    assert_eq!(now.api_key_masked.as_deref(), Some("sk-…x7Qa"));
    assert_eq!(
        app.stored_ciphertext(&configuration).await,
        ciphertext,
        "the stored key is untouched"
    );

    // A new base URL without the key is refused beside the key field, and nothing changes.
    let html = browser
        .form_answer(
            &format!("/connections/{id}"),
            &connection_form("kept", "", "https://proxy.example.com/v1"),
            false,
            422,
        )
        .await;
    assert_marked_invalid(&html, "api_key");
    assert_eq!(fetch_connection(&app, &user.token, created.id).await.base_url, None);

    // A new key reaches the connection (and so every configuration of it).
    browser
        .form_redirect(
            &format!("/connections/{id}"),
            &connection_form("kept", "sk-rotated-key-0000NEW1", ""),
        )
        .await;
    assert_eq!(
        fetch_connection(&app, &user.token, created.id)
            .await
            .api_key_masked
            .as_deref(),
        Some("sk-…NEW1")
    );
    let fetched = app.refetch(&user.token, &configuration).await;
    assert_eq!(fetched.api_key_masked.as_deref(), Some("sk-…NEW1"));
}

async fn deleting_a_connection_is_refused_naming_its_configurations_while_they_use_it(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let used = create_openai_connection(&app, &user.token, "in-use", "sk-in-use-key-000001").await;
    let spare = create_openai_connection(&app, &user.token, "spare", "sk-spare-key-0000002").await;
    let alpha = create_on(&app, &user.token, "alpha", &used, "gpt-4o").await;
    let beta = create_on(&app, &user.token, "beta", &used, "gpt-4o").await;
    let delete = |connection: &Connection| connection.page("/delete");

    for htmx in [false, true] {
        let html = browser.form_answer(&delete(&used), &[], htmx, 409).await;
        assert_eq!(is_fragment(&html), htmx, "{html}");
        let notice = &html[html.find("error-message").expect("the refusal is shown")..];
        assert!(notice.contains("alpha") && notice.contains("beta"), "{notice}");
        assert!(connection_row(&html, used.id).is_some(), "the connection stays listed");
    }
    assert_eq!(list_connections(&app, &user.token).await.len(), 2);

    // Once its configurations are gone, it goes.
    for configuration in [&alpha, &beta] {
        let response = app.delete(&configuration.path(), &user.token).await;
        assert_eq!(response.status(), 204);
    }
    assert_eq!(browser.form_redirect(&delete(&used), &[]).await, "/connections");
    let fragment = browser.form_answer(&delete(&spare), &[], true, 200).await;
    assert!(is_fragment(&fragment), "{fragment}");
    assert!(connection_row(&fragment, spare.id).is_none());
    assert!(list_connections(&app, &user.token).await.is_empty());
}

async fn test_and_refresh_models_record_the_result_and_store_the_models(app: TestApp) {
    let provider = fake_openai().await;
    let (user, browser) = app.signed_in_user().await;
    let good = create_connection_to(&app, &user.token, "good", &provider).await;
    let id = good.id.to_string();

    let row = browser
        .form_answer(&format!("/connections/{id}/test"), &[], true, 200)
        .await;
    assert!(
        row.starts_with(&format!(r#"<tr id="connection-{id}""#)),
        "the row alone: {row}"
    );
    assert!(row.contains(r#"data-badge="status">OK"#), "{row}");
    assert!(row.contains("<span data-model-count>2</span>"), "{row}");
    let models = models_of(&app, &user.token, &good).await;
    assert_eq!(models["models"], json!([{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]));

    assert_eq!(
        browser.form_redirect(&format!("/connections/{id}/test"), &[]).await,
        "/connections"
    );

    let row = browser
        .form_answer(&format!("/connections/{id}/models/refresh"), &[], true, 200)
        .await;
    assert!(row.starts_with(&format!(r#"<tr id="connection-{id}""#)), "{row}");
    assert!(row.contains("<span data-model-count>2</span>"), "{row}");
    assert_eq!(
        browser
            .form_redirect(&format!("/connections/{id}/models/refresh"), &[])
            .await,
        "/connections"
    );

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
    let row = browser.form_answer(&bad.page("/test"), &[], true, 200).await;
    assert!(row.contains(r#"data-badge="status">Failed"#), "{row}");
    assert!(row.contains("rejected the API key"), "{row}");
    assert!(!row.contains(PROVIDER_SECRET));
    let row = browser.form_answer(&bad.page("/models/refresh"), &[], true, 200).await;
    assert!(row.contains("Models not refreshed"), "{row}");
    assert!(row.contains("<span data-model-count>0</span>"), "{row}");
}

async fn the_configuration_form_offers_the_connections_models_in_a_datalist_without_javascript(app: TestApp) {
    let provider = fake_openai().await;
    let (user, browser) = app.signed_in_user().await;
    let listed = create_connection_to(&app, &user.token, "listed", &provider).await;
    let untested = create_openai_connection(&app, &user.token, "untested", "sk-untested-key-0001").await;
    let id = listed.id.to_string();
    browser.form_redirect(&format!("/connections/{id}/test"), &[]).await;

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
            untested.id
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
    let listed = create_connection_to(&app, &user.token, "listed", &provider).await;
    let id = listed.id.to_string();
    browser.form_redirect(&format!("/connections/{id}/test"), &[]).await;

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
    let theirs = create_openai_connection(&app, &owner.token, "theirs", "sk-theirs-key-000001").await;
    let id = theirs.id.to_string();
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
                connection_form("taken", "sk-stolen-key-0000001", "").to_vec(),
            ),
            (format!("/connections/{id}/delete"), vec![]),
            (format!("/connections/{id}/test"), vec![]),
            (format!("/connections/{id}/models/refresh"), vec![]),
        ] {
            for htmx in [false, true] {
                browser.form_answer(&path, &fields, htmx, 404).await;
            }
        }
    }
    // The configuration form refuses it beside the picker, and creates nothing.
    let html = browser
        .form_answer(
            "/llm-configurations",
            &[
                ("name", "borrowed"),
                ("connection_id", &id),
                ("model", "gpt-4o"),
                ("is_active", "true"),
            ],
            false,
            422,
        )
        .await;
    assert_marked_invalid(&html, "connection_id");
    assert!(html.contains(r#"id="connection_id-error""#));
    assert!(
        !html.contains(&format!(r#"<option value="{id}""#)),
        "only the user's own are offered"
    );
    assert!(app.configurations(&stranger.token).await.is_empty());

    let unchanged = fetch_connection(&app, &owner.token, theirs.id).await;
    assert_eq!(unchanged.name, "theirs");
    assert_eq!(unchanged.api_key_masked, theirs.api_key_masked);
    assert_eq!(unchanged.test_status, "untested");
}

async fn the_configuration_form_creates_on_a_picked_connection_and_the_old_way_still_works(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let team = create_openai_connection(&app, &user.token, "team", "sk-team-key-00000001").await;

    // On a picked connection: provider, key and base URL in the same form are not used.
    assert_eq!(
        browser
            .form_redirect(
                "/llm-configurations",
                &configuration_form("on-team", Some(&team.id.to_string()), "gpt-4o", "anthropic", "")
            )
            .await,
        "/llm-configurations"
    );
    let created = app.configurations(&user.token).await;
    assert_eq!(created[0].name, "on-team");
    assert_eq!(created[0].connection_id, team.id);
    assert_eq!(created[0].provider, "openai");
    assert_eq!(
        list_connections(&app, &user.token).await.len(),
        1,
        "no connection was added"
    );

    // "A new connection": the form's provider and key make one of its own (htmx: the table).
    let own_key = configuration_form(
        "own-key",
        Some("new"),
        "claude-sonnet-4-5",
        "anthropic",
        "sk-ant-own-key-0123456789-0001",
    );
    let table = browser.form_answer("/llm-configurations", &own_key, true, 200).await;
    assert!(is_fragment(&table));
    // And the old way (no picker at all) still does the same.
    let old_way = configuration_form("old-way", None, "gpt-4o", "openai", "sk-old-way-key-000001");
    browser.form_redirect("/llm-configurations", &old_way).await;
    let connections = list_connections(&app, &user.token).await;
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["old-way", "own-key", "team"]);
    assert_eq!(connections[1].provider, "anthropic");
    assert_eq!(connections[1].api_key_masked.as_deref(), Some("sk-ant-…0001"));

    // "A new connection" without the key its provider needs: the error sits beside the key.
    let keyless = configuration_form("keyless", Some("new"), "gpt-4o", "openai", "");
    let html = browser.form_answer("/llm-configurations", &keyless, false, 422).await;
    assert_marked_invalid(&html, "api_key");
    assert!(
        html.contains(r#"<option value="new" selected>"#),
        "the choice is kept: {html}"
    );
    assert_eq!(app.configurations(&user.token).await.len(), 3);
}

async fn an_edit_moves_a_configuration_to_another_connection_or_onto_a_new_one(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = create_openai_connection(&app, &user.token, "first", "sk-first-key-0000001").await;
    let second = create_openai_connection(&app, &user.token, "second", "sk-second-key-000002").await;
    let configuration = create_on(&app, &user.token, "mover", &first, "gpt-4o").await;
    let _sharer = create_on(&app, &user.token, "sharer", &first, "gpt-4o").await;
    let path = format!("/llm-configurations/{}", configuration.id);

    // On its own, shared connection: a new key there is refused beside the key field.
    let first_id = first.id.to_string();
    let sneaky = configuration_form("mover", Some(&first_id), "gpt-4o", "openai", "sk-sneaky-new-key-0001");
    let html = browser.form_answer(&path, &sneaky, false, 422).await;
    assert_marked_invalid(&html, "api_key");
    assert!(html.contains("change the connection instead"), "{html}");
    assert_eq!(
        fetch_connection(&app, &user.token, first.id).await.api_key_masked,
        first.api_key_masked
    );

    // Another connection: it moves.
    let second_id = second.id.to_string();
    let onto_second = configuration_form("mover", Some(&second_id), "gpt-4.1", "openai", "");
    browser.form_redirect(&path, &onto_second).await;
    let moved = app.refetch(&user.token, &configuration).await;
    assert_eq!(moved.connection_id, second.id);
    assert_eq!(moved.model, "gpt-4.1");
    assert_eq!(moved.api_key_masked, second.api_key_masked);

    // A new connection from the form: one of its own, with the form's key.
    let own_key = configuration_form("mover", Some("new"), "gpt-4.1", "openai", "sk-mover-own-key-00NEW");
    browser.form_answer(&path, &own_key, true, 200).await;
    let own = app.refetch(&user.token, &configuration).await;
    assert_ne!(own.connection_id, second.id);
    assert_ne!(own.connection_id, first.id);
    assert_eq!(own.api_key_masked.as_deref(), Some("sk-…0NEW"));
    let connections = list_connections(&app, &user.token).await;
    assert_eq!(connections.len(), 3, "first, second and the new one");
    assert!(connections.iter().any(|c| c.id == own.connection_id));

    // A picker value that names nothing is an error beside the picker.
    let nonsense = [("name", "mover"), ("connection_id", "nonsense"), ("model", "gpt-4.1")];
    let html = browser.form_answer(&path, &nonsense, false, 422).await;
    assert_marked_invalid(&html, "connection_id");
    assert_eq!(
        app.refetch(&user.token, &configuration).await.connection_id,
        own.connection_id
    );
}
