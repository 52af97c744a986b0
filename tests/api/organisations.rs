//! Organisations (`organisations.md`): creating one, invitations that the invited person accepts
//! or declines (202 alike for any e-mail), roles (a member's write is 403, an outsider gets 404
//! everywhere), the member's own sharing switch, and the last-owner rule, also under concurrent
//! requests and for disabling or deleting the last owner as a user; the pages with JavaScript
//! off, and `/admin`'s list of every organisation.

use lanyard::config::Settings;
use lanyard::domain::{Email, OrganisationCreation, Password};
use lanyard::services::accounts;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::binary::{Site, master_keys};
use crate::helpers::forms::post_form;
use crate::helpers::{TEST_PASSWORD, TestApp, TestUser, assert_error};
use crate::on_both_backends;

on_both_backends!(
    creating_an_organisation_makes_the_creator_its_owner,
    an_invited_person_is_no_member_until_they_accept,
    declined_and_withdrawn_invitations_are_gone,
    inviting_answers_alike_for_known_and_unknown_emails,
    an_invitation_to_an_unknown_email_waits_for_its_account,
    a_member_cannot_change_the_organisation,
    outsiders_get_the_same_404_as_a_missing_id_on_every_route,
    admins_manage_members_and_owners_manage_owners,
    the_last_owner_cannot_leave_be_demoted_or_be_removed,
    the_last_owner_cannot_be_disabled_or_deleted_as_a_user,
    twenty_concurrent_demotions_and_departures_leave_exactly_one_owner,
    only_the_member_sets_their_own_sharing_switch,
    renaming_and_the_policy_are_for_admins,
    deleting_an_organisation_removes_its_members_and_invitations,
    scopes_and_csrf_guard_organisation_changes,
    every_page_action_works_with_javascript_off,
    the_admin_page_lists_every_organisation_and_can_delete_one,
);

on_both_backends!(settings(admins_create_organisations):
    only_instance_admins_create_organisations_when_the_instance_says_so,
);

fn admins_create_organisations(settings: &mut Settings) {
    settings.organisation_creation = OrganisationCreation::Admins;
}

/// Creates an organisation named `name` with `token`; its id.
pub(crate) async fn create_organisation(app: &TestApp, token: &str, name: &str) -> String {
    let response = app.post_json("/api/organisations", token, &json!({"name": name})).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "create failed: {body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn invite(app: &TestApp, token: &str, organisation: &str, email: &str, role: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/organisations/{organisation}/members"),
        token,
        &json!({"email": email, "role": role}),
    )
    .await
}

async fn accept(app: &TestApp, token: &str, organisation: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/organisations/{organisation}/invitation/accept"),
        token,
        &json!({}),
    )
    .await
}

/// `user` invited with `role` and accepting: a member.
pub(crate) async fn join(app: &TestApp, owner: &TestUser, organisation: &str, user: &TestUser, role: &str) {
    assert_eq!(
        invite(app, &owner.token, organisation, &user.email, role)
            .await
            .status(),
        202
    );
    let response = accept(app, &user.token, organisation).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "accept failed: {body}");
    assert_eq!(body["role"], role);
}

/// The members list as an owner or admin reads it.
async fn members(app: &TestApp, token: &str, organisation: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/api/organisations/{organisation}/members"), token)
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "members: {body}");
    body.as_array().unwrap().clone()
}

