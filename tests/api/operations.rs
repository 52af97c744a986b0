//! Operating Lanyard: a passphrase-derived master key and its rotation to a new key, the admin
//! page, moving the embedded database to PostgreSQL, database outages, and several instances on
//! one database. Start-up and the command line are driven through the real binary; every child
//! process is killed by its handle when the test ends, however it ends, and a private
//! PostgreSQL server is stopped and removed the same way.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use lanyard::db::{ConnectionManager, DatabaseUrl, llm_configurations, schema, users};
use lanyard::domain::Email;
use lanyard::http::session::COOKIE_NAME;
use r2d2::ManageConnection;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::binary::{Server, Site, master_keys, master_passphrase};
use crate::helpers::{
    Backend, Browser, POSTGRES_URL_VAR, TEST_PASSWORD, TestApp, TestDatabase, assert_error, csrf_from, distinctive_key,
    free_port, location, master_key_entry,
};

/// The database going away must give 503 within 5 s; this allows for a loaded test machine.
const OUTAGE_LIMIT: Duration = Duration::from_secs(7);
/// Service resumes by itself within this once the database is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

crate::database_on_both_backends!(a_passphrase_key_survives_restarts_and_rotates_to_a_new_master_key);

crate::on_both_backends!(
    only_admins_reach_the_admin_page_and_its_actions,
    disabling_a_user_ends_their_open_session_and_their_tokens_at_once,
    the_last_admin_cannot_be_demoted_disabled_or_deleted,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    deleting_a_user_deletes_their_configurations,
    registration_is_possible_only_while_an_admin_opens_it,
    passwords_and_accounts_are_recoverable_from_the_shell,
);

// ---------------------------------------------------------------------------------------------
// Driving the binary.

/// A stored key, and the conversation pinned to its configuration.
struct Pinned {
    conversation: String,
    id: String,
    key: String,
}

/// Five configurations of five providers, each pinned to a conversation of its own; the first
/// is the default.
async fn fill_vault(server: &Server, write_token: &str) -> Vec<Pinned> {
    let mut vault = Vec::new();
    for (index, (provider, model, prefix)) in [
        ("openai", "gpt-4o", "sk-proj-"),
        ("anthropic", "claude-sonnet-4", "sk-ant-"),
        ("groq", "llama-3.3-70b", "gsk_"),
        ("openrouter", "openai/gpt-4o", "sk-or-v1-"),
        ("xai", "grok-2", "xai-"),
    ]
    .into_iter()
    .enumerate()
    {
        let key = distinctive_key(prefix);
        let created = server
            .create(
                write_token,
                json!({"name": format!("{provider} key"), "provider": provider, "model": model, "api_key": key}),
            )
            .await;
        let id = created["id"].as_str().expect("an id").to_owned();
        let conversation = format!("conversation-{index}");
        let pinned = server
            .send_json(
                reqwest::Method::PUT,
                &format!("/api/conversations/{conversation}/llm-configuration"),
                write_token,
                &json!({"configuration_id": id}),
            )
            .await;
        assert_eq!(pinned.status(), 200);
        vault.push(Pinned { conversation, id, key });
    }
    vault
}

