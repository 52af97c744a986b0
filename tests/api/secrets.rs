//! Keys never leak: not in responses, pages, logs or the database in clear; masks show only the
//! known prefix and the last four characters; a ciphertext is bound to its row.

use diesel::prelude::*;
use lanyard::db::schema::connections;
use lanyard::db::{DbConnection, DbId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::command_line::{Cli, Keys};
use crate::helpers::configurations::{CONFIGURATIONS, Configuration, DEFAULT_CONFIGURATION, compatible};
use crate::helpers::pages::{row_of, tag_with_id};
use crate::helpers::resolve::{pin, resolve, resolved};
use crate::helpers::secrets::{assert_no_key_in, windows_of};
use crate::helpers::{TestApp, TestDatabase, assert_error, distinctive_key, master_key_entry};
use crate::on_both_backends;

on_both_backends!(database(Cli::new):
    the_server_log_holds_no_api_key_and_no_token,
);

on_both_backends!(
    the_management_page_shows_masks_and_never_the_key,
    key_pages_are_never_cached_and_the_key_field_is_not_autocompleted,
    a_ciphertext_copied_onto_another_row_is_unreadable_and_breaks_nothing_else,
    no_response_carries_the_key,
    the_database_never_holds_a_key_in_clear,
    masks_show_the_known_prefix_and_the_last_four_characters,
    a_ciphertext_copied_onto_another_row_does_not_break_reading,
);

async fn the_server_log_holds_no_api_key_and_no_token(cli: Cli) {
    let entry = master_key_entry("log-key");
    let master_key = entry.split_once(':').expect("ID:BASE64").1.to_owned();
    let keys = Keys::Entries(entry);
    let token = cli.user_with_token(&keys, "quiet@example.com");
    let server = cli.serve(&keys).await;
    let mut secrets = vec![token.clone(), master_key];
    for (name, provider, prefix) in [
        ("one", "openai", "sk-proj-"),
        ("two", "anthropic", "sk-ant-"),
        ("three", "openrouter", "sk-or-v1-"),
    ] {
        let key = distinctive_key(prefix);
        let created = server
            .create(
                &token,
                json!({"name": name, "provider": provider, "model": "some-model", "api_key": key}),
            )
            .await;
        secrets.push(key);
        let path = created.path();
        let new_key = distinctive_key(prefix);
        let updated = server
            .send_json(reqwest::Method::PUT, &path, &token, &json!({"api_key": new_key}))
            .await;
        assert_eq!(updated.status(), 200);
        secrets.push(new_key);
        // Rejected keys must not be logged either.
        let bad_key = format!("{} {}", distinctive_key(prefix), Uuid::new_v4().simple());
        let rejected = server
            .send_json(reqwest::Method::PUT, &path, &token, &json!({"api_key": bad_key}))
            .await;
        assert_eq!(rejected.status(), 422);
        secrets.extend(bad_key.split(' ').map(str::to_owned));
        assert_eq!(server.get(&path, &token).await.status(), 200);
    }
    let invalid_create = distinctive_key("sk-");
    let rejected = server
        .send_json(
            reqwest::Method::POST,
            "/api/llm-configurations",
            &token,
            &json!({"name": "", "provider": "openai", "model": "gpt-4o", "api_key": invalid_create}),
        )
        .await;
    assert_eq!(rejected.status(), 422);
    secrets.push(invalid_create);
    server.list(&token).await;

    let log = server.stop();
    assert!(log.contains("Lanyard is listening"), "the log was captured:\n{log}");
    for secret in &secrets {
        let chars: Vec<char> = secret.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(!log.contains(&piece), "the log contains `{piece}`, a piece of a secret");
        }
    }
}

