//! The `lanyard` command line: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lanyard::config::{self, Settings};
use lanyard::{commands, telemetry};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "lanyard",
    version,
    about = "A self-hosted home for LLM provider configurations"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the master keys, run migrations and serve HTTP (the default).
    Serve,
    /// Run pending database migrations and exit.
    Migrate,
    /// Print a new random master key as an `ID:BASE64` entry for LANYARD_MASTER_KEYS.
    Keygen {
        /// The key's id (1 to 32 letters, digits, '.', '_' or '-'); random when omitted.
        #[arg(long, conflicts_with = "from_passphrase")]
        id: Option<String>,
        /// Print the entry equivalent to LANYARD_MASTER_PASSPHRASE (read from standard input)
        /// for the configured database, whose salt it uses.
        #[arg(long)]
        from_passphrase: bool,
    },
    /// Copy everything from the configured database into an empty PostgreSQL database.
    CopyDatabase {
        /// The target, e.g. postgres://lanyard@db.example.com/lanyard
        #[arg(long)]
        to: String,
    },
    /// Re-encrypt every stored key under the active (first) master key; safe to interrupt and
    /// to run again while servers keep serving.
    RotateKeys,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Import configurations from a file (all of it or nothing).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run a command with the effective configuration in its environment, resolved from a
    /// Lanyard server over HTTP (LANYARD_URL, and LANYARD_TOKEN: a token with the `resolve`
    /// scope). Exits with the command's status, or 2 when it could not be started.
    Exec(ExecArgs),
    /// Write a user's configurations without any key: as JSON, or for OpenHands or LiteLLM.
    Export {
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// json (Lanyard's own), openhands (a config.toml) or litellm (a proxy config.yaml).
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ExecArgs {
    /// The server; default LANYARD_URL, else http://127.0.0.1:8080.
    #[arg(long)]
    url: Option<String>,
    /// The conversation whose override applies.
    #[arg(long)]
    conversation: Option<String>,
    /// With a service token: the member (e-mail or user id) to resolve for.
    #[arg(long)]
    user: Option<String>,
    /// Which variables the command gets: openhands, openai, anthropic or litellm.
    #[arg(long, default_value = "openhands")]
    format: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import the [llm] groups of an OpenHands config.toml, keys included (keys written as
    /// `${VAR}` are read from this environment).
    Openhands {
        #[arg(long)]
        file: PathBuf,
        /// The owner's email.
        #[arg(long)]
        email: String,
    },
    /// Import the model_list of a LiteLLM proxy config.yaml (keys written as
    /// `os.environ/VAR` are read from this environment).
    Litellm {
        #[arg(long)]
        file: PathBuf,
        /// The owner's email.
        #[arg(long)]
        email: String,
    },
    /// Import a `lanyard export` file: configurations arrive inactive and without keys.
    Json {
        #[arg(long)]
        file: PathBuf,
        /// The owner's email.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (the first user ever created is an admin).
    Create {
        #[arg(long)]
        email: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Set a user's password (ends their sessions, revokes their tokens), e.g. when no admin can
    /// log in.
    SetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Disable a user: their sessions end and their tokens are revoked at once, for good.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Remove a user's second factor (two-factor authentication), e.g. when they lost their
    /// app and their recovery codes; their sessions end, and their security events record it.
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(long)]
        email: String,
    },
}

#[derive(Args)]
struct PasswordSource {
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it alone on standard output.
    Create {
        /// The owner's email.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, write, resolve.
        #[arg(long, default_value = "read,write")]
        scopes: String,
        /// Days until the token expires (never, when omitted).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

fn settings() -> anyhow::Result<Settings> {
    Ok(Settings::from_env()?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command.unwrap_or(Command::Serve) {
        // The only command whose exit status is another program's.
        Command::Exec(args) => {
            let request = commands::ExecRequest {
                url: args.url,
                conversation_id: args.conversation,
                user: args.user,
                format: args.format,
                command: args.command,
            };
            return Ok(commands::exec(request).await);
        }
        Command::Serve => commands::serve(settings()?).await,
        Command::Migrate => commands::migrate(&settings()?),
        Command::Keygen {
            from_passphrase: true, ..
        } => {
            let passphrase = commands::read_stdin_line()?;
            commands::print_line(&commands::keygen_from_passphrase(&settings()?, &passphrase)?)
        }
        Command::Keygen { id, .. } => commands::print_line(&commands::keygen(id.as_deref())?),
        Command::CopyDatabase { to } => commands::print_line(&commands::copy_database(&settings()?, &to)?),
        Command::RotateKeys => commands::print_line(&commands::rotate_keys(&settings()?)?),
        Command::User(UserCommand::Create { email, admin, password }) => {
            let settings = settings()?;
            let password = commands::read_password(password.password_stdin)?;
            let message = commands::user_create(&settings, &email, admin, password)?;
            eprintln!("{message}");
            Ok(())
        }
        Command::Import(command) => {
            let (format, file, email) = match command {
                ImportCommand::Openhands { file, email } => (commands::ImportFormat::OpenHands, file, email),
                ImportCommand::Litellm { file, email } => (commands::ImportFormat::Litellm, file, email),
                ImportCommand::Json { file, email } => (commands::ImportFormat::Json, file, email),
            };
            commands::print_line(&commands::import(&settings()?, format, &file, &email)?)
        }
        Command::Export { email, format, output } => commands::export(&settings()?, &email, &format, output.as_deref()),
        Command::User(UserCommand::SetPassword { email, password }) => {
            let settings = settings()?;
            let password = commands::read_password(password.password_stdin)?;
            eprintln!("{}", commands::user_set_password(&settings, &email, password)?);
            Ok(())
        }
        Command::User(UserCommand::Disable { email }) => {
            eprintln!("{}", commands::user_disable(&settings()?, &email)?);
            Ok(())
        }
        Command::User(UserCommand::Reset2fa { email }) => {
            eprintln!("{}", commands::user_reset_second_factor(&settings()?, &email)?);
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            email,
            name,
            scopes,
            expires_in_days,
        }) => {
            let token = commands::token_create(&settings()?, &email, &name, &scopes, expires_in_days)?;
            commands::print_line(&token)
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is worth saying (by line, never by its text).
    if let Err(problem) = config::load_dotenv() {
        eprintln!("warning: ignoring the rest of .env: {problem}");
    }
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
