//! `lanyard import` and `lanyard export`, through the real binary: OpenHands files with their
//! keys, idempotent re-imports, exports without keys, and errors that name the place, not the secret.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::binary::{COMMAND_LIMIT, Finished, Sandbox, Site, master_keys};
use crate::helpers::configurations::Configuration;
use crate::helpers::resolve::{pin, resolve, resolved, user_and_resolver};
use crate::helpers::{TestApp, TestDatabase, TestUser, assert_error, distinctive_key, master_key_entry};
use crate::on_both_backends;

on_both_backends!(
    an_openhands_file_imports_through_the_binary_with_its_keys,
    importing_the_same_file_again_creates_nothing_and_names_what_it_skipped,
    an_export_holds_no_key_and_round_trips_to_another_user,
    a_malformed_file_imports_nothing_and_says_where,
    exports_for_openhands_and_litellm_hold_no_key_and_reimport_to_the_same_configurations,
    an_unknown_export_format_is_422_under_format,
);

on_both_backends!(database:
    parse_errors_name_the_file_and_line_never_the_secret,
);

/// A sandbox whose working directory also holds the files handed to the binary.
struct Workspace {
    sandbox: Sandbox,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            sandbox: Sandbox::new(),
        }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.sandbox.workdir().join(name);
        std::fs::write(&path, contents).expect("write the file");
        path
    }

    /// Runs `lanyard ARGS` with the test app's database and master keys, nothing else from the
    /// environment; kills it should it outlive `COMMAND_LIMIT`.
    async fn lanyard(&self, app: &TestApp, args: &[&str]) -> Finished {
        self.lanyard_with(app, args, &[]).await
    }

    /// `lanyard` with `extra` variables in its environment as well.
    async fn lanyard_with(&self, app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> Finished {
        let mut envs = vec![
            ("DATABASE_URL", app.test_database.url_string()),
            ("LANYARD_MASTER_KEYS", app.master_keys.clone()),
            ("LANYARD_EGRESS_MODE", "allowlist".to_owned()),
            ("LANYARD_LOG", "warn".to_owned()),
        ];
        envs.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
        let running = self.sandbox.start(&envs, args, "");
        // Waiting polls and sleeps: do it off the runtime that the test app runs on.
        tokio::task::spawn_blocking(move || running.finish(COMMAND_LIMIT))
            .await
            .unwrap()
    }

    /// `lanyard import FORMAT --file FILE --email EMAIL`, as it finished.
    async fn import(&self, app: &TestApp, format: &str, file: &Path, email: &str) -> Finished {
        let file = file.to_str().unwrap();
        self.lanyard(app, &["import", format, "--file", file, "--email", email])
            .await
    }
}

const ANTHROPIC_KEY: &str = "sk-ant-api03-Imp0rt3d_Key-with\"quote\\slash-0013";

const OPENAI_KEY: &str = "sk-proj-imported-gpt4o-key-0014+/=";

const OPENROUTER_KEY: &str = "sk-or-v1-imported-router-key-0015";

/// An OpenHands `config.toml` with three LLM groups, each with a key, among other settings.
fn openhands_toml() -> String {
    format!(
        r#"[core]
workspace_base = "./workspace"
max_iterations = 100

[llm]
model = "anthropic/claude-3-5-sonnet-20241022"
api_key = "{anthropic}"
temperature = 0.0

[llm.gpt4o]
model = "gpt-4o"
api_key = "{openai}"

[llm.router]
model = "openrouter/anthropic/claude-3.5-sonnet"
api_key = "{openrouter}"
base_url = "https://openrouter.ai/api/v1"

[sandbox]
timeout = 120
"#,
        anthropic = toml_escape(ANTHROPIC_KEY),
        openai = toml_escape(OPENAI_KEY),
        openrouter = toml_escape(OPENROUTER_KEY),
    )
}

fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The configuration named `name` in a list.
fn named<'a>(list: &'a [Configuration], name: &str) -> &'a Configuration {
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no configuration named {name} in {list:?}"))
}

/// Imports the sample file for `user` through the binary; panics unless it succeeds.
async fn import_sample(app: &TestApp, workspace: &Workspace, user: &TestUser) -> Finished {
    let file = workspace.file("config.toml", &openhands_toml());
    let finished = workspace.import(app, "openhands", &file, &user.email).await;
    finished.assert_success();
    finished
}

async fn an_openhands_file_imports_through_the_binary_with_its_keys(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    let workspace = Workspace::new();
    let finished = import_sample(&app, &workspace, &user).await;
    for name in ["openhands-default", "gpt4o", "router"] {
        assert!(
            finished.stdout.contains(name),
            "the report names {name}: {}",
            finished.stdout
        );
    }
    for key in [ANTHROPIC_KEY, OPENAI_KEY, OPENROUTER_KEY] {
        assert!(!finished.stdout.contains(key) && !finished.stderr.contains(key));
    }

    let list = app.configurations(&user.token).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let expected = [
        (
            "openhands-default",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            ANTHROPIC_KEY,
        ),
        ("gpt4o", "openai", "gpt-4o", OPENAI_KEY),
        ("router", "openrouter", "anthropic/claude-3.5-sonnet", OPENROUTER_KEY),
    ];
    assert_eq!(list.iter().filter(|c| c.is_default).count(), 1, "exactly one default");
    for (name, provider, model, key) in expected {
        let imported = named(&list, name);
        assert_eq!(imported.provider, provider, "{imported:?}");
        assert_eq!(imported.model, model, "{imported:?}");
        assert_eq!(imported.base_url, None, "the provider's default base URL: {imported:?}");
        assert!(imported.has_api_key, "{imported:?}");
        assert!(imported.is_active, "{imported:?}");

        let conversation = format!("imported-{name}");
        pin(&app, &user.token, &conversation, imported).await;
        let body = resolved(&app, &resolver, Some(&conversation)).await;
        assert_eq!(body.source, "override");
        assert_eq!(body.configuration.id, Some(imported.id));
        assert_eq!(
            body.configuration.api_key.as_deref().map(str::as_bytes),
            Some(key.as_bytes()),
            "the key of {name}, byte for byte"
        );
        assert!(body.configuration.effective_base_url.is_some());
    }
}

async fn importing_the_same_file_again_creates_nothing_and_names_what_it_skipped(app: TestApp) {
    let user = app.user().await;
    let workspace = Workspace::new();
    import_sample(&app, &workspace, &user).await;
    let before = app.configurations(&user.token).await;

    let again = import_sample(&app, &workspace, &user).await;
    assert!(again.stdout.contains("Imported 0"), "{}", again.stdout);
    for name in ["openhands-default", "gpt4o", "router"] {
        let skipped = again
            .stdout
            .lines()
            .any(|line| line.contains("skipped") && line.contains(name));
        assert!(skipped, "the report names {name} as skipped: {}", again.stdout);
    }
    let after = app.configurations(&user.token).await;
    assert_eq!(after, before, "nothing changed");
}

