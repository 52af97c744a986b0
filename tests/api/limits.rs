//! Rate limits and caps: logins, registrations and provider tests per window (exact under
//! concurrency), per-user caps on configurations, tokens and overrides, the body size cap.

use lanyard::config::Settings;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::configurations::CONFIGURATIONS;
use crate::helpers::forms::{create_token, open_registration, post_form};
use crate::helpers::providers::{
    GOOD_KEY, assert_ok, fake_openai, openai_at, openai_values, requests, test_saved, test_values,
};
use crate::helpers::{TEST_PASSWORD, TestApp, assert_error, csrf_from, distinctive_key, egress_policy};
use crate::on_both_backends;

on_both_backends!(
    wrong_passwords_for_a_resolve_token_count_against_the_login_limit,
    wrong_current_passwords_in_a_password_change_count_against_the_login_limit,
    every_registration_attempt_counts_against_the_address_limit,
    a_body_over_64_kib_is_413_and_changes_nothing,
    the_eleventh_failed_login_within_five_minutes_is_refused_with_retry_after,
);

on_both_backends!(settings(ten_tests_per_minute_with_a_wide_pool):
    thirty_simultaneous_provider_tests_run_exactly_the_budget,
);

on_both_backends!(settings(a_wide_pool):
    thirty_simultaneous_wrong_logins_are_judged_exactly_ten_times,
);

on_both_backends!(settings(ten_tests_per_minute):
    the_eleventh_test_in_a_minute_is_rate_limited_with_retry_after,
);

on_both_backends!(settings(small_caps):
    one_configuration_token_or_override_beyond_a_cap_is_a_422_naming_the_limit,
);

/// Enough connections and blocking threads that simultaneous requests really overlap.
fn a_wide_pool(settings: &mut Settings) {
    settings.pool_size = 16;
}

/// The documented budget of ten tests a minute, a loopback fake provider allowed, a wide pool.
fn ten_tests_per_minute_with_a_wide_pool(settings: &mut Settings) {
    a_wide_pool(settings);
    settings.egress = egress_policy("127.0.0.1/32", "allowlist");
    settings.test_rate_per_minute = 10;
}

/// A login attempt through the form, from a fresh visitor on the same address.
async fn login_attempt(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    visitor
        .post_form(
            "/login",
            &[("email", email), ("password", password), ("csrf_token", &csrf)],
        )
        .await
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a numeric Retry-After header")
}

async fn wrong_passwords_for_a_resolve_token_count_against_the_login_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    for attempt in 1..=10 {
        let wrong = create_token(
            &browser,
            json!({"name": "agent", "scopes": ["resolve"], "current_password": "a guess at it"}),
        )
        .await;
        assert_eq!(wrong.status(), 403, "attempt {attempt}");
    }
    let eleventh = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD}),
    )
    .await;
    assert!((1..=300).contains(&retry_after(&eleventh)));
    assert_error(eleventh, 429, "rate_limited").await;
    let login = login_attempt(&app, &user.email, TEST_PASSWORD).await;
    assert_eq!(login.status(), 429, "the login shares the budget");
    assert!((1..=300).contains(&retry_after(&login)));
}

async fn wrong_current_passwords_in_a_password_change_count_against_the_login_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let change = |current: &'static str| {
        let browser = &browser;
        async move {
            post_form(
                browser,
                "/settings/password",
                &[("current_password", current), ("new_password", "a brand new password")],
            )
            .await
        }
    };
    for attempt in 1..=10 {
        assert_eq!(change("not my password").await.status(), 422, "attempt {attempt}");
    }
    let eleventh = change(TEST_PASSWORD).await;
    assert_eq!(eleventh.status(), 429);
    assert!((1..=300).contains(&retry_after(&eleventh)));
    assert_eq!(login_attempt(&app, &user.email, TEST_PASSWORD).await.status(), 429);
}

