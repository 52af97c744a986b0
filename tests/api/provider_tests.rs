//! Testing a provider connection: each provider family is asked the right way, answers are
//! classified without echoing the provider's body, saved configurations record their result.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use lanyard::db::DbId;
use lanyard::db::schema::{connections, llm_configurations};
use serde_json::json;
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::configurations::Configuration;
use crate::helpers::providers::{
    GOOD_KEY, PROVIDER_SECRET, assert_failed, assert_ok, fake_openai, loopback_allowed, openai_at, openai_base,
    openai_models, openai_values, provider_answering, requests, test_saved, test_values,
};
use crate::helpers::{TestApp, assert_error, location};
use crate::on_both_backends;

on_both_backends!(settings(loopback_allowed):
    a_good_key_is_ok_with_the_models_and_a_latency,
    a_rejected_key_is_invalid_key,
    a_model_the_provider_does_not_list_is_ok_with_a_warning,
    each_failing_answer_is_classified_without_the_providers_body,
    a_hanging_provider_times_out_within_fifteen_seconds,
    a_closed_port_is_unreachable,
    an_answer_over_one_mebibyte_is_a_provider_error,
    openai_compatible_providers_are_asked_for_models_with_a_bearer_key,
    anthropic_is_asked_with_x_api_key_and_its_version,
    gemini_gets_its_key_in_a_header_and_never_in_the_url,
    azure_is_asked_with_its_api_version_and_api_key_header,
    ollama_is_asked_for_its_tags_without_a_key,
    a_saved_configuration_is_tested_by_path_and_by_id,
    a_saved_configurations_result_is_recorded_on_it,
    another_users_configuration_cannot_be_tested,
    an_undecryptable_key_tests_as_key_unreadable_and_every_page_still_renders,
    the_row_test_answers_the_row_with_htmx_and_a_redirect_without,
    testing_the_form_lists_the_models_found_as_suggestions,
    testing_an_unchanged_edit_form_uses_the_stored_key,
    testing_a_changed_edit_form_without_a_key_asks_for_the_key,
);

/// The request carries no query string (Gemini's key must never travel in the URL).
struct NoQueryString;

impl Match for NoQueryString {
    fn matches(&self, request: &Request) -> bool {
        request.url.query().is_none()
    }
}

/// The request carries no credential in any header a provider reads one from.
struct NoKeyHeaders;

impl Match for NoKeyHeaders {
    fn matches(&self, request: &Request) -> bool {
        ["authorization", "x-api-key", "api-key", "x-goog-api-key"]
            .iter()
            .all(|name| !request.headers.contains_key(*name))
    }
}

async fn a_good_key_is_ok_with_the_models_and_a_latency(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_models())
                .set_delay(Duration::from_millis(60)),
        )
        .mount(&server)
        .await;

    let result = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
    assert_ok(&result, &["gpt-4o", "gpt-4o-mini"]);
    assert!(
        result["latency_ms"].as_i64().unwrap() >= 60,
        "the latency is measured: {result}"
    );
    assert_eq!(requests(&server).await.len(), 1, "one request, no retries");
}

async fn a_rejected_key_is_invalid_key(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let result = test_values(
        &app,
        &user.token,
        &openai_values(&server, "sk-wrong-key-0002", "gpt-4o"),
    )
    .await;
    assert_failed(&result, "invalid_key");
    assert!(result["latency_ms"].is_i64(), "the provider was reached: {result}");
}

async fn a_model_the_provider_does_not_list_is_ok_with_a_warning(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let result = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-5-turbo")).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["code"], "ok", "{result}");
    assert_eq!(result["warnings"], json!(["model_not_listed"]), "{result}");
    assert_eq!(result["models"], json!(["gpt-4o", "gpt-4o-mini"]), "{result}");
}

