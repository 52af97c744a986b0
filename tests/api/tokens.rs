//! API tokens: bearer authentication (missing, revoked, expired, a disabled user's), scopes, and
//! managing tokens from the browser session (a resolve token needs the current password).

use chrono::{Duration, Utc};
use diesel::prelude::*;
use lanyard::crypto::hash_token;
use lanyard::db::DbConnection;
use lanyard::db::schema::api_tokens;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::helpers::configurations::{CONFIGURATIONS, openai_with_key};
use crate::helpers::forms::{create_token, post_form, revoked_by_name, token_names};
use crate::helpers::secrets::assert_no_key_in;
use crate::helpers::{TEST_PASSWORD, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    a_resolve_token_needs_the_current_password_over_the_api,
    the_settings_form_asks_for_the_current_password_for_a_resolve_token,
    requests_without_a_valid_bearer_token_are_401,
    a_revoked_token_is_401,
    an_expired_token_is_401,
    a_disabled_users_token_is_401,
    a_read_token_cannot_change_anything,
    a_resolve_only_token_cannot_read_configurations,
    api_tokens_are_managed_by_the_browser_session_only,
);

async fn a_resolve_token_needs_the_current_password_over_the_api(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;

    let without = create_token(&browser, json!({"name": "agent", "scopes": ["resolve"]})).await;
    assert_error(without, 403, "reauthentication_required").await;
    let wrong = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["read", "resolve"], "current_password": "not my password"}),
    )
    .await;
    let body = assert_error(wrong, 403, "reauthentication_required").await;
    assert!(body["message"].as_str().unwrap().contains("current_password"), "{body}");
    assert_eq!(
        revoked_by_name(&browser).await,
        [("test".to_owned(), false)],
        "nothing created"
    );

    let right = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD}),
    )
    .await;
    assert_eq!(right.status(), 201);
    let created: Value = right.json().await.unwrap();
    assert_eq!(created["scopes"], json!(["resolve"]));
    let secret = created["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/resolve", secret).await.status(),
        404,
        "a working resolve token"
    );

    // Tokens that cannot reveal keys need no password.
    let read_write = create_token(&browser, json!({"name": "scripts", "scopes": ["read", "write"]})).await;
    assert_eq!(read_write.status(), 201);
}

async fn the_settings_form_asks_for_the_current_password_for_a_resolve_token(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;

    let without = post_form(
        &browser,
        "/settings/tokens",
        &[("name", "agent"), ("scopes", "resolve"), ("current_password", "")],
    )
    .await;
    assert_eq!(without.status(), 422);
    let page = without.text().await.unwrap();
    assert!(page.contains("id=\"token-current-password-error\""), "{page}");
    assert!(!page.contains("id=\"new-token-value\""), "{page}");
    let wrong = post_form(
        &browser,
        "/settings/tokens",
        &[
            ("name", "agent"),
            ("scopes", "resolve"),
            ("current_password", "not it at all"),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("id=\"token-current-password-error\"")
    );

    let right = post_form(
        &browser,
        "/settings/tokens",
        &[
            ("name", "agent"),
            ("scopes", "resolve"),
            ("current_password", TEST_PASSWORD),
        ],
    )
    .await;
    assert_eq!(right.status(), 200);
    let page = right.text().await.unwrap();
    assert!(page.contains("id=\"new-token-value\">lny_"), "{page}");
    let read_only = post_form(&browser, "/settings/tokens", &[("name", "reader"), ("scopes", "read")]).await;
    assert_eq!(
        read_only.status(),
        200,
        "no password for a token that cannot reveal keys"
    );
}

async fn list_status(app: &TestApp, token: &str) -> u16 {
    app.get(CONFIGURATIONS, token).await.status().as_u16()
}

async fn requests_without_a_valid_bearer_token_are_401(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let garbage = [
        String::new(),
        "Bearer ".to_owned(),
        "Bearer garbage".to_owned(),
        format!("Bearer lny_{}", "A".repeat(43)),
        format!("Bearer {}x", user.token),
        format!("Basic {}", "dXNlcjpwYXNzd29yZA=="),
        user.token.clone(),
    ];
    let mut bodies = Vec::new();
    for authorization in garbage {
        for request in [
            app.client.get(app.url(CONFIGURATIONS)),
            app.client.get(app.url(&created.path())),
            app.client.get(app.url("/api/llm-configurations/default")),
            app.client
                .post(app.url(CONFIGURATIONS))
                .json(&openai_with_key("intruder", "sk-intruder-0123456789")),
            app.client.put(app.url(&created.path())).json(&json!({"name": "taken"})),
            app.client.delete(app.url(&created.path())),
        ] {
            let request = if authorization.is_empty() {
                request
            } else {
                request.header(AUTHORIZATION, &authorization)
            };
            bodies.push(assert_error(request.send().await.unwrap(), 401, "unauthorized").await);
        }
    }
    // Every failure looks the same, so nothing tells a guesser which part was wrong.
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "{bodies:?}");
    assert_eq!(app.configurations(&user.token).await, vec![created]);
}

