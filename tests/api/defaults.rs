//! The default configuration: the first active one becomes it, setting it moves it, and removing
//! or deactivating it promotes the most recently used active configuration; at most one per user.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use lanyard::db::schema::llm_configurations;
use serde_json::json;
use tokio::task::JoinSet;

use crate::helpers::configurations::{
    CONFIGURATIONS, Configuration, DEFAULT_CONFIGURATION, expect_json, openai_keyed_by_name, with,
};
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

fn ago(duration: Duration) -> NaiveDateTime {
    Utc::now().naive_utc() - duration
}

/// Asserts that `expected` is the one default: in the list (listed first) and at
/// `GET /default`; `None` means the user has no default at all.
async fn assert_default(app: &TestApp, token: &str, expected: Option<&Configuration>) {
    let list = app.configurations(token).await;
    let defaults: Vec<&Configuration> = list.iter().filter(|item| item.is_default).collect();
    let response = app.get(DEFAULT_CONFIGURATION, token).await;
    match expected {
        Some(expected) => {
            assert_eq!(defaults.len(), 1, "one default expected: {list:?}");
            assert_eq!(defaults[0].id, expected.id, "default is {}", defaults[0].name);
            assert_eq!(list[0].id, expected.id, "the default is listed first");
            assert!(defaults[0].is_active);
            let default: Configuration = expect_json(response, 200, "the default").await;
            assert_eq!(default.id, expected.id);
        }
        None => {
            assert!(defaults.is_empty(), "no default expected: {list:?}");
            assert_error(response, 404, "not_found").await;
        }
    }
}

/// Creates an OpenAI configuration for each name (keyed by its name), in order.
async fn create_named(app: &TestApp, token: &str, names: &[&str]) -> Vec<Configuration> {
    let mut created = Vec::new();
    for name in names {
        created.push(app.create_configuration(token, openai_keyed_by_name(name)).await);
    }
    created
}

/// Creates an inactive OpenAI configuration named `name`.
async fn create_inactive(app: &TestApp, token: &str, name: &str) -> Configuration {
    app.create_configuration(token, with(openai_keyed_by_name(name), "is_active", json!(false)))
        .await
}

async fn set_times(
    app: &TestApp,
    configuration: &Configuration,
    last_used_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
) {
    let id = configuration.db_id();
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

/// Runs raw SQL statements, in order, as someone bypassing the application would; the row
/// count of the last, or the first error.
async fn raw_sql(app: &TestApp, statements: Vec<String>) -> QueryResult<usize> {
    app.with_db(move |conn| {
        let mut changed = 0;
        for statement in &statements {
            changed = diesel::sql_query(statement).execute(conn)?;
        }
        Ok(changed)
    })
    .await
}

/// `UPDATE llm_configurations SET {assignment} WHERE id = '{id}'`.
fn update_statement(assignment: &str, configuration: &Configuration) -> String {
    format!(
        "UPDATE llm_configurations SET {assignment} WHERE id = '{}'",
        configuration.id
    )
}

/// Sends every request at once; each answer's status and body.
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, String)> {
    let mut running = JoinSet::new();
    for request in requests {
        running.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = running.join_next().await {
        answers.push(joined.unwrap());
    }
    answers
}

/// Six configurations arranged so that each step of the succession is decided by a different
/// rule: `first` is the default; `used_long_ago` was created after `used_recently` but used
/// before it; `old_unused` and `new_unused` were never used (and `new_unused` is the newest of
/// all, so a rule that put never-used ones first would pick it); `inactive` was used most
/// recently of all but is inactive.
struct Succession {
    first: Configuration,
    used_recently: Configuration,
    used_long_ago: Configuration,
    new_unused: Configuration,
    old_unused: Configuration,
    inactive: Configuration,
}

impl Succession {
    /// Each default in turn, and the one that succeeds it when it goes.
    fn order(&self) -> [(&Configuration, Option<&Configuration>); 5] {
        [
            (&self.first, Some(&self.used_recently)),
            (&self.used_recently, Some(&self.used_long_ago)),
            (&self.used_long_ago, Some(&self.new_unused)),
            (&self.new_unused, Some(&self.old_unused)),
            (&self.old_unused, None),
        ]
    }
}

async fn arrange_succession(app: &TestApp, user: &TestUser) -> Succession {
    let [first, used_recently, used_long_ago, old_unused, new_unused] = create_named(
        app,
        &user.token,
        &["first", "used-recently", "used-long-ago", "old-unused", "new-unused"],
    )
    .await
    .try_into()
    .unwrap();
    let inactive = create_inactive(app, &user.token, "inactive").await;

    for (configuration, last_used, created) in [
        (&first, Some(Duration::minutes(5)), Duration::days(10)),
        (&used_recently, Some(Duration::hours(1)), Duration::days(9)),
        (&used_long_ago, Some(Duration::hours(2)), Duration::days(8)),
        (&old_unused, None, Duration::days(2)),
        (&new_unused, None, Duration::days(1)),
        (&inactive, Some(Duration::minutes(1)), Duration::days(3)),
    ] {
        set_times(app, configuration, last_used.map(ago), ago(created)).await;
    }
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
    let inactive = create_inactive(&app, &user.token, "inactive").await;
    assert!(!inactive.is_default);
    assert_default(&app, &user.token, None).await;

    let active = app
        .create_configuration(
            &user.token,
            with(openai_keyed_by_name("active"), "is_default", json!(false)),
        )
        .await;
    assert!(active.is_default);
    let later = app
        .create_configuration(&user.token, openai_keyed_by_name("later"))
        .await;
    assert!(!later.is_default);
    assert_default(&app, &user.token, Some(&active)).await;

    // Another user's first configuration is their own default.
    let other = app.user().await;
    let theirs = app
        .create_configuration(&other.token, openai_keyed_by_name("theirs"))
        .await;
    assert!(theirs.is_default);
    assert_default(&app, &user.token, Some(&active)).await;
}

async fn creating_with_is_default_moves_the_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let chosen = app
        .create_configuration(
            &user.token,
            with(openai_keyed_by_name("chosen"), "is_default", json!(true)),
        )
        .await;
    assert!(chosen.is_default);
    assert_default(&app, &user.token, Some(&chosen)).await;
    assert!(!app.refetch(&user.token, &first).await.is_default);
}

