//! `/api/llm-configurations`: creating, reading, updating and deleting configurations, and the
//! rules every field of their input follows (names, providers, models, keys, base URLs).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::configurations::{
    CONFIGURATIONS, Configuration, DEFAULT_CONFIGURATION, compatible, expect_json, openai, openai_with_key, with,
};
use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    creating_a_configuration_returns_it_masked_with_its_location,
    the_listing_shows_every_change_at_once_wherever_it_was_made,
    the_first_configuration_becomes_the_default,
    a_missing_or_null_api_key_on_update_keeps_the_stored_key,
    another_users_configuration_is_the_same_404_as_a_missing_one,
    names_are_trimmed_and_hold_1_to_64_characters,
    names_with_control_characters_are_refused,
    a_name_already_used_ignoring_case_is_a_conflict_on_name,
    providers_outside_the_catalogue_are_refused,
    models_are_trimmed_bounded_and_free_of_inner_whitespace,
    api_keys_hold_8_to_4096_characters_without_whitespace,
    a_missing_api_key_is_refused_where_the_provider_needs_one,
    a_masked_looking_key_is_refused_on_create,
    a_masked_looking_key_is_refused_on_update_and_the_stored_key_is_kept,
    base_urls_must_use_https,
    base_urls_with_user_info_or_a_fragment_are_refused,
    base_urls_hold_at_most_2048_characters,
    providers_without_a_default_base_url_require_one,
    a_base_url_equal_to_the_provider_default_is_stored_as_null,
    fields_of_the_wrong_json_type_are_named,
    a_body_that_is_not_a_json_object_is_refused,
    unknown_and_read_only_fields_are_each_named_on_create,
    unknown_and_read_only_fields_are_each_named_on_update,
    several_bad_fields_are_reported_together,
    a_default_cannot_be_inactive,
    changing_the_base_url_of_a_keyed_configuration_requires_the_key,
    changing_the_provider_of_a_keyed_configuration_requires_the_key,
    an_empty_api_key_removes_the_key_only_where_the_provider_needs_none,
    ollama_takes_no_api_key,
);

async fn creating_a_configuration_returns_it_masked_with_its_location(app: TestApp) {
    let user = app.user().await;
    let response = app
        .post_json(
            "/api/llm-configurations",
            &user.token,
            &json!({"name": "work-gpt", "provider": "openai", "model": "gpt-4o", "api_key": "sk-abcdefghijklmnopx7Qa"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/llm-configurations/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["name"], "work-gpt");
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["api_key_masked"], "sk-…x7Qa");
    assert_eq!(body["has_api_key"], true);
    assert_eq!(body["base_url"], Value::Null);
    assert_eq!(body["test_status"], "untested");
    assert_eq!(body["use_count"], 0);
    assert!(!body.to_string().contains("abcdefghijklmnop"));

    let fetched: Value = app.get(&location, &user.token).await.json().await.unwrap();
    assert_eq!(fetched, body);
}

async fn the_first_configuration_becomes_the_default(app: TestApp) {
    let user = app.user().await;
    assert_error(app.get(DEFAULT_CONFIGURATION, &user.token).await, 404, "not_found").await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-0001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-0002").await;
    assert!(first.is_default);
    assert!(!second.is_default);
    let default: Configuration = expect_json(app.get(DEFAULT_CONFIGURATION, &user.token).await, 200, "default").await;
    assert_eq!(default.id, first.id);
}

async fn a_missing_or_null_api_key_on_update_keeps_the_stored_key(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "keep", "sk-keep-this-key-x7Qa").await;
    let renamed = app
        .update_configuration(&user.token, &created, json!({"name": "kept", "api_key": null}))
        .await;
    assert_eq!(renamed.name, "kept");
    assert_eq!(renamed.api_key_masked.as_deref(), Some("sk-…x7Qa"));
    assert!(renamed.has_api_key);
}

