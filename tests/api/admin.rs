//! The admin page: only admins reach it; demoting, disabling and deleting users, the last-admin
//! rule, and opening registration.

use diesel::prelude::*;
use lanyard::db::{schema, users};
use lanyard::domain::Email;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::forms::post_form;
use crate::helpers::{TEST_PASSWORD, TestApp, assert_error, csrf_from, distinctive_key, location};
use crate::on_both_backends;

on_both_backends!(
    only_admins_reach_the_admin_page_and_its_actions,
    disabling_a_user_ends_their_open_session_and_their_tokens_at_once,
    the_last_admin_cannot_be_demoted_disabled_or_deleted,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    deleting_a_user_deletes_their_configurations,
    registration_is_possible_only_while_an_admin_opens_it,
);

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    let key = Email::parse(email).expect("a valid email").key();
    app.with_db(move |conn| users::find_by_email_key(conn, &key).expect("a query"))
        .await
        .expect("the user exists")
        .id
        .0
}

async fn user_row(app: &TestApp, id: Uuid) -> Option<users::UserRow> {
    app.with_db(move |conn| users::find_by_id(conn, lanyard::db::DbId(id)).expect("a query"))
        .await
}

/// The "keys it protects" cell of a master key's row on the admin page.
fn key_count(page: &str, key_id: &str) -> Option<i64> {
    let row = &page[page.find(&format!("<tr data-key-id=\"{key_id}\""))?..];
    let row = &row[..row.find("</tr>")?];
    let marker = "class=\"key-count\">";
    let cell = &row[row.find(marker)? + marker.len()..];
    cell[..cell.find('<')?].trim().parse().ok()
}

async fn only_admins_reach_the_admin_page_and_its_actions(app: TestApp) {
    let (admin, admin_email) = app.register_first_admin().await;
    let admin_id = user_id(&app, &admin_email).await;
    let (member, member_browser) = app.signed_in_user().await;
    let other = app.user().await;
    let mut keys = Vec::new();
    for (token, name) in [(&member.token, "one"), (&member.token, "two"), (&other.token, "three")] {
        let key = distinctive_key("sk-proj-");
        app.create_openai(token, name, &key).await;
        keys.push(key);
    }

    assert_eq!(member_browser.get("/admin").await.status(), 403);
    let member_id = member.id.to_string();
    for (path, fields) in [
        (format!("/admin/users/{admin_id}/disable"), vec![]),
        (format!("/admin/users/{admin_id}/delete"), vec![]),
        (format!("/admin/users/{admin_id}/role"), vec![("role", "member")]),
        (format!("/admin/users/{member_id}/role"), vec![("role", "admin")]),
        (
            format!("/admin/users/{admin_id}/password"),
            vec![("new_password", "taken over at last")],
        ),
        ("/admin/registration".to_owned(), vec![("open", "true")]),
        (
            "/admin/users".to_owned(),
            vec![
                ("email", "intruder@example.com"),
                ("password", "an intruder's password"),
            ],
        ),
    ] {
        let response = post_form(&member_browser, &path, &fields).await;
        assert_eq!(response.status(), 403, "POST {path} by a member");
    }
    let admin_row = user_row(&app, admin_id).await.expect("the admin exists");
    assert_eq!(admin_row.role.as_str(), "admin");
    assert!(!admin_row.is_disabled);
    assert_eq!(
        user_row(&app, member.id)
            .await
            .expect("the member exists")
            .role
            .as_str(),
        "member"
    );
    assert_eq!(app.with_db(|conn| users::count(conn).unwrap()).await, 3);
    assert_eq!(
        app.browser().get("/register").await.status(),
        403,
        "registration stays closed"
    );
    assert_eq!(location(&app.browser().get("/admin").await), "/login");

    let page = admin.page("/admin").await;
    for email in [&admin_email, &member.email, &other.email] {
        assert!(page.contains(email.as_str()), "the admin sees {email}");
    }
    assert_eq!(key_count(&page, "test-key"), Some(3), "keys per master key id");
    for key in &keys {
        assert!(!page.contains(key.as_str()), "admins never see users' keys");
    }
}

