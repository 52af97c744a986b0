//! Hardening of secrets (issue 11): no secret echoed by a parse error, masks that never show a
//! short key, per-user caps.

use diesel::prelude::*;
use lanyard::db::{ConnectionManager, DatabaseUrl, schema};
use r2d2::ManageConnection;
use serde_json::json;

use crate::binary::{Site, master_keys};
use crate::helpers::{TestApp, TestDatabase, assert_error, distinctive_key, master_key_entry};

crate::database_on_both_backends!(
    hints_stored_under_the_old_mask_rule_are_recomputed_once_at_start_up,
    parse_errors_name_the_file_and_line_never_the_secret,
);

crate::on_both_backends_with!(small_caps;
    one_configuration_token_or_override_beyond_a_cap_is_a_422_naming_the_limit,
);

/// Caps small enough to reach in a test.
fn small_caps(settings: &mut lanyard::config::Settings) {
    settings.caps.configurations.max = 3;
    settings.caps.tokens.max = 2;
    settings.caps.overrides.max = 2;
}

/// A direct connection to the test's database, for what only an older release could have
/// written.
fn connect(database: &TestDatabase) -> lanyard::db::DbConnection {
    let url = DatabaseUrl::parse(&database.url_string()).expect("a database URL");
    ConnectionManager::new(url).connect().expect("a connection")
}

async fn hints_stored_under_the_old_mask_rule_are_recomputed_once_at_start_up(database: TestDatabase) {
    let site = Site::new(database.url_string());
    let env = master_keys(&master_key_entry("hints"));
    let server = site.serve(&env).await;
    let (token, _) = site.user_with_tokens(&env, "hints@example.com");
    // Fifteen characters: a prefix-less mask would show four and hide only eleven.
    let short = server
        .create(
            &token,
            json!({"name": "short", "provider": "openai", "model": "m", "api_key": "abcdefghijklmno"}),
        )
        .await;
    let long = server
        .create(
            &token,
            json!({"name": "long", "provider": "openai", "model": "m", "api_key": "sk-0123456789abcdefx7Qa"}),
        )
        .await;
    assert_eq!(short["api_key_masked"], "••••");
    assert_eq!(long["api_key_masked"], "sk-…x7Qa");
    server.stop();

    // The database as the previous release left it: the short key's hint under the old rule
    // (the last four whenever more than twelve characters), and no record of a recomputation.
    {
        use schema::{instance_settings, llm_configurations as cfg};
        let mut conn = connect(&database);
        diesel::update(cfg::table.filter(cfg::name.eq("short")))
            .set(cfg::api_key_hint.eq("…lmno"))
            .execute(&mut conn)
            .unwrap();
        diesel::delete(instance_settings::table.filter(instance_settings::name.eq("key_hint_rule")))
            .execute(&mut conn)
            .unwrap();
    }
    let server = site.serve(&env).await;
    let masks: Vec<(String, String)> = server
        .list(&token)
        .await
        .iter()
        .map(|item| {
            (
                item["name"].as_str().unwrap().to_owned(),
                item["api_key_masked"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(masks.contains(&("short".to_owned(), "••••".to_owned())), "{masks:?}");
    assert!(masks.contains(&("long".to_owned(), "sk-…x7Qa".to_owned())), "{masks:?}");
    server.stop();

    // Once: a later start does not decrypt every key again.
    {
        use schema::llm_configurations as cfg;
        let mut conn = connect(&database);
        diesel::update(cfg::table.filter(cfg::name.eq("long")))
            .set(cfg::api_key_hint.eq("sk-…seen"))
            .execute(&mut conn)
            .unwrap();
    }
    let server = site.serve(&env).await;
    let listed = server.list(&token).await;
    let long = listed.iter().find(|item| item["name"] == "long").unwrap();
    assert_eq!(long["api_key_masked"], "sk-…seen", "hints are recomputed once per rule");
    server.stop();
}

async fn one_configuration_token_or_override_beyond_a_cap_is_a_422_naming_the_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let mut ids = Vec::new();
    for index in 0..3 {
        let created = app
            .create_openai(&user.token, &format!("cap-{index}"), &distinctive_key("sk-proj-"))
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
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
    assert_eq!(app.list(&user.token).await.len(), 3, "nothing was created");
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

async fn parse_errors_name_the_file_and_line_never_the_secret(database: TestDatabase) {
    let site = Site::new(database.url_string());
    let entry = master_key_entry("parse");
    let env = master_keys(&entry);
    let secret = distinctive_key("sk-proj-");
    let workdir = site.sandbox.workdir();

    // A malformed `.env` line: the command still runs, and the warning names the line alone.
    std::fs::write(
        workdir.join(".env"),
        format!("LANYARD_LOG=warn\nthis line is broken {secret}\n"),
    )
    .unwrap();
    let keygen = site.run(&env, &["keygen", "--id", "fresh"], "");
    keygen.assert_success();
    assert!(keygen.stderr.contains(".env line 2"), "{}", keygen.stderr);
    assert!(!keygen.stderr.contains(&secret), "{}", keygen.stderr);
    std::fs::remove_file(workdir.join(".env")).unwrap();

    // A master key pasted where its id belongs, as the second entry.
    let encoded = entry.split_once(':').unwrap().1;
    let swapped = master_keys(&format!("{entry},{encoded}:parse"));
    let refused = site.serve_refused(&swapped);
    assert!(
        refused.stderr.contains("LANYARD_MASTER_KEYS: entry 2"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(&encoded[..16]), "{}", refused.stderr);

    // An OpenHands file with an unterminated key on line 3.
    let (_token, _) = site.user_with_tokens(&env, "parse@example.com");
    let file = site.sandbox.path().join("config.toml");
    std::fs::write(&file, format!("[llm]\nmodel = \"gpt-4o\"\napi_key = \"{secret}\n")).unwrap();
    let imported = site.run(
        &env,
        &[
            "import",
            "openhands",
            "--file",
            file.to_str().unwrap(),
            "--email",
            "parse@example.com",
        ],
        "",
    );
    imported.assert_failure();
    assert!(imported.stderr.contains("config.toml"), "{}", imported.stderr);
    assert!(imported.stderr.contains("line 3"), "{}", imported.stderr);
    assert!(!imported.stderr.contains(&secret), "{}", imported.stderr);
    assert!(!imported.stdout.contains(&secret));
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
    };
    let drafts = import::parse_openhands(
        &format!("[llm]\nmodel = \"gpt-4o\"\napi_key = \"{key}\"\n"),
        &EgressPolicy::default(),
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
