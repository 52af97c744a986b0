//! Statuses and codes at the edge (malformed input, credentials, scopes, size), and the secret
//! contract: a stored key never comes back out, not in a response and not in the database.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use lanyard::crypto::hash_token;
use lanyard::db::schema::{api_tokens, llm_configurations, users};
use lanyard::db::{DbConnection, DbId};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestDatabase, assert_error};
use crate::on_both_backends;

on_both_backends!(
    malformed_json_is_a_400,
    a_body_not_sent_as_json_is_a_400,
    a_malformed_uuid_in_the_path_is_a_400,
    requests_without_a_valid_bearer_token_are_401,
    a_revoked_token_is_401,
    an_expired_token_is_401,
    a_disabled_users_token_is_401,
    a_read_token_cannot_change_anything,
    a_resolve_only_token_cannot_read_configurations,
    a_body_over_64_kib_is_413_and_changes_nothing,
    unknown_api_routes_are_a_json_404,
    no_response_carries_the_key,
    the_database_never_holds_a_key_in_clear,
    masks_show_the_known_prefix_and_the_last_four_characters,
    a_ciphertext_copied_onto_another_row_does_not_break_reading,
);

const CONFIGURATIONS: &str = "/api/llm-configurations";

fn path_of(configuration: &Value) -> String {
    format!("{CONFIGURATIONS}/{}", configuration["id"].as_str().unwrap())
}

fn id_of(configuration: &Value) -> DbId {
    DbId(Uuid::parse_str(configuration["id"].as_str().unwrap()).unwrap())
}

fn openai(name: &str, key: &str) -> Value {
    json!({"name": name, "provider": "openai", "model": "gpt-4o", "api_key": key})
}

/// Every 12-character window of `key`: none of them may leak.
fn windows_of(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    chars.windows(12).map(|window| window.iter().collect()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Asserts that no 12-character window of any of `keys` occurs in `text`.
fn assert_no_key_in(text: &str, keys: &[&str], context: &str) {
    for key in keys {
        for window in windows_of(key) {
            assert!(
                !text.contains(&window),
                "{context} contains `{window}` of a key: {text}"
            );
        }
    }
}

/// The status, headers and body of a response as one text.
async fn response_text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let mut text = String::new();
    for (name, value) in response.headers() {
        text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    text.push_str(&response.text().await.unwrap());
    (status, text)
}

async fn list_status(app: &TestApp, token: &str) -> u16 {
    app.get(CONFIGURATIONS, token).await.status().as_u16()
}

async fn malformed_json_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    for body in [
        r#"{"name": "x","#,
        "",
        "{name: 'x'}",
        r#"{"name": "x"} trailing"#,
        "\u{feff}nope",
    ] {
        for request in [
            app.client.post(app.url(CONFIGURATIONS)),
            app.client.put(app.url(&path_of(&created))),
        ] {
            let response = request
                .bearer_auth(&user.token)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_error(response, 400, "bad_request").await;
        }
    }
    assert_eq!(app.list(&user.token).await, vec![created]);
}

async fn a_body_not_sent_as_json_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let valid = openai("sent-as-text", "sk-text-key-0123456789").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        for request in [
            app.client.post(app.url(CONFIGURATIONS)),
            app.client.put(app.url(&path_of(&created))),
        ] {
            let mut request = request.bearer_auth(&user.token).body(valid.clone());
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let response = request.send().await.unwrap();
            assert_error(response, 400, "bad_request").await;
        }
    }
    // The same body declared as JSON (with a charset) is accepted.
    let accepted = app
        .client
        .post(app.url(CONFIGURATIONS))
        .bearer_auth(&user.token)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let names: Vec<Value> = app.list(&user.token).await.iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("kept"), json!("sent-as-text")]);
}

