//! `GET /api/resolve`: which configuration and key a conversation gets (override, default, the
//! instance fallback), who may ask, and the audit of every reveal.

use diesel::prelude::*;
use lanyard::config::Settings;
use lanyard::db::DbId;
use lanyard::db::schema::{api_tokens, key_reveals, llm_configurations};
use lanyard::domain::FallbackConfiguration;
use lanyard::domain::Provider;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::helpers::configurations::{Configuration, expect_json};
use crate::helpers::resolve::{Resolution, pin, resolve, resolved, user_and_resolver};
use crate::helpers::{TestApp, TestUser, assert_error};
use crate::on_both_backends;

on_both_backends!(
    without_an_override_the_default_resolves_with_its_key,
    an_override_wins_with_its_own_key,
    an_override_to_an_inactive_configuration_falls_back_to_the_default,
    with_nothing_configured_and_no_fallback_resolution_is_404,
    only_a_token_with_the_resolve_scope_may_resolve,
    the_resolved_key_is_the_saved_key_after_every_kind_of_edit,
    each_resolution_counts_exactly_one_use,
    every_reveal_is_audited_and_refusals_are_not,
    an_unchanged_answer_keeps_its_tag_and_a_conditional_resolve_reveals_nothing,
    the_tag_changes_with_the_default_the_override_a_parameter_and_the_key,
    a_tag_is_checked_only_after_the_caller_may_resolve,
    rotating_the_master_key_keeps_the_tag_secret,
    concurrent_resolves_each_count_one_use_and_leave_one_audit_line,
    a_conditional_resolve_refreshes_last_used_at_at_most_once_a_minute,
);

on_both_backends!(settings(with_a_fallback):
    a_user_without_a_default_gets_the_instance_fallback,
    a_user_with_a_default_never_gets_the_fallback,
);

const FALLBACK_KEY: &str = "sk-instance-fallback-key-0042";

const FALLBACK_BASE_URL: &str = "https://llm.example.com/v1";

/// The operator set `LANYARD_FALLBACK_*`.
fn with_a_fallback(settings: &mut Settings) {
    settings.fallback = Some(FallbackConfiguration {
        provider: Provider::OpenaiCompatible,
        model: "shared-model".to_owned(),
        base_url: Some(FALLBACK_BASE_URL.to_owned()),
        api_key: Some(SecretString::from(FALLBACK_KEY.to_owned())),
    });
}

async fn without_an_override_the_default_resolves_with_its_key(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    app.create_openai(&user.token, "other", "sk-other-key-0002-y8Rb").await;

    for conversation in [None, Some("conv-without-override")] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body.source, "default", "{body:?}");
        assert_eq!(body.configuration.id, Some(default.id));
        assert_eq!(body.configuration.name, "main");
        assert_eq!(body.configuration.provider, "openai");
        assert_eq!(body.configuration.model, "gpt-4o");
        assert_eq!(body.configuration.api_key.as_deref(), Some("sk-main-key-0001-x7Qa"));
    }
}

async fn an_override_wins_with_its_own_key(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app
        .create_configuration(
            &user.token,
            json!({"name": "claude", "provider": "anthropic", "model": "claude-3-5-sonnet", "api_key": "sk-ant-pinned-key-0003"}),
        )
        .await;
    let set = pin(&app, &user.token, "conv-1", &pinned).await;
    assert_eq!(set.conversation_id, "conv-1");
    assert_eq!(set.configuration_id, pinned.id);
    assert!(!set.updated_at.is_empty());

    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body.source, "override", "{body:?}");
    assert_eq!(body.configuration.id, Some(pinned.id));
    assert_eq!(body.configuration.provider, "anthropic");
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-ant-pinned-key-0003"));

    // Another conversation, and no conversation at all, still use the default.
    for conversation in [Some("conv-2"), None] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body.source, "default");
        assert_eq!(body.configuration.id, Some(default.id));
        assert_eq!(body.configuration.api_key.as_deref(), Some("sk-main-key-0001-x7Qa"));
    }
}

