//! Accounts and browser sessions over HTTP: the setup link, login and its limits, the session
//! cookie, CSRF and Origin checks on forms and on the session-authenticated API, `/api/tokens`,
//! logout and password changes ending sessions on the server.

use diesel::prelude::*;
use lanyard::db::schema::users;
use serde_json::{Value, json};

use crate::helpers::{Browser, TEST_PASSWORD, TestApp, csrf_from, location};
use crate::on_both_backends;

on_both_backends!(
    the_first_visitor_registers_through_the_setup_link_and_becomes_admin,
    without_the_setup_token_nobody_can_register_the_first_user,
    once_a_user_exists_nobody_else_can_register_even_with_the_old_link,
    a_wrong_password_and_an_unknown_email_fail_identically,
    the_eleventh_failed_login_within_five_minutes_is_refused_with_retry_after,
    logging_in_starts_a_new_session_with_a_strict_http_only_cookie,
    a_form_post_without_the_right_csrf_token_is_refused_and_changes_nothing,
    a_form_post_from_another_origin_is_refused_but_loopback_aliases_count_as_ours,
    a_session_may_use_the_api_but_writes_need_the_csrf_header,
    api_tokens_are_managed_by_the_browser_session_only,
    logout_ends_the_session_on_the_server,
    a_password_change_ends_the_other_sessions_and_keeps_this_one,
    disabling_a_user_ends_their_sessions,
);

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
    let form = visitor.page(&format!("/register?setup_token={setup_token}")).await;
    let registered = visitor
        .post_form(
            "/register",
            &[
                ("email", "first@example.com"),
                ("password", TEST_PASSWORD),
                ("setup_token", &setup_token),
                ("csrf_token", &csrf_from(&form)),
            ],
        )
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
    let form = first.page(&format!("/register?setup_token={setup_token}")).await;
    let registered = first
        .post_form(
            "/register",
            &[
                ("email", "first@example.com"),
                ("password", TEST_PASSWORD),
                ("setup_token", &setup_token),
                ("csrf_token", &csrf_from(&form)),
            ],
        )
        .await;
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

