//! Two-factor authentication for password accounts (sign-in.md): enrolment, the login's second
//! step, replayed and stale codes, the limits, recovery codes, turning it off, the command line's
//! reset, the admin's requirement, and the re-authentication of `resolve` tokens.

use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::binary::Sandbox;
use crate::helpers::command_line::lanyard;
use crate::helpers::{Browser, TEST_PASSWORD, TestApp, assert_error, csrf_from, location, master_key_entry};
use crate::on_both_backends;

on_both_backends!(
    enrolment_shows_a_secret_and_a_qr_code_and_turns_on_only_with_a_right_code,
    with_it_on_login_needs_a_current_code_used_once,
    wrong_codes_count_against_the_limits_until_429,
    each_recovery_code_signs_in_once,
    turning_it_off_needs_the_password_and_a_code,
    reset_2fa_at_the_command_line_removes_it_and_is_audited,
    the_admin_switch_confines_a_password_account_to_the_set_up_page,
    a_resolve_token_needs_a_code_when_two_factor_is_on,
    rotate_keys_re_seals_second_factor_secrets_and_the_key_check_counts_them,
);

on_both_backends!(settings(behind_a_trusted_proxy):
    ten_wrong_codes_from_any_addresses_together_spend_the_accounts_budget,
);

/// Lanyard behind a proxy on loopback: `X-Forwarded-For` names the client.
fn behind_a_trusted_proxy(settings: &mut lanyard::config::Settings) {
    settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

const PAGE: &str = "/settings/two-factor";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The code an authenticator app shows for `secret` (base32, as the page shows it) at `unix`.
fn code_at(secret: &str, unix: i64) -> String {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes)
        .unwrap()
        .generate(u64::try_from(unix).unwrap())
}

fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("no {start:?} in {page}")) + start.len();
    &page[from..from + page[from..].find(end).unwrap()]
}

/// The secret and sealed form value the set-up page offers.
fn offered(page: &str) -> (String, String) {
    (
        between(page, "<code id=\"two-factor-secret\">", "</code>").to_owned(),
        between(page, "name=\"pending\" value=\"", "\"").to_owned(),
    )
}

async fn post_enrolment(browser: &Browser, page: &str, code: &str) -> reqwest::Response {
    let (_, pending) = offered(page);
    let csrf = csrf_from(page);
    browser
        .post_form(PAGE, &[("csrf_token", &csrf), ("pending", &pending), ("code", code)])
        .await
}

