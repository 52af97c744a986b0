//! Waiting resolves (`GET /api/resolve?wait=` with `If-None-Match`): an unchanged answer waits
//! for a change and answers 200 as soon as there is one, else 304 at the end; the bounds of
//! `wait`; at most 100 waits per token; a change made by the command line wakes them too.
//! (Two instances on one PostgreSQL database: `tests/resolve_waits.rs`.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::binary::Sandbox;
use crate::helpers::connections::{create_on, create_openai_connection, update_connection};
use crate::helpers::resolve::{Resolution, pin, resolve, user_and_resolver};
use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    wait_is_refused_outside_one_to_sixty_seconds_and_without_if_none_match,
    an_unchanged_answer_waits_and_then_answers_304,
    a_change_of_the_default_an_override_or_a_key_wakes_a_waiting_resolve_within_a_second,
    a_token_has_at_most_100_waiting_resolves,
    a_client_that_goes_away_gives_its_waiting_place_back_at_once,
);

on_both_backends!(a_change_made_by_the_command_line_wakes_a_waiting_resolve,);

/// How a waiting resolve ended: its status, its answer (200), its tag, and when it came.
struct Ended {
    status: u16,
    body: Option<Resolution>,
    tag: Option<String>,
    at: Instant,
}

fn resolve_url(app: &TestApp, conversation: Option<&str>, wait: &str) -> url::Url {
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    if let Some(conversation) = conversation {
        url.query_pairs_mut().append_pair("conversation_id", conversation);
    }
    url.query_pairs_mut().append_pair("wait", wait);
    url
}

/// `GET /api/resolve?wait=SECONDS` with `If-None-Match: tag`, answered in the background.
fn wait_for_change(
    app: &TestApp,
    token: &str,
    conversation: Option<&str>,
    tag: &str,
    seconds: u64,
) -> tokio::task::JoinHandle<Ended> {
    let request = app
        .client
        .get(resolve_url(app, conversation, &seconds.to_string()))
        .bearer_auth(token)
        .header("If-None-Match", tag)
        .timeout(Duration::from_secs(seconds + 30));
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let at = Instant::now();
        let status = response.status().as_u16();
        let tag = response
            .headers()
            .get("etag")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = if status == 200 {
            Some(response.json().await.unwrap())
        } else {
            None
        };
        Ended { status, body, tag, at }
    })
}

/// The current answer's tag.
async fn tag_of(app: &TestApp, token: &str, conversation: Option<&str>) -> String {
    let response = resolve(app, token, conversation).await;
    assert_eq!(response.status(), 200);
    response.headers()["etag"].to_str().unwrap().to_owned()
}

/// Long enough for a background request to have resolved once and be waiting.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// A token's hundred waiting resolves (30 s, on `tag`), once all of them wait: a hundred and
/// first is refused (429).
async fn a_hundred_waiting(app: &TestApp, token: &str, tag: &str) -> Vec<tokio::task::JoinHandle<Ended>> {
    let waiting: Vec<_> = (0..100).map(|_| wait_for_change(app, token, None, tag, 30)).collect();
    // All hundred resolved once and wait (each resolve is quick; give the slow machine room).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let response = app
        .client
        .get(resolve_url(app, None, "30"))
        .bearer_auth(token)
        .header("If-None-Match", tag)
        .send()
        .await
        .unwrap();
    assert_error(response, 429, "rate_limited").await;
    waiting
}

/// A change made at `changed` must have been answered within a second of it, and not before.
fn assert_woken_promptly(ended: &Ended, changed: Instant, what: &str) {
    assert_eq!(ended.status, 200, "{what}: the waiting resolve answers the change");
    assert!(ended.at >= changed, "{what}: it answered before the change");
    let after = ended.at - changed;
    assert!(
        after < Duration::from_secs(1),
        "{what}: answered {after:?} after the change"
    );
}