async fn another_users_configuration_is_the_same_404_as_a_missing_one(app: TestApp) {
    let owner = app.user().await;
    let intruder = app.user().await;
    let created = app.create_openai(&owner.token, "mine", "sk-owner-key-000001").await;
    let theirs = created.path();
    let missing = format!("/api/llm-configurations/{}", uuid::Uuid::new_v4());
    for path in [&theirs, &missing] {
        let get = assert_error(app.get(path, &intruder.token).await, 404, "not_found").await;
        let put = assert_error(
            app.put_json(path, &intruder.token, &json!({"name": "x"})).await,
            404,
            "not_found",
        )
        .await;
        let delete = assert_error(app.delete(path, &intruder.token).await, 404, "not_found").await;
        let set_default = assert_error(
            app.put_json(&format!("{path}/set-default"), &intruder.token, &json!({}))
                .await,
            404,
            "not_found",
        )
        .await;
        assert_eq!(get, put);
        assert_eq!(get, delete);
        assert_eq!(get, set_default);
    }
    assert_eq!(app.configurations(&owner.token).await.len(), 1);
}

/// The field names of a validation error.
fn fields_of(body: &Value) -> BTreeSet<String> {
    body["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

/// Asserts a 422 `validation_failed` whose `fields` name exactly `expected`, each with a message.
async fn assert_invalid(response: reqwest::Response, expected: &[&str]) -> Value {
    let body = assert_error(response, 422, "validation_failed").await;
    let expected: BTreeSet<String> = expected.iter().map(|field| (*field).to_owned()).collect();
    assert_eq!(fields_of(&body), expected, "fields named: {body}");
    for field in &expected {
        assert!(
            body["fields"][field]
                .as_array()
                .is_some_and(|messages| !messages.is_empty() && messages.iter().all(Value::is_string)),
            "no message for {field}: {body}"
        );
    }
    body
}

/// Posts `body` and asserts it is refused on exactly `fields`.
async fn assert_create_refused(app: &TestApp, token: &str, body: Value, fields: &[&str]) {
    let response = app.post_json(CONFIGURATIONS, token, &body).await;
    assert_invalid(response, fields).await;
}

/// Posts `template` with `field` set to each of `values` in turn, asserts each is refused on
/// that field alone.
async fn assert_each_refused_on_create(app: &TestApp, token: &str, template: Value, field: &str, values: &[Value]) {
    for value in values {
        assert_create_refused(app, token, with(template.clone(), field, value.clone()), &[field]).await;
    }
}

/// `assert_each_refused_on_create` for text values of `field` in an otherwise valid OpenAI
/// configuration; then nothing is stored.
async fn assert_each_text_refused_and_none_stored(app: &TestApp, token: &str, field: &str, values: &[&str]) {
    let values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    assert_each_refused_on_create(app, token, openai("refused"), field, &values).await;
    assert!(app.configurations(token).await.is_empty());
}

/// Puts `body` on `configuration`, asserts it is refused on exactly `fields`, and that the
/// configuration is as it was.
async fn assert_update_refused(
    app: &TestApp,
    token: &str,
    configuration: &Configuration,
    body: Value,
    fields: &[&str],
) {
    assert_invalid(app.put_json(&configuration.path(), token, &body).await, fields).await;
    assert_eq!(app.refetch(token, configuration).await, *configuration);
}

async fn names_are_trimmed_and_hold_1_to_64_characters(app: TestApp) {
    let user = app.user().await;
    let padded = app.create_configuration(&user.token, openai("  padded name \t")).await;
    assert_eq!(padded.name, "padded name");

    let longest = "é".repeat(64);
    let created = app.create_configuration(&user.token, openai(&longest)).await;
    assert_eq!(created.name, longest.as_str());

    for name in [String::new(), "   ".to_owned(), "x".repeat(65), "é".repeat(65)] {
        assert_create_refused(&app, &user.token, openai(&name), &["name"]).await;
    }
    let renamed = app.put_json(&padded.path(), &user.token, &json!({"name": "  "})).await;
    assert_invalid(renamed, &["name"]).await;

    let names = app.configuration_names(&user.token).await;
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"padded name".to_owned()));
}

async fn names_with_control_characters_are_refused(app: TestApp) {
    let user = app.user().await;
    let names = [
        "bad\u{7}name",
        "line\nbreak",
        "nul\u{0}byte",
        "del\u{7f}ete",
        "c1\u{85}control",
    ];
    assert_each_text_refused_and_none_stored(&app, &user.token, "name", &names).await;
}