/// Turns it on for the signed-in `browser` with the code of the step before now (so that this
/// step and the next stay usable for the test); returns the secret and the recovery codes.
async fn enrol(browser: &Browser) -> (String, Vec<String>) {
    let page = browser.page(PAGE).await;
    let (secret, _) = offered(&page);
    let mut response = post_enrolment(browser, &page, &code_at(&secret, unix_now() - 30)).await;
    if response.status() == 422 {
        // The step turned over in between: the current one is fine too.
        response = post_enrolment(browser, &page, &code_at(&secret, unix_now())).await;
    }
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> = body
        .split("<li><code>")
        .skip(1)
        .map(|item| item[..item.find("</code>").unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{body}");
    (secret, codes)
}

/// Logs in with the password only: the answer must send to the second step.
async fn first_step(app: &TestApp, email: &str) -> Browser {
    let (browser, response) = app.attempt_login(email, TEST_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login/two-factor");
    browser
}

async fn second_step(browser: &Browser, code: &str) -> reqwest::Response {
    let page = browser.page("/login/two-factor").await;
    browser
        .post_form(
            "/login/two-factor",
            &[("csrf_token", &csrf_from(&page)), ("code", code)],
        )
        .await
}

async fn assert_signed_in(browser: &Browser) {
    assert_eq!(browser.get("/settings").await.status(), 200);
}

async fn enrolled_user(app: &TestApp) -> (crate::helpers::TestUser, Browser, String, Vec<String>) {
    let (user, browser) = app.signed_in_user().await;
    let (secret, codes) = enrol(&browser).await;
    (user, browser, secret, codes)
}

async fn enrolment_shows_a_secret_and_a_qr_code_and_turns_on_only_with_a_right_code(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;
    let settings = browser.page("/settings").await;
    assert!(settings.contains("id=\"two-factor-state\">off<"), "{settings}");
    assert!(settings.contains("href=\"/settings/two-factor\""));

    let page = browser.page(PAGE).await;
    let (secret, pending) = offered(&page);
    assert_eq!(secret.len(), 32, "{secret}");
    assert!(page.contains("<svg"), "the QR code is an inline SVG: {page}");
    // The sealed form value is not the secret.
    assert!(!pending.contains(&secret));

    let wrong = post_enrolment(&browser, &page, &code_at(&secret, unix_now() - 300)).await;
    assert_eq!(wrong.status(), 422);
    let wrong = wrong.text().await.unwrap();
    assert!(wrong.contains("id=\"two-factor-code-error\""), "{wrong}");
    assert_eq!(offered(&wrong).0, secret, "the same secret is offered again");
    assert!(browser.page("/settings").await.contains("id=\"two-factor-state\">off<"));

    // Another user's enrolment form cannot be replayed by this one.
    let (_other, other_browser) = app.signed_in_user().await;
    let stolen = post_enrolment(&other_browser, &page, &code_at(&secret, unix_now())).await;
    assert_ne!(stolen.status(), 200);

    let right = post_enrolment(&browser, &page, &code_at(&secret, unix_now())).await;
    assert_eq!(right.status(), 200);
    let right = right.text().await.unwrap();
    assert_eq!(right.matches("<li><code>").count(), 10, "{right}");
    let settings = browser.page("/settings").await;
    assert!(settings.contains("id=\"two-factor-state\">on<"), "{settings}");
    assert!(settings.contains("Two-factor authentication turned on"), "{settings}");
    // Shown once: the page no longer lists them, nor the secret.
    let again = browser.page(PAGE).await;
    assert!(!again.contains("<li><code>") && !again.contains(&secret), "{again}");
    assert!(again.contains("id=\"recovery-codes-left\">10<"), "{again}");
}

async fn with_it_on_login_needs_a_current_code_used_once(app: TestApp) {
    let (user, _browser, secret, _codes) = enrolled_user(&app).await;

    // The password alone makes no session.
    let browser = first_step(&app, &user.email).await;
    assert_eq!(browser.get("/settings").await.status(), 303);
    assert_eq!(location(&browser.get("/settings").await), "/login");
    // Without the pending step's cookie there is nothing to complete.
    let stranger = app.browser();
    assert_eq!(location(&stranger.get("/login/two-factor").await), "/login");

    // Three steps ago: refused.
    let stale = second_step(&browser, &code_at(&secret, unix_now() - 90)).await;
    assert_eq!(stale.status(), 422);
    assert!(stale.text().await.unwrap().contains("id=\"code-error\""));
    assert_eq!(browser.get("/settings").await.status(), 303);

    let code = code_at(&secret, unix_now());
    let signed_in = second_step(&browser, &code).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/llm-configurations");
    assert_signed_in(&browser).await;

    // The same code again, in a new login: refused (replay).
    let again = first_step(&app, &user.email).await;
    let replayed = second_step(&again, &code).await;
    assert_eq!(replayed.status(), 422);
    assert_eq!(again.get("/settings").await.status(), 303);
    // So is an earlier step's code, though still inside the window.
    let earlier = second_step(&again, &code_at(&secret, unix_now() - 30)).await;
    assert_eq!(earlier.status(), 422);
}

async fn wrong_codes_count_against_the_limits_until_429(app: TestApp) {
    let (user, _browser, secret, _codes) = enrolled_user(&app).await;
    let browser = first_step(&app, &user.email).await;
    let page = browser.page("/login/two-factor").await;
    let csrf = csrf_from(&page);
    let right = code_at(&secret, unix_now());
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for attempt in 0..10 {
        let response = browser
            .post_form("/login/two-factor", &[("csrf_token", &csrf), ("code", wrong)])
            .await;
        assert_eq!(response.status(), 422, "attempt {attempt}");
    }
    // The limit is spent: even the right code is refused now, and so is the password.
    let limited = browser
        .post_form("/login/two-factor", &[("csrf_token", &csrf), ("code", &right)])
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(browser.get("/settings").await.status(), 303);
    let (_, password_again) = app.attempt_login(&user.email, TEST_PASSWORD).await;
    assert_eq!(password_again.status(), 429);
}

async fn each_recovery_code_signs_in_once(app: TestApp) {
    let (user, _browser, _secret, codes) = enrolled_user(&app).await;
    let browser = first_step(&app, &user.email).await;
    // Typed in capitals and without dashes, as people do.
    let typed = codes[0].replace('-', "").to_uppercase();
    let response = second_step(&browser, &typed).await;
    assert_eq!(response.status(), 303);
    assert_signed_in(&browser).await;
    let settings = browser.page("/settings").await;
    assert!(settings.contains("A recovery code was used to sign in"), "{settings}");
    assert!(browser.page(PAGE).await.contains("id=\"recovery-codes-left\">9<"));

    let again = first_step(&app, &user.email).await;
    assert_eq!(second_step(&again, &codes[0]).await.status(), 422);
    assert_eq!(second_step(&again, &codes[1]).await.status(), 303);
    assert_signed_in(&again).await;
}

async fn turning_it_off_needs_the_password_and_a_code(app: TestApp) {
    let (user, browser, secret, _codes) = enrolled_user(&app).await;
    let csrf = csrf_from(&browser.page(PAGE).await);
    let disable = |password: String, code: String| {
        let csrf = csrf.clone();
        let browser = &browser;
        async move {
            browser
                .post_form(
                    "/settings/two-factor/disable",
                    &[("csrf_token", &csrf), ("current_password", &password), ("code", &code)],
                )
                .await
        }
    };
    let wrong_password = disable("not my password".into(), code_at(&secret, unix_now())).await;
    assert_eq!(wrong_password.status(), 422);
    assert!(
        wrong_password
            .text()
            .await
            .unwrap()
            .contains("id=\"disable-current-password-error\"")
    );
    let wrong_code = disable(TEST_PASSWORD.into(), code_at(&secret, unix_now() - 300)).await;
    assert_eq!(wrong_code.status(), 422);
    assert!(wrong_code.text().await.unwrap().contains("id=\"disable-code-error\""));
    assert!(browser.page("/settings").await.contains("id=\"two-factor-state\">on<"));

    let off = disable(TEST_PASSWORD.into(), code_at(&secret, unix_now())).await;
    assert_eq!(off.status(), 303);
    let settings = browser.page("/settings").await;
    assert!(settings.contains("id=\"two-factor-state\">off<"), "{settings}");
    assert!(settings.contains("Two-factor authentication turned off"));
    app.login(&user.email, TEST_PASSWORD).await;
}

async fn reset_2fa_at_the_command_line_removes_it_and_is_audited(app: TestApp) {
    let (user, _browser, _secret, _codes) = enrolled_user(&app).await;
    let sandbox = Sandbox::new();
    lanyard(&app, &sandbox, &["user", "reset-2fa", "--email", &user.email], "").assert_success();
    // The password alone signs in again.
    let browser = app.login(&user.email, TEST_PASSWORD).await;
    let settings = browser.page("/settings").await;
    assert!(settings.contains("id=\"two-factor-state\">off<"), "{settings}");
    assert!(
        settings.contains("Two-factor authentication removed for recovery") && settings.contains("the command line"),
        "{settings}"
    );
    // Nothing left to remove, or nobody with that e-mail: the command fails.
    lanyard(&app, &sandbox, &["user", "reset-2fa", "--email", &user.email], "").assert_failure();
    lanyard(
        &app,
        &sandbox,
        &["user", "reset-2fa", "--email", "nobody@example.com"],
        "",
    )
    .assert_failure();
}

async fn the_admin_switch_confines_a_password_account_to_the_set_up_page(app: TestApp) {
    let (admin, _) = app.register_first_admin().await;
    let page = admin.page("/admin").await;
    assert!(page.contains("id=\"second-factor-state\">optional<"), "{page}");
    let switched = admin
        .post_form(
            "/admin/second-factor",
            &[("csrf_token", &csrf_from(&page)), ("required", "true")],
        )
        .await;
    assert_eq!(switched.status(), 303);

    let (member, browser) = app.signed_in_user().await;
    for path in ["/llm-configurations", "/settings", "/connections", "/admin"] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), PAGE, "{path}");
    }
    let htmx = browser.get_htmx("/settings").await;
    assert_eq!(htmx.headers().get("HX-Redirect").unwrap(), PAGE);
    // The API with the session: 403 with its own code; with a bearer token: unaffected.
    let by_session = browser.get("/api/llm-configurations").await;
    assert_error(by_session, 403, "second_factor_required").await;
    assert_eq!(app.get("/api/llm-configurations", &member.token).await.status(), 200);
    let setup = browser.page(PAGE).await;
    assert!(setup.contains("id=\"two-factor-required\""), "{setup}");
    // Logging out stays possible.
    let csrf = csrf_from(&setup);

    enrol(&browser).await;
    assert_eq!(browser.get("/settings").await.status(), 200);
    assert_eq!(browser.get("/api/llm-configurations").await.status(), 200);

    let logout = browser.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(logout.status(), 303);
    assert_eq!(browser.get("/settings").await.status(), 303);
    assert_eq!(location(&browser.get("/settings").await), "/login");

    // The admin (no second factor either) is confined too, until the switch is off again.
    assert_eq!(location(&admin.get("/admin").await), PAGE);
}

