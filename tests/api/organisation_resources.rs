//! Organisation-owned connections and configurations (`organisations.md`): admins create them,
//! members see them (with `owner` and `can_edit`), choose them as default or conversation
//! override and test them, and never get their key; a member's write is 403 `forbidden`, an
//! outsider gets the same 404 as for a missing id; a member's own resolve token answers 403
//! `organisation_key` unless the configuration's `member_access` is `reveal`; leaving an
//! organisation, or deleting it, leaves no choice pointing into it.

use diesel::prelude::*;
use lanyard::db::{DbId, schema};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::configurations::{CONFIGURATIONS, Configuration, expect_json, openai_keyed_by_name};
use crate::helpers::connections::Connection;
use crate::helpers::organisations::{Team, create_organisation, join};
use crate::helpers::pages::row_of;
use crate::helpers::providers::{GOOD_KEY, fake_openai, loopback_allowed, openai_base};
use crate::helpers::resolve::{override_path, pin, resolve, resolved};
use crate::helpers::secrets::assert_no_key_in;
use crate::helpers::{TEST_PASSWORD, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(
    admins_create_the_organisations_connections_and_configurations,
    members_see_them_marked_with_their_organisation,
    a_member_chooses_an_organisation_configuration_as_default_and_pins_another,
    members_cannot_change_the_organisations_resources,
    outsiders_get_404_for_every_organisation_resource,
    is_default_is_refused_when_creating_an_organisation_configuration,
    member_access_belongs_to_organisation_configurations,
    a_members_own_resolve_token_gets_organisation_key_unless_reveal,
    removing_a_member_clears_their_choices_in_the_organisation,
    deleting_an_organisation_leaves_no_row_pointing_at_it,
    an_organisation_key_is_sealed_with_the_organisation_as_owner,
    the_management_page_marks_organisation_configurations_and_offers_members_no_edits,
    the_organisation_default_is_one_of_its_own_configurations,
    a_members_listing_follows_the_organisations_changes_at_once,
);

on_both_backends!(settings(loopback_allowed):
    members_test_organisation_configurations_with_their_own_budget,
    no_response_to_a_member_carries_the_organisation_key,
);

/// The organisation's key in these tests (distinct from every personal key).
const TEAM_KEY: &str = "sk-team-shared-key-0123456789";

/// A team whose admin created a connection (`work-openai`) and two configurations on it
/// (`team-gpt` with `gpt-4o`, `team-mini` with `gpt-4o-mini`).
struct Shared {
    team: Team,
    connection: Connection,
    gpt: Configuration,
    mini: Configuration,
}

async fn shared(app: &TestApp, key: &str, base_url: Option<String>) -> Shared {
    let team = Team::new(app, "Acme Lab").await;
    let connection = team
        .create_connection(
            app,
            &team.admin.token,
            json!({"name": "work-openai", "provider": "openai", "api_key": key, "base_url": base_url}),
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
    Shared {
        team,
        connection,
        gpt,
        mini,
    }
}

fn organisation_owner(team: &Team) -> Value {
    json!({"kind": "organisation", "id": team.id, "name": "Acme Lab"})
}

async fn admins_create_the_organisations_connections_and_configurations(app: TestApp) {
    let Shared {
        team,
        connection,
        gpt,
        mini,
    } = shared(&app, TEAM_KEY, None).await;
    assert_eq!(connection.api_key_masked.as_deref(), Some("sk-…6789"));
    assert_eq!(connection.other["owner"], organisation_owner(&team));
    assert_eq!(connection.other["can_edit"], true);
    assert_eq!(gpt.connection_id, connection.id);
    assert_eq!(gpt.other["owner"], organisation_owner(&team));
    assert_eq!(gpt.other["member_access"], "use");
    assert!(
        !gpt.is_default && !mini.is_default,
        "an organisation's configuration is nobody's default"
    );

    // The old way: a connection of its own, named after the configuration, owned alike.
    let own = team
        .create_configuration(
            &app,
            &team.owner.token,
            json!({"name": "team-own", "provider": "openai", "model": "gpt-4o", "api_key": TEAM_KEY,
                   "member_access": "reveal"}),
        )
        .await;
    assert_eq!(own.other["member_access"], "reveal");
    let connections = team.connections(&app, &team.admin.token).await;
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["team-own", "work-openai"]);
    assert_eq!(connections[1].configuration_count, 2);

    // Names are unique per owner: the organisation's, not the admin's own.
    let taken = app
        .post_json(
            &team.path("connections"),
            &team.admin.token,
            &json!({"name": "WORK-openai", "provider": "openai", "api_key": TEAM_KEY}),
        )
        .await;
    assert_error(taken, 409, "conflict").await;
    app.create_configuration(&team.admin.token, openai_keyed_by_name("team-gpt"))
        .await;

    // The admin's own listing is theirs only; the organisation's are on its own routes.
    let personal: Vec<Connection> =
        expect_json(app.get("/api/connections", &team.admin.token).await, 200, "list").await;
    assert!(personal.iter().all(|c| c.other["owner"] == json!({"kind": "user"})));
    assert_eq!(personal.len(), 1);

    // A configuration on a connection of someone else (here: the admin's own) is refused.
    let foreign = app
        .post_json(
            &team.path("llm-configurations"),
            &team.admin.token,
            &json!({"name": "x", "connection_id": personal[0].id, "model": "gpt-4o"}),
        )
        .await;
    let body = assert_error(foreign, 422, "validation_failed").await;
    assert!(body["fields"]["connection_id"].is_array(), "{body}");
}

async fn members_see_them_marked_with_their_organisation(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app, TEAM_KEY, None).await;
    let own = app
        .create_configuration(&team.member_a.token, openai_keyed_by_name("mine"))
        .await;

    let listed = app.configurations(&team.member_a.token).await;
    let ids: Vec<Uuid> = listed.iter().map(|c| c.id).collect();
    // Their own default first, then their own by name, then the organisation's by name.
    assert_eq!(ids, [own.id, gpt.id, mini.id]);
    assert!(listed[0].is_default);
    assert_eq!(listed[0].other["owner"], json!({"kind": "user"}));
    assert_eq!(listed[0].other["can_edit"], true);
    assert!(listed[0].other.get("member_access").is_none());
    for shared in &listed[1..] {
        assert_eq!(shared.other["owner"], organisation_owner(&team));
        assert_eq!(shared.other["can_edit"], false, "a member may not change it");
        assert_eq!(shared.other["member_access"], "use");
        assert_eq!(shared.api_key_masked.as_deref(), Some("sk-…6789"));
        assert!(!shared.is_default);
    }
    let item = app.configuration(&team.member_a.token, gpt.id).await;
    assert_eq!(item.other["can_edit"], false);
    let as_admin = app.configuration(&team.admin.token, gpt.id).await;
    assert_eq!(as_admin.other["can_edit"], true);

    let on_its_route = team.configurations(&app, &team.member_b.token).await;
    assert_eq!(on_its_route.iter().map(|c| c.id).collect::<Vec<_>>(), [gpt.id, mini.id]);
    let connections = team.connections(&app, &team.member_b.token).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].other["can_edit"], false);
    let connection: Connection = expect_json(
        app.get(&format!("/api/connections/{}", connections[0].id), &team.member_b.token)
            .await,
        200,
        "member reads the connection",
    )
    .await;
    assert_eq!(connection.other["owner"], organisation_owner(&team));
    let models = app
        .get(
            &format!("/api/connections/{}/models", connection.id),
            &team.member_b.token,
        )
        .await;
    assert_eq!(models.status(), 200);

    // Another user's listing is unchanged by all this.
    let stranger = app.user().await;
    assert!(app.configurations(&stranger.token).await.is_empty());
}