async fn a_name_already_used_ignoring_case_is_a_conflict_on_name(app: TestApp) {
    let user = app.user().await;
    let work = app.create_configuration(&user.token, openai("Work GPT")).await;
    for name in ["Work GPT", "work gpt", "  WORK GPT  "] {
        let body = assert_error(
            app.post_json(CONFIGURATIONS, &user.token, &openai(name)).await,
            409,
            "conflict",
        )
        .await;
        assert_eq!(fields_of(&body), BTreeSet::from(["name".to_owned()]), "{body}");
    }

    let other = app.create_configuration(&user.token, openai("other")).await;
    let rename = app
        .put_json(&other.path(), &user.token, &json!({"name": "wORK gpt"}))
        .await;
    let body = assert_error(rename, 409, "conflict").await;
    assert!(body["fields"]["name"].is_array(), "{body}");
    assert_eq!(app.refetch(&user.token, &other).await.name, "other");

    // Renaming a configuration to its own name in another case is no conflict.
    app.update_configuration(&user.token, &work, json!({"name": "work GPT"}))
        .await;
    assert_eq!(app.refetch(&user.token, &work).await.name, "work GPT");

    // Names are unique per user, not across users.
    let someone_else = app.user().await;
    app.create_configuration(&someone_else.token, openai("Work GPT")).await;
    assert_eq!(app.configurations(&user.token).await.len(), 2);
}

async fn providers_outside_the_catalogue_are_refused(app: TestApp) {
    let user = app.user().await;
    let providers = ["OpenAI", "", "not-a-provider", "openai "];

    assert_each_refused_on_create(
        &app,
        &user.token,
        openai("p"),
        "provider",
        &providers.map(|provider| json!(provider)),
    )
    .await;
    let created = app.create_configuration(&user.token, openai("p")).await;
    assert_update_refused(
        &app,
        &user.token,
        &created,
        json!({"provider": "chatgpt"}),
        &["provider"],
    )
    .await;
    assert_eq!(app.configurations(&user.token).await.len(), 1);
}

async fn models_are_trimmed_bounded_and_free_of_inner_whitespace(app: TestApp) {
    let user = app.user().await;
    let trimmed = app
        .create_configuration(&user.token, with(openai("trimmed"), "model", json!("  gpt-4o-mini ")))
        .await;
    assert_eq!(trimmed.model, "gpt-4o-mini");
    let longest = "m".repeat(200);
    let created = app
        .create_configuration(&user.token, with(openai("longest"), "model", json!(longest)))
        .await;
    assert_eq!(created.model, longest.as_str());

    for model in [
        String::new(),
        "  ".to_owned(),
        "m".repeat(201),
        "gpt 4o".to_owned(),
        "gpt\t4o".to_owned(),
        "gpt\u{1}4o".to_owned(),
    ] {
        let body = with(openai("refused"), "model", json!(model));
        assert_create_refused(&app, &user.token, body, &["model"]).await;
    }
    assert_update_refused(&app, &user.token, &trimmed, json!({"model": "gpt 4o"}), &["model"]).await;
    assert_eq!(app.configurations(&user.token).await.len(), 2);
}

async fn api_keys_hold_8_to_4096_characters_without_whitespace(app: TestApp) {
    let user = app.user().await;
    let shortest = app
        .create_configuration(&user.token, with(openai("shortest"), "api_key", json!("sk-12345")))
        .await;
    assert!(shortest.has_api_key);
    let longest = format!("sk-{}", "k".repeat(4093));
    let created = app
        .create_configuration(&user.token, with(openai("longest"), "api_key", json!(longest)))
        .await;
    assert!(created.has_api_key);

    let refused_keys = [
        "sk-1234".to_owned(),
        format!("sk-{}", "k".repeat(4094)),
        "sk-with space-0123".to_owned(),
        "sk-with\ttab-0123".to_owned(),
        "sk-trailing-newline-0123\n".to_owned(),
        " sk-leading-space-0123".to_owned(),
        "sk-control\u{1b}-0123".to_owned(),
    ];
    for key in &refused_keys {
        let body = with(openai("refused"), "api_key", json!(key));
        assert_create_refused(&app, &user.token, body, &["api_key"]).await;
    }
    let ciphertext = app.stored_ciphertext(&shortest).await;
    for key in &refused_keys {
        assert_update_refused(&app, &user.token, &shortest, json!({"api_key": key}), &["api_key"]).await;
    }
    assert_eq!(app.stored_ciphertext(&shortest).await, ciphertext);
    assert_eq!(app.configurations(&user.token).await.len(), 2);
}

async fn a_missing_api_key_is_refused_where_the_provider_needs_one(app: TestApp) {
    let user = app.user().await;
    let mut missing = openai("keyless");
    missing.as_object_mut().unwrap().remove("api_key");
    assert_create_refused(&app, &user.token, missing.clone(), &["api_key"]).await;
    assert_each_refused_on_create(&app, &user.token, missing, "api_key", &[Value::Null, json!("")]).await;
    assert!(app.configurations(&user.token).await.is_empty());
}

