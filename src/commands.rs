//! What each command-line command does. `main.rs` parses the arguments and calls these.

use std::io::{BufRead, Write};

use anyhow::{Context, bail};

use crate::app::Application;
use crate::config::Settings;
use crate::crypto::{KeyId, MasterKey};
use crate::db::{self, Database};
use crate::domain::{Email, Password, Scopes};
use crate::services::{accounts, import, operations, tokens};
use crate::startup;

/// `lanyard serve`: check keys, migrate, serve until stopped.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind;
    let public_url = settings.public_url.clone();
    let database = match &settings.database_url {
        db::DatabaseUrl::Postgres(_) => "postgres",
        db::DatabaseUrl::Sqlite(_) => "sqlite",
    };
    let app = Application::build(settings).await?;
    tracing::info!(address = %bind, port = app.port(), %public_url, database, "Lanyard is listening");
    app.run_until_stopped()
        .await
        .context("the server stopped with an error")
}

/// Prepares the database exactly as `serve` does (key check, then migrations).
fn open_database(settings: &Settings) -> anyhow::Result<(Database, std::sync::Arc<crate::crypto::MasterKeyring>)> {
    let pool = db::build_pool(&settings.database_url, 2).context("cannot prepare the database location")?;
    let database = Database::new(pool);
    let keyring = startup::prepare_database(&database, &settings.master_keys)?;
    Ok((database, keyring))
}

/// `lanyard migrate`.
pub fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_database(settings)?;
    eprintln!("The database is up to date.");
    Ok(())
}

/// `lanyard keygen`: a new random master key as an `ID:BASE64` entry.
pub fn keygen(id: Option<&str>) -> anyhow::Result<String> {
    let id = match id {
        Some(id) => KeyId::parse(id)?,
        None => KeyId::generate(),
    };
    Ok(MasterKey::generate(id).to_entry())
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
    let email = Email::parse(email).map_err(|message| anyhow::anyhow!("--email {message}"))?;
    let (database, _) = open_database(settings)?;
    let mut conn = database.connection()?;
    let user =
        accounts::create_user(&mut conn, &email, &password, admin).map_err(|error| anyhow::anyhow!("{error}"))?;
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
    let email = Email::parse(email).map_err(|message| anyhow::anyhow!("--email {message}"))?;
    let name = tokens::parse_token_name(name).map_err(|message| anyhow::anyhow!("--name {message}"))?;
    let scopes = Scopes::parse(scopes).map_err(|message| anyhow::anyhow!("--scopes: {message}"))?;
    let expires_in_days = expires_in_days
        .map(tokens::parse_expiry_days)
        .transpose()
        .map_err(|message| anyhow::anyhow!("--expires-in-days {message}"))?;
    let (database, _) = open_database(settings)?;
    let mut conn = database.connection()?;
    let user = accounts::find_by_email(&mut conn, &email)
        .map_err(|_| anyhow::anyhow!("no user has the email {}", email.as_str()))?;
    let new = tokens::NewToken {
        name,
        scopes,
        expires_in_days,
    };
    let created = tokens::create_token(&mut conn, user.id.0, &new, settings.caps.tokens)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(created.secret.expose().to_owned())
}

/// Writes `line` and a newline to standard output.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("cannot write to standard output")
}

fn user_id_for(database: &Database, email: &str) -> anyhow::Result<uuid::Uuid> {
    let email = Email::parse(email).map_err(|message| anyhow::anyhow!("--email {message}"))?;
    let mut conn = database.connection()?;
    let user = accounts::find_by_email(&mut conn, &email)
        .map_err(|_| anyhow::anyhow!("no user has the email {}", email.as_str()))?;
    Ok(user.id.0)
}

/// Which file format `lanyard import` reads.
#[derive(Debug, Clone, Copy)]
pub enum ImportFormat {
    OpenHands,
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
        ImportFormat::OpenHands => import::parse_openhands(&text, &settings.egress),
        ImportFormat::Json => import::parse_export(&text, &settings.egress),
    }
    .map_err(|error| anyhow::anyhow!("{}: {error}; nothing was imported", file.display()))?;
    let (database, keyring) = open_database(settings)?;
    let owner = user_id_for(&database, email)?;
    let mut conn = database.connection()?;
    let report = import::import(&mut conn, &keyring, owner, drafts, settings.caps.configurations)
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