async fn a_malformed_uuid_in_the_path_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let valid = created["id"].as_str().unwrap();
    for id in [
        "not-a-uuid".to_owned(),
        "123".to_owned(),
        valid[..valid.len() - 1].to_owned(),
        format!("{valid}0"),
        valid.replace('-', "_"),
    ] {
        let path = format!("{CONFIGURATIONS}/{id}");
        assert_error(app.get(&path, &user.token).await, 400, "bad_request").await;
        assert_error(
            app.put_json(&path, &user.token, &json!({"name": "x"})).await,
            400,
            "bad_request",
        )
        .await;
        assert_error(app.delete(&path, &user.token).await, 400, "bad_request").await;
        assert_error(
            app.put_json(&format!("{path}/set-default"), &user.token, &json!({}))
                .await,
            400,
            "bad_request",
        )
        .await;
    }
    assert_eq!(app.list(&user.token).await, vec![created]);
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
            app.client.get(app.url(&path_of(&created))),
            app.client.get(app.url("/api/llm-configurations/default")),
            app.client
                .post(app.url(CONFIGURATIONS))
                .json(&openai("intruder", "sk-intruder-0123456789")),
            app.client
                .put(app.url(&path_of(&created)))
                .json(&json!({"name": "taken"})),
            app.client.delete(app.url(&path_of(&created))),
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
    assert_eq!(app.list(&user.token).await, vec![created]);
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
    assert_error(app.get(CONFIGURATIONS, &token).await, 401, "unauthorized").await;
    assert_error(
        app.post_json(CONFIGURATIONS, &token, &openai("revoked", "sk-revoked-0123456789"))
            .await,
        401,
        "unauthorized",
    )
    .await;
    // The user's other token is unaffected.
    assert!(app.list(&user.token).await.is_empty());
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
    assert_error(app.get(CONFIGURATIONS, &token).await, 401, "unauthorized").await;
    assert_error(
        app.post_json(CONFIGURATIONS, &token, &openai("expired", "sk-expired-0123456789"))
            .await,
        401,
        "unauthorized",
    )
    .await;
    assert!(app.list(&user.token).await.is_empty());
}

