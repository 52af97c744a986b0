//! What each command-line command does. `main.rs` parses the arguments and calls these. The
//! command line is an edge like the pages and the API: it reads its input, calls services (and
//! `startup` to open the database as `serve` does), and words their errors for the operator.

use std::io::{BufRead, Write};

use anyhow::{Context, bail};

use crate::app::Application;
use crate::config::Settings;
use secrecy::SecretString;

use crate::domain::{Email, Password, RuntimeFormat, RuntimeVariable, Scopes, runtime_environment};
use crate::lanyard_client::{self, ClientError};
use crate::services::operations::{self, CopyError, CopyTarget};
use crate::services::runtime_exports::{self, ExportFormat};
use crate::services::two_factor::{self, TwoFactorError};
use crate::services::{accounts, import, master_keys, tokens};
use crate::startup::{self, Prepared};

/// `lanyard serve`: check keys, migrate, serve until stopped.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind;
    let public_url = settings.public_url.clone();
    let database = if settings.database_url.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let app = Application::build(settings).await?;
    tracing::info!(address = %bind, port = app.port(), %public_url, database, "Lanyard is listening");
    app.run_until_stopped()
        .await
        .context("the server stopped with an error")
}

/// Prepares the database exactly as `serve` does (key check, then migrations).
fn open_database(settings: &Settings) -> anyhow::Result<Prepared> {
    Ok(startup::open(&settings.database_url, &settings.master_keys, 2)?)
}

/// `lanyard migrate`.
pub fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_database(settings)?;
    eprintln!("The database is up to date.");
    Ok(())
}

/// `lanyard keygen`: a new random master key as an `ID:BASE64` entry.
pub fn keygen(id: Option<&str>) -> anyhow::Result<String> {
    Ok(master_keys::new_key_entry(id)?)
}

/// Reads a password from standard input (one line) or, interactively, from the terminal.
pub fn read_password(from_stdin: bool) -> anyhow::Result<Password> {
    let raw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        let first =
            zeroize::Zeroizing::new(rpassword::prompt_password("Password: ").context("cannot read the password")?);
        let second =
            zeroize::Zeroizing::new(rpassword::prompt_password("Repeat it: ").context("cannot read the password")?);
        if *first != *second {
            bail!("the two passwords differ");
        }
        first
    };
    Password::parse(&raw).map_err(|message| anyhow::anyhow!("the password {message}"))
}

/// `lanyard user create`.
pub fn user_create(settings: &Settings, email: &str, admin: bool, password: Password) -> anyhow::Result<String> {
    let email = parse_email(email)?;
    let prepared = open_database(settings)?;
    let user = accounts::create_user(&mut *prepared.database.connection()?, &email, &password, admin)?;
    Ok(format!("Created {} ({}).", user.email, user.role.as_str()))
}

/// `lanyard token create`: returns the token alone.
pub fn token_create(
    settings: &Settings,
    email: &str,
    name: &str,
    scopes: &str,
    expires_in_days: Option<i64>,
) -> anyhow::Result<String> {
    let email = parse_email(email)?;
    let name = tokens::parse_token_name(name).map_err(|message| anyhow::anyhow!("--name {message}"))?;
    let scopes = Scopes::parse(scopes).map_err(|message| anyhow::anyhow!("--scopes: {message}"))?;
    let expires_in_days = expires_in_days
        .map(tokens::parse_expiry_days)
        .transpose()
        .map_err(|message| anyhow::anyhow!("--expires-in-days {message}"))?;
    let prepared = open_database(settings)?;
    let owner = user_id(&prepared, &email)?;
    let new = tokens::NewToken {
        name,
        scopes,
        expires_in_days,
    };
    let created = tokens::create_token(&mut *prepared.database.connection()?, owner, &new, settings.caps.tokens)?;
    Ok(created.secret.expose().to_owned())
}

/// Writes `line` and a newline to standard output.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("cannot write to standard output")
}

fn parse_email(raw: &str) -> anyhow::Result<Email> {
    Email::parse(raw).map_err(|message| anyhow::anyhow!("--email {message}"))
}

