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
    ten_varied_configurations_export_and_reimport_as_the_same_ten,
    a_litellm_proxy_started_on_the_export_lists_all_ten,
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

/// Ten configurations across the catalogue: every provider family with its own LiteLLM prefix,
/// base URLs, an API version, every parameter, names with spaces and punctuation, a model with a
/// slash, and a keyless local Ollama. Each with the key of its own variable, `LANYARD_KEY_<NAME>`.
fn ten_varied_configurations() -> Vec<(Value, &'static str, &'static str)> {
    vec![
        (
            json!({"name": "Work GPT-4o", "provider": "openai", "model": "gpt-4o",
                   "parameters": {"temperature": 0.7}}),
            "LANYARD_KEY_WORK_GPT_4O",
            "sk-test-WKbsDE5kGZoDiPCFdcERFmdD5nHQ",
        ),
        (
            json!({"name": "claude (personal)", "provider": "anthropic", "model": "claude-sonnet-4-5",
                   "is_default": true,
                   "parameters": {"max_output_tokens": 8192, "reasoning_effort": "high"}}),
            "LANYARD_KEY_CLAUDE_PERSONAL",
            "sk-test-rroDnobDQCm7JUcKkHnVm5uMGonr",
        ),
        (
            json!({"name": "Gemini Pro", "provider": "gemini", "model": "gemini-2.5-pro",
                   "parameters": {"top_p": 0.8}}),
            "LANYARD_KEY_GEMINI_PRO",
            "sk-test-NZGmwEnDqPhukd2WfofZVR3Mv2RF",
        ),
        (
            json!({"name": "azure gpt", "provider": "azure_openai", "model": "gpt-4o-team",
                   "base_url": "https://team.openai.azure.com",
                   "parameters": {"api_version": "2024-06-01"}}),
            "LANYARD_KEY_AZURE_GPT",
            "sk-test-nVjh9XxeUpEHicLzXKhcCtEzmn39",
        ),
        (
            json!({"name": "mistral large", "provider": "mistral", "model": "mistral-large-latest"}),
            "LANYARD_KEY_MISTRAL_LARGE",
            "sk-test-5WXvYpho4fE6FTgvtEDxvVsnu5eU",
        ),
        (
            json!({"name": "groq llama", "provider": "groq", "model": "llama-3.3-70b-versatile",
                   "parameters": {"timeout_seconds": 60}}),
            "LANYARD_KEY_GROQ_LLAMA",
            "sk-test-wa9tYBfYLqHhDP2UJyRbb8hFLebm",
        ),
        (
            json!({"name": "router: claude", "provider": "openrouter", "model": "anthropic/claude-3.5-sonnet",
                   "parameters": {"extra_headers": {"X-Title": "Lanyard"}}}),
            "LANYARD_KEY_ROUTER_CLAUDE",
            "sk-test-T9J5d8mTwcYu9aQKFMKQtQAh6oMS",
        ),
        (
            json!({"name": "DeepSeek chat", "provider": "deepseek", "model": "deepseek-chat",
                   "parameters": {"temperature": 0.0}}),
            "LANYARD_KEY_DEEPSEEK_CHAT",
            "sk-test-UAKckZqnWJv7iqsuyDf828u4mbbb",
        ),
        (
            json!({"name": "local llama", "provider": "ollama", "model": "llama3.1",
                   "base_url": "https://ollama.team.example:11434"}),
            "LANYARD_KEY_LOCAL_LLAMA",
            "",
        ),
        (
            json!({"name": "gateway", "provider": "openai_compatible", "model": "qwen2.5-coder",
                   "base_url": "https://llm.internal.example/v1",
                   "parameters": {"temperature": 0.2, "top_p": 0.95, "max_output_tokens": 2048}}),
            "LANYARD_KEY_GATEWAY",
            "sk-test-bGgrbDNEPeLHXpDGAnKkGZqBE8Pq",
        ),
    ]
}

/// A user holding the ten, and what each looks like through the API.
async fn user_with_ten(app: &TestApp) -> (TestUser, Vec<Configuration>) {
    let user = app.user().await;
    let mut created = Vec::new();
    for (mut body, _, key) in ten_varied_configurations() {
        if !key.is_empty() {
            body["api_key"] = json!(key);
        }
        created.push(app.create_configuration(&user.token, body).await);
    }
    (user, created)
}

/// `LANYARD_KEY_<NAME>=key` for every configuration that has a key.
fn ten_key_variables() -> Vec<(&'static str, &'static str)> {
    ten_varied_configurations()
        .into_iter()
        .filter(|(_, _, key)| !key.is_empty())
        .map(|(_, variable, key)| (variable, key))
        .collect()
}

