//! Signing in and out in the browser: the session cookie, CSRF and Origin checks on every form,
//! anonymous sign-in pages that write no session, and a session's use of the API.

use diesel::prelude::*;
use lanyard::db::schema::sessions;
use lanyard::http::anonymous_csrf::COOKIE_NAME as CSRF_COOKIE;
use serde_json::{Value, json};

use crate::helpers::configurations::Configuration;
use crate::helpers::forms::token_names;
use crate::helpers::{TEST_PASSWORD, TestApp, csrf_from, location};
use crate::on_both_backends;

on_both_backends!(
    looking_at_the_login_and_registration_pages_writes_no_session,
    a_failed_login_writes_no_session_and_its_page_lets_the_visitor_try_again,
    the_sign_in_forms_refuse_a_missing_wrong_forged_or_foreign_csrf_token,
    the_sign_in_token_is_no_good_for_the_forms_of_a_signed_in_session,
    a_wrong_password_and_an_unknown_email_fail_identically,
    logging_in_starts_a_new_session_with_a_strict_http_only_cookie,
    a_form_post_without_the_right_csrf_token_is_refused_and_changes_nothing,
    a_form_post_from_another_origin_is_refused_but_loopback_aliases_count_as_ours,
    a_session_may_use_the_api_but_writes_need_the_csrf_header,
    logout_ends_the_session_on_the_server,
);

async fn session_rows(app: &TestApp) -> i64 {
    app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap())
        .await
}

async fn looking_at_the_login_and_registration_pages_writes_no_session(app: TestApp) {
    let setup_token = app
        .with_db(|conn| lanyard::services::accounts::issue_setup_token(conn).unwrap())
        .await
        .unwrap();
    let setup_link = format!("/register?setup_token={setup_token}");
    let pages = [
        "/login",
        "/register",
        setup_link.as_str(),
        "/register?setup_token=not-the-token",
    ];
    // Strangers without cookies, and one visitor whose browser keeps them.
    let returning = app.browser();
    for round in 0..25 {
        for path in pages {
            let stranger = app.client.get(app.url(path)).send().await.unwrap();
            assert!(
                stranger.status() == 200 || stranger.status() == 403,
                "GET {path}: {}",
                stranger.status()
            );
            assert!(csrf_from(&stranger.text().await.unwrap()).len() >= 32, "GET {path}");
            let visitor = returning.get(path).await;
            assert!(
                visitor.status() == 200 || visitor.status() == 403,
                "round {round}, GET {path}"
            );
        }
    }
    assert_eq!(session_rows(&app).await, 0, "200 anonymous page views");
    assert_eq!(returning.session_cookie(), None, "no session cookie either");

    // The forms still work, with the visitor's cookie from all those views.
    let registered = returning
        .register_with_setup_link(&setup_token, "first@example.com")
        .await;
    assert_eq!(registered.status(), 303);
    assert_eq!(location(&registered), "/llm-configurations");
    assert_eq!(session_rows(&app).await, 1, "signing up starts the one session");
    assert!(returning.page("/llm-configurations").await.contains("Log out"));

    let user = app.user().await;
    let signed_in = app.login(&user.email, TEST_PASSWORD).await;
    assert!(signed_in.page("/llm-configurations").await.contains("Log out"));
    assert_eq!(session_rows(&app).await, 2);
}

