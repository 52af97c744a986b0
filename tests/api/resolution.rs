//! Resolution (`GET /api/resolve`): override, default, instance fallback, nothing; the key that
//! comes back is the key that was saved; unreadable keys; per-conversation overrides through the
//! API and the `/conversations` page; and `lanyard import` / `export` through the real binary.

use std::path::PathBuf;

use diesel::prelude::*;
use lanyard::config::Settings;
use lanyard::db::DbId;
use lanyard::db::schema::{api_tokens, key_reveals, llm_configurations};
use lanyard::domain::FallbackConfiguration;
use lanyard::domain::Provider;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::binary::{COMMAND_LIMIT, Finished, Sandbox};
use crate::helpers::{TestApp, TestUser, assert_error, location};
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    without_an_override_the_default_resolves_with_its_key,
    an_override_wins_with_its_own_key,
    an_override_to_an_inactive_configuration_falls_back_to_the_default,
    with_nothing_configured_and_no_fallback_resolution_is_404,
    only_a_token_with_the_resolve_scope_may_resolve,
    the_resolved_key_is_the_saved_key_after_every_kind_of_edit,
    a_ciphertext_copied_onto_another_row_is_unreadable_and_breaks_nothing_else,
    an_override_cannot_point_at_another_users_configuration,
    conversation_ids_are_1_to_200_characters,
    overrides_are_listed_and_removed,
    deleting_a_configuration_removes_its_overrides,
    each_resolution_counts_exactly_one_use,
    every_reveal_is_audited_and_refusals_are_not,
    an_openhands_file_imports_through_the_binary_with_its_keys,
    importing_the_same_file_again_creates_nothing_and_names_what_it_skipped,
    an_export_holds_no_key_and_round_trips_to_another_user,
    a_malformed_file_imports_nothing_and_says_where,
    the_conversations_page_lists_changes_and_removes_overrides,
);

on_both_backends_with!(
    with_a_fallback;
    a_user_without_a_default_gets_the_instance_fallback,
    a_user_with_a_default_never_gets_the_fallback,
);

const FALLBACK_KEY: &str = "sk-instance-fallback-key-0042";
const FALLBACK_BASE_URL: &str = "https://llm.example.com/v1";

/// The operator set `LANYARD_FALLBACK_*`.
fn with_a_fallback(settings: &mut Settings) {
    settings.fallback = Some(FallbackConfiguration {
        provider: Provider::OpenaiCompatible,
        model: "shared-model".to_owned(),
        base_url: Some(FALLBACK_BASE_URL.to_owned()),
        api_key: Some(SecretString::from(FALLBACK_KEY.to_owned())),
    });
}

fn id_of(configuration: &Value) -> String {
    configuration["id"].as_str().expect("a configuration id").to_owned()
}

/// A conversation id as one path segment.
fn segment(conversation: &str) -> String {
    url::form_urlencoded::byte_serialize(conversation.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn override_path(conversation: &str) -> String {
    format!("/api/conversations/{}/llm-configuration", segment(conversation))
}

/// `GET /api/resolve`, with `conversation_id` when given.
async fn resolve(app: &TestApp, token: &str, conversation: Option<&str>) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    if let Some(conversation) = conversation {
        url.query_pairs_mut().append_pair("conversation_id", conversation);
    }
    app.client.get(url).bearer_auth(token).send().await.unwrap()
}

/// A resolution that must succeed; returns its body.
async fn resolved(app: &TestApp, token: &str, conversation: Option<&str>) -> Value {
    let response = resolve(app, token, conversation).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "resolve failed: {body}");
    body
}

/// Pins `conversation` to `configuration_id`; panics unless 200.
async fn pin(app: &TestApp, token: &str, conversation: &str, configuration_id: &str) -> Value {
    let response = app
        .put_json(
            &override_path(conversation),
            token,
            &json!({"configuration_id": configuration_id}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "pinning failed: {body}");
    body
}

async fn overrides(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/api/conversations", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn configuration(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get(&format!("/api/llm-configurations/{id}"), token).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "GET configuration failed: {body}");
    body
}

async fn update(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let response = app
        .put_json(&format!("/api/llm-configurations/{id}"), token, &body)
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "update failed: {body}");
    body
}

/// A user with a `read,write` token and a `resolve` token.
async fn user_and_resolver(app: &TestApp) -> (TestUser, String) {
    let user = app.user().await;
    let resolver = app.token_for(&user, "resolve").await;
    (user, resolver)
}