async fn a_masked_looking_key_is_refused_on_create(app: TestApp) {
    let user = app.user().await;
    let keys = [
        "sk-…x7Qa",
        "sk-…x7Qa-and-more",
        "sk-***-0123456789",
        "••••••••",
        "sk-abc•def0123",
    ];
    assert_each_text_refused_and_none_stored(&app, &user.token, "api_key", &keys).await;
}

async fn a_masked_looking_key_is_refused_on_update_and_the_stored_key_is_kept(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "real", "sk-the-real-key-0000x7Qa").await;
    assert_eq!(created.api_key_masked.as_deref(), Some("sk-…x7Qa"));
    let ciphertext = app.stored_ciphertext(&created).await;
    assert!(ciphertext.is_some());

    let shown_mask = created.api_key_masked.clone().unwrap();
    for key in [
        shown_mask.as_str(),
        "sk-…x7Qa-and-more",
        "sk-***-0123456789",
        "••••••••••••",
    ] {
        let body = json!({"name": "renamed", "api_key": key});
        assert_update_refused(&app, &user.token, &created, body, &["api_key"]).await;
    }
    assert_eq!(app.stored_ciphertext(&created).await, ciphertext);
}

async fn base_urls_must_use_https(app: TestApp) {
    let user = app.user().await;
    let custom = |base_url: &str| json!({"name": "custom", "provider": "openai_compatible", "model": "llama3", "base_url": base_url});
    let created = app
        .create_configuration(&user.token, custom("https://llm.example.com/v1/"))
        .await;
    assert_eq!(created.base_url.as_deref(), Some("https://llm.example.com/v1"));

    // The test app's egress allow list is empty, so plain http is allowed for no host.
    for base_url in [
        "http://llm.example.com/v1",
        "http://127.0.0.1:11434",
        "ftp://llm.example.com",
        "llm.example.com/v1",
        "/v1",
        "https://",
    ] {
        assert_create_refused(&app, &user.token, custom(base_url), &["base_url"]).await;
    }
    let ollama =
        json!({"name": "local", "provider": "ollama", "model": "llama3", "base_url": "http://127.0.0.1:11434"});
    assert_create_refused(&app, &user.token, ollama, &["base_url"]).await;

    assert_update_refused(
        &app,
        &user.token,
        &created,
        json!({"base_url": "http://llm.example.com/v1"}),
        &["base_url"],
    )
    .await;
    assert_eq!(app.configurations(&user.token).await.len(), 1);
}

async fn base_urls_with_user_info_or_a_fragment_are_refused(app: TestApp) {
    let user = app.user().await;
    let user_info = [
        "https://user:secret@llm.example.com/v1",
        "https://user@llm.example.com/v1",
        "https://:secret@llm.example.com/v1",
    ];
    let fragments = ["https://llm.example.com/v1#fragment", "https://llm.example.com/v1#"];
    assert_each_text_refused_and_none_stored(&app, &user.token, "base_url", &[&user_info[..], &fragments].concat())
        .await;
}

async fn base_urls_hold_at_most_2048_characters(app: TestApp) {
    let user = app.user().await;
    let prefix = "https://llm.example.com/";
    let longest = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
    let created = app
        .create_configuration(&user.token, with(openai("long"), "base_url", json!(longest)))
        .await;
    assert_eq!(created.base_url.as_deref(), Some(longest.as_str()));

    let too_long = format!("{longest}b");
    assert_create_refused(
        &app,
        &user.token,
        with(openai("too-long"), "base_url", json!(too_long)),
        &["base_url"],
    )
    .await;
    assert_eq!(app.configurations(&user.token).await.len(), 1);
}

async fn providers_without_a_default_base_url_require_one(app: TestApp) {
    let user = app.user().await;
    let bodies = [
        json!({"name": "azure", "provider": "azure_openai", "model": "gpt-4o", "api_key": "azure-key-0123456789"}),
        json!({"name": "ollama", "provider": "ollama", "model": "llama3"}),
        json!({"name": "custom", "provider": "openai_compatible", "model": "llama3"}),
    ];
    for body in bodies {
        for base_url in [None, Some(Value::Null), Some(json!("")), Some(json!("   "))] {
            let mut body = body.clone();
            if let Some(base_url) = base_url {
                body["base_url"] = base_url;
            }
            assert_create_refused(&app, &user.token, body, &["base_url"]).await;
        }
    }
    assert!(app.configurations(&user.token).await.is_empty());

    let custom = app
        .create_configuration(&user.token, compatible("custom", "https://llm.example.com", None))
        .await;
    assert_update_refused(&app, &user.token, &custom, json!({"base_url": null}), &["base_url"]).await;
}

