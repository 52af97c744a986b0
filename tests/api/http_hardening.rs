//! Hardening at the HTTP edge (issue 11): bounded metric labels, anonymous page views that write
//! nothing, request logs without query strings or spoofed addresses, HSTS.

use diesel::prelude::*;
use lanyard::config::Settings;
use lanyard::db::schema::sessions;
use lanyard::http::anonymous_csrf::COOKIE_NAME as CSRF_COOKIE;
use uuid::Uuid;

use crate::binary::{Sandbox, Server};
use crate::helpers::{
    Backend, TEST_PASSWORD, TestApp, TestDatabase, csrf_from, distinctive_key, free_port, location, master_key_entry,
};
use crate::{on_both_backends, on_both_backends_with};

on_both_backends!(
    made_up_methods_and_paths_add_no_metric_labels,
    looking_at_the_login_and_registration_pages_writes_no_session,
    a_failed_login_writes_no_session_and_its_page_lets_the_visitor_try_again,
    the_sign_in_forms_refuse_a_missing_wrong_forged_or_foreign_csrf_token,
    the_sign_in_token_is_no_good_for_the_forms_of_a_signed_in_session,
    a_plain_http_deployment_sends_no_hsts,
);

on_both_backends_with!(behind_https; an_https_deployment_tells_browsers_to_keep_to_https);

async fn session_rows(app: &TestApp) -> i64 {
    app.with_db(|conn| sessions::table.count().get_result::<i64>(conn).unwrap())
        .await
}

// ---------------------------------------------------------------------------------------------
// Metrics: labels from fixed sets.

const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Every value the exposition gives the label `name`.
fn label_values<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("{name}=\"");
    let mut values = Vec::new();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        for (at, _) in line.match_indices(marker.as_str()) {
            let rest = &line[at + marker.len()..];
            values.push(&rest[..rest.find('"').unwrap_or(rest.len())]);
        }
    }
    values
}

async fn made_up_methods_and_paths_add_no_metric_labels(app: TestApp) {
    let user = app.user().await;
    let mut strangers = Vec::new();
    for _ in 0..20 {
        let tag = Uuid::new_v4().simple().to_string();
        let method = reqwest::Method::from_bytes(format!("M{tag}").to_uppercase().as_bytes()).unwrap();
        for path in [
            format!("/p{tag}"),
            format!("/api/p{tag}"),
            format!("/llm-configurations/{tag}/p{tag}"),
        ] {
            let response = app.client.request(method.clone(), app.url(&path)).send().await.unwrap();
            assert!(response.status().is_client_error(), "{method} {path}");
            let response = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "GET {path}");
        }
        // A made-up method on a real route.
        let response = app
            .client
            .request(method.clone(), app.url("/api/llm-configurations"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{method} on a route");
        strangers.push(tag);
    }

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let exposition = response.text().await.unwrap();
    for tag in &strangers {
        assert!(
            !exposition.to_ascii_lowercase().contains(tag.as_str()),
            "a stranger's method or path became a label:\n{exposition}"
        );
    }
    let methods = label_values(&exposition, "method");
    assert!(
        methods.contains(&"OTHER"),
        "made-up methods count as OTHER:\n{exposition}"
    );
    for method in methods {
        assert!(
            method == "OTHER" || STANDARD_METHODS.contains(&method),
            "method label `{method}`"
        );
    }
    let routes = label_values(&exposition, "route");
    assert!(routes.contains(&"unmatched"), "{exposition}");
    assert!(routes.contains(&"/api/llm-configurations"), "{exposition}");
    for route in routes {
        assert!(route == "unmatched" || route.starts_with('/'), "route label `{route}`");
    }
}

// ---------------------------------------------------------------------------------------------
// Anonymous page views write nothing; the sign-in forms keep their CSRF protection.

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
    let form = returning.page(&setup_link).await;
    let registered = returning
        .post_form(
            "/register",
            &[
                ("email", "first@example.com"),
                ("password", TEST_PASSWORD),
                ("setup_token", setup_token.as_str()),
                ("csrf_token", csrf_from(&form).as_str()),
            ],
        )
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

// ---------------------------------------------------------------------------------------------
// HSTS.

fn behind_https(settings: &mut Settings) {
    settings.public_url = url::Url::parse("https://lanyard.example.com").unwrap();
}

const HSTS: &str = "strict-transport-security";

async fn an_https_deployment_tells_browsers_to_keep_to_https(app: TestApp) {
    for path in ["/login", "/healthz", "/api/llm-configurations", "/no-such-page"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers().get(HSTS).map(|value| value.to_str().unwrap()),
            Some("max-age=31536000"),
            "GET {path}"
        );
    }
}