async fn without_an_override_the_default_resolves_with_its_key(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    app.create_openai(&user.token, "other", "sk-other-key-0002-y8Rb").await;

    for conversation in [None, Some("conv-without-override")] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body["source"], "default", "{body}");
        assert_eq!(body["configuration"]["id"], default["id"]);
        assert_eq!(body["configuration"]["name"], "main");
        assert_eq!(body["configuration"]["provider"], "openai");
        assert_eq!(body["configuration"]["model"], "gpt-4o");
        assert_eq!(body["configuration"]["api_key"], "sk-main-key-0001-x7Qa");
    }
}

async fn an_override_wins_with_its_own_key(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app
        .create_configuration(
            &user.token,
            json!({"name": "claude", "provider": "anthropic", "model": "claude-3-5-sonnet", "api_key": "sk-ant-pinned-key-0003"}),
        )
        .await;
    let set = pin(&app, &user.token, "conv-1", &id_of(&pinned)).await;
    assert_eq!(set["conversation_id"], "conv-1");
    assert_eq!(set["configuration_id"], pinned["id"]);
    assert!(set["updated_at"].is_string());

    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["source"], "override", "{body}");
    assert_eq!(body["configuration"]["id"], pinned["id"]);
    assert_eq!(body["configuration"]["provider"], "anthropic");
    assert_eq!(body["configuration"]["api_key"], "sk-ant-pinned-key-0003");

    // Another conversation, and no conversation at all, still use the default.
    for conversation in [Some("conv-2"), None] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body["source"], "default");
        assert_eq!(body["configuration"]["id"], default["id"]);
        assert_eq!(body["configuration"]["api_key"], "sk-main-key-0001-x7Qa");
    }
}

async fn an_override_to_an_inactive_configuration_falls_back_to_the_default(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &id_of(&pinned)).await;
    update(&app, &user.token, &id_of(&pinned), json!({"is_active": false})).await;

    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["source"], "default", "{body}");
    assert_eq!(body["configuration"]["id"], default["id"]);
    assert_eq!(body["configuration"]["api_key"], "sk-main-key-0001-x7Qa");

    // Reactivated, the override applies again.
    update(&app, &user.token, &id_of(&pinned), json!({"is_active": true})).await;
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["source"], "override");
    assert_eq!(body["configuration"]["api_key"], "sk-pinned-key-0004");
}

async fn with_nothing_configured_and_no_fallback_resolution_is_404(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
    assert_error(resolve(&app, &resolver, Some("conv-1")).await, 404, "not_found").await;

    // An inactive configuration is no default either.
    let only = app.create_openai(&user.token, "only", "sk-only-key-0005").await;
    update(&app, &user.token, &id_of(&only), json!({"is_active": false})).await;
    assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
}

async fn only_a_token_with_the_resolve_scope_may_resolve(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;

    let read_write = resolve(&app, &user.token, None).await;
    let body = assert_error(read_write, 403, "forbidden").await;
    assert!(!body.to_string().contains("sk-main-key"));
    let read = app.token_for(&user, "read").await;
    assert_error(resolve(&app, &read, None).await, 403, "forbidden").await;

    let session = browser.get("/api/resolve").await;
    let body = assert_error(session, 403, "forbidden").await;
    assert!(!body.to_string().contains("sk-main-key"));

    assert_error(
        resolve(&app, "lny_not-a-real-token-0000000000000000", None).await,
        401,
        "unauthorized",
    )
    .await;

    // `resolve` includes nothing else.
    let resolver = app.token_for(&user, "resolve").await;
    assert_error(app.get("/api/llm-configurations", &resolver).await, 403, "forbidden").await;
    assert_eq!(resolve(&app, &resolver, None).await.status(), 200);
}

async fn the_resolved_key_is_the_saved_key_after_every_kind_of_edit(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    // Characters that JSON, URLs and the database each treat specially, and some beyond ASCII.
    let key = "sk-proj-Ωmega_+/=%~!$&'()*,;:@[]{}|^`<>\"\\#?é€😀-tail";
    let created = app
        .create_configuration(
            &user.token,
            json!({"name": "exact", "provider": "openai", "model": "gpt-4o", "api_key": key}),
        )
        .await;
    let id = id_of(&created);
    let key_of = |body: &Value| {
        body["configuration"]["api_key"]
            .as_str()
            .map(str::as_bytes)
            .map(<[u8]>::to_vec)
    };

    let body = resolved(&app, &resolver, None).await;
    assert_eq!(key_of(&body), Some(key.as_bytes().to_vec()), "as created");

    let steps = [
        ("a rename", json!({"name": "renamed"})),
        ("a model change", json!({"model": "gpt-4o-mini"})),
        ("an api_key: null update", json!({"api_key": null})),
        ("deactivating", json!({"is_active": false})),
        ("reactivating", json!({"is_active": true})),
    ];
    for (what, change) in steps {
        update(&app, &user.token, &id, change).await;
        if what == "deactivating" {
            assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
            continue;
        }
        let body = resolved(&app, &resolver, None).await;
        assert_eq!(body["configuration"]["id"], created["id"], "after {what}");
        assert_eq!(key_of(&body), Some(key.as_bytes().to_vec()), "after {what}");
    }
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["configuration"]["name"], "renamed");
    assert_eq!(body["configuration"]["model"], "gpt-4o-mini");
}

