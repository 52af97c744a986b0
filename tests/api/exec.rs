//! `lanyard exec` (runtimes.md): the real binary resolves from the running server over HTTP and
//! runs a command with the configuration in its environment; its exit status is the command's,
//! and anything that fails before the command runs is status 2 with the command never started.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::binary::{COMMAND_LIMIT, Finished, Sandbox};
use crate::helpers::TestApp;
use crate::helpers::organisations::Team;
use crate::helpers::providers::loopback_allowed;
use crate::helpers::resolve::{pin, user_and_resolver};
use crate::on_both_backends;
use crate::service_tokens::service_secret;

on_both_backends!(
    the_command_sees_the_default_as_openhands_variables_and_nothing_of_lanyard,
    every_format_names_its_own_variables,
    a_conversation_override_reaches_the_command,
    the_commands_exit_status_is_passed_through,
    a_refused_token_exits_2_before_the_command_runs,
    a_service_token_runs_the_command_for_the_member_named_by_user,
);

on_both_backends!(settings(loopback_allowed):
    openhands_own_sdk_builds_its_llm_from_what_exec_hands_it,
);

const KEY: &str = "sk-exec-test-0123456789abcdef";

/// Runs `lanyard exec ARGS` against `app` with `token` in `LANYARD_TOKEN` (and `PATH`, for `sh`).
async fn exec(app: &TestApp, token: Option<&str>, args: &[&str]) -> (Finished, Sandbox) {
    exec_within(app, token, args, COMMAND_LIMIT).await
}

async fn exec_within(app: &TestApp, token: Option<&str>, args: &[&str], limit: Duration) -> (Finished, Sandbox) {
    let mut envs = vec![
        ("LANYARD_URL", app.address.clone()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ];
    if let Some(token) = token {
        envs.push(("LANYARD_TOKEN", token.to_owned()));
    }
    let args: Vec<String> = ["exec"].iter().chain(args).map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let sandbox = Sandbox::new();
        let envs: Vec<(&str, String)> = envs.iter().map(|(name, value)| (*name, value.clone())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let finished = sandbox.start(&envs, &args, "").finish(limit);
        (finished, sandbox)
    })
    .await
    .unwrap()
}