async fn each_failing_answer_is_classified_without_the_providers_body(app: TestApp) {
    let user = app.user().await;
    for (status, code) in [
        (401, "invalid_key"),
        (403, "forbidden"),
        (404, "not_found"),
        (429, "rate_limited"),
        (500, "provider_error"),
        (502, "provider_error"),
        (503, "provider_error"),
    ] {
        let server = provider_answering(
            ResponseTemplate::new(status).set_body_string(format!("{PROVIDER_SECRET}: internal trace, key {GOOD_KEY}")),
        )
        .await;
        let result = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
        assert_failed(&result, code);
        assert!(
            result["latency_ms"].is_i64(),
            "HTTP {status}: the provider was reached: {result}"
        );
        assert!(!result.to_string().contains(GOOD_KEY), "HTTP {status}: {result}");
        if status == 429 {
            let message = result["message"].as_str().unwrap();
            assert!(
                message.contains("throttl"),
                "a 429 says the key is being throttled: {message}"
            );
        }
    }
}

async fn a_hanging_provider_times_out_within_fifteen_seconds(app: TestApp) {
    let user = app.user().await;
    let server = provider_answering(
        ResponseTemplate::new(200)
            .set_body_json(openai_models())
            .set_delay(Duration::from_secs(30)),
    )
    .await;
    let started = Instant::now();
    let result = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "the test took {took:?}");
    assert_failed(&result, "timeout");
}

async fn a_closed_port_is_unreachable(app: TestApp) {
    let user = app.user().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let body = json!({"provider": "openai", "model": "gpt-4o", "api_key": GOOD_KEY,
                      "base_url": format!("http://127.0.0.1:{port}/v1")});
    let result = test_values(&app, &user.token, &body).await;
    assert_failed(&result, "unreachable");
}

async fn an_answer_over_one_mebibyte_is_a_provider_error(app: TestApp) {
    let user = app.user().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let server = provider_answering(
        ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "gpt-4o", "padding": padding}]})),
    )
    .await;
    let result = test_values(&app, &user.token, &openai_values(&server, GOOD_KEY, "gpt-4o")).await;
    assert_failed(&result, "provider_error");
}

async fn openai_compatible_providers_are_asked_for_models_with_a_bearer_key(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_models()))
        .mount(&server)
        .await;
    let family = [
        "openai",
        "mistral",
        "groq",
        "openrouter",
        "deepseek",
        "together",
        "xai",
        "openai_compatible",
    ];
    for provider in family {
        let body =
            json!({"provider": provider, "model": "gpt-4o", "api_key": GOOD_KEY, "base_url": openai_base(&server)});
        let result = test_values(&app, &user.token, &body).await;
        assert_ok(&result, &["gpt-4o", "gpt-4o-mini"]);
    }
    let seen = requests(&server).await;
    assert_eq!(seen.len(), family.len());
    for request in seen {
        assert_eq!(request.method.as_str(), "GET");
        assert!(request.url.query().is_none(), "{}", request.url);
    }
}

async fn anthropic_is_asked_with_x_api_key_and_its_version(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("x-api-key", GOOD_KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5"}],
            "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5",
        })))
        .mount(&server)
        .await;
    let body =
        json!({"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": GOOD_KEY, "base_url": server.uri()});
    let result = test_values(&app, &user.token, &body).await;
    assert_ok(&result, &["claude-sonnet-4-5"]);
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 1);
    assert!(
        !seen[0].headers.contains_key("authorization"),
        "the key travels only in x-api-key"
    );
}

async fn gemini_gets_its_key_in_a_header_and_never_in_the_url(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1beta/models"))
        .and(header("x-goog-api-key", GOOD_KEY))
        .and(NoQueryString)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "models": [
                {"name": "models/gemini-1.5-pro", "displayName": "Gemini 1.5 Pro"},
                {"name": "models/gemini-2.0-flash", "displayName": "Gemini 2.0 Flash"},
            ]
        })))
        .mount(&server)
        .await;
    let body =
        json!({"provider": "gemini", "model": "gemini-2.0-flash", "api_key": GOOD_KEY, "base_url": server.uri()});
    let result = test_values(&app, &user.token, &body).await;
    assert_ok(&result, &["gemini-1.5-pro", "gemini-2.0-flash"]);
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].url.as_str().contains(GOOD_KEY), "{}", seen[0].url);
}

