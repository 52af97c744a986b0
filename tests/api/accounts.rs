//! Accounts: registration (the setup link, open registration), passwords, disabling users and
//! the security events that record it all.

use diesel::prelude::*;
use lanyard::db::schema::{security_events, users};
use lanyard::db::{ConnectionManager, DbId};
use lanyard::services::accounts;
use r2d2::ManageConnection;

use crate::binary::{COMMAND_LIMIT, Sandbox};
use crate::helpers::command_line::lanyard;
use crate::helpers::forms::{open_registration, post_form, revoked_by_name};
use crate::helpers::{Backend, TEST_PASSWORD, TestApp, TestDatabase, csrf_from, location};
use crate::on_both_backends;

on_both_backends!(
    disabling_a_user_revokes_their_tokens_for_good,
    an_admins_password_reset_ends_the_users_sessions_and_revokes_their_tokens,
    the_command_line_revokes_and_is_named_as_the_actor,
    an_event_outlives_the_admin_who_caused_it_but_not_the_user_it_concerns,
    a_taken_email_is_refused_exactly_like_an_unusable_one,
    the_first_visitor_registers_through_the_setup_link_and_becomes_admin,
    without_the_setup_token_nobody_can_register_the_first_user,
    once_a_user_exists_nobody_else_can_register_even_with_the_old_link,
    a_password_change_ends_the_other_sessions_and_keeps_this_one,
    disabling_a_user_ends_their_sessions,
);

/// The "Security events" section of a page.
fn security_events_section(page: &str) -> &str {
    let start = page
        .find("id=\"security-events-heading\"")
        .unwrap_or_else(|| panic!("no security events on the page: {page}"));
    let section = &page[start..];
    &section[..section.find("</section>").unwrap()]
}

async fn disabling_a_user_revokes_their_tokens_for_good(app: TestApp) {
    let (admin, admin_email) = app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let resolve_token = app.token_for(&member, "resolve").await;
    assert_eq!(app.get("/api/llm-configurations", &member.token).await.status(), 200);

    let disabled = post_form(&admin, &format!("/admin/users/{}/disable", member.id), &[]).await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(location(&member_browser.get("/settings").await), "/login");
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    app.assert_unauthorized("/api/resolve", &resolve_token).await;

    let enabled = post_form(&admin, &format!("/admin/users/{}/enable", member.id), &[]).await;
    assert_eq!(enabled.status(), 303);
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    app.assert_unauthorized("/api/resolve", &resolve_token).await;
    let again = app.login(&member.email, TEST_PASSWORD).await;
    assert_eq!(
        revoked_by_name(&again).await,
        [("extra".to_owned(), true), ("test".to_owned(), true)],
        "every token is revoked, not merely refused while disabled"
    );

    let own = again.page("/settings").await;
    let own = security_events_section(&own);
    assert!(own.contains("Account disabled"), "{own}");
    assert!(own.contains("2 token(s) revoked"), "{own}");
    assert!(own.contains("Account enabled"), "{own}");
    assert!(own.contains(&admin_email), "who did it: {own}");
    let audit = admin.page("/admin").await;
    let audit = security_events_section(&audit);
    assert!(audit.contains(&member.email), "{audit}");
    assert!(audit.contains("Account disabled"), "{audit}");
    assert!(audit.contains(&admin_email), "{audit}");
}

async fn an_admins_password_reset_ends_the_users_sessions_and_revokes_their_tokens(app: TestApp) {
    let (admin, admin_email) = app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let old_cookie = member_browser.session_cookie().unwrap();
    let new_password = "set by the admin at last";

    let reset = post_form(
        &admin,
        &format!("/admin/users/{}/password", member.id),
        &[("new_password", new_password)],
    )
    .await;
    assert_eq!(reset.status(), 303);

    let replayed = app
        .client
        .get(app.url("/settings"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&replayed), "/login", "the old session cookie is rejected");
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    let again = app.login(&member.email, new_password).await;
    assert_eq!(revoked_by_name(&again).await, [("test".to_owned(), true)]);
    let own = again.page("/settings").await;
    let own = security_events_section(&own);
    assert!(own.contains("Password reset"), "{own}");
    assert!(own.contains("1 token(s) revoked"), "{own}");
    assert!(own.contains(&admin_email), "{own}");
    let audit = admin.page("/admin").await;
    let audit = security_events_section(&audit);
    assert!(
        audit.contains("Password reset") && audit.contains(&member.email),
        "{audit}"
    );
}