async fn a_failed_login_writes_no_session_and_its_page_lets_the_visitor_try_again(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let failed = visitor
        .post_form(
            "/login",
            &[
                ("email", user.email.as_str()),
                ("password", "not the password"),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(failed.status(), 422);
    let again = csrf_from(&failed.text().await.unwrap());
    assert_eq!(session_rows(&app).await, 0);

    // As a browser without JavaScript would: the form of the page that said no.
    let signed_in = visitor
        .post_form(
            "/login",
            &[
                ("email", user.email.as_str()),
                ("password", TEST_PASSWORD),
                ("csrf_token", again.as_str()),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/llm-configurations");
    assert!(visitor.page("/llm-configurations").await.contains("Log out"));
}

async fn the_sign_in_forms_refuse_a_missing_wrong_forged_or_foreign_csrf_token(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let csrf = csrf_from(&visitor.page("/login").await);
    let login = |token: &str| {
        [
            ("email", user.email.clone()),
            ("password", TEST_PASSWORD.to_owned()),
            ("csrf_token", token.to_owned()),
        ]
    };

    // The visitor's cookie, without the token or with another.
    let without = visitor
        .post_form("/login", &[("email", user.email.as_str()), ("password", TEST_PASSWORD)])
        .await;
    assert_eq!(without.status(), 403);
    let someone_elses = csrf_from(&app.browser().page("/login").await);
    assert_ne!(someone_elses, csrf);
    let wrong = visitor.client.post(visitor.url("/login")).form(&login(&someone_elses));
    assert_eq!(wrong.send().await.unwrap().status(), 403);

    // The right token, but no cookie, or a cookie made up to match it (not signed by us).
    let no_cookie = app.client.post(app.url("/login")).form(&login(&csrf));
    assert_eq!(no_cookie.send().await.unwrap().status(), 403);
    let forged = app
        .client
        .post(app.url("/login"))
        .header("Cookie", format!("{CSRF_COOKIE}={csrf}"))
        .form(&login(&csrf));
    assert_eq!(forged.send().await.unwrap().status(), 403);

    // The right token and cookie, from another site.
    let foreign = visitor
        .client
        .post(visitor.url("/login"))
        .header("Origin", "http://evil.example")
        .form(&login(&csrf));
    assert_eq!(foreign.send().await.unwrap().status(), 403);
    let register = visitor
        .client
        .post(visitor.url("/register"))
        .header("Origin", "http://evil.example")
        .form(&[
            ("email", "new@example.com"),
            ("password", TEST_PASSWORD),
            ("csrf_token", csrf.as_str()),
        ]);
    assert_eq!(register.send().await.unwrap().status(), 403);
    assert_eq!(visitor.session_cookie(), None);
    assert_eq!(session_rows(&app).await, 0);

    // The same form, as sent by its own page, signs in.
    let own = visitor.client.post(visitor.url("/login")).form(&login(&csrf));
    let own = own.send().await.unwrap();
    assert_eq!(own.status(), 303);
    assert!(visitor.page("/llm-configurations").await.contains("Log out"));
}

async fn the_sign_in_token_is_no_good_for_the_forms_of_a_signed_in_session(app: TestApp) {
    let user = app.user().await;
    let visitor = app.browser();
    let sign_in_token = csrf_from(&visitor.page("/login").await);
    let response = visitor
        .post_form(
            "/login",
            &[
                ("email", user.email.as_str()),
                ("password", TEST_PASSWORD),
                ("csrf_token", sign_in_token.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);

    // The session has its own token, and the pages show it...
    let session_token = visitor.csrf().await;
    assert_ne!(session_token, sign_in_token);
    // ...while the sign-in cookie's token, still in the browser, opens nothing.
    let refused = visitor
        .post_form("/logout", &[("csrf_token", sign_in_token.as_str())])
        .await;
    assert_eq!(refused.status(), 403);
    let refused = visitor
        .post_form_with("/logout", &[], &[("X-CSRF-Token", sign_in_token.as_str())])
        .await;
    assert_eq!(refused.status(), 403);
    assert!(visitor.page("/llm-configurations").await.contains("Log out"));

    let logout = visitor
        .post_form("/logout", &[("csrf_token", session_token.as_str())])
        .await;
    assert_eq!(logout.status(), 303);
    assert_eq!(location(&visitor.get("/llm-configurations").await), "/login");
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

async fn a_form_post_without_the_right_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let first = app.create_openai(&user.token, "first", "sk-first-key-000001").await;
    let second = app.create_openai(&user.token, "second", "sk-second-key-00002").await;
    let set_second_default = second.page("set-default");
    let csrf = browser.csrf().await;
    let before = app.configurations(&user.token).await;
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

    assert_eq!(app.configurations(&user.token).await, before);
    assert_eq!(
        app.configurations(&user.token).await[0].id,
        first.id,
        "the default did not move"
    );
    assert_eq!(token_names(&browser).await, tokens_before);
    assert_eq!(browser.csrf().await, csrf, "still signed in, same session");

    // The right token, in the field or in the header, is accepted.
    let accepted = browser.post_form(&set_second_default, &[("csrf_token", &csrf)]).await;
    assert_eq!(accepted.status(), 303);
    let listed = app.configurations(&user.token).await;
    assert_eq!(listed[0].id, second.id);
    let set_first_default = first.page("set-default");
    let by_header = browser
        .post_form_with(
            &set_first_default,
            &[],
            &[("HX-Request", "true"), ("X-CSRF-Token", &csrf)],
        )
        .await;
    assert_eq!(by_header.status(), 200);
    assert_eq!(app.configurations(&user.token).await[0].id, first.id);
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
    assert!(app.configurations(&user.token).await.is_empty());

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
        .configurations(&user.token)
        .await
        .into_iter()
        .map(|configuration| configuration.name)
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
    assert!(app.configurations(&user.token).await.is_empty());

    let created = browser
        .client
        .post(&api)
        .header("X-CSRF-Token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Configuration = created.json().await.unwrap();
    assert_eq!(created.api_key_masked.as_deref(), Some("sk-…0001"));

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
    let listed: Vec<Configuration> = listed.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    // Deleting is a write too.
    let path = browser.url(&created.path());
    assert_eq!(browser.client.delete(&path).send().await.unwrap().status(), 403);
    let deleted = browser
        .client
        .delete(&path)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(app.configurations(&user.token).await.is_empty());
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
