//! Connections: one key, many configurations. A new key on a connection is what every
//! configuration of it resolves to; the old way of creating a configuration makes a connection
//! of its own; shared connections are changed as connections; the model catalogue.

use diesel::prelude::*;
use lanyard::config::Settings;
use lanyard::db::DbId;
use lanyard::db::schema::key_reveals;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::binary::Sandbox;
use crate::helpers::command_line::lanyard;
use crate::helpers::configurations::CONFIGURATIONS;
use crate::helpers::connections::{
    CONNECTIONS, Connection, connection_names, connection_path, create_connection, create_connection_to, create_on,
    create_openai_connection, fetch_connection, list_connections, models_of, openai_connection, update_connection,
};
use crate::helpers::providers::{GOOD_KEY, fake_openai, loopback_allowed, openai_base, test_saved, test_values};
use crate::helpers::resolve::{pin, resolved, user_and_resolver};
use crate::helpers::{TestApp, assert_error, egress_policy};
use crate::on_both_backends;

on_both_backends!(
    one_new_key_on_a_connection_reaches_every_configuration_that_uses_it,
    a_connection_in_use_cannot_be_deleted_until_its_configurations_move_or_go,
    the_old_way_makes_a_connection_of_its_own_named_after_the_configuration,
    an_implicit_connection_goes_with_its_configuration_and_an_explicit_one_stays,
    both_ways_at_once_are_refused_naming_the_fields,
    a_key_change_through_a_configuration_of_a_shared_connection_is_connection_shared,
    on_a_private_connection_a_configuration_changes_it_as_before,
    someone_elses_connection_is_refused_and_nothing_changes,
    connections_are_validated_like_configurations,
    a_configuration_moves_to_another_connection,
    an_import_of_the_old_shape_makes_a_connection_for_each_configuration,
);

on_both_backends!(settings(loopback_allowed):
    testing_a_connection_records_the_result_and_stores_its_models_sorted,
    a_configuration_whose_model_is_not_listed_tests_with_a_warning,
    the_test_endpoint_takes_a_connection_and_a_model_and_nothing_else,
    refreshing_the_models_fetches_them_now_and_keeps_them_on_failure,
);

on_both_backends!(settings(two_tests_a_minute):
    refreshing_the_models_counts_against_the_test_budget,
);

fn two_tests_a_minute(settings: &mut Settings) {
    settings.egress = egress_policy("127.0.0.1/32", "allowlist");
    settings.test_rate_per_minute = 2;
}

/// The key `/api/resolve` hands out for `conversation`.
async fn resolved_key(app: &TestApp, resolver: &str, conversation: &str) -> String {
    let body = resolved(app, resolver, Some(conversation)).await;
    assert_eq!(body.source, "override", "{body:?}");
    body.configuration.api_key.unwrap()
}

async fn one_new_key_on_a_connection_reaches_every_configuration_that_uses_it(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let connection = create_openai_connection(&app, &user.token, "work-openai", "sk-first-key-0000000000001").await;
    assert_eq!(connection.configuration_count, 0);
    let mut configurations = Vec::new();
    for (name, model) in [("writer", "gpt-4o"), ("coder", "gpt-4.1"), ("cheap", "gpt-4o-mini")] {
        let created = create_on(&app, &user.token, name, &connection, model).await;
        assert_eq!(created.connection_id, connection.id);
        assert_eq!(created.provider, "openai");
        assert_eq!(created.api_key_masked, connection.api_key_masked);
        assert!(created.has_api_key);
        pin(&app, &user.token, &format!("conversation-{name}"), &created).await;
        configurations.push(created);
    }
    for name in ["writer", "coder", "cheap"] {
        assert_eq!(
            resolved_key(&app, &resolver, &format!("conversation-{name}")).await,
            "sk-first-key-0000000000001"
        );
    }

    let changed = update_connection(
        &app,
        &user.token,
        &connection,
        json!({"api_key": "sk-second-key-000000000002"}),
    )
    .await;
    assert_eq!(changed.configuration_count, 3);
    assert_ne!(changed.api_key_masked, connection.api_key_masked);

    for (name, model) in [("writer", "gpt-4o"), ("coder", "gpt-4.1"), ("cheap", "gpt-4o-mini")] {
        let body = resolved(&app, &resolver, Some(&format!("conversation-{name}"))).await;
        let resolved = body.configuration;
        assert_eq!(resolved.api_key.as_deref(), Some("sk-second-key-000000000002"));
        assert_eq!(resolved.model, model);
        assert_eq!(resolved.other["connection_id"], json!(connection.id));
    }
    // The audit holds both reveals of each configuration.
    let ids: Vec<DbId> = configurations
        .iter()
        .map(|configuration| configuration.db_id())
        .collect();
    let reveals: Vec<Option<DbId>> = app
        .with_db(move |conn| {
            key_reveals::table
                .select(key_reveals::configuration_id)
                .load(conn)
                .unwrap()
        })
        .await;
    for id in ids {
        assert_eq!(
            reveals.iter().filter(|seen| **seen == Some(id)).count(),
            2,
            "{reveals:?}"
        );
    }
}