/// Copies the stored ciphertext (and its key id) of `from` onto `to`, as an attacker with write
/// access to the database would.
async fn copy_ciphertext(app: &TestApp, from: &str, to: &str) {
    let from = DbId(Uuid::parse_str(from).unwrap());
    let to = DbId(Uuid::parse_str(to).unwrap());
    app.with_db(move |conn| {
        let (sealed, key_id) = llm_configurations::table
            .find(from)
            .select((llm_configurations::api_key_encrypted, llm_configurations::key_id))
            .first::<(Option<Vec<u8>>, Option<String>)>(conn)
            .unwrap();
        assert!(sealed.is_some());
        let updated = diesel::update(llm_configurations::table.find(to))
            .set((
                llm_configurations::api_key_encrypted.eq(sealed),
                llm_configurations::key_id.eq(key_id),
            ))
            .execute(conn)
            .unwrap();
        assert_eq!(updated, 1);
    })
    .await;
}

async fn a_ciphertext_copied_onto_another_row_is_unreadable_and_breaks_nothing_else(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let resolver = app.token_for(&user, "resolve").await;
    let source = app
        .create_openai(&user.token, "source", "sk-source-key-0006-abcd")
        .await;
    let victim = app
        .create_openai(&user.token, "victim", "sk-victim-key-0007-efgh")
        .await;
    copy_ciphertext(&app, &id_of(&source), &id_of(&victim)).await;
    pin(&app, &user.token, "conv-victim", &id_of(&victim)).await;

    let body = assert_error(
        resolve(&app, &resolver, Some("conv-victim")).await,
        409,
        "key_unreadable",
    )
    .await;
    assert!(!body.to_string().contains("sk-source-key"), "{body}");
    assert!(!body.to_string().contains("sk-victim-key"), "{body}");
    // The unreadable attempt records no use.
    assert_eq!(configuration(&app, &user.token, &id_of(&victim)).await["use_count"], 0);

    let test = app
        .post_json(
            &format!("/api/llm-configurations/{}/test", id_of(&victim)),
            &user.token,
            &json!({}),
        )
        .await;
    let status = test.status();
    let result: Value = test.json().await.unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["code"], "key_unreadable", "{result}");
    assert_eq!(result["status"], "failed", "{result}");

    // Everything else still works, and the source's own key is intact.
    assert_eq!(app.list(&user.token).await.len(), 2);
    let fetched = configuration(&app, &user.token, &id_of(&victim)).await;
    assert_eq!(fetched["test_status"], "failed");
    let page = browser.page("/llm-configurations").await;
    assert!(page.contains("re-enter the key"), "the page asks for the key again");
    assert!(!page.contains("sk-source-key") && !page.contains("sk-victim-key"));
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["configuration"]["id"], source["id"]);
    assert_eq!(body["configuration"]["api_key"], "sk-source-key-0006-abcd");
}

async fn an_override_cannot_point_at_another_users_configuration(app: TestApp) {
    let owner = app.user().await;
    let theirs = app.create_openai(&owner.token, "theirs", "sk-theirs-key-0008").await;
    let (intruder, resolver) = user_and_resolver(&app).await;
    app.create_openai(&intruder.token, "mine", "sk-mine-key-0009").await;

    let response = app
        .put_json(
            &override_path("conv-1"),
            &intruder.token,
            &json!({"configuration_id": id_of(&theirs)}),
        )
        .await;
    let body = assert_error(response, 404, "not_found").await;
    let missing = app
        .put_json(
            &override_path("conv-1"),
            &intruder.token,
            &json!({"configuration_id": Uuid::new_v4().to_string()}),
        )
        .await;
    let missing = assert_error(missing, 404, "not_found").await;
    assert_eq!(
        body, missing,
        "another user's configuration looks exactly like a missing one"
    );

    assert!(overrides(&app, &intruder.token).await.is_empty());
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["configuration"]["api_key"], "sk-mine-key-0009");
}

