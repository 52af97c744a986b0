//! `GET /api/openapi.json`: an OpenAPI 3 document that lists every route of the API with its
//! method, and only routes that are served; and the provider catalogue of `product.md`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser};
use crate::on_both_backends;

on_both_backends!(
    the_openapi_document_is_public_and_lists_every_route_with_its_method,
    every_documented_route_and_method_is_served,
    the_provider_catalogue_matches_the_product_table,
);

/// The endpoints of `api.md`, `connections.md` and `organisations.md` that exist now, as
/// (method, path template).
const ROUTES: [(&str, &str); 53] = [
    ("get", "/api/llm-configurations"),
    ("post", "/api/llm-configurations"),
    ("get", "/api/llm-configurations/default"),
    ("get", "/api/llm-configurations/{id}"),
    ("put", "/api/llm-configurations/{id}"),
    ("delete", "/api/llm-configurations/{id}"),
    ("put", "/api/llm-configurations/{id}/set-default"),
    ("post", "/api/llm-configurations/test"),
    ("post", "/api/llm-configurations/{id}/test"),
    ("get", "/api/connections"),
    ("post", "/api/connections"),
    ("get", "/api/connections/{id}"),
    ("put", "/api/connections/{id}"),
    ("delete", "/api/connections/{id}"),
    ("post", "/api/connections/{id}/test"),
    ("get", "/api/connections/{id}/models"),
    ("post", "/api/connections/{id}/models/refresh"),
    ("get", "/api/providers"),
    ("get", "/api/export"),
    ("get", "/api/conversations"),
    ("put", "/api/conversations/{conversation_id}/llm-configuration"),
    ("delete", "/api/conversations/{conversation_id}/llm-configuration"),
    ("get", "/api/resolve"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("get", "/api/organisations"),
    ("post", "/api/organisations"),
    ("get", "/api/organisations/{id}"),
    ("put", "/api/organisations/{id}"),
    ("delete", "/api/organisations/{id}"),
    ("put", "/api/organisations/{id}/membership"),
    ("get", "/api/organisations/{id}/members"),
    ("post", "/api/organisations/{id}/members"),
    ("put", "/api/organisations/{id}/members/{user_id}"),
    ("delete", "/api/organisations/{id}/members/{user_id}"),
    ("delete", "/api/organisations/{id}/invitations"),
    ("post", "/api/organisations/{id}/invitation/accept"),
    ("post", "/api/organisations/{id}/invitation/decline"),
    ("get", "/api/organisations/{id}/tokens"),
    ("post", "/api/organisations/{id}/tokens"),
    ("delete", "/api/organisations/{id}/tokens/{token_id}"),
    ("get", "/api/organisations/{id}/audit"),
    ("get", "/api/organisations/{id}/webhooks"),
    ("post", "/api/organisations/{id}/webhooks"),
    ("get", "/api/webhooks"),
    ("post", "/api/webhooks"),
    ("get", "/api/webhooks/{id}"),
    ("put", "/api/webhooks/{id}"),
    ("delete", "/api/webhooks/{id}"),
    ("post", "/api/webhooks/{id}/rotate-secret"),
    ("get", "/api/webhooks/{id}/deliveries"),
    ("post", "/api/webhooks/{id}/ping"),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

async fn openapi_document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the document needs no credentials");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    response.json().await.unwrap()
}

/// Every (method, path) the document describes.
fn documented_operations(document: &Value) -> Vec<(String, String)> {
    let paths = document["paths"].as_object().expect("`paths` is an object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some_and(Value::is_object))
                .map(|method| (method.to_owned(), path.clone()))
        })
        .collect()
}

async fn the_openapi_document_is_public_and_lists_every_route_with_its_method(app: TestApp) {
    let document = openapi_document(&app).await;
    let version = document["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "an OpenAPI 3 document, not {version}");
    assert!(document["info"]["title"].is_string(), "{}", document["info"]);
    let documented = documented_operations(&document);
    for (method, path) in ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{} {path} is missing from the document; it has {documented:?}",
            method.to_uppercase()
        );
        let operation = &document["paths"][path][method];
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|responses| !responses.is_empty()),
            "{} {path} documents no responses",
            method.to_uppercase()
        );
    }
}