/// Every stored key resolves, byte for byte: the default, and each configuration through the
/// conversation pinned to it.
async fn assert_every_key_resolves(server: &Server, resolve_token: &str, vault: &[Pinned]) {
    let response = server.get("/api/resolve", resolve_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a resolution");
    assert_eq!(body["source"], "default");
    assert_eq!(body["configuration"]["id"], vault[0].id.as_str());
    assert_eq!(body["configuration"]["api_key"], vault[0].key.as_str());
    for pinned in vault {
        let response = server
            .get(
                &format!("/api/resolve?conversation_id={}", pinned.conversation),
                resolve_token,
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("a resolution");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["source"], "override");
        assert_eq!(body["configuration"]["id"], pinned.id.as_str());
        assert_eq!(
            body["configuration"]["api_key"].as_str(),
            Some(pinned.key.as_str()),
            "the key of {} resolves unchanged",
            pinned.id
        );
    }
}

/// Stored API keys per master key id, read straight from the database.
fn keys_by_master_key(url: DatabaseUrl) -> Vec<(String, i64)> {
    let mut conn = ConnectionManager::new(url)
        .connect()
        .expect("the test connects to its database");
    llm_configurations::count_keys_by_key_id(&mut conn).expect("the key counts")
}

// ---------------------------------------------------------------------------------------------
// Keys at rest: a passphrase-derived key, and rotating away from it.

async fn a_passphrase_key_survives_restarts_and_rotates_to_a_new_master_key(database: TestDatabase) {
    let site = Site::new(database.url_string());
    let passphrase = "correct horse battery staple, twice over";
    let with_passphrase = master_passphrase(passphrase);
    let (write, resolve) = site.user_with_tokens(&with_passphrase, "keeper@example.com");
    let server = site.serve(&with_passphrase).await;
    let vault = fill_vault(&server, &write).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    // The same passphrase after a restart derives the same key.
    let server = site.serve(&with_passphrase).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    let wrong = site.serve_refused(&master_passphrase("a different passphrase, just as long"));
    assert!(
        wrong.stderr.contains("`passphrase`") && wrong.stderr.contains("does not match"),
        "the refusal names the mismatched key:\n{}",
        wrong.stderr
    );

    // The passphrase as a key entry, for rotating away from it.
    let derived = site.run(&[], &["keygen", "--from-passphrase"], &format!("{passphrase}\n"));
    derived.assert_success();
    assert_eq!(derived.stdout.lines().count(), 1, "{:?}", derived.stdout);
    let old_entry = derived.stdout.trim_end().to_owned();
    assert!(old_entry.starts_with("passphrase:"), "{old_entry:?}");
    assert!(!old_entry.contains(passphrase));
    let new_entry = master_key_entry("new");

    let only_new = master_keys(&new_entry);
    let refused = site.serve_refused(&only_new);
    assert!(
        refused.stderr.contains("`passphrase`") && refused.stderr.contains("not configured"),
        "the refusal names the old key id:\n{}",
        refused.stderr
    );

    let new_then_old = master_keys(&format!("{new_entry},{old_entry}"));
    let server = site.serve(&new_then_old).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    // Rotation runs while the server keeps serving.
    let first = site.run(&new_then_old, &["rotate-keys"], "");
    first.assert_success();
    assert!(
        first.stdout.contains("Re-encrypted 5 key(s)") && first.stdout.contains("`new`"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("No key remains"), "{}", first.stdout);
    assert_eq!(keys_by_master_key(database.url()), vec![("new".to_owned(), 5)]);
    let second = site.run(&new_then_old, &["rotate-keys"], "");
    second.assert_success();
    assert!(second.stdout.contains("Re-encrypted 0 key(s)"), "{}", second.stdout);
    assert!(second.stdout.contains("No key remains"), "{}", second.stdout);
    assert!(!second.stdout.contains("remain under"), "{}", second.stdout);
    assert_every_key_resolves(&server, &resolve, &vault).await;
    server.stop();

    let server = site.serve(&only_new).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    let log = server.stop();
    assert!(!log.contains(passphrase), "the log must not carry the passphrase");
}

// ---------------------------------------------------------------------------------------------
// The admin page and accounts.

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

/// A form post carrying the session's CSRF token, as the page's forms do.
async fn post_form(browser: &Browser, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = browser.csrf().await;
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", csrf.as_str()));
    browser.post_form(path, &fields).await
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
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(app.get("/api/resolve", &resolve_token).await, 401, "unauthorized").await;
    let login = app.browser();
    let form = login.page("/login").await;
    let refused = login
        .post_form(
            "/login",
            &[
                ("email", member.email.as_str()),
                ("password", TEST_PASSWORD),
                ("csrf_token", csrf_from(&form).as_str()),
            ],
        )
        .await;
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
            &json!({"configuration_id": first["id"]}),
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
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.list(&kept.token).await.len(), 1, "nobody else's configurations");
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

async fn passwords_and_accounts_are_recoverable_from_the_shell(app: TestApp) {
    app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let site = Site::new(app.test_database.url_string());
    let env = master_keys(&app.master_keys);
    let new_password = "a brand new passphrase";

    let changed = site.run(
        &env,
        &["user", "set-password", "--email", &member.email, "--password-stdin"],
        &format!("{new_password}\n"),
    );
    changed.assert_success();
    assert!(changed.stderr.contains(&member.email), "{}", changed.stderr);
    assert!(!changed.stderr.contains(new_password) && !changed.stdout.contains(new_password));
    assert_eq!(
        location(&member_browser.get("/llm-configurations").await),
        "/login",
        "a new password ends the user's sessions"
    );
    let old = app.browser();
    let form = old.page("/login").await;
    let refused = old
        .post_form(
            "/login",
            &[
                ("email", member.email.as_str()),
                ("password", TEST_PASSWORD),
                ("csrf_token", csrf_from(&form).as_str()),
            ],
        )
        .await;
    assert_eq!(refused.status(), 422, "the old password no longer works");
    let fresh = app.login(&member.email, new_password).await;
    assert_eq!(fresh.get("/llm-configurations").await.status(), 200);

    let disabled = site.run(&env, &["user", "disable", "--email", &member.email], "");
    disabled.assert_success();
    assert!(disabled.stderr.contains(&member.email), "{}", disabled.stderr);
    assert_eq!(location(&fresh.get("/llm-configurations").await), "/login");
    assert_error(
        app.get("/api/llm-configurations", &member.token).await,
        401,
        "unauthorized",
    )
    .await;

    let unknown = site.run(&env, &["user", "disable", "--email", "nobody@example.com"], "");
    unknown.assert_failure();
    assert!(unknown.stderr.contains("nobody@example.com"), "{}", unknown.stderr);
}

// ---------------------------------------------------------------------------------------------
// From the embedded database to PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_database_moves_a_sqlite_vault_into_an_empty_postgres_database() {
    let Some(target) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let source = TestDatabase::create(Backend::Sqlite).expect("sqlite is always available");
    let site = Site::new(source.url_string());
    let env = master_keys(&master_key_entry("moving"));
    let email = "mover@example.com";
    let (write, resolve) = site.user_with_tokens(&env, email);
    let server = site.serve(&env).await;
    let vault = fill_vault(&server, &write).await;
    assert_every_key_resolves(&server, &resolve, &vault).await;
    let listed = server.list(&write).await;
    server.stop();

    let copied = site.run(&env, &["copy-database", "--to", &target.url_string()], "");
    copied.assert_success();
    assert!(copied.stdout.contains("verified the counts"), "{}", copied.stdout);
    for line in [
        "users: 1",
        "api_tokens: 2",
        "llm_configurations: 5",
        "conversation_overrides: 5",
        "key_reveals: 6",
        "master_key_canaries: 1",
    ] {
        assert!(copied.has_line(line), "`{line}` in:\n{}", copied.stdout);
    }

    let moved = Site::new(target.url_string());
    let server = moved.serve(&env).await;
    assert_eq!(
        server.list(&write).await,
        listed,
        "the same configurations, field for field"
    );
    assert_every_key_resolves(&server, &resolve, &vault).await;
    let cookie = server.login(email, TEST_PASSWORD).await;
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200
    );
    server.stop();

    let again = site.run(&env, &["copy-database", "--to", &target.url_string()], "");
    again.assert_failure();
    assert!(again.stderr.contains("empty"), "{}", again.stderr);
    let mut conn = ConnectionManager::new(target.url()).connect().expect("the target");
    assert_eq!(users::count(&mut conn).unwrap(), 1, "a refused copy changes nothing");
    assert_eq!(
        llm_configurations::count_keys_by_key_id(&mut conn).unwrap(),
        vec![("moving".to_owned(), 5)]
    );
}