async fn azure_is_asked_with_its_api_version_and_api_key_header(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/openai/models"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", GOOD_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": [{"id": "gpt-4o", "object": "model"}]
        })))
        .mount(&server)
        .await;
    let body = json!({"provider": "azure_openai", "model": "gpt-4o", "api_key": GOOD_KEY, "base_url": server.uri()});
    let result = test_values(&app, &user.token, &body).await;
    assert_ok(&result, &["gpt-4o"]);
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].url.query(),
        Some("api-version=2024-10-21"),
        "nothing else in the URL"
    );
}

async fn ollama_is_asked_for_its_tags_without_a_key(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/tags"))
        .and(NoKeyHeaders)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "models": [{"name": "llama3:latest", "model": "llama3:latest", "size": 4_661_224_676_u64}]
        })))
        .mount(&server)
        .await;
    // A plain http URL on 127.0.0.1 is accepted: the operator listed 127.0.0.1/32.
    let body = json!({"provider": "ollama", "model": "llama3", "base_url": server.uri()});
    let result = test_values(&app, &user.token, &body).await;
    assert_ok(&result, &["llama3:latest"]);

    let saved = app
        .create_configuration(
            &user.token,
            json!({"name": "local", "provider": "ollama", "model": "llama3", "base_url": server.uri()}),
        )
        .await;
    assert_eq!(saved.base_url, Some(server.uri()));
    assert_ok(&test_saved(&app, &user.token, &saved).await, &["llama3:latest"]);
    assert_eq!(requests(&server).await.len(), 2);
}