async fn conversation_ids_are_1_to_200_characters(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    let body = json!({"configuration_id": id_of(&pinned)});

    let too_long = "c".repeat(201);
    let refused = app.put_json(&override_path(&too_long), &user.token, &body).await;
    let refused = assert_error(refused, 422, "validation_failed").await;
    assert!(refused["fields"]["conversation_id"].is_array(), "{refused}");
    let refused = assert_error(
        resolve(&app, &resolver, Some(&too_long)).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["conversation_id"].is_array(), "{refused}");
    let refused = app.delete(&override_path(&too_long), &user.token).await;
    assert_error(refused, 422, "validation_failed").await;
    assert!(overrides(&app, &user.token).await.is_empty());
    // A refused resolution records nothing.
    assert_eq!(configuration(&app, &user.token, &id_of(&default)).await["use_count"], 0);

    // 200 characters, counted as characters rather than bytes.
    for conversation in ["c".repeat(200), "é".repeat(200)] {
        let set = pin(&app, &user.token, &conversation, &id_of(&pinned)).await;
        assert_eq!(set["conversation_id"], conversation.as_str());
        let body = resolved(&app, &resolver, Some(&conversation)).await;
        assert_eq!(body["source"], "override");
        assert_eq!(body["configuration"]["api_key"], "sk-pinned-key-0004");
    }
    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 2);
}

async fn overrides_are_listed_and_removed(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    assert!(overrides(&app, &user.token).await.is_empty());

    let set = pin(&app, &user.token, "conv-a", &id_of(&pinned)).await;
    pin(&app, &user.token, "conv-b", &id_of(&pinned)).await;
    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = listed
        .iter()
        .find(|o| o["conversation_id"] == "conv-a")
        .expect("conv-a is listed");
    let mut fields: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["configuration_id", "conversation_id", "updated_at"]);
    assert_eq!(first["configuration_id"], pinned["id"]);
    assert_eq!(first["updated_at"], set["updated_at"]);

    // A read-only token lists but cannot change.
    let read = app.token_for(&user, "read").await;
    assert_eq!(overrides(&app, &read).await.len(), 2);
    assert_error(app.delete(&override_path("conv-a"), &read).await, 403, "forbidden").await;

    let removed = app.delete(&override_path("conv-a"), &user.token).await;
    assert_eq!(removed.status(), 204);
    let removed_again = app.delete(&override_path("conv-a"), &user.token).await;
    assert_eq!(
        removed_again.status(),
        204,
        "removing a missing override is not an error"
    );
    let never_there = app.delete(&override_path("never-pinned"), &user.token).await;
    assert_eq!(never_there.status(), 204);

    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["conversation_id"], "conv-b");
    assert_eq!(resolved(&app, &resolver, Some("conv-a")).await["source"], "default");
    assert_eq!(resolved(&app, &resolver, Some("conv-b")).await["source"], "override");
}

async fn deleting_a_configuration_removes_its_overrides(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let doomed = app.create_openai(&user.token, "doomed", "sk-doomed-key-0010").await;
    let kept = app.create_openai(&user.token, "kept", "sk-kept-key-0011").await;
    pin(&app, &user.token, "conv-doomed-1", &id_of(&doomed)).await;
    pin(&app, &user.token, "conv-doomed-2", &id_of(&doomed)).await;
    pin(&app, &user.token, "conv-kept", &id_of(&kept)).await;

    let deleted = app
        .delete(&format!("/api/llm-configurations/{}", id_of(&doomed)), &user.token)
        .await;
    assert_eq!(deleted.status(), 204);

    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["conversation_id"], "conv-kept");
    assert_eq!(listed[0]["configuration_id"], kept["id"]);
    let body = resolved(&app, &resolver, Some("conv-doomed-1")).await;
    assert_eq!(body["source"], "default");
    assert_eq!(body["configuration"]["id"], default["id"]);
}

