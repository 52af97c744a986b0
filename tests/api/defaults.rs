//! The default configuration: the first active one becomes it, setting it moves it, and removing
//! or deactivating it promotes the most recently used active configuration; at most one per user.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use lanyard::db::schema::llm_configurations;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::configurations::{CONFIGURATIONS, db_id_of, openai_keyed_by_name, path_of};
use crate::helpers::{TestApp, TestUser, assert_error};
use crate::on_both_backends;

on_both_backends!(
    the_first_active_configuration_becomes_the_default,
    creating_with_is_default_moves_the_default,
    set_default_moves_the_default_and_lists_it_first,
    an_inactive_configuration_cannot_be_set_as_default,
    deactivating_the_default_promotes_the_most_recently_used_active_configuration,
    deleting_the_default_promotes_the_most_recently_used_active_configuration,
    removing_another_configuration_leaves_the_default_alone,
    deleting_the_last_configuration_leaves_no_default,
    reactivating_while_there_is_no_default_makes_it_the_default,
    concurrent_set_default_requests_leave_exactly_one_default,
    concurrent_first_creations_leave_exactly_one_default,
    the_database_refuses_a_second_default_for_a_user,
    the_database_refuses_an_inactive_default,
    listing_puts_the_default_first_then_orders_by_name_ignoring_case,
);

const DEFAULT: &str = "/api/llm-configurations/default";

fn ago(duration: Duration) -> NaiveDateTime {
    Utc::now().naive_utc() - duration
}

/// The ids the list marks as default, and the list's order by name.
async fn defaults_and_names(app: &TestApp, token: &str) -> (Vec<Value>, Vec<String>) {
    let list = app.list(token).await;
    let defaults = list
        .iter()
        .filter(|item| item["is_default"] == true)
        .map(|item| item["id"].clone())
        .collect();
    let names = list
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect();
    (defaults, names)
}

/// Asserts that `expected` is the one default: in the list (listed first) and at
/// `GET /default`; `None` means the user has no default at all.
async fn assert_default(app: &TestApp, token: &str, expected: Option<&Value>) {
    let list = app.list(token).await;
    let defaults: Vec<&Value> = list.iter().filter(|item| item["is_default"] == true).collect();
    let response = app.get(DEFAULT, token).await;
    match expected {
        Some(expected) => {
            assert_eq!(defaults.len(), 1, "one default expected: {list:?}");
            assert_eq!(defaults[0]["id"], expected["id"], "default is {}", defaults[0]["name"]);
            assert_eq!(list[0]["id"], expected["id"], "the default is listed first");
            assert_eq!(defaults[0]["is_active"], true);
            assert_eq!(response.status(), 200);
            let default: Value = response.json().await.unwrap();
            assert_eq!(default["id"], expected["id"]);
        }
        None => {
            assert!(defaults.is_empty(), "no default expected: {list:?}");
            assert_error(response, 404, "not_found").await;
        }
    }
}

async fn set_times(
    app: &TestApp,
    configuration: &Value,
    last_used_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
) {
    let id = db_id_of(configuration);
    app.with_db(move |conn| {
        diesel::update(llm_configurations::table.find(id))
            .set((
                llm_configurations::last_used_at.eq(last_used_at),
                llm_configurations::created_at.eq(created_at),
            ))
            .execute(conn)
            .unwrap()
    })
    .await;
}

/// Six configurations arranged so that each step of the succession is decided by a different
/// rule: `first` is the default; `used_long_ago` was created after `used_recently` but used
/// before it; `old_unused` and `new_unused` were never used (and `new_unused` is the newest of
/// all, so a rule that put never-used ones first would pick it); `inactive` was used most
/// recently of all but is inactive.
struct Succession {
    first: Value,
    used_recently: Value,
    used_long_ago: Value,
    new_unused: Value,
    old_unused: Value,
    inactive: Value,
}

