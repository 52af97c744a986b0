//! Builds the HTTP server: state, middleware, routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::config::{MasterKeySource, Settings};
use crate::crypto::MasterKeyring;
use crate::db::{self, Database};
use crate::egress::OutboundClient;
use crate::http::{self, AppState, session};
use crate::services::resolve_journal::ResolveJournal;
use crate::services::resolve_waits::ResolveWaits;
use crate::services::single_sign_on::SingleSignOn;
use crate::services::{scheduled_checks, webhook_deliveries};
use crate::startup::{self, StartupError};
use crate::{api, web as pages};

/// Threads in each worker's blocking pool (see where the server is built).
const BLOCKING_THREADS_PER_WORKER: usize = 2;

/// A server bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    database: Database,
    /// Scheduled checks run while the server serves, and stop with it.
    scheduler: Option<scheduled_checks::Scheduler>,
    /// Webhook deliveries, likewise.
    courier: webhook_deliveries::Courier,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("cannot build the outbound HTTP client: {0}")]
    Outbound(String),
    #[error("cannot prepare the database location: {0}")]
    Io(#[from] std::io::Error),
}

impl Application {
    /// Prepares the database (key check, migrations) and binds the listener.
    pub async fn build(settings: Settings) -> Result<Application, BuildError> {
        let pool = db::build_pool(&settings.database_url, settings.pool_size)?;
        let database = Database::awaiting_preparation(pool);
        let keyring = prepare_or_wait(&database, &settings).await?;
        let listener = TcpListener::bind(settings.bind).map_err(|source| BuildError::Bind {
            address: settings.bind.to_string(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let state_database = database.clone();
        let cookie_key = session::cookie_key(&keyring);
        let secure_cookies = settings.public_url.scheme() == "https";
        let anonymous_csrf = web::Data::new(http::anonymous_csrf::AnonymousCsrf::new(&keyring, secure_cookies));
        spawn_housekeeping(database.clone());
        let session_store = session::DbSessionStore::new(database.clone());
        let outbound =
            OutboundClient::new(settings.egress.clone()).map_err(|error| BuildError::Outbound(error.to_string()))?;
        let pool_size = settings.pool_size.max(2);
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let scheduler =
            scheduled_checks::Scheduler::start(database.clone(), keyring.clone(), outbound.clone(), settings.checks);
        // Deliveries go through a client of their own, with the webhook allow list: opening a
        // host to provider tests never opens it to webhooks.
        let webhook_client = OutboundClient::new(settings.webhooks.policy.clone())
            .map_err(|error| BuildError::Outbound(error.to_string()))?;
        let courier = webhook_deliveries::Courier::start(
            database.clone(),
            keyring.clone(),
            webhook_client,
            settings.webhooks.retry.clone(),
        );
        let resolve_waits = Arc::new(ResolveWaits::new(settings.database_url.clone()));
        // Single sign-on reads its provider's discovery document now, or keeps trying in the
        // background: password sign-in never waits for it.
        let single_sign_on = match settings.single_sign_on.clone() {
            Some(sso_settings) => {
                let sso = Arc::new(SingleSignOn::new(
                    sso_settings,
                    settings.egress.nameservers.clone(),
                    database.clone(),
                    keyring.clone(),
                ));
                sso.discover_or_retry().await;
                Some(sso)
            }
            None => None,
        };
        let resolve_journal = ResolveJournal::start(database.clone())?;
        let state = web::Data::new(AppState {
            resolve_journal,
            db: database,
            outbound,
            keyring,
            settings: Arc::new(settings),
            listings: Arc::default(),
            resolve_tags: Arc::default(),
            resolve_waits,
            single_sign_on,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(session::middleware(
                    session_store.clone(),
                    cookie_key.clone(),
                    secure_cookies,
                ))
                .wrap(actix_web::middleware::from_fn(http::observability::measure))
                .wrap(TracingLogger::<http::observability::RequestSpan>::new())
                .wrap(security_headers(secure_cookies))
                .app_data(state.clone())
                .app_data(anonymous_csrf.clone())
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .configure(api::routes)
                .configure(pages::routes)
                .default_service(web::to(pages::not_found))
        })
        // Database work runs on each worker's blocking pool. Two threads per worker keep one
        // task running while another waits (on PostgreSQL's answer, or SQLite's write lock);
        // with four, threads mostly parked and woke again (futex wake-ups and context switches
        // were a sixth of the management page's CPU), and on SQLite the page and the API list
        // were about 15 % slower (BENCHMARKS.md). Never more than the pool can serve.
        .workers(workers)
        // A client that closes its connection while its request is in flight is gone: its
        // waiting resolve (runtimes.md) ends at once and gives its memory and its place back,
        // instead of waiting out its minute for nobody. (actix-web's default keeps serving a
        // half-closed connection; HTTP clients here do not half-close.)
        .h1_allow_half_closed(false)
        .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER.min(pool_size as usize / workers).max(1))
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            database: state_database,
            scheduler,
            courier,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Serves until SIGINT or SIGTERM; requests in flight are allowed to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(scheduler) = &self.scheduler {
            scheduler.stop();
        }
        self.courier.stop();
        served
    }
}

/// Runs the start-up sequence. When the database cannot be reached and the master keys are
/// known without it (`LANYARD_MASTER_KEYS`, or an existing key file), Lanyard serves at once
/// (503 and `/readyz` 503 meanwhile) and runs the sequence when the database first answers;
/// a key check that fails then ends the process with the same message. Otherwise it waits.
async fn prepare_or_wait(database: &Database, settings: &Settings) -> Result<Arc<MasterKeyring>, BuildError> {
    let public_url = settings.public_url.clone();
    loop {
        match run_prepare(database, &settings.master_keys).await {
            Ok(keyring) => {
                database.mark_prepared();
                announce_setup_link(database, &public_url).await;
                return Ok(keyring);
            }
            Err(StartupError::Connect(detail)) => {
                if let Some(keyring) = startup::keyring_without_database(&settings.master_keys)? {
                    tracing::warn!(%detail, "the database is unreachable: serving 503 until it answers");
                    spawn_deferred_preparation(database.clone(), settings.master_keys.clone(), public_url);
                    return Ok(keyring);
                }
                tracing::warn!(%detail, "the database is unreachable: waiting for it (the master keys depend on it)");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

async fn run_prepare(database: &Database, source: &MasterKeySource) -> Result<Arc<MasterKeyring>, StartupError> {
    let database = database.clone();
    let source = source.clone();
    tokio::task::spawn_blocking(move || startup::prepare_database(&database, &source))
        .await
        .map_err(|error| StartupError::Connect(format!("start-up task failed: {error}")))?
}

fn spawn_deferred_preparation(database: Database, source: MasterKeySource, public_url: url::Url) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            match run_prepare(&database, &source).await {
                Ok(_) => {
                    database.mark_prepared();
                    tracing::info!("the database answers: Lanyard is ready");
                    announce_setup_link(&database, &public_url).await;
                    return;
                }
                Err(StartupError::Connect(_)) => {}
                Err(error) => {
                    tracing::error!("{error}");
                    eprintln!("error: {error}");
                    std::process::exit(1);
                }
            }
        }
    });
}

/// While no user exists, logs the one-time setup link for the first (admin) account.
async fn announce_setup_link(database: &Database, public_url: &url::Url) {
    match database.run(crate::services::accounts::issue_setup_token).await {
        Ok(Some(token)) => {
            let mut link = public_url.clone();
            link.set_path("/register");
            link.query_pairs_mut().append_pair("setup_token", &token);
            // Printed on purpose: whoever reads this log may create the first (admin) account.
            tracing::warn!("No user exists yet. Create the first (admin) account at: {link}");
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot issue the setup token"),
    }
}

/// A query string that does not parse: 400, as JSON under `/api`, as a page elsewhere.
fn query_error(error: actix_web::error::QueryPayloadError, req: &actix_web::HttpRequest) -> actix_web::Error {
    let app_error = http::api_error::invalid_query(&error);
    if req.path().starts_with("/api/") {
        http::ApiError(app_error).into()
    } else {
        http::PageError::App(app_error).into()
    }
}

/// Every ten minutes: delete expired sessions and old login failures.
fn spawn_housekeeping(database: Database) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            interval.tick().await;
            let result = database.run(crate::services::operations::purge_expired).await;
            match result {
                Ok(purged) if purged != Default::default() => {
                    tracing::debug!(?purged, "purged expired sessions, old login attempts and test runs")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "housekeeping failed"),
            }
        }
    });
}

/// `https`: whether the public URL is https; browsers then keep to https for a year (HSTS).
fn security_headers(https: bool) -> DefaultHeaders {
    let headers = if https {
        DefaultHeaders::new().add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        DefaultHeaders::new()
    };
    headers
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
        ))
}
