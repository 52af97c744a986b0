//! Service tokens (`organisations.md`, "Service tokens"): an organisation's admins create them
//! from a browser session (a `resolve` one with their current password), list and revoke them;
//! the token resolves for a member by the member's choices, taking only what the organisation's
//! policy lets count, and every reveal lands in the organisation's audit; a `read` token lists
//! the organisation's configurations and connections, masked; nothing else answers it.

use diesel::prelude::*;
use lanyard::db::{DbId, schema};
use serde_json::{Value, json};

use crate::helpers::configurations::{Configuration, expect_json, openai_keyed_by_name};
use crate::helpers::connections::Connection;
use crate::helpers::organisations::{Team, create_organisation, join};
use crate::helpers::resolve::{Resolution, pin, resolve};
use crate::helpers::secrets::assert_no_key_in;
use crate::helpers::{Browser, TEST_PASSWORD, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    a_service_token_resolves_for_each_member_by_their_choices,
    members_cannot_read_the_audit_or_manage_service_tokens,
    only_what_the_policy_lets_count_is_resolved_for_a_member,
    removing_a_member_ends_resolving_for_them,
    a_service_tokens_scopes_hold_and_a_dead_one_is_refused,
    service_tokens_are_created_listed_and_revoked_like_personal_ones,
    the_organisation_page_manages_service_tokens_and_shows_the_audit_without_javascript,
    concurrent_resolves_for_members_all_land_in_the_organisations_audit,
);

/// The organisation's key in these tests.
const TEAM_KEY: &str = "sk-team-shared-key-0123456789";

/// A team whose admin created a connection and two configurations on it (`team-gpt`,
/// `team-mini`), with `team-mini` as the organisation's default.
struct Shared {
    team: Team,
    connection: Connection,
    gpt: Configuration,
    mini: Configuration,
}

async fn shared(app: &TestApp) -> Shared {
    let team = Team::new(app, "Acme Lab").await;
    let connection = team
        .create_connection(
            app,
            &team.admin.token,
            json!({"name": "work-openai", "provider": "openai", "api_key": TEAM_KEY}),
        )
        .await;
    let gpt = team
        .create_configuration(
            app,
            &team.admin.token,
            json!({"name": "team-gpt", "connection_id": connection.id, "model": "gpt-4o"}),
        )
        .await;
    let mini = team
        .create_configuration(
            app,
            &team.admin.token,
            json!({"name": "team-mini", "connection_id": connection.id, "model": "gpt-4o-mini"}),
        )
        .await;
    set_policy(app, &team, json!({"default_configuration_id": mini.id})).await;
    Shared {
        team,
        connection,
        gpt,
        mini,
    }
}

/// `PUT /api/organisations/{id}` with `policy` by the team's admin; panics unless 200.
async fn set_policy(app: &TestApp, team: &Team, policy: Value) {
    let path = format!("/api/organisations/{}", team.id);
    let _: Value = expect_json(
        app.put_json(&path, &team.admin.token, &json!({"policy": policy})).await,
        200,
        "policy",
    )
    .await;
}