async fn an_override_to_an_inactive_configuration_falls_back_to_the_default(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &pinned).await;
    app.update_configuration(&user.token, &pinned, json!({"is_active": false}))
        .await;

    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body.source, "default", "{body:?}");
    assert_eq!(body.configuration.id, Some(default.id));
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-main-key-0001-x7Qa"));

    // Reactivated, the override applies again.
    app.update_configuration(&user.token, &pinned, json!({"is_active": true}))
        .await;
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body.source, "override");
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-pinned-key-0004"));
}

async fn with_nothing_configured_and_no_fallback_resolution_is_404(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
    assert_error(resolve(&app, &resolver, Some("conv-1")).await, 404, "not_found").await;

    // An inactive configuration is no default either.
    let only = app.create_openai(&user.token, "only", "sk-only-key-0005").await;
    app.update_configuration(&user.token, &only, json!({"is_active": false}))
        .await;
    assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
}

async fn only_a_token_with_the_resolve_scope_may_resolve(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;

    let read_write = resolve(&app, &user.token, None).await;
    let body = assert_error(read_write, 403, "forbidden").await;
    assert!(!body.to_string().contains("sk-main-key"));
    let read = app.token_for(&user, "read").await;
    assert_error(resolve(&app, &read, None).await, 403, "forbidden").await;

    let session = browser.get("/api/resolve").await;
    let body = assert_error(session, 403, "forbidden").await;
    assert!(!body.to_string().contains("sk-main-key"));

    assert_error(
        resolve(&app, "lny_not-a-real-token-0000000000000000", None).await,
        401,
        "unauthorized",
    )
    .await;

    // `resolve` includes nothing else.
    let resolver = app.token_for(&user, "resolve").await;
    assert_error(app.get("/api/llm-configurations", &resolver).await, 403, "forbidden").await;
    assert_eq!(resolve(&app, &resolver, None).await.status(), 200);
}

async fn the_resolved_key_is_the_saved_key_after_every_kind_of_edit(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    // Characters that JSON, URLs and the database each treat specially, and some beyond ASCII.
    let key = "sk-proj-Ωmega_+/=%~!$&'()*,;:@[]{}|^`<>\"\\#?é€😀-tail";
    let created = app
        .create_configuration(
            &user.token,
            json!({"name": "exact", "provider": "openai", "model": "gpt-4o", "api_key": key}),
        )
        .await;
    let key_of = |body: &Resolution| body.configuration.api_key.as_ref().map(|key| key.as_bytes().to_vec());

    let body = resolved(&app, &resolver, None).await;
    assert_eq!(key_of(&body), Some(key.as_bytes().to_vec()), "as created");

    let steps = [
        ("a rename", json!({"name": "renamed"})),
        ("a model change", json!({"model": "gpt-4o-mini"})),
        ("an api_key: null update", json!({"api_key": null})),
        ("deactivating", json!({"is_active": false})),
        ("reactivating", json!({"is_active": true})),
    ];
    for (what, change) in steps {
        app.update_configuration(&user.token, &created, change).await;
        if what == "deactivating" {
            assert_error(resolve(&app, &resolver, None).await, 404, "not_found").await;
            continue;
        }
        let body = resolved(&app, &resolver, None).await;
        assert_eq!(body.configuration.id, Some(created.id), "after {what}");
        assert_eq!(key_of(&body), Some(key.as_bytes().to_vec()), "after {what}");
    }
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body.configuration.name, "renamed");
    assert_eq!(body.configuration.model, "gpt-4o-mini");
}

async fn each_resolution_counts_exactly_one_use(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &pinned).await;
    assert_eq!(default.use_count, 0);
    assert_eq!(default.last_used_at, None);

    for expected in 1..=3 {
        let body = resolved(&app, &resolver, None).await;
        assert_eq!(body.configuration.use_count, expected, "the answer counts this use");
        let stored = app.refetch(&user.token, &default).await;
        assert_eq!(stored.use_count, expected);
        assert!(stored.last_used_at.is_some(), "{stored:?}");
    }
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body.source, "override");
    let pinned_now = app.refetch(&user.token, &pinned).await;
    assert_eq!(pinned_now.use_count, 1);
    assert!(pinned_now.last_used_at.is_some());
    assert_eq!(app.refetch(&user.token, &default).await.use_count, 3);
}