async fn disabling_a_user_ends_their_open_session_and_their_tokens_at_once(app: TestApp) {
    let (admin, _) = app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let resolve_token = app.token_for(&member, "resolve").await;
    app.create_openai(&member.token, "mine", &distinctive_key("sk-")).await;
    assert_eq!(member_browser.get("/llm-configurations").await.status(), 200);
    assert_eq!(app.get("/api/llm-configurations", &member.token).await.status(), 200);
    assert_eq!(app.get("/api/resolve", &resolve_token).await.status(), 200);

    let disabled = post_form(&admin, &format!("/admin/users/{}/disable", member.id), &[]).await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(location(&disabled), "/admin?done=disabled");

    let page = member_browser.get("/llm-configurations").await;
    assert_eq!(page.status(), 303, "the open session ended");
    assert_eq!(location(&page), "/login");
    let by_cookie = member_browser.get("/api/llm-configurations").await;
    assert_error(by_cookie, 401, "unauthorized").await;
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    app.assert_unauthorized("/api/resolve", &resolve_token).await;
    let (_, refused) = app.attempt_login(&member.email, TEST_PASSWORD).await;
    assert_eq!(refused.status(), 422, "a disabled user cannot log in");
    assert!(user_row(&app, member.id).await.expect("still stored").is_disabled);
}

async fn the_last_admin_cannot_be_demoted_disabled_or_deleted(app: TestApp) {
    let (admin, admin_email) = app.register_first_admin().await;
    let admin_id = user_id(&app, &admin_email).await;
    let (member, member_browser) = app.signed_in_user().await;

    let demoted = post_form(&admin, &format!("/admin/users/{admin_id}/role"), &[("role", "member")]).await;
    assert_eq!(demoted.status(), 409);
    assert!(
        demoted.text().await.unwrap().contains("last active admin"),
        "the page says why"
    );
    for action in ["disable", "delete"] {
        let response = post_form(&admin, &format!("/admin/users/{admin_id}/{action}"), &[]).await;
        assert_eq!(response.status(), 409, "{action} the last admin");
    }
    let row = user_row(&app, admin_id).await.expect("the admin still exists");
    assert_eq!(row.role.as_str(), "admin");
    assert!(!row.is_disabled);
    assert_eq!(admin.get("/admin").await.status(), 200, "still an admin");

    // With a second admin, either may be made a member again.
    let promoted = post_form(
        &admin,
        &format!("/admin/users/{}/role", member.id),
        &[("role", "admin")],
    )
    .await;
    assert_eq!(promoted.status(), 303);
    assert_eq!(
        member_browser.get("/admin").await.status(),
        200,
        "the role applies at once"
    );
    let demoted = post_form(
        &admin,
        &format!("/admin/users/{}/role", member.id),
        &[("role", "member")],
    )
    .await;
    assert_eq!(demoted.status(), 303);
    assert_eq!(member_browser.get("/admin").await.status(), 403);
}

/// Each of two admins demotes the other at the same moment, twenty times over: at least one
/// admin must remain every time (on PostgreSQL the check locks the admins' rows).
async fn two_admins_demoting_each_other_at_once_leave_one_admin(app: TestApp) {
    let (first, first_email) = app.register_first_admin().await;
    let first_id = user_id(&app, &first_email).await;
    let (second, second_browser) = app.signed_in_user().await;
    for round in 0..20 {
        for id in [first_id, second.id] {
            let promoted = post_form(&first, &format!("/admin/users/{id}/role"), &[("role", "admin")]).await;
            let promoted = if promoted.status() == 403 {
                // The first admin was the one demoted last round: the second promotes back.
                post_form(
                    &second_browser,
                    &format!("/admin/users/{id}/role"),
                    &[("role", "admin")],
                )
                .await
            } else {
                promoted
            };
            assert_eq!(promoted.status(), 303, "round {round}: promoting {id}");
        }
        let (first_csrf, second_csrf) = (first.csrf().await, second_browser.csrf().await);
        let demote_second = format!("/admin/users/{}/role", second.id);
        let demote_first = format!("/admin/users/{first_id}/role");
        let first_fields = [("role", "member"), ("csrf_token", first_csrf.as_str())];
        let second_fields = [("role", "member"), ("csrf_token", second_csrf.as_str())];
        let (a, b) = tokio::join!(
            first.post_form(&demote_second, &first_fields),
            second_browser.post_form(&demote_first, &second_fields),
        );
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert!(
            statuses.contains(&303) && statuses.iter().all(|status| [303, 403, 409].contains(status)),
            "round {round}: {statuses:?}"
        );
        let mut admins = 0;
        for id in [first_id, second.id] {
            let row = user_row(&app, id).await.expect("both users exist");
            admins += usize::from(row.role.as_str() == "admin" && !row.is_disabled);
        }
        assert_eq!(admins, 1, "round {round}: exactly one demotion may win ({statuses:?})");
    }
}