async fn a_member_chooses_an_organisation_configuration_as_default_and_pins_another(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app, TEAM_KEY, None).await;
    let own = app
        .create_configuration(&team.member_a.token, openai_keyed_by_name("mine"))
        .await;
    assert!(own.is_default);

    let chosen = app.set_default(&team.member_a.token, &gpt).await;
    assert!(chosen.is_default);
    let listed = app.configurations(&team.member_a.token).await;
    assert_eq!(listed[0].id, gpt.id, "the default is listed first");
    assert_eq!(listed.iter().filter(|c| c.is_default).count(), 1);
    let default: Configuration = expect_json(
        app.get("/api/llm-configurations/default", &team.member_a.token).await,
        200,
        "default",
    )
    .await;
    assert_eq!(default.id, gpt.id);
    // The default is A's own choice: nobody else's changes.
    assert!(!app.configuration(&team.member_b.token, gpt.id).await.is_default);
    assert!(!app.configuration(&team.admin.token, gpt.id).await.is_default);

    let pinned = pin(&app, &team.member_a.token, "conversation-1", &mini).await;
    assert_eq!(pinned.configuration_id, mini.id);

    // A new configuration of A's own does not take over: A has a default.
    let later = app
        .create_configuration(&team.member_a.token, openai_keyed_by_name("later"))
        .await;
    assert!(!later.is_default);

    // An admin deactivating it clears A's choice, and A gets one of their own (promotion keeps
    // to A's own configurations).
    let deactivated = app
        .put_json(&gpt.path(), &team.admin.token, &json!({"is_active": false}))
        .await;
    assert_eq!(deactivated.status(), 200);
    let default: Configuration = expect_json(
        app.get("/api/llm-configurations/default", &team.member_a.token).await,
        200,
        "default after deactivation",
    )
    .await;
    assert!(default.id == own.id || default.id == later.id, "{default:?}");
    let inactive = app.put_set_default(&team.member_a.token, &gpt).await;
    assert_error(inactive, 409, "conflict").await;
}