async fn each_resolution_counts_exactly_one_use(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &id_of(&pinned)).await;
    assert_eq!(default["use_count"], 0);
    assert_eq!(default["last_used_at"], Value::Null);

    for expected in 1..=3 {
        let body = resolved(&app, &resolver, None).await;
        assert_eq!(
            body["configuration"]["use_count"], expected,
            "the answer counts this use"
        );
        let stored = configuration(&app, &user.token, &id_of(&default)).await;
        assert_eq!(stored["use_count"], expected);
        assert!(stored["last_used_at"].is_string(), "{stored}");
    }
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["source"], "override");
    let pinned_now = configuration(&app, &user.token, &id_of(&pinned)).await;
    assert_eq!(pinned_now["use_count"], 1);
    assert!(pinned_now["last_used_at"].is_string());
    assert_eq!(configuration(&app, &user.token, &id_of(&default)).await["use_count"], 3);
}

/// One audit line: token, configuration, its name, conversation, source.
type Reveal = (Option<Uuid>, Option<Uuid>, String, Option<String>, String);

/// The key reveals recorded for `user`, oldest first.
async fn reveals(app: &TestApp, user: &TestUser) -> Vec<Reveal> {
    let owner = DbId(user.id);
    app.with_db(move |conn| {
        key_reveals::table
            .filter(key_reveals::user_id.eq(owner))
            .order((key_reveals::revealed_at, key_reveals::id))
            .select((
                key_reveals::token_id,
                key_reveals::configuration_id,
                key_reveals::configuration_name,
                key_reveals::conversation_id,
                key_reveals::source,
            ))
            .load::<(Option<DbId>, Option<DbId>, String, Option<String>, String)>(conn)
            .unwrap()
            .into_iter()
            .map(|(token, configuration, name, conversation, source)| {
                (
                    token.map(|id| id.0),
                    configuration.map(|id| id.0),
                    name,
                    conversation,
                    source,
                )
            })
            .collect()
    })
    .await
}

/// The id of `user`'s token whose scopes are exactly `scopes`.
async fn token_id(app: &TestApp, user: &TestUser, scopes: &str) -> Uuid {
    let owner = DbId(user.id);
    let scopes = scopes.to_owned();
    app.with_db(move |conn| {
        api_tokens::table
            .filter(api_tokens::user_id.eq(owner))
            .filter(api_tokens::scopes.eq(scopes))
            .select(api_tokens::id)
            .first::<DbId>(conn)
            .unwrap()
            .0
    })
    .await
}

async fn every_reveal_is_audited_and_refusals_are_not(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let resolver_id = token_id(&app, &user, "resolve").await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &id_of(&pinned)).await;

    resolved(&app, &resolver, None).await;
    resolved(&app, &resolver, Some("conv-1")).await;
    // Refusals reveal nothing and record nothing.
    assert_eq!(resolve(&app, &user.token, None).await.status(), 403);
    assert_eq!(resolve(&app, &resolver, Some(&"c".repeat(201))).await.status(), 422);

    let id = |configuration: &Value| Some(Uuid::parse_str(&id_of(configuration)).unwrap());
    assert_eq!(
        reveals(&app, &user).await,
        [
            (
                Some(resolver_id),
                id(&default),
                "main".to_owned(),
                None,
                "default".to_owned()
            ),
            (
                Some(resolver_id),
                id(&pinned),
                "pinned".to_owned(),
                Some("conv-1".to_owned()),
                "override".to_owned()
            ),
        ]
    );
}

async fn a_user_without_a_default_gets_the_instance_fallback(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    for conversation in [None, Some("conv-1")] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body["source"], "fallback", "{body}");
        let configuration = &body["configuration"];
        assert_eq!(configuration["id"], Value::Null);
        assert_eq!(configuration["name"], "instance fallback");
        assert_eq!(configuration["provider"], "openai_compatible");
        assert_eq!(configuration["model"], "shared-model");
        assert_eq!(configuration["base_url"], FALLBACK_BASE_URL);
        assert_eq!(configuration["api_key"], FALLBACK_KEY);
    }

    // A user whose only configuration is inactive has no default: the fallback answers, and
    // neither it nor the inactive configuration records a use.
    let inactive = app.create_openai(&user.token, "inactive", "sk-inactive-key-0012").await;
    pin(&app, &user.token, "conv-1", &id_of(&inactive)).await;
    update(&app, &user.token, &id_of(&inactive), json!({"is_active": false})).await;
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body["source"], "fallback");
    assert_eq!(body["configuration"]["use_count"], 0);
    assert_eq!(body["configuration"]["last_used_at"], Value::Null);
    let stored = configuration(&app, &user.token, &id_of(&inactive)).await;
    assert_eq!(stored["use_count"], 0);
    assert_eq!(stored["last_used_at"], Value::Null);
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["source"], "fallback");
    assert_eq!(body["configuration"]["use_count"], 0);

    // Each fallback reveal is audited, under no configuration.
    let audit = reveals(&app, &user).await;
    assert_eq!(audit.len(), 4, "{audit:?}");
    for (token, configuration, name, _, source) in &audit {
        assert!(token.is_some());
        assert_eq!(*configuration, None);
        assert_eq!(name, "instance fallback");
        assert_eq!(source, "fallback");
    }
}