async fn a_wrong_password_and_an_unknown_email_fail_identically(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);

    let wrong_password = visitor
        .post_form(
            "/login",
            &[
                ("email", &user.email),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let unknown_email = visitor
        .post_form(
            "/login",
            &[
                ("email", "nobody@example.com"),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let (wrong_status, unknown_status) = (wrong_password.status(), unknown_email.status());
    let wrong_body = wrong_password.text().await.unwrap();
    let unknown_body = unknown_email.text().await.unwrap();
    assert_eq!(wrong_status, unknown_status);
    assert!(wrong_status.is_client_error(), "{wrong_status}");
    assert_eq!(wrong_body, unknown_body);
    assert!(wrong_body.contains("wrong email or password"), "{wrong_body}");
    assert!(!wrong_body.contains(&user.email));
    assert_eq!(location(&visitor.get("/llm-configurations").await), "/login");
}

async fn the_eleventh_failed_login_within_five_minutes_is_refused_with_retry_after(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let attempt = |email: String, password: &'static str| {
        let fields = [
            ("email", email),
            ("password", password.to_owned()),
            ("csrf_token", csrf.clone()),
        ];
        let request = visitor.client.post(visitor.url("/login")).form(&fields);
        async move { request.send().await.unwrap() }
    };

    for failure in 1..=10 {
        let response = attempt(user.email.clone(), "not the password").await;
        assert_eq!(response.status(), 422, "failure {failure}");
    }
    let eleventh = attempt(user.email.clone(), "not the password").await;
    assert_eq!(eleventh.status(), 429);
    let retry_after: u64 = eleventh.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    // Even the right password waits now, for this account from this address...
    assert_eq!(attempt(user.email.clone(), TEST_PASSWORD).await.status(), 429);
    // ...but another account is not locked out by it.
    let other = app.user().await;
    let other_login = attempt(other.email.clone(), TEST_PASSWORD).await;
    assert_eq!(other_login.status(), 303);
}

async fn logging_in_starts_a_new_session_with_a_strict_http_only_cookie(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    // Issue 11: the login form's token is a signed cookie, not an anonymous session.
    assert_eq!(
        visitor.session_cookie(),
        None,
        "viewing the login form starts no session"
    );
    let fields = [
        ("email", user.email.as_str()),
        ("password", TEST_PASSWORD),
        ("csrf_token", csrf.as_str()),
    ];

    let response = visitor.post_form("/login", &fields).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/llm-configurations");
    let set_cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    let cookie = set_cookies
        .iter()
        .find(|cookie| cookie.starts_with("lanyard_session="))
        .unwrap_or_else(|| panic!("no session cookie set at login: {set_cookies:?}"));
    let flags: Vec<String> = cookie.split(';').map(|flag| flag.trim().to_ascii_lowercase()).collect();
    assert!(flags.contains(&"httponly".to_owned()), "{cookie}");
    assert!(flags.contains(&"samesite=strict".to_owned()), "{cookie}");
    assert!(
        !flags.contains(&"secure".to_owned()),
        "the public URL is http: {cookie}"
    );

    // A session id the browser already holds (one planted in it, say) is replaced at login.
    let before = visitor.session_cookie().unwrap();
    let again = visitor.post_form("/login", &fields).await;
    assert_eq!(again.status(), 303);
    let after = visitor.session_cookie().unwrap();
    assert_ne!(before, after, "the session id changes at login");
    let page = visitor.page("/llm-configurations").await;
    assert!(page.contains("Log out"));
    // The pre-login id is worth nothing.
    let planted = app
        .client
        .get(app.url("/llm-configurations"))
        .header("Cookie", format!("lanyard_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 303);
    assert_eq!(location(&planted), "/login");
}

async fn token_names(browser: &Browser) -> Vec<String> {
    let response = browser.get("/api/tokens").await;
    assert_eq!(response.status(), 200);
    let tokens: Vec<Value> = response.json().await.unwrap();
    tokens
        .iter()
        .map(|token| token["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_form_post_without_the_right_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-000001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-00002").await;
    let set_second_default = format!("/llm-configurations/{}/set-default", second["id"].as_str().unwrap());
    let csrf = browser.csrf().await;
    let before = app.list(&user.token).await;
    let tokens_before = token_names(&browser).await;

    for token in [None, Some("not-the-token"), Some("")] {
        let with = |fields: &[(&'static str, &'static str)]| {
            let mut fields: Vec<(&str, &str)> = fields.to_vec();
            if let Some(token) = token {
                fields.push(("csrf_token", token));
            }
            fields
        };
        let create = browser
            .post_form(
                "/llm-configurations",
                &with(&[
                    ("name", "sneaky"),
                    ("provider", "openai"),
                    ("model", "gpt-4o"),
                    ("api_key", "sk-sneaky-key-0001"),
                ]),
            )
            .await;
        assert_eq!(create.status(), 403, "create with {token:?}");
        assert_eq!(browser.post_form(&set_second_default, &with(&[])).await.status(), 403);
        assert_eq!(browser.post_form("/logout", &with(&[])).await.status(), 403);
        let token_form = browser
            .post_form("/settings/tokens", &with(&[("name", "sneaky"), ("scopes", "read")]))
            .await;
        assert_eq!(token_form.status(), 403);
        // htmx sends the token in a header; a wrong one there is refused too.
        if let Some(token) = token {
            let header = browser
                .post_form_with(
                    &set_second_default,
                    &[],
                    &[("HX-Request", "true"), ("X-CSRF-Token", token)],
                )
                .await;
            assert_eq!(header.status(), 403);
        }
    }

    assert_eq!(app.list(&user.token).await, before);
    assert_eq!(
        app.list(&user.token).await[0]["id"],
        first["id"],
        "the default did not move"
    );
    assert_eq!(token_names(&browser).await, tokens_before);
    assert_eq!(browser.csrf().await, csrf, "still signed in, same session");

    // The right token, in the field or in the header, is accepted.
    let accepted = browser.post_form(&set_second_default, &[("csrf_token", &csrf)]).await;
    assert_eq!(accepted.status(), 303);
    let listed = app.list(&user.token).await;
    assert_eq!(listed[0]["id"], second["id"]);
    let set_first_default = format!("/llm-configurations/{}/set-default", first["id"].as_str().unwrap());
    let by_header = browser
        .post_form_with(
            &set_first_default,
            &[],
            &[("HX-Request", "true"), ("X-CSRF-Token", &csrf)],
        )
        .await;
    assert_eq!(by_header.status(), 200);
    assert_eq!(app.list(&user.token).await[0]["id"], first["id"]);
}

async fn a_form_post_from_another_origin_is_refused_but_loopback_aliases_count_as_ours(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;
    let port = url::Url::parse(&app.address).unwrap().port().unwrap();
    let create = |name: &'static str| {
        [
            ("name", name),
            ("provider", "openai"),
            ("model", "gpt-4o"),
            ("api_key", "sk-origin-key-000001"),
        ]
    };

    for origin in [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "null".to_owned(),
    ] {
        let mut fields = create("foreign").to_vec();
        fields.push(("csrf_token", &csrf));
        let response = browser
            .post_form_with("/llm-configurations", &fields, &[("Origin", &origin)])
            .await;
        assert_eq!(response.status(), 403, "Origin {origin}");
        let logout = browser
            .post_form_with("/logout", &[("csrf_token", &csrf)], &[("Origin", &origin)])
            .await;
        assert_eq!(logout.status(), 403, "Origin {origin}");
    }
    assert!(app.list(&user.token).await.is_empty());

    let names = ["own", "localhost", "ipv6"];
    let origins = [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
    ];
    for (name, origin) in names.into_iter().zip(&origins) {
        let mut fields = create(name).to_vec();
        fields.push(("csrf_token", &csrf));
        let response = browser
            .post_form_with("/llm-configurations", &fields, &[("Origin", origin)])
            .await;
        assert_eq!(
            response.status(),
            303,
            "Origin {origin}: {}",
            response.text().await.unwrap()
        );
    }
    let mut listed: Vec<String> = app
        .list(&user.token)
        .await
        .iter()
        .map(|configuration| configuration["name"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["ipv6", "localhost", "own"]);
}

async fn a_session_may_use_the_api_but_writes_need_the_csrf_header(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;
    let body =
        json!({"name": "from-the-page", "provider": "openai", "model": "gpt-4o", "api_key": "sk-session-key-00001"});
    let api = browser.url("/api/llm-configurations");

    let without = browser.client.post(&api).json(&body).send().await.unwrap();
    assert_eq!(without.status(), 403);
    let without: Value = without.json().await.unwrap();
    assert_eq!(without["error"], "forbidden");
    let wrong = browser
        .client
        .post(&api)
        .header("X-CSRF-Token", "not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let foreign = browser
        .client
        .post(&api)
        .header("X-CSRF-Token", &csrf)
        .header("Origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert!(app.list(&user.token).await.is_empty());

    let created = browser
        .client
        .post(&api)
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["api_key_masked"], "sk-…0001");

    // A session never reaches a key in clear, with or without the CSRF header.
    let resolve = browser.get("/api/resolve").await;
    assert_eq!(resolve.status(), 403);
    let resolve = resolve.text().await.unwrap();
    assert!(!resolve.contains("sk-session-key-00001"), "{resolve}");
    let resolve = browser
        .client
        .get(browser.url("/api/resolve?conversation_id=chat-1"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resolve.status(), 403);

    // Reading needs no token.
    let listed = browser.get("/api/llm-configurations").await;
    assert_eq!(listed.status(), 200);
    let listed: Vec<Value> = listed.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    // Deleting is a write too.
    let path = browser.url(&format!("/api/llm-configurations/{}", created["id"].as_str().unwrap()));
    assert_eq!(browser.client.delete(&path).send().await.unwrap().status(), 403);
    let deleted = browser
        .client
        .delete(&path)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(app.list(&user.token).await.is_empty());
}

async fn api_tokens_are_managed_by_the_browser_session_only(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;

    // A token cannot manage tokens.
    assert_eq!(app.get("/api/tokens", &user.token).await.status(), 403);
    let by_token = app
        .post_json(
            "/api/tokens",
            &user.token,
            &json!({"name": "from-a-token", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(by_token.status(), 403);
    assert_eq!(token_names(&browser).await, ["test"]);

    let without_csrf = browser
        .client
        .post(browser.url("/api/tokens"))
        .json(&json!({"name": "laptop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_csrf.status(), 403);

    let created = browser
        .client
        .post(browser.url("/api/tokens"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "laptop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("lny_"), "{secret}");
    assert_eq!(created["scopes"], json!(["read"]));

    let listed = browser.get("/api/tokens").await;
    assert_eq!(listed.status(), 200);
    let listed = listed.text().await.unwrap();
    assert!(listed.contains("laptop"));
    assert!(!listed.contains(&secret), "the token is shown once: {listed}");
    assert!(!listed.contains(&secret[4..]));
    let settings = browser.page("/settings").await;
    assert!(!settings.contains(&secret[4..]));

    assert_eq!(app.get("/api/llm-configurations", &secret).await.status(), 200);
    let revoke = browser.url(&format!("/api/tokens/{}", created["id"].as_str().unwrap()));
    assert_eq!(browser.client.delete(&revoke).send().await.unwrap().status(), 403);
    let revoked = browser
        .client
        .delete(&revoke)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(app.get("/api/llm-configurations", &secret).await.status(), 401);
    let listed: Vec<Value> = browser.get("/api/tokens").await.json().await.unwrap();
    let laptop = listed.iter().find(|token| token["name"] == "laptop").unwrap();
    assert_eq!(laptop["revoked"], true);
    // The user's other token still works.
    assert_eq!(app.get("/api/llm-configurations", &user.token).await.status(), 200);
}

async fn logout_ends_the_session_on_the_server(app: TestApp) {
    let (_user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;
    let old_cookie = browser.session_cookie().unwrap();

    let logout = browser.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(logout.status(), 303);
    assert_eq!(location(&logout), "/login");
    assert_eq!(location(&browser.get("/llm-configurations").await), "/login");

    let replayed = app
        .client
        .get(app.url("/llm-configurations"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303);
    assert_eq!(location(&replayed), "/login");
    let replayed_htmx = app
        .client
        .get(app.url("/llm-configurations"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(replayed_htmx.status(), 200);
    assert_eq!(replayed_htmx.headers()["hx-redirect"], "/login");
    assert!(!replayed_htmx.text().await.unwrap().contains("<table"));
    let replayed_api = app
        .client
        .get(app.url("/api/llm-configurations"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed_api.status(), 401);

    // A stale page's forms lead back to the login, not to an error.
    let stale_form = app
        .client
        .post(app.url("/llm-configurations"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .form(&[
            ("name", "late"),
            ("provider", "openai"),
            ("model", "gpt-4o"),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stale_form.status(), 303);
    assert_eq!(location(&stale_form), "/login");
    let stale_htmx = app
        .client
        .post(app.url("/llm-configurations"))
        .header("Cookie", format!("lanyard_session={old_cookie}"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("name", "late"), ("provider", "openai"), ("model", "gpt-4o")])
        .send()
        .await
        .unwrap();
    assert_eq!(stale_htmx.status(), 200);
    assert_eq!(stale_htmx.headers()["hx-redirect"], "/login");
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
    let visitor = app.browser();
    let form_csrf = csrf_from(&visitor.page("/login").await);
    let old = visitor
        .post_form(
            "/login",
            &[
                ("email", &user.email),
                ("password", TEST_PASSWORD),
                ("csrf_token", &form_csrf),
            ],
        )
        .await;
    assert_eq!(old.status(), 422);
    app.login(&user.email, "a brand new password").await;
}

async fn disabling_a_user_ends_their_sessions(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    assert!(browser.page("/llm-configurations").await.contains("Log out"));
    let id = lanyard::db::DbId(user.id);
    app.with_db(move |conn| {
        diesel::update(users::table.find(id))
            .set(users::is_disabled.eq(true))
            .execute(conn)
            .unwrap()
    })
    .await;

    assert_eq!(location(&browser.get("/llm-configurations").await), "/login");
    assert_eq!(browser.get("/api/llm-configurations").await.status(), 401);
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let login = visitor
        .post_form(
            "/login",
            &[
                ("email", &user.email),
                ("password", TEST_PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(login.status(), 422, "a disabled account cannot log in");
}