async fn members_cannot_change_the_organisations_resources(app: TestApp) {
    let Shared {
        team, connection, gpt, ..
    } = shared(&app, TEAM_KEY, None).await;
    let member = &team.member_a.token;
    let refusals = [
        app.post_json(
            &team.path("connections"),
            member,
            &json!({"name": "mine", "provider": "openai", "api_key": TEAM_KEY}),
        )
        .await,
        app.post_json(
            &team.path("llm-configurations"),
            member,
            &json!({"name": "mine", "connection_id": connection.id, "model": "gpt-4o"}),
        )
        .await,
        app.put_json(&gpt.path(), member, &json!({"name": "renamed"})).await,
        app.put_json(&gpt.path(), member, &json!({"member_access": "reveal"}))
            .await,
        app.delete(&gpt.path(), member).await,
        app.put_json(&connection.path(), member, &json!({"name": "renamed"}))
            .await,
        app.put_json(&connection.path(), member, &json!({"api_key": "sk-another-key-0000"}))
            .await,
        app.delete(&connection.path(), member).await,
    ];
    for response in refusals {
        assert_error(response, 403, "forbidden").await;
    }
    // Nothing changed.
    let after = app.configuration(&team.admin.token, gpt.id).await;
    assert_eq!(after.name, "team-gpt");
    assert_eq!(after.other["member_access"], "use");

    // Admins and owners may.
    let renamed = app
        .update_configuration(&team.owner.token, &gpt, json!({"name": "renamed"}))
        .await;
    assert_eq!(renamed.name, "renamed");
    assert_eq!(app.delete(&gpt.path(), &team.admin.token).await.status(), 204);
}

async fn outsiders_get_404_for_every_organisation_resource(app: TestApp) {
    let Shared {
        team, connection, gpt, ..
    } = shared(&app, TEAM_KEY, None).await;
    let outsider = app.user().await;
    // Someone merely invited is no member either.
    let invited = app.user().await;
    let invitation = app
        .post_json(
            &team.path("members"),
            &team.owner.token,
            &json!({"email": invited.email, "role": "member"}),
        )
        .await;
    assert_eq!(invitation.status(), 202);
    let missing = Uuid::now_v7();
    for token in [&outsider.token, &invited.token] {
        let responses = [
            app.get(&team.path("connections"), token).await,
            app.get(&team.path("llm-configurations"), token).await,
            app.post_json(
                &team.path("connections"),
                token,
                &json!({"name": "x", "provider": "openai", "api_key": TEAM_KEY}),
            )
            .await,
            app.post_json(
                &team.path("llm-configurations"),
                token,
                &json!({"name": "x", "connection_id": connection.id, "model": "gpt-4o"}),
            )
            .await,
            app.get(&format!("/api/organisations/{missing}/llm-configurations"), token)
                .await,
            app.get(&gpt.path(), token).await,
            app.put_json(&gpt.path(), token, &json!({"name": "x"})).await,
            app.delete(&gpt.path(), token).await,
            app.put_set_default(token, &gpt).await,
            app.post_json(&gpt.action("test"), token, &json!({})).await,
            app.put_json(&override_path("c"), token, &json!({"configuration_id": gpt.id}))
                .await,
            app.get(&connection.path(), token).await,
            app.put_json(&connection.path(), token, &json!({"name": "x"})).await,
            app.delete(&connection.path(), token).await,
            app.get(&format!("{}/models", connection.path()), token).await,
            app.post_json(&format!("{}/test", connection.path()), token, &json!({}))
                .await,
            app.get(&format!("{}/checks", connection.path()), token).await,
        ];
        for response in responses {
            assert_error(response, 404, "not_found").await;
        }
        assert!(app.configurations(token).await.is_empty());
    }
}