async fn deleting_a_user_deletes_their_configurations(app: TestApp) {
    let (admin, _) = app.register_first_admin().await;
    let member = app.user().await;
    let kept = app.user().await;
    let first = app.create_openai(&member.token, "first", &distinctive_key("sk-")).await;
    app.create_openai(&member.token, "second", &distinctive_key("sk-"))
        .await;
    let pinned = app
        .put_json(
            "/api/conversations/c-1/llm-configuration",
            &member.token,
            &json!({"configuration_id": first.id}),
        )
        .await;
    assert_eq!(pinned.status(), 200);
    app.create_openai(&kept.token, "kept", &distinctive_key("sk-")).await;

    let deleted = post_form(&admin, &format!("/admin/users/{}/delete", member.id), &[]).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(location(&deleted), "/admin?done=deleted");

    assert!(user_row(&app, member.id).await.is_none());
    let member_id = lanyard::db::DbId(member.id);
    let (configurations, overrides) = app
        .with_db(move |conn| {
            let configurations: i64 = schema::llm_configurations::table
                .filter(schema::llm_configurations::user_id.eq(member_id))
                .count()
                .get_result(conn)
                .unwrap();
            let overrides: i64 = schema::conversation_overrides::table
                .filter(schema::conversation_overrides::user_id.eq(member_id))
                .count()
                .get_result(conn)
                .unwrap();
            (configurations, overrides)
        })
        .await;
    assert_eq!(
        (configurations, overrides),
        (0, 0),
        "their configurations went with them"
    );
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    assert_eq!(
        app.configurations(&kept.token).await.len(),
        1,
        "nobody else's configurations"
    );
    assert!(!admin.page("/admin").await.contains(&member.email));
}

async fn registration_is_possible_only_while_an_admin_opens_it(app: TestApp) {
    let (admin, _) = app.register_first_admin().await;

    /// A visitor's attempt to register: the form's status, then the submission's.
    async fn attempt(app: &TestApp, email: &str) -> (u16, reqwest::Response) {
        let visitor = app.browser();
        let form = visitor.get("/register").await;
        let status = form.status().as_u16();
        let csrf = csrf_from(&form.text().await.unwrap());
        let submitted = visitor
            .post_form(
                "/register",
                &[
                    ("email", email),
                    ("password", TEST_PASSWORD),
                    ("csrf_token", csrf.as_str()),
                ],
            )
            .await;
        (status, submitted)
    }

    let (form, submitted) = attempt(&app, "early@example.com").await;
    assert_eq!((form, submitted.status().as_u16()), (403, 403), "closed by default");

    let opened = post_form(&admin, "/admin/registration", &[("open", "true")]).await;
    assert_eq!(opened.status(), 303);
    assert!(
        admin
            .page("/admin")
            .await
            .contains("<strong id=\"registration-state\">open</strong>")
    );
    let (form, submitted) = attempt(&app, "welcome@example.com").await;
    assert_eq!(form, 200);
    assert_eq!(submitted.status(), 303);
    assert_eq!(location(&submitted), "/llm-configurations");
    let id = user_id(&app, "welcome@example.com").await;
    assert_eq!(user_row(&app, id).await.unwrap().role.as_str(), "member");

    let closed = post_form(&admin, "/admin/registration", &[("open", "false")]).await;
    assert_eq!(closed.status(), 303);
    let (form, submitted) = attempt(&app, "late@example.com").await;
    assert_eq!((form, submitted.status().as_u16()), (403, 403), "closed again");
    assert_eq!(app.with_db(|conn| users::count(conn).unwrap()).await, 2);
}
