//! Master keys: the key file created on first start, a wrong or missing key refused at start-up,
//! a passphrase-derived key rotated to a new key, and hints recomputed at start-up.

use diesel::prelude::*;
use lanyard::db::{ConnectionManager, DatabaseUrl, schema};
use r2d2::ManageConnection;
use serde_json::json;

use crate::binary::{Site, master_keys, master_passphrase};
use crate::helpers::command_line::{Cli, Keys, assert_key_entry};
use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::vault::{assert_every_key_resolves, fill_vault};
use crate::helpers::{TestDatabase, distinctive_key, master_key_entry};
use crate::on_both_backends;

on_both_backends!(database(Cli::new):
    serve_creates_a_private_key_file_for_a_fresh_database_and_migrate_succeeds,
    a_wrong_or_unconfigured_master_key_is_refused_by_name_and_changes_nothing,
    a_deleted_default_key_file_is_refused_by_name_once_data_exists,
);

on_both_backends!(database:
    a_passphrase_key_survives_restarts_and_rotates_to_a_new_master_key,
    hints_stored_under_the_old_mask_rule_are_recomputed_once_at_start_up,
);

async fn serve_creates_a_private_key_file_for_a_fresh_database_and_migrate_succeeds(cli: Cli) {
    let key_file = cli.sandbox.path().join("secrets/nested/master.key");
    let keys = Keys::File(key_file.clone());
    let server = cli.serve(&keys).await;
    let health = server.get_anonymous("/healthz").await;
    assert_eq!(health.status(), 200);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("the key file exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let contents = std::fs::read_to_string(&key_file).expect("the key file");
    let entries: Vec<&str> = contents
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(entries.len(), 1, "{contents}");
    assert_key_entry(entries[0]);
    let log = server.stop();
    assert!(
        log.contains(&key_file.display().to_string()),
        "the log names the new key file:\n{log}"
    );
    assert!(!log.contains(entries[0]), "the log must not carry the key");

    cli.run(&keys, &["migrate"], "").assert_success();
    assert_eq!(std::fs::read_to_string(&key_file).expect("the key file"), contents);
}

async fn a_wrong_or_unconfigured_master_key_is_refused_by_name_and_changes_nothing(cli: Cli) {
    let original = Keys::Entries(master_key_entry("vault-a"));
    let token = cli.user_with_token(&original, "keeper@example.com");
    let server = cli.serve(&original).await;
    server
        .create(
            &token,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-proj-")}),
        )
        .await;
    server
        .create(
            &token,
            json!({"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4", "api_key": distinctive_key("sk-ant-")}),
        )
        .await;
    server
        .create(
            &token,
            json!({"name": "fast", "provider": "groq", "model": "llama-3.3-70b", "api_key": distinctive_key("gsk_")}),
        )
        .await;
    let listed = server.list(&token).await;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|c| c.api_key_masked.is_some()));
    server.stop();
    let before = cli.dump();

    let same_id = cli.serve_refused(&Keys::Entries(master_key_entry("vault-a")));
    assert!(
        same_id.stderr.contains("`vault-a`") && same_id.stderr.contains("does not match"),
        "the refusal names the mismatched key id:\n{}",
        same_id.stderr
    );
    let other_id = cli.serve_refused(&Keys::Entries(master_key_entry("vault-b")));
    assert!(
        other_id.stderr.contains("`vault-a`") && other_id.stderr.contains("not configured"),
        "the refusal names the missing key id:\n{}",
        other_id.stderr
    );
    assert_eq!(cli.dump(), before, "a refused start changes nothing");

    let server = cli.serve(&original).await;
    assert_eq!(server.list(&token).await, listed);
    for configuration in &listed {
        let response = server.get(&configuration.path(), &token).await;
        let fetched: Configuration = expect_json(response, 200, "get").await;
        assert_eq!(&fetched, configuration);
    }
}

