//! The upgrade to connections: a database written by the previous release (the committed
//! fixture under `tests/fixtures/previous-release`, made by that release's own binary) is
//! upgraded by the real `lanyard` binary at start-up, on SQLite and PostgreSQL. Every
//! configuration resolves to the same key, model and base URL; a second start changes nothing;
//! a start killed half-way through the re-sealing finishes on the next start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use lanyard::db::connections::{self as connection_store, ConnectionRow};
use lanyard::db::copy::SettingRow;
use lanyard::db::llm_configurations::{self as configuration_store, ConfigurationTableRow};
use lanyard::db::schema::instance_settings;
use lanyard::db::{ConnectionManager, DbConnection, master_key_canaries};
use r2d2::ManageConnection;
use serde_json::{Value, json};

use crate::binary::{Env, Server, Site, master_keys};
use crate::helpers::TestDatabase;
use crate::helpers::resolve::segment;
use crate::on_both_backends;

on_both_backends!(database:
    the_previous_releases_database_resolves_every_configuration_unchanged_after_the_upgrade,
    a_second_start_after_the_upgrade_changes_nothing,
    an_upgrade_killed_half_way_finishes_on_the_next_start,
);

/// The keys the fixture holds (one configuration of each user has none).
const FIXTURE_KEYS: i64 = 7;
const FIXTURE_CONFIGURATIONS: usize = 9;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/previous-release")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).expect("the fixture's expectations");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

/// The fixture's master key (a generated test key guarding only the fixture's test keys).
fn fixture_env() -> Env {
    let entry = std::fs::read_to_string(fixture_dir().join("master-keys.txt")).expect("the fixture's master key");
    master_keys(entry.trim())
}

/// Puts the previous release's database in place of the empty test database.
fn load_fixture(database: &TestDatabase) {
    match database {
        TestDatabase::Sqlite { path, .. } => {
            std::fs::copy(fixture_dir().join("lanyard.db"), path).expect("copy the SQLite fixture");
        }
        TestDatabase::Postgres { url, .. } => {
            let dump = std::fs::read_to_string(fixture_dir().join("postgres.sql")).expect("the PostgreSQL dump");
            // psql's meta-commands (`\restrict`) are not SQL; everything else is.
            let sql: String = dump
                .lines()
                .filter(|line| !line.starts_with('\\'))
                .map(|line| format!("{line}\n"))
                .collect();
            // A connection of its own: the dump empties its search_path.
            let mut conn = diesel::PgConnection::establish(url).expect("the test database");
            conn.batch_execute(&sql).expect("the dump loads");
        }
    }
}

fn connect(database: &TestDatabase) -> DbConnection {
    ConnectionManager::new(database.url())
        .connect()
        .expect("the test connects to its database")
}

/// Everything the upgrade writes or could touch, as text, in a stable order.
fn dump(database: &TestDatabase) -> Vec<String> {
    let mut conn = connect(database);
    let connections: Vec<ConnectionRow> = connection_store::all(&mut conn).expect("connections");
    let configurations: Vec<ConfigurationTableRow> = configuration_store::all(&mut conn).expect("configurations");
    let models = connection_store::all_models(&mut conn).expect("catalogues");
    let canaries = master_key_canaries::list(&mut conn).expect("canaries");
    let settings: Vec<SettingRow> = instance_settings::table
        .order(instance_settings::name)
        .select(SettingRow::as_select())
        .load(&mut conn)
        .expect("settings");
    connections
        .iter()
        .map(|row| format!("{row:?}"))
        .chain(configurations.iter().map(|row| format!("{row:?}")))
        .chain(models.iter().map(|row| format!("{row:?}")))
        .chain(canaries.iter().map(|row| format!("{row:?}")))
        .chain(settings.iter().map(|row| format!("{row:?}")))
        .collect()
}

/// Keys the upgrade has yet to re-seal; `None` before the migration has created the table.
fn keys_left_to_reseal(database: &TestDatabase) -> Option<i64> {
    let mut conn = connect(database);
    if !connection_store::table_exists(&mut conn).ok()? {
        return None;
    }
    connection_store::count_upgraded_keys(&mut conn).ok()
}

/// A `read,write,resolve` token for a fixture user, from the shell.
fn token_for(site: &Site, email: &str) -> String {
    let created = site.run(
        &fixture_env(),
        &[
            "token",
            "create",
            "--email",
            email,
            "--name",
            "after-the-upgrade",
            "--scopes",
            "read,write,resolve",
        ],
        "",
    );
    created.assert_success();
    created.stdout.trim().to_owned()
}