async fn a_base_url_equal_to_the_provider_default_is_stored_as_null(app: TestApp) {
    let user = app.user().await;
    for (name, base_url) in [
        ("exact", "https://api.openai.com/v1"),
        ("slash", "https://api.openai.com/v1/"),
    ] {
        let created = app
            .create_configuration(&user.token, with(openai(name), "base_url", json!(base_url)))
            .await;
        assert_eq!(created.base_url, None, "{base_url}");
        assert_eq!(app.refetch(&user.token, &created).await.base_url, None);
    }
    let anthropic = app
        .create_configuration(
            &user.token,
            json!({"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4",
                   "api_key": "sk-ant-key-0123456789", "base_url": "https://api.anthropic.com"}),
        )
        .await;
    assert_eq!(anthropic.base_url, None);

    let proxied = app
        .create_configuration(
            &user.token,
            with(openai("proxied"), "base_url", json!("https://proxy.example.com/v1")),
        )
        .await;
    assert_eq!(proxied.base_url.as_deref(), Some("https://proxy.example.com/v1"));
    app.update_configuration(
        &user.token,
        &proxied,
        json!({"base_url": "https://api.openai.com/v1", "api_key": "sk-new-key-0123456789"}),
    )
    .await;
    assert_eq!(app.refetch(&user.token, &proxied).await.base_url, None);

    // A URL kept across a change of provider is judged against the new provider's default.
    let custom = app
        .create_configuration(
            &user.token,
            json!({"name": "custom", "provider": "openai_compatible", "model": "gpt-4o",
                   "base_url": "https://api.openai.com/v1"}),
        )
        .await;
    assert_eq!(custom.base_url.as_deref(), Some("https://api.openai.com/v1"));
    let now_openai = app
        .update_configuration(
            &user.token,
            &custom,
            json!({"provider": "openai", "api_key": "sk-now-openai-0123456789"}),
        )
        .await;
    assert_eq!(now_openai.provider, "openai");
    assert_eq!(now_openai.base_url, None);
    assert_eq!(app.refetch(&user.token, &custom).await, now_openai);
}

async fn fields_of_the_wrong_json_type_are_named(app: TestApp) {
    let user = app.user().await;
    let body = json!({
        "name": 5,
        "provider": true,
        "model": ["gpt-4o"],
        "api_key": 12345678,
        "base_url": {"host": "llm.example.com"},
        "is_active": "yes",
        "is_default": 1,
    });
    assert_create_refused(
        &app,
        &user.token,
        body,
        &[
            "name",
            "provider",
            "model",
            "api_key",
            "base_url",
            "is_active",
            "is_default",
        ],
    )
    .await;
    assert!(app.configurations(&user.token).await.is_empty());

    let created = app.create_configuration(&user.token, openai("typed")).await;
    let refused = app
        .put_json(
            &created.path(),
            &user.token,
            &json!({"name": ["typed"], "model": 4, "is_active": "false", "api_key": false}),
        )
        .await;
    assert_invalid(refused, &["name", "model", "is_active", "api_key"]).await;
    let nulls = app
        .put_json(
            &created.path(),
            &user.token,
            &json!({"name": null, "provider": null, "model": null, "is_active": null}),
        )
        .await;
    assert_invalid(nulls, &["name", "provider", "model", "is_active"]).await;
    assert_eq!(app.refetch(&user.token, &created).await, created);
}

async fn a_body_that_is_not_a_json_object_is_refused(app: TestApp) {
    let user = app.user().await;
    for body in [json!([openai("in-an-array")]), json!("name"), json!(42), Value::Null] {
        let response = app.post_json(CONFIGURATIONS, &user.token, &body).await;
        assert_error(response, 422, "validation_failed").await;
    }
    assert!(app.configurations(&user.token).await.is_empty());
}