async fn a_saved_configuration_is_tested_by_path_and_by_id(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    assert_ok(&test_saved(&app, &user.token, &saved).await, &["gpt-4o", "gpt-4o-mini"]);
    let by_id = test_values(&app, &user.token, &json!({"id": saved.id})).await;
    assert_ok(&by_id, &["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(requests(&server).await.len(), 2);

    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(
        app.post_json("/api/llm-configurations/test", &user.token, &json!({"id": unknown}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.post_json(
            &format!("/api/llm-configurations/{unknown}/test"),
            &user.token,
            &json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

async fn a_saved_configurations_result_is_recorded_on_it(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    assert_eq!(saved.test_status, "untested");

    let result = test_saved(&app, &user.token, &saved).await;
    assert_ok(&result, &["gpt-4o", "gpt-4o-mini"]);
    let fetched = app.refetch(&user.token, &saved).await;
    assert_eq!(fetched.test_status, "ok", "{fetched:?}");
    assert_eq!(
        fetched.test_message.as_deref(),
        result["message"].as_str(),
        "{fetched:?}"
    );
    assert_eq!(fetched.test_latency_ms, result["latency_ms"].as_i64(), "{fetched:?}");
    let tested_at = fetched.tested_at.expect("tested_at is set");
    assert!(chrono::DateTime::parse_from_rfc3339(&tested_at).is_ok(), "{tested_at}");

    server.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500).set_body_string(PROVIDER_SECRET))
        .mount(&server)
        .await;
    let result = test_values(&app, &user.token, &json!({"id": saved.id})).await;
    assert_failed(&result, "provider_error");
    let response = app.get(&saved.path(), &user.token).await;
    let text = response.text().await.unwrap();
    assert!(!text.contains(PROVIDER_SECRET), "{text}");
    let fetched: Configuration = serde_json::from_str(&text).unwrap();
    assert_eq!(fetched.test_status, "failed", "{fetched:?}");
    assert_eq!(
        fetched.test_message.as_deref(),
        result["message"].as_str(),
        "{fetched:?}"
    );
    assert!(fetched.test_latency_ms.is_some(), "{fetched:?}");
    assert!(
        fetched.tested_at.as_deref().unwrap() >= tested_at.as_str(),
        "{fetched:?}"
    );
}

async fn another_users_configuration_cannot_be_tested(app: TestApp) {
    let owner = app.user().await;
    let stranger = app.user().await;
    let server = fake_openai().await;
    let saved = app.create_configuration(&owner.token, openai_at(&server, "work")).await;
    let by_path = app.post_json(&saved.action("test"), &stranger.token, &json!({})).await;
    assert_error(by_path, 404, "not_found").await;
    let by_id = app
        .post_json(
            "/api/llm-configurations/test",
            &stranger.token,
            &json!({"id": saved.id}),
        )
        .await;
    assert_error(by_id, 404, "not_found").await;
    assert!(
        requests(&server).await.is_empty(),
        "a stranger's test reached the provider"
    );
    let fetched = app.refetch(&owner.token, &saved).await;
    assert_eq!(fetched.test_status, "untested", "{fetched:?}");
}

async fn an_undecryptable_key_tests_as_key_unreadable_and_every_page_still_renders(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let create = |name: &str, key: &str| json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": key, "base_url": openai_base(&server)});
    let victim = app.create_configuration(&user.token, create("victim", GOOD_KEY)).await;
    let donor = app
        .create_configuration(&user.token, create("donor", "sk-donor-key-0003"))
        .await;

    // Another row's ciphertext is bound to that row: it must not open here.
    let victim_id = victim.db_id();
    let donor_id = donor.db_id();
    app.with_db(move |conn| {
        // Keys live on the configurations' connections.
        let connection_of = |conn: &mut lanyard::db::DbConnection, id: DbId| -> DbId {
            llm_configurations::table
                .find(id)
                .select(llm_configurations::connection_id)
                .first(conn)
                .unwrap()
        };
        let (victim_id, donor_id) = (connection_of(conn, victim_id), connection_of(conn, donor_id));
        let donor_ciphertext = connections::table
            .find(donor_id)
            .select(connections::api_key_encrypted)
            .first::<Option<Vec<u8>>>(conn)
            .unwrap();
        assert!(donor_ciphertext.is_some());
        diesel::update(connections::table.find(victim_id))
            .set(connections::api_key_encrypted.eq(donor_ciphertext))
            .execute(conn)
            .unwrap();
    })
    .await;

    let result = test_saved(&app, &user.token, &victim).await;
    assert_failed(&result, "key_unreadable");
    assert!(
        result["message"].as_str().unwrap().contains("re-enter the key"),
        "{result}"
    );
    let by_id = test_values(&app, &user.token, &json!({"id": victim.id})).await;
    assert_failed(&by_id, "key_unreadable");
    assert!(requests(&server).await.is_empty(), "no key, no request");

    let fetched = app.refetch(&user.token, &victim).await;
    assert_eq!(fetched.test_status, "failed", "{fetched:?}");
    assert_eq!(
        fetched.test_message.as_deref(),
        result["message"].as_str(),
        "{fetched:?}"
    );
    assert_eq!(app.configurations(&user.token).await.len(), 2);
    for api in [
        "/api/llm-configurations/default",
        "/api/conversations",
        "/api/providers",
    ] {
        assert_eq!(app.get(api, &user.token).await.status(), 200, "GET {api}");
    }
    let page = browser.page("/llm-configurations").await;
    assert!(page.contains("re-enter the key"), "the page says what to do: {page}");
    browser.page("/settings").await;
    browser.page(&format!("/llm-configurations/{}/edit", victim.id)).await;
    browser.page("/llm-configurations/new").await;
}

async fn the_row_test_answers_the_row_with_htmx_and_a_redirect_without(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    let action = format!("/llm-configurations/{}/test", saved.id);
    let csrf = browser.csrf().await;

    let response = browser.post_htmx(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 200);
    let row = response.text().await.unwrap();
    assert!(
        row.starts_with(&format!(r#"<tr id="configuration-{}""#, saved.id)),
        "{row}"
    );
    assert!(!row.contains("<html") && !row.contains("<body"), "{row}");
    assert!(row.contains(r#"data-badge="status">OK</span>"#), "{row}");

    server.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_string(PROVIDER_SECRET))
        .mount(&server)
        .await;
    let response = browser.post_form(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/llm-configurations");
    assert_eq!(requests(&server).await.len(), 1);
    let page = browser.page("/llm-configurations").await;
    assert!(page.contains(r#"data-badge="status">Failed</span>"#), "{page}");
    assert!(!page.contains(PROVIDER_SECRET));
    let fetched = app.refetch(&user.token, &saved).await;
    assert_eq!(fetched.test_status, "failed", "{fetched:?}");
}

/// The form's fields for testing unsaved values.
fn form<'a>(provider: &'a str, api_key: &'a str, base_url: &'a str, csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "work"),
        ("provider", provider),
        ("model", "gpt-4o"),
        ("api_key", api_key),
        ("base_url", base_url),
        ("is_active", "true"),
        ("csrf_token", csrf),
    ]
}

async fn testing_the_form_lists_the_models_found_as_suggestions(app: TestApp) {
    let (_, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let csrf = browser.csrf().await;
    let base = openai_base(&server);
    let response = browser
        .post_htmx("/llm-configurations/test", &form("openai", GOOD_KEY, &base, &csrf))
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(!fragment.contains("<html"), "{fragment}");
    assert!(fragment.contains(r#"data-code="ok""#), "{fragment}");
    let datalist = &fragment[fragment
        .find(r#"<datalist id="model-suggestions""#)
        .expect("a datalist")..];
    assert!(datalist.contains(r#"<option value="gpt-4o">"#), "{fragment}");
    assert!(datalist.contains(r#"<option value="gpt-4o-mini">"#), "{fragment}");
    assert!(!fragment.contains(GOOD_KEY));

    let response = browser
        .post_htmx(
            "/llm-configurations/test",
            &form("openai", "sk-wrong-key-0002", &base, &csrf),
        )
        .await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(fragment.contains(r#"data-code="invalid_key""#), "{fragment}");
    assert!(!fragment.contains(PROVIDER_SECRET), "{fragment}");
    assert_eq!(requests(&server).await.len(), 2);
}

async fn testing_an_unchanged_edit_form_uses_the_stored_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let base = openai_base(&server);
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    let saved_id = saved.id.to_string();
    let csrf = browser.csrf().await;
    let mut fields = form("openai", "", &base, &csrf);
    fields.push(("configuration_id", saved_id.as_str()));
    let response = browser.post_htmx("/llm-configurations/test", &fields).await;
    assert_eq!(response.status(), 200);
    let fragment = response.text().await.unwrap();
    assert!(fragment.contains(r#"data-code="ok""#), "{fragment}");
    assert!(fragment.contains(r#"<option value="gpt-4o">"#), "{fragment}");
    assert!(!fragment.contains(GOOD_KEY));
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {GOOD_KEY}").as_str());
}

async fn testing_a_changed_edit_form_without_a_key_asks_for_the_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let server = fake_openai().await;
    let elsewhere = fake_openai().await;
    let base = openai_base(&server);
    let saved = app.create_configuration(&user.token, openai_at(&server, "work")).await;
    let saved_id = saved.id.to_string();
    let csrf = browser.csrf().await;
    let moved = openai_base(&elsewhere);
    for (provider, base_url) in [
        ("openai", moved.as_str()),
        ("openai_compatible", base.as_str()),
        ("openai", ""),
    ] {
        let mut fields = form(provider, "", base_url, &csrf);
        fields.push(("configuration_id", saved_id.as_str()));
        let response = browser.post_htmx("/llm-configurations/test", &fields).await;
        assert_eq!(response.status(), 422, "{provider} at {base_url:?}");
        let fragment = response.text().await.unwrap();
        assert!(fragment.contains("enter the key"), "{fragment}");
        assert!(!fragment.contains("<html"), "{fragment}");
    }
    assert!(
        requests(&elsewhere).await.is_empty(),
        "the stored key went to another host"
    );
    assert!(requests(&server).await.is_empty());
}