async fn the_command_line_revokes_and_is_named_as_the_actor(app: TestApp) {
    let (admin, _) = app.register_first_admin().await;
    let member = app.user().await;
    let other = app.user().await;
    let sandbox = Sandbox::new();
    let new_password = "chosen at the shell";

    lanyard(
        &app,
        &sandbox,
        &["user", "set-password", "--email", &member.email, "--password-stdin"],
        &format!("{new_password}\n"),
    )
    .assert_success();
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;
    let browser = app.login(&member.email, new_password).await;
    assert_eq!(revoked_by_name(&browser).await, [("test".to_owned(), true)]);
    let own = browser.page("/settings").await;
    let own = security_events_section(&own);
    assert!(
        own.contains("Password reset") && own.contains("the command line"),
        "{own}"
    );

    lanyard(&app, &sandbox, &["user", "disable", "--email", &other.email], "").assert_success();
    app.assert_unauthorized("/api/llm-configurations", &other.token).await;
    let audit = admin.page("/admin").await;
    let audit = security_events_section(&audit);
    assert!(
        audit.contains(&other.email) && audit.contains("Account disabled"),
        "{audit}"
    );

    // The operator holds the database: a resolve token from the shell needs no password.
    let created = lanyard(
        &app,
        &sandbox,
        &[
            "token",
            "create",
            "--email",
            &member.email,
            "--name",
            "agent",
            "--scopes",
            "resolve",
        ],
        "",
    );
    created.assert_success();
    assert!(created.stdout.trim().starts_with("lny_"), "{}", created.stdout);
}

async fn an_event_outlives_the_admin_who_caused_it_but_not_the_user_it_concerns(app: TestApp) {
    let (first_admin, _) = app.register_first_admin().await;
    let second = app.user().await;
    let role = post_form(
        &first_admin,
        &format!("/admin/users/{}/role", second.id),
        &[("role", "admin")],
    )
    .await;
    assert_eq!(role.status(), 303);
    let second_admin = app.login(&second.email, TEST_PASSWORD).await;
    let member = app.user().await;
    let disabled = post_form(&second_admin, &format!("/admin/users/{}/disable", member.id), &[]).await;
    assert_eq!(disabled.status(), 303);

    let deleted = post_form(&first_admin, &format!("/admin/users/{}/delete", second.id), &[]).await;
    assert_eq!(deleted.status(), 303);
    let audit = first_admin.page("/admin").await;
    let audit = security_events_section(&audit);
    assert!(
        audit.contains(&member.email) && audit.contains(&second.email),
        "the event still names its deleted actor: {audit}"
    );

    let member_id = DbId(member.id);
    let events_of_member = move |conn: &mut lanyard::db::DbConnection| {
        security_events::table
            .filter(security_events::user_id.eq(member_id))
            .count()
            .get_result::<i64>(conn)
            .unwrap()
    };
    assert_eq!(app.with_db(events_of_member).await, 1);
    let deleted = post_form(&first_admin, &format!("/admin/users/{}/delete", member.id), &[]).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(
        app.with_db(events_of_member).await,
        0,
        "deleting a user deletes their events"
    );
}

/// The error shown under the e-mail field of the registration form.
fn email_error(page: &str) -> &str {
    let marker = "id=\"email-error\" class=\"field-error\">";
    let start = page
        .find(marker)
        .map(|at| at + marker.len())
        .unwrap_or_else(|| panic!("no e-mail error on the page: {page}"));
    &page[start..start + page[start..].find("</small>").unwrap()]
}

