//! A configuration's parameters (`connections.md`, "Parameters"): each member's rule at its
//! bounds, unknown members and credential headers refused, and the parameters carried through
//! create, update, resolve, the OpenHands import, the JSON export and the page's form.

use serde_json::{Map, Value, json};

use crate::binary::{Finished, Sandbox};
use crate::helpers::command_line::lanyard;
use crate::helpers::configurations::{CONFIGURATIONS, id_of, openai, path_of};
use crate::helpers::pages::tag_with_id;
use crate::helpers::resolve::{resolved, user_and_resolver};
use crate::helpers::{TestApp, assert_error, location};
use crate::on_both_backends;

on_both_backends!(
    each_parameter_is_accepted_at_its_bounds_and_refused_just_past_them,
    unknown_members_and_anything_but_an_object_are_refused,
    credential_headers_are_refused_in_any_case,
    parameters_round_trip_through_create_get_and_resolve,
    a_put_replaces_the_parameters_and_null_clears_them,
    an_openhands_import_carries_the_parameters_to_resolve_and_the_export,
    an_openhands_parameter_out_of_range_imports_nothing,
    a_json_export_round_trips_the_parameters,
    the_form_posts_parameters_and_shows_an_error_beside_the_field,
);

/// An OpenAI configuration named `name` with these parameters.
fn with_parameters(name: &str, parameters: Value) -> Value {
    let mut body = openai(name);
    body["parameters"] = parameters;
    body
}

/// The names in an error's `fields`.
fn fields_of(body: &Value) -> Vec<String> {
    body["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

/// Equal as JSON, numbers by value (a temperature of `0` reads back as `0.0`).
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual.as_f64(), expected.as_f64()) {
        (Some(actual), Some(expected)) => actual == expected,
        _ => actual == expected,
    }
}

/// `parameters` refused under exactly `field`, both on a create and on an update of `target`;
/// returns the two error bodies.
async fn assert_refused(app: &TestApp, token: &str, target: &Value, parameters: Value, field: &str) -> [Value; 2] {
    let created = app
        .post_json(CONFIGURATIONS, token, &with_parameters("refused", parameters.clone()))
        .await;
    let updated = app
        .put_json(&path_of(target), token, &json!({ "parameters": parameters }))
        .await;
    let mut bodies = Vec::new();
    for (action, response) in [("create", created), ("update", updated)] {
        let body = assert_error(response, 422, "validation_failed").await;
        assert_eq!(fields_of(&body), [field], "{action} with {parameters}: {body}");
        bodies.push(body);
    }
    [bodies.remove(0), bodies.remove(0)]
}

/// Headers `X-0`, `X-1`, … with the value `v`.
fn headers(count: usize) -> Value {
    Value::Object((0..count).map(|i| (format!("X-{i}"), json!("v"))).collect())
}

/// Each member of the spec's table: values at its bounds, and values just past them.
fn table() -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    vec![
        (
            "temperature",
            vec![json!(0), json!(2.0), json!(0.7)],
            vec![json!(-0.01), json!(2.01), json!("1")],
        ),
        ("top_p", vec![json!(0), json!(1)], vec![json!(-0.01), json!(1.01)]),
        (
            "max_output_tokens",
            vec![json!(1), json!(1_000_000)],
            vec![json!(0), json!(1_000_001), json!(1.5)],
        ),
        (
            "reasoning_effort",
            vec![json!("low"), json!("medium"), json!("high")],
            vec![json!(""), json!("High"), json!("extreme")],
        ),
        (
            "timeout_seconds",
            vec![json!(1), json!(3600)],
            vec![json!(0), json!(3601), json!(60.5)],
        ),
        (
            "api_version",
            vec![json!("1"), json!("a".repeat(32)), json!("2024-10-21.preview")],
            vec![json!(""), json!("a".repeat(33)), json!("2024/10/21"), json!(20241021)],
        ),
        (
            "extra_headers",
            vec![
                json!({"X-Team": "p"}),
                headers(20),
                json!({ "x".repeat(64): "v" }),
                json!({"X-Long": "v".repeat(1024)}),
                json!({"X-Token_chars!#$%&'*+.^`|~": "printable ~ and spaces"}),
            ],
            vec![
                headers(21),
                json!({ "x".repeat(65): "v" }),
                json!({"X Team": "v"}),
                json!({"X-Team": ""}),
                json!({"X-Long": "v".repeat(1025)}),
                json!({"X-Team": "line\nbreak"}),
                json!({"X-Team": 1}),
                json!({"X-Team": "a", "x-team": "b"}),
            ],
        ),
    ]
}

