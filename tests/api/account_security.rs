//! Hardening of accounts and tokens (issue 11): disabled users' tokens stay dead, resolve tokens
//! need a fresh password, registration is no oracle, and rate limits are exact under concurrency.

use diesel::prelude::*;
use lanyard::config::Settings;
use lanyard::db::schema::security_events;
use lanyard::db::{ConnectionManager, DbId};
use lanyard::services::accounts;
use r2d2::ManageConnection;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::binary::{COMMAND_LIMIT, Finished, Sandbox};
use crate::helpers::{
    Backend, Browser, TEST_PASSWORD, TestApp, TestDatabase, assert_error, csrf_from, egress_policy, free_port, location,
};
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    disabling_a_user_revokes_their_tokens_for_good,
    an_admins_password_reset_ends_the_users_sessions_and_revokes_their_tokens,
    the_command_line_revokes_and_is_named_as_the_actor,
    an_event_outlives_the_admin_who_caused_it_but_not_the_user_it_concerns,
    a_resolve_token_needs_the_current_password_over_the_api,
    wrong_passwords_for_a_resolve_token_count_against_the_login_limit,
    the_settings_form_asks_for_the_current_password_for_a_resolve_token,
    wrong_current_passwords_in_a_password_change_count_against_the_login_limit,
    a_taken_email_is_refused_exactly_like_an_unusable_one,
    every_registration_attempt_counts_against_the_address_limit,
);

on_both_backends_with!(ten_tests_per_minute_with_a_wide_pool;
    thirty_simultaneous_provider_tests_run_exactly_the_budget,
);

on_both_backends_with!(a_wide_pool;
    thirty_simultaneous_wrong_logins_are_judged_exactly_ten_times,
);

/// Enough connections and blocking threads that simultaneous requests really overlap.
fn a_wide_pool(settings: &mut Settings) {
    settings.pool_size = 16;
}

/// The documented budget of ten tests a minute, a loopback fake provider allowed, a wide pool.
fn ten_tests_per_minute_with_a_wide_pool(settings: &mut Settings) {
    a_wide_pool(settings);
    settings.egress = egress_policy("127.0.0.1/32", "allowlist");
    settings.test_rate_per_minute = 10;
}

/// A form post carrying the session's CSRF token, as the page's forms do.
async fn post_form(browser: &Browser, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = browser.csrf().await;
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", csrf.as_str()));
    browser.post_form(path, &fields).await
}