async fn arrange_succession(app: &TestApp, user: &TestUser) -> Succession {
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let used_recently = app
        .create_configuration(&user.token, openai_keyed_by_name("used-recently"))
        .await;
    let used_long_ago = app
        .create_configuration(&user.token, openai_keyed_by_name("used-long-ago"))
        .await;
    let old_unused = app
        .create_configuration(&user.token, openai_keyed_by_name("old-unused"))
        .await;
    let new_unused = app
        .create_configuration(&user.token, openai_keyed_by_name("new-unused"))
        .await;
    let mut inactive = openai_keyed_by_name("inactive");
    inactive["is_active"] = json!(false);
    let inactive = app.create_configuration(&user.token, inactive).await;

    set_times(app, &first, Some(ago(Duration::minutes(5))), ago(Duration::days(10))).await;
    set_times(
        app,
        &used_recently,
        Some(ago(Duration::hours(1))),
        ago(Duration::days(9)),
    )
    .await;
    set_times(
        app,
        &used_long_ago,
        Some(ago(Duration::hours(2))),
        ago(Duration::days(8)),
    )
    .await;
    set_times(app, &old_unused, None, ago(Duration::days(2))).await;
    set_times(app, &new_unused, None, ago(Duration::days(1))).await;
    set_times(app, &inactive, Some(ago(Duration::minutes(1))), ago(Duration::days(3))).await;
    assert_default(app, &user.token, Some(&first)).await;
    Succession {
        first,
        used_recently,
        used_long_ago,
        new_unused,
        old_unused,
        inactive,
    }
}

async fn the_first_active_configuration_becomes_the_default(app: TestApp) {
    let user = app.user().await;
    let mut inactive = openai_keyed_by_name("inactive");
    inactive["is_active"] = json!(false);
    let inactive = app.create_configuration(&user.token, inactive).await;
    assert_eq!(inactive["is_default"], false);
    assert_default(&app, &user.token, None).await;

    let mut active = openai_keyed_by_name("active");
    active["is_default"] = json!(false);
    let active = app.create_configuration(&user.token, active).await;
    assert_eq!(active["is_default"], true);
    let later = app
        .create_configuration(&user.token, openai_keyed_by_name("later"))
        .await;
    assert_eq!(later["is_default"], false);
    assert_default(&app, &user.token, Some(&active)).await;

    // Another user's first configuration is their own default.
    let other = app.user().await;
    let theirs = app
        .create_configuration(&other.token, openai_keyed_by_name("theirs"))
        .await;
    assert_eq!(theirs["is_default"], true);
    assert_default(&app, &user.token, Some(&active)).await;
}

async fn creating_with_is_default_moves_the_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let mut chosen = openai_keyed_by_name("chosen");
    chosen["is_default"] = json!(true);
    let chosen = app.create_configuration(&user.token, chosen).await;
    assert_eq!(chosen["is_default"], true);
    assert_default(&app, &user.token, Some(&chosen)).await;
    let first_now: Value = app.get(&path_of(&first), &user.token).await.json().await.unwrap();
    assert_eq!(first_now["is_default"], false);
}

async fn set_default_moves_the_default_and_lists_it_first(app: TestApp) {
    let user = app.user().await;
    let other = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("a-first"))
        .await;
    app.create_configuration(&user.token, openai_keyed_by_name("b-second"))
        .await;
    let last = app
        .create_configuration(&user.token, openai_keyed_by_name("c-last"))
        .await;
    let theirs = app
        .create_configuration(&other.token, openai_keyed_by_name("theirs"))
        .await;

    let response = app
        .put_json(&format!("{}/set-default", path_of(&last)), &user.token, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], last["id"]);
    assert_eq!(body["is_default"], true);
    assert_default(&app, &user.token, Some(&last)).await;
    let (_, names) = defaults_and_names(&app, &user.token).await;
    assert_eq!(names, ["c-last", "a-first", "b-second"]);

    // Setting the default again is harmless.
    let again = app
        .put_json(&format!("{}/set-default", path_of(&last)), &user.token, &json!({}))
        .await;
    assert_eq!(again.status(), 200);
    assert_default(&app, &user.token, Some(&last)).await;

    let back = app
        .put_json(&format!("{}/set-default", path_of(&first)), &user.token, &json!({}))
        .await;
    assert_eq!(back.status(), 200);
    assert_default(&app, &user.token, Some(&first)).await;
    // Only the caller's default moved.
    assert_default(&app, &other.token, Some(&theirs)).await;
}

async fn an_inactive_configuration_cannot_be_set_as_default(app: TestApp) {
    let user = app.user().await;
    let active = app
        .create_configuration(&user.token, openai_keyed_by_name("active"))
        .await;
    let mut inactive = openai_keyed_by_name("inactive");
    inactive["is_active"] = json!(false);
    let inactive = app.create_configuration(&user.token, inactive).await;

    assert_error(
        app.put_json(&format!("{}/set-default", path_of(&inactive)), &user.token, &json!({}))
            .await,
        409,
        "conflict",
    )
    .await;
    assert_default(&app, &user.token, Some(&active)).await;
    let still: Value = app.get(&path_of(&inactive), &user.token).await.json().await.unwrap();
    assert_eq!(still, inactive);
}