async fn a_user_with_a_default_never_gets_the_fallback(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["source"], "default");
    assert_eq!(body["configuration"]["id"], default["id"]);
    assert_eq!(body["configuration"]["api_key"], "sk-main-key-0001-x7Qa");
    assert!(!body.to_string().contains(FALLBACK_KEY));
}

// ---------------------------------------------------------------------------------------------
// `lanyard import` and `lanyard export`, through the real binary against the test app's database.

/// A sandbox whose working directory also holds the files handed to the binary.
struct Workspace {
    sandbox: Sandbox,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            sandbox: Sandbox::new(),
        }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.sandbox.workdir().join(name);
        std::fs::write(&path, contents).expect("write the file");
        path
    }

    /// Runs `lanyard ARGS` with the test app's database and master keys, nothing else from the
    /// environment; kills it should it outlive `COMMAND_LIMIT`.
    async fn lanyard(&self, app: &TestApp, args: &[&str]) -> Finished {
        let envs = [
            ("DATABASE_URL", app.test_database.url_string()),
            ("LANYARD_MASTER_KEYS", app.master_keys.clone()),
            ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
            ("LANYARD_LOG", "warn".to_owned()),
        ];
        let running = self.sandbox.start(&envs, args, "");
        // Waiting polls and sleeps: do it off the runtime that the test app runs on.
        tokio::task::spawn_blocking(move || running.finish(COMMAND_LIMIT))
            .await
            .unwrap()
    }
}

const ANTHROPIC_KEY: &str = "sk-ant-api03-Imp0rt3d_Key-with\"quote\\slash-0013";
const OPENAI_KEY: &str = "sk-proj-imported-gpt4o-key-0014+/=";
const OPENROUTER_KEY: &str = "sk-or-v1-imported-router-key-0015";

/// An OpenHands `config.toml` with three LLM groups, each with a key, among other settings.
fn openhands_toml() -> String {
    format!(
        r#"[core]
workspace_base = "./workspace"
max_iterations = 100

[llm]
model = "anthropic/claude-3-5-sonnet-20241022"
api_key = "{anthropic}"
temperature = 0.0

[llm.gpt4o]
model = "gpt-4o"
api_key = "{openai}"

[llm.router]
model = "openrouter/anthropic/claude-3.5-sonnet"
api_key = "{openrouter}"
base_url = "https://openrouter.ai/api/v1"

[sandbox]
timeout = 120
"#,
        anthropic = toml_escape(ANTHROPIC_KEY),
        openai = toml_escape(OPENAI_KEY),
        openrouter = toml_escape(OPENROUTER_KEY),
    )
}

fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The configuration named `name` in a list.
fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no configuration named {name} in {list:?}"))
}

/// Imports the sample file for `user` through the binary; panics unless it succeeds.
async fn import_sample(app: &TestApp, workspace: &Workspace, user: &TestUser) -> Finished {
    let file = workspace.file("config.toml", &openhands_toml());
    let finished = workspace
        .lanyard(
            app,
            &[
                "import",
                "openhands",
                "--file",
                file.to_str().unwrap(),
                "--email",
                &user.email,
            ],
        )
        .await;
    finished.assert_success();
    finished
}