async fn get_json(server: &Server, path: &str, token: &str) -> Value {
    let response = server.get(path, token).await;
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn send_ok(server: &Server, method: reqwest::Method, path: &str, token: &str, body: &Value) -> Value {
    let response = server.send_json(method.clone(), path, token, body).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 200, "{method} {path} {body}: {answer}");
    answer
}

/// What the fixture's users and configurations must look like after the upgrade: listed with
/// their own connection each, defaults and overrides resolving as before, and every
/// configuration resolving to the key, model and base URL the previous release stored.
async fn assert_every_configuration_resolves_as_before(site: &Site, server: &Server) {
    let expected = expected();
    let tokens: Vec<(String, String)> = expected["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap().to_owned())
        .map(|email| {
            let token = token_for(site, &email);
            (email, token)
        })
        .collect();
    let token_of = |email: &str| -> &str {
        &tokens
            .iter()
            .find(|(candidate, _)| candidate == email)
            .expect("a fixture user")
            .1
    };
    let resolve = |token: String, conversation: Option<String>| async move {
        let path = match conversation {
            Some(conversation) => format!("/api/resolve?conversation_id={}", segment(&conversation)),
            None => "/api/resolve".to_owned(),
        };
        get_json(server, &path, &token).await
    };

    // Defaults and overrides as the previous release left them.
    for (email, default) in expected["defaults"].as_object().unwrap() {
        let answer = resolve(token_of(email).to_owned(), None).await;
        assert_eq!(answer["source"], "default", "{answer}");
        assert_eq!(answer["configuration"]["id"], *default, "{answer}");
    }
    for pinned in expected["overrides"].as_array().unwrap() {
        let token = token_of(pinned["owner"].as_str().unwrap()).to_owned();
        let conversation = pinned["conversation_id"].as_str().unwrap().to_owned();
        let answer = resolve(token, Some(conversation)).await;
        assert_eq!(answer["source"], "override", "{answer}");
        assert_eq!(answer["configuration"]["id"], pinned["configuration_id"], "{answer}");
    }

    // Each user's configurations, each with a connection of its own named after it.
    for (email, token) in &tokens {
        let mine: Vec<&Value> = expected["configurations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|configuration| configuration["owner"] == email.as_str())
            .collect();
        let connections: Vec<Value> =
            serde_json::from_value(get_json(server, "/api/connections", token).await).unwrap();
        assert_eq!(connections.len(), mine.len(), "{email}: {connections:?}");
        for configuration in &mine {
            let listed = get_json(
                server,
                &format!("/api/llm-configurations/{}", configuration["id"].as_str().unwrap()),
                token,
            )
            .await;
            let own = connections
                .iter()
                .find(|connection| connection["id"] == listed["connection_id"])
                .unwrap_or_else(|| panic!("{listed} has no connection among {connections:?}"));
            assert_eq!(own["name"], configuration["name"]);
            assert_eq!(own["configuration_count"], 1);
            assert_eq!(own["provider"], configuration["provider"]);
            assert_eq!(listed["provider"], configuration["provider"]);
            assert_eq!(listed["model"], configuration["model"]);
            assert_eq!(listed["base_url"], configuration["base_url"]);
            assert_eq!(listed["has_api_key"], !configuration["api_key"].is_null());
            let tested_ok = expected["tested_ok"].as_array().unwrap().contains(&configuration["id"]);
            assert_eq!(
                listed["test_status"],
                if tested_ok { "ok" } else { "untested" },
                "{listed}"
            );
            assert_eq!(
                listed["is_active"],
                !expected["inactive"].as_array().unwrap().contains(&configuration["id"])
            );
        }
    }

    // Every configuration, pinned to a conversation of its own, resolves as it did.
    for configuration in expected["configurations"].as_array().unwrap() {
        let id = configuration["id"].as_str().unwrap();
        let token = token_of(configuration["owner"].as_str().unwrap()).to_owned();
        let path = format!("/api/llm-configurations/{id}");
        if !get_json(server, &path, &token).await["is_active"].as_bool().unwrap() {
            send_ok(server, reqwest::Method::PUT, &path, &token, &json!({"is_active": true})).await;
        }
        let conversation = format!("after-the-upgrade-{id}");
        send_ok(
            server,
            reqwest::Method::PUT,
            &format!("/api/conversations/{}/llm-configuration", segment(&conversation)),
            &token,
            &json!({"configuration_id": id}),
        )
        .await;
        let answer = resolve(token, Some(conversation)).await;
        let resolved = &answer["configuration"];
        assert_eq!(answer["source"], "override", "{answer}");
        assert_eq!(resolved["id"], id);
        assert_eq!(
            resolved["api_key"], configuration["api_key"],
            "{}",
            configuration["name"]
        );
        assert_eq!(resolved["model"], configuration["model"]);
        assert_eq!(resolved["base_url"], configuration["base_url"]);
        assert_eq!(resolved["provider"], configuration["provider"]);
    }
}

async fn the_previous_releases_database_resolves_every_configuration_unchanged_after_the_upgrade(
    database: TestDatabase,
) {
    load_fixture(&database);
    {
        let mut conn = connect(&database);
        assert!(
            !connection_store::table_exists(&mut conn).unwrap(),
            "the fixture predates connections"
        );
        assert_eq!(
            configuration_store::legacy_count_keys_by_key_id(&mut conn).unwrap(),
            vec![("fixture-2026".to_owned(), FIXTURE_KEYS)]
        );
    }
    let site = Site::new(database.url_string());
    let server = site.serve(&fixture_env()).await;
    {
        let mut conn = connect(&database);
        assert_eq!(
            connection_store::count_all(&mut conn).unwrap(),
            FIXTURE_CONFIGURATIONS as i64
        );
        assert_eq!(
            connection_store::count_upgraded_keys(&mut conn).unwrap(),
            0,
            "every key re-sealed"
        );
        assert_eq!(
            connection_store::count_keys_by_key_id(&mut conn).unwrap(),
            vec![("fixture-2026".to_owned(), FIXTURE_KEYS)]
        );
    }
    assert_every_configuration_resolves_as_before(&site, &server).await;
    let log = server.stop();
    let expected = expected();
    for configuration in expected["configurations"].as_array().unwrap() {
        if let Some(key) = configuration["api_key"].as_str() {
            assert!(!log.contains(key), "a key reached the log");
        }
    }
    assert!(
        log.contains("upgrade to connections"),
        "the log says what start-up did:\n{log}"
    );
}

async fn a_second_start_after_the_upgrade_changes_nothing(database: TestDatabase) {
    load_fixture(&database);
    let site = Site::new(database.url_string());
    site.serve(&fixture_env()).await.stop();
    let upgraded = dump(&database);
    assert_eq!(
        upgraded.iter().filter(|row| row.starts_with("ConnectionRow")).count(),
        FIXTURE_CONFIGURATIONS
    );
    let log = site.serve(&fixture_env()).await.stop();
    assert_eq!(dump(&database), upgraded, "a second start changed the database");
    assert!(!log.contains("re-sealing keys"), "nothing was left to re-seal:\n{log}");
    site.run(&fixture_env(), &["migrate"], "").assert_success();
    assert_eq!(dump(&database), upgraded, "`lanyard migrate` changed the database");
}

async fn an_upgrade_killed_half_way_finishes_on_the_next_start(database: TestDatabase) {
    load_fixture(&database);
    let site = Site::new(database.url_string());
    // One key per batch, and a pause after each: the test kills the process once the first
    // batch is committed and the others are not.
    let mut slow = fixture_env();
    slow.push(("LANYARD_UPGRADE_BATCH_SIZE", "1".to_owned()));
    slow.push(("LANYARD_UPGRADE_BATCH_PAUSE_MS", "2000".to_owned()));
    let starting = site.launch(&slow);
    let began = Instant::now();
    let left = loop {
        if let Some(left) = keys_left_to_reseal(&database)
            && left < FIXTURE_KEYS
        {
            break left;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the first batch was never committed"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let log = starting.stop();
    assert!(
        (1..FIXTURE_KEYS).contains(&left),
        "killed half-way: {left} of {FIXTURE_KEYS} keys still under the old binding\n{log}"
    );
    assert_eq!(
        keys_left_to_reseal(&database),
        Some(left),
        "the kill stopped the re-sealing"
    );

    let server = site.serve(&fixture_env()).await;
    assert_eq!(
        keys_left_to_reseal(&database),
        Some(0),
        "the next start finished the upgrade"
    );
    assert_every_configuration_resolves_as_before(&site, &server).await;
    server.stop();
}