async fn is_default_is_refused_when_creating_an_organisation_configuration(app: TestApp) {
    let Shared { team, connection, .. } = shared(&app, TEAM_KEY, None).await;
    for is_default in [true, false] {
        let response = app
            .post_json(
                &team.path("llm-configurations"),
                &team.admin.token,
                &json!({"name": "x", "connection_id": connection.id, "model": "gpt-4o", "is_default": is_default}),
            )
            .await;
        let body = assert_error(response, 422, "validation_failed").await;
        assert!(body["fields"]["is_default"].is_array(), "{body}");
    }
    let response = app
        .post_json(
            &team.path("llm-configurations"),
            &team.admin.token,
            &json!({"name": "x", "connection_id": connection.id, "model": "gpt-4o", "member_access": "everything"}),
        )
        .await;
    let body = assert_error(response, 422, "validation_failed").await;
    assert!(body["fields"]["member_access"].is_array(), "{body}");
}

async fn member_access_belongs_to_organisation_configurations(app: TestApp) {
    let user = app.user().await;
    let own = app
        .create_configuration(&user.token, openai_keyed_by_name("mine"))
        .await;
    let created = app
        .post_json(
            CONFIGURATIONS,
            &user.token,
            &json!({"name": "x", "provider": "openai", "model": "gpt-4o", "api_key": TEAM_KEY,
                    "member_access": "reveal"}),
        )
        .await;
    let body = assert_error(created, 422, "validation_failed").await;
    assert!(body["fields"]["member_access"].is_array(), "{body}");
    let updated = app
        .put_json(&own.path(), &user.token, &json!({"member_access": "reveal"}))
        .await;
    let body = assert_error(updated, 422, "validation_failed").await;
    assert!(body["fields"]["member_access"].is_array(), "{body}");
}

async fn a_members_own_resolve_token_gets_organisation_key_unless_reveal(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app, TEAM_KEY, None).await;
    let resolver = app.token_for(&team.member_a, "resolve").await;
    app.set_default(&team.member_a.token, &gpt).await;
    pin(&app, &team.member_a.token, "conversation-1", &mini).await;

    for conversation in [None, Some("conversation-1")] {
        let refused = resolve(&app, &resolver, conversation).await;
        let text = refused.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "organisation_key", "{text}");
        assert_no_key_in(&text, &[TEAM_KEY], "the refusal");
    }
    assert_eq!(reveal_count(&app).await, 0, "a refusal reveals nothing");

    // An admin lets members read this one key.
    let updated = app
        .update_configuration(&team.admin.token, &gpt, json!({"member_access": "reveal"}))
        .await;
    assert_eq!(updated.other["member_access"], "reveal");
    let resolution = resolved(&app, &resolver, None).await;
    assert_eq!(resolution.source, "default");
    assert_eq!(resolution.configuration.id, Some(gpt.id));
    assert_eq!(resolution.configuration.api_key.as_deref(), Some(TEAM_KEY));
    assert_eq!(reveal_count(&app).await, 1, "the reveal is audited");
    // The other is still the organisation's alone.
    let refused = resolve(&app, &resolver, Some("conversation-1")).await;
    assert_error(refused, 403, "organisation_key").await;
}

async fn removing_a_member_clears_their_choices_in_the_organisation(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app, TEAM_KEY, None).await;
    let own = app
        .create_configuration(&team.member_a.token, openai_keyed_by_name("mine"))
        .await;
    let resolver = app.token_for(&team.member_a, "resolve").await;
    app.set_default(&team.member_a.token, &gpt).await;
    pin(&app, &team.member_a.token, "conversation-1", &mini).await;
    pin(&app, &team.member_a.token, "conversation-2", &own).await;
    app.set_default(&team.member_b.token, &gpt).await;

    let removed = app
        .delete(&team.path(&format!("members/{}", team.member_a.id)), &team.admin.token)
        .await;
    assert_eq!(removed.status(), 204);

    // A sees only their own again, with their own as default; their own pin stays.
    let listed = app.configurations(&team.member_a.token).await;
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [own.id]);
    assert!(listed[0].is_default);
    let pins: Vec<Value> = expect_json(app.get("/api/conversations", &team.member_a.token).await, 200, "pins").await;
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0]["configuration_id"], json!(own.id));
    let resolution = resolved(&app, &resolver, Some("conversation-1")).await;
    assert_eq!(resolution.source, "default");
    assert_eq!(resolution.configuration.id, Some(own.id));
    assert_error(app.get(&gpt.path(), &team.member_a.token).await, 404, "not_found").await;
    // B keeps their choice.
    assert!(app.configuration(&team.member_b.token, gpt.id).await.is_default);

    // Leaving is the same.
    let left = app
        .delete(
            &team.path(&format!("members/{}", team.member_b.id)),
            &team.member_b.token,
        )
        .await;
    assert_eq!(left.status(), 204);
    let default = app.get("/api/llm-configurations/default", &team.member_b.token).await;
    assert_error(default, 404, "not_found").await;
}