async fn every_registration_attempt_counts_against_the_address_limit(app: TestApp) {
    let existing = app.user().await;
    open_registration(&app).await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/register").await);
    for attempt in 1..=50 {
        let email = format!("visitor-{attempt}@example.com");
        let response = visitor
            .post_form(
                "/register",
                &[("email", email.as_str()), ("password", "short"), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(response.status(), 422, "attempt {attempt}");
    }
    let refused = visitor
        .post_form(
            "/register",
            &[
                ("email", "visitor-51@example.com"),
                ("password", TEST_PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert!((1..=300).contains(&retry_after(&refused)));
    let created = app
        .with_db(|conn| {
            lanyard::db::users::find_by_email_key(conn, "visitor-51@example.com")
                .unwrap()
                .is_some()
        })
        .await;
    assert!(!created, "a refused registration creates nobody");
    let login = login_attempt(&app, &existing.email, TEST_PASSWORD).await;
    assert_eq!(login.status(), 429, "the same per-address limit as logins");
}

async fn thirty_simultaneous_provider_tests_run_exactly_the_budget(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": []})))
        .mount(&server)
        .await;
    let body = json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-simultaneous-0123456789",
                      "base_url": format!("{}/v1", server.uri())});

    let requests: Vec<_> = (0..30)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/api/llm-configurations/test"))
                .bearer_auth(&user.token)
                .json(&body);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((30 - refused, refused), (10, 20), "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [200, 429].contains(status)),
        "{statuses:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 10);
}

async fn thirty_simultaneous_wrong_logins_are_judged_exactly_ten_times(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let requests: Vec<_> = (0..30)
        .map(|_| {
            let request = visitor.client.post(visitor.url("/login")).form(&[
                ("email", user.email.as_str()),
                ("password", "a wrong password"),
                ("csrf_token", csrf.as_str()),
            ]);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let judged = statuses.iter().filter(|status| **status == 422).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((judged, refused), (10, 20), "{statuses:?}");
}

/// As `loopback_allowed`, with the documented default budget of ten tests a minute.
fn ten_tests_per_minute(settings: &mut Settings) {
    settings.egress = egress_policy("127.0.0.1/32", "allowlist");
    settings.test_rate_per_minute = 10;
}

async fn the_eleventh_test_in_a_minute_is_rate_limited_with_retry_after(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    // Saved and unsaved tests share the budget.
    for _ in 0..5 {
        assert_ok(&test_saved(&app, &user.token, &saved).await, &["gpt-4o", "gpt-4o-mini"]);
        let unsaved = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
        assert_ok(&unsaved, &["gpt-4o", "gpt-4o-mini"]);
    }
    let attempts = [
        app.post_json(
            "/api/llm-configurations/test",
            &user.token,
            &openai_values(&server, GOOD_KEY, "gpt-4o"),
        )
        .await,
        app.post_json(&saved.action("test"), &user.token, &json!({})).await,
        app.post_json("/api/llm-configurations/test", &user.token, &json!({"id": saved.id}))
            .await,
    ];
    for response in attempts {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .expect("a numeric Retry-After header");
        assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
        assert_error(response, 429, "rate_limited").await;
    }
    assert_eq!(requests(&server).await.len(), 10, "refused tests make no request");

    // The budget is per user.
    let other = app.user().await;
    let result = test_values(&app, &other.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
    assert_ok(&result, &["gpt-4o", "gpt-4o-mini"]);
}

/// Caps small enough to reach in a test.
fn small_caps(settings: &mut lanyard::config::Settings) {
    settings.caps.configurations.max = 3;
    settings.caps.tokens.max = 2;
    settings.caps.overrides.max = 2;
}

async fn one_configuration_token_or_override_beyond_a_cap_is_a_422_naming_the_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let mut ids = Vec::new();
    for index in 0..3 {
        let created = app
            .create_openai(&user.token, &format!("cap-{index}"), &distinctive_key("sk-proj-"))
            .await;
        ids.push(created.id.to_string());
    }
    let refused = app
        .post_json(
            "/api/llm-configurations",
            &user.token,
            &json!({"name": "one-too-many", "provider": "openai", "model": "m", "api_key": distinctive_key("sk-")}),
        )
        .await;
    let body = assert_error(refused, 422, "validation_failed").await;
    let message = body["fields"]["LANYARD_MAX_CONFIGURATIONS"][0]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("at most 3 configurations"), "{body}");
    assert_eq!(app.configurations(&user.token).await.len(), 3, "nothing was created");
    // Another user has a budget of their own.
    let other = app.user().await;
    app.create_openai(&other.token, "theirs", &distinctive_key("sk-proj-"))
        .await;

    // The page's form says the same, above the form.
    let csrf = browser.csrf().await;
    let page = browser
        .post_form(
            "/llm-configurations",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "from-the-page"),
                ("provider", "openai"),
                ("model", "m"),
                ("api_key", &distinctive_key("sk-proj-")),
                ("is_active", "true"),
            ],
        )
        .await;
    assert_eq!(page.status(), 422);
    assert!(page.text().await.unwrap().contains("at most 3 configurations"));

    // Overrides: a third conversation is refused, changing a pinned one is not.
    let pin = |conversation: &str, id: &str| {
        let path = format!("/api/conversations/{conversation}/llm-configuration");
        let body = json!({"configuration_id": id});
        let token = user.token.clone();
        let app = &app;
        async move { app.put_json(&path, &token, &body).await }
    };
    assert_eq!(pin("c-1", &ids[0]).await.status(), 200);
    assert_eq!(pin("c-2", &ids[0]).await.status(), 200);
    let body = assert_error(pin("c-3", &ids[0]).await, 422, "validation_failed").await;
    assert!(body["fields"]["LANYARD_MAX_OVERRIDES"].is_array(), "{body}");
    assert_eq!(pin("c-2", &ids[1]).await.status(), 200, "re-pinning is no new override");

    // Tokens: the user holds one (from sign-up); one more is allowed, then none; a revoked
    // token frees its place.
    let create_token = |name: &'static str| {
        let browser = &browser;
        async move {
            let csrf = browser.csrf().await;
            browser
                .client
                .post(browser.url("/api/tokens"))
                .header("X-CSRF-Token", &csrf)
                .json(&json!({"name": name, "scopes": ["read"]}))
                .send()
                .await
                .unwrap()
        }
    };
    let second = create_token("second").await;
    assert_eq!(second.status(), 201);
    let second: serde_json::Value = second.json().await.unwrap();
    let body = assert_error(create_token("third").await, 422, "validation_failed").await;
    assert!(body["fields"]["LANYARD_MAX_TOKENS"].is_array(), "{body}");
    let csrf = browser.csrf().await;
    let revoked = browser
        .client
        .delete(browser.url(&format!("/api/tokens/{}", second["id"].as_str().unwrap())))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(create_token("third").await.status(), 201);
}

async fn a_body_over_64_kib_is_413_and_changes_nothing(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let padding = "k".repeat(70 * 1024);
    let oversized = json!({"name": "big", "provider": "openai", "model": "gpt-4o", "api_key": padding});
    assert_error(
        app.post_json(CONFIGURATIONS, &user.token, &oversized).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_error(
        app.put_json(
            &created.path(),
            &user.token,
            &json!({"name": "renamed", "api_key": padding}),
        )
        .await,
        413,
        "payload_too_large",
    )
    .await;
    // Just under the cap is read and judged on its merits (a key that long is invalid).
    let under = json!({"name": "big", "provider": "openai", "model": "gpt-4o", "api_key": "k".repeat(60 * 1024)});
    let body = assert_error(
        app.post_json(CONFIGURATIONS, &user.token, &under).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["fields"]["api_key"].is_array(), "{body}");
    assert_eq!(app.configurations(&user.token).await, vec![created]);
}

async fn the_eleventh_failed_login_within_five_minutes_is_refused_with_retry_after(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let attempt = |email: String, password: &'static str| {
        let fields = [
            ("email", email),
            ("password", password.to_owned()),
            ("csrf_token", csrf.clone()),
        ];
        let request = visitor.client.post(visitor.url("/login")).form(&fields);
        async move { request.send().await.unwrap() }
    };

    for failure in 1..=10 {
        let response = attempt(user.email.clone(), "not the password").await;
        assert_eq!(response.status(), 422, "failure {failure}");
    }
    let eleventh = attempt(user.email.clone(), "not the password").await;
    assert_eq!(eleventh.status(), 429);
    let retry_after: u64 = eleventh.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    // Even the right password waits now, for this account from this address...
    assert_eq!(attempt(user.email.clone(), TEST_PASSWORD).await.status(), 429);
    // ...but another account is not locked out by it.
    let other = app.user().await;
    let other_login = attempt(other.email.clone(), TEST_PASSWORD).await;
    assert_eq!(other_login.status(), 303);
}