/// The command's environment, as `env` printed it.
fn environment_of(finished: &Finished) -> BTreeMap<String, String> {
    finished
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

async fn the_command_sees_the_default_as_openhands_variables_and_nothing_of_lanyard(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_configuration(
        &user.token,
        json!({
            "name": "Claude", "provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": KEY,
            "base_url": "https://llm-gateway.example.com", "is_default": true,
            "parameters": {"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 8192,
                           "reasoning_effort": "high", "timeout_seconds": 120,
                           "extra_headers": {"X-Team": "agents"}},
        }),
    )
    .await;

    let (finished, _sandbox) = exec(&app, Some(&resolver), &["--", "env"]).await;
    finished.assert_success();
    let environment = environment_of(&finished);
    let expected = [
        ("LLM_MODEL", "anthropic/claude-sonnet-4-5"),
        ("LLM_API_KEY", KEY),
        ("LLM_BASE_URL", "https://llm-gateway.example.com"),
        ("LLM_TEMPERATURE", "0.3"),
        ("LLM_TOP_P", "0.9"),
        ("LLM_MAX_OUTPUT_TOKENS", "8192"),
        ("LLM_REASONING_EFFORT", "high"),
        ("LLM_TIMEOUT", "120"),
        ("LLM_EXTRA_HEADERS", r#"{"X-Team":"agents"}"#),
    ];
    for (name, value) in expected {
        assert_eq!(
            environment.get(name).map(String::as_str),
            Some(value),
            "{name} in {environment:?}"
        );
    }
    assert!(
        !environment.contains_key("LLM_API_VERSION"),
        "unset parameters stay unset"
    );
    for hidden in ["LANYARD_TOKEN", "LANYARD_URL"] {
        assert!(!environment.contains_key(hidden), "{hidden} reached the command");
    }
    assert!(!finished.stderr.contains(KEY), "the key on stderr: {}", finished.stderr);
}

async fn every_format_names_its_own_variables(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_configuration(
        &user.token,
        json!({"name": "Azure", "provider": "azure_openai", "model": "gpt-4o-team", "api_key": KEY,
               "base_url": "https://team.openai.azure.com", "is_default": true,
               "parameters": {"api_version": "2024-06-01"}}),
    )
    .await;
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "openhands",
            &[
                ("LLM_MODEL", "azure/gpt-4o-team"),
                ("LLM_API_VERSION", "2024-06-01"),
                ("LLM_API_KEY", KEY),
            ],
        ),
        (
            "openai",
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_MODEL", "gpt-4o-team"),
                ("OPENAI_BASE_URL", "https://team.openai.azure.com"),
            ],
        ),
        (
            "anthropic",
            &[("ANTHROPIC_API_KEY", KEY), ("ANTHROPIC_MODEL", "gpt-4o-team")],
        ),
        (
            "litellm",
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_API_BASE", "https://team.openai.azure.com"),
                ("AZURE_API_VERSION", "2024-06-01"),
                ("LITELLM_MODEL", "azure/gpt-4o-team"),
            ],
        ),
    ];
    for (format, expected) in cases {
        let (finished, _sandbox) = exec(&app, Some(&resolver), &["--format", format, "--", "env"]).await;
        finished.assert_success();
        let environment = environment_of(&finished);
        for (name, value) in expected {
            assert_eq!(
                environment.get(*name).map(String::as_str),
                Some(*value),
                "{format}: {name} in {environment:?}"
            );
        }
    }
    let (unknown, _sandbox) = exec(&app, Some(&resolver), &["--format", "dotenv", "--", "env"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(unknown.stdout.is_empty(), "the command ran: {}", unknown.stdout);
}

async fn a_conversation_override_reaches_the_command(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_configuration(
        &user.token,
        json!({"name": "Default", "provider": "openai", "model": "gpt-4o", "api_key": KEY, "is_default": true}),
    )
    .await;
    let pinned = app
        .create_configuration(
            &user.token,
            json!({"name": "Gateway", "provider": "openai_compatible", "model": "llama3.1",
                   "base_url": "https://llm.internal.example/v1"}),
        )
        .await;
    pin(&app, &user.token, "ticket 42", &pinned).await;

    let (finished, _sandbox) = exec(&app, Some(&resolver), &["--conversation", "ticket 42", "--", "env"]).await;
    finished.assert_success();
    let environment = environment_of(&finished);
    assert_eq!(
        environment.get("LLM_MODEL").map(String::as_str),
        Some("openai/llama3.1")
    );
    assert_eq!(
        environment.get("LLM_BASE_URL").map(String::as_str),
        Some("https://llm.internal.example/v1")
    );
    assert!(
        !environment.contains_key("LLM_API_KEY"),
        "a configuration without a key sets none"
    );

    let (other, _sandbox) = exec(&app, Some(&resolver), &["--conversation", "another", "--", "env"]).await;
    other.assert_success();
    assert_eq!(
        environment_of(&other).get("LLM_MODEL").map(String::as_str),
        Some("openai/gpt-4o")
    );
}

async fn the_commands_exit_status_is_passed_through(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "Default", KEY).await;
    for status in [0, 1, 7, 42] {
        let script = format!("test -n \"$LLM_API_KEY\" && exit {status}");
        let (finished, _sandbox) = exec(&app, Some(&resolver), &["--", "sh", "-c", &script]).await;
        assert_eq!(finished.status.code(), Some(status), "{finished:?}");
    }
}

async fn a_refused_token_exits_2_before_the_command_runs(app: TestApp) {
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_openai(&user.token, "Default", KEY).await;
    let marker = ["--", "sh", "-c", "touch ran; exit 0"];
    let unknown_token = format!("lny_{}", "x".repeat(40));
    let refusals: [(&str, Option<&str>); 3] = [
        ("a token that does not exist", Some(&unknown_token)),
        ("a token without the resolve scope", Some(&user.token)),
        ("no token at all", None),
    ];
    for (what, token) in refusals {
        let (finished, sandbox) = exec(&app, token, &marker).await;
        assert_eq!(finished.status.code(), Some(2), "{what}: {finished:?}");
        assert!(!sandbox.workdir().join("ran").exists(), "{what}: the command ran");
        assert_eq!(
            finished.stderr.lines().count(),
            1,
            "{what}: one line: {}",
            finished.stderr
        );
        assert!(
            finished.stderr.starts_with("lanyard exec: "),
            "{what}: {}",
            finished.stderr
        );
        if let Some(token) = token {
            assert!(!finished.stderr.contains(token), "{what}: the token on stderr");
        }
    }

    // A server that is not there: status 2 too, and quickly.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (finished, sandbox) = exec(&app, Some(&resolver), &["--url", &gone, "--", "sh", "-c", "touch ran"]).await;
    assert_eq!(finished.status.code(), Some(2), "{finished:?}");
    assert!(!sandbox.workdir().join("ran").exists());
    assert!(finished.stderr.contains("cannot reach Lanyard"), "{}", finished.stderr);

    // A command that cannot be started: status 2, and the key nowhere in what was printed.
    let (missing, _sandbox) = exec(&app, Some(&resolver), &["--", "/nonexistent/program"]).await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(!missing.stderr.contains(KEY));
}