/// A registration through the form; the status and the page.
async fn register(app: &TestApp, email: &str, password: &str) -> (u16, String) {
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/register").await);
    let response = visitor
        .post_form(
            "/register",
            &[("email", email), ("password", password), ("csrf_token", &csrf)],
        )
        .await;
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn a_taken_email_is_refused_exactly_like_an_unusable_one(app: TestApp) {
    let existing = app.user().await;
    open_registration(&app).await;

    for password in [TEST_PASSWORD, "short"] {
        let (taken_status, taken_page) = register(&app, &existing.email.to_uppercase(), password).await;
        let (unusable_status, unusable_page) = register(&app, "not-an-email", password).await;
        assert_eq!(taken_status, 422, "{taken_page}");
        assert_eq!(taken_status, unusable_status);
        assert_eq!(email_error(&taken_page), email_error(&unusable_page));
        assert_eq!(email_error(&taken_page).trim(), accounts::EMAIL_UNUSABLE);
        assert!(!taken_page.contains("already exists"), "{taken_page}");
        let strip = |page: &str, email: &str| page.replace(&csrf_from(page), "").replace(email, "");
        assert_eq!(
            strip(&taken_page, &existing.email.to_uppercase()),
            strip(&unusable_page, "not-an-email"),
            "the same page but for the echoed e-mail and the CSRF token"
        );
    }
    let (status, _) = register(&app, "newcomer@example.com", TEST_PASSWORD).await;
    assert_eq!(status, 303, "a free e-mail registers");
}

/// `lanyard copy-database` takes the security events along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_database_carries_the_security_events() {
    let Some(target) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let source = TestDatabase::create(Backend::Sqlite).expect("sqlite is always available");
    let sandbox = Sandbox::new();
    let envs = [
        ("DATABASE_URL", source.url_string()),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_MASTER_KEYS", crate::helpers::master_key_entry("moving")),
    ];
    let run = |args: &[&str], stdin: &str| sandbox.start(&envs, args, stdin).finish(COMMAND_LIMIT);
    for email in ["boss@example.com", "leaver@example.com"] {
        run(
            &["user", "create", "--email", email, "--password-stdin"],
            &format!("{TEST_PASSWORD}\n"),
        )
        .assert_success();
    }
    run(&["user", "disable", "--email", "leaver@example.com"], "").assert_success();

    let copied = run(&["copy-database", "--to", &target.url_string()], "");
    copied.assert_success();
    assert!(copied.has_line("security_events: 1"), "{}", copied.stdout);
    let mut conn = ConnectionManager::new(target.url()).connect().expect("the target");
    let actors: Vec<String> = security_events::table
        .select(security_events::actor)
        .load(&mut conn)
        .unwrap();
    assert_eq!(actors, ["the command line"]);
}

async fn user_count(app: &TestApp) -> i64 {
    app.with_db(|conn| users::table.count().get_result::<i64>(conn).unwrap())
        .await
}

async fn the_first_visitor_registers_through_the_setup_link_and_becomes_admin(app: TestApp) {
    let (browser, email) = app.register_first_admin().await;

    let page = browser.page("/llm-configurations").await;
    assert!(page.contains("Log out"), "signed in after registering: {page}");
    assert!(page.contains(&email));
    let settings = browser.page("/settings").await;
    assert!(
        settings.contains(&format!("Signed in as {email} (admin)")),
        "{settings}"
    );
    let role: String = app
        .with_db(|conn| users::table.select(users::role).first(conn).unwrap())
        .await;
    assert_eq!(role, "admin");
}