async fn a_connection_in_use_cannot_be_deleted_until_its_configurations_move_or_go(app: TestApp) {
    let user = app.user().await;
    let shared = create_openai_connection(&app, &user.token, "shared", GOOD_KEY).await;
    let other = create_openai_connection(&app, &user.token, "other", "sk-other-key-00000000").await;
    let a = create_on(&app, &user.token, "alpha", &shared, "gpt-4o").await;
    let b = create_on(&app, &user.token, "beta", &shared, "gpt-4o").await;
    let c = create_on(&app, &user.token, "gamma", &shared, "gpt-4o").await;

    let refused = assert_error(app.delete(&shared.path(), &user.token).await, 409, "in_use").await;
    let message = refused["message"].as_str().unwrap();
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            message.contains(name),
            "the refusal names the configurations: {message}"
        );
    }

    app.update_configuration(&user.token, &a, json!({"connection_id": other.id}))
        .await;
    app.update_configuration(&user.token, &b, json!({"connection_id": other.id}))
        .await;
    assert_error(app.delete(&shared.path(), &user.token).await, 409, "in_use").await;
    assert_eq!(app.delete(&c.path(), &user.token).await.status(), 204);
    assert_eq!(app.delete(&shared.path(), &user.token).await.status(), 204);
    assert_eq!(app.get(&shared.path(), &user.token).await.status(), 404);
    assert_eq!(connection_names(&app, &user.token).await, ["other"]);
}

async fn the_old_way_makes_a_connection_of_its_own_named_after_the_configuration(app: TestApp) {
    let user = app.user().await;
    let created = app
        .create_openai(&user.token, "work-gpt", "sk-old-way-key-000000000")
        .await;
    let connections = list_connections(&app, &user.token).await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    let own = &connections[0];
    assert_eq!(own.name, "work-gpt");
    assert_eq!(own.id, created.connection_id);
    assert_eq!(own.provider, "openai");
    assert_eq!(own.api_key_masked, created.api_key_masked);
    assert_eq!(own.configuration_count, 1);

    // A name already taken by a connection: `name (2)`, then `name (3)`.
    create_openai_connection(&app, &user.token, "Team", GOOD_KEY).await;
    app.create_openai(&user.token, "team", "sk-old-way-key-000000001").await;
    create_openai_connection(&app, &user.token, "bot", GOOD_KEY).await;
    create_openai_connection(&app, &user.token, "bot (2)", GOOD_KEY).await;
    app.create_openai(&user.token, "bot", "sk-old-way-key-000000002").await;
    // A long name is shortened so that the suffix fits 64 characters.
    let long = "l".repeat(64);
    create_connection(&app, &user.token, openai_connection(&long, GOOD_KEY, None)).await;
    let long_configuration = app.create_openai(&user.token, &long, "sk-old-way-key-000000003").await;

    let connections = list_connections(&app, &user.token).await;
    let names: Vec<&str> = connections.iter().map(|connection| connection.name.as_str()).collect();
    assert!(names.contains(&"team (2)"), "{names:?}");
    assert!(names.contains(&"bot (3)"), "{names:?}");
    let shortened = format!("{} (2)", "l".repeat(60));
    assert_eq!(shortened.chars().count(), 64);
    let long_own = connections
        .iter()
        .find(|connection| connection.id == long_configuration.connection_id)
        .unwrap();
    assert_eq!(long_own.name, shortened.as_str());
    // Listed by name.
    let mut sorted = names.clone();
    sorted.sort_by_key(|name| name.to_lowercase());
    assert_eq!(names, sorted);
}