async fn wait_is_refused_outside_one_to_sixty_seconds_and_without_if_none_match(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let tag = tag_of(&app, &resolver, None).await;
    for wait in ["0", "61", "x", "-1", "1.5", ""] {
        let response = app
            .client
            .get(resolve_url(&app, None, wait))
            .bearer_auth(&resolver)
            .header("If-None-Match", &tag)
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 422, "validation_failed").await;
        assert!(body["fields"]["wait"][0].is_string(), "wait={wait:?}: {body}");
    }
    let response = app
        .client
        .get(resolve_url(&app, None, "5"))
        .bearer_auth(&resolver)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 422, "validation_failed").await;
    assert!(
        body["fields"]["wait"][0].as_str().unwrap().contains("If-None-Match"),
        "{body}"
    );
}

async fn an_unchanged_answer_waits_and_then_answers_304(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let tag = tag_of(&app, &resolver, None).await;
    let asked = Instant::now();
    let ended = wait_for_change(&app, &resolver, None, &tag, 2).await.unwrap();
    let took = ended.at - asked;
    assert_eq!(ended.status, 304);
    assert_eq!(ended.tag.as_deref(), Some(tag.as_str()));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "waited {took:?} for wait=2"
    );

    // A stale tag answers at once, waiting for nothing.
    let asked = Instant::now();
    let ended = wait_for_change(&app, &resolver, None, "\"stale\"", 30).await.unwrap();
    assert_eq!(ended.status, 200);
    assert!(ended.at - asked < Duration::from_secs(2));

    // Resolve's own writes (its use counter, when a stale tag answers) wake nobody for good: a
    // wait for the current tag still ends in 304.
    let waiting = wait_for_change(&app, &resolver, None, &tag, 2);
    settle().await;
    for _ in 0..3 {
        assert_eq!(resolve(&app, &resolver, None).await.status(), 200);
    }
    assert_eq!(waiting.await.unwrap().status, 304);
}

async fn a_change_of_the_default_an_override_or_a_key_wakes_a_waiting_resolve_within_a_second(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let connection = create_openai_connection(&app, &user.token, "shared", "sk-shared-key-0001-x7Qa").await;
    let first = create_on(&app, &user.token, "first", &connection, "gpt-4o").await;
    let second = create_on(&app, &user.token, "second", &connection, "gpt-4o-mini").await;

    // The default.
    let tag = tag_of(&app, &resolver, None).await;
    let waiting = wait_for_change(&app, &resolver, None, &tag, 20);
    settle().await;
    let changed = Instant::now();
    app.set_default(&user.token, &second).await;
    let ended = waiting.await.unwrap();
    assert_woken_promptly(&ended, changed, "a new default");
    let body = ended.body.unwrap();
    assert_eq!(
        (body.source.as_str(), body.configuration.id),
        ("default", Some(second.id))
    );
    assert_ne!(ended.tag.as_deref(), Some(tag.as_str()));

    // An override of the conversation.
    let tag = tag_of(&app, &resolver, Some("conv-1")).await;
    let waiting = wait_for_change(&app, &resolver, Some("conv-1"), &tag, 20);
    settle().await;
    let changed = Instant::now();
    pin(&app, &user.token, "conv-1", &first).await;
    let ended = waiting.await.unwrap();
    assert_woken_promptly(&ended, changed, "an override");
    let body = ended.body.unwrap();
    assert_eq!(
        (body.source.as_str(), body.configuration.id),
        ("override", Some(first.id))
    );

    // The key of the connection the configuration reads it through.
    let tag = ended.tag.unwrap();
    let waiting = wait_for_change(&app, &resolver, Some("conv-1"), &tag, 20);
    settle().await;
    let changed = Instant::now();
    update_connection(
        &app,
        &user.token,
        &connection,
        json!({"api_key": "sk-shared-key-rotated-0002"}),
    )
    .await;
    let ended = waiting.await.unwrap();
    assert_woken_promptly(&ended, changed, "a new key");
    assert_eq!(
        ended.body.unwrap().configuration.api_key.as_deref(),
        Some("sk-shared-key-rotated-0002")
    );

    // Someone else's change wakes nobody here: the wait ends in 304.
    let other = app.user().await;
    let theirs = app
        .create_openai(&other.token, "theirs", "sk-theirs-key-0003-z9Sc")
        .await;
    let tag = tag_of(&app, &resolver, None).await;
    let waiting = wait_for_change(&app, &resolver, None, &tag, 2);
    settle().await;
    app.update_configuration(&other.token, &theirs, json!({"model": "gpt-4o-mini"}))
        .await;
    assert_eq!(waiting.await.unwrap().status, 304);
}