/// The e-mails of the active owners.
async fn owners(app: &TestApp, token: &str, organisation: &str) -> Vec<String> {
    members(app, token, organisation)
        .await
        .into_iter()
        .filter(|member| member["role"] == "owner" && member["status"] == "active")
        .map(|member| member["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn entries(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app.get("/api/organisations", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn set_role(app: &TestApp, token: &str, organisation: &str, member: Uuid, role: &str) -> reqwest::Response {
    app.put_json(
        &format!("/api/organisations/{organisation}/members/{member}"),
        token,
        &json!({"role": role}),
    )
    .await
}

async fn remove(app: &TestApp, token: &str, organisation: &str, member: Uuid) -> reqwest::Response {
    app.delete(&format!("/api/organisations/{organisation}/members/{member}"), token)
        .await
}

async fn creating_an_organisation_makes_the_creator_its_owner(app: TestApp) {
    let owner = app.user().await;
    let response = app
        .post_json("/api/organisations", &owner.token, &json!({"name": "  Acme Lab "}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/organisations/{id}"));
    assert_eq!(body["name"], "Acme Lab");
    assert_eq!(body["role"], "owner");
    assert_eq!(
        body["policy"],
        json!({"allow_personal_configurations": false, "default_configuration_id": null})
    );
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    let read: Value = app.get(&location, &owner.token).await.json().await.unwrap();
    assert_eq!(read, body);
    let listed = entries(&app, &owner.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["role"], "owner");
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(
        owners(&app, &owner.token, id).await,
        vec![owner.email.clone()],
        "the creator is the owner"
    );

    // Names are unique across the instance, ignoring case, and follow a configuration's rules.
    let other = app.user().await;
    let taken = app
        .post_json("/api/organisations", &other.token, &json!({"name": "ACME LAB"}))
        .await;
    let taken = assert_error(taken, 409, "conflict").await;
    assert!(taken["fields"]["name"].is_array(), "{taken}");
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (json!({}), "name"),
        (json!({"name": "ok", "role": "owner"}), "role"),
        (json!({"name": "ok", "colour": "red"}), "colour"),
    ] {
        let refused = app.post_json("/api/organisations", &other.token, &body).await;
        let refused = assert_error(refused, 422, "validation_failed").await;
        assert!(refused["fields"][field].is_array(), "{body} → {refused}");
    }
    assert!(entries(&app, &other.token).await.is_empty(), "nothing was created");
}

async fn an_invited_person_is_no_member_until_they_accept(app: TestApp) {
    let owner = app.user().await;
    let invited = app.user().await;
    let bystander = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    let path = format!("/api/organisations/{organisation}");

    let response = invite(
        &app,
        &owner.token,
        &organisation,
        &invited.email.to_uppercase(),
        "admin",
    )
    .await;
    assert_eq!(response.status(), 202);

    // Invited: listed as such, but no member for any rule.
    let listed = entries(&app, &invited.token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], organisation.as_str());
    assert_eq!(listed[0]["name"], "team");
    assert_eq!(listed[0]["status"], "invited");
    assert_eq!(listed[0]["role"], "admin");
    assert_error(app.get(&path, &invited.token).await, 404, "not_found").await;
    assert_error(
        app.get(&format!("{path}/members"), &invited.token).await,
        404,
        "not_found",
    )
    .await;
    let listed = members(&app, &owner.token, &organisation).await;
    let pending = listed
        .iter()
        .find(|member| member["status"] == "invited")
        .expect("the invitation is listed");
    assert_eq!(pending["user_id"], Value::Null);
    assert_eq!(pending["role"], "admin");
    assert_eq!(
        pending["email"].as_str().unwrap().to_lowercase(),
        invited.email.to_lowercase()
    );

    // Someone else cannot take the invitation.
    assert_error(accept(&app, &bystander.token, &organisation).await, 404, "not_found").await;

    let joined = accept(&app, &invited.token, &organisation).await;
    assert_eq!(joined.status(), 200);
    let joined: Value = joined.json().await.unwrap();
    assert_eq!(joined["role"], "admin");
    assert_eq!(app.get(&path, &invited.token).await.status(), 200);
    let listed = entries(&app, &invited.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "active");
    let listed = members(&app, &owner.token, &organisation).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let member = listed
        .iter()
        .find(|member| member["user_id"] == invited.id.to_string())
        .expect("an active member");
    assert_eq!(member["status"], "active");
    assert_eq!(member["role"], "admin");
    assert_error(accept(&app, &invited.token, &organisation).await, 404, "not_found").await;
}

async fn declined_and_withdrawn_invitations_are_gone(app: TestApp) {
    let owner = app.user().await;
    let declining = app.user().await;
    let withdrawn = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    for user in [&declining, &withdrawn] {
        assert_eq!(
            invite(&app, &owner.token, &organisation, &user.email, "member")
                .await
                .status(),
            202
        );
    }

    let declined = app
        .post_json(
            &format!("/api/organisations/{organisation}/invitation/decline"),
            &declining.token,
            &json!({}),
        )
        .await;
    assert_eq!(declined.status(), 204);
    assert!(entries(&app, &declining.token).await.is_empty());
    assert_error(accept(&app, &declining.token, &organisation).await, 404, "not_found").await;

    let path = format!(
        "/api/organisations/{organisation}/invitations?email={}",
        withdrawn.email.to_uppercase()
    );
    assert_eq!(app.delete(&path, &owner.token).await.status(), 204);
    assert!(entries(&app, &withdrawn.token).await.is_empty());
    assert_error(accept(&app, &withdrawn.token, &organisation).await, 404, "not_found").await;
    assert_error(app.delete(&path, &owner.token).await, 404, "not_found").await;
    let missing = app
        .delete(&format!("/api/organisations/{organisation}/invitations"), &owner.token)
        .await;
    let missing = assert_error(missing, 422, "validation_failed").await;
    assert!(missing["fields"]["email"].is_array(), "{missing}");
    assert_eq!(
        members(&app, &owner.token, &organisation).await.len(),
        1,
        "only the owner is left"
    );
}

async fn inviting_answers_alike_for_known_and_unknown_emails(app: TestApp) {
    let owner = app.user().await;
    let known = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;

    let mut answers = Vec::new();
    for email in [known.email.as_str(), "nobody-yet@example.com"] {
        let response = invite(&app, &owner.token, &organisation, email, "member").await;
        let status = response.status().as_u16();
        // As a set: the header map's order differs from one response to the next anyway.
        let headers: std::collections::BTreeSet<String> = response
            .headers()
            .keys()
            .filter(|name| !["date", "x-request-id"].contains(&name.as_str()))
            .map(|name| name.to_string())
            .collect();
        answers.push((status, headers, response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 202);
    assert_eq!(
        answers[0], answers[1],
        "the same answer for a known and an unknown e-mail"
    );

    // A malformed e-mail or role is refused, an existing member is a conflict.
    let refused = invite(&app, &owner.token, &organisation, "not-an-email", "member").await;
    assert!(assert_error(refused, 422, "validation_failed").await["fields"]["email"].is_array());
    let refused = invite(&app, &owner.token, &organisation, "x@example.com", "boss").await;
    assert!(assert_error(refused, 422, "validation_failed").await["fields"]["role"].is_array());
    let refused = invite(&app, &owner.token, &organisation, &owner.email, "member").await;
    assert!(assert_error(refused, 409, "conflict").await["fields"]["email"].is_array());
}

async fn an_invitation_to_an_unknown_email_waits_for_its_account(app: TestApp) {
    let owner = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    let email = format!("later-{}@example.com", Uuid::new_v4().simple());
    assert_eq!(
        invite(&app, &owner.token, &organisation, &email, "member")
            .await
            .status(),
        202
    );

    let stored = email.to_uppercase();
    app.with_db(move |conn| {
        accounts::create_user(
            conn,
            &Email::parse(&stored).unwrap(),
            &Password::parse(TEST_PASSWORD).unwrap(),
            false,
        )
        .unwrap()
    })
    .await;
    let newcomer = app.login(&email, TEST_PASSWORD).await;
    let listed: Vec<Value> = newcomer.get("/api/organisations").await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "invited");
    let csrf = newcomer.csrf().await;
    let joined = newcomer
        .client
        .post(newcomer.url(&format!("/api/organisations/{organisation}/invitation/accept")))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 200);
    assert_eq!(members(&app, &owner.token, &organisation).await.len(), 2);
}

async fn a_member_cannot_change_the_organisation(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let member = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    join(&app, &owner, &organisation, &admin, "admin").await;
    join(&app, &owner, &organisation, &member, "member").await;
    assert_eq!(
        invite(&app, &owner.token, &organisation, "pending@example.com", "member")
            .await
            .status(),
        202
    );
    let path = format!("/api/organisations/{organisation}");

    // A member reads the organisation…
    let read: Value = app.get(&path, &member.token).await.json().await.unwrap();
    assert_eq!(read["role"], "member");
    // …and every write is 403 `forbidden`.
    let token = member.token.as_str();
    for response in [
        app.put_json(&path, token, &json!({"name": "mine now"})).await,
        app.put_json(
            &path,
            token,
            &json!({"policy": {"allow_personal_configurations": true}}),
        )
        .await,
        app.delete(&path, token).await,
        app.get(&format!("{path}/members"), token).await,
        invite(&app, token, &organisation, "friend@example.com", "member").await,
        set_role(&app, token, &organisation, member.id, "admin").await,
        set_role(&app, token, &organisation, admin.id, "member").await,
        remove(&app, token, &organisation, admin.id).await,
        app.delete(&format!("{path}/invitations?email=pending@example.com"), token)
            .await,
    ] {
        assert_error(response, 403, "forbidden").await;
    }
    let read: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(read["name"], "team");
    assert_eq!(read["policy"]["allow_personal_configurations"], false);
    let listed = members(&app, &owner.token, &organisation).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|m| m["user_id"] == member.id.to_string() && m["role"] == "member")
    );
    assert!(
        listed
            .iter()
            .any(|m| m["user_id"] == admin.id.to_string() && m["role"] == "admin")
    );
    assert!(listed.iter().any(|m| m["status"] == "invited"));
}