/// One audit line: token, configuration, its name, conversation, source.
type Reveal = (Option<Uuid>, Option<Uuid>, String, Option<String>, String);

/// The key reveals recorded for `user`, oldest first.
async fn reveals(app: &TestApp, user: &TestUser) -> Vec<Reveal> {
    let owner = DbId(user.id);
    app.with_db(move |conn| {
        key_reveals::table
            .filter(key_reveals::user_id.eq(owner))
            .order((key_reveals::revealed_at, key_reveals::id))
            .select((
                key_reveals::token_id,
                key_reveals::configuration_id,
                key_reveals::configuration_name,
                key_reveals::conversation_id,
                key_reveals::source,
            ))
            .load::<(Option<DbId>, Option<DbId>, String, Option<String>, String)>(conn)
            .unwrap()
            .into_iter()
            .map(|(token, configuration, name, conversation, source)| {
                (
                    token.map(|id| id.0),
                    configuration.map(|id| id.0),
                    name,
                    conversation,
                    source,
                )
            })
            .collect()
    })
    .await
}

/// The id of `user`'s token whose scopes are exactly `scopes`.
async fn token_id(app: &TestApp, user: &TestUser, scopes: &str) -> Uuid {
    let owner = DbId(user.id);
    let scopes = scopes.to_owned();
    app.with_db(move |conn| {
        api_tokens::table
            .filter(api_tokens::user_id.eq(owner))
            .filter(api_tokens::scopes.eq(scopes))
            .select(api_tokens::id)
            .first::<DbId>(conn)
            .unwrap()
            .0
    })
    .await
}

async fn every_reveal_is_audited_and_refusals_are_not(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let resolver_id = token_id(&app, &user, "resolve").await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let pinned = app.create_openai(&user.token, "pinned", "sk-pinned-key-0004").await;
    pin(&app, &user.token, "conv-1", &pinned).await;

    resolved(&app, &resolver, None).await;
    resolved(&app, &resolver, Some("conv-1")).await;
    // Refusals reveal nothing and record nothing.
    assert_eq!(resolve(&app, &user.token, None).await.status(), 403);
    assert_eq!(resolve(&app, &resolver, Some(&"c".repeat(201))).await.status(), 422);

    let id = |configuration: &Configuration| Some(configuration.id);
    assert_eq!(
        reveals(&app, &user).await,
        [
            (
                Some(resolver_id),
                id(&default),
                "main".to_owned(),
                None,
                "default".to_owned()
            ),
            (
                Some(resolver_id),
                id(&pinned),
                "pinned".to_owned(),
                Some("conv-1".to_owned()),
                "override".to_owned()
            ),
        ]
    );
}

async fn a_user_without_a_default_gets_the_instance_fallback(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    for conversation in [None, Some("conv-1")] {
        let body = resolved(&app, &resolver, conversation).await;
        assert_eq!(body.source, "fallback", "{body:?}");
        let configuration = &body.configuration;
        assert_eq!(configuration.id, None);
        assert_eq!(configuration.name, "instance fallback");
        assert_eq!(configuration.provider, "openai_compatible");
        assert_eq!(configuration.model, "shared-model");
        assert_eq!(configuration.base_url.as_deref(), Some(FALLBACK_BASE_URL));
        assert_eq!(configuration.api_key.as_deref(), Some(FALLBACK_KEY));
    }

    // A user whose only configuration is inactive has no default: the fallback answers, and
    // neither it nor the inactive configuration records a use.
    let inactive = app.create_openai(&user.token, "inactive", "sk-inactive-key-0012").await;
    pin(&app, &user.token, "conv-1", &inactive).await;
    app.update_configuration(&user.token, &inactive, json!({"is_active": false}))
        .await;
    let body = resolved(&app, &resolver, Some("conv-1")).await;
    assert_eq!(body.source, "fallback");
    assert_eq!(body.configuration.use_count, 0);
    assert_eq!(body.configuration.last_used_at, None);
    let stored = app.refetch(&user.token, &inactive).await;
    assert_eq!(stored.use_count, 0);
    assert_eq!(stored.last_used_at, None);
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body.source, "fallback");
    assert_eq!(body.configuration.use_count, 0);

    // Each fallback reveal is audited, under no configuration.
    let audit = reveals(&app, &user).await;
    assert_eq!(audit.len(), 4, "{audit:?}");
    for (token, configuration, name, _, source) in &audit {
        assert!(token.is_some());
        assert_eq!(*configuration, None);
        assert_eq!(name, "instance fallback");
        assert_eq!(source, "fallback");
    }
}