async fn a_resolve_token_needs_a_code_when_two_factor_is_on(app: TestApp) {
    let (_user, browser, secret, _codes) = enrolled_user(&app).await;
    let csrf = browser.csrf().await;
    let create = |body: Value| {
        let browser = &browser;
        let csrf = csrf.clone();
        async move {
            browser
                .client
                .post(browser.url("/api/tokens"))
                .header("X-CSRF-Token", &csrf)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let password_only =
        create(json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD})).await;
    assert_error(password_only, 403, "reauthentication_required").await;
    let wrong_code = create(
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD,
        "totp_code": code_at(&secret, unix_now() - 300)}),
    )
    .await;
    assert_error(wrong_code, 403, "reauthentication_required").await;
    let with_code = create(
        json!({"name": "agent", "scopes": ["resolve"], "current_password": TEST_PASSWORD,
        "totp_code": code_at(&secret, unix_now())}),
    )
    .await;
    assert_eq!(with_code.status(), 201);
    // Other scopes need neither.
    assert_eq!(
        create(json!({"name": "reader", "scopes": ["read"]})).await.status(),
        201
    );

    // The page: its form asks for the code, and without one re-renders with 422 under the password.
    let settings = browser.page("/settings").await;
    assert!(settings.contains("name=\"totp_code\""), "{settings}");
    let refused = browser
        .post_form(
            "/settings/tokens",
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "page agent"),
                ("scopes", "resolve"),
                ("current_password", TEST_PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("id=\"token-current-password-error\"")
    );
}