async fn a_token_has_at_most_100_waiting_resolves(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let second = app
        .create_openai(&user.token, "second", "sk-second-key-0002-y8Rb")
        .await;
    let tag = tag_of(&app, &resolver, None).await;
    let waiting = a_hundred_waiting(&app, &resolver, &tag).await;
    // Another token of the same user has places of its own.
    let other_resolver = app.token_for(&user, "resolve").await;
    let other = wait_for_change(&app, &other_resolver, None, &tag, 30);
    settle().await;
    assert!(!other.is_finished(), "another token's wait is not refused");

    // A change answers them all.
    app.set_default(&user.token, &second).await;
    for ended in waiting {
        let ended = ended.await.unwrap();
        assert_eq!(ended.status, 200);
        assert_eq!(ended.body.unwrap().configuration.id, Some(second.id));
    }
    assert_eq!(other.await.unwrap().status, 200);
    // The places are given back: the token may wait again.
    let tag = tag_of(&app, &resolver, None).await;
    assert_eq!(
        wait_for_change(&app, &resolver, None, &tag, 1).await.unwrap().status,
        304
    );
}

async fn a_client_that_goes_away_gives_its_waiting_place_back_at_once(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let tag = tag_of(&app, &resolver, None).await;
    let waiting = a_hundred_waiting(&app, &resolver, &tag).await;

    // The hundred clients go away (their connections close) long before their 30 s are over.
    for request in &waiting {
        request.abort();
    }
    let gone = Instant::now();
    let status = loop {
        let status = wait_for_change(&app, &resolver, None, &tag, 1).await.unwrap().status;
        if status != 429 || gone.elapsed() > Duration::from_secs(5) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 304, "the token waits again once its clients are gone");
    assert!(
        gone.elapsed() < Duration::from_secs(5),
        "places given back {:?} after the clients went away",
        gone.elapsed()
    );
}

/// A file whose `[llm]` is the same as its `[llm.picked]` group: importing it makes `picked`
/// the default.
const PICKED_AS_DEFAULT: &str = r#"[llm]
model = "gpt-4o-mini"
api_key = "sk-picked-key-0004-a1Bc"

[llm.picked]
model = "gpt-4o-mini"
api_key = "sk-picked-key-0004-a1Bc"
"#;

async fn a_change_made_by_the_command_line_wakes_a_waiting_resolve(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let email = user.email.clone();
    let sandbox = Sandbox::new();
    let file = sandbox.workdir().join("config.toml");
    std::fs::write(&file, PICKED_AS_DEFAULT).unwrap();

    let tag = tag_of(&app, &resolver, None).await;
    let waiting = wait_for_change(&app, &resolver, None, &tag, 30);
    settle().await;
    let args = [
        "import",
        "openhands",
        "--file",
        file.to_str().unwrap(),
        "--email",
        email.as_str(),
    ];
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let imported = tokio::task::spawn_blocking({
        let database = app.test_database.url_string();
        let master_keys = app.master_keys.clone();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let finished = lanyard_on(&sandbox, &database, &master_keys, &args);
            (finished, Instant::now())
        }
    })
    .await
    .unwrap();
    let (finished, exited) = imported;
    finished.assert_success();
    let ended = waiting.await.unwrap();
    assert_eq!(ended.status, 200, "the command's change answers the waiting resolve");
    assert_eq!(ended.body.unwrap().configuration.name, "picked");
    // The command committed before it exited.
    assert!(
        ended.at < exited + Duration::from_secs(1),
        "answered {:?} after the command exited",
        ended.at - exited
    );
}

/// `lanyard ARGS` on the app's database, as an operator would run it on the same machine.
fn lanyard_on(sandbox: &Sandbox, database: &str, master_keys: &str, args: &[&str]) -> crate::binary::Finished {
    let envs = [
        ("DATABASE_URL", database.to_owned()),
        ("LANYARD_MASTER_KEYS", master_keys.to_owned()),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_LOG", "warn".to_owned()),
    ];
    sandbox.start(&envs, args, "").finish(crate::binary::COMMAND_LIMIT)
}