async fn an_openhands_file_imports_through_the_binary_with_its_keys(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let workspace = Workspace::new();
    let finished = import_sample(&app, &workspace, &user).await;
    for name in ["openhands-default", "gpt4o", "router"] {
        assert!(
            finished.stdout.contains(name),
            "the report names {name}: {}",
            finished.stdout
        );
    }
    for key in [ANTHROPIC_KEY, OPENAI_KEY, OPENROUTER_KEY] {
        assert!(!finished.stdout.contains(key) && !finished.stderr.contains(key));
    }

    let list = app.list(&user.token).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let expected = [
        (
            "openhands-default",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            ANTHROPIC_KEY,
        ),
        ("gpt4o", "openai", "gpt-4o", OPENAI_KEY),
        ("router", "openrouter", "anthropic/claude-3.5-sonnet", OPENROUTER_KEY),
    ];
    assert_eq!(
        list.iter().filter(|c| c["is_default"] == true).count(),
        1,
        "exactly one default"
    );
    for (name, provider, model, key) in expected {
        let imported = named(&list, name);
        assert_eq!(imported["provider"], provider, "{imported}");
        assert_eq!(imported["model"], model, "{imported}");
        assert_eq!(
            imported["base_url"],
            Value::Null,
            "the provider's default base URL: {imported}"
        );
        assert_eq!(imported["has_api_key"], true, "{imported}");
        assert_eq!(imported["is_active"], true, "{imported}");

        let conversation = format!("imported-{name}");
        pin(&app, &user.token, &conversation, &id_of(imported)).await;
        let body = resolved(&app, &resolver, Some(&conversation)).await;
        assert_eq!(body["source"], "override");
        assert_eq!(body["configuration"]["id"], imported["id"]);
        assert_eq!(
            body["configuration"]["api_key"].as_str().map(str::as_bytes),
            Some(key.as_bytes()),
            "the key of {name}, byte for byte"
        );
        assert!(body["configuration"]["effective_base_url"].is_string());
    }
}

async fn importing_the_same_file_again_creates_nothing_and_names_what_it_skipped(app: TestApp) {
    let user = app.user().await;
    let workspace = Workspace::new();
    import_sample(&app, &workspace, &user).await;
    let before = app.list(&user.token).await;

    let again = import_sample(&app, &workspace, &user).await;
    assert!(again.stdout.contains("Imported 0"), "{}", again.stdout);
    for name in ["openhands-default", "gpt4o", "router"] {
        let skipped = again
            .stdout
            .lines()
            .any(|line| line.contains("skipped") && line.contains(name));
        assert!(skipped, "the report names {name} as skipped: {}", again.stdout);
    }
    let after = app.list(&user.token).await;
    assert_eq!(after, before, "nothing changed");
}

async fn an_export_holds_no_key_and_round_trips_to_another_user(app: TestApp) {
    let user = app.user().await;
    let workspace = Workspace::new();
    import_sample(&app, &workspace, &user).await;
    let extra_key = "sk-created-through-the-api-0016";
    app.create_openai(&user.token, "api-made", extra_key).await;
    let originals = app.list(&user.token).await;

    let exported = workspace.lanyard(&app, &["export", "--email", &user.email]).await;
    exported.assert_success();
    let document: Value = serde_json::from_str(&exported.stdout).expect("the export is JSON");
    assert_eq!(
        document["configurations"].as_array().map(Vec::len),
        Some(4),
        "{document}"
    );
    for key in [ANTHROPIC_KEY, OPENAI_KEY, OPENROUTER_KEY, extra_key] {
        let chars: Vec<char> = key.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(
                !exported.stdout.contains(&piece),
                "the export carries a piece of a key: {piece}"
            );
            assert!(
                !exported.stderr.contains(&piece),
                "standard error carries a piece of a key: {piece}"
            );
        }
    }
    assert!(!exported.stdout.contains('…'), "no masks either");

    let other = app.user().await;
    let other_resolver = app.token_for(&other, "resolve").await;
    let file = workspace.file("export.json", &exported.stdout);
    let imported = workspace
        .lanyard(
            &app,
            &[
                "import",
                "json",
                "--file",
                file.to_str().unwrap(),
                "--email",
                &other.email,
            ],
        )
        .await;
    imported.assert_success();
    assert!(imported.stdout.contains("Imported 4"), "{}", imported.stdout);

    let copies = app.list(&other.token).await;
    assert_eq!(copies.len(), 4);
    for original in &originals {
        let copy = named(&copies, original["name"].as_str().unwrap());
        assert_ne!(copy["id"], original["id"]);
        for field in ["provider", "model", "base_url"] {
            assert_eq!(copy[field], original[field], "{field} of {copy}");
        }
        assert_eq!(copy["is_active"], false, "{copy}");
        assert_eq!(copy["is_default"], false, "{copy}");
        assert_eq!(copy["has_api_key"], false, "{copy}");
        assert_eq!(copy["api_key_masked"], Value::Null, "{copy}");
    }
    // The original owner is untouched.
    assert_eq!(app.list(&user.token).await, originals);
    assert_error(resolve(&app, &other_resolver, None).await, 404, "not_found").await;

    // A key entered, the copy can be activated, becomes the default and resolves with that key.
    let router = named(&copies, "router");
    let activated = update(
        &app,
        &other.token,
        &id_of(router),
        json!({"api_key": "sk-or-v1-entered-after-import-0017", "is_active": true}),
    )
    .await;
    assert_eq!(activated["is_active"], true);
    assert_eq!(activated["has_api_key"], true);
    assert_eq!(activated["is_default"], true);
    let body = resolved(&app, &other_resolver, None).await;
    assert_eq!(body["configuration"]["id"], router["id"]);
    assert_eq!(body["configuration"]["api_key"], "sk-or-v1-entered-after-import-0017");
}