async fn each_parameter_is_accepted_at_its_bounds_and_refused_just_past_them(app: TestApp) {
    let user = app.user().await;
    let target = app.create_configuration(&user.token, openai("target")).await;
    let mut created = 0;
    for (member, accepted, refused) in table() {
        for value in accepted {
            let parameters = json!({ member: value });
            let body = app
                .create_configuration(
                    &user.token,
                    with_parameters(&format!("{member}-{created}"), parameters.clone()),
                )
                .await;
            created += 1;
            assert!(same(&body["parameters"][member], &value), "{member} = {value}: {body}");
            let response = app
                .put_json(&path_of(&target), &user.token, &json!({ "parameters": parameters }))
                .await;
            assert_eq!(response.status(), 200, "{member} = {value}");
            let body: Value = response.json().await.unwrap();
            let members = body["parameters"].as_object().unwrap();
            assert_eq!(members.len(), 1, "replaced whole: {body}");
            assert!(same(&members[member], &value), "{member} = {value}: {body}");
        }
        let before = app.list(&user.token).await;
        for value in refused {
            let field = format!("parameters.{member}");
            assert_refused(&app, &user.token, &target, json!({ member: value }), &field).await;
        }
        assert_eq!(
            app.list(&user.token).await,
            before,
            "a refused {member} changes nothing"
        );
    }
}

async fn unknown_members_and_anything_but_an_object_are_refused(app: TestApp) {
    let user = app.user().await;
    let target = app
        .create_configuration(&user.token, with_parameters("target", json!({"temperature": 1})))
        .await;
    let cases = [
        (json!({"seed": 7}), "parameters.seed"),
        (
            json!({"temperature": 1, "frequency_penalty": 0}),
            "parameters.frequency_penalty",
        ),
        (json!("temperature=1"), "parameters"),
        (json!([{"temperature": 1}]), "parameters"),
        (json!(1), "parameters"),
        (json!(true), "parameters"),
    ];
    for (parameters, field) in cases {
        assert_refused(&app, &user.token, &target, parameters, field).await;
    }
    let list = app.list(&user.token).await;
    assert_eq!(list, [target]);
}

async fn credential_headers_are_refused_in_any_case(app: TestApp) {
    let user = app.user().await;
    let target = app.create_configuration(&user.token, openai("target")).await;
    for name in [
        "Authorization",
        "AUTHORIZATION",
        "authorization",
        "x-api-key",
        "X-API-KEY",
        "api-key",
        "x-goog-api-key",
        "Proxy-Authorization",
        "Cookie",
        "Host",
    ] {
        let parameters = json!({"extra_headers": { name: "Bearer sk-smuggled-0123456789" }});
        let field = "parameters.extra_headers";
        for body in assert_refused(&app, &user.token, &target, parameters, field).await {
            assert!(
                !body.to_string().contains("sk-smuggled"),
                "the value is not echoed: {body}"
            );
        }
    }
    assert_eq!(app.list(&user.token).await, [target]);
}

fn full_parameters() -> Value {
    json!({
        "temperature": 0.3,
        "top_p": 0.95,
        "max_output_tokens": 8192,
        "reasoning_effort": "medium",
        "timeout_seconds": 90,
        "api_version": "2024-10-21",
        "extra_headers": {"X-Team": "platform", "OpenAI-Organization": "org-1"},
    })
}

async fn parameters_round_trip_through_create_get_and_resolve(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let plain = app.create_configuration(&user.token, openai("plain")).await;
    assert_eq!(plain["parameters"], json!({}), "none set: {plain}");
    let tuned = app
        .create_configuration(&user.token, with_parameters("tuned", full_parameters()))
        .await;
    assert_eq!(tuned["parameters"], full_parameters());
    let fetched: Value = app.get(&path_of(&tuned), &user.token).await.json().await.unwrap();
    assert_eq!(fetched, tuned);

    // The first configuration is the default: resolve shows its (empty) parameters…
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["configuration"]["parameters"], json!({}), "{body}");
    // …and the tuned one's once it is the default.
    let response = app
        .put_json(&format!("{}/set-default", path_of(&tuned)), &user.token, &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["configuration"]["id"], tuned["id"]);
    assert_eq!(body["configuration"]["parameters"], full_parameters(), "{body}");
}