/// The Python interpreter of a virtual environment with OpenHands' SDK (`openhands-sdk` from
/// PyPI), which `.ci/run` prepares; without it the test says so and passes.
const OPENHANDS_PYTHON: &str = "LANYARD_TEST_OPENHANDS_PYTHON";

/// Builds OpenHands' `LLM` with `LLM.load_from_env()` and prints what it got, the key as its
/// SHA-256 (the test compares, and nothing prints the key itself). Offline: LiteLLM's price list
/// is read from the package, and the base URL points at a closed loopback port.
const READ_LLM_FROM_ENVIRONMENT: &str = r#"
import hashlib, json
from openhands.sdk import LLM
llm = LLM.load_from_env()
key = llm.api_key.get_secret_value() if hasattr(llm.api_key, "get_secret_value") else llm.api_key
print(json.dumps({
    "model": llm.model, "base_url": llm.base_url, "temperature": llm.temperature, "top_p": llm.top_p,
    "max_output_tokens": llm.max_output_tokens, "timeout": llm.timeout,
    "reasoning_effort": llm.reasoning_effort, "extra_headers": llm.extra_headers,
    "key_sha256": hashlib.sha256(key.encode()).hexdigest(),
}))
"#;

async fn openhands_own_sdk_builds_its_llm_from_what_exec_hands_it(app: TestApp) {
    let Some(python) = std::env::var_os(OPENHANDS_PYTHON) else {
        eprintln!("skipped: {OPENHANDS_PYTHON} is not set (.ci/run prepares OpenHands' SDK)");
        return;
    };
    let python = python.to_string_lossy().into_owned();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let (user, resolver) = user_and_resolver(&app).await;
    app.create_configuration(
        &user.token,
        json!({
            "name": "Team gateway", "provider": "openai_compatible", "model": "qwen2.5-coder", "api_key": KEY,
            "base_url": closed, "is_default": true,
            "parameters": {"temperature": 0.2, "top_p": 0.95, "max_output_tokens": 2048,
                           "reasoning_effort": "medium", "timeout_seconds": 90,
                           "extra_headers": {"X-Team": "agents"}},
        }),
    )
    .await;

    // `env` passes the SDK's quiet settings through exec, which starts the interpreter. Importing
    // the SDK takes seconds (more on a loaded machine): a minute and a half at most.
    let (finished, _sandbox) = exec_within(
        &app,
        Some(&resolver),
        &[
            "--",
            "env",
            "OPENHANDS_SUPPRESS_BANNER=1",
            "LITELLM_LOCAL_MODEL_COST_MAP=True",
            &python,
            "-c",
            READ_LLM_FROM_ENVIRONMENT,
        ],
        Duration::from_secs(90),
    )
    .await;
    finished.assert_success();
    let line = finished.stdout.lines().last().unwrap_or_default();
    let llm: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {finished:?}"));
    let key_sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(KEY.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        llm,
        json!({
            "model": "openai/qwen2.5-coder", "base_url": closed, "temperature": 0.2, "top_p": 0.95,
            "max_output_tokens": 2048, "timeout": 90, "reasoning_effort": "medium",
            "extra_headers": {"X-Team": "agents"}, "key_sha256": key_sha256,
        })
    );
    assert!(!finished.stdout.contains(KEY) && !finished.stderr.contains(KEY));
}

async fn a_service_token_runs_the_command_for_the_member_named_by_user(app: TestApp) {
    let team = Team::new(&app, "Runtime team").await;
    let shared = team
        .create_configuration(
            &app,
            &team.admin.token,
            json!({"name": "team gpt", "provider": "openai", "model": "gpt-4o", "api_key": KEY}),
        )
        .await;
    app.set_default(&team.member_a.token, &shared).await;
    let service = service_secret(&app, &team, &["resolve"]).await;

    let (finished, _sandbox) = exec(&app, Some(&service), &["--user", &team.member_a.email, "--", "env"]).await;
    finished.assert_success();
    let environment = environment_of(&finished);
    assert_eq!(environment.get("LLM_MODEL").map(String::as_str), Some("openai/gpt-4o"));
    assert_eq!(environment.get("LLM_API_KEY").map(String::as_str), Some(KEY));

    // A service token names the member (422 without `--user`), and only a member (403).
    for args in [vec![], vec!["--user", "nobody@example.com"]] {
        let mut args: Vec<&str> = args;
        args.extend(["--", "sh", "-c", "touch ran"]);
        let (refused, sandbox) = exec(&app, Some(&service), &args).await;
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
        assert!(!sandbox.workdir().join("ran").exists(), "{args:?}: the command ran");
    }
}