async fn a_malformed_file_imports_nothing_and_says_where(app: TestApp) {
    let user = app.user().await;
    app.create_openai(&user.token, "existing", "sk-existing-key-0018").await;
    let before = app.list(&user.token).await;
    let workspace = Workspace::new();

    let bad_toml = workspace.file(
        "bad.toml",
        "[llm]\nmodel = \"gpt-4o\"\napi_key = \"sk-valid-before-the-error-0019\"\n\n[llm.broken\nmodel = \"gpt-4o\"\n",
    );
    let number_model = workspace.file(
        "number.toml",
        "[llm]\nmodel = \"gpt-4o\"\napi_key = \"sk-valid-before-the-error-0019\"\n\n[llm.broken]\nmodel = 4\napi_key = \"sk-broken-group-key-0020\"\n",
    );
    for (file, where_) in [(&bad_toml, "line 5"), (&number_model, "[llm.broken]")] {
        let finished = workspace
            .lanyard(
                &app,
                &[
                    "import",
                    "openhands",
                    "--file",
                    file.to_str().unwrap(),
                    "--email",
                    &user.email,
                ],
            )
            .await;
        assert!(
            !finished.status.success() && finished.status.code().is_some(),
            "a malformed file fails with an exit code: {}",
            finished.status
        );
        assert!(
            finished.stderr.contains(where_),
            "standard error says where ({where_}): {}",
            finished.stderr
        );
        assert!(finished.stderr.contains("nothing was imported"), "{}", finished.stderr);
        assert!(!finished.stderr.contains("sk-valid-before") && !finished.stderr.contains("sk-broken-group"));
        assert_eq!(
            app.list(&user.token).await,
            before,
            "nothing was imported from {}",
            file.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The `/conversations` page.

async fn the_conversations_page_lists_changes_and_removes_overrides(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app
        .create_openai(&user.token, "first-config", "sk-first-key-0021")
        .await;
    let second = app
        .create_openai(&user.token, "second-config", "sk-second-key-0022")
        .await;
    pin(&app, &user.token, "conv-page-a", &id_of(&first)).await;
    pin(&app, &user.token, "conv-page-b", &id_of(&first)).await;

    let page = browser.page("/conversations").await;
    assert!(page.contains("conv-page-a") && page.contains("conv-page-b"), "{page}");
    assert!(page.contains("first-config") && page.contains("second-config"));
    assert!(!page.contains("sk-first-key") && !page.contains("sk-second-key"));
    let csrf = browser.csrf().await;

    // htmx: the fragment with the change.
    let response = browser
        .post_htmx(
            "/conversations/conv-page-a",
            &[("configuration_id", id_of(&second).as_str()), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(fragment.contains("conv-page-a"));
    let listed = overrides(&app, &user.token).await;
    let a = listed.iter().find(|o| o["conversation_id"] == "conv-page-a").unwrap();
    assert_eq!(a["configuration_id"], second["id"]);

    // Without JavaScript: a redirect back to the page.
    let response = browser
        .post_form(
            "/conversations/conv-page-b",
            &[("configuration_id", id_of(&second).as_str()), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/conversations");
    let listed = overrides(&app, &user.token).await;
    assert!(
        listed.iter().all(|o| o["configuration_id"] == second["id"]),
        "{listed:?}"
    );

    // An empty configuration removes the override, in both modes.
    let response = browser
        .post_htmx(
            "/conversations/conv-page-a",
            &[("configuration_id", ""), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(!fragment.contains("conv-page-a"), "{fragment}");
    assert!(fragment.contains("conv-page-b"));
    let response = browser
        .post_form(
            "/conversations/conv-page-b",
            &[("configuration_id", ""), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/conversations");
    assert!(overrides(&app, &user.token).await.is_empty());
    let page = browser.page("/conversations").await;
    assert!(!page.contains("conv-page-a") && !page.contains("conv-page-b"));

    // Without the CSRF token nothing changes.
    pin(&app, &user.token, "conv-page-c", &id_of(&first)).await;
    let response = browser
        .post_form("/conversations/conv-page-c", &[("configuration_id", "")])
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(overrides(&app, &user.token).await.len(), 1);
}