async fn a_revoked_token_is_401(app: TestApp) {
    let user = app.user().await;
    let token = app.token_for(&user, "read,write").await;
    assert_eq!(list_status(&app, &token).await, 200);
    let hash = hash_token(&token).to_vec();
    app.with_db(move |conn| {
        diesel::update(api_tokens::table.filter(api_tokens::token_hash.eq(hash)))
            .set(api_tokens::is_revoked.eq(true))
            .execute(conn)
            .unwrap()
    })
    .await;
    app.assert_unauthorized(CONFIGURATIONS, &token).await;
    assert_error(
        app.post_json(
            CONFIGURATIONS,
            &token,
            &openai_with_key("revoked", "sk-revoked-0123456789"),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    // The user's other token is unaffected.
    assert!(app.configurations(&user.token).await.is_empty());
}

async fn an_expired_token_is_401(app: TestApp) {
    let user = app.user().await;
    let token = app.token_for(&user, "read,write").await;
    let hash = hash_token(&token).to_vec();
    let set_expiry = |offset: Duration| {
        let hash = hash.clone();
        move |conn: &mut DbConnection| {
            diesel::update(api_tokens::table.filter(api_tokens::token_hash.eq(hash)))
                .set(api_tokens::expires_at.eq(Some(Utc::now().naive_utc() + offset)))
                .execute(conn)
                .unwrap()
        }
    };
    app.with_db(set_expiry(Duration::hours(1))).await;
    assert_eq!(list_status(&app, &token).await, 200);
    app.with_db(set_expiry(Duration::seconds(-1))).await;
    app.assert_unauthorized(CONFIGURATIONS, &token).await;
    assert_error(
        app.post_json(
            CONFIGURATIONS,
            &token,
            &openai_with_key("expired", "sk-expired-0123456789"),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert!(app.configurations(&user.token).await.is_empty());
}

async fn a_disabled_users_token_is_401(app: TestApp) {
    let user = app.user().await;
    let bystander = app.user().await;
    app.create_openai(&user.token, "mine", "sk-disabled-0123456789").await;
    app.disable_in_database(&user).await;
    app.assert_unauthorized(CONFIGURATIONS, &user.token).await;
    app.assert_unauthorized("/api/llm-configurations/default", &user.token)
        .await;
    assert_error(
        app.post_json(
            CONFIGURATIONS,
            &user.token,
            &openai_with_key("more", "sk-disabled-more-0123"),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(list_status(&app, &bystander.token).await, 200);
}

async fn a_read_token_cannot_change_anything(app: TestApp) {
    let user = app.user().await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-0123456789").await;
    let second = app
        .create_openai(&user.token, "second", "sk-second-key-0123456789")
        .await;
    let before = app.configurations(&user.token).await;
    let read = app.token_for(&user, "read").await;

    assert_eq!(list_status(&app, &read).await, 200);
    assert_eq!(app.get(&first.path(), &read).await.status(), 200);
    assert_eq!(app.get("/api/llm-configurations/default", &read).await.status(), 200);

    let responses = [
        app.post_json(
            CONFIGURATIONS,
            &read,
            &openai_with_key("third", "sk-third-key-0123456789"),
        )
        .await,
        app.put_json(&first.path(), &read, &json!({"name": "renamed"})).await,
        app.delete(&first.path(), &read).await,
        app.put_json(&second.action("set-default"), &read, &json!({})).await,
    ];
    for response in responses {
        assert_error(response, 403, "forbidden").await;
    }
    assert_eq!(app.configurations(&user.token).await, before);
}

async fn a_resolve_only_token_cannot_read_configurations(app: TestApp) {
    let user = app.user().await;
    let created = app
        .create_openai(&user.token, "mine", "sk-resolve-key-0123456789")
        .await;
    let resolve = app.token_for(&user, "resolve").await;
    for path in [
        CONFIGURATIONS.to_owned(),
        created.path(),
        "/api/llm-configurations/default".to_owned(),
    ] {
        let body = assert_error(app.get(&path, &resolve).await, 403, "forbidden").await;
        assert_no_key_in(&body.to_string(), &["sk-resolve-key-0123456789"], &path);
    }
    assert_error(
        app.post_json(
            CONFIGURATIONS,
            &resolve,
            &openai_with_key("other", "sk-other-key-0123456789"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.configurations(&user.token).await, vec![created]);
}

async fn api_tokens_are_managed_by_the_browser_session_only(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;

    // A token cannot manage tokens.
    assert_eq!(app.get("/api/tokens", &user.token).await.status(), 403);
    let by_token = app
        .post_json(
            "/api/tokens",
            &user.token,
            &json!({"name": "from-a-token", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(by_token.status(), 403);
    assert_eq!(token_names(&browser).await, ["test"]);

    let without_csrf = browser
        .client
        .post(browser.url("/api/tokens"))
        .json(&json!({"name": "laptop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_csrf.status(), 403);

    let created = browser
        .client
        .post(browser.url("/api/tokens"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "laptop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lny_"), "{secret}");
    assert_eq!(created["scopes"], json!(["read"]));

    let listed = browser.get("/api/tokens").await;
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(listed.contains("laptop"));
    assert!(!listed.contains(&secret), "the token is shown once: {listed}");
    assert!(!listed.contains(&secret[4..]));
    let settings = browser.page("/settings").await;
    assert!(!settings.contains(&secret[4..]));

    assert_eq!(app.get("/api/llm-configurations", &secret).await.status(), 200);
    let revoke = browser.url(&format!("/api/tokens/{}", created["id"].as_str().unwrap()));
    assert_eq!(browser.client.delete(&revoke).send().await.unwrap().status(), 403);
    let revoked = browser
        .client
        .delete(&revoke)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(app.get("/api/llm-configurations", &secret).await.status(), 401);
    let listed: Vec<Value> = browser.get("/api/tokens").await.json().await.unwrap();
    let laptop = listed.iter().find(|token| token["name"] == "laptop").unwrap();
    assert_eq!(laptop["revoked"], true);
    // The user's other token still works.
    assert_eq!(app.get("/api/llm-configurations", &user.token).await.status(), 200);
}
