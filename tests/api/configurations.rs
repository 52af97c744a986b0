//! The configuration API: CRUD, the default rules, and the key contract.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    creating_a_configuration_returns_it_masked_with_its_location,
    the_first_configuration_becomes_the_default,
    a_missing_or_null_api_key_on_update_keeps_the_stored_key,
    another_users_configuration_is_the_same_404_as_a_missing_one,
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
    assert_error(
        app.get("/api/llm-configurations/default", &user.token).await,
        404,
        "not_found",
    )
    .await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-0001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-0002").await;
    assert_eq!(first["is_default"], true);
    assert_eq!(second["is_default"], false);
    let default: Value = app
        .get("/api/llm-configurations/default", &user.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(default["id"], first["id"]);
}

async fn a_missing_or_null_api_key_on_update_keeps_the_stored_key(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "keep", "sk-keep-this-key-x7Qa").await;
    let path = format!("/api/llm-configurations/{}", created["id"].as_str().unwrap());
    let renamed = app
        .put_json(&path, &user.token, &json!({"name": "kept", "api_key": null}))
        .await;
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["name"], "kept");
    assert_eq!(renamed["api_key_masked"], "sk-…x7Qa");
    assert_eq!(renamed["has_api_key"], true);
}

async fn another_users_configuration_is_the_same_404_as_a_missing_one(app: TestApp) {
    let owner = app.user().await;
    let intruder = app.user().await;
    let created = app.create_openai(&owner.token, "mine", "sk-owner-key-000001").await;
    let theirs = format!("/api/llm-configurations/{}", created["id"].as_str().unwrap());
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
    assert_eq!(app.list(&owner.token).await.len(), 1);
}