async fn set_default_moves_the_default_and_lists_it_first(app: TestApp) {
    let user = app.user().await;
    let other = app.user().await;
    let [first, _, last] = create_named(&app, &user.token, &["a-first", "b-second", "c-last"])
        .await
        .try_into()
        .unwrap();
    let theirs = app
        .create_configuration(&other.token, openai_keyed_by_name("theirs"))
        .await;

    let body = app.set_default(&user.token, &last).await;
    assert_eq!(body.id, last.id);
    assert!(body.is_default);
    assert_default(&app, &user.token, Some(&last)).await;
    assert_eq!(
        app.configuration_names(&user.token).await,
        ["c-last", "a-first", "b-second"]
    );

    // Setting the default again is harmless.
    app.set_default(&user.token, &last).await;
    assert_default(&app, &user.token, Some(&last)).await;

    app.set_default(&user.token, &first).await;
    assert_default(&app, &user.token, Some(&first)).await;
    // Only the caller's default moved.
    assert_default(&app, &other.token, Some(&theirs)).await;
}

async fn an_inactive_configuration_cannot_be_set_as_default(app: TestApp) {
    let user = app.user().await;
    let active = app
        .create_configuration(&user.token, openai_keyed_by_name("active"))
        .await;
    let inactive = create_inactive(&app, &user.token, "inactive").await;

    assert_error(app.put_set_default(&user.token, &inactive).await, 409, "conflict").await;
    assert_default(&app, &user.token, Some(&active)).await;
    assert_eq!(app.refetch(&user.token, &inactive).await, inactive);
}

async fn deactivating_the_default_promotes_the_most_recently_used_active_configuration(app: TestApp) {
    let user = app.user().await;
    let s = arrange_succession(&app, &user).await;
    for (deactivated, successor) in s.order() {
        let body = app
            .update_configuration(&user.token, deactivated, json!({"is_active": false}))
            .await;
        assert!(!body.is_active);
        assert!(!body.is_default);
        assert_default(&app, &user.token, successor).await;
    }
    assert!(!app.refetch(&user.token, &s.inactive).await.is_default);
}

async fn deleting_the_default_promotes_the_most_recently_used_active_configuration(app: TestApp) {
    let user = app.user().await;
    let s = arrange_succession(&app, &user).await;
    for (deleted, successor) in s.order() {
        let response = app.delete(&deleted.path(), &user.token).await;
        assert_eq!(response.status(), 204);
        assert_error(app.get(&deleted.path(), &user.token).await, 404, "not_found").await;
        assert_default(&app, &user.token, successor).await;
    }
    assert_eq!(app.configuration_names(&user.token).await, ["inactive"]);
}

async fn removing_another_configuration_leaves_the_default_alone(app: TestApp) {
    let user = app.user().await;
    let [first, second, third] = create_named(&app, &user.token, &["first", "second", "third"])
        .await
        .try_into()
        .unwrap();
    set_times(&app, &second, Some(ago(Duration::minutes(1))), ago(Duration::days(1))).await;

    app.update_configuration(&user.token, &second, json!({"is_active": false}))
        .await;
    assert_default(&app, &user.token, Some(&first)).await;
    assert_eq!(app.delete(&third.path(), &user.token).await.status(), 204);
    assert_default(&app, &user.token, Some(&first)).await;
}

async fn deleting_the_last_configuration_leaves_no_default(app: TestApp) {
    let user = app.user().await;
    let only = app
        .create_configuration(&user.token, openai_keyed_by_name("only"))
        .await;
    assert_default(&app, &user.token, Some(&only)).await;
    assert_eq!(app.delete(&only.path(), &user.token).await.status(), 204);
    assert_default(&app, &user.token, None).await;
    assert!(app.configurations(&user.token).await.is_empty());

    // The next configuration is a first one again.
    let next = app
        .create_configuration(&user.token, openai_keyed_by_name("next"))
        .await;
    assert!(next.is_default);
    assert_default(&app, &user.token, Some(&next)).await;
}