async fn deactivating_the_default_promotes_the_most_recently_used_active_configuration(app: TestApp) {
    let user = app.user().await;
    let s = arrange_succession(&app, &user).await;
    let expected = [
        (&s.first, Some(&s.used_recently)),
        (&s.used_recently, Some(&s.used_long_ago)),
        (&s.used_long_ago, Some(&s.new_unused)),
        (&s.new_unused, Some(&s.old_unused)),
        (&s.old_unused, None),
    ];
    for (deactivated, successor) in expected {
        let response = app
            .put_json(&path_of(deactivated), &user.token, &json!({"is_active": false}))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["is_active"], false);
        assert_eq!(body["is_default"], false);
        assert_default(&app, &user.token, successor).await;
    }
    let inactive: Value = app.get(&path_of(&s.inactive), &user.token).await.json().await.unwrap();
    assert_eq!(inactive["is_default"], false);
}

async fn deleting_the_default_promotes_the_most_recently_used_active_configuration(app: TestApp) {
    let user = app.user().await;
    let s = arrange_succession(&app, &user).await;
    let expected = [
        (&s.first, Some(&s.used_recently)),
        (&s.used_recently, Some(&s.used_long_ago)),
        (&s.used_long_ago, Some(&s.new_unused)),
        (&s.new_unused, Some(&s.old_unused)),
        (&s.old_unused, None),
    ];
    for (deleted, successor) in expected {
        let response = app.delete(&path_of(deleted), &user.token).await;
        assert_eq!(response.status(), 204);
        assert_error(app.get(&path_of(deleted), &user.token).await, 404, "not_found").await;
        assert_default(&app, &user.token, successor).await;
    }
    let (_, names) = defaults_and_names(&app, &user.token).await;
    assert_eq!(names, ["inactive"]);
}

async fn removing_another_configuration_leaves_the_default_alone(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let second = app
        .create_configuration(&user.token, openai_keyed_by_name("second"))
        .await;
    let third = app
        .create_configuration(&user.token, openai_keyed_by_name("third"))
        .await;
    set_times(&app, &second, Some(ago(Duration::minutes(1))), ago(Duration::days(1))).await;

    let deactivated = app
        .put_json(&path_of(&second), &user.token, &json!({"is_active": false}))
        .await;
    assert_eq!(deactivated.status(), 200);
    assert_default(&app, &user.token, Some(&first)).await;
    assert_eq!(app.delete(&path_of(&third), &user.token).await.status(), 204);
    assert_default(&app, &user.token, Some(&first)).await;
}

async fn deleting_the_last_configuration_leaves_no_default(app: TestApp) {
    let user = app.user().await;
    let only = app
        .create_configuration(&user.token, openai_keyed_by_name("only"))
        .await;
    assert_default(&app, &user.token, Some(&only)).await;
    assert_eq!(app.delete(&path_of(&only), &user.token).await.status(), 204);
    assert_default(&app, &user.token, None).await;
    assert!(app.list(&user.token).await.is_empty());

    // The next configuration is a first one again.
    let next = app
        .create_configuration(&user.token, openai_keyed_by_name("next"))
        .await;
    assert_eq!(next["is_default"], true);
    assert_default(&app, &user.token, Some(&next)).await;
}

async fn reactivating_while_there_is_no_default_makes_it_the_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let off = app
        .put_json(&path_of(&first), &user.token, &json!({"is_active": false}))
        .await;
    assert_eq!(off.status(), 200);
    assert_default(&app, &user.token, None).await;
    let mut dormant = openai_keyed_by_name("dormant");
    dormant["is_active"] = json!(false);
    let dormant = app.create_configuration(&user.token, dormant).await;
    assert_default(&app, &user.token, None).await;

    let on = app
        .put_json(&path_of(&dormant), &user.token, &json!({"is_active": true}))
        .await;
    assert_eq!(on.status(), 200);
    let on: Value = on.json().await.unwrap();
    assert_eq!(on["is_default"], true);
    assert_default(&app, &user.token, Some(&dormant)).await;

    // With a default in place, reactivating another one does not move it.
    let first_on = app
        .put_json(&path_of(&first), &user.token, &json!({"is_active": true}))
        .await;
    assert_eq!(first_on.status(), 200);
    let first_on: Value = first_on.json().await.unwrap();
    assert_eq!(first_on["is_default"], false);
    assert_default(&app, &user.token, Some(&dormant)).await;
}