async fn an_export_holds_no_key_and_round_trips_to_another_user(app: TestApp) {
    let user = app.user().await;
    let workspace = Workspace::new();
    import_sample(&app, &workspace, &user).await;
    let extra_key = "sk-created-through-the-api-0016";
    app.create_openai(&user.token, "api-made", extra_key).await;
    let originals = app.configurations(&user.token).await;

    let exported = workspace.lanyard(&app, &["export", "--email", &user.email]).await;
    exported.assert_success();
    let document: Value = serde_json::from_str(&exported.stdout).expect("the export is JSON");
    assert_eq!(
        document["configurations"].as_array().map(Vec::len),
        Some(4),
        "{document}"
    );
    for key in [ANTHROPIC_KEY, OPENAI_KEY, OPENROUTER_KEY, extra_key] {
        let chars: Vec<char> = key.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(
                !exported.stdout.contains(&piece),
                "the export carries a piece of a key: {piece}"
            );
            assert!(
                !exported.stderr.contains(&piece),
                "standard error carries a piece of a key: {piece}"
            );
        }
    }
    assert!(!exported.stdout.contains('…'), "no masks either");

    let other = app.user().await;
    let other_resolver = app.token_for(&other, "resolve").await;
    let file = workspace.file("export.json", &exported.stdout);
    let imported = workspace.import(&app, "json", &file, &other.email).await;
    imported.assert_success();
    assert!(imported.stdout.contains("Imported 4"), "{}", imported.stdout);

    let copies = app.configurations(&other.token).await;
    assert_eq!(copies.len(), 4);
    for original in &originals {
        let copy = named(&copies, &original.name);
        assert_ne!(copy.id, original.id);
        assert_eq!(
            (&copy.provider, &copy.model, &copy.base_url),
            (&original.provider, &original.model, &original.base_url),
            "provider, model and base_url of {copy:?}"
        );
        assert!(!copy.is_active, "{copy:?}");
        assert!(!copy.is_default, "{copy:?}");
        assert!(!copy.has_api_key, "{copy:?}");
        assert_eq!(copy.api_key_masked, None, "{copy:?}");
    }
    // The original owner is untouched.
    assert_eq!(app.configurations(&user.token).await, originals);
    assert_error(resolve(&app, &other_resolver, None).await, 404, "not_found").await;

    // A key entered, the copy can be activated, becomes the default and resolves with that key.
    let router = named(&copies, "router");
    let activated = app
        .update_configuration(
            &other.token,
            router,
            json!({"api_key": "sk-or-v1-entered-after-import-0017", "is_active": true}),
        )
        .await;
    assert!(activated.is_active);
    assert!(activated.has_api_key);
    assert!(activated.is_default);
    let body = resolved(&app, &other_resolver, None).await;
    assert_eq!(body.configuration.id, Some(router.id));
    assert_eq!(
        body.configuration.api_key.as_deref(),
        Some("sk-or-v1-entered-after-import-0017")
    );
}

async fn a_malformed_file_imports_nothing_and_says_where(app: TestApp) {
    let user = app.user().await;
    app.create_openai(&user.token, "existing", "sk-existing-key-0018").await;
    let before = app.configurations(&user.token).await;
    let workspace = Workspace::new();

    let bad_toml = workspace.file(
        "bad.toml",
        "[llm]\nmodel = \"gpt-4o\"\napi_key = \"sk-valid-before-the-error-0019\"\n\n[llm.broken\nmodel = \"gpt-4o\"\n",
    );
    let number_model = workspace.file(
        "number.toml",
        "[llm]\nmodel = \"gpt-4o\"\napi_key = \"sk-valid-before-the-error-0019\"\n\n[llm.broken]\nmodel = 4\napi_key = \"sk-broken-group-key-0020\"\n",
    );
    for (file, where_) in [(&bad_toml, "line 5"), (&number_model, "[llm.broken]")] {
        let finished = workspace.import(&app, "openhands", file, &user.email).await;
        assert!(
            !finished.status.success() && finished.status.code().is_some(),
            "a malformed file fails with an exit code: {}",
            finished.status
        );
        assert!(
            finished.stderr.contains(where_),
            "standard error says where ({where_}): {}",
            finished.stderr
        );
        assert!(finished.stderr.contains("nothing was imported"), "{}", finished.stderr);
        assert!(!finished.stderr.contains("sk-valid-before") && !finished.stderr.contains("sk-broken-group"));
        assert_eq!(
            app.configurations(&user.token).await,
            before,
            "nothing was imported from {}",
            file.display()
        );
    }
}