async fn reactivating_while_there_is_no_default_makes_it_the_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    app.update_configuration(&user.token, &first, json!({"is_active": false}))
        .await;
    assert_default(&app, &user.token, None).await;
    let dormant = create_inactive(&app, &user.token, "dormant").await;
    assert_default(&app, &user.token, None).await;

    let on = app
        .update_configuration(&user.token, &dormant, json!({"is_active": true}))
        .await;
    assert!(on.is_default);
    assert_default(&app, &user.token, Some(&dormant)).await;

    // With a default in place, reactivating another one does not move it.
    let first_on = app
        .update_configuration(&user.token, &first, json!({"is_active": true}))
        .await;
    assert!(!first_on.is_default);
    assert_default(&app, &user.token, Some(&dormant)).await;
}

async fn concurrent_set_default_requests_leave_exactly_one_default(app: TestApp) {
    let user = app.user().await;
    let names: Vec<String> = (0..8).map(|index| format!("config-{index}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let configurations = create_named(&app, &user.token, &names).await;
    let requests = (0..48)
        .map(|index| {
            app.client
                .put(app.url(&configurations[index % 8].action("set-default")))
                .bearer_auth(&user.token)
                .json(&json!({}))
        })
        .collect();
    let answers = all_at_once(requests).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        let body: Configuration = serde_json::from_str(body).unwrap();
        assert!(body.is_default);
    }
    assert_eq!(answers.len(), 48);

    let list = app.configurations(&user.token).await;
    let defaults: Vec<&Configuration> = list.iter().filter(|c| c.is_default).collect();
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    let winner = configurations
        .iter()
        .find(|configuration| configuration.id == defaults[0].id)
        .unwrap();
    assert_default(&app, &user.token, Some(winner)).await;
}

async fn concurrent_first_creations_leave_exactly_one_default(app: TestApp) {
    for _ in 0..4 {
        let user = app.user().await;
        let requests = ["left", "right"]
            .into_iter()
            .map(|name| {
                app.client
                    .post(app.url(CONFIGURATIONS))
                    .bearer_auth(&user.token)
                    .json(&openai_keyed_by_name(name))
            })
            .collect();
        let mut created = Vec::new();
        for (status, body) in all_at_once(requests).await {
            assert_eq!(status, 201, "{body}");
            created.push(serde_json::from_str::<Configuration>(&body).unwrap());
        }
        let said_default: Vec<&Configuration> = created.iter().filter(|c| c.is_default).collect();
        assert_eq!(said_default.len(), 1, "{created:?}");
        assert_default(&app, &user.token, Some(said_default[0])).await;
        assert_eq!(app.configurations(&user.token).await.len(), 2);
    }
}

async fn the_database_refuses_a_second_default_for_a_user(app: TestApp) {
    let user = app.user().await;
    let [first, second] = create_named(&app, &user.token, &["first", "second"])
        .await
        .try_into()
        .unwrap();
    // A user's default is a row of `user_defaults`, keyed by the user.
    let second_default = format!(
        "INSERT INTO user_defaults (user_id, configuration_id) \
         SELECT user_id, id FROM llm_configurations WHERE id = '{}'",
        second.id
    );
    let result = raw_sql(&app, vec![second_default.clone()]).await;
    assert!(result.is_err(), "a second default was accepted: {result:?}");
    assert_default(&app, &user.token, Some(&first)).await;

    // The refusal is about a second default: once the first is cleared, the same statement passes.
    let first_cleared = format!("DELETE FROM user_defaults WHERE configuration_id = '{}'", first.id);
    let result = raw_sql(&app, vec![first_cleared, second_default]).await;
    assert_eq!(result.ok(), Some(1));
    assert_default(&app, &user.token, Some(&second)).await;
}

async fn the_database_refuses_an_inactive_default(app: TestApp) {
    let user = app.user().await;
    let first = app
        .create_configuration(&user.token, openai_keyed_by_name("first"))
        .await;
    let result = raw_sql(&app, vec![update_statement("is_active = FALSE", &first)]).await;
    assert!(result.is_err(), "an inactive default was accepted: {result:?}");
    assert_default(&app, &user.token, Some(&first)).await;
}

async fn listing_puts_the_default_first_then_orders_by_name_ignoring_case(app: TestApp) {
    let user = app.user().await;
    let created = create_named(
        &app,
        &user.token,
        &["bravo", "Delta", "alpha", "Charlie", "echo", "ALPHA-2"],
    )
    .await;
    assert_eq!(
        app.configuration_names(&user.token).await,
        ["bravo", "alpha", "ALPHA-2", "Charlie", "Delta", "echo"]
    );

    let delta = created.iter().find(|c| c.name == "Delta").unwrap();
    app.set_default(&user.token, delta).await;
    assert_eq!(
        app.configuration_names(&user.token).await,
        ["Delta", "alpha", "ALPHA-2", "bravo", "Charlie", "echo"]
    );
}
