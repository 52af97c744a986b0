//! Per-conversation overrides: pinning a conversation to a configuration, listing and removing
//! pins, over the API and on the `/conversations` page.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::configurations::expect_json;
use crate::helpers::resolve::{Override, override_path, pin, resolve, resolved, user_and_resolver};
use crate::helpers::{TestApp, assert_error, location};
use crate::on_both_backends;

on_both_backends!(
    an_override_cannot_point_at_another_users_configuration,
    conversation_ids_are_1_to_200_characters,
    overrides_are_listed_and_removed,
    deleting_a_configuration_removes_its_overrides,
    the_conversations_page_lists_changes_and_removes_overrides,
);

async fn overrides(app: &TestApp, token: &str) -> Vec<Override> {
    expect_json(app.get("/api/conversations", token).await, 200, "overrides").await
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
            &json!({"configuration_id": theirs.id}),
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
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-mine-key-0009"));
}

async fn conversation_ids_are_1_to_200_characters(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    let body = json!({"configuration_id": pinned.id});

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
    assert_eq!(app.refetch(&user.token, &default).await.use_count, 0);

    // 200 characters, counted as characters rather than bytes.
    for conversation in ["c".repeat(200), "é".repeat(200)] {
        let set = pin(&app, &user.token, &conversation, &pinned).await;
        assert_eq!(set.conversation_id, conversation);
        let body = resolved(&app, &resolver, Some(&conversation)).await;
        assert_eq!(body.source, "override");
        assert_eq!(body.configuration.api_key.as_deref(), Some("sk-pinned-key-0004"));
    }
    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 2);
}

async fn overrides_are_listed_and_removed(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    assert!(overrides(&app, &user.token).await.is_empty());

    let set = pin(&app, &user.token, "conv-a", &pinned).await;
    pin(&app, &user.token, "conv-b", &pinned).await;
    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = listed
        .iter()
        .find(|o| o.conversation_id == "conv-a")
        .expect("conv-a is listed");
    // Exactly these fields: `configuration_id`, `conversation_id`, `updated_at`.
    assert!(first.other.is_empty(), "{first:?}");
    assert_eq!(first.configuration_id, pinned.id);
    assert_eq!(first.updated_at, set.updated_at);

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
    assert_eq!(listed[0].conversation_id, "conv-b");
    assert_eq!(resolved(&app, &resolver, Some("conv-a")).await.source, "default");
    assert_eq!(resolved(&app, &resolver, Some("conv-b")).await.source, "override");
}

async fn deleting_a_configuration_removes_its_overrides(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let doomed = app.create_openai(&user.token, "doomed", "sk-doomed-key-0010").await;
    let kept = app.create_openai(&user.token, "kept", "sk-kept-key-0011").await;
    pin(&app, &user.token, "conv-doomed-1", &doomed).await;
    pin(&app, &user.token, "conv-doomed-2", &doomed).await;
    pin(&app, &user.token, "conv-kept", &kept).await;

    let deleted = app.delete(&doomed.path(), &user.token).await;
    assert_eq!(deleted.status(), 204);

    let listed = overrides(&app, &user.token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].conversation_id, "conv-kept");
    assert_eq!(listed[0].configuration_id, kept.id);
    let body = resolved(&app, &resolver, Some("conv-doomed-1")).await;
    assert_eq!(body.source, "default");
    assert_eq!(body.configuration.id, Some(default.id));
}

async fn the_conversations_page_lists_changes_and_removes_overrides(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app
        .create_openai(&user.token, "first-config", "sk-first-key-0021")
        .await;
    let second = app
        .create_openai(&user.token, "second-config", "sk-second-key-0022")
        .await;
    pin(&app, &user.token, "conv-page-a", &first).await;
    pin(&app, &user.token, "conv-page-b", &first).await;

    let page = browser.page("/conversations").await;
    assert!(page.contains("conv-page-a") && page.contains("conv-page-b"), "{page}");
    assert!(page.contains("first-config") && page.contains("second-config"));
    assert!(!page.contains("sk-first-key") && !page.contains("sk-second-key"));
    let csrf = browser.csrf().await;

    // htmx: the fragment with the change.
    let response = browser
        .post_htmx(
            "/conversations/conv-page-a",
            &[
                ("configuration_id", second.id.to_string().as_str()),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(fragment.contains("conv-page-a"));
    let listed = overrides(&app, &user.token).await;
    let a = listed.iter().find(|o| o.conversation_id == "conv-page-a").unwrap();
    assert_eq!(a.configuration_id, second.id);

    // Without JavaScript: a redirect back to the page.
    let response = browser
        .post_form(
            "/conversations/conv-page-b",
            &[
                ("configuration_id", second.id.to_string().as_str()),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/conversations");
    let listed = overrides(&app, &user.token).await;
    assert!(listed.iter().all(|o| o.configuration_id == second.id), "{listed:?}");

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
    pin(&app, &user.token, "conv-page-c", &first).await;
    let response = browser
        .post_form("/conversations/conv-page-c", &[("configuration_id", "")])
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(overrides(&app, &user.token).await.len(), 1);
}