async fn parse_errors_name_the_file_and_line_never_the_secret(database: TestDatabase) {
    let site = Site::new(database.url_string());
    let entry = master_key_entry("parse");
    let env = master_keys(&entry);
    let secret = distinctive_key("sk-proj-");
    let workdir = site.sandbox.workdir();

    // A malformed `.env` line: the command still runs, and the warning names the line alone.
    std::fs::write(
        workdir.join(".env"),
        format!("LANYARD_LOG=warn\nthis line is broken {secret}\n"),
    )
    .unwrap();
    let keygen = site.run(&env, &["keygen", "--id", "fresh"], "");
    keygen.assert_success();
    assert!(keygen.stderr.contains(".env line 2"), "{}", keygen.stderr);
    assert!(!keygen.stderr.contains(&secret), "{}", keygen.stderr);
    std::fs::remove_file(workdir.join(".env")).unwrap();

    // A master key pasted where its id belongs, as the second entry.
    let encoded = entry.split_once(':').unwrap().1;
    let swapped = master_keys(&format!("{entry},{encoded}:parse"));
    let refused = site.serve_refused(&swapped);
    assert!(
        refused.stderr.contains("LANYARD_MASTER_KEYS: entry 2"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(&encoded[..16]), "{}", refused.stderr);

    // An OpenHands file with an unterminated key on line 3.
    let (_token, _) = site.user_with_tokens(&env, "parse@example.com");
    let file = site.sandbox.path().join("config.toml");
    std::fs::write(&file, format!("[llm]\nmodel = \"gpt-4o\"\napi_key = \"{secret}\n")).unwrap();
    let imported = site.run(
        &env,
        &[
            "import",
            "openhands",
            "--file",
            file.to_str().unwrap(),
            "--email",
            "parse@example.com",
        ],
        "",
    );
    imported.assert_failure();
    assert!(imported.stderr.contains("config.toml"), "{}", imported.stderr);
    assert!(imported.stderr.contains("line 3"), "{}", imported.stderr);
    assert!(!imported.stderr.contains(&secret), "{}", imported.stderr);
    assert!(!imported.stdout.contains(&secret));
}

/// Three active configurations that use every parameter between them, and an inactive one.
async fn configurations_to_export(app: &TestApp, user: &TestUser) -> Vec<Configuration> {
    let bodies = [
        json!({"name": "Claude (team)", "provider": "anthropic", "model": "claude-sonnet-4-5",
               "api_key": ANTHROPIC_KEY, "is_default": true,
               "parameters": {"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 8192,
                              "reasoning_effort": "high", "timeout_seconds": 120,
                              "extra_headers": {"X-Team": "agents"}}}),
        json!({"name": "gateway", "provider": "openai_compatible", "model": "qwen2.5-coder",
               "api_key": OPENAI_KEY, "base_url": "https://llm.internal.example/v1"}),
        json!({"name": "azure gpt", "provider": "azure_openai", "model": "gpt-4o-team",
               "api_key": OPENROUTER_KEY, "base_url": "https://team.openai.azure.com",
               "parameters": {"api_version": "2024-06-01"}}),
        json!({"name": "retired", "provider": "openai", "model": "gpt-3.5-turbo",
               "api_key": "sk-retired-key-0000000018", "is_active": false}),
    ];
    let mut created = Vec::new();
    for body in bodies {
        created.push(app.create_configuration(&user.token, body).await);
    }
    created
}

/// `GET /api/export?format=…` with `token`: the status, the content type and the body.
async fn api_export(app: &TestApp, token: &str, format: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url(&format!("/api/export?format={format}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

fn assert_no_piece_of(text: &str, keys: &[&str], what: &str) {
    for key in keys {
        let chars: Vec<char> = key.chars().collect();
        for piece in chars.windows(12) {
            let piece: String = piece.iter().collect();
            assert!(
                !text.contains(&piece),
                "{what} carries a piece of a key: {piece}\n{text}"
            );
        }
    }
}

async fn exports_for_openhands_and_litellm_hold_no_key_and_reimport_to_the_same_configurations(app: TestApp) {
    let user = app.user().await;
    let originals = configurations_to_export(&app, &user).await;
    let active: Vec<&Configuration> = originals.iter().filter(|c| c.is_active).collect();
    let keys = [ANTHROPIC_KEY, OPENAI_KEY, OPENROUTER_KEY, "sk-retired-key-0000000018"];
    let workspace = Workspace::new();
    let cases = [
        (
            "openhands",
            "application/toml",
            "api_key = \"${LANYARD_KEY_CLAUDE_TEAM}\"",
        ),
        ("litellm", "application/yaml", "os.environ/LANYARD_KEY_CLAUDE_TEAM"),
    ];
    for (format, content_type, placeholder) in cases {
        let (status, served_type, document) = api_export(&app, &user.token, format).await;
        assert_eq!(status, 200, "{format}: {document}");
        assert!(served_type.starts_with(content_type), "{format}: {served_type}");
        assert_no_piece_of(&document, &keys, format);
        assert!(document.contains(placeholder), "{format}: {document}");
        assert!(
            !document.contains("retired"),
            "{format}: only active configurations: {document}"
        );
        assert!(!document.contains('…'), "{format}: no masks either");

        // The command line writes the same document.
        let written = workspace
            .lanyard(&app, &["export", "--format", format, "--email", &user.email])
            .await;
        written.assert_success();
        assert_eq!(written.stdout.trim_end(), document.trim_end(), "{format}");

        // Another user imports it with two of the three keys in the environment.
        let other = app.user().await;
        let file = workspace.file(&format!("export.{format}"), &document);
        let imported = workspace
            .lanyard_with(
                &app,
                &[
                    "import",
                    format,
                    "--file",
                    file.to_str().unwrap(),
                    "--email",
                    &other.email,
                ],
                &[
                    ("LANYARD_KEY_CLAUDE_TEAM", ANTHROPIC_KEY),
                    ("LANYARD_KEY_GATEWAY", OPENAI_KEY),
                ],
            )
            .await;
        imported.assert_success();
        assert!(imported.stdout.contains("Imported 3"), "{format}: {}", imported.stdout);
        assert_no_piece_of(&imported.stdout, &keys, "the import's report");
        let copies = app.configurations(&other.token).await;
        assert_eq!(copies.len(), 3, "{format}: {copies:?}");
        for original in &active {
            let copy = named(&copies, &original.name);
            assert_eq!(
                (&copy.provider, &copy.model, &copy.base_url, &copy.parameters),
                (
                    &original.provider,
                    &original.model,
                    &original.base_url,
                    &original.parameters
                ),
                "{format}: {copy:?}"
            );
        }
        if format == "openhands" {
            // `[llm]` is the default's group again, not a fourth configuration.
            assert!(named(&copies, "Claude (team)").is_default, "{copies:?}");
        }
        let resolver = app.token_for(&other, "resolve").await;
        for (name, key) in [("Claude (team)", ANTHROPIC_KEY), ("gateway", OPENAI_KEY)] {
            pin(&app, &other.token, "check", named(&copies, name)).await;
            let revealed = resolved(&app, &resolver, Some("check")).await.configuration.api_key;
            assert_eq!(revealed.as_deref(), Some(key), "{format}: {name}");
        }
        // No variable for the third: it arrives without a key (never with the placeholder).
        let azure = named(&copies, "azure gpt");
        assert!(!azure.has_api_key && !azure.is_active, "{format}: {azure:?}");
    }
}

async fn an_unknown_export_format_is_422_under_format(app: TestApp) {
    let user = app.user().await;
    let response = app
        .client
        .get(app.url("/api/export?format=yaml"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 422, "validation_failed").await;
    assert!(body["fields"]["format"].is_array(), "{body}");
    let (status, content_type, body) = api_export(&app, &user.token, "json").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["lanyard_export"], 1);
}