async fn a_put_replaces_the_parameters_and_null_clears_them(app: TestApp) {
    let user = app.user().await;
    let created = app
        .create_configuration(&user.token, with_parameters("tuned", full_parameters()))
        .await;
    let put = |body: Value| {
        let app = &app;
        let path = path_of(&created);
        let token = user.token.clone();
        async move {
            let response = app.put_json(&path, &token, &body).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let renamed = put(json!({"name": "renamed"})).await;
    assert_eq!(renamed["parameters"], full_parameters(), "left out: kept");
    let replaced = put(json!({"parameters": {"max_output_tokens": 5}})).await;
    assert_eq!(
        replaced["parameters"],
        json!({"max_output_tokens": 5}),
        "replaced whole"
    );
    let emptied = put(json!({"parameters": {}})).await;
    assert_eq!(emptied["parameters"], json!({}));
    put(json!({"parameters": {"top_p": 0.5}})).await;
    let cleared = put(json!({"parameters": null})).await;
    assert_eq!(cleared["parameters"], json!({}), "null clears them");
    let fetched: Value = app.get(&path_of(&created), &user.token).await.json().await.unwrap();
    assert_eq!(fetched["parameters"], json!({}));
}

const OPENHANDS_TUNED: &str = r#"[core]
workspace_base = "./workspace"

[llm.tuned]
model = "azure/gpt-4o"
api_key = "sk-azure-imported-key-0021"
base_url = "https://example-resource.openai.azure.com"
api_version = "2024-10-21"
temperature = 0.2
top_p = 0.9
max_output_tokens = 4096
reasoning_effort = "high"
timeout = 120
num_retries = 4

[sandbox]
timeout = 300
"#;

/// What `OPENHANDS_TUNED` holds, under Lanyard's names.
fn openhands_tuned_parameters() -> Value {
    json!({
        "api_version": "2024-10-21",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 4096,
        "reasoning_effort": "high",
        "timeout_seconds": 120,
    })
}

/// `lanyard import FORMAT` of a file holding `contents`, for the user `email`.
fn import(app: &TestApp, sandbox: &Sandbox, format: &str, contents: &str, email: &str) -> Finished {
    let file = sandbox.workdir().join(format!("import.{format}"));
    std::fs::write(&file, contents).unwrap();
    let file = file.to_str().unwrap();
    lanyard(app, sandbox, &["import", format, "--file", file, "--email", email], "")
}

/// `lanyard export` for the user `email`, as JSON.
fn export(app: &TestApp, sandbox: &Sandbox, email: &str) -> Value {
    let exported = lanyard(app, sandbox, &["export", "--email", email], "");
    exported.assert_success();
    serde_json::from_str(&exported.stdout).unwrap()
}

async fn an_openhands_import_carries_the_parameters_to_resolve_and_the_export(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let sandbox = Sandbox::new();
    import(&app, &sandbox, "openhands", OPENHANDS_TUNED, &user.email).assert_success();

    let body = resolved(&app, &resolver, None).await;
    assert_eq!(body["configuration"]["name"], "tuned", "{body}");
    assert_eq!(
        body["configuration"]["parameters"],
        openhands_tuned_parameters(),
        "{body}"
    );

    let document = export(&app, &sandbox, &user.email);
    assert_eq!(
        document["configurations"][0]["parameters"],
        openhands_tuned_parameters(),
        "{document}"
    );
}

async fn an_openhands_parameter_out_of_range_imports_nothing(app: TestApp) {
    let user = app.user().await;
    let sandbox = Sandbox::new();
    let file = OPENHANDS_TUNED.replace("temperature = 0.2", "temperature = 2.5");
    let finished = import(&app, &sandbox, "openhands", &file, &user.email);
    finished.assert_failure();
    assert!(finished.stderr.contains("[llm.tuned]"), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("parameters.temperature"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("nothing was imported"), "{}", finished.stderr);
    assert!(app.list(&user.token).await.is_empty());
}

async fn a_json_export_round_trips_the_parameters(app: TestApp) {
    let user = app.user().await;
    app.create_configuration(&user.token, with_parameters("tuned", full_parameters()))
        .await;
    app.create_configuration(&user.token, openai("plain")).await;
    let sandbox = Sandbox::new();
    let document = export(&app, &sandbox, &user.email);

    let other = app.user().await;
    import(&app, &sandbox, "json", &document.to_string(), &other.email).assert_success();
    let copies: Map<String, Value> = app
        .list(&other.token)
        .await
        .into_iter()
        .map(|copy| (copy["name"].as_str().unwrap().to_owned(), copy["parameters"].clone()))
        .collect();
    assert_eq!(copies["tuned"], full_parameters());
    assert_eq!(copies["plain"], json!({}));
}

/// The form's fields for an OpenAI configuration, with these parameter inputs.
fn form_with<'a>(name: &'a str, csrf: &'a str, parameters: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", name),
        ("provider", "openai"),
        ("model", "gpt-4o"),
        ("api_key", "sk-form-made-key-0022"),
        ("base_url", ""),
        ("is_active", "true"),
        ("csrf_token", csrf),
    ];
    fields.extend_from_slice(parameters);
    fields
}

async fn the_form_posts_parameters_and_shows_an_error_beside_the_field(app: TestApp) {
    let (user, browser) = app.signed_in_user().await;
    let csrf = browser.csrf().await;

    // A closed section, every input named as the spec says, reasoning effort a choice.
    let page = browser.page("/llm-configurations/new").await;
    let details = tag_with_id(&page, "parameters");
    assert!(
        details.starts_with("<details") && !details.contains("open"),
        "{details}"
    );
    for input in [
        "temperature",
        "top_p",
        "max_output_tokens",
        "timeout_seconds",
        "api_version",
    ] {
        let tag = tag_with_id(&page, &format!("parameters-{input}"));
        assert!(tag.contains(&format!(r#"name="parameters.{input}""#)), "{tag}");
    }
    assert!(tag_with_id(&page, "parameters-reasoning_effort").starts_with("<select"));
    assert!(page.contains(r#"<option value="" selected>"#), "an empty choice");
    assert!(tag_with_id(&page, "parameters-extra_headers").starts_with(r#"<textarea"#));

    let posted = [
        ("parameters.temperature", "0.5"),
        ("parameters.top_p", ""),
        ("parameters.max_output_tokens", "2048"),
        ("parameters.reasoning_effort", "high"),
        ("parameters.timeout_seconds", ""),
        ("parameters.api_version", ""),
        ("parameters.extra_headers", "X-Team: platform\r\n\r\nX-Trace: on\r\n"),
    ];
    let response = browser
        .post_form("/llm-configurations", &form_with("formed", &csrf, &posted))
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/llm-configurations");
    let created = app.list(&user.token).await.remove(0);
    let expected = json!({
        "temperature": 0.5,
        "max_output_tokens": 2048,
        "reasoning_effort": "high",
        "extra_headers": {"X-Team": "platform", "X-Trace": "on"},
    });
    assert_eq!(created["parameters"], expected, "empty inputs are not set: {created}");

    // The edit form shows them again.
    let edit = browser
        .page(&format!("/llm-configurations/{}/edit", id_of(&created)))
        .await;
    assert!(
        tag_with_id(&edit, "parameters-temperature").contains(r#"value="0.5""#),
        "{edit}"
    );
    assert!(edit.contains(r#"<option value="high" selected>"#), "{edit}");
    assert!(edit.contains("X-Team: platform\nX-Trace: on</textarea>"), "{edit}");

    // An invalid value: 422, the section open, the message right after its field, nothing saved.
    let refused = [
        ("parameters.temperature", "3"),
        (
            "parameters.extra_headers",
            "Authorization: Bearer sk-smuggled-0123456789",
        ),
    ];
    let path = format!("/llm-configurations/{}", id_of(&created));
    for htmx in [false, true] {
        let fields = form_with("formed", &csrf, &refused);
        let response = if htmx {
            browser.post_htmx(&path, &fields).await
        } else {
            browser.post_form(&path, &fields).await
        };
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        assert!(tag_with_id(&html, "parameters").contains("open"), "{html}");
        let input = tag_with_id(&html, "parameters-temperature");
        assert!(
            input.contains(r#"aria-invalid="true""#) && input.contains(r#"value="3""#),
            "{input}"
        );
        let error_at = html
            .find(r#"id="parameters-temperature-error""#)
            .expect("an error beside the field");
        assert!(html.find(r#"id="parameters-temperature""#).unwrap() < error_at);
        assert!(error_at < html.find(r#"id="parameters-top_p""#).unwrap());
        assert!(html.contains(r#"id="parameters-extra_headers-error""#), "{html}");
        assert!(!tag_with_id(&html, "parameters-top_p").contains("aria-invalid"));
    }
    let response = browser
        .post_form("/llm-configurations", &form_with("second", &csrf, &refused))
        .await;
    assert_eq!(response.status(), 422);
    let after = app.list(&user.token).await;
    assert_eq!(after, [created], "nothing changed");
}
