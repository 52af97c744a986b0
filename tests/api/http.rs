//! HTTP conventions of the API and pages: JSON errors for malformed input and unknown routes,
//! security headers, HSTS behind HTTPS.

use lanyard::config::Settings;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::configurations::{CONFIGURATIONS, openai_with_key};
use crate::helpers::{Browser, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends!(settings(behind_https):
    an_https_deployment_tells_browsers_to_keep_to_https,
);

on_both_backends!(
    a_plain_http_deployment_sends_no_hsts,
    every_page_sends_the_security_headers,
    malformed_json_is_a_400,
    a_body_not_sent_as_json_is_a_400,
    a_malformed_uuid_in_the_path_is_a_400,
    unknown_api_routes_are_a_json_404,
);

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

async fn assert_security_headers(browser: &Browser, path: &str, htmx: bool) {
    let response = if htmx {
        browser.get_htmx(path).await
    } else {
        browser.get(path).await
    };
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP on {path}"))
        .to_str()
        .unwrap();
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
}

async fn every_page_sends_the_security_headers(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let configuration = app.create_openai(&user.token, "headers", "sk-headers-key-0001").await;
    let visitor = app.browser();
    for path in [
        "/login",
        "/register",
        "/llm-configurations",
        "/settings",
        "/no-such-page",
    ] {
        assert_security_headers(&visitor, path, false).await;
    }
    let edit = format!("/llm-configurations/{}/edit", configuration.id);
    let delete = format!("/llm-configurations/{}/delete", configuration.id);
    for path in [
        "/",
        "/llm-configurations",
        "/llm-configurations/new",
        edit.as_str(),
        delete.as_str(),
        "/settings",
        "/no-such-page",
    ] {
        assert_security_headers(&browser, path, false).await;
        assert_security_headers(&browser, path, true).await;
    }
}

async fn malformed_json_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    for body in [
        r#"{"name": "x","#,
        "",
        "{name: 'x'}",
        r#"{"name": "x"} trailing"#,
        "\u{feff}nope",
    ] {
        for request in [
            app.client.post(app.url(CONFIGURATIONS)),
            app.client.put(app.url(&created.path())),
        ] {
            let response = request
                .bearer_auth(&user.token)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_error(response, 400, "bad_request").await;
        }
    }
    assert_eq!(app.configurations(&user.token).await, vec![created]);
}

async fn a_body_not_sent_as_json_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let valid = openai_with_key("sent-as-text", "sk-text-key-0123456789").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        for request in [
            app.client.post(app.url(CONFIGURATIONS)),
            app.client.put(app.url(&created.path())),
        ] {
            let mut request = request.bearer_auth(&user.token).body(valid.clone());
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let response = request.send().await.unwrap();
            assert_error(response, 400, "bad_request").await;
        }
    }
    // The same body declared as JSON (with a charset) is accepted.
    let accepted = app
        .client
        .post(app.url(CONFIGURATIONS))
        .bearer_auth(&user.token)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    assert_eq!(app.configuration_names(&user.token).await, ["kept", "sent-as-text"]);
}

async fn a_malformed_uuid_in_the_path_is_a_400(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    let valid = created.id.to_string();
    for id in [
        "not-a-uuid".to_owned(),
        "123".to_owned(),
        valid[..valid.len() - 1].to_owned(),
        format!("{valid}0"),
        valid.replace('-', "_"),
    ] {
        let path = format!("{CONFIGURATIONS}/{id}");
        assert_error(app.get(&path, &user.token).await, 400, "bad_request").await;
        assert_error(
            app.put_json(&path, &user.token, &json!({"name": "x"})).await,
            400,
            "bad_request",
        )
        .await;
        assert_error(app.delete(&path, &user.token).await, 400, "bad_request").await;
        assert_error(
            app.put_json(&format!("{path}/set-default"), &user.token, &json!({}))
                .await,
            400,
            "bad_request",
        )
        .await;
    }
    assert_eq!(app.configurations(&user.token).await, vec![created]);
}

async fn unknown_api_routes_are_a_json_404(app: TestApp) {
    let user = app.user().await;
    let created = app.create_openai(&user.token, "kept", "sk-kept-key-0123456789").await;
    for path in [
        "/api/nope".to_owned(),
        "/api/llm-configuration".to_owned(),
        format!("{}/nope", created.path()),
        "/api/llm-configurations/default/extra".to_owned(),
    ] {
        for response in [
            app.get(&path, &user.token).await,
            app.post_json(&path, &user.token, &json!({})).await,
            app.client.get(app.url(&path)).send().await.unwrap(),
        ] {
            let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
            assert!(content_type.starts_with("application/json"), "{path}: {content_type}");
            assert_error(response, 404, "not_found").await;
        }
    }
}