/// `lanyard export --email E [--output F]`: JSON without any secret.
pub fn export(settings: &Settings, email: &str, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (database, _) = open_database(settings)?;
    let owner = user_id_for(&database, email)?;
    let mut conn = database.connection()?;
    let document = import::export(&mut conn, owner).map_err(|error| anyhow::anyhow!("{error}"))?;
    let json = serde_json::to_string_pretty(&document).context("cannot encode the export")?;
    match output {
        Some(path) => {
            std::fs::write(path, format!("{json}\n")).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Exported {} configuration(s) to {} (no keys).",
                document.configurations.len(),
                path.display()
            );
            Ok(())
        }
        None => print_line(&json),
    }
}

/// `lanyard rotate-keys`: the report to print.
pub fn rotate_keys(settings: &Settings) -> anyhow::Result<String> {
    let (database, keyring) = open_database(settings)?;
    let mut conn = database.connection()?;
    let report = crate::services::master_keys::rotate(&mut conn, &keyring, 100)?;
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
    let pool = db::build_pool(&settings.database_url, 1).context("cannot prepare the database location")?;
    let mut conn = Database::new(pool).connection()?;
    let stored = crate::services::master_keys::StoredKeyState::read(&mut conn)?;
    let salt = stored.passphrase_salt.ok_or_else(|| {
        anyhow::anyhow!(
            "this database has no passphrase salt yet: start Lanyard once with LANYARD_MASTER_PASSPHRASE set"
        )
    })?;
    Ok(crate::services::master_keys::passphrase_key(passphrase, &salt)?.to_entry())
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
    let (database, _) = open_database(settings)?;
    let user_id = user_id_for(&database, email)?;
    let mut conn = database.connection()?;
    accounts::reset_password(&mut conn, user_id, &password, accounts::Actor::CommandLine)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(format!(
        "Password changed for {email}; their sessions were ended and their tokens revoked."
    ))
}

/// `lanyard user disable --email E`: ends their sessions and revokes their tokens for good; the
/// user's security events record the command line as the actor.
pub fn user_disable(settings: &Settings, email: &str) -> anyhow::Result<String> {
    let (database, _) = open_database(settings)?;
    let user_id = user_id_for(&database, email)?;
    let mut conn = database.connection()?;
    accounts::set_disabled(&mut conn, user_id, true, accounts::Actor::CommandLine)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(format!(
        "Disabled {email}: their sessions were ended and their tokens revoked."
    ))
}

/// `lanyard copy-database --to postgres://…`: copies everything from the configured database
/// into an empty PostgreSQL database in one transaction, verifies the counts, and says what to
/// set next.
pub fn copy_database(settings: &Settings, to: &str) -> anyhow::Result<String> {
    let target_url = db::DatabaseUrl::parse(to).map_err(|message| anyhow::anyhow!("--to: {message}"))?;
    if !target_url.is_postgres() {
        anyhow::bail!("--to must be a postgres:// or postgresql:// URL");
    }
    if target_url == settings.database_url {
        anyhow::bail!("--to names the database Lanyard is configured with; name an empty PostgreSQL database");
    }
    let (source, _) = open_database(settings)?;
    let target = Database::new(db::build_pool(&target_url, 1).context("cannot prepare the target")?);
    let expected = operations::copy_database(&source, &target)?;
    let mut lines = vec!["Copied, and verified the counts:".to_owned()];
    lines.extend(expected.iter().map(|(table, count)| format!("  {table}: {count}")));
    lines.push(String::new());
    lines.push("Next: start Lanyard with DATABASE_URL set to that PostgreSQL URL and the SAME master keys".into());
    lines.push("(the same LANYARD_MASTER_KEYS, passphrase, or key file): every stored key stays valid.".into());
    Ok(lines.join("\n"))
}