async fn ten_wrong_codes_from_any_addresses_together_spend_the_accounts_budget(app: TestApp) {
    let (user, _browser, secret, _codes) = enrolled_user(&app).await;
    let browser = first_step(&app, &user.email).await;
    let csrf = csrf_from(&browser.page("/login/two-factor").await);
    let right = code_at(&secret, unix_now());
    let wrong = if right == "000000" { "111111" } else { "000000" };
    // Five addresses, two wrong codes each: no (account, address) pair comes near its limit.
    for address in 1..=5 {
        let from = format!("203.0.113.{address}");
        for _ in 0..2 {
            let response = browser
                .post_form_with(
                    "/login/two-factor",
                    &[("csrf_token", &csrf), ("code", wrong)],
                    &[("X-Forwarded-For", &from)],
                )
                .await;
            assert_eq!(response.status(), 422, "from {from}");
        }
    }
    // A sixth address, fresh: the account's own budget is spent, so even the right code waits.
    let limited = browser
        .post_form_with(
            "/login/two-factor",
            &[("csrf_token", &csrf), ("code", &right)],
            &[("X-Forwarded-For", "198.51.100.7")],
        )
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    // The password itself is not locked for other addresses: only the codes are.
    let (_, password) = app.attempt_login(&user.email, TEST_PASSWORD).await;
    assert_eq!(password.status(), 303);
}