async fn outsiders_get_the_same_404_as_a_missing_id_on_every_route(app: TestApp) {
    let owner = app.user().await;
    let outsider = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    let missing = Uuid::now_v7().to_string();

    let mut answers: Vec<Vec<(u16, String)>> = Vec::new();
    for id in [organisation.as_str(), missing.as_str()] {
        let base = format!("/api/organisations/{id}");
        let token = outsider.token.as_str();
        let mut answered = Vec::new();
        for response in [
            app.get(&base, token).await,
            app.put_json(&base, token, &json!({"name": "taken over"})).await,
            app.delete(&base, token).await,
            app.put_json(
                &format!("{base}/membership"),
                token,
                &json!({"share_personal_configurations": true}),
            )
            .await,
            app.get(&format!("{base}/members"), token).await,
            invite(&app, token, id, "friend@example.com", "member").await,
            set_role(&app, token, id, owner.id, "member").await,
            remove(&app, token, id, owner.id).await,
            remove(&app, token, id, outsider.id).await,
            app.delete(&format!("{base}/invitations?email=friend@example.com"), token)
                .await,
            accept(&app, token, id).await,
            app.post_json(&format!("{base}/invitation/decline"), token, &json!({}))
                .await,
        ] {
            let status = response.status().as_u16();
            answered.push((status, response.text().await.unwrap()));
        }
        for (status, body) in &answered {
            assert_eq!(*status, 404, "{body}");
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"], "not_found");
        }
        answers.push(answered);
    }
    assert_eq!(
        answers[0], answers[1],
        "an outsider cannot tell an organisation from a missing id"
    );
    assert_eq!(
        owners(&app, &owner.token, &organisation).await,
        vec![owner.email.clone()]
    );
    let read: Value = app
        .get(&format!("/api/organisations/{organisation}"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["name"], "team");
    assert_error(
        app.get("/api/organisations/not-a-uuid", &outsider.token).await,
        400,
        "bad_request",
    )
    .await;
}

async fn admins_manage_members_and_owners_manage_owners(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let member = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    join(&app, &owner, &organisation, &admin, "admin").await;

    // An admin invites members and admins, but not owners.
    assert_eq!(
        invite(&app, &admin.token, &organisation, &member.email, "member")
            .await
            .status(),
        202
    );
    assert_error(
        invite(&app, &admin.token, &organisation, "boss@example.com", "owner").await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(accept(&app, &member.token, &organisation).await.status(), 200);

    // An admin changes a member's role, but no owner's, and makes nobody owner.
    let promoted = set_role(&app, &admin.token, &organisation, member.id, "admin").await;
    assert_eq!(promoted.status(), 200);
    let promoted: Value = promoted.json().await.unwrap();
    assert_eq!(promoted["role"], "admin");
    assert_eq!(promoted["user_id"], member.id.to_string());
    assert_eq!(promoted["status"], "active");
    assert_error(
        set_role(&app, &admin.token, &organisation, member.id, "owner").await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        set_role(&app, &admin.token, &organisation, owner.id, "member").await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        remove(&app, &admin.token, &organisation, owner.id).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        set_role(&app, &admin.token, &organisation, Uuid::now_v7(), "member").await,
        404,
        "not_found",
    )
    .await;
    let refused = set_role(&app, &admin.token, &organisation, member.id, "boss").await;
    assert!(assert_error(refused, 422, "validation_failed").await["fields"]["role"].is_array());

    // An owner makes another owner, who may then be demoted while one owner remains.
    assert_eq!(
        set_role(&app, &owner.token, &organisation, admin.id, "owner")
            .await
            .status(),
        200
    );
    let mut expected = vec![owner.email.clone(), admin.email.clone()];
    expected.sort();
    let mut actual = owners(&app, &owner.token, &organisation).await;
    actual.sort();
    assert_eq!(actual, expected);
    assert_eq!(
        set_role(&app, &admin.token, &organisation, owner.id, "admin")
            .await
            .status(),
        200
    );
    assert_eq!(
        owners(&app, &admin.token, &organisation).await,
        vec![admin.email.clone()]
    );

    // An admin removes a member; a member removes themselves.
    assert_eq!(remove(&app, &owner.token, &organisation, member.id).await.status(), 204);
    assert_error(
        app.get(&format!("/api/organisations/{organisation}"), &member.token)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(remove(&app, &owner.token, &organisation, owner.id).await.status(), 204);
    assert!(entries(&app, &owner.token).await.is_empty());
    assert_eq!(members(&app, &admin.token, &organisation).await.len(), 1);
}

async fn the_last_owner_cannot_leave_be_demoted_or_be_removed(app: TestApp) {
    let owner = app.user().await;
    let second = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;

    let left = assert_error(
        remove(&app, &owner.token, &organisation, owner.id).await,
        409,
        "last_owner",
    )
    .await;
    assert!(left["message"].as_str().unwrap().contains("team"), "{left}");
    assert_error(
        set_role(&app, &owner.token, &organisation, owner.id, "admin").await,
        409,
        "last_owner",
    )
    .await;
    assert_eq!(
        owners(&app, &owner.token, &organisation).await,
        vec![owner.email.clone()]
    );

    // With a second owner, one may go; then the other is the last again.
    join(&app, &owner, &organisation, &second, "owner").await;
    assert_eq!(remove(&app, &second.token, &organisation, owner.id).await.status(), 204);
    assert_error(
        remove(&app, &second.token, &organisation, second.id).await,
        409,
        "last_owner",
    )
    .await;
    assert_error(
        set_role(&app, &second.token, &organisation, second.id, "member").await,
        409,
        "last_owner",
    )
    .await;
    assert_eq!(
        owners(&app, &second.token, &organisation).await,
        vec![second.email.clone()]
    );
}

async fn the_last_owner_cannot_be_disabled_or_deleted_as_a_user(app: TestApp) {
    let (instance_admin, _) = app.register_first_admin().await;
    let owner = app.user().await;
    let other = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    join(&app, &owner, &organisation, &other, "admin").await;

    for action in ["disable", "delete"] {
        let refused = post_form(&instance_admin, &format!("/admin/users/{}/{action}", owner.id), &[]).await;
        assert_eq!(refused.status(), 409, "{action}");
        let page = refused.text().await.unwrap();
        assert!(page.contains("last owner"), "{page}");
    }
    let site = Site::new(app.test_database.url_string());
    let refused = site.run(
        &master_keys(&app.master_keys),
        &["user", "disable", "--email", &owner.email],
        "",
    );
    refused.assert_failure();
    assert!(refused.stderr.contains("last owner"), "{}", refused.stderr);
    assert_eq!(
        app.get("/api/organisations", &owner.token).await.status(),
        200,
        "still enabled"
    );
    assert_eq!(
        owners(&app, &owner.token, &organisation).await,
        vec![owner.email.clone()]
    );

    // Once another owner exists, the first may be disabled, and the new last owner may not.
    assert_eq!(
        set_role(&app, &owner.token, &organisation, other.id, "owner")
            .await
            .status(),
        200
    );
    let disabled = post_form(&instance_admin, &format!("/admin/users/{}/disable", owner.id), &[]).await;
    assert_eq!(disabled.status(), 303);
    let refused = post_form(&instance_admin, &format!("/admin/users/{}/delete", other.id), &[]).await;
    assert_eq!(refused.status(), 409);
    // A disabled owner does not count: the one who can sign in cannot leave.
    assert_error(
        remove(&app, &other.token, &organisation, other.id).await,
        409,
        "last_owner",
    )
    .await;
    let deleted = post_form(&instance_admin, &format!("/admin/users/{}/delete", owner.id), &[]).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(
        owners(&app, &other.token, &organisation).await,
        vec![other.email.clone()]
    );
}

async fn twenty_concurrent_demotions_and_departures_leave_exactly_one_owner(app: TestApp) {
    let first = app.user().await;
    let organisation = create_organisation(&app, &first.token, "team").await;
    let mut team = vec![first];
    for _ in 0..3 {
        let user = app.user().await;
        join(&app, &team[0], &organisation, &user, "owner").await;
        team.push(user);
    }
    assert_eq!(owners(&app, &team[0].token, &organisation).await.len(), 4);

    let mut requests = JoinSet::new();
    for attempt in 0..20 {
        let actor = &team[attempt % 4];
        let target = &team[(attempt / 4 + attempt) % 4];
        let client = app.client.clone();
        let url = app.url(&format!("/api/organisations/{organisation}/members/{}", target.id));
        let token = actor.token.clone();
        let leave = attempt % 2 == 0 && actor.id == target.id;
        requests.spawn(async move {
            let request = if leave {
                client.delete(url)
            } else {
                client.put(url).json(&json!({"role": "member"}))
            };
            let response = request.bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    let mut refused_last_owner = 0;
    while let Some(joined) = requests.join_next().await {
        let (status, body) = joined.unwrap();
        assert!([200, 204, 403, 404, 409].contains(&status), "{status}: {body}");
        if status == 409 {
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"], "last_owner", "{body}");
            refused_last_owner += 1;
        }
    }
    assert!(refused_last_owner > 0, "some attempt met the last owner");
    let remaining: Vec<&TestUser> = {
        let mut remaining = Vec::new();
        for user in &team {
            let read = app
                .get(&format!("/api/organisations/{organisation}"), &user.token)
                .await;
            if read.status() == 200 {
                let read: Value = read.json().await.unwrap();
                if read["role"] == "owner" {
                    remaining.push(user);
                }
            }
        }
        remaining
    };
    assert_eq!(remaining.len(), 1, "exactly one owner is left");
    assert_eq!(
        owners(&app, &remaining[0].token, &organisation).await,
        vec![remaining[0].email.clone()]
    );
}

async fn only_the_member_sets_their_own_sharing_switch(app: TestApp) {
    let owner = app.user().await;
    let member = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    join(&app, &owner, &organisation, &member, "member").await;
    let path = format!("/api/organisations/{organisation}/membership");

    let shared = app
        .put_json(&path, &member.token, &json!({"share_personal_configurations": true}))
        .await;
    assert_eq!(shared.status(), 200);
    let shared: Value = shared.json().await.unwrap();
    assert_eq!(shared, json!({"share_personal_configurations": true}));
    let unshared = app
        .put_json(&path, &member.token, &json!({"share_personal_configurations": false}))
        .await;
    assert_eq!(
        unshared.json::<Value>().await.unwrap()["share_personal_configurations"],
        false
    );

    for body in [
        json!({}),
        json!({"share_personal_configurations": "yes"}),
        json!({"share_personal_configurations": true, "role": "owner"}),
    ] {
        assert_error(
            app.put_json(&path, &member.token, &body).await,
            422,
            "validation_failed",
        )
        .await;
    }
}

async fn renaming_and_the_policy_are_for_admins(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    create_organisation(&app, &owner.token, "other team").await;
    join(&app, &owner, &organisation, &admin, "admin").await;
    let path = format!("/api/organisations/{organisation}");

    let changed = app
        .put_json(
            &path,
            &admin.token,
            &json!({"name": "Team A", "policy": {"allow_personal_configurations": true}}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["name"], "Team A");
    assert_eq!(changed["role"], "admin");
    assert_eq!(changed["policy"]["allow_personal_configurations"], true);
    assert_eq!(changed["policy"]["default_configuration_id"], Value::Null);
    let read: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(read["name"], "Team A");
    assert_eq!(read["policy"]["allow_personal_configurations"], true);

    let taken = app.put_json(&path, &admin.token, &json!({"name": "OTHER team"})).await;
    assert!(assert_error(taken, 409, "conflict").await["fields"]["name"].is_array());
    // The organisation owns no configuration yet: a default must be one of its own.
    let personal = app
        .create_openai(&admin.token, "personal", "sk-proj-personal-000000000001")
        .await;
    for body in [
        json!({"policy": {"default_configuration_id": personal.id}}),
        json!({"policy": {"allow_personal_configurations": "yes"}}),
        json!({"policy": {"colour": "red"}}),
        json!({"policy": true}),
        json!({"name": null}),
        json!({"id": organisation}),
    ] {
        assert_error(app.put_json(&path, &admin.token, &body).await, 422, "validation_failed").await;
    }
    let cleared = app
        .put_json(
            &path,
            &admin.token,
            &json!({"policy": {"default_configuration_id": null}}),
        )
        .await;
    assert_eq!(cleared.status(), 200);
    let read: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(read["name"], "Team A");
    assert_eq!(read["policy"]["allow_personal_configurations"], true);
}

async fn deleting_an_organisation_removes_its_members_and_invitations(app: TestApp) {
    let owner = app.user().await;
    let admin = app.user().await;
    let invited = app.user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    join(&app, &owner, &organisation, &admin, "admin").await;
    assert_eq!(
        invite(&app, &owner.token, &organisation, &invited.email, "member")
            .await
            .status(),
        202
    );
    let path = format!("/api/organisations/{organisation}");

    assert_error(app.delete(&path, &admin.token).await, 403, "forbidden").await;
    assert_eq!(app.delete(&path, &owner.token).await.status(), 204);
    for user in [&owner, &admin, &invited] {
        assert!(entries(&app, &user.token).await.is_empty());
        assert_error(app.get(&path, &user.token).await, 404, "not_found").await;
    }
    // The name is free again.
    create_organisation(&app, &admin.token, "team").await;
}

async fn scopes_and_csrf_guard_organisation_changes(app: TestApp) {
    let (owner, browser) = app.signed_in_user().await;
    let organisation = create_organisation(&app, &owner.token, "team").await;
    let read_only = app.token_for(&owner, "read").await;
    let resolve_only = app.token_for(&owner, "resolve").await;

    assert_eq!(app.get("/api/organisations", &read_only).await.status(), 200);
    assert_error(
        app.post_json("/api/organisations", &read_only, &json!({"name": "more"}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_error(app.get("/api/organisations", &resolve_only).await, 403, "forbidden").await;
    assert_error(
        app.client.get(app.url("/api/organisations")).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;

    // A session reads freely, and changes only with its CSRF token.
    let listed = browser.get("/api/organisations").await;
    assert_eq!(listed.status(), 200);
    let path = format!("/api/organisations/{organisation}");
    let refused = browser
        .client
        .put(browser.url(&path))
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_error(refused, 403, "forbidden").await;
    let csrf = browser.csrf().await;
    let renamed = browser
        .client
        .put(browser.url(&path))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
}

async fn only_instance_admins_create_organisations_when_the_instance_says_so(app: TestApp) {
    let (instance_admin, _) = app.register_first_admin().await;
    let user = app.user().await;
    let refused = app
        .post_json("/api/organisations", &user.token, &json!({"name": "mine"}))
        .await;
    assert_error(refused, 403, "forbidden").await;
    assert!(entries(&app, &user.token).await.is_empty());

    let csrf = instance_admin.csrf().await;
    let created = instance_admin
        .client
        .post(instance_admin.url("/api/organisations"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "the company"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["role"], "owner");
}

/// The id in a `/organisations/{id}?…` location.
fn organisation_in(location: &str) -> String {
    let rest = location
        .strip_prefix("/organisations/")
        .expect("an organisation's page");
    rest.split('?').next().unwrap().to_owned()
}

async fn every_page_action_works_with_javascript_off(app: TestApp) {
    let (owner, owner_browser) = app.signed_in_user().await;
    let (invitee, invitee_browser) = app.signed_in_user().await;
    let (outsider, outsider_browser) = app.signed_in_user().await;
    let declining = app.user().await;

    let page = owner_browser.page("/organisations").await;
    assert!(
        page.contains("href=\"/organisations\""),
        "the navigation links the page"
    );
    assert!(page.contains("id=\"create-organisation-form\""));
    let unprotected = owner_browser.post_form("/organisations", &[("name", "Acme")]).await;
    assert_eq!(unprotected.status(), 403, "a form post needs its CSRF token");
    let refused = post_form(&owner_browser, "/organisations", &[("name", "")]).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("must be 1 to 64 characters"));

    let created = post_form(&owner_browser, "/organisations", &[("name", "Acme")]).await;
    assert_eq!(created.status(), 303);
    let location = crate::helpers::location(&created);
    assert!(location.ends_with("?done=created"), "{location}");
    let id = organisation_in(&location);
    let detail = format!("/organisations/{id}");
    let page = owner_browser.page(&detail).await;
    assert!(
        page.contains(&owner.email) && page.contains("id=\"invite-form\""),
        "{page}"
    );
    let taken = post_form(&outsider_browser, "/organisations", &[("name", "ACME")]).await;
    assert_eq!(taken.status(), 409);

    // Invitations: the same answer for a known and an unknown e-mail.
    let mut answers = Vec::new();
    for (email, role) in [
        (invitee.email.as_str(), "admin"),
        ("nobody-yet@example.com", "member"),
        (declining.email.as_str(), "member"),
    ] {
        let invited = post_form(
            &owner_browser,
            &format!("{detail}/members"),
            &[("email", email), ("role", role)],
        )
        .await;
        answers.push((invited.status().as_u16(), crate::helpers::location(&invited)));
    }
    assert_eq!(answers[0], (303, format!("{detail}?done=invited")));
    assert!(answers.iter().all(|answer| *answer == answers[0]), "{answers:?}");
    let refused = post_form(
        &owner_browser,
        &format!("{detail}/members"),
        &[("email", "not-an-email"), ("role", "member")],
    )
    .await;
    assert_eq!(refused.status(), 422);

    // The invited person sees the invitation, is no member yet, and accepts.
    let invitations = invitee_browser.page("/organisations").await;
    assert!(
        invitations.contains(&format!("action=\"/organisations/{id}/invitation/accept\"")),
        "{invitations}"
    );
    assert_eq!(invitee_browser.get(&detail).await.status(), 404);
    let accepted = post_form(&invitee_browser, &format!("{detail}/invitation/accept"), &[]).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(crate::helpers::location(&accepted), format!("{detail}?done=joined"));
    let page = invitee_browser.page(&detail).await;
    assert!(page.contains("id=\"your-role\">admin<"), "{page}");

    // Somebody declines.
    let declining_browser = app.login(&declining.email, TEST_PASSWORD).await;
    let declined = post_form(&declining_browser, &format!("{detail}/invitation/decline"), &[]).await;
    assert_eq!(crate::helpers::location(&declined), "/organisations?done=declined");
    assert!(entries(&app, &declining.token).await.is_empty());

    // Roles, the last owner, withdrawing.
    let demoted = post_form(
        &owner_browser,
        &format!("{detail}/members/{}/role", invitee.id),
        &[("role", "member")],
    )
    .await;
    assert_eq!(demoted.status(), 303);
    let leaving = post_form(&owner_browser, &format!("{detail}/members/{}/remove", owner.id), &[]).await;
    assert_eq!(leaving.status(), 409);
    assert!(leaving.text().await.unwrap().contains("last owner"));
    let withdrawn = post_form(
        &owner_browser,
        &format!("{detail}/invitations/withdraw"),
        &[("email", "nobody-yet@example.com")],
    )
    .await;
    assert_eq!(withdrawn.status(), 303);
    let listed = members(&app, &owner.token, &id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|m| m["user_id"] == invitee.id.to_string() && m["role"] == "member")
    );

    // A member's writes are refused; their own sharing switch is theirs.
    let refused = post_form(&invitee_browser, &format!("{detail}/policy"), &[("name", "Mine")]).await;
    assert_eq!(refused.status(), 403);
    let shared = post_form(
        &invitee_browser,
        &format!("{detail}/membership"),
        &[("share_personal_configurations", "true")],
    )
    .await;
    assert_eq!(shared.status(), 303);
    let page = invitee_browser.page(&detail).await;
    assert!(page.contains("name=\"share_personal_configurations\" value=\"true\" checked"));

    // The owner renames and changes the policy.
    let saved = post_form(
        &owner_browser,
        &format!("{detail}/policy"),
        &[("name", "Acme Two"), ("allow_personal_configurations", "true")],
    )
    .await;
    assert_eq!(saved.status(), 303);
    let read: Value = app
        .get(&format!("/api/organisations/{id}"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["name"], "Acme Two");
    assert_eq!(read["policy"]["allow_personal_configurations"], true);

    // Outsiders get 404 everywhere.
    assert_eq!(outsider_browser.get(&detail).await.status(), 404);
    for (path, fields) in [
        (
            format!("{detail}/members"),
            vec![("email", "x@example.com"), ("role", "member")],
        ),
        (format!("{detail}/policy"), vec![("name", "taken over")]),
        (format!("{detail}/members/{}/remove", owner.id), vec![]),
        (format!("{detail}/delete"), vec![]),
        (format!("{detail}/invitation/accept"), vec![]),
    ] {
        assert_eq!(
            post_form(&outsider_browser, &path, &fields).await.status(),
            404,
            "{path}"
        );
    }
    assert!(entries(&app, &outsider.token).await.is_empty());

    // The member leaves; the owner deletes the organisation.
    let left = post_form(
        &invitee_browser,
        &format!("{detail}/members/{}/remove", invitee.id),
        &[],
    )
    .await;
    assert_eq!(crate::helpers::location(&left), "/organisations?done=left");
    let refused = post_form(&invitee_browser, &format!("{detail}/delete"), &[]).await;
    assert_eq!(refused.status(), 404);
    let deleted = post_form(&owner_browser, &format!("{detail}/delete"), &[]).await;
    assert_eq!(crate::helpers::location(&deleted), "/organisations?done=deleted");
    assert_eq!(owner_browser.get(&detail).await.status(), 404);
}

async fn the_admin_page_lists_every_organisation_and_can_delete_one(app: TestApp) {
    let (instance_admin, _) = app.register_first_admin().await;
    let (owner, member_browser) = app.signed_in_user().await;
    let member = app.user().await;
    let first = create_organisation(&app, &owner.token, "First <b>team</b>").await;
    let second = create_organisation(&app, &member.token, "Second team").await;
    join(&app, &owner, &first, &member, "member").await;

    let page = instance_admin.page("/admin").await;
    let row = |id: &str| {
        let start = page
            .find(&format!("id=\"organisation-{id}\""))
            .expect("a row per organisation");
        page[start..start + page[start..].find("</tr>").unwrap()].to_owned()
    };
    let first_row = row(&first);
    assert!(
        first_row.contains("First &#60;b&#62;team&#60;/b&#62;") && !first_row.contains("<b>"),
        "escaped: {first_row}"
    );
    assert!(first_row.contains(&owner.email), "{first_row}");
    assert!(first_row.contains("class=\"member-count\">2<"), "{first_row}");
    let second_row = row(&second);
    assert!(second_row.contains(&member.email) && second_row.contains("class=\"member-count\">1<"));

    let refused = post_form(&member_browser, &format!("/admin/organisations/{first}/delete"), &[]).await;
    assert_eq!(refused.status(), 403, "only admins");
    let deleted = post_form(&instance_admin, &format!("/admin/organisations/{first}/delete"), &[]).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(crate::helpers::location(&deleted), "/admin?done=organisation-deleted");
    for user in [&owner, &member] {
        assert_error(
            app.get(&format!("/api/organisations/{first}"), &user.token).await,
            404,
            "not_found",
        )
        .await;
    }
    assert_eq!(entries(&app, &member.token).await.len(), 1, "the other one stays");
    let missing = post_form(&instance_admin, &format!("/admin/organisations/{first}/delete"), &[]).await;
    assert_eq!(missing.status(), 404);
}