async fn a_disabled_users_token_is_401(app: TestApp) {
    let user = app.user().await;
    let bystander = app.user().await;
    app.create_openai(&user.token, "mine", "sk-disabled-0123456789").await;
    let id = DbId(user.id);
    app.with_db(move |conn| {
        diesel::update(users::table.find(id))
            .set(users::is_disabled.eq(true))
            .execute(conn)
            .unwrap()
    })
    .await;
    assert_error(app.get(CONFIGURATIONS, &user.token).await, 401, "unauthorized").await;
    assert_error(
        app.get("/api/llm-configurations/default", &user.token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        app.post_json(CONFIGURATIONS, &user.token, &openai("more", "sk-disabled-more-0123"))
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
    let before = app.list(&user.token).await;
    let read = app.token_for(&user, "read").await;

    assert_eq!(list_status(&app, &read).await, 200);
    assert_eq!(app.get(&path_of(&first), &read).await.status(), 200);
    assert_eq!(app.get("/api/llm-configurations/default", &read).await.status(), 200);

    let responses = [
        app.post_json(CONFIGURATIONS, &read, &openai("third", "sk-third-key-0123456789"))
            .await,
        app.put_json(&path_of(&first), &read, &json!({"name": "renamed"})).await,
        app.delete(&path_of(&first), &read).await,
        app.put_json(&format!("{}/set-default", path_of(&second)), &read, &json!({}))
            .await,
    ];
    for response in responses {
        assert_error(response, 403, "forbidden").await;
    }
    assert_eq!(app.list(&user.token).await, before);
}

async fn a_resolve_only_token_cannot_read_configurations(app: TestApp) {
    let user = app.user().await;
    let created = app
        .create_openai(&user.token, "mine", "sk-resolve-key-0123456789")
        .await;
    let resolve = app.token_for(&user, "resolve").await;
    for path in [
        CONFIGURATIONS.to_owned(),
        path_of(&created),
        "/api/llm-configurations/default".to_owned(),
    ] {
        let body = assert_error(app.get(&path, &resolve).await, 403, "forbidden").await;
        assert_no_key_in(&body.to_string(), &["sk-resolve-key-0123456789"], &path);
    }
    assert_error(
        app.post_json(CONFIGURATIONS, &resolve, &openai("other", "sk-other-key-0123456789"))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.list(&user.token).await, vec![created]);
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
            &path_of(&created),
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
    assert_eq!(app.list(&user.token).await, vec![created]);
}

async fn unknown_api_routes_are_a_json_404(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    for path in [
        "/api/nope".to_owned(),
        "/api/llm-configuration".to_owned(),
        format!("{}/nope", path_of(&created)),
        "/api/llm-configurations/default/extra".to_owned(),
    ] {
        for response in [
            app.get(&path, &user.token).await,
            app.post_json(&path, &user.token, &json!({})).await,
            app.client.get(app.url(&path)).send().await.unwrap(),
        ] {
            let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
            assert!(content_type.starts_with("application/json"), "{path}: {content_type}");
            assert_error(response, 404, "not_found").await;
        }
    }
}

async fn no_response_carries_the_key(app: TestApp) {
    let user = app.user().await;
    let keys = [
        "sk-proj-Zq8vLx3N7tWcRb2YkMfHj5Ds9GpUe4Aa",
        "sk-ant-api03-Hn4Kp9QwEr2TyUi7OpAs5DfGh1Jk",
        "Vb6Nm3XcZl8AsDfGh2JkLq0WeRtYuIoP",
        "sk-proj-Replacement7Tb3Nc9Xm2Lq5Wd8Rf",
    ];
    let mut texts = Vec::new();
    let mut record = |(status, text): (u16, String), expected: u16, what: &str| {
        assert_eq!(status, expected, "{what}: {text}");
        texts.push((what.to_owned(), text));
    };

    let create = |name: &str, provider: &str, key: &str| json!({"name": name, "provider": provider, "model": "model-1", "api_key": key});
    let response = app
        .post_json(CONFIGURATIONS, &user.token, &create("one", "openai", keys[0]))
        .await;
    let first_location = response.headers()["location"].to_str().unwrap().to_owned();
    record(response_text(response).await, 201, "create");
    let response = app
        .post_json(CONFIGURATIONS, &user.token, &create("two", "anthropic", keys[1]))
        .await;
    let second_location = response.headers()["location"].to_str().unwrap().to_owned();
    record(response_text(response).await, 201, "create");
    let response = app
        .post_json(CONFIGURATIONS, &user.token, &create("three", "openai", keys[2]))
        .await;
    record(response_text(response).await, 201, "create");

    record(
        response_text(app.get(CONFIGURATIONS, &user.token).await).await,
        200,
        "list",
    );
    record(
        response_text(app.get(&first_location, &user.token).await).await,
        200,
        "get",
    );
    record(
        response_text(app.get("/api/llm-configurations/default", &user.token).await).await,
        200,
        "default",
    );
    record(
        response_text(
            app.put_json(&first_location, &user.token, &json!({"name": "one-renamed"}))
                .await,
        )
        .await,
        200,
        "update",
    );
    record(
        response_text(
            app.put_json(&first_location, &user.token, &json!({"api_key": keys[3]}))
                .await,
        )
        .await,
        200,
        "update",
    );
    record(
        response_text(
            app.put_json(&format!("{second_location}/set-default"), &user.token, &json!({}))
                .await,
        )
        .await,
        200,
        "set-default",
    );
    // Refusals do not echo a key either.
    record(
        response_text(
            app.post_json(CONFIGURATIONS, &user.token, &create("two", "openai", keys[1]))
                .await,
        )
        .await,
        409,
        "conflict",
    );
    record(
        response_text(
            app.post_json(
                CONFIGURATIONS,
                &user.token,
                &create("four", "openai", &format!("{} {}", keys[0], keys[1])),
            )
            .await,
        )
        .await,
        422,
        "invalid key",
    );
    record(
        response_text(
            app.put_json(
                &second_location,
                &user.token,
                &json!({"base_url": "https://elsewhere.example.com", "api_key": format!("{}…", keys[1])}),
            )
            .await,
        )
        .await,
        422,
        "masked-looking key",
    );
    record(
        response_text(app.get(CONFIGURATIONS, &user.token).await).await,
        200,
        "list after changes",
    );
    assert!(texts.iter().any(|(_, text)| text.contains("one-renamed")));
    for (what, text) in &texts {
        assert_no_key_in(text, &keys, what);
    }
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

/// Every row of every table of the test database, as JSON text.
fn dump_postgres(conn: &mut DbConnection) -> String {
    let DbConnection::Postgres(pg) = conn else {
        panic!("not a PostgreSQL connection");
    };
    let tables: Vec<TextRow> = diesel::sql_query(
        "SELECT table_name::text AS text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .load(pg)
    .unwrap();
    assert!(tables.iter().any(|table| table.text == "llm_configurations"));
    let mut dump = String::new();
    for table in tables {
        let rows: Vec<TextRow> =
            diesel::sql_query(format!("SELECT row_to_json(t)::text AS text FROM \"{}\" t", table.text))
                .load(pg)
                .unwrap();
        for row in rows {
            dump.push_str(&row.text);
            dump.push('\n');
        }
    }
    dump
}

async fn the_database_never_holds_a_key_in_clear(app: TestApp) {
    let user = app.user().await;
    let keys = [
        "sk-proj-Zq8vLx3N7tWcRb2YkMfHj5Ds9GpUe4Aa",
        "sk-ant-api03-Hn4Kp9QwEr2TyUi7OpAs5DfGh1Jk",
        "Vb6Nm3XcZl8AsDfGh2JkLq0WeRtYuIoP",
        "sk-or-v1-Replacement7Tb3Nc9Xm2Lq5Wd8Rf",
    ];
    let first = app.create_openai(&user.token, "distinctive-name-Qx7", keys[0]).await;
    app.create_configuration(
        &user.token,
        json!({"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4", "api_key": keys[1]}),
    )
    .await;
    app.create_configuration(
        &user.token,
        json!({"name": "custom", "provider": "openai_compatible", "model": "llama3",
               "base_url": "https://llm.example.com/v1", "api_key": keys[2]}),
    )
    .await;
    let replaced = app
        .put_json(&path_of(&first), &user.token, &json!({"api_key": keys[3]}))
        .await;
    assert_eq!(replaced.status(), 200);

    match &app.test_database {
        TestDatabase::Sqlite { path, .. } => {
            let mut bytes = std::fs::read(path).unwrap();
            let wal = path.with_extension("db-wal");
            if let Ok(wal_bytes) = std::fs::read(&wal) {
                bytes.extend_from_slice(&wal_bytes);
            }
            // The files read are the ones that hold the data.
            assert!(contains_bytes(&bytes, b"distinctive-name-Qx7"));
            for key in keys {
                for window in windows_of(key) {
                    assert!(
                        !contains_bytes(&bytes, window.as_bytes()),
                        "the SQLite files contain `{window}`"
                    );
                }
            }
        }
        TestDatabase::Postgres { .. } => {
            let dump = app.with_db(dump_postgres).await;
            assert!(dump.contains("distinctive-name-Qx7"));
            for key in keys {
                for window in windows_of(key) {
                    assert!(!dump.contains(&window), "a row contains `{window}`");
                    // bytea columns are dumped as hex.
                    assert!(
                        !dump.contains(&hex(window.as_bytes())),
                        "a row contains `{window}` as hex"
                    );
                }
            }
        }
    }
}

async fn masks_show_the_known_prefix_and_the_last_four_characters(app: TestApp) {
    let user = app.user().await;
    let cases = [
        ("openai", "sk-abcdefghijklmnopx7Qa", "sk-…x7Qa"),
        ("anthropic", "sk-ant-api03-abcdefghijx7Qa", "sk-ant-…x7Qa"),
        ("openai", "sk-proj-abcdefghijklx7Qa", "sk-proj-…x7Qa"),
        ("openrouter", "sk-or-v1-abcdefghijklx7Qa", "sk-or-v1-…x7Qa"),
        ("groq", "gsk_abcdefghijklmnx7Qa", "gsk_…x7Qa"),
        ("xai", "xai-abcdefghijklmnx7Qa", "xai-…x7Qa"),
        ("gemini", "AIzaSyabcdefghijklx7Qa", "AIza…x7Qa"),
        ("mistral", "0123456789abcdefx7Qa", "…x7Qa"),
        ("openai", "sk-abcd1234", "••••"),
        ("openai", "abcdefghijkl", "••••"),
        // A prefix and four characters are shown only while at least twelve stay hidden.
        ("openai", "abcdefghijklm", "••••"),
        ("openai", "abcdefghijklmno", "••••"),
        ("openai", "abcdefghijklmnop", "…mnop"),
        ("anthropic", "sk-ant-0123456789Ax7Qa", "••••"),
        ("anthropic", "sk-ant-0123456789ABx7Qa", "sk-ant-…x7Qa"),
    ];
    let mut created = Vec::new();
    for (index, (provider, key, mask)) in cases.iter().enumerate() {
        let configuration = app
            .create_configuration(
                &user.token,
                json!({"name": format!("mask-{index:02}"), "provider": provider, "model": "m", "api_key": key}),
            )
            .await;
        assert_eq!(configuration["api_key_masked"], *mask, "{key}");
        assert_eq!(configuration["has_api_key"], true);
        created.push((configuration, *mask));
    }
    let listed = app.list(&user.token).await;
    for (configuration, mask) in &created {
        let shown = listed.iter().find(|item| item["id"] == configuration["id"]).unwrap();
        assert_eq!(shown["api_key_masked"], *mask);
        let fetched: Value = app
            .get(&path_of(configuration), &user.token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(fetched["api_key_masked"], *mask);
    }
    // A new key gets a new mask.
    let (first, _) = &created[0];
    let updated: Value = app
        .put_json(
            &path_of(first),
            &user.token,
            &json!({"api_key": "sk-ant-different-key-Zz9Y"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(updated["api_key_masked"], "sk-ant-…Zz9Y");
}

async fn a_ciphertext_copied_onto_another_row_does_not_break_reading(app: TestApp) {
    let owner = app.user().await;
    let other = app.user().await;
    let source = app
        .create_openai(&owner.token, "source", "sk-source-key-0000AaAa")
        .await;
    let target = app
        .create_openai(&owner.token, "target", "sk-target-key-0000BbBb")
        .await;
    let foreign = app
        .create_openai(&other.token, "foreign", "sk-foreign-key-000CcCc")
        .await;
    let other_target = app
        .create_openai(&other.token, "garbled", "sk-garbled-key-000DdDd")
        .await;

    let (source_id, target_id, foreign_id, garbled_id) =
        (id_of(&source), id_of(&target), id_of(&foreign), id_of(&other_target));
    app.with_db(move |conn| {
        let copy = |conn: &mut DbConnection, from: DbId, onto: DbId| {
            let (ciphertext, key_id): (Option<Vec<u8>>, Option<String>) = llm_configurations::table
                .find(from)
                .select((llm_configurations::api_key_encrypted, llm_configurations::key_id))
                .first(conn)
                .unwrap();
            assert!(ciphertext.is_some());
            diesel::update(llm_configurations::table.find(onto))
                .set((
                    llm_configurations::api_key_encrypted.eq(ciphertext),
                    llm_configurations::key_id.eq(key_id),
                ))
                .execute(conn)
                .unwrap();
        };
        // Onto another row of the same user, and onto another user's row.
        copy(conn, source_id, target_id);
        copy(conn, source_id, foreign_id);
        diesel::update(llm_configurations::table.find(garbled_id))
            .set(llm_configurations::api_key_encrypted.eq(Some(b"garbage".to_vec())))
            .execute(conn)
            .unwrap();
    })
    .await;

    for (user, configurations) in [(&owner, [&source, &target]), (&other, [&foreign, &other_target])] {
        let listed = app.list(&user.token).await;
        assert_eq!(listed.len(), 2);
        for configuration in configurations {
            let response = app.get(&path_of(configuration), &user.token).await;
            assert_eq!(response.status(), 200);
            let fetched: Value = response.json().await.unwrap();
            assert_eq!(fetched["api_key_masked"], configuration["api_key_masked"]);
            assert_eq!(fetched["has_api_key"], true);
        }
        let default = app.get("/api/llm-configurations/default", &user.token).await;
        assert_eq!(default.status(), 200);
        let renamed = app
            .put_json(&path_of(configurations[1]), &user.token, &json!({"model": "gpt-4.1"}))
            .await;
        assert_eq!(renamed.status(), 200);
        let moved = app
            .put_json(
                &format!("{}/set-default", path_of(configurations[1])),
                &user.token,
                &json!({}),
            )
            .await;
        assert_eq!(moved.status(), 200);
    }
}