async fn unknown_and_read_only_fields_are_each_named_on_create(app: TestApp) {
    let user = app.user().await;
    let mut body = openai("sneaky");
    let extras = json!({
        "id": Uuid::new_v4().to_string(),
        "api_key_masked": "sk-…x7Qa",
        "has_api_key": true,
        "use_count": 99,
        "last_used_at": "2026-01-01T00:00:00Z",
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "test_status": "ok",
        "user_id": Uuid::new_v4().to_string(),
        "colour": "red",
    });
    let extra_names: Vec<String> = extras.as_object().unwrap().keys().cloned().collect();
    body.as_object_mut()
        .unwrap()
        .extend(extras.as_object().unwrap().clone());
    let names: Vec<&str> = extra_names.iter().map(String::as_str).collect();
    assert_create_refused(&app, &user.token, body, &names).await;
    assert!(app.configurations(&user.token).await.is_empty());
}

async fn unknown_and_read_only_fields_are_each_named_on_update(app: TestApp) {
    let user = app.user().await;
    let first = app.create_configuration(&user.token, openai("first")).await;
    let second = app.create_configuration(&user.token, openai("second")).await;
    assert!(!second.is_default);
    assert_update_refused(
        &app,
        &user.token,
        &second,
        json!({
                "name": "renamed",
                "id": first.id,
                "is_default": true,
                "api_key_masked": "sk-…x7Qa",
                "use_count": 7,
                "created_at": "2020-01-01T00:00:00Z",
            "nickname": "x",
        }),
        &[
            "id",
            "is_default",
            "api_key_masked",
            "use_count",
            "created_at",
            "nickname",
        ],
    )
    .await;
    assert_eq!(app.refetch(&user.token, &first).await, first);
}

async fn several_bad_fields_are_reported_together(app: TestApp) {
    let user = app.user().await;
    let body = json!({
        "name": "",
        "provider": "OpenAI",
        "model": "gpt 4o",
        "api_key": "short",
        "base_url": "http://llm.example.com",
        "extra": 1,
    });
    assert_create_refused(
        &app,
        &user.token,
        body,
        &["name", "provider", "model", "api_key", "base_url", "extra"],
    )
    .await;
    let created = app.create_configuration(&user.token, openai("fine")).await;
    assert_update_refused(
        &app,
        &user.token,
        &created,
        json!({"name": "x".repeat(65), "model": "", "api_key": "sk-…x7Qa", "is_active": 0}),
        &["name", "model", "api_key", "is_active"],
    )
    .await;
}

async fn a_default_cannot_be_inactive(app: TestApp) {
    let user = app.user().await;
    let body = with(
        with(openai("inactive-default"), "is_default", json!(true)),
        "is_active",
        json!(false),
    );
    assert_create_refused(&app, &user.token, body, &["is_default"]).await;
    assert!(app.configurations(&user.token).await.is_empty());

    let created = app.create_configuration(&user.token, openai("active")).await;
    let refused = app
        .put_json(
            &created.path(),
            &user.token,
            &json!({"is_default": true, "is_active": false}),
        )
        .await;
    let body = assert_error(refused, 422, "validation_failed").await;
    assert!(body["fields"]["is_default"].is_array(), "{body}");
    let after = app.refetch(&user.token, &created).await;
    assert_eq!(after, created);
    assert!(after.is_active);
    assert!(after.is_default);
}

async fn changing_the_base_url_of_a_keyed_configuration_requires_the_key(app: TestApp) {
    let user = app.user().await;
    let keyed = app
        .create_configuration(
            &user.token,
            compatible("keyed", "https://first.example.com/v1", Some("sk-custom-key-0000x7Qa")),
        )
        .await;
    let ciphertext = app.stored_ciphertext(&keyed).await;
    for body in [
        json!({"base_url": "https://attacker.example.com/v1"}),
        json!({"base_url": "https://attacker.example.com/v1", "api_key": null}),
        json!({"base_url": "https://attacker.example.com/v1", "name": "moved"}),
    ] {
        assert_update_refused(&app, &user.token, &keyed, body, &["api_key"]).await;
    }
    assert_eq!(app.stored_ciphertext(&keyed).await, ciphertext);

    // Sending the same base URL changes no destination.
    app.update_configuration(
        &user.token,
        &keyed,
        json!({"base_url": "https://first.example.com/v1", "model": "llama3.1"}),
    )
    .await;

    let moved = app
        .update_configuration(
            &user.token,
            &keyed,
            json!({"base_url": "https://second.example.com/v1", "api_key": "sk-second-key-000Zz9Y"}),
        )
        .await;
    assert_eq!(moved.base_url.as_deref(), Some("https://second.example.com/v1"));
    assert_eq!(moved.api_key_masked.as_deref(), Some("sk-…Zz9Y"));
    assert_eq!(app.refetch(&user.token, &keyed).await, moved);

    // Without a stored key there is nothing to redirect.
    let keyless = app
        .create_configuration(&user.token, compatible("keyless", "https://first.example.com/v1", None))
        .await;
    app.update_configuration(&user.token, &keyless, json!({"base_url": "https://other.example.com"}))
        .await;
    assert_eq!(
        app.refetch(&user.token, &keyless).await.base_url.as_deref(),
        Some("https://other.example.com")
    );
}