async fn an_implicit_connection_goes_with_its_configuration_and_an_explicit_one_stays(app: TestApp) {
    let user = app.user().await;
    let old_way = app
        .create_openai(&user.token, "old-way", "sk-old-way-key-000000004")
        .await;
    let explicit = create_openai_connection(&app, &user.token, "explicit", GOOD_KEY).await;
    let on_explicit = create_on(&app, &user.token, "new-way", &explicit, "gpt-4o").await;
    // Another configuration on the implicit connection keeps it alive.
    let implicit = fetch_connection(&app, &user.token, old_way.connection_id).await;
    let sharing = create_on(&app, &user.token, "sharing", &implicit, "gpt-4.1").await;

    assert_eq!(app.delete(&old_way.path(), &user.token).await.status(), 204);
    let names = |connections: Vec<Connection>| -> Vec<String> {
        connections.iter().map(|connection| connection.name.clone()).collect()
    };
    assert_eq!(
        names(list_connections(&app, &user.token).await),
        ["explicit", "old-way"],
        "still used by `sharing`"
    );
    assert_eq!(app.delete(&sharing.path(), &user.token).await.status(), 204);
    assert_eq!(names(list_connections(&app, &user.token).await), ["explicit"]);
    assert_eq!(app.delete(&on_explicit.path(), &user.token).await.status(), 204);
    assert_eq!(
        names(list_connections(&app, &user.token).await),
        ["explicit"],
        "made explicitly, it stays until deleted"
    );
}