async fn every_documented_route_and_method_is_served(app: TestApp) {
    let user = app.user().await;
    let document = openapi_document(&app).await;
    let operations = documented_operations(&document);
    assert!(operations.len() >= ROUTES.len(), "{operations:?}");

    // What the router answers for a path it does not know.
    let missing = app.get("/api/no-such-route", &user.token).await;
    let missing_status = missing.status();
    let missing_body: Value = missing.json().await.unwrap_or(Value::Null);
    assert_eq!(missing_status, 404);

    for (n, (method, template)) in operations.iter().enumerate() {
        // Path parameters name a configuration the caller owns (or, under /api/connections, its
        // connection), fresh for each request, so a real handler has no reason to answer 404.
        let owned = app
            .create_openai(&user.token, &format!("route-{n}"), "sk-route-key-000001")
            .await;
        let path = if template.starts_with("/api/organisations/{id}") {
            organisation_path(&app, &user, template, n).await
        } else if template.starts_with("/api/webhooks/") {
            let created = app
                .post_json(
                    "/api/webhooks",
                    &user.token,
                    &json!({"url": format!("https://hooks.example.com/{n}")}),
                )
                .await;
            assert_eq!(created.status(), 201);
            let webhook: Value = created.json().await.unwrap();
            substitute_parameters(template, webhook["id"].as_str().unwrap())
        } else if template.starts_with("/api/connections/") {
            substitute_parameters(template, &owned.connection_id.to_string())
        } else {
            substitute_parameters(template, &owned.id.to_string())
        };
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&user.token);
        if method == reqwest::Method::POST || method == reqwest::Method::PUT || method == reqwest::Method::PATCH {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path} is documented but not routed: {body}");
        assert!(
            !(status == missing_status && body == missing_body),
            "{method} {path} is documented but answers like a missing route: {status} {body}"
        );
    }
}

/// An organisation route with `{id}` naming an organisation fresh for the request: one the caller
/// owns, or for the answers to an invitation one that invited them; `{user_id}` is the caller.
async fn organisation_path(app: &TestApp, user: &TestUser, template: &str, n: usize) -> String {
    let host;
    let (owner, name) = if template.contains("/invitation/") {
        host = app.user().await;
        (&host, format!("inviting-{n}"))
    } else {
        (user, format!("route-{n}"))
    };
    let created = app
        .post_json("/api/organisations", &owner.token, &json!({"name": name}))
        .await;
    assert_eq!(created.status(), 201);
    let organisation: Value = created.json().await.unwrap();
    let id = organisation["id"].as_str().unwrap();
    if owner.id != user.id {
        let invited = app
            .post_json(
                &format!("/api/organisations/{id}/members"),
                &owner.token,
                &json!({"email": user.email}),
            )
            .await;
        assert_eq!(invited.status(), 202);
    }
    template.replace("{id}", id).replace("{user_id}", &user.id.to_string())
}

/// `/api/llm-configurations/{id}/set-default` with every `{…}` replaced by `value`.
fn substitute_parameters(template: &str, value: &str) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|close| open + close).unwrap();
        path.push_str(&rest[..open]);
        path.push_str(value);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    path
}

async fn the_provider_catalogue_matches_the_product_table(app: TestApp) {
    // product.md, "Providers": id, label, API key needed, base URL needed, default base URL.
    let expected: [(&str, &str, bool, bool, Option<&str>); 12] = [
        ("openai", "OpenAI", true, false, Some("https://api.openai.com/v1")),
        ("anthropic", "Anthropic", true, false, Some("https://api.anthropic.com")),
        (
            "gemini",
            "Google Gemini",
            true,
            false,
            Some("https://generativelanguage.googleapis.com"),
        ),
        ("azure_openai", "Azure OpenAI", true, true, None),
        ("mistral", "Mistral", true, false, Some("https://api.mistral.ai/v1")),
        ("groq", "Groq", true, false, Some("https://api.groq.com/openai/v1")),
        (
            "openrouter",
            "OpenRouter",
            true,
            false,
            Some("https://openrouter.ai/api/v1"),
        ),
        ("deepseek", "DeepSeek", true, false, Some("https://api.deepseek.com/v1")),
        (
            "together",
            "Together AI",
            true,
            false,
            Some("https://api.together.xyz/v1"),
        ),
        ("xai", "xAI", true, false, Some("https://api.x.ai/v1")),
        ("ollama", "Ollama", false, true, None),
        ("openai_compatible", "Custom (OpenAI-compatible)", false, true, None),
    ];
    let user = app.user().await;
    let response = app.get("/api/providers", &user.token).await;
    assert_eq!(response.status(), 200);
    let providers: Vec<Value> = response.json().await.unwrap();
    assert_eq!(providers.len(), 12, "{providers:?}");
    let by_id: BTreeMap<&str, &Value> = providers
        .iter()
        .map(|provider| (provider["id"].as_str().expect("an id"), provider))
        .collect();
    assert_eq!(by_id.len(), 12, "provider ids are unique: {providers:?}");
    for (id, label, needs_api_key, needs_base_url, default_base_url) in expected {
        let provider = by_id.get(id).unwrap_or_else(|| panic!("{id} is missing"));
        let shown = json!({
            "id": provider["id"],
            "label": provider["label"],
            "needs_api_key": provider["needs_api_key"],
            "needs_base_url": provider["needs_base_url"],
            "default_base_url": provider["default_base_url"],
        });
        assert_eq!(
            shown,
            json!({
                "id": id,
                "label": label,
                "needs_api_key": needs_api_key,
                "needs_base_url": needs_base_url,
                "default_base_url": default_base_url,
            }),
            "{id}"
        );
        assert!(
            provider.get("default_base_url").is_some(),
            "{id}: `default_base_url` is present, null when there is none"
        );
    }
}