// ---------------------------------------------------------------------------------------------
// Reliability, with a PostgreSQL server of the test's own that it can stop and start.

/// A PostgreSQL server in a temporary folder on a free loopback port, with trust
/// authentication; stopped and removed when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
    // Dropped last, after the server has been stopped.
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// An initialised server, not yet started; `None` (with a notice) when Debian's PostgreSQL
    /// binaries are missing, unless the PostgreSQL suite is required (CI), where that fails.
    fn create() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
            .max_by_key(|bin| {
                bin.parent()
                    .and_then(|version| version.file_name())
                    .and_then(|name| name.to_str())
                    .and_then(|name| name.parse::<u32>().ok())
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var(POSTGRES_URL_VAR).is_err(),
                "{POSTGRES_URL_VAR} is set, but /usr/lib/postgresql/*/bin/initdb and pg_ctl are missing"
            );
            eprintln!("notice: PostgreSQL's initdb and pg_ctl are missing; skipping an outage test");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary folder");
        // PostgreSQL refuses to run as root: the server runs as `postgres`, in a folder it owns.
        let as_postgres_user = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").map(|meta| meta.uid()).unwrap_or(1) == 0
        };
        if as_postgres_user {
            let chowned = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(chowned.success(), "chown the private PostgreSQL folder");
        }
        let postgres = PrivatePostgres {
            bin,
            port: free_port(),
            as_postgres_user,
            dir,
        };
        let data = postgres.data();
        postgres.pg_tool(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        Some(postgres)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }

    /// Runs a PostgreSQL tool to completion; panics with its output if it fails.
    fn pg_tool(&self, tool: &str, args: &[&str]) {
        let output = self.command(tool, args).output().expect("the PostgreSQL tool runs");
        assert!(
            output.status.success(),
            "{tool} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.pg_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would.
    fn stop(&self) {
        self.pg_tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        // Not running is fine: nothing to stop.
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Sends requests until one answers `status`; panics after `limit`.
async fn until_status(limit: Duration, status: u16, send: impl AsyncFn() -> reqwest::Response) {
    let started = Instant::now();
    loop {
        let last = send().await.status().as_u16();
        if last == status {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "no {status} within {limit:?} (last answer {last})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A response that must arrive within `limit`.
async fn within(limit: Duration, what: &str, response: impl Future<Output = reqwest::Response>) -> reqwest::Response {
    tokio::time::timeout(limit, response)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_quickly_and_service_resumes_without_a_restart() {
    let Some(postgres) = PrivatePostgres::create() else {
        return;
    };
    postgres.start();
    let site = Site::new(postgres.url());
    let env = master_keys(&master_key_entry("outage"));
    let email = "steady@example.com";
    let (write, _) = site.user_with_tokens(&env, email);
    let server = site.serve(&env).await;
    server
        .create(
            &write,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    let cookie = server.login(email, TEST_PASSWORD).await;
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200
    );

    postgres.stop();
    let (api, ready, page, health) = tokio::join!(
        within(OUTAGE_LIMIT, "the API", server.get("/api/llm-configurations", &write)),
        within(OUTAGE_LIMIT, "/readyz", server.get_anonymous("/readyz")),
        within(
            OUTAGE_LIMIT,
            "a page",
            server.get_with_cookie("/llm-configurations", &cookie)
        ),
        within(Duration::from_secs(2), "/healthz", server.get_anonymous("/healthz")),
    );
    assert_error(api, 503, "unavailable").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(page.status(), 503);
    assert_eq!(health.status(), 200, "the process itself is fine");

    postgres.start();
    until_status(RECOVERY_LIMIT, 200, async || {
        server.get("/api/llm-configurations", &write).await
    })
    .await;
    assert_eq!(server.list(&write).await.len(), 1);
    assert_eq!(server.get_anonymous("/readyz").await.status(), 200);
    assert_eq!(
        server.get_with_cookie("/llm-configurations", &cookie).await.status(),
        200,
        "the session outlived the outage"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanyard_started_while_the_database_is_down_becomes_ready_when_it_answers() {
    let Some(postgres) = PrivatePostgres::create() else {
        return;
    };
    let site = Site::new(postgres.url());
    let env = master_keys(&master_key_entry("patient"));
    let server = site.serve(&env).await;
    assert_eq!(server.get_anonymous("/readyz").await.status(), 503);
    assert_error(
        server.get("/api/llm-configurations", "lny_not-a-real-token").await,
        503,
        "unavailable",
    )
    .await;

    postgres.start();
    until_status(RECOVERY_LIMIT, 200, async || server.get_anonymous("/readyz").await).await;
    let mut conn = ConnectionManager::new(DatabaseUrl::Postgres(postgres.url()))
        .connect()
        .expect("the test connects to its server");
    assert!(
        lanyard::db::migrations::vault_tables_exist(&mut conn).unwrap(),
        "the server ran the migrations"
    );
    drop(conn);
    let (write, _) = site.user_with_tokens(&env, "late@example.com");
    assert_eq!(server.list(&write).await, Vec::<Value>::new());
    server
        .create(
            &write,
            json!({"name": "work", "provider": "openai", "model": "gpt-4o", "api_key": distinctive_key("sk-")}),
        )
        .await;
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// More than one machine, and observability.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_start_together_on_an_empty_database_and_share_sessions() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let site = Site::new(database.url_string());
    let env = master_keys(&master_key_entry("shared"));
    let metrics_token = format!("metrics-{}", Uuid::new_v4().simple());
    let mut with_metrics_token = env.clone();
    with_metrics_token.push(("LANYARD_METRICS_TOKEN", metrics_token.clone()));
    let mut a = site.launch(&env);
    let mut b = site.launch(&with_metrics_token);
    a.until_serving().await;
    b.until_serving().await;
    for server in [&a, &b] {
        until_status(Duration::from_secs(10), 200, async || {
            server.get_anonymous("/readyz").await
        })
        .await;
    }

    let email = "roaming@example.com";
    let (write, _) = site.user_with_tokens(&env, email);
    let cookie = a.login(email, TEST_PASSWORD).await;
    let on_b = b.get_with_cookie("/settings", &cookie).await;
    assert_eq!(on_b.status(), 200, "a session made on A works on B");
    assert!(on_b.headers().contains_key("x-request-id"));
    assert!(on_b.text().await.unwrap().contains(&format!("Signed in as {email}")));

    let key = distinctive_key("sk-proj-");
    let created = a
        .create(
            &write,
            json!({"name": "shared", "provider": "openai", "model": "gpt-4o", "api_key": key}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let fetched = b.get(&format!("/api/llm-configurations/{id}"), &write).await;
    assert_eq!(fetched.status(), 200);
    let request_id = fetched.headers().get("x-request-id").cloned();
    assert!(
        request_id.is_some_and(|id| !id.is_empty()),
        "responses carry a request id"
    );
    assert_eq!(fetched.json::<Value>().await.unwrap(), created);
    let fetched = a.get(&format!("/api/llm-configurations/{id}"), &write).await;
    assert_eq!(fetched.status(), 200);
    assert!(a.get_anonymous("/healthz").await.headers().contains_key("x-request-id"));

    let metrics = a.get_anonymous("/metrics").await;
    assert_eq!(metrics.status(), 200, "no LANYARD_METRICS_TOKEN on A: open");
    assert!(
        metrics
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain")),
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("# TYPE lanyard_http_requests_total counter"), "{text}");
    assert!(
        text.contains("route=\"/api/llm-configurations/{id}\""),
        "routes are labelled by pattern:\n{text}"
    );
    for secret in [
        id.as_str(),
        key.as_str(),
        write.as_str(),
        &cookie[COOKIE_NAME.len() + 1..],
    ] {
        assert!(!text.contains(secret), "the metrics carry no id, key, token or session");
    }

    assert_eq!(b.get_anonymous("/metrics").await.status(), 401);
    assert_eq!(b.get("/metrics", "not-the-metrics-token").await.status(), 401);
    assert_eq!(b.get("/metrics", &write).await.status(), 401);
    let metrics = b.get("/metrics", &metrics_token).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("# TYPE lanyard_http_requests_total counter")
    );
    a.stop();
    b.stop();
}