async fn concurrent_set_default_requests_leave_exactly_one_default(app: TestApp) {
    let user = app.user().await;
    let mut configurations = Vec::new();
    for index in 0..8 {
        configurations.push(
            app.create_configuration(&user.token, openai_keyed_by_name(&format!("config-{index}")))
                .await,
        );
    }
    let mut requests = JoinSet::new();
    for index in 0..48 {
        let client = app.client.clone();
        let url = app.url(&format!("{}/set-default", path_of(&configurations[index % 8])));
        let token = user.token.clone();
        requests.spawn(async move {
            let response = client
                .put(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    let mut answered = 0;
    while let Some(joined) = requests.join_next().await {
        let (status, body) = joined.unwrap();
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["is_default"], true);
        answered += 1;
    }
    assert_eq!(answered, 48);

    let (defaults, _) = defaults_and_names(&app, &user.token).await;
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    let winner = configurations
        .iter()
        .find(|configuration| configuration["id"] == defaults[0])
        .unwrap();
    assert_default(&app, &user.token, Some(winner)).await;
}

async fn concurrent_first_creations_leave_exactly_one_default(app: TestApp) {
    for _ in 0..4 {
        let user = app.user().await;
        let mut requests = JoinSet::new();
        for name in ["left", "right"] {
            let client = app.client.clone();
            let url = app.url(CONFIGURATIONS);
            let token = user.token.clone();
            requests.spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&openai_keyed_by_name(name))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            });
        }
        let mut created = Vec::new();
        while let Some(joined) = requests.join_next().await {
            let (status, body) = joined.unwrap();
            assert_eq!(status, 201, "{body}");
            created.push(serde_json::from_str::<Value>(&body).unwrap());
        }
        let said_default: Vec<&Value> = created.iter().filter(|c| c["is_default"] == true).collect();
        assert_eq!(said_default.len(), 1, "{created:?}");
        assert_default(&app, &user.token, Some(said_default[0])).await;
        assert_eq!(app.list(&user.token).await.len(), 2);
    }
}

async fn the_database_refuses_a_second_default_for_a_user(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let second = app
        .create_configuration(&user.token, openai_keyed_by_name("second"))
        .await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let result = app
        .with_db(move |conn| {
            diesel::sql_query(format!(
                "UPDATE llm_configurations SET is_default = TRUE WHERE id = '{second_id}'"
            ))
            .execute(conn)
        })
        .await;
    assert!(result.is_err(), "a second default was accepted: {result:?}");
    assert_default(&app, &user.token, Some(&first)).await;

    // The refusal is about a second default: once the first is cleared, the same statement passes.
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_str().unwrap().to_owned();
    let result = app
        .with_db(move |conn| {
            diesel::sql_query(format!(
                "UPDATE llm_configurations SET is_default = FALSE WHERE id = '{first_id}'"
            ))
            .execute(conn)?;
            diesel::sql_query(format!(
                "UPDATE llm_configurations SET is_default = TRUE WHERE id = '{second_id}'"
            ))
            .execute(conn)
        })
        .await;
    assert_eq!(result.ok(), Some(1));
    assert_default(&app, &user.token, Some(&second)).await;
}

async fn the_database_refuses_an_inactive_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let result = app
        .with_db(move |conn| {
            diesel::sql_query(format!(
                "UPDATE llm_configurations SET is_active = FALSE WHERE id = '{first_id}'"
            ))
            .execute(conn)
        })
        .await;
    assert!(result.is_err(), "an inactive default was accepted: {result:?}");
    assert_default(&app, &user.token, Some(&first)).await;
}

async fn listing_puts_the_default_first_then_orders_by_name_ignoring_case(app: TestApp) {
    let user = app.user().await;
    let mut created = Vec::new();
    for name in ["bravo", "Delta", "alpha", "Charlie", "echo", "ALPHA-2"] {
        created.push(app.create_configuration(&user.token, openai_keyed_by_name(name)).await);
    }
    let (_, names) = defaults_and_names(&app, &user.token).await;
    assert_eq!(names, ["bravo", "alpha", "ALPHA-2", "Charlie", "Delta", "echo"]);

    let delta = created.iter().find(|c| c["name"] == "Delta").unwrap();
    let response = app
        .put_json(&format!("{}/set-default", path_of(delta)), &user.token, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let (_, names) = defaults_and_names(&app, &user.token).await;
    assert_eq!(names, ["Delta", "alpha", "ALPHA-2", "bravo", "Charlie", "echo"]);
}