async fn deleting_an_organisation_leaves_no_row_pointing_at_it(app: TestApp) {
    let Shared { team, gpt, mini, .. } = shared(&app, TEAM_KEY, None).await;
    team.create_configuration(
        &app,
        &team.admin.token,
        json!({"name": "team-own", "provider": "openai", "model": "gpt-4o", "api_key": TEAM_KEY}),
    )
    .await;
    let own = app
        .create_configuration(&team.member_a.token, openai_keyed_by_name("mine"))
        .await;
    app.set_default(&team.member_a.token, &gpt).await;
    pin(&app, &team.member_a.token, "conversation-1", &mini).await;
    app.set_default(&team.member_b.token, &mini).await;
    // Another organisation's resources stay.
    let other = create_organisation(&app, &team.owner.token, "Other Lab").await;
    join(&app, &team.owner, &other, &team.member_b, "member").await;
    let kept: Connection = expect_json(
        app.post_json(
            &format!("/api/organisations/{other}/connections"),
            &team.owner.token,
            &json!({"name": "kept", "provider": "openai", "api_key": TEAM_KEY}),
        )
        .await,
        201,
        "other organisation's connection",
    )
    .await;

    // A service token that revealed a key for a member: its token and the audit line go too.
    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;
    let csrf = admin.csrf().await;
    let created: Value = expect_json(
        admin
            .client
            .post(admin.url(&team.path("tokens")))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"name": "runtime", "scopes": ["resolve"], "current_password": TEST_PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
        "service token",
    )
    .await;
    let mut url = url::Url::parse(&app.url("/api/resolve")).unwrap();
    url.query_pairs_mut().append_pair("user", &team.member_b.email);
    let revealed = app
        .client
        .get(url)
        .bearer_auth(created["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(revealed.status(), 200);

    assert_eq!(
        app.delete(&format!("/api/organisations/{}", team.id), &team.owner.token)
            .await
            .status(),
        204
    );

    let organisation = DbId(team.id.parse().unwrap());
    let (service_tokens, audit_lines) = app
        .with_db(move |conn| {
            use schema::{organisation_reveals as rv, service_tokens as st};
            let tokens: i64 = st::table
                .filter(st::organisation_id.eq(organisation))
                .count()
                .get_result(conn)
                .unwrap();
            let lines: i64 = rv::table
                .filter(rv::organisation_id.eq(organisation))
                .count()
                .get_result(conn)
                .unwrap();
            (tokens, lines)
        })
        .await;
    assert_eq!((service_tokens, audit_lines), (0, 0));
    let (connections, configurations, defaults, pins) = app
        .with_db(move |conn| {
            use schema::{
                connections as cn, conversation_overrides as ov, llm_configurations as cfg, user_defaults as ud,
            };
            let connections: i64 = cn::table
                .filter(cn::organisation_id.eq(organisation))
                .count()
                .get_result(conn)
                .unwrap();
            let configurations: Vec<DbId> = cfg::table
                .filter(cfg::organisation_id.eq(organisation))
                .select(cfg::id)
                .load(conn)
                .unwrap();
            let defaults: Vec<(DbId, DbId)> = ud::table
                .select((ud::user_id, ud::configuration_id))
                .load(conn)
                .unwrap();
            let pins: Vec<DbId> = ov::table.select(ov::configuration_id).load(conn).unwrap();
            (connections, configurations, defaults, pins)
        })
        .await;
    assert_eq!(connections, 0);
    assert!(configurations.is_empty());
    let gone = [gpt.id, mini.id];
    assert!(defaults.iter().all(|(_, id)| !gone.contains(&id.0)), "{defaults:?}");
    assert!(pins.iter().all(|id| !gone.contains(&id.0)), "{pins:?}");
    // A's own became A's default again; the other organisation's connection is still there.
    assert!(app.configuration(&team.member_a.token, own.id).await.is_default);
    let still: Connection = expect_json(app.get(&kept.path(), &team.member_b.token).await, 200, "kept").await;
    assert_eq!(still.name, "kept");
}

async fn an_organisation_key_is_sealed_with_the_organisation_as_owner(app: TestApp) {
    let Shared { team, connection, .. } = shared(&app, TEAM_KEY, None).await;
    let id = DbId(connection.id);
    let (owner_user, organisation, sealed) = app
        .with_db(move |conn| {
            use schema::connections as cn;
            cn::table
                .filter(cn::id.eq(id))
                .select((cn::owner_user_id, cn::organisation_id, cn::api_key_encrypted))
                .first::<(Option<DbId>, Option<DbId>, Option<Vec<u8>>)>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(owner_user, None);
    assert_eq!(organisation.map(|id| id.0.to_string()), Some(team.id.clone()));
    let sealed = sealed.expect("a sealed key");
    assert!(
        !sealed
            .windows(TEAM_KEY.len())
            .any(|window| window == TEAM_KEY.as_bytes()),
        "the key is stored sealed"
    );
    // The same ciphertext moved onto a connection of the admin's own does not open there: the
    // test of that connection reports an unreadable key instead of using it.
    let admin_own: Connection = expect_json(
        app.post_json(
            "/api/connections",
            &team.admin.token,
            &json!({"name": "mine", "provider": "openai", "api_key": "sk-admin-own-key-000"}),
        )
        .await,
        201,
        "admin's own connection",
    )
    .await;
    let target = DbId(admin_own.id);
    app.with_db(move |conn| {
        use schema::connections as cn;
        diesel::update(cn::table.filter(cn::id.eq(target)))
            .set(cn::api_key_encrypted.eq(sealed))
            .execute(conn)
            .unwrap();
    })
    .await;
    let result: Value = expect_json(
        app.post_json(&format!("{}/test", admin_own.path()), &team.admin.token, &json!({}))
            .await,
        200,
        "test of the moved key",
    )
    .await;
    assert_eq!(result["code"], "key_unreadable", "{result}");
}

async fn members_test_organisation_configurations_with_their_own_budget(app: TestApp) {
    let server = fake_openai().await;
    let Shared {
        team, connection, gpt, ..
    } = shared(&app, GOOD_KEY, Some(openai_base(&server))).await;
    let result: Value = expect_json(
        app.post_json(&gpt.action("test"), &team.member_a.token, &json!({}))
            .await,
        200,
        "member tests the configuration",
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    let result: Value = expect_json(
        app.post_json(&format!("{}/test", connection.path()), &team.member_b.token, &json!({}))
            .await,
        200,
        "member tests the connection",
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    // The result is recorded on the organisation's connection, for everyone.
    let seen = app.configuration(&team.admin.token, gpt.id).await;
    assert_eq!(seen.test_status, "ok");
}

async fn no_response_to_a_member_carries_the_organisation_key(app: TestApp) {
    let server = fake_openai().await;
    let Shared {
        team,
        connection,
        gpt,
        mini,
    } = shared(&app, GOOD_KEY, Some(openai_base(&server))).await;
    app.set_default(&team.member_b.token, &mini).await;
    let mut bodies: Vec<(String, String)> = Vec::new();
    for member in [&team.member_a, &team.member_b] {
        bodies.extend(responses_to_a_member(&app, &team, &connection, &gpt, &mini, member).await);
    }
    assert!(bodies.len() > 60);
    for (what, text) in &bodies {
        assert_no_key_in(text, &[GOOD_KEY], what);
    }
}

/// Every answer a member's token and session get around the organisation's resources: lists,
/// items, tests, refusals, the service-token and audit routes, the pages and the JSON export.
async fn responses_to_a_member(
    app: &TestApp,
    team: &Team,
    connection: &Connection,
    gpt: &Configuration,
    mini: &Configuration,
    member: &crate::helpers::TestUser,
) -> Vec<(String, String)> {
    let resolver = app.token_for(member, "resolve").await;
    if member.id == team.member_a.id {
        app.set_default(&member.token, gpt).await;
    }
    pin(app, &member.token, "conversation-1", mini).await;

    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, text: String| bodies.push((what.to_owned(), text));
    for path in [
        CONFIGURATIONS.to_owned(),
        "/api/llm-configurations/default".to_owned(),
        gpt.path(),
        mini.path(),
        team.path("llm-configurations"),
        team.path("connections"),
        connection.path(),
        format!("{}/models", connection.path()),
        format!("{}/checks", connection.path()),
        "/api/conversations".to_owned(),
        "/api/organisations".to_owned(),
        format!("/api/organisations/{}", team.id),
        team.path("audit"),
        team.path("tokens"),
    ] {
        let response = app.get(&path, &member.token).await;
        keep(&path, response.text().await.unwrap());
    }
    for (what, response) in [
        (
            "test",
            app.post_json(&gpt.action("test"), &member.token, &json!({})).await,
        ),
        (
            "connection test",
            app.post_json(&format!("{}/test", connection.path()), &member.token, &json!({}))
                .await,
        ),
        (
            "refresh",
            app.post_json(
                &format!("{}/models/refresh", connection.path()),
                &member.token,
                &json!({}),
            )
            .await,
        ),
        (
            "test by id",
            app.post_json(&format!("{CONFIGURATIONS}/test"), &member.token, &json!({"id": gpt.id}))
                .await,
        ),
        (
            "refused edit",
            app.put_json(&gpt.path(), &member.token, &json!({"name": "x"})).await,
        ),
        (
            "refused test with other values",
            app.post_json(
                &format!("{CONFIGURATIONS}/test"),
                &member.token,
                &json!({"id": gpt.id, "provider": "openai", "base_url": "https://example.com/v1"}),
            )
            .await,
        ),
        ("resolve", resolve(app, &resolver, None).await),
        ("resolve pinned", resolve(app, &resolver, Some("conversation-1")).await),
    ] {
        keep(what, response.text().await.unwrap());
    }
    // The pages, signed in.
    let browser = app.login(&member.email, TEST_PASSWORD).await;
    for page in [
        "/llm-configurations".to_owned(),
        "/settings".to_owned(),
        "/connections".to_owned(),
        format!("/connections/{}", connection.id),
        format!("/llm-configurations/{}/edit", gpt.id),
        "/organisations".to_owned(),
        format!("/organisations/{}", team.id),
    ] {
        let response = browser.get(&page).await;
        keep(&page, response.text().await.unwrap());
    }
    // The JSON export of the member's configurations.
    let owner = member.id;
    let export = app
        .with_db(move |conn| serde_json::to_string(&lanyard::services::import::export(conn, owner).unwrap()).unwrap())
        .await;
    keep("export", export);
    // The session's own calls on the service-token routes: refused, without the key.
    let csrf = browser.csrf().await;
    let refused = browser
        .client
        .post(browser.url(&team.path("tokens")))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "mine", "scopes": ["resolve"], "current_password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    keep("service token by a member", refused.text().await.unwrap());
    keep(
        "audit page call",
        browser.get(&team.path("audit")).await.text().await.unwrap(),
    );
    bodies
}

/// How many key reveals the audit holds.
async fn reveal_count(app: &TestApp) -> i64 {
    app.with_db(|conn| schema::key_reveals::table.count().get_result::<i64>(conn).unwrap())
        .await
}

async fn the_management_page_marks_organisation_configurations_and_offers_members_no_edits(app: TestApp) {
    let Shared { team, gpt, .. } = shared(&app, TEAM_KEY, None).await;
    let member = app.login(&team.member_a.email, TEST_PASSWORD).await;
    let page = member.page("/llm-configurations").await;
    let row = row_of(&page, gpt.id).expect("the organisation's configuration is listed");
    assert!(row.contains("Acme Lab"), "{row}");
    assert!(row.contains("sk-…6789"), "{row}");
    assert!(row.contains(r#"data-action="set-default""#), "{row}");
    assert!(row.contains(r#"data-action="test""#), "{row}");
    for action in ["edit", "delete", "deactivate"] {
        assert!(!row.contains(&format!(r#"data-action="{action}""#)), "{action}: {row}");
    }
    // The settings selector offers it.
    assert!(member.page("/settings").await.contains("team-gpt"));

    let admin = app.login(&team.admin.email, TEST_PASSWORD).await;
    let page = admin.page("/llm-configurations").await;
    let row = row_of(&page, gpt.id).expect("listed for the admin");
    assert!(row.contains(r#"data-action="edit""#), "{row}");
}

async fn the_organisation_default_is_one_of_its_own_configurations(app: TestApp) {
    let Shared { team, gpt, .. } = shared(&app, TEAM_KEY, None).await;
    let path = format!("/api/organisations/{}", team.id);
    let other = create_organisation(&app, &team.admin.token, "Other Lab").await;
    let foreign = expect_json::<Configuration>(
        app.post_json(
            &format!("/api/organisations/{other}/llm-configurations"),
            &team.admin.token,
            &json!({"name": "theirs", "provider": "openai", "model": "gpt-4o", "api_key": TEAM_KEY}),
        )
        .await,
        201,
        "another organisation's configuration",
    )
    .await;
    let personal = app
        .create_configuration(&team.admin.token, openai_keyed_by_name("mine"))
        .await;
    for id in [foreign.id, personal.id, Uuid::now_v7()] {
        let refused = app
            .put_json(
                &path,
                &team.admin.token,
                &json!({"policy": {"default_configuration_id": id}}),
            )
            .await;
        let body = assert_error(refused, 422, "validation_failed").await;
        assert!(body["fields"]["policy.default_configuration_id"].is_array(), "{body}");
    }
    let member = app
        .put_json(
            &path,
            &team.member_a.token,
            &json!({"policy": {"default_configuration_id": gpt.id}}),
        )
        .await;
    assert_error(member, 403, "forbidden").await;
    let changed: Value = expect_json(
        app.put_json(
            &path,
            &team.admin.token,
            &json!({"policy": {"default_configuration_id": gpt.id}}),
        )
        .await,
        200,
        "set the organisation's default",
    )
    .await;
    assert_eq!(changed["policy"]["default_configuration_id"], json!(gpt.id));
    // Deleting it clears the policy's default.
    assert_eq!(app.delete(&gpt.path(), &team.admin.token).await.status(), 204);
    let read: Value = expect_json(app.get(&path, &team.member_a.token).await, 200, "organisation").await;
    assert_eq!(read["policy"]["default_configuration_id"], Value::Null);
}

/// The listing is served from a cache while its version stands (`http::ListingCache`): every
/// change to what a member sees of an organisation must reach their listing at once.
async fn a_members_listing_follows_the_organisations_changes_at_once(app: TestApp) {
    let Shared {
        team, connection, gpt, ..
    } = shared(&app, TEAM_KEY, None).await;
    let member = &team.member_a.token;
    let listing = |expected: &'static str| {
        let app = &app;
        async move {
            let listed = app.configurations(member).await;
            for item in &listed {
                let fresh = app.configuration(member, item.id).await;
                assert_eq!(item.name, fresh.name, "{expected}");
                assert_eq!(item.other, fresh.other, "{expected}");
                assert_eq!(
                    (item.is_default, &item.api_key_masked, &item.model),
                    (fresh.is_default, &fresh.api_key_masked, &fresh.model),
                    "{expected}"
                );
            }
            listed
        }
    };
    let listed = listing("as created").await;
    assert_eq!(listed.len(), 2);

    let renamed = app
        .put_json(
            &gpt.path(),
            &team.admin.token,
            &json!({"name": "team-gpt-5", "model": "gpt-5"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let listed = listing("an admin renamed it").await;
    assert!(listed.iter().any(|c| c.name == "team-gpt-5" && c.model == "gpt-5"));

    let rotated = app
        .put_json(
            &connection.path(),
            &team.admin.token,
            &json!({"api_key": "sk-team-rotated-00009999"}),
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let listed = listing("an admin rotated the key").await;
    assert!(listed.iter().all(|c| c.api_key_masked.as_deref() == Some("sk-…9999")));

    let promoted = app
        .put_json(
            &team.path(&format!("members/{}", team.member_a.id)),
            &team.owner.token,
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(promoted.status(), 200);
    let listed = listing("promoted to admin").await;
    assert!(listed.iter().all(|c| c.other["can_edit"] == true));

    let renamed = app
        .put_json(
            &format!("/api/organisations/{}", team.id),
            &team.owner.token,
            &json!({"name": "Acme Labs"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let listed = listing("the organisation renamed").await;
    assert!(listed.iter().all(|c| c.other["owner"]["name"] == "Acme Labs"));

    let removed = app
        .delete(&team.path(&format!("members/{}", team.member_a.id)), &team.owner.token)
        .await;
    assert_eq!(removed.status(), 204);
    assert!(app.configurations(member).await.is_empty(), "no longer a member");
}
