//! The command line: `keygen`, help for every command, users, tokens and accounts managed from
//! the shell.

use crate::binary::{COMMAND_LIMIT, Finished, Sandbox, Site, master_keys};
use crate::helpers::command_line::{Cli, Keys, assert_key_entry};
use crate::helpers::{TEST_PASSWORD, TestApp, location, master_key_entry, spawn_app_on};
use crate::on_both_backends;

on_both_backends!(database(Cli::new):
    users_and_tokens_created_from_the_shell_work_against_the_api,
);

on_both_backends!(passwords_and_accounts_are_recoverable_from_the_shell,);

/// A command that needs no database, with no environment at all.
fn run_bare(sandbox: &Sandbox, args: &[&str]) -> Finished {
    sandbox.start(&[], args, "").finish(COMMAND_LIMIT)
}

#[test]
fn keygen_prints_one_ready_master_key_entry() {
    let sandbox = Sandbox::new();
    let first = run_bare(&sandbox, &["keygen"]);
    first.assert_success();
    assert_eq!(first.stdout.lines().count(), 1, "{:?}", first.stdout);
    assert!(first.stdout.ends_with('\n'));
    let entry = first.stdout.trim_end();
    assert_key_entry(entry);

    let named = run_bare(&sandbox, &["keygen", "--id", "k7"]);
    named.assert_success();
    assert_eq!(named.stdout.lines().count(), 1, "{:?}", named.stdout);
    assert_eq!(assert_key_entry(named.stdout.trim_end()), "k7");
    assert_ne!(named.stdout.trim_end(), entry);

    run_bare(&sandbox, &["keygen", "--id", "not valid!"]).assert_failure();
    // keygen touches no database: nothing appears in the working directory.
    let created: Vec<_> = std::fs::read_dir(sandbox.workdir()).expect("work folder").collect();
    assert!(created.is_empty(), "keygen created files: {created:?}");
}

#[test]
fn every_command_and_subcommand_answers_help() {
    let sandbox = Sandbox::new();
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut answered = Vec::new();
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = run_bare(&sandbox, &args);
        help.assert_success();
        let usage = ["lanyard".to_owned()].into_iter().chain(path.iter().cloned());
        let usage = format!("Usage: {}", usage.collect::<Vec<_>>().join(" "));
        assert!(help.stdout.contains(&usage), "`{}`:\n{}", args.join(" "), help.stdout);
        for command in subcommands(&help.stdout) {
            let mut child = path.clone();
            child.push(command);
            pending.push(child);
        }
        answered.push(path.join(" "));
    }
    for expected in [
        "",
        "serve",
        "migrate",
        "keygen",
        "user",
        "user create",
        "token",
        "token create",
    ] {
        assert!(
            answered.iter().any(|path| path == expected),
            "`lanyard {expected}` is missing from the help tree: {answered:?}"
        );
    }
}

/// The commands listed in a clap help text (without clap's own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .map(str::to_owned)
        .collect()
}

async fn users_and_tokens_created_from_the_shell_work_against_the_api(cli: Cli) {
    let entry = master_key_entry("cli-key");
    let keys = Keys::Entries(entry.clone());
    let email = "ada@example.com";
    let created = cli.run(
        &keys,
        &["user", "create", "--email", email, "--password-stdin"],
        "correct horse battery\n",
    );
    created.assert_success();
    assert!(created.stderr.contains(email), "{}", created.stderr);

    let read_write = cli.run(&keys, &["token", "create", "--email", email, "--name", "laptop"], "");
    read_write.assert_success();
    let read_write = read_write.stdout;
    assert_eq!(read_write.lines().count(), 1, "the token alone: {read_write:?}");
    let read_write = read_write
        .strip_suffix('\n')
        .expect("one line ends with a newline")
        .to_owned();
    assert!(
        read_write.starts_with("lny_") && read_write.len() >= 36,
        "{read_write:?}"
    );
    assert!(!read_write.contains(char::is_whitespace));

    let resolve = cli.run(
        &keys,
        &[
            "token", "create", "--email", email, "--name", "agent", "--scopes", "resolve",
        ],
        "",
    );
    resolve.assert_success();
    assert_eq!(resolve.stdout.lines().count(), 1, "{:?}", resolve.stdout);
    let resolve = resolve.stdout.trim_end().to_owned();
    assert!(resolve.starts_with("lny_") && resolve != read_write);

    let unknown = cli.run(
        &keys,
        &["token", "create", "--email", "nobody@example.com", "--name", "x"],
        "",
    );
    unknown.assert_failure();
    assert!(unknown.stderr.contains("nobody@example.com"), "{}", unknown.stderr);
    assert!(unknown.stdout.is_empty(), "no token on failure: {:?}", unknown.stdout);

    let short = cli.run(
        &keys,
        &["user", "create", "--email", "bo@example.com", "--password-stdin"],
        "short\n",
    );
    short.assert_failure();
    assert!(short.stderr.contains("password"), "{}", short.stderr);
    cli.run(
        &keys,
        &["token", "create", "--email", "bo@example.com", "--name", "x"],
        "",
    )
    .assert_failure();

    // The tokens carry the scopes asked for: read,write by default, resolve alone otherwise.
    let Cli { database, .. } = cli;
    let app = spawn_app_on(database, entry).await;
    assert_eq!(app.get("/api/llm-configurations", &read_write).await.status(), 200);
    app.create_openai(&read_write, "from-shell", "sk-shell-key-000001")
        .await;
    assert_eq!(app.get("/api/llm-configurations", &resolve).await.status(), 403);
}

async fn passwords_and_accounts_are_recoverable_from_the_shell(app: TestApp) {
    app.register_first_admin().await;
    let (member, member_browser) = app.signed_in_user().await;
    let site = Site::new(app.test_database.url_string());
    let env = master_keys(&app.master_keys);
    let new_password = "a brand new passphrase";

    let changed = site.run(
        &env,
        &["user", "set-password", "--email", &member.email, "--password-stdin"],
        &format!("{new_password}\n"),
    );
    changed.assert_success();
    assert!(changed.stderr.contains(&member.email), "{}", changed.stderr);
    assert!(!changed.stderr.contains(new_password) && !changed.stdout.contains(new_password));
    assert_eq!(
        location(&member_browser.get("/llm-configurations").await),
        "/login",
        "a new password ends the user's sessions"
    );
    let (_, refused) = app.attempt_login(&member.email, TEST_PASSWORD).await;
    assert_eq!(refused.status(), 422, "the old password no longer works");
    let fresh = app.login(&member.email, new_password).await;
    assert_eq!(fresh.get("/llm-configurations").await.status(), 200);

    let disabled = site.run(&env, &["user", "disable", "--email", &member.email], "");
    disabled.assert_success();
    assert!(disabled.stderr.contains(&member.email), "{}", disabled.stderr);
    assert_eq!(location(&fresh.get("/llm-configurations").await), "/login");
    app.assert_unauthorized("/api/llm-configurations", &member.token).await;

    let unknown = site.run(&env, &["user", "disable", "--email", "nobody@example.com"], "");
    unknown.assert_failure();
    assert!(unknown.stderr.contains("nobody@example.com"), "{}", unknown.stderr);
}