/// The id of the user with this email, or an error that names the email.
fn user_id(prepared: &Prepared, email: &Email) -> anyhow::Result<uuid::Uuid> {
    accounts::id_by_email(&mut *prepared.database.connection()?, email)
        .map_err(|_| anyhow::anyhow!("no user has the email {}", email.as_str()))
}

/// The same for an email as typed.
fn user_id_for(prepared: &Prepared, email: &str) -> anyhow::Result<uuid::Uuid> {
    user_id(prepared, &parse_email(email)?)
}

/// Which file format `lanyard import` reads.
#[derive(Debug, Clone, Copy)]
pub enum ImportFormat {
    OpenHands,
    Litellm,
    Json,
}

/// `lanyard import openhands|json --file F --email E`: returns the report to print.
pub fn import(
    settings: &Settings,
    format: ImportFormat,
    file: &std::path::Path,
    email: &str,
) -> anyhow::Result<String> {
    // The file may hold keys in clear: its text is wiped once parsed.
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let drafts = match format {
        ImportFormat::OpenHands => import::parse_openhands(&text, &settings.egress, &environment_variable),
        ImportFormat::Litellm => import::parse_litellm(&text, &settings.egress, &environment_variable),
        ImportFormat::Json => import::parse_export(&text, &settings.egress),
    }
    .map_err(|error| anyhow::anyhow!("{}: {error}; nothing was imported", file.display()))?;
    let prepared = open_database(settings)?;
    let owner = user_id_for(&prepared, email)?;
    let mut conn = prepared.database.connection()?;
    let report = import::import(
        &mut conn,
        &prepared.keyring,
        owner,
        drafts,
        settings.caps.configurations,
    )
    .map_err(|error| anyhow::anyhow!("{error}; nothing was imported"))?;
    let mut lines = vec![format!("Imported {} configuration(s).", report.created.len())];
    lines.extend(report.created.iter().map(|name| format!("  created: {name}")));
    lines.extend(
        report
            .skipped
            .iter()
            .map(|name| format!("  skipped (the name exists already): {name}")),
    );
    if matches!(format, ImportFormat::Json) && !report.created.is_empty() {
        lines.push("The imported configurations are inactive and have no key: enter a key, then activate them.".into());
    }
    Ok(lines.join("\n"))
}

/// A placeholder's variable (`${VAR}`, `os.environ/VAR`) from this process's environment.
fn environment_variable(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .map(SecretString::from)
}