async fn the_management_page_shows_masks_and_never_the_key(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let key = "sk-proj-Zq8vLmN3pR7sT1uW5xY9aB2cD4eF6gH0Kx7Qa";
    let configuration = app.create_openai(&user.token, "work-gpt", key).await;
    app.create_openai(&user.token, "short", "sk-abcd1234").await;

    let pages = [
        browser.page("/llm-configurations").await,
        browser
            .page(&format!("/llm-configurations/{}/edit", configuration.id))
            .await,
        browser.page("/settings").await,
    ];
    let table = &pages[0];
    let row = row_of(table, configuration.id).unwrap();
    assert!(row.contains("work-gpt"));
    assert!(
        row.contains(r#"<code class="masked-key">sk-proj-…x7Qa</code>"#),
        "{row}"
    );
    assert!(table.contains("••••"), "a short key shows only dots");
    assert!(!table.contains("sk-abcd1234"));
    for page in &pages {
        for start in 0..=key.len() - 12 {
            let window = &key[start..start + 12];
            assert!(!page.contains(window), "`{window}` of the key appears in a page");
        }
    }
    assert!(
        pages[1].contains("sk-proj-…x7Qa"),
        "the edit form names the current key by its mask"
    );
    assert!(
        pages[2].contains("sk-proj-…x7Qa"),
        "the default's details show its mask"
    );
}

fn key_input(html: &str) -> &str {
    tag_with_id(html, "api_key")
}

async fn key_pages_are_never_cached_and_the_key_field_is_not_autocompleted(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let configuration = app.create_openai(&user.token, "cached", "sk-cached-key-00001").await;
    let edit = format!("/llm-configurations/{}/edit", configuration.id);
    for path in [
        "/llm-configurations",
        "/llm-configurations/new",
        edit.as_str(),
        "/settings",
    ] {
        for htmx in [false, true] {
            let response = if htmx {
                browser.get_htmx(path).await
            } else {
                browser.get(path).await
            };
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["cache-control"], "no-store", "{path} (htmx {htmx})");
        }
    }
    let new_form = browser.page("/llm-configurations/new").await;
    assert!(key_input(&new_form).contains(r#"autocomplete="off""#), "{new_form}");
    assert!(key_input(&new_form).contains(r#"type="password""#));
    let edit_form = browser.page(&edit).await;
    assert!(key_input(&edit_form).contains(r#"autocomplete="off""#));
    assert!(
        !key_input(&edit_form).contains("value="),
        "the key field is empty on edit"
    );
    assert!(edit_form.contains("leave empty to keep the current key"), "{edit_form}");
}

/// Copies the stored ciphertext (and its key id) of `from` onto `to` (on their connections), as
/// an attacker with write access to the database would.
async fn copy_ciphertext(app: &TestApp, from: &Configuration, to: &Configuration) {
    let (from, to) = (from.connection_db_id(), to.connection_db_id());
    app.with_db(move |conn| {
        let (sealed, key_id) = connections::table
            .find(from)
            .select((connections::api_key_encrypted, connections::key_id))
            .first::<(Option<Vec<u8>>, Option<String>)>(conn)
            .unwrap();
        assert!(sealed.is_some());
        let updated = diesel::update(connections::table.find(to))
            .set((
                connections::api_key_encrypted.eq(sealed),
                connections::key_id.eq(key_id),
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
    copy_ciphertext(&app, &source, &victim).await;
    pin(&app, &user.token, "conv-victim", &victim).await;

    let body = assert_error(
        resolve(&app, &resolver, Some("conv-victim")).await,
        409,
        "key_unreadable",
    )
    .await;
    assert!(!body.to_string().contains("sk-source-key"), "{body}");
    assert!(!body.to_string().contains("sk-victim-key"), "{body}");
    // The unreadable attempt records no use.
    assert_eq!(app.refetch(&user.token, &victim).await.use_count, 0);

    let test = app.post_json(&victim.action("test"), &user.token, &json!({})).await;
    let status = test.status();
    let result: Value = test.json().await.unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["code"], "key_unreadable", "{result}");
    assert_eq!(result["status"], "failed", "{result}");

    // Everything else still works, and the source's own key is intact.
    assert_eq!(app.configurations(&user.token).await.len(), 2);
    let fetched = app.refetch(&user.token, &victim).await;
    assert_eq!(fetched.test_status, "failed");
    let page = browser.page("/llm-configurations").await;
    assert!(page.contains("re-enter the key"), "the page asks for the key again");
    assert!(!page.contains("sk-source-key") && !page.contains("sk-victim-key"));
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body.configuration.id, Some(source.id));
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-source-key-0006-abcd"));
}

/// Every value that holds a key in clear is a secret type: formatting it with `{:?}` (as a log
/// line or a panic message would) shows no key.
#[test]
fn values_holding_a_key_in_clear_are_redacted_in_debug_output() {
    use lanyard::api::conversations::ResolvedConfiguration;
    use lanyard::domain::{ApiKey, ModelId, Provider};
    use lanyard::egress::EgressPolicy;
    use lanyard::services::connection_tests::TestTarget;
    use lanyard::services::conversations::{Resolved, Source};
    use lanyard::services::import;
    use secrecy::SecretString;

    let key = "sk-proj-debug0123456789abcdefSECRET";
    let parsed = ApiKey::parse(key).unwrap();
    let target = TestTarget::new(
        Provider::Openai,
        Some(&ModelId::parse("m").unwrap()),
        None,
        Some(&parsed),
    )
    .unwrap();
    let resolved = Resolved {
        source: Source::Default,
        configuration: None,
        provider: Provider::Openai,
        model: "m".into(),
        base_url: None,
        api_key: Some(SecretString::from(key.to_owned())),
        api_key_masked: None,
    };
    let answer = ResolvedConfiguration {
        id: None,
        connection_id: None,
        name: "n".into(),
        provider: "openai".into(),
        model: "m".into(),
        base_url: None,
        effective_base_url: None,
        api_key: Some(SecretString::from(key.to_owned())),
        api_key_masked: None,
        has_api_key: true,
        is_default: true,
        is_active: true,
        test_status: "untested".into(),
        test_message: None,
        test_latency_ms: None,
        tested_at: None,
        last_used_at: None,
        use_count: 0,
        created_at: None,
        updated_at: None,
        parameters: Default::default(),
    };
    let drafts = import::parse_openhands(
        &format!("[llm]\nmodel = \"gpt-4o\"\napi_key = \"{key}\"\n"),
        &EgressPolicy::default(),
        &|_| None,
    )
    .unwrap();
    for shown in [
        format!("{parsed:?}"),
        format!("{target:?}"),
        format!("{resolved:?}"),
        format!("{answer:?}"),
        format!("{drafts:?}"),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    // The one response that hands the key out still carries it in clear.
    let json = serde_json::to_string(&answer).unwrap();
    assert!(json.contains(key), "{json}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
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

    use reqwest::Method;
    let requests = [
        ("list", Method::GET, CONFIGURATIONS.to_owned(), None, 200),
        ("get", Method::GET, first_location.clone(), None, 200),
        ("default", Method::GET, DEFAULT_CONFIGURATION.to_owned(), None, 200),
        (
            "update",
            Method::PUT,
            first_location.clone(),
            Some(json!({"name": "one-renamed"})),
            200,
        ),
        (
            "update",
            Method::PUT,
            first_location,
            Some(json!({"api_key": keys[3]})),
            200,
        ),
        (
            "set-default",
            Method::PUT,
            format!("{second_location}/set-default"),
            Some(json!({})),
            200,
        ),
        // Refusals do not echo a key either.
        (
            "conflict",
            Method::POST,
            CONFIGURATIONS.to_owned(),
            Some(create("two", "openai", keys[1])),
            409,
        ),
        (
            "invalid key",
            Method::POST,
            CONFIGURATIONS.to_owned(),
            Some(create("four", "openai", &format!("{} {}", keys[0], keys[1]))),
            422,
        ),
        (
            "masked-looking key",
            Method::PUT,
            second_location,
            Some(json!({"base_url": "https://elsewhere.example.com", "api_key": format!("{}…", keys[1])})),
            422,
        ),
        ("list after changes", Method::GET, CONFIGURATIONS.to_owned(), None, 200),
    ];
    for (what, method, path, body, expected) in requests {
        let mut request = app.client.request(method, app.url(&path)).bearer_auth(&user.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        record(response_text(request.send().await.unwrap()).await, expected, what);
    }
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
        compatible("custom", "https://llm.example.com/v1", Some(keys[2])),
    )
    .await;
    let replaced = app
        .put_json(&first.path(), &user.token, &json!({"api_key": keys[3]}))
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
        assert_eq!(configuration.api_key_masked.as_deref(), Some(*mask), "{key}");
        assert!(configuration.has_api_key);
        created.push((configuration, *mask));
    }
    let listed = app.configurations(&user.token).await;
    for (configuration, mask) in &created {
        let shown = listed.iter().find(|item| item.id == configuration.id).unwrap();
        assert_eq!(shown.api_key_masked.as_deref(), Some(*mask));
        let fetched: Value = app.get(&configuration.path(), &user.token).await.json().await.unwrap();
        assert_eq!(fetched["api_key_masked"], *mask);
    }
    // A new key gets a new mask.
    let (first, _) = &created[0];
    let updated: Value = app
        .put_json(
            &first.path(),
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

    let (source_id, target_id, foreign_id, garbled_id) = (
        source.connection_db_id(),
        target.connection_db_id(),
        foreign.connection_db_id(),
        other_target.connection_db_id(),
    );
    app.with_db(move |conn| {
        let copy = |conn: &mut DbConnection, from: DbId, onto: DbId| {
            let (ciphertext, key_id): (Option<Vec<u8>>, Option<String>) = connections::table
                .find(from)
                .select((connections::api_key_encrypted, connections::key_id))
                .first(conn)
                .unwrap();
            assert!(ciphertext.is_some());
            diesel::update(connections::table.find(onto))
                .set((
                    connections::api_key_encrypted.eq(ciphertext),
                    connections::key_id.eq(key_id),
                ))
                .execute(conn)
                .unwrap();
        };
        // Onto another row of the same user, and onto another user's row.
        copy(conn, source_id, target_id);
        copy(conn, source_id, foreign_id);
        diesel::update(connections::table.find(garbled_id))
            .set(connections::api_key_encrypted.eq(Some(b"garbage".to_vec())))
            .execute(conn)
            .unwrap();
    })
    .await;

    for (user, configurations) in [(&owner, [&source, &target]), (&other, [&foreign, &other_target])] {
        let listed = app.configurations(&user.token).await;
        assert_eq!(listed.len(), 2);
        for configuration in configurations {
            let response = app.get(&configuration.path(), &user.token).await;
            assert_eq!(response.status(), 200);
            let fetched: Value = response.json().await.unwrap();
            assert_eq!(fetched["api_key_masked"], json!(configuration.api_key_masked));
            assert_eq!(fetched["has_api_key"], true);
        }
        let default = app.get("/api/llm-configurations/default", &user.token).await;
        assert_eq!(default.status(), 200);
        let renamed = app
            .put_json(&configurations[1].path(), &user.token, &json!({"model": "gpt-4.1"}))
            .await;
        assert_eq!(renamed.status(), 200);
        let moved = app
            .put_json(
                &format!("{}/set-default", configurations[1].path()),
                &user.token,
                &json!({}),
            )
            .await;
        assert_eq!(moved.status(), 200);
    }
}