async fn changing_the_provider_of_a_keyed_configuration_requires_the_key(app: TestApp) {
    let user = app.user().await;
    let keyed = app.create_openai(&user.token, "switch", "sk-openai-key-0000x7Qa").await;
    let ciphertext = app.stored_ciphertext(&keyed).await;
    assert_update_refused(
        &app,
        &user.token,
        &keyed,
        json!({"provider": "anthropic", "model": "claude-sonnet-4"}),
        &["api_key"],
    )
    .await;
    assert_eq!(app.stored_ciphertext(&keyed).await, ciphertext);

    let switched = app
        .update_configuration(
            &user.token,
            &keyed,
            json!({"provider": "anthropic", "model": "claude-sonnet-4", "api_key": "sk-ant-api03-key-00Bb2C"}),
        )
        .await;
    assert_eq!(switched.provider, "anthropic");
    assert_eq!(switched.model, "claude-sonnet-4");
    assert_eq!(switched.api_key_masked.as_deref(), Some("sk-ant-…Bb2C"));
    assert_ne!(app.stored_ciphertext(&keyed).await, ciphertext);
}

async fn an_empty_api_key_removes_the_key_only_where_the_provider_needs_none(app: TestApp) {
    let user = app.user().await;
    let custom = app
        .create_configuration(
            &user.token,
            compatible("custom", "https://llm.example.com/v1", Some("sk-custom-key-0000x7Qa")),
        )
        .await;
    assert!(custom.has_api_key);
    let removed = app
        .update_configuration(&user.token, &custom, json!({"api_key": ""}))
        .await;
    assert!(!removed.has_api_key);
    assert_eq!(removed.api_key_masked, None);
    assert!(!app.refetch(&user.token, &custom).await.has_api_key);
    assert_eq!(app.stored_ciphertext(&custom).await, None);

    let openai = app.create_openai(&user.token, "openai", "sk-openai-key-0000x7Qa").await;
    let ciphertext = app.stored_ciphertext(&openai).await;
    assert_update_refused(&app, &user.token, &openai, json!({"api_key": ""}), &["api_key"]).await;
    assert_eq!(app.stored_ciphertext(&openai).await, ciphertext);
}

async fn ollama_takes_no_api_key(app: TestApp) {
    let user = app.user().await;
    let ollama = json!({"name": "local", "provider": "ollama", "model": "llama3",
                        "base_url": "https://ollama.example.com"});
    assert_create_refused(
        &app,
        &user.token,
        with(ollama.clone(), "api_key", json!("ollama-key-0123456789")),
        &["api_key"],
    )
    .await;
    assert!(app.configurations(&user.token).await.is_empty());

    let created = app.create_configuration(&user.token, ollama).await;
    assert!(!created.has_api_key);
    assert_update_refused(
        &app,
        &user.token,
        &created,
        json!({"api_key": "ollama-key-0123456789"}),
        &["api_key"],
    )
    .await;

    // Moving a keyed configuration to ollama must drop its key.
    let custom = app
        .create_configuration(
            &user.token,
            compatible("custom", "https://llm.example.com/v1", Some("sk-custom-key-0000x7Qa")),
        )
        .await;
    let kept_key = app
        .put_json(
            &custom.path(),
            &user.token,
            &json!({"provider": "ollama", "base_url": "https://ollama.example.com", "api_key": "sk-another-key-000001"}),
        )
        .await;
    assert_invalid(kept_key, &["api_key"]).await;
    let dropped = app
        .update_configuration(
            &user.token,
            &custom,
            json!({"provider": "ollama", "base_url": "https://ollama.example.com", "api_key": ""}),
        )
        .await;
    assert_eq!(dropped.provider, "ollama");
    assert!(!dropped.has_api_key);
}