async fn a_user_with_a_default_never_gets_the_fallback(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    // Read raw: the fallback's key may appear in no field at all.
    let body: Value = expect_json(resolve(&app, &resolver, None).await, 200, "resolve").await;
    assert_eq!(body["source"], "default");
    assert_eq!(body["configuration"]["id"], json!(default.id));
    assert_eq!(body["configuration"]["api_key"], "sk-main-key-0001-x7Qa");
    assert!(!body.to_string().contains(FALLBACK_KEY));
}

/// `GET /api/resolve` with `If-None-Match: tag`.
async fn resolve_if_none_match(app: &TestApp, token: &str, conversation: Option<&str>, tag: &str) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    if let Some(conversation) = conversation {
        url.query_pairs_mut().append_pair("conversation_id", conversation);
    }
    app.client
        .get(url)
        .bearer_auth(token)
        .header("If-None-Match", tag)
        .send()
        .await
        .unwrap()
}

fn etag_of(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

/// A resolution and its tag.
async fn tagged(app: &TestApp, token: &str, conversation: Option<&str>) -> (Resolution, String) {
    let response = resolve(app, token, conversation).await;
    assert_eq!(response.status(), 200);
    let tag = etag_of(&response);
    (response.json().await.unwrap(), tag)
}

async fn reveal_rows(app: &TestApp) -> i64 {
    app.with_db(|conn| key_reveals::table.count().get_result::<i64>(conn).unwrap())
        .await
}

async fn an_unchanged_answer_keeps_its_tag_and_a_conditional_resolve_reveals_nothing(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;

    let (first, tag) = tagged(&app, &resolver, None).await;
    let (second, again) = tagged(&app, &resolver, None).await;
    assert_eq!(tag, again, "an unchanged configuration keeps its tag");
    assert_ne!(
        first.configuration.use_count, second.configuration.use_count,
        "counters are not covered"
    );
    assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() > 20, "{tag}");
    assert!(!tag.contains("sk-main"), "{tag}");

    let reveals = reveal_rows(&app).await;
    let uses = app.refetch(&user.token, &default).await.use_count;
    for presented in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".to_owned(),
    ] {
        let response = resolve_if_none_match(&app, &resolver, None, &presented).await;
        assert_eq!(response.status(), 304, "{presented}");
        assert_eq!(etag_of(&response), tag);
        assert!(response.bytes().await.unwrap().is_empty(), "a 304 has no body");
    }
    assert_eq!(reveal_rows(&app).await, reveals, "a 304 writes no audit row");
    assert_eq!(app.refetch(&user.token, &default).await.use_count, uses, "nor a use");

    // Another tag: the full answer, recorded.
    let response = resolve_if_none_match(&app, &resolver, None, "\"stale\"").await;
    assert_eq!(response.status(), 200);
    assert_eq!(etag_of(&response), tag);
    assert_eq!(reveal_rows(&app).await, reveals + 1);
}