/// `POST /api/tokens` from the browser session, with its CSRF header.
async fn create_token(browser: &Browser, body: Value) -> reqwest::Response {
    let csrf = browser.csrf().await;
    browser
        .client
        .post(browser.url("/api/tokens"))
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The session's tokens as `GET /api/tokens` lists them, by name: whether each is revoked.
async fn revoked_by_name(browser: &Browser) -> Vec<(String, bool)> {
    let response = browser.get("/api/tokens").await;
    assert_eq!(response.status(), 200);
    let tokens: Vec<Value> = response.json().await.unwrap();
    let mut listed: Vec<(String, bool)> = tokens
        .iter()
        .map(|token| {
            (
                token["name"].as_str().unwrap().to_owned(),
                token["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    listed.sort();
    listed
}

/// The "Security events" section of a page.
fn security_events_section(page: &str) -> &str {
    let start = page
        .find("id=\"security-events-heading\"")
        .unwrap_or_else(|| panic!("no security events on the page: {page}"));
    let section = &page[start..];
    &section[..section.find("</section>").unwrap()]
}

/// A login attempt through the form, from a fresh visitor on the same address.
async fn login_attempt(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    visitor
        .post_form(
            "/login",
            &[("email", email), ("password", password), ("csrf_token", &csrf)],
        )
        .await
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a numeric Retry-After header")
}

async fn disabling_a_user_revokes_their_tokens_for_good(app: TestApp) {
    let (admin, admin_email) = app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let resolve_token = app.token_for(&member, "resolve").await;
    assert_eq!(app.get("/api/llm-configurations", &member.token).await.status(), 200);

    let disabled = post_form(&admin, &format!("/admin/users/{}/disable", member.id), &[]).await;
    assert_eq!(disabled.status(), 303);
    assert_eq!(location(&member_browser.get("/settings").await), "/login");
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(app.get("/api/resolve", &resolve_token).await, 401, "unauthorized").await;

    let enabled = post_form(&admin, &format!("/admin/users/{}/enable", member.id), &[]).await;
    assert_eq!(enabled.status(), 303);
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(app.get("/api/resolve", &resolve_token).await, 401, "unauthorized").await;
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
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
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

/// Runs `lanyard` against the app's database, as an operator would.
fn lanyard(app: &TestApp, sandbox: &Sandbox, args: &[&str], stdin: &str) -> Finished {
    let envs = [
        ("DATABASE_URL", app.test_database.url_string()),
        ("LANYARD_BIND", format!("127.0.0.1:{}", free_port())),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_MASTER_KEYS", app.master_keys.clone()),
    ];
    sandbox.start(&envs, args, stdin).finish(COMMAND_LIMIT)
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
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
    let browser = app.login(&member.email, new_password).await;
    assert_eq!(revoked_by_name(&browser).await, [("test".to_owned(), true)]);
    let own = browser.page("/settings").await;
    let own = security_events_section(&own);
    assert!(
        own.contains("Password reset") && own.contains("the command line"),
        "{own}"
    );

    lanyard(&app, &sandbox, &["user", "disable", "--email", &other.email], "").assert_success();
    assert_error(
        app.get("/api/llm-configurations", &other.token).await,
        401,
        "unauthorized",
    )
    .await;
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

async fn a_resolve_token_needs_the_current_password_over_the_api(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;

    let without = create_token(&browser, json!({"name": "agent", "scopes": ["resolve"]})).await;
    assert_error(without, 403, "reauthentication_required").await;
    let wrong = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["read", "resolve"], "current_password": "not my password"}),
    )
    .await;
    let body = assert_error(wrong, 403, "reauthentication_required").await;
    assert!(body["message"].as_str().unwrap().contains("current_password"), "{body}");
    assert_eq!(
        revoked_by_name(&browser).await,
        [("test".to_owned(), false)],
        "nothing created"
    );

    let right = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD}),
    )
    .await;
    assert_eq!(right.status(), 201);
    let created: Value = right.json().await.unwrap();
    assert_eq!(created["scopes"], json!(["resolve"]));
    let secret = created["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/resolve", secret).await.status(),
        404,
        "a working resolve token"
    );

    // Tokens that cannot reveal keys need no password.
    let read_write = create_token(&browser, json!({"name": "scripts", "scopes": ["read", "write"]})).await;
    assert_eq!(read_write.status(), 201);
}

async fn wrong_passwords_for_a_resolve_token_count_against_the_login_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    for attempt in 1..=10 {
        let wrong = create_token(
            &browser,
            json!({"name": "agent", "scopes": ["resolve"], "current_password": "a guess at it"}),
        )
        .await;
        assert_eq!(wrong.status(), 403, "attempt {attempt}");
    }
    let eleventh = create_token(
        &browser,
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD}),
    )
    .await;
    assert!((1..=300).contains(&retry_after(&eleventh)));
    assert_error(eleventh, 429, "rate_limited").await;
    let login = login_attempt(&app, &user.email, TEST_PASSWORD).await;
    assert_eq!(login.status(), 429, "the login shares the budget");
    assert!((1..=300).contains(&retry_after(&login)));
}