/// `lanyard export --email E [--format json|openhands|litellm] [--output F]`: without any key.
pub fn export(settings: &Settings, email: &str, format: &str, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let format = ExportFormat::parse(format).map_err(|message| anyhow::anyhow!("--format {message}"))?;
    let prepared = open_database(settings)?;
    let owner = user_id_for(&prepared, email)?;
    let mut conn = prepared.database.connection()?;
    let document = match format {
        ExportFormat::Json => {
            let document = import::export(&mut conn, owner).map_err(|error| anyhow::anyhow!("{error}"))?;
            serde_json::to_string_pretty(&document).context("cannot encode the export")?
        }
        ExportFormat::OpenHands => {
            runtime_exports::openhands(&mut conn, owner).map_err(|error| anyhow::anyhow!("{error}"))?
        }
        ExportFormat::Litellm => {
            runtime_exports::litellm(&mut conn, owner).map_err(|error| anyhow::anyhow!("{error}"))?
        }
    };
    let document = document.trim_end();
    match output {
        Some(path) => {
            std::fs::write(path, format!("{document}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Exported to {} (no keys).", path.display());
            Ok(())
        }
        None => print_line(document),
    }
}

/// `lanyard rotate-keys`: the report to print.
pub fn rotate_keys(settings: &Settings) -> anyhow::Result<String> {
    let Prepared { database, keyring } = open_database(settings)?;
    let report = master_keys::rotate(&mut *database.connection()?, &keyring, 100)?;
    let mut lines = vec![format!(
        "Re-encrypted {} key(s) under the active master key `{}`.",
        report.re_encrypted,
        keyring.active().id()
    )];
    if report.changed_meanwhile > 0 {
        lines.push(format!(
            "{} key(s) were edited while rotating and were left as the edit wrote them; run rotate-keys again.",
            report.changed_meanwhile
        ));
    }
    if report.unreadable > 0 {
        lines.push(format!(
            "{} key(s) cannot be decrypted with any configured master key (re-enter them).",
            report.unreadable
        ));
    }
    if report.remaining.is_empty() {
        lines.push(
            "No key remains under any other master key: older keys can be removed from the configuration.".into(),
        );
    } else {
        for (key_id, count) in &report.remaining {
            lines.push(format!("{count} key(s) remain under master key `{key_id}`."));
        }
    }
    Ok(lines.join("\n"))
}

/// `lanyard keygen --from-passphrase`: the `passphrase:BASE64` entry equivalent to
/// LANYARD_MASTER_PASSPHRASE for this database (its salt is kept there).
pub fn keygen_from_passphrase(settings: &Settings, passphrase: &str) -> anyhow::Result<String> {
    let database = startup::connect(&settings.database_url, 1)?;
    Ok(master_keys::passphrase_entry(&mut *database.connection()?, passphrase)?)
}

/// Reads one line (a passphrase or password) from standard input.
pub fn read_stdin_line() -> anyhow::Result<zeroize::Zeroizing<String>> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    Ok(zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// `lanyard user set-password --email E --password-stdin`: ends the user's sessions and revokes
/// their tokens; the user's security events record the command line as the actor.
pub fn user_set_password(settings: &Settings, email: &str, password: Password) -> anyhow::Result<String> {
    let prepared = open_database(settings)?;
    let user_id = user_id_for(&prepared, email)?;
    let mut conn = prepared.database.connection()?;
    accounts::reset_password(&mut conn, user_id, &password, accounts::Actor::CommandLine)?;
    Ok(format!(
        "Password changed for {email}; their sessions were ended and their tokens revoked."
    ))
}

/// `lanyard user disable --email E`: ends their sessions and revokes their tokens for good; the
/// user's security events record the command line as the actor.
pub fn user_disable(settings: &Settings, email: &str) -> anyhow::Result<String> {
    let prepared = open_database(settings)?;
    let user_id = user_id_for(&prepared, email)?;
    let mut conn = prepared.database.connection()?;
    accounts::set_disabled(&mut conn, user_id, true, accounts::Actor::CommandLine)?;
    Ok(format!(
        "Disabled {email}: their sessions were ended and their tokens revoked."
    ))
}

/// `lanyard user reset-2fa --email E`: removes the user's second factor (and recovery codes) and
/// ends their sessions; the user's security events record the command line as the actor.
pub fn user_reset_second_factor(settings: &Settings, email: &str) -> anyhow::Result<String> {
    let prepared = open_database(settings)?;
    let user_id = user_id_for(&prepared, email)?;
    let mut conn = prepared.database.connection()?;
    match two_factor::reset(&mut conn, user_id, accounts::Actor::CommandLine) {
        Ok(()) => Ok(format!(
            "Removed the second factor of {email}; they sign in with their password alone until they set one up again."
        )),
        Err(TwoFactorError::NotOn) => Err(anyhow::anyhow!("{email} has no second factor")),
        Err(other) => Err(anyhow::anyhow!("cannot remove the second factor of {email}: {other}")),
    }
}

/// `lanyard copy-database --to postgres://…`: copies everything from the configured database
/// into an empty PostgreSQL database in one transaction, verifies the counts, and says what to
/// set next.
pub fn copy_database(settings: &Settings, to: &str) -> anyhow::Result<String> {
    let target = CopyTarget::parse(to, &settings.database_url).map_err(|error| match error {
        CopyError::TargetUrl(message) => anyhow::anyhow!("--to: {message}"),
        CopyError::TargetNotPostgres => anyhow::anyhow!("--to must be a postgres:// or postgresql:// URL"),
        CopyError::TargetIsSource => {
            anyhow::anyhow!("--to names the database Lanyard is configured with; name an empty PostgreSQL database")
        }
        other => other.into(),
    })?;
    let source = open_database(settings)?;
    let expected = operations::copy_database(&source.database, &target)?;
    let mut lines = vec!["Copied, and verified the counts:".to_owned()];
    lines.extend(expected.iter().map(|(table, count)| format!("  {table}: {count}")));
    lines.push(String::new());
    lines.push("Next: start Lanyard with DATABASE_URL set to that PostgreSQL URL and the SAME master keys".into());
    lines.push("(the same LANYARD_MASTER_KEYS, passphrase, or key file): every stored key stays valid.".into());
    Ok(lines.join("\n"))
}

/// What `lanyard exec` was asked to do.
pub struct ExecRequest {
    pub url: Option<String>,
    pub conversation_id: Option<String>,
    pub user: Option<String>,
    pub format: String,
    pub command: Vec<std::ffi::OsString>,
}

/// Where `lanyard exec` looks for Lanyard when neither `--url` nor `LANYARD_URL` says.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// `lanyard exec`'s status when the command could not be started (runtimes.md).
const EXEC_FAILED: u8 = 2;

/// `lanyard exec`: resolves over HTTP, then runs the command with the configuration in its
/// environment (never `LANYARD_TOKEN` or `LANYARD_URL`) and exits with its status. Anything that
/// goes wrong before the command runs is one line on standard error and status 2; the key is
/// never printed and never written anywhere but the command's environment.
pub async fn exec(request: ExecRequest) -> std::process::ExitCode {
    match prepare_exec(&request).await {
        Ok(variables) => run_with(&request.command, variables),
        Err(problem) => {
            eprintln!("lanyard exec: {problem}");
            std::process::ExitCode::from(EXEC_FAILED)
        }
    }
}

async fn prepare_exec(request: &ExecRequest) -> Result<Vec<RuntimeVariable>, ClientError> {
    let format =
        RuntimeFormat::parse(&request.format).map_err(|message| ClientError::Usage(format!("--format {message}")))?;
    let token = std::env::var("LANYARD_TOKEN")
        .ok()
        .filter(|token| !token.trim().is_empty())
        .map(|token| SecretString::from(token.trim().to_owned()))
        .ok_or_else(|| ClientError::Usage("LANYARD_TOKEN is not set (a token with the resolve scope)".into()))?;
    let raw_url = request
        .url
        .clone()
        .or_else(|| std::env::var("LANYARD_URL").ok().filter(|url| !url.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let server = server_url(&raw_url)?;
    let configuration = lanyard_client::resolve(&lanyard_client::ResolveRequest {
        server: &server,
        token: &token,
        conversation_id: request.conversation_id.as_deref(),
        user: request.user.as_deref(),
    })
    .await?;
    Ok(runtime_environment(format, &configuration))
}

/// The server's address as a base that `api/resolve` joins onto (a path keeps its prefix).
fn server_url(raw: &str) -> Result<url::Url, ClientError> {
    let mut url = url::Url::parse(raw.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| ClientError::Usage(format!("the server address `{raw}` is not an http(s) URL")))?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Replaces this process with the command (on Unix: signals and the exit status are then the
/// command's own, and nothing of Lanyard stays in between).
fn run_with(command: &[std::ffi::OsString], variables: Vec<RuntimeVariable>) -> std::process::ExitCode {
    use secrecy::ExposeSecret;

    let Some((program, arguments)) = command.split_first() else {
        eprintln!("lanyard exec: no command given (put it after `--`)");
        return std::process::ExitCode::from(EXEC_FAILED);
    };
    let mut child = std::process::Command::new(program);
    child
        .args(arguments)
        .env_remove("LANYARD_TOKEN")
        .env_remove("LANYARD_URL");
    for variable in &variables {
        child.env(variable.name, variable.value.expose_secret());
    }
    drop(variables);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // `exec` returns only when the command could not be started.
        let error = child.exec();
        eprintln!("lanyard exec: cannot run {}: {error}", program.to_string_lossy());
        std::process::ExitCode::from(EXEC_FAILED)
    }
    #[cfg(not(unix))]
    match child.status() {
        Ok(status) => std::process::ExitCode::from(status.code().map_or(1, |code| code as u8)),
        Err(error) => {
            eprintln!("lanyard exec: cannot run {}: {error}", program.to_string_lossy());
            std::process::ExitCode::from(EXEC_FAILED)
        }
    }
}