async fn both_ways_at_once_are_refused_naming_the_fields(app: TestApp) {
    let user = app.user().await;
    let connection = create_openai_connection(&app, &user.token, "mine", GOOD_KEY).await;
    let body = json!({"name": "both", "connection_id": connection.id, "model": "gpt-4o",
                      "provider": "openai", "api_key": "sk-both-ways-key-0000000"});
    let refused = assert_error(
        app.post_json(CONFIGURATIONS, &user.token, &body).await,
        422,
        "validation_failed",
    )
    .await;
    for field in ["connection_id", "provider", "api_key"] {
        assert!(refused["fields"][field].is_array(), "{refused}");
    }
    assert!(refused["fields"]["base_url"].is_null(), "{refused}");
    assert!(app.configurations(&user.token).await.is_empty());
    assert_eq!(list_connections(&app, &user.token).await.len(), 1);

    // A malformed connection_id, or none with the new way's fields only.
    let refused = assert_error(
        app.post_json(
            CONFIGURATIONS,
            &user.token,
            &json!({"name": "x", "connection_id": "not-a-uuid", "model": "gpt-4o"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["connection_id"].is_array(), "{refused}");
}

async fn a_key_change_through_a_configuration_of_a_shared_connection_is_connection_shared(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let connection = create_openai_connection(&app, &user.token, "shared", "sk-shared-key-000000000001").await;
    let first = create_on(&app, &user.token, "first", &connection, "gpt-4o").await;
    create_on(&app, &user.token, "second", &connection, "gpt-4o").await;
    pin(&app, &user.token, "c1", &first).await;

    for body in [
        json!({"api_key": "sk-through-config-000000001"}),
        json!({"base_url": "https://llm.example.com/v1", "api_key": "sk-through-config-000000001"}),
        json!({"provider": "mistral", "api_key": "sk-through-config-000000001"}),
        json!({"api_key": ""}),
    ] {
        let refused = assert_error(
            app.put_json(&first.path(), &user.token, &body).await,
            409,
            "connection_shared",
        )
        .await;
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("change the connection instead"), "{message}");
        assert!(message.contains(&connection.id.to_string()), "{message}");
        assert!(refused["fields"]["api_key"].is_array(), "{refused}");
    }
    assert_eq!(resolved_key(&app, &resolver, "c1").await, "sk-shared-key-000000000001");
    let unchanged = app.refetch(&user.token, &first).await;
    assert_eq!(unchanged.api_key_masked, connection.api_key_masked);
    assert_eq!(unchanged.updated_at, first.updated_at);

    // What belongs to the configuration alone still changes.
    let renamed = app
        .update_configuration(
            &user.token,
            &first,
            json!({"name": "first-renamed", "model": "gpt-4.1", "provider": "openai"}),
        )
        .await;
    assert_eq!(renamed.name, "first-renamed");
    assert_eq!(renamed.model, "gpt-4.1");
}

async fn on_a_private_connection_a_configuration_changes_it_as_before(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let created = app
        .create_openai(&user.token, "private", "sk-private-key-00000000001")
        .await;
    pin(&app, &user.token, "c1", &created).await;

    let changed = app
        .update_configuration(&user.token, &created, json!({"api_key": "sk-private-key-00000000002"}))
        .await;
    assert_eq!(changed.connection_id, created.connection_id);
    assert_eq!(resolved_key(&app, &resolver, "c1").await, "sk-private-key-00000000002");

    // Changing the base URL needs the key in the same request.
    let refused = assert_error(
        app.put_json(
            &created.path(),
            &user.token,
            &json!({"base_url": "https://llm.example.com/v1"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["api_key"].is_array(), "{refused}");
    let moved = app
        .update_configuration(
            &user.token,
            &created,
            json!({"base_url": "https://llm.example.com/v1", "api_key": "sk-private-key-00000000003"}),
        )
        .await;
    assert_eq!(moved.base_url.as_deref(), Some("https://llm.example.com/v1"));
    let body = resolved(&app, &resolver, Some("c1")).await;
    assert_eq!(
        body.configuration.api_key.as_deref(),
        Some("sk-private-key-00000000003")
    );
    assert_eq!(
        body.configuration.base_url.as_deref(),
        Some("https://llm.example.com/v1")
    );
    let own = fetch_connection(&app, &user.token, created.connection_id).await;
    assert_eq!(own.base_url.as_deref(), Some("https://llm.example.com/v1"));
    assert_eq!(own.api_key_masked, moved.api_key_masked);
}

async fn someone_elses_connection_is_refused_and_nothing_changes(app: TestApp) {
    let owner = app.user().await;
    let stranger = app.user().await;
    let theirs = create_openai_connection(&app, &owner.token, "theirs", GOOD_KEY).await;
    let mine = app
        .create_openai(&stranger.token, "mine", "sk-stranger-key-0000000001")
        .await;

    let refused = assert_error(
        app.post_json(
            CONFIGURATIONS,
            &stranger.token,
            &json!({"name": "borrowed", "connection_id": theirs.id, "model": "gpt-4o"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["connection_id"].is_array(), "{refused}");
    let refused = assert_error(
        app.put_json(&mine.path(), &stranger.token, &json!({"connection_id": theirs.id}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(refused["fields"]["connection_id"].is_array(), "{refused}");
    let listed = app.configurations(&stranger.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].connection_id, mine.connection_id);
    assert_eq!(listed[0].updated_at, mine.updated_at);

    // The stranger cannot see, change, delete or test it: the same 404 as a missing id.
    let theirs_path = theirs.path();
    let missing_path = connection_path(&Uuid::new_v4().to_string());
    for path in [&theirs_path, &missing_path] {
        let not_found = assert_error(app.get(path, &stranger.token).await, 404, "not_found").await;
        for response in [
            app.put_json(path, &stranger.token, &json!({"name": "stolen"})).await,
            app.delete(path, &stranger.token).await,
            app.post_json(&format!("{path}/test"), &stranger.token, &json!({}))
                .await,
            app.get(&format!("{path}/models"), &stranger.token).await,
            app.post_json(&format!("{path}/models/refresh"), &stranger.token, &json!({}))
                .await,
        ] {
            let body = assert_error(response, 404, "not_found").await;
            assert_eq!(body, not_found);
        }
    }
    let body = assert_error(
        app.post_json(
            "/api/llm-configurations/test",
            &stranger.token,
            &json!({"connection_id": theirs.id}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(body["error"], "not_found");
    assert!(
        list_connections(&app, &stranger.token)
            .await
            .iter()
            .all(|c| c.id != theirs.id)
    );
    let still = fetch_connection(&app, &owner.token, theirs.id).await;
    assert_eq!(still.name, "theirs");
    assert_eq!(still.updated_at, theirs.updated_at);
}

async fn connections_are_validated_like_configurations(app: TestApp) {
    let user = app.user().await;
    let cases = [
        (json!({"name": "x", "provider": "openai"}), "api_key"),
        (
            json!({"name": "x", "provider": "openai", "api_key": "sk-…x7Qa-and-more"}),
            "api_key",
        ),
        (
            json!({"name": "x", "provider": "ollama", "api_key": GOOD_KEY, "base_url": "https://ollama.example.com"}),
            "api_key",
        ),
        (json!({"name": "x", "provider": "ollama"}), "base_url"),
        (
            json!({"name": "x", "provider": "openai", "api_key": GOOD_KEY, "base_url": "http://llm.example.com"}),
            "base_url",
        ),
        (json!({"name": "", "provider": "openai", "api_key": GOOD_KEY}), "name"),
        (
            json!({"name": "x", "provider": "nope", "api_key": GOOD_KEY}),
            "provider",
        ),
        (
            json!({"name": "x", "provider": "openai", "api_key": GOOD_KEY, "model": "gpt-4o"}),
            "model",
        ),
        (
            json!({"name": "x", "provider": "openai", "api_key": GOOD_KEY, "id": Uuid::new_v4()}),
            "id",
        ),
    ];
    for (body, field) in cases {
        let refused = assert_error(
            app.post_json(CONNECTIONS, &user.token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(refused["fields"][field].is_array(), "{body} → {refused}");
    }
    assert!(list_connections(&app, &user.token).await.is_empty());

    let ollama = create_connection(
        &app,
        &user.token,
        json!({"name": "Local", "provider": "ollama", "base_url": "https://ollama.example.com"}),
    )
    .await;
    assert!(!ollama.has_api_key);
    assert_eq!(ollama.api_key_masked, None);
    assert_eq!(ollama.test_status, "untested");
    assert_eq!(ollama.model_count, 0);
    assert_eq!(ollama.models_fetched_at, None);
    let conflict = assert_error(
        app.post_json(
            CONNECTIONS,
            &user.token,
            &json!({"name": "local", "provider": "openai", "api_key": GOOD_KEY}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    assert!(conflict["fields"]["name"].is_array(), "{conflict}");

    let keyed = create_connection(
        &app,
        &user.token,
        openai_connection("keyed", GOOD_KEY, Some("https://llm.example.com/v1")),
    )
    .await;
    let path = keyed.path();
    for body in [
        json!({"base_url": "https://elsewhere.example.com/v1"}),
        json!({"provider": "mistral"}),
    ] {
        let refused = assert_error(app.put_json(&path, &user.token, &body).await, 422, "validation_failed").await;
        assert!(refused["fields"]["api_key"].is_array(), "{refused}");
    }
    for body in [
        json!({"api_key": ""}),
        json!({"test_status": "ok"}),
        json!({"name": null}),
    ] {
        assert_error(app.put_json(&path, &user.token, &body).await, 422, "validation_failed").await;
    }
    let unchanged = fetch_connection(&app, &user.token, keyed.id).await;
    assert_eq!(unchanged.base_url.as_deref(), Some("https://llm.example.com/v1"));
    assert_eq!(unchanged.updated_at, keyed.updated_at);
    let renamed = update_connection(&app, &user.token, &keyed, json!({"name": "Keyed account"})).await;
    assert_eq!(renamed.name, "Keyed account");
    assert_eq!(renamed.api_key_masked, keyed.api_key_masked);
    let text = app.get(CONNECTIONS, &user.token).await.text().await.unwrap();
    assert!(!text.contains(GOOD_KEY), "no key in a listing");
}

async fn a_configuration_moves_to_another_connection(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let created = app
        .create_openai(&user.token, "mover", "sk-mover-old-key-000000001")
        .await;
    let target = create_openai_connection(&app, &user.token, "target", "sk-mover-new-key-000000002").await;
    pin(&app, &user.token, "c1", &created).await;
    // Moving and changing the connection's own fields at once is ambiguous.
    assert_error(
        app.put_json(
            &created.path(),
            &user.token,
            &json!({"connection_id": target.id, "api_key": "sk-mover-third-key-00001"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let moved = app
        .update_configuration(&user.token, &created, json!({"connection_id": target.id}))
        .await;
    assert_eq!(moved.connection_id, target.id);
    assert_eq!(moved.api_key_masked, target.api_key_masked);
    assert_eq!(resolved_key(&app, &resolver, "c1").await, "sk-mover-new-key-000000002");
    // Its implicit connection went with the move.
    assert_eq!(connection_names(&app, &user.token).await, ["target"]);
}

async fn an_import_of_the_old_shape_makes_a_connection_for_each_configuration(app: TestApp) {
    let user = app.user().await;
    create_openai_connection(&app, &user.token, "imported-gpt", GOOD_KEY).await;
    let sandbox = Sandbox::new();
    let file = sandbox.workdir().join("export.json");
    let document = json!({"lanyard_export": 1, "configurations": [
        {"name": "imported-gpt", "provider": "openai", "model": "gpt-4o", "base_url": null,
         "is_default": true, "is_active": true, "has_api_key": true},
        {"name": "imported-llama", "provider": "ollama", "model": "llama3",
         "base_url": "https://ollama.example.com", "is_default": false, "is_active": true, "has_api_key": false},
    ]});
    std::fs::write(&file, document.to_string()).unwrap();
    lanyard(
        &app,
        &sandbox,
        &[
            "import",
            "json",
            "--file",
            file.to_str().unwrap(),
            "--email",
            &user.email,
        ],
        "",
    )
    .assert_success();

    let configurations = app.configurations(&user.token).await;
    assert_eq!(configurations.len(), 2, "{configurations:?}");
    let connections = list_connections(&app, &user.token).await;
    let names: Vec<&str> = connections.iter().map(|connection| connection.name.as_str()).collect();
    assert_eq!(names, ["imported-gpt", "imported-gpt (2)", "imported-llama"]);
    for configuration in &configurations {
        let own = connections
            .iter()
            .find(|connection| connection.id == configuration.connection_id)
            .unwrap();
        assert_eq!(own.configuration_count, 1);
        assert_eq!(own.provider, configuration.provider);
        assert_eq!(own.base_url, configuration.base_url);
        assert!(!own.has_api_key, "an export carries no key");
    }

    let exported = lanyard(&app, &sandbox, &["export", "--email", &user.email], "");
    exported.assert_success();
    let exported: Value = serde_json::from_str(&exported.stdout).unwrap();
    let names: Vec<&str> = exported["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|configuration| configuration["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"imported-gpt") && names.contains(&"imported-llama"),
        "{names:?}"
    );
}

/// A fake OpenAI-compatible provider listing `models` (in this order) to the good key, and
/// refusing any other key with a 401.
async fn provider_listing(models: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    let data: Vec<Value> = models.iter().map(|id| json!({"id": id, "object": "model"})).collect();
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn testing_a_connection_records_the_result_and_stores_its_models_sorted(app: TestApp) {
    let user = app.user().await;
    let server = provider_listing(&["zeta-large", "alpha-small", "mid-7b", "alpha-small"]).await;
    let connection = create_connection_to(&app, &user.token, "fake", &server).await;
    let path = connection.path();
    let before = models_of(&app, &user.token, &connection).await;
    assert_eq!(before, json!({"fetched_at": null, "models": []}));

    let response = app.post_json(&format!("{path}/test"), &user.token, &json!({})).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["warnings"], json!([]), "no model to look for");

    let catalogue = models_of(&app, &user.token, &connection).await;
    assert_eq!(
        catalogue["models"],
        json!([{"id": "alpha-small"}, {"id": "mid-7b"}, {"id": "zeta-large"}])
    );
    assert!(
        catalogue["fetched_at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{catalogue}"
    );
    let tested = fetch_connection(&app, &user.token, connection.id).await;
    assert_eq!(tested.test_status, "ok");
    assert_eq!(tested.test_code.as_deref(), Some("ok"));
    assert_eq!(tested.model_count, 3);
    assert_eq!(tested.models_fetched_at.as_deref(), catalogue["fetched_at"].as_str());
    assert!(
        tested.tested_at.is_some() && tested.test_latency_ms.is_some(),
        "{tested:?}"
    );

    // A configuration of the connection shows the connection's result.
    let on_it = create_on(&app, &user.token, "uses-fake", &connection, "mid-7b").await;
    assert_eq!(on_it.test_status, "ok");

    // A failing test is recorded too, and keeps the catalogue.
    let rotated = app
        .put_json(&path, &user.token, &json!({"api_key": "sk-rejected-key-0000000"}))
        .await;
    assert_eq!(rotated.status(), 200);
    let result: Value = app
        .post_json(&format!("{path}/test"), &user.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(result["status"], "failed", "{result}");
    let failed = fetch_connection(&app, &user.token, connection.id).await;
    assert_eq!(failed.test_status, "failed");
    assert_eq!(failed.test_code.as_deref(), result["code"].as_str());
    assert_eq!(failed.model_count, 3);
}

async fn a_configuration_whose_model_is_not_listed_tests_with_a_warning(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let connection = create_connection_to(&app, &user.token, "fake", &server).await;
    let listed = create_on(&app, &user.token, "listed", &connection, "gpt-4o").await;
    let unlisted = create_on(&app, &user.token, "unlisted", &connection, "gpt-9-imaginary").await;

    let result = test_saved(&app, &user.token, &unlisted).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["warnings"], json!(["model_not_listed"]));
    let result = test_saved(&app, &user.token, &listed).await;
    assert_eq!(result["warnings"], json!([]));
    let result = test_values(&app, &user.token, &json!({"id": listed.id, "model": "gpt-9-imaginary"})).await;
    assert_eq!(result["warnings"], json!(["model_not_listed"]));
    // The configuration's test refreshed its connection's catalogue.
    let catalogue = models_of(&app, &user.token, &connection).await;
    assert_eq!(catalogue["models"], json!([{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]));
}

async fn the_test_endpoint_takes_a_connection_and_a_model_and_nothing_else(app: TestApp) {
    let user = app.user().await;
    let server = fake_openai().await;
    let connection = create_connection_to(&app, &user.token, "fake", &server).await;
    let result = test_values(
        &app,
        &user.token,
        &json!({"connection_id": connection.id, "model": "gpt-4o"}),
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["warnings"], json!([]));
    let result = test_values(
        &app,
        &user.token,
        &json!({"connection_id": connection.id, "model": "not-offered"}),
    )
    .await;
    assert_eq!(result["warnings"], json!(["model_not_listed"]));
    let result = test_values(&app, &user.token, &json!({"connection_id": connection.id})).await;
    assert_eq!(result["status"], "ok", "{result}");

    let configuration = create_on(&app, &user.token, "on-fake", &connection, "gpt-4o").await;
    for (body, field) in [
        (
            json!({"connection_id": connection.id, "provider": "openai"}),
            "provider",
        ),
        (json!({"connection_id": connection.id, "api_key": GOOD_KEY}), "api_key"),
        (
            json!({"connection_id": connection.id, "base_url": openai_base(&server)}),
            "base_url",
        ),
        (
            json!({"id": configuration.id, "connection_id": connection.id}),
            "connection_id",
        ),
        (json!({"id": configuration.id, "api_key": GOOD_KEY}), "api_key"),
        (json!({"connection_id": "nope"}), "connection_id"),
    ] {
        let refused = assert_error(
            app.post_json("/api/llm-configurations/test", &user.token, &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(refused["fields"][field].is_array(), "{body} → {refused}");
    }
}

async fn refreshing_the_models_fetches_them_now_and_keeps_them_on_failure(app: TestApp) {
    let user = app.user().await;
    let server = provider_listing(&["b-model", "a-model"]).await;
    let connection = create_connection_to(&app, &user.token, "fake", &server).await;
    let path = connection.path();
    let response = app
        .post_json(&format!("{path}/models/refresh"), &user.token, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.unwrap();
    assert_eq!(refreshed["models"], json!([{"id": "a-model"}, {"id": "b-model"}]));
    assert!(refreshed["fetched_at"].is_string());
    assert!(refreshed.get("failure").is_none(), "{refreshed}");
    let listed = models_of(&app, &user.token, &connection).await;
    assert_eq!(listed, refreshed);
    let after = fetch_connection(&app, &user.token, connection.id).await;
    assert_eq!(after.test_status, "untested", "a refresh is not a test");
    assert_eq!(after.model_count, 2);

    // The provider now refuses the key: the kept catalogue, with the failure.
    app.put_json(&path, &user.token, &json!({"api_key": "sk-refused-key-000000000"}))
        .await;
    let kept: Value = app
        .post_json(&format!("{path}/models/refresh"), &user.token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["models"], refreshed["models"]);
    assert_eq!(kept["fetched_at"], refreshed["fetched_at"]);
    assert_eq!(kept["failure"]["code"], "invalid_key", "{kept}");
}

async fn refreshing_the_models_counts_against_the_test_budget(app: TestApp) {
    let user = app.user().await;
    let server = provider_listing(&["only-model"]).await;
    let connection = create_connection_to(&app, &user.token, "fake", &server).await;
    let path = connection.path();
    assert_eq!(
        app.post_json(&format!("{path}/test"), &user.token, &json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json(&format!("{path}/models/refresh"), &user.token, &json!({}))
            .await
            .status(),
        200
    );
    let limited = app
        .post_json(&format!("{path}/models/refresh"), &user.token, &json!({}))
        .await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_error(limited, 429, "rate_limited").await;
    assert_error(
        app.post_json(&format!("{path}/test"), &user.token, &json!({})).await,
        429,
        "rate_limited",
    )
    .await;
}