async fn a_deleted_default_key_file_is_refused_by_name_once_data_exists(cli: Cli) {
    let keys = Keys::DefaultFile;
    let key_file = cli.workdir().join("lanyard-data/master.key");
    let token = cli.user_with_token(&keys, "filed@example.com");
    assert!(key_file.exists(), "the first command created the default key file");
    let server = cli.serve(&keys).await;
    server
        .create(
            &token,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    server.stop();
    let before = cli.dump();

    std::fs::remove_file(&key_file).expect("delete the key file");
    let refused = cli.serve_refused(&keys);
    assert!(
        refused.stderr.contains("lanyard-data/master.key") && refused.stderr.contains("missing"),
        "the refusal names the missing file:\n{}",
        refused.stderr
    );
    assert!(!key_file.exists(), "no new key file replaces the lost one");
    assert_eq!(cli.dump(), before, "a refused start changes nothing");
}

/// Stored API keys per master key id, read straight from the database.
fn keys_by_master_key(url: DatabaseUrl) -> Vec<(String, i64)> {
    let mut conn = ConnectionManager::new(url)
        .connect()
        .expect("the test connects to its database");
    lanyard::db::connections::count_keys_by_key_id(&mut conn).expect("the key counts")
}

async fn a_passphrase_key_survives_restarts_and_rotates_to_a_new_master_key(database: TestDatabase) {
    let site = Site::new(database.url_string());
    let passphrase = "correct horse battery staple, twice over";
    let with_passphrase = master_passphrase(passphrase);
    let (write, resolve) = site.user_with_tokens(&with_passphrase, "keeper@example.com");
    let server = site.serve(&with_passphrase).await;
    let vault = fill_vault(&server, &write).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    // The same passphrase after a restart derives the same key.
    let server = site.serve(&with_passphrase).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    let wrong = site.serve_refused(&master_passphrase("a different passphrase, just as long"));
    assert!(
        wrong.stderr.contains("`passphrase`") && wrong.stderr.contains("does not match"),
        "the refusal names the mismatched key:\n{}",
        wrong.stderr
    );

    // The passphrase as a key entry, for rotating away from it.
    let derived = site.run(&[], &["keygen", "--from-passphrase"], &format!("{passphrase}\n"));
    derived.assert_success();
    assert_eq!(derived.stdout.lines().count(), 1, "{:?}", derived.stdout);
    let old_entry = derived.stdout.trim_end().to_owned();
    assert!(old_entry.starts_with("passphrase:"), "{old_entry:?}");
    assert!(!old_entry.contains(passphrase));
    let new_entry = master_key_entry("new");

    let only_new = master_keys(&new_entry);
    let refused = site.serve_refused(&only_new);
    assert!(
        refused.stderr.contains("`passphrase`") && refused.stderr.contains("not configured"),
        "the refusal names the old key id:\n{}",
        refused.stderr
    );

    let new_then_old = master_keys(&format!("{new_entry},{old_entry}"));
    let server = site.serve(&new_then_old).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    // Rotation runs while the server keeps serving.
    let first = site.run(&new_then_old, &["rotate-keys"], "");
    first.assert_success();
    assert!(
        first.stdout.contains("Re-encrypted 5 key(s)") && first.stdout.contains("`new`"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("No key remains"), "{}", first.stdout);
    assert_eq!(keys_by_master_key(database.url()), vec![("new".to_owned(), 5)]);
    let second = site.run(&new_then_old, &["rotate-keys"], "");
    second.assert_success();
    assert!(second.stdout.contains("Re-encrypted 0 key(s)"), "{}", second.stdout);
    assert!(second.stdout.contains("No key remains"), "{}", second.stdout);
    assert!(!second.stdout.contains("remain under"), "{}", second.stdout);
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    let server = site.serve(&only_new).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    let log = server.stop();
    assert!(!log.contains(passphrase), "the log must not carry the passphrase");
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
    assert_eq!(short.api_key_masked.as_deref(), Some("••••"));
    assert_eq!(long.api_key_masked.as_deref(), Some("sk-…x7Qa"));
    server.stop();

    // The database as the previous release left it: the short key's hint under the old rule
    // (the last four whenever more than twelve characters), and no record of a recomputation.
    {
        // The key and its hint are on the configuration's connection, named after it.
        use schema::{connections as cfg, instance_settings};
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
        .into_iter()
        .map(|item| (item.name, item.api_key_masked.unwrap()))
        .collect();
    assert!(masks.contains(&("short".to_owned(), "••••".to_owned())), "{masks:?}");
    assert!(masks.contains(&("long".to_owned(), "sk-…x7Qa".to_owned())), "{masks:?}");
    server.stop();

    // Once: a later start does not decrypt every key again.
    {
        use schema::connections as cfg;
        let mut conn = connect(&database);
        diesel::update(cfg::table.filter(cfg::name.eq("long")))
            .set(cfg::api_key_hint.eq("sk-…seen"))
            .execute(&mut conn)
            .unwrap();
    }
    let server = site.serve(&env).await;
    let listed = server.list(&token).await;
    let long = listed.iter().find(|item| item.name == "long").unwrap();
    assert_eq!(
        long.api_key_masked.as_deref(),
        Some("sk-…seen"),
        "hints are recomputed once per rule"
    );
    server.stop();
}