/// The listing, checked item by item against `GET /api/llm-configurations/{id}` (never served
/// from the listing cache), against the same listing asked for by a browser session, and
/// against the management page.
async fn current_listing(app: &TestApp, token: &str, browser: &crate::helpers::Browser) -> Vec<Value> {
    let listing: Vec<Value> = expect_json(app.get(CONFIGURATIONS, token).await, 200, "list").await;
    for item in &listing {
        let item_path = format!("{CONFIGURATIONS}/{}", item["id"].as_str().unwrap());
        let fresh: Value = expect_json(app.get(&item_path, token).await, 200, "get").await;
        assert_eq!(item, &fresh, "the listing shows the configuration as it is now");
    }
    let by_session: Vec<Value> = expect_json(browser.get(CONFIGURATIONS).await, 200, "list by session").await;
    assert_eq!(by_session, listing);
    let page = browser.page("/llm-configurations").await;
    for item in &listing {
        for field in ["name", "model"] {
            let shown = item[field].as_str().unwrap();
            assert!(
                page.contains(&format!(">{shown}<")),
                "the page shows {field} {shown}: {page}"
            );
        }
    }
    listing
}

fn names(listing: &[Value]) -> Vec<&str> {
    listing.iter().map(|item| item["name"].as_str().unwrap()).collect()
}

async fn the_listing_shows_every_change_at_once_wherever_it_was_made(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app
        .create_configuration(&user.token, openai_with_key("first", "sk-first-aaaaaaaaaaaaaaaa"))
        .await;
    assert_eq!(names(&current_listing(&app, &user.token, &browser).await), ["first"]);
    assert_eq!(
        names(&current_listing(&app, &user.token, &browser).await),
        ["first"],
        "asked again"
    );

    let second = app
        .create_configuration(&user.token, openai_with_key("second", "sk-second-bbbbbbbbbbbbbbb"))
        .await;
    assert_eq!(
        names(&current_listing(&app, &user.token, &browser).await),
        ["first", "second"]
    );

    app.update_configuration(&user.token, &second, json!({"name": "renamed"}))
        .await;
    app.set_default(&user.token, &second).await;
    let listing = current_listing(&app, &user.token, &browser).await;
    assert_eq!(names(&listing), ["renamed", "first"], "the default comes first");

    // A use recorded by resolve.
    let resolver = app.token_for(&user, "resolve").await;
    assert_eq!(app.get("/api/resolve", &resolver).await.status(), 200);
    let listing = current_listing(&app, &user.token, &browser).await;
    assert_eq!(listing[0]["use_count"], 1);

    // A new key on the connection the first configuration uses.
    let connection_path = format!("/api/connections/{}", first.connection_id);
    let response = app
        .put_json(
            &connection_path,
            &user.token,
            &json!({"api_key": "sk-rotated-cccccccccccccccc9z9z"}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let listing = current_listing(&app, &user.token, &browser).await;
    assert_eq!(listing[1]["api_key_masked"], "sk-…9z9z");

    // Written by someone else on the same database (another instance, the command line): no
    // instance is told, the database is the only one who knows.
    let (configuration, connection) = (first.id, first.connection_id);
    app.with_db(move |conn| {
        use diesel::prelude::*;
        use lanyard::db::schema::{connections, llm_configurations};
        diesel::update(llm_configurations::table.filter(llm_configurations::id.eq(lanyard::db::DbId(configuration))))
            .set(llm_configurations::model.eq("gpt-4.1"))
            .execute(conn)
            .unwrap();
        diesel::update(connections::table.filter(connections::id.eq(lanyard::db::DbId(connection))))
            .set(connections::test_message.eq("checked elsewhere"))
            .execute(conn)
            .unwrap();
    })
    .await;
    let listing = current_listing(&app, &user.token, &browser).await;
    assert_eq!(listing[1]["model"], "gpt-4.1");
    assert_eq!(listing[1]["test_message"], "checked elsewhere");

    app.delete(&second.path(), &user.token).await;
    assert_eq!(names(&current_listing(&app, &user.token, &browser).await), ["first"]);
    assert!(
        !browser.page("/llm-configurations").await.contains(">renamed<"),
        "gone from the page"
    );
    let other = app.user().await;
    assert!(
        app.configurations(&other.token).await.is_empty(),
        "nobody else's listing"
    );
}