async fn the_tag_changes_with_the_default_the_override_a_parameter_and_the_key(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-0001-x7Qa").await;
    let second = app
        .create_openai(&user.token, "second", "sk-second-key-0002-y8Rb")
        .await;
    let (_, tag) = tagged(&app, &resolver, None).await;

    // Each change: the old tag gets 200 with the new answer, and a new tag.
    let mut current = tag;

    app.set_default(&user.token, &second).await;
    let response = resolve_if_none_match(&app, &resolver, None, &current).await;
    assert_eq!(response.status(), 200, "after a change of the default");
    let response_tag = etag_of(&response);
    let body: Resolution = response.json().await.unwrap();
    assert_eq!(body.configuration.id, Some(second.id));
    expect_new(response_tag, &mut current, "default");

    pin(&app, &user.token, "conv-1", &first).await;
    let response = resolve_if_none_match(&app, &resolver, Some("conv-1"), &current).await;
    assert_eq!(response.status(), 200, "after an override");
    let response_tag = etag_of(&response);
    let body: Resolution = response.json().await.unwrap();
    assert_eq!(
        (body.source.as_str(), body.configuration.id),
        ("override", Some(first.id))
    );
    expect_new(response_tag, &mut current, "override");

    app.update_configuration(&user.token, &first, json!({"parameters": {"temperature": 0.4}}))
        .await;
    let response = resolve_if_none_match(&app, &resolver, Some("conv-1"), &current).await;
    assert_eq!(response.status(), 200, "after a parameter");
    let response_tag = etag_of(&response);
    let body: Resolution = response.json().await.unwrap();
    assert_eq!(body.configuration.parameters, json!({"temperature": 0.4}));
    expect_new(response_tag, &mut current, "parameter");

    app.update_configuration(&user.token, &first, json!({"api_key": "sk-first-key-rotated-0003"}))
        .await;
    let response = resolve_if_none_match(&app, &resolver, Some("conv-1"), &current).await;
    assert_eq!(response.status(), 200, "after a new key");
    let response_tag = etag_of(&response);
    let body: Resolution = response.json().await.unwrap();
    assert_eq!(body.configuration.api_key.as_deref(), Some("sk-first-key-rotated-0003"));
    expect_new(response_tag, &mut current, "key");

    // And unchanged again: 304 with the latest.
    let response = resolve_if_none_match(&app, &resolver, Some("conv-1"), &current).await;
    assert_eq!(response.status(), 304);
}

async fn a_tag_is_checked_only_after_the_caller_may_resolve(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let (_, tag) = tagged(&app, &resolver, None).await;
    for (token, status) in [
        (user.token.as_str(), 403),
        ("lny_not-a-token-at-all-0000000000000", 401),
    ] {
        let response = resolve_if_none_match(&app, token, None, &tag).await;
        assert_eq!(response.status(), status);
    }
    let other = app.user().await;
    let other_resolver = app.token_for(&other, "resolve").await;
    // Someone else's tag says nothing to another user's resolve: they have nothing to resolve.
    let response = resolve_if_none_match(&app, &other_resolver, None, &tag).await;
    assert_eq!(response.status(), 404);
}

async fn rotating_the_master_key_keeps_the_tag_secret(app: TestApp) {
    use lanyard::crypto::MasterKeyring;
    use lanyard::services::{master_keys, resolve_tags};

    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    tagged(&app, &resolver, None).await; // the first resolve stores the secret
    let old = MasterKeyring::parse(&app.master_keys).unwrap();
    let both = MasterKeyring::parse(&format!(
        "{},{}",
        crate::helpers::master_key_entry("next"),
        app.master_keys
    ))
    .unwrap();
    let (before, after) = app
        .with_db(move |conn| {
            let before = resolve_tags::load_or_create(conn, &old).unwrap().as_bytes().to_vec();
            master_keys::rotate(conn, &both, 100).unwrap();
            let after = resolve_tags::load_or_create(conn, &both).unwrap().as_bytes().to_vec();
            // Sealed under the new key now: the old keyring alone no longer opens it.
            let under_old_only = resolve_tags::reseal(conn, &old).unwrap();
            (before, (after, under_old_only))
        })
        .await;
    assert_eq!(before, after.0, "the same secret, so the same tags");
    assert_eq!(after.1, resolve_tags::Resealed::Unreadable);
}

/// The tag after a change: a new one, which becomes the current one.
fn expect_new(response_tag: String, current: &mut String, what: &str) {
    assert_ne!(&response_tag, current, "{what}: the tag must change");
    *current = response_tag;
}