async fn rotate_keys_re_seals_second_factor_secrets_and_the_key_check_counts_them(app: TestApp) {
    use lanyard::crypto::{MasterKeyring, RowBinding};
    use lanyard::db::{DbId, second_factors};
    use lanyard::services::master_keys;

    let (user, _browser, secret, _codes) = enrolled_user(&app).await;
    let keyring = MasterKeyring::parse(&format!("{},{}", master_key_entry("rotated"), app.master_keys)).unwrap();
    let user_id = user.id;
    let (counted, re_sealed, key_id, opened, moved) = app
        .with_db(move |conn| {
            // Before rotating, the start-up check sees the secret under the old key.
            let counted = master_keys::StoredKeyState::read(conn).unwrap().keys_by_id;
            let report = master_keys::rotate(conn, &keyring, 100).unwrap();
            let row = second_factors::find(conn, DbId(user_id)).unwrap().unwrap();
            let opened = keyring
                .open(&row.secret_encrypted, RowBinding::SecondFactor { user: user_id })
                .unwrap()
                .to_vec();
            // Bound to its user: it does not open as another user's, nor as a pending offer.
            let moved = keyring
                .open(
                    &row.secret_encrypted,
                    RowBinding::SecondFactor {
                        user: uuid::Uuid::new_v4(),
                    },
                )
                .is_err()
                && keyring
                    .open(&row.secret_encrypted, RowBinding::PendingSecondFactor { user: user_id })
                    .is_err();
            (counted, report.re_encrypted, row.key_id, opened, moved)
        })
        .await;
    assert_eq!(counted.get("test-key"), Some(&1), "{counted:?}");
    assert!(re_sealed >= 1);
    assert_eq!(key_id, "rotated");
    assert_eq!(opened, Secret::Encoded(secret).to_bytes().unwrap());
    assert!(moved);
}

/// `lanyard copy-database` carries second factors and recovery codes along (pending login steps,
/// like rate-limit counters, stay behind), and the copy still opens the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_database_carries_second_factors() {
    use lanyard::crypto::{MasterKeyring, RowBinding};
    use lanyard::db::{ConnectionManager, DbId, second_factors};
    use r2d2::ManageConnection;

    let Some(target) = crate::helpers::TestDatabase::create(crate::helpers::Backend::Postgres) else {
        return;
    };
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (user, _browser, secret, _codes) = enrolled_user(&app).await;
    let sandbox = Sandbox::new();
    let copied = lanyard(&app, &sandbox, &["copy-database", "--to", &target.url_string()], "");
    copied.assert_success();
    assert!(copied.has_line("second_factors: 1"), "{}", copied.stdout);
    assert!(copied.has_line("recovery_codes: 10"), "{}", copied.stdout);
    let mut conn = ConnectionManager::new(target.url()).connect().expect("the target");
    let row = second_factors::find(&mut conn, DbId(user.id)).unwrap().unwrap();
    let keyring = MasterKeyring::parse(&app.master_keys).unwrap();
    let opened = keyring
        .open(&row.secret_encrypted, RowBinding::SecondFactor { user: user.id })
        .unwrap();
    assert_eq!(opened.to_vec(), Secret::Encoded(secret).to_bytes().unwrap());
}