async fn the_settings_form_asks_for_the_current_password_for_a_resolve_token(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;

    let without = post_form(
        &browser,
        "/settings/tokens",
        &[("name", "agent"), ("scopes", "resolve"), ("current_password", "")],
    )
    .await;
    assert_eq!(without.status(), 422);
    let page = without.text().await.unwrap();
    assert!(page.contains("id=\"token-current-password-error\""), "{page}");
    assert!(!page.contains("id=\"new-token-value\""), "{page}");
    let wrong = post_form(
        &browser,
        "/settings/tokens",
        &[
            ("name", "agent"),
            ("scopes", "resolve"),
            ("current_password", "not it at all"),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("id=\"token-current-password-error\"")
    );

    let right = post_form(
        &browser,
        "/settings/tokens",
        &[
            ("name", "agent"),
            ("scopes", "resolve"),
            ("current_password", TEST_PASSWORD),
        ],
    )
    .await;
    assert_eq!(right.status(), 200);
    let page = right.text().await.unwrap();
    assert!(page.contains("id=\"new-token-value\">lny_"), "{page}");
    let read_only = post_form(&browser, "/settings/tokens", &[("name", "reader"), ("scopes", "read")]).await;
    assert_eq!(
        read_only.status(),
        200,
        "no password for a token that cannot reveal keys"
    );
}

async fn wrong_current_passwords_in_a_password_change_count_against_the_login_limit(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let change = |current: &'static str| {
        let browser = &browser;
        async move {
            post_form(
                browser,
                "/settings/password",
                &[("current_password", current), ("new_password", "a brand new password")],
            )
            .await
        }
    };
    for attempt in 1..=10 {
        assert_eq!(change("not my password").await.status(), 422, "attempt {attempt}");
    }
    let eleventh = change(TEST_PASSWORD).await;
    assert_eq!(eleventh.status(), 429);
    assert!((1..=300).contains(&retry_after(&eleventh)));
    assert_eq!(login_attempt(&app, &user.email, TEST_PASSWORD).await.status(), 429);
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

async fn open_registration(app: &TestApp) {
    app.with_db(|conn| accounts::set_registration_open(conn, true).unwrap())
        .await;
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

async fn every_registration_attempt_counts_against_the_address_limit(app: TestApp) {
    let existing = app.user().await;
    open_registration(&app).await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/register").await);
    for attempt in 1..=50 {
        let email = format!("visitor-{attempt}@example.com");
        let response = visitor
            .post_form(
                "/register",
                &[("email", email.as_str()), ("password", "short"), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(response.status(), 422, "attempt {attempt}");
    }
    let refused = visitor
        .post_form(
            "/register",
            &[
                ("email", "visitor-51@example.com"),
                ("password", TEST_PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status(), 429);
    assert!((1..=300).contains(&retry_after(&refused)));
    let created = app
        .with_db(|conn| {
            lanyard::db::users::find_by_email_key(conn, "visitor-51@example.com")
                .unwrap()
                .is_some()
        })
        .await;
    assert!(!created, "a refused registration creates nobody");
    let login = login_attempt(&app, &existing.email, TEST_PASSWORD).await;
    assert_eq!(login.status(), 429, "the same per-address limit as logins");
}

async fn thirty_simultaneous_provider_tests_run_exactly_the_budget(app: TestApp) {
    let user = app.user().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": []})))
        .mount(&server)
        .await;
    let body = json!({"provider": "openai", "model": "gpt-4o", "api_key": "sk-simultaneous-0123456789",
                      "base_url": format!("{}/v1", server.uri())});

    let requests: Vec<_> = (0..30)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/api/llm-configurations/test"))
                .bearer_auth(&user.token)
                .json(&body);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((30 - refused, refused), (10, 20), "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [200, 429].contains(status)),
        "{statuses:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 10);
}

async fn thirty_simultaneous_wrong_logins_are_judged_exactly_ten_times(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let requests: Vec<_> = (0..30)
        .map(|_| {
            let request = visitor.client.post(visitor.url("/login")).form(&[
                ("email", user.email.as_str()),
                ("password", "a wrong password"),
                ("csrf_token", csrf.as_str()),
            ]);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let judged = statuses.iter().filter(|status| **status == 422).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((judged, refused), (10, 20), "{statuses:?}");
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
