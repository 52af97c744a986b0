//! Hardening of secrets (issue 11): no secret echoed by a parse error, masks that never show a
//! short key, per-user caps.

use diesel::prelude::*;
use lanyard::db::{ConnectionManager, DatabaseUrl, schema};
use r2d2::ManageConnection;
use serde_json::json;

use crate::binary::{Site, master_keys};
use crate::helpers::{TestDatabase, master_key_entry};

crate::database_on_both_backends!(hints_stored_under_the_old_mask_rule_are_recomputed_once_at_start_up);

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