async fn without_the_setup_token_nobody_can_register_the_first_user(app: TestApp) {
    let setup_token = app
        .with_db(|conn| lanyard::services::accounts::issue_setup_token(conn).unwrap())
        .await
        .unwrap();
    let visitor = app.browser();

    let form = visitor.get("/register").await;
    assert_eq!(form.status(), 403);
    let form = form.text().await.unwrap();
    assert!(form.contains("setup link"), "{form}");
    assert!(!form.contains(&setup_token));
    let wrong = visitor.get("/register?setup_token=not-the-token").await;
    assert_eq!(wrong.status(), 403);

    let csrf = csrf_from(&visitor.page("/login").await);
    let without = visitor
        .post_form(
            "/register",
            &[
                ("email", "first@example.com"),
                ("password", TEST_PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(without.status(), 403);
    let with_wrong = visitor
        .post_form(
            "/register",
            &[
                ("email", "first@example.com"),
                ("password", TEST_PASSWORD),
                ("setup_token", "not-the-token"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(with_wrong.status(), 403);
    assert_eq!(user_count(&app).await, 0);
    assert_eq!(location(&visitor.get("/llm-configurations").await), "/login");

    // The real link still works afterwards: the failures did not consume it.
    let registered = visitor
        .register_with_setup_link(&setup_token, "first@example.com")
        .await;
    assert_eq!(registered.status(), 303);
    assert_eq!(user_count(&app).await, 1);
}

async fn once_a_user_exists_nobody_else_can_register_even_with_the_old_link(app: TestApp) {
    let setup_token = app
        .with_db(|conn| lanyard::services::accounts::issue_setup_token(conn).unwrap())
        .await
        .unwrap();
    let first = app.browser();
    let registered = first.register_with_setup_link(&setup_token, "first@example.com").await;
    assert_eq!(registered.status(), 303);

    let second = app.browser();
    assert_eq!(second.get("/register").await.status(), 403);
    let with_old_link = second.get(&format!("/register?setup_token={setup_token}")).await;
    assert_eq!(with_old_link.status(), 403);
    let csrf = csrf_from(&with_old_link.text().await.unwrap());
    let posted = second
        .post_form(
            "/register",
            &[
                ("email", "second@example.com"),
                ("password", TEST_PASSWORD),
                ("setup_token", &setup_token),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(posted.status(), 403);
    assert_eq!(user_count(&app).await, 1);
    assert_eq!(location(&second.get("/llm-configurations").await), "/login");
}

async fn a_password_change_ends_the_other_sessions_and_keeps_this_one(app: TestApp) {
    let (user, here) = app.signed_in_user().await;
    let elsewhere = app.login(&user.email, TEST_PASSWORD).await;
    assert!(elsewhere.page("/llm-configurations").await.contains("Log out"));
    let here_before = here.session_cookie().unwrap();
    let csrf = here.csrf().await;

    let wrong_current = here
        .post_form(
            "/settings/password",
            &[
                ("current_password", "not my password"),
                ("new_password", "a brand new password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong_current.status(), 422);
    let wrong_current = wrong_current.text().await.unwrap();
    assert!(
        wrong_current.contains(r#"id="current_password-error""#),
        "{wrong_current}"
    );
    assert!(
        elsewhere.page("/llm-configurations").await.contains("Log out"),
        "nothing ended on a failed change"
    );

    let changed = here
        .post_form(
            "/settings/password",
            &[
                ("current_password", TEST_PASSWORD),
                ("new_password", "a brand new password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(changed.status(), 303);
    let settings = here.page(&location(&changed)).await;
    assert!(settings.contains("Your password was changed"), "{settings}");
    assert!(here.page("/llm-configurations").await.contains("Log out"));

    assert_eq!(location(&elsewhere.get("/llm-configurations").await), "/login");
    let htmx = elsewhere.get_htmx("/llm-configurations").await;
    assert_eq!(htmx.headers()["hx-redirect"], "/login");
    let replayed = app
        .client
        .get(app.url("/settings"))
        .header("Cookie", format!("lanyard_session={here_before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&replayed),
        "/login",
        "the pre-change id of this session is ended too"
    );

    // Only the new password logs in now.
    let (_, old) = app.attempt_login(&user.email, TEST_PASSWORD).await;
    assert_eq!(old.status(), 422);
    app.login(&user.email, "a brand new password").await;
}

async fn disabling_a_user_ends_their_sessions(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    assert!(browser.page("/llm-configurations").await.contains("Log out"));
    app.disable_in_database(&user).await;

    assert_eq!(location(&browser.get("/llm-configurations").await), "/login");
    assert_eq!(browser.get("/api/llm-configurations").await.status(), 401);
    let (_, login) = app.attempt_login(&user.email, TEST_PASSWORD).await;
    assert_eq!(login.status(), 422, "a disabled account cannot log in");
}