async fn ten_varied_configurations_export_and_reimport_as_the_same_ten(app: TestApp) {
    let (user, originals) = user_with_ten(&app).await;
    let keys: Vec<&str> = ten_key_variables().into_iter().map(|(_, key)| key).collect();
    let workspace = Workspace::new();
    for format in ["openhands", "litellm"] {
        let (status, _, document) = api_export(&app, &user.token, format).await;
        assert_eq!(status, 200, "{format}: {document}");
        assert_no_piece_of(&document, &keys, format);
        assert!(!document.contains('…'), "{format}: no masks either");
        for (_, variable, key) in ten_varied_configurations() {
            if !key.is_empty() {
                assert!(document.contains(variable), "{format}: {variable} in\n{document}");
            }
        }

        let empty = app.user().await;
        let file = workspace.file(&format!("ten.{format}"), &document);
        let imported = workspace
            .lanyard_with(
                &app,
                &[
                    "import",
                    format,
                    "--file",
                    file.to_str().unwrap(),
                    "--email",
                    &empty.email,
                ],
                &ten_key_variables(),
            )
            .await;
        imported.assert_success();
        assert!(imported.stdout.contains("Imported 10"), "{format}: {}", imported.stdout);
        let copies = app.configurations(&empty.token).await;
        assert_eq!(copies.len(), 10, "{format}: {copies:?}");
        for original in &originals {
            let copy = named(&copies, &original.name);
            assert_eq!(
                (
                    &copy.provider,
                    &copy.model,
                    &copy.base_url,
                    &copy.parameters,
                    copy.has_api_key,
                    copy.is_active
                ),
                (
                    &original.provider,
                    &original.model,
                    &original.base_url,
                    &original.parameters,
                    original.has_api_key,
                    true
                ),
                "{format}: {copy:?}"
            );
        }
        if format == "openhands" {
            assert!(named(&copies, "claude (personal)").is_default, "{copies:?}");
        }
    }
}

/// The Python virtual environment's `litellm` command (`litellm[proxy]` from PyPI), which
/// `.ci/run` prepares; without it the test says so and passes.
const LITELLM_PROXY: &str = "LANYARD_TEST_LITELLM_PROXY";

/// LiteLLM's own proxy, started on the `litellm` export with the keys in its environment, serves
/// all ten under their names. Offline: the price list comes from the package, nothing is called.
async fn a_litellm_proxy_started_on_the_export_lists_all_ten(app: TestApp) {
    let Some(litellm) = std::env::var_os(LITELLM_PROXY) else {
        eprintln!("skipped: {LITELLM_PROXY} is not set (.ci/run prepares LiteLLM's proxy)");
        return;
    };
    let (user, originals) = user_with_ten(&app).await;
    let (status, _, document) = api_export(&app, &user.token, "litellm").await;
    assert_eq!(status, 200, "{document}");
    let workspace = Workspace::new();
    let config = workspace.file("config.yaml", &document);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let master_key = "sk-lanyard-test-master-0000";
    let mut proxy = LitellmProxy::start(&litellm, &config, port, master_key, &ten_key_variables());

    let client = reqwest::Client::new();
    let models_url = format!("http://127.0.0.1:{port}/v1/models");
    // The proxy imports for a while (longer on a loaded machine): two minutes at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let listed: Value = loop {
        match client.get(&models_url).bearer_auth(master_key).send().await {
            Ok(response) if response.status().is_success() => break response.json().await.unwrap(),
            _ if std::time::Instant::now() < deadline && proxy.is_running() => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => panic!("LiteLLM's proxy never listed its models: {other:?}\n{}", proxy.output()),
        }
    };
    let mut served: Vec<String> = listed["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|model| model["id"].as_str().unwrap().to_owned())
        .collect();
    served.sort();
    let mut names: Vec<String> = originals.iter().map(|c| c.name.clone()).collect();
    names.sort();
    assert_eq!(served, names, "{listed}");
    // Without the master key the proxy lists nothing.
    let refused = client.get(&models_url).send().await.unwrap();
    assert!(!refused.status().is_success(), "{refused:?}");
}

/// A LiteLLM proxy process, stopped by its id when dropped; its output goes to a file.
struct LitellmProxy {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LitellmProxy {
    fn start(
        litellm: &std::ffi::OsStr,
        config: &Path,
        port: u16,
        master_key: &str,
        keys: &[(&str, &str)],
    ) -> LitellmProxy {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("litellm.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(litellm)
            .args([
                "--config",
                config.to_str().unwrap(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("LITELLM_MASTER_KEY", master_key)
            // Offline and quiet: the price list from the package, no telemetry, no update check.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("LITELLM_DONT_SHOW_FEEDBACK_BOX", "true")
            .env("LITELLM_LOG", "ERROR")
            .envs(keys.iter().copied())
            .current_dir(dir.path())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start LiteLLM's proxy");
        LitellmProxy { child, log, _dir: dir }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LitellmProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