/// `POST /api/organisations/{id}/tokens` from a browser session, with its CSRF header.
async fn post_service_token(browser: &Browser, team: &Team, body: Value) -> reqwest::Response {
    let csrf = browser.csrf().await;
    browser
        .client
        .post(browser.url(&team.path("tokens")))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `DELETE /api/organisations/{id}/tokens/{token_id}` from a browser session.
async fn delete_service_token(browser: &Browser, team: &Team, token_id: &str) -> reqwest::Response {
    let csrf = browser.csrf().await;
    browser
        .client
        .delete(browser.url(&team.path(&format!("tokens/{token_id}"))))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap()
}

/// A service token of the team with `scopes`, created by its admin (with the admin's password):
/// the 201 body.
async fn service_token(app: &TestApp, team: &Team, name: &str, scopes: &[&str]) -> Value {
    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;
    expect_json(
        post_service_token(
            &admin,
            team,
            json!({"name": name, "scopes": scopes, "current_password": TEST_PASSWORD}),
        )
        .await,
        201,
        "create service token",
    )
    .await
}

/// The secret of a new service token with `scopes`.
pub(crate) async fn service_secret(app: &TestApp, team: &Team, scopes: &[&str]) -> String {
    service_token(app, team, "runtime", scopes).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/resolve` with `user` and `conversation_id` when given.
async fn resolve_for(app: &TestApp, token: &str, user: Option<&str>, conversation: Option<&str>) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    if let Some(user) = user {
        url.query_pairs_mut().append_pair("user", user);
    }
    if let Some(conversation) = conversation {
        url.query_pairs_mut().append_pair("conversation_id", conversation);
    }
    app.client.get(url).bearer_auth(token).send().await.unwrap()
}

/// A resolution for `user` that must succeed.
async fn resolved_for(app: &TestApp, token: &str, user: &str, conversation: Option<&str>) -> Resolution {
    expect_json(
        resolve_for(app, token, Some(user), conversation).await,
        200,
        "resolve for a member",
    )
    .await
}

/// `GET /api/organisations/{id}/audit` by `token`; panics unless 200.
async fn audit(app: &TestApp, team: &Team, token: &str) -> Vec<Value> {
    expect_json(app.get(&team.path("audit"), token).await, 200, "audit").await
}

async fn a_service_token_resolves_for_each_member_by_their_choices(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app).await;
    let a = &team.member_a;
    app.set_default(&a.token, &gpt).await;
    pin(&app, &a.token, "conversation-1", &mini).await;
    let created = service_token(&app, &team, "runtime", &["resolve"]).await;
    let token = created["token"].as_str().unwrap();

    let pinned = resolved_for(&app, token, &a.email, Some("conversation-1")).await;
    assert_eq!(pinned.source, "override");
    assert_eq!(pinned.configuration.id, Some(mini.id));
    assert_eq!(pinned.configuration.api_key.as_deref(), Some(TEAM_KEY));
    // By user id as well as by e-mail (in any case); another conversation takes A's default.
    let by_id = resolved_for(&app, token, &a.id.to_string(), Some("conversation-2")).await;
    assert_eq!(
        (by_id.source.as_str(), by_id.configuration.id),
        ("default", Some(gpt.id))
    );
    let by_email = resolved_for(&app, token, &a.email.to_uppercase(), None).await;
    assert_eq!(
        (by_email.source.as_str(), by_email.configuration.id),
        ("default", Some(gpt.id))
    );
    // B chose nothing: the organisation's default.
    let b = resolved_for(&app, token, &team.member_b.email, None).await;
    assert_eq!(b.source, "organisation_default");
    assert_eq!(b.configuration.id, Some(mini.id));
    assert_eq!(b.configuration.api_key.as_deref(), Some(TEAM_KEY));
    // Each resolution counted as a use.
    assert_eq!(app.configuration(&team.admin.token, mini.id).await.use_count, 2);

    // A's own resolve token never gets the key while `member_access` is `use`…
    let own = app.token_for(a, "resolve").await;
    let refused = assert_error(resolve(&app, &own, None).await, 403, "organisation_key").await;
    assert_no_key_in(&refused.to_string(), &[TEAM_KEY], "organisation_key");
    // … and gets it once an admin sets `reveal`; the organisation's audit shows that reveal too.
    let _: Configuration = expect_json(
        app.put_json(&gpt.path(), &team.admin.token, &json!({"member_access": "reveal"}))
            .await,
        200,
        "reveal",
    )
    .await;
    let revealed: Resolution = expect_json(resolve(&app, &own, None).await, 200, "own resolve").await;
    assert_eq!(revealed.configuration.api_key.as_deref(), Some(TEAM_KEY));

    let lines = audit(&app, &team, &team.admin.token).await;
    assert_eq!(lines.len(), 5, "{lines:#?}");
    // Newest first: A's own token, then the service token's four reveals.
    assert_eq!(lines[0]["token"]["name"], "extra");
    assert_eq!(lines[0]["member"], json!({"id": a.id, "email": a.email}));
    assert_eq!(lines[0]["configuration"], json!({"id": gpt.id, "name": "team-gpt"}));
    for line in &lines[1..] {
        assert_eq!(line["token"], json!({"id": created["id"], "name": "runtime"}));
    }
    assert_eq!(lines[1]["member"]["email"], team.member_b.email.as_str());
    assert_eq!(lines[1]["configuration"], json!({"id": mini.id, "name": "team-mini"}));
    assert_eq!(lines[4]["member"]["id"], a.id.to_string());
    assert_eq!(lines[4]["configuration"]["id"], mini.id.to_string());
    let times: Vec<&str> = lines.iter().map(|line| line["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");
    assert_no_key_in(&serde_json::to_string(&lines).unwrap(), &[TEAM_KEY], "audit");
    // The owner reads it too; a deleted member's lines stay, with no member.
    let b_id = team.member_b.id;
    app.with_db(move |conn| lanyard::services::accounts::delete_user(conn, b_id).unwrap())
        .await;
    let lines = audit(&app, &team, &team.owner.token).await;
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1]["member"], Value::Null);
    assert_eq!(lines[1]["configuration"]["name"], "team-mini");
}

async fn members_cannot_read_the_audit_or_manage_service_tokens(app: TestApp) {
    let Shared { team, .. } = shared(&app).await;
    let created = service_token(&app, &team, "runtime", &["read"]).await;
    let token_id = created["id"].as_str().unwrap();

    // A member: 403 `forbidden`, by token or by session.
    let member = &team.member_a;
    assert_error(app.get(&team.path("audit"), &member.token).await, 403, "forbidden").await;
    let session = app.login(&member.email, TEST_PASSWORD).await;
    assert_eq!(session.get(&team.path("audit")).await.status(), 403);
    assert_error(session.get(&team.path("tokens")).await, 403, "forbidden").await;
    let body = json!({"name": "mine", "scopes": ["read"], "current_password": TEST_PASSWORD});
    assert_error(
        post_service_token(&session, &team, body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    let invalid = json!({"name": "", "scopes": ["write"]});
    assert_error(
        post_service_token(&session, &team, invalid.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(delete_service_token(&session, &team, token_id).await, 403, "forbidden").await;

    // Someone outside: the same 404 as for an organisation that does not exist.
    let outsider = app.user().await;
    assert_error(app.get(&team.path("audit"), &outsider.token).await, 404, "not_found").await;
    let session = app.login(&outsider.email, TEST_PASSWORD).await;
    assert_error(session.get(&team.path("audit")).await, 404, "not_found").await;
    assert_error(session.get(&team.path("tokens")).await, 404, "not_found").await;
    assert_error(
        post_service_token(&session, &team, body.clone()).await,
        404,
        "not_found",
    )
    .await;
    assert_error(post_service_token(&session, &team, invalid).await, 404, "not_found").await;
    assert_error(delete_service_token(&session, &team, token_id).await, 404, "not_found").await;

    // An admin's bearer token cannot manage tokens (browser session only).
    assert_error(app.get(&team.path("tokens"), &team.admin.token).await, 403, "forbidden").await;
    assert_error(
        app.post_json(&team.path("tokens"), &team.admin.token, &body).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.delete(&team.path(&format!("tokens/{token_id}")), &team.admin.token)
            .await,
        403,
        "forbidden",
    )
    .await;
    // The token still works: nobody above revoked it.
    assert_eq!(
        app.get(&team.path("connections"), created["token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn only_what_the_policy_lets_count_is_resolved_for_a_member(app: TestApp) {
    let Shared { team, mini, .. } = shared(&app).await;
    let a = &team.member_a;
    let mine = app.create_configuration(&a.token, openai_keyed_by_name("mine")).await;
    let mine_key = "sk-mine-key-0123456789";
    app.set_default(&a.token, &mine).await;
    let token = service_secret(&app, &team, &["resolve"]).await;
    let for_a = |conversation: Option<&'static str>| {
        let token = token.clone();
        let email = a.email.clone();
        let app = &app;
        async move { resolved_for(app, &token, &email, conversation).await }
    };
    let share = |on: bool| {
        let app = &app;
        let path = team.path("membership");
        let token = a.token.clone();
        async move {
            let response = app
                .put_json(&path, &token, &json!({"share_personal_configurations": on}))
                .await;
            assert_eq!(response.status(), 200);
        }
    };

    // The policy is off by default: A's own default does not count.
    let answer = for_a(None).await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("organisation_default", Some(mini.id))
    );
    // A shares, the policy is still off: still not.
    share(true).await;
    assert_eq!(for_a(None).await.source, "organisation_default");
    // The policy on, A's sharing off: still not.
    share(false).await;
    set_policy(&app, &team, json!({"allow_personal_configurations": true})).await;
    assert_eq!(for_a(None).await.source, "organisation_default");
    // Both on: A's own default, with A's own key.
    share(true).await;
    let answer = for_a(None).await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("default", Some(mine.id))
    );
    assert_eq!(answer.configuration.api_key.as_deref(), Some(mine_key));

    // Another organisation A belongs to: its configurations never count, as override or default.
    let other = create_organisation(&app, &team.owner.token, "Other Lab").await;
    join(&app, &team.owner, &other, a, "member").await;
    let theirs: Configuration = expect_json(
        app.post_json(
            &format!("/api/organisations/{other}/llm-configurations"),
            &team.owner.token,
            &json!({"name": "theirs", "provider": "openai", "model": "gpt-4o", "api_key": "sk-other-org-key-0123456789"}),
        )
        .await,
        201,
        "the other organisation's configuration",
    )
    .await;
    pin(&app, &a.token, "conversation-other", &theirs).await;
    let answer = for_a(Some("conversation-other")).await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("default", Some(mine.id))
    );
    app.set_default(&a.token, &theirs).await;
    let answer = for_a(Some("conversation-other")).await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("organisation_default", Some(mini.id))
    );
    assert_ne!(
        answer.configuration.api_key.as_deref(),
        Some("sk-other-org-key-0123456789")
    );

    // Whoever is not an active member gets one answer: an invitation nobody accepted, an unknown
    // e-mail, a user outside the organisation, something that names nobody.
    let invited = app.user().await;
    let invitation = app
        .post_json(
            &team.path("members"),
            &team.admin.token,
            &json!({"email": invited.email, "role": "member"}),
        )
        .await;
    assert_eq!(invitation.status(), 202);
    let outsider = app.user().await;
    let mut bodies = Vec::new();
    for user in [
        invited.email.clone(),
        invited.id.to_string(),
        "nobody-here@example.com".to_owned(),
        outsider.email.clone(),
        outsider.id.to_string(),
        "not an address".to_owned(),
    ] {
        let body = assert_error(resolve_for(&app, &token, Some(&user), None).await, 403, "forbidden").await;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "{bodies:#?}");
}

async fn removing_a_member_ends_resolving_for_them(app: TestApp) {
    let Shared { team, gpt, .. } = shared(&app).await;
    let a = &team.member_a;
    let mine = app.create_configuration(&a.token, openai_keyed_by_name("mine")).await;
    app.set_default(&a.token, &gpt).await;
    let token = service_secret(&app, &team, &["resolve"]).await;
    let answer = resolved_for(&app, &token, &a.email, None).await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("default", Some(gpt.id))
    );

    let removed = app
        .delete(&team.path(&format!("members/{}", a.id)), &team.admin.token)
        .await;
    assert_eq!(removed.status(), 204);
    assert_error(resolve_for(&app, &token, Some(&a.email), None).await, 403, "forbidden").await;
    // A's own token falls back to A's own choices.
    let own = app.token_for(a, "resolve").await;
    let answer: Resolution = expect_json(resolve(&app, &own, None).await, 200, "own resolve").await;
    assert_eq!(
        (answer.source.as_str(), answer.configuration.id),
        ("default", Some(mine.id))
    );
    assert_eq!(answer.configuration.api_key.as_deref(), Some("sk-mine-key-0123456789"));
}

async fn a_service_tokens_scopes_hold_and_a_dead_one_is_refused(app: TestApp) {
    let Shared {
        team,
        connection,
        gpt,
        mini,
    } = shared(&app).await;
    let read = service_secret(&app, &team, &["read"]).await;
    let resolver = service_secret(&app, &team, &["resolve"]).await;
    let a = &team.member_a.email;

    // `read` lists the organisation's configurations and connections, masked, and nothing else.
    let configurations = team.configurations(&app, &read).await;
    let names: Vec<&str> = configurations.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(names, ["team-gpt", "team-mini"]);
    assert!(configurations.iter().all(|row| !row.is_default));
    assert!(configurations.iter().all(|row| row.other["can_edit"] == false));
    let connections = team.connections(&app, &read).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].id, connection.id);
    assert_eq!(connections[0].api_key_masked.as_deref(), Some("sk-…6789"));
    for path in [team.path("llm-configurations"), team.path("connections")] {
        let text = app.get(&path, &read).await.text().await.unwrap();
        assert_no_key_in(&text, &[TEAM_KEY], &path);
    }
    assert_error(resolve_for(&app, &read, Some(a), None).await, 403, "forbidden").await;
    // Another organisation's listings: 404, as for one that does not exist.
    let other = create_organisation(&app, &team.owner.token, "Other Lab").await;
    for path in [
        format!("/api/organisations/{other}/llm-configurations"),
        format!("/api/organisations/{other}/connections"),
    ] {
        assert_error(app.get(&path, &read).await, 404, "not_found").await;
    }
    // The rest of the API answers a service token with 403.
    for path in [
        "/api/llm-configurations".to_owned(),
        "/api/llm-configurations/default".to_owned(),
        gpt.path(),
        connection.path(),
        "/api/connections".to_owned(),
        "/api/conversations".to_owned(),
        "/api/organisations".to_owned(),
        format!("/api/organisations/{}", team.id),
        team.path("members"),
        team.path("audit"),
        team.path("webhooks"),
        "/api/tokens".to_owned(),
    ] {
        assert_error(app.get(&path, &read).await, 403, "forbidden").await;
    }
    assert_error(
        app.post_json(
            &team.path("llm-configurations"),
            &read,
            &json!({"name": "x", "connection_id": connection.id, "model": "gpt-4o"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.put_json(&mini.path(), &read, &json!({"name": "x"})).await,
        403,
        "forbidden",
    )
    .await;

    // `resolve` alone cannot list.
    for path in [team.path("llm-configurations"), team.path("connections")] {
        assert_error(app.get(&path, &resolver).await, 403, "forbidden").await;
    }
    // `user` is required with a service token, refused with a personal one.
    let body = assert_error(resolve_for(&app, &resolver, None, None).await, 422, "validation_failed").await;
    assert!(body["fields"]["user"].is_array(), "{body}");
    let body = assert_error(
        resolve_for(&app, &resolver, Some(""), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["fields"]["user"].is_array(), "{body}");
    let personal = app.token_for(&team.member_a, "resolve").await;
    let body = assert_error(
        resolve_for(&app, &personal, Some(&team.member_b.email), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["fields"]["user"].is_array(), "{body}");

    // Revoked or expired: 401.
    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;
    let revoked = service_token(&app, &team, "revoked", &["resolve", "read"]).await;
    let revoked_secret = revoked["token"].as_str().unwrap();
    assert_eq!(resolve_for(&app, revoked_secret, Some(a), None).await.status(), 200);
    let deleted = delete_service_token(&admin, &team, revoked["id"].as_str().unwrap()).await;
    assert_eq!(deleted.status(), 204);
    assert_error(
        resolve_for(&app, revoked_secret, Some(a), None).await,
        401,
        "unauthorized",
    )
    .await;
    app.assert_unauthorized(&team.path("connections"), revoked_secret).await;

    let expiring = service_token(&app, &team, "expiring", &["resolve"]).await;
    let id = DbId(expiring["id"].as_str().unwrap().parse().unwrap());
    app.with_db(move |conn| {
        use schema::service_tokens as st;
        diesel::update(st::table.find(id))
            .set(st::expires_at.eq(Some(lanyard::db::now() - chrono::Duration::minutes(1))))
            .execute(conn)
            .unwrap()
    })
    .await;
    let expired = expiring["token"].as_str().unwrap();
    assert_error(resolve_for(&app, expired, Some(a), None).await, 401, "unauthorized").await;
}

async fn service_tokens_are_created_listed_and_revoked_like_personal_ones(app: TestApp) {
    let Shared { team, .. } = shared(&app).await;
    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;

    // `write` is not a service token's scope.
    let body = assert_error(
        post_service_token(&admin, &team, json!({"name": "w", "scopes": ["read", "write"]})).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["fields"]["scopes"].is_array(), "{body}");
    // `resolve` needs the creator's current password: missing or wrong, 403.
    for password in [None, Some("not the password")] {
        let mut body = json!({"name": "runtime", "scopes": ["resolve"]});
        if let Some(password) = password {
            body["current_password"] = json!(password);
        }
        assert_error(
            post_service_token(&admin, &team, body).await,
            403,
            "reauthentication_required",
        )
        .await;
    }
    // `read` alone needs none; the token is shown once, in the 201.
    let response = post_service_token(&admin, &team, json!({"name": "reader", "scopes": ["read"]})).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let reader: Value = expect_json(response, 201, "read token").await;
    assert!(reader["token"].as_str().unwrap().starts_with("lny_"));
    assert_eq!(reader["scopes"], json!(["read"]));
    let resolver: Value = expect_json(
        post_service_token(
            &admin,
            &team,
            json!({"name": "resolver", "scopes": "resolve,read", "current_password": TEST_PASSWORD, "expires_in_days": 30}),
        )
        .await,
        201,
        "resolve token",
    )
    .await;
    assert_eq!(resolver["scopes"], json!(["read", "resolve"]));
    assert!(resolver["expires_at"].is_string());

    // Listed (newest first) without the secret, to the owner as well; revoked like personal ones.
    let owner = app.login(&team.owner.email, TEST_PASSWORD).await;
    let listed: Vec<Value> = expect_json(owner.get(&team.path("tokens")).await, 200, "list").await;
    let names: Vec<&str> = listed.iter().map(|token| token["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resolver", "reader"]);
    assert!(listed.iter().all(|token| token.get("token").is_none()));
    for secret in [&reader["token"], &resolver["token"]] {
        assert!(
            !serde_json::to_string(&listed)
                .unwrap()
                .contains(secret.as_str().unwrap())
        );
    }
    let id = reader["id"].as_str().unwrap();
    assert_eq!(delete_service_token(&owner, &team, id).await.status(), 204);
    let listed: Vec<Value> = expect_json(admin.get(&team.path("tokens")).await, 200, "list").await;
    let revoked: Vec<(&str, bool)> = listed
        .iter()
        .map(|token| (token["name"].as_str().unwrap(), token["revoked"].as_bool().unwrap()))
        .collect();
    assert_eq!(revoked, [("resolver", false), ("reader", true)]);
    // Another organisation's token id, or a made-up one: 404.
    let other = create_organisation(&app, &team.admin.token, "Other Lab").await;
    let csrf = admin.csrf().await;
    let response = admin
        .client
        .delete(admin.url(&format!("/api/organisations/{other}/tokens/{id}")))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;
    assert_error(
        delete_service_token(&admin, &team, &uuid::Uuid::now_v7().to_string()).await,
        404,
        "not_found",
    )
    .await;
}

async fn the_organisation_page_manages_service_tokens_and_shows_the_audit_without_javascript(app: TestApp) {
    let Shared { team, mini, .. } = shared(&app).await;
    let page_path = format!("/organisations/{}", team.id);
    let form_path = format!("/organisations/{}/tokens", team.id);
    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;
    let page = admin.page(&page_path).await;
    assert!(page.contains(r#"id="service-tokens""#), "{page}");
    assert!(page.contains(r#"id="reveal-audit""#), "{page}");

    // `resolve` without the password: the form again, 422, the error beside the field.
    let csrf = admin.csrf().await;
    let response = admin
        .post_form(
            &form_path,
            &[
                ("name", "runtime"),
                ("scopes", "resolve"),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="service-token-current-password""#), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "{html}");
    // `write`: 422 too.
    let response = admin
        .post_form(
            &form_path,
            &[("name", "runtime"), ("scopes", "write"), ("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 422);

    // With it: the page shows the new token once.
    let response = admin
        .post_form(
            &form_path,
            &[
                ("name", "runtime"),
                ("scopes", "resolve"),
                ("scopes", "read"),
                ("current_password", TEST_PASSWORD),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let start = html.find("lny_").expect("the new token is shown");
    let secret: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let again = admin.page(&page_path).await;
    assert!(!again.contains(&secret), "shown once only");
    assert!(again.contains("runtime"));

    // It resolves; the audit section shows the reveal.
    let answer = resolved_for(&app, &secret, &team.member_b.email, None).await;
    assert_eq!(answer.configuration.id, Some(mini.id));
    let page = admin.page(&page_path).await;
    let audit_section = &page[page.find(r#"id="reveal-audit""#).unwrap()..];
    assert!(audit_section.contains(&team.member_b.email), "{audit_section}");
    assert!(audit_section.contains("team-mini"), "{audit_section}");
    assert_no_key_in(&page, &[TEAM_KEY], "organisation page");

    // Revoke: a plain post, then 303 back to the page.
    let id = expect_json::<Vec<Value>>(admin.get(&team.path("tokens")).await, 200, "tokens").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = admin.csrf().await;
    let response = admin
        .post_form(
            &format!("/organisations/{}/tokens/{id}/revoke", team.id),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert!(crate::helpers::location(&response).starts_with(&format!("{page_path}?")));
    assert_eq!(
        resolve_for(&app, &secret, Some(&team.member_b.email), None)
            .await
            .status(),
        401
    );

    // A member sees neither section and cannot post.
    let member = app.login(&team.member_a.email, TEST_PASSWORD).await;
    let page = member.page(&page_path).await;
    assert!(!page.contains(r#"id="service-tokens""#));
    assert!(!page.contains(r#"id="reveal-audit""#));
    let csrf = member.csrf().await;
    for scopes in ["read", "write"] {
        let response = member
            .post_form(
                &form_path,
                &[("name", "mine"), ("scopes", scopes), ("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!(response.status(), 403, "{scopes}");
    }
    let revoke = format!("/organisations/{}/tokens/{id}/revoke", team.id);
    let response = member.post_form(&revoke, &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(response.status(), 403);
}

async fn concurrent_resolves_for_members_all_land_in_the_organisations_audit(app: TestApp) {
    const AT_ONCE: usize = 200;
    let Shared { team, mini, .. } = shared(&app).await;
    let token = service_secret(&app, &team, &["resolve"]).await;
    let members = [team.member_a.email.clone(), team.member_b.email.clone()];
    let mut running = tokio::task::JoinSet::new();
    for number in 0..AT_ONCE {
        let client = app.client.clone();
        let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
        url.query_pairs_mut().append_pair("user", &members[number % 2]);
        let token = token.clone();
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
        assert_eq!(body.source, "organisation_default");
        counts.push(body.configuration.use_count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=AT_ONCE as i64).collect::<Vec<_>>());
    assert_eq!(
        app.configuration(&team.admin.token, mini.id).await.use_count,
        AT_ONCE as i64
    );
    let lines = audit(&app, &team, &team.admin.token).await;
    assert_eq!(lines.len(), AT_ONCE);
    for member in &members {
        let theirs = lines
            .iter()
            .filter(|line| line["member"]["email"] == member.as_str())
            .count();
        assert_eq!(theirs, AT_ONCE / 2, "{member}");
    }
    assert!(
        lines
            .iter()
            .all(|line| line["configuration"]["id"] == mini.id.to_string())
    );
}