/// Resolves sent at once in the concurrency test: far more than one commit's worth arriving
/// together, so that they share commits.
const AT_ONCE: usize = 200;

async fn concurrent_resolves_each_count_one_use_and_leave_one_audit_line(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let mut running = JoinSet::new();
    for number in 0..AT_ONCE {
        let client = app.client.clone();
        let url = app.url(&format!("/api/resolve?conversation_id=conversation-{number}"));
        let token = resolver.clone();
        running.spawn(async move {
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    let mut counts = Vec::new();
    while let Some(joined) = running.join_next().await {
        let (status, body) = joined.unwrap();
        assert_eq!(status, 200, "{body}");
        let body: Resolution = serde_json::from_str(&body).unwrap();
        assert_eq!(body.configuration.api_key.as_deref(), Some("sk-main-key-0001-x7Qa"));
        counts.push(body.configuration.use_count);
    }
    // Each answer counts its own use, as if the resolves had run one after another.
    counts.sort_unstable();
    assert_eq!(counts, (1..=AT_ONCE as i64).collect::<Vec<_>>());

    // Every answer left after its rows were committed: all of them are there now.
    let stored = app.refetch(&user.token, &default).await;
    assert_eq!(stored.use_count, AT_ONCE as i64);
    assert!(stored.last_used_at.is_some());
    let audit = reveals(&app, &user).await;
    assert_eq!(audit.len(), AT_ONCE);
    let mut conversations: Vec<String> = audit
        .into_iter()
        .map(|(token, configuration, name, conversation, source)| {
            assert!(token.is_some());
            assert_eq!(
                (configuration, name.as_str(), source.as_str()),
                (Some(default.id), "main", "default")
            );
            conversation.unwrap()
        })
        .collect();
    conversations.sort_unstable();
    conversations.dedup();
    assert_eq!(conversations.len(), AT_ONCE, "one line per resolve");
}

/// Sets the configuration's `last_used_at` as stored.
async fn set_last_used_at(app: &TestApp, configuration: &Configuration, at: chrono::NaiveDateTime) {
    let id = DbId(configuration.id);
    app.with_db(move |conn| {
        diesel::update(llm_configurations::table.filter(llm_configurations::id.eq(id)))
            .set(llm_configurations::last_used_at.eq(Some(at)))
            .execute(conn)
            .unwrap()
    })
    .await;
}

async fn stored_last_used_at(app: &TestApp, configuration: &Configuration) -> Option<chrono::NaiveDateTime> {
    let id = DbId(configuration.id);
    app.with_db(move |conn| {
        llm_configurations::table
            .filter(llm_configurations::id.eq(id))
            .select(llm_configurations::last_used_at)
            .first(conn)
            .unwrap()
    })
    .await
}

async fn a_conditional_resolve_refreshes_last_used_at_at_most_once_a_minute(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let default = app.create_openai(&user.token, "main", "sk-main-key-0001-x7Qa").await;
    let (_, tag) = tagged(&app, &resolver, None).await;
    let reveals = reveal_rows(&app).await;

    // Used 30 seconds ago: a 304 leaves the stamp alone.
    let recent = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(30);
    set_last_used_at(&app, &default, recent).await;
    let response = resolve_if_none_match(&app, &resolver, None, &tag).await;
    assert_eq!(response.status(), 304);
    let kept = stored_last_used_at(&app, &default).await.unwrap();
    assert!((kept - recent).num_milliseconds().abs() < 1, "{kept} != {recent}");

    // Used two minutes ago: the 304 refreshes it (before it answers), and counts no use.
    let stale = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(2);
    set_last_used_at(&app, &default, stale).await;
    let before = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
    let response = resolve_if_none_match(&app, &resolver, None, &tag).await;
    assert_eq!(response.status(), 304);
    let refreshed = stored_last_used_at(&app, &default).await.unwrap();
    assert!(refreshed >= before, "{refreshed} < {before}");
    assert_eq!(app.refetch(&user.token, &default).await.use_count, 1);
    assert_eq!(reveal_rows(&app).await, reveals, "no reveal");
}