async fn a_plain_http_deployment_sends_no_hsts(app: TestApp) {
    for path in ["/login", "/healthz", "/api/llm-configurations", "/no-such-page"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers().get(HSTS), None, "GET {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Request logs, through the real binary.

/// `lanyard serve` on a fresh SQLite database, with `env` added; returns it once it answers.
async fn serve(sandbox: &Sandbox, database: &TestDatabase, env: &[(&'static str, String)]) -> Server {
    let port = free_port();
    let mut envs = vec![
        ("DATABASE_URL", database.url_string()),
        ("LANYARD_MASTER_KEYS", master_key_entry("log-key")),
        ("LANYARD_BIND", format!("127.0.0.1:{port}")),
        ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
        ("LANYARD_LOG", "info".to_owned()),
    ];
    envs.extend_from_slice(env);
    let mut server = Server::new(sandbox.start(&envs, &["serve"], ""), port);
    server.until_serving().await;
    server
}

/// Requests whose query string carries `secret` and that claim to come from `forwarded`.
async fn send_revealing_requests(server: &Server, secret: &str, forwarded: &str) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        format!("/healthz?api_key={secret}"),
        format!("/login?api_key={secret}"),
        format!("/api/llm-configurations?api_key={secret}"),
        format!("/no-such-page?api_key={secret}"),
    ] {
        let response = client
            .get(server.url(&path))
            .header("X-Forwarded-For", forwarded)
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 500, "GET {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_the_path_without_its_query_and_ignore_a_strangers_forwarded_address() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sandbox = Sandbox::new();
    let server = serve(&sandbox, &database, &[]).await;
    let secret = distinctive_key("sk-logged-");
    send_revealing_requests(&server, &secret, "203.0.113.9").await;
    let log = server.stop();

    assert!(log.contains("http.target=/login"), "the request is logged:\n{log}");
    assert!(log.contains("http.target=/api/llm-configurations"), "{log}");
    assert!(!log.contains(&secret), "the query string reached the log:\n{log}");
    assert!(!log.contains("api_key"), "the query string reached the log:\n{log}");
    assert!(log.contains("http.client_ip=127.0.0.1"), "the peer is logged:\n{log}");
    assert!(
        !log.contains("203.0.113.9"),
        "a stranger's X-Forwarded-For reached the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_request_logs_carry_the_forwarded_address() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sandbox = Sandbox::new();
    let proxy = [("LANYARD_TRUSTED_PROXIES", "127.0.0.1/32".to_owned())];
    let server = serve(&sandbox, &database, &proxy).await;
    let secret = distinctive_key("sk-logged-");
    send_revealing_requests(&server, &secret, "198.51.100.7, 203.0.113.9").await;
    let log = server.stop();

    assert!(
        log.contains("http.client_ip=203.0.113.9"),
        "the address the proxy saw is logged:\n{log}"
    );
    assert!(
        !log.contains("198.51.100.7"),
        "entries the client wrote itself prove nothing:\n{log}"
    );
    assert!(!log.contains(&secret), "the query string reached the log:\n{log}");
}
