//! Testing a connection (or a configuration, through its connection) against its provider: one
//! free, read-only request (never a prompt), classified into something a person can act on,
//! recorded on the saved connection, whose model catalogue it refreshes when the provider
//! listed models.

use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::MasterKeyring;
use crate::db::connections::{self as connection_store, ConnectionRow};
use crate::db::llm_configurations as store;
use crate::db::{self, Database, DbConnection, DbError, DbId, provider_test_runs, users};
use crate::domain::FieldErrors;
use crate::domain::{ApiKey, BaseUrl, CheckStatus, ModelCatalogue, ModelId, Provider, TestStatus};
use crate::egress::{EgressError, OutboundClient};
use crate::providers;
use crate::services::connections::{self, ConnectionError};
use crate::services::events;

/// Why a test did not run (a test that ran and failed is a [`TestOutcome`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// No such configuration or connection, or someone else's.
    #[error("not found")]
    NotFound,
    /// A member (not an admin) of the organisation that owns it tried to test it with other
    /// values than its own.
    #[error("only the organisation's admins and owners may test its configurations with other values")]
    Forbidden,
    #[error("the test's input is invalid")]
    Invalid(FieldErrors),
    /// The owner's per-minute budget of tests is spent.
    #[error("too many tests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for TestError {
    fn from(error: diesel::result::Error) -> Self {
        TestError::Store(DbError::Query(error))
    }
}

/// What a test reads of a connection can only be missing or unreadable.
impl From<ConnectionError> for TestError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::Store(error) => TestError::Store(error),
            ConnectionError::Invalid(fields) => TestError::Invalid(fields),
            ConnectionError::Forbidden => TestError::Forbidden,
            ConnectionError::NotFound
            | ConnectionError::NameTaken
            | ConnectionError::CapReached(_)
            | ConnectionError::InUse(_) => TestError::NotFound,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> TestError {
    TestError::Invalid(FieldErrors::single(field, message))
}

/// What a test is asked to test, parsed (see `configuration_input::TestInput`).
#[derive(Debug)]
pub enum TestSubject {
    /// A saved configuration as stored (through its connection, on which the result is
    /// recorded), looking for its own model unless another is given.
    Saved { id: Uuid, model: Option<ModelId> },
    /// A saved connection, looking for `model` when given; the result is recorded on it.
    Connection { id: Uuid, model: Option<ModelId> },
    /// Edited, unsaved values of a saved configuration, tested with its stored key.
    EditedWithStoredKey {
        id: Uuid,
        provider: Provider,
        model: Option<ModelId>,
        base_url: Option<BaseUrl>,
    },
    /// Values saved nowhere.
    Values {
        provider: Provider,
        model: Option<ModelId>,
        base_url: Option<BaseUrl>,
        api_key: Option<ApiKey>,
    },
}

/// What running a test needs: the database (budget, stored keys, results), the keyring, the
/// one door out, and the per-user budget of tests per minute.
pub struct Tester<'a> {
    pub database: &'a Database,
    pub keyring: &'a MasterKeyring,
    pub client: &'a OutboundClient,
    pub per_minute: u32,
}

/// A test's result, as the API and the pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub ok: bool,
    /// `ok`, `invalid_key`, `forbidden`, `not_found`, `rate_limited`, `timeout`, `unreachable`,
    /// `tls_error`, `blocked_address`, `provider_error` or `key_unreadable`.
    pub code: &'static str,
    /// Lanyard's own sentence for the code ([`failure_sentence`]), never words from the
    /// provider's answer.
    pub message: String,
    pub latency_ms: Option<i64>,
    pub models: Vec<String>,
    pub warnings: Vec<&'static str>,
    /// Everything the provider listed (sorted, at most 2,000), for the connection's catalogue;
    /// `None` when it listed nothing readable.
    pub catalogue: Option<Vec<String>>,
    /// The provider's HTTP status when it refused (a 429 or 5xx says nothing about the key).
    pub http_status: Option<u16>,
}

/// Lanyard's one sentence for each failed code. A provider's answer may echo part of the key
/// (or anything else), so no text from it ever reaches a message, a page or the stored result;
/// only the HTTP status number is added ([`TestOutcome::failed_with_status`]). `timeout` covers
/// a name lookup that got no answer within 3 s as well as a provider silent for 10 s.
pub fn failure_sentence(code: &str) -> &'static str {
    match code {
        "invalid_key" => "the provider rejected the API key, or there is no usable key: enter the key again",
        "forbidden" => "the key is valid but not allowed to list models",
        "not_found" => "the provider has no model list at this base URL: check the base URL",
        "rate_limited" => "the key was accepted, but the provider is throttling it; try again later",
        "timeout" => "the provider did not answer in time (3 s for its name, 10 s in all)",
        "unreachable" => {
            "the provider could not be reached: its name does not resolve, or nothing answers at its address"
        }
        "tls_error" => "the TLS connection to the provider failed (certificate or handshake)",
        "blocked_address" => "the egress policy does not allow this address (LANYARD_EGRESS_ALLOW)",
        "key_unreadable" => "the stored key cannot be decrypted; re-enter the key",
        _ => "the provider's answer was not a model list Lanyard can read; check the base URL or try again later",
    }
}

impl TestOutcome {
    fn failed(code: &'static str, latency_ms: Option<i64>) -> Self {
        TestOutcome {
            ok: false,
            code,
            message: failure_sentence(code).to_owned(),
            latency_ms,
            models: Vec::new(),
            warnings: Vec::new(),
            catalogue: None,
            http_status: None,
        }
    }

    /// A failure classified from the provider's HTTP status, which the message gives.
    fn failed_with_status(code: &'static str, status: u16, latency_ms: Option<i64>) -> Self {
        let mut outcome = TestOutcome::failed(code, latency_ms);
        outcome.message = format!("{} (HTTP {status})", outcome.message);
        outcome.http_status = Some(status);
        outcome
    }

    /// Refused by the egress policy: its sentence names the host the user gave and the
    /// variable that would allow it, never an address the host resolved to.
    fn blocked(refusal: String) -> Self {
        let mut outcome = TestOutcome::failed("blocked_address", None);
        outcome.message = refusal;
        outcome
    }

    /// What the configuration records.
    pub fn test_status(&self) -> TestStatus {
        if self.ok { TestStatus::Ok } else { TestStatus::Failed }
    }

    /// What a check records: a 429, a 5xx or no answer in time is no verdict on the key.
    pub fn check_status(&self) -> CheckStatus {
        if self.ok {
            CheckStatus::Ok
        } else if self.code == "timeout" || self.http_status.is_some_and(|status| status == 429 || status >= 500) {
            CheckStatus::Unavailable
        } else {
            CheckStatus::Failed
        }
    }

    /// The wire form of [`TestOutcome::test_status`].
    pub fn status(&self) -> &'static str {
        self.test_status().as_str()
    }
}

/// What a test needs: where to send which key, and which model to look for (none: just list
/// what the provider offers). The key is redacted in `Debug`.
#[derive(Debug)]
pub struct TestTarget {
    pub provider: Provider,
    pub model: Option<String>,
    pub base_url: String,
    pub api_key: Option<SecretString>,
}

impl TestTarget {
    /// For unsaved values; the base URL defaults to the provider's.
    pub fn new(
        provider: Provider,
        model: Option<&ModelId>,
        base_url: Option<&BaseUrl>,
        api_key: Option<&ApiKey>,
    ) -> Result<Self, TestError> {
        let base_url = match base_url.map(BaseUrl::as_str).or(provider.default_base_url()) {
            Some(url) => url.to_owned(),
            None => return Err(invalid("base_url", format!("is required for {}", provider.label()))),
        };
        if provider.needs_api_key() && api_key.is_none() {
            return Err(invalid("api_key", format!("is required for {}", provider.label())));
        }
        if api_key.is_some() && !provider.accepts_api_key() {
            return Err(invalid("api_key", format!("{} takes no API key", provider.label())));
        }
        Ok(TestTarget {
            provider,
            model: model.map(|model| model.as_str().to_owned()),
            base_url,
            api_key: api_key.map(|key| SecretString::from(key.expose().to_owned())),
        })
    }
}

/// Makes the request and classifies the answer. Never echoes the provider's body.
pub async fn run(client: &OutboundClient, target: &TestTarget) -> TestOutcome {
    let outcome = classify(client, target).await;
    crate::metrics::record_provider_test(outcome.code);
    outcome
}

async fn classify(client: &OutboundClient, target: &TestTarget) -> TestOutcome {
    let key = target.api_key.as_ref().map(|key| key.expose_secret());
    let request = match providers::model_list_request(target.provider, &target.base_url, key) {
        Ok(request) => request,
        Err(providers::RequestError::BaseUrl) => return TestOutcome::failed("not_found", None),
        Err(providers::RequestError::KeyNotSendable) => return TestOutcome::failed("invalid_key", None),
    };
    let response = match client.get(request.url, request.headers).await {
        Ok(response) => response,
        Err(error) => {
            return match error {
                EgressError::Blocked(refusal) => TestOutcome::blocked(refusal),
                EgressError::Timeout => TestOutcome::failed("timeout", None),
                EgressError::Unreachable => TestOutcome::failed("unreachable", None),
                EgressError::Tls => TestOutcome::failed("tls_error", None),
                EgressError::TooLarge => TestOutcome::failed("provider_error", None),
            };
        }
    };
    let latency_ms = Some(i64::try_from(response.latency.as_millis()).unwrap_or(i64::MAX));
    match response.status {
        200..=299 => match providers::parse_models(target.provider, &response.body) {
            Some(models) => {
                let catalogue = providers::parse_catalogue(target.provider, &response.body).unwrap_or_default();
                let mut warnings = Vec::new();
                let mut message = format!("the provider accepted the key and listed {} model(s)", models.len());
                if let Some(model) = target.model.as_deref()
                    && !providers::model_is_listed(target.provider, model, &catalogue)
                {
                    warnings.push("model_not_listed");
                    message.push_str("; the configured model is not among them");
                }
                TestOutcome {
                    ok: true,
                    code: "ok",
                    message,
                    latency_ms,
                    models,
                    warnings,
                    catalogue: Some(catalogue),
                    http_status: None,
                }
            }
            None => TestOutcome::failed("provider_error", latency_ms),
        },
        401 => TestOutcome::failed_with_status("invalid_key", 401, latency_ms),
        403 => TestOutcome::failed_with_status("forbidden", 403, latency_ms),
        404 => TestOutcome::failed_with_status("not_found", 404, latency_ms),
        429 => TestOutcome::failed_with_status("rate_limited", 429, latency_ms),
        status => TestOutcome::failed_with_status("provider_error", status, latency_ms),
    }
}

/// Counts this test against the user's per-minute budget, or refuses with 429. The run is
/// recorded before the outbound call, in the transaction that counted the earlier ones, with
/// the user's row locked (PostgreSQL; SQLite serialises writers anyway): of simultaneous tests
/// exactly the budget runs, never one more.
pub fn consume_test_budget(conn: &mut DbConnection, user_id: Uuid, per_minute: u32) -> Result<(), TestError> {
    db::write_transaction(conn, |conn| {
        users::lock_owner(conn, DbId(user_id))?;
        let now = db::now();
        let window = Duration::minutes(1);
        let (count, oldest) = provider_test_runs::count_since(conn, DbId(user_id), now - window)?;
        if count >= i64::from(per_minute) {
            let retry_after_secs = ((oldest.unwrap_or(now) + window) - now).num_seconds().max(1) as u64;
            return Err(TestError::RateLimited { retry_after_secs });
        }
        provider_test_runs::record(conn, DbId(user_id), now)?;
        Ok(())
    })
}

/// What a saved connection can be tested with: a target, or the outcome that needs no request.
enum SavedTarget {
    Ready(TestTarget),
    /// A key that does not decrypt (`key_unreadable`), or nothing to send it to.
    Settled(TestOutcome),
}

impl SavedTarget {
    /// Runs the test, or settles it without a request.
    async fn outcome(self, client: &OutboundClient) -> TestOutcome {
        match self {
            SavedTarget::Ready(target) => run(client, &target).await,
            SavedTarget::Settled(outcome) => outcome,
        }
    }
}

/// The saved connection's test target; a key that does not decrypt is the failed outcome
/// `key_unreadable`, never an error.
fn saved_target(keyring: &MasterKeyring, row: &ConnectionRow, model: Option<String>) -> SavedTarget {
    let provider = row.provider;
    let Some(base_url) = row.base_url.as_deref().or(provider.default_base_url()) else {
        return SavedTarget::Settled(TestOutcome::failed("not_found", None));
    };
    let api_key = match (&row.api_key_encrypted, row.owner()) {
        (None, _) => None,
        (Some(_), None) => return SavedTarget::Settled(TestOutcome::failed("key_unreadable", None)),
        (Some(sealed), Some(owner)) => match connections::open_key(
            keyring,
            owner,
            row.id.0,
            row.legacy_configuration_id.map(|id| id.0),
            sealed,
        ) {
            Some(key) => Some(key),
            None => return SavedTarget::Settled(TestOutcome::failed("key_unreadable", None)),
        },
    };
    if provider.needs_api_key() && api_key.is_none() {
        return SavedTarget::Settled(TestOutcome::failed("invalid_key", None));
    }
    SavedTarget::Ready(TestTarget {
        provider,
        model,
        base_url: base_url.to_owned(),
        api_key,
    })
}

/// The scheduler's test of a saved connection: not counted against any budget, recorded by the
/// caller. `None` when there is nothing to check (a provider that needs a key, and none kept).
pub async fn check_saved(keyring: &MasterKeyring, client: &OutboundClient, row: &ConnectionRow) -> Option<TestOutcome> {
    if row.provider.needs_api_key() && row.api_key_encrypted.is_none() {
        return None;
    }
    Some(saved_target(keyring, row, None).outcome(client).await)
}

impl Tester<'_> {
    /// Runs one test for `owner`, counted against the owner's budget: a saved configuration or
    /// connection (the result recorded on the connection), edited values with a saved
    /// configuration's key, or values saved nowhere. Input that cannot be tested is refused
    /// before anything is counted.
    pub async fn test(&self, owner: Uuid, subject: TestSubject) -> Result<TestOutcome, TestError> {
        match subject {
            TestSubject::Saved { id, model } => {
                let configuration = self
                    .database
                    .run(move |conn| store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(TestError::NotFound))
                    .await?;
                let model = model.map_or(configuration.row.model, |model| model.as_str().to_owned());
                self.test_connection(owner, configuration.row.connection_id.0, Some(model))
                    .await
            }
            TestSubject::Connection { id, model } => {
                self.test_connection(owner, id, model.map(|model| model.as_str().to_owned()))
                    .await
            }
            TestSubject::EditedWithStoredKey {
                id,
                provider,
                model,
                base_url,
            } => {
                self.test_edit_with_stored_key(owner, id, provider, base_url, model)
                    .await
            }
            TestSubject::Values {
                provider,
                model,
                base_url,
                api_key,
            } => {
                let target = TestTarget::new(provider, model.as_ref(), base_url.as_ref(), api_key.as_ref())?;
                let per_minute = self.per_minute;
                self.database
                    .run(move |conn| consume_test_budget(conn, owner, per_minute))
                    .await?;
                Ok(run(self.client, &target).await)
            }
        }
    }

    /// The owner's connection `id`, with this test counted (`check` may refuse it first).
    async fn counted_connection(
        &self,
        owner: Uuid,
        id: Uuid,
        check: impl FnOnce(&ConnectionRow) -> Result<(), TestError> + Send + 'static,
    ) -> Result<ConnectionRow, TestError> {
        let per_minute = self.per_minute;
        self.database
            .run(move |conn| {
                let (row, _) = connections::find_visible_row(conn, owner, id)?;
                check(&row)?;
                consume_test_budget(conn, owner, per_minute)?;
                Ok(row)
            })
            .await
    }

    /// Tests a saved connection of `owner`, records the outcome on it, and refreshes its
    /// catalogue when the provider listed models.
    async fn test_connection(&self, owner: Uuid, id: Uuid, model: Option<String>) -> Result<TestOutcome, TestError> {
        let row = self.counted_connection(owner, id, |_| Ok(())).await?;
        let outcome = saved_target(self.keyring, &row, model).outcome(self.client).await;
        let recorded = outcome.clone();
        let owner = row.owner().ok_or(TestError::NotFound)?;
        self.database
            .run(move |conn| {
                // A manual test is a check too: recorded, and its events queued, in one
                // transaction.
                db::write_transaction(conn, |conn| {
                    let now = db::now();
                    let before = events::Observation::read(conn, owner, id)?;
                    connection_store::record_test_result(
                        conn,
                        owner,
                        DbId(id),
                        recorded.test_status(),
                        recorded.code,
                        Some(&recorded.message),
                        recorded.latency_ms,
                        now,
                    )?;
                    if let Some(catalogue) = recorded.catalogue.clone() {
                        connections::store_catalogue(conn, owner, id, catalogue)?;
                    }
                    crate::services::scheduled_checks::record_manual(conn, owner, id, &recorded)?;
                    if let Some(before) = before {
                        events::after_check(conn, &before, &recorded, now)?;
                    }
                    Ok::<_, TestError>(())
                })
            })
            .await?;
        Ok(outcome)
    }

    /// Fetches a connection's model list now (counted against the test budget) and stores it as
    /// its catalogue. A provider that lists nothing readable leaves the catalogue as it was; the
    /// failure is the outcome.
    pub async fn refresh_models(
        &self,
        owner: Uuid,
        id: Uuid,
    ) -> Result<Result<ModelCatalogue, TestOutcome>, TestError> {
        let row = self.counted_connection(owner, id, |_| Ok(())).await?;
        let outcome = saved_target(self.keyring, &row, None).outcome(self.client).await;
        let owner = row.owner().ok_or(TestError::NotFound)?;
        let Some(models) = outcome.catalogue.clone() else {
            return Ok(Err(outcome));
        };
        // A model that leaves the catalogue on a refresh is announced as on a check (the next
        // check would not see it leave).
        Ok(Ok(self
            .database
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let before = events::Observation::read(conn, owner, id)?;
                    let catalogue = connections::store_catalogue(conn, owner, id, models)?;
                    if let Some(before) = before {
                        events::after_check(conn, &before, &outcome, db::now())?;
                    }
                    Ok::<_, TestError>(catalogue)
                })
            })
            .await?))
    }

    /// Tests an edited, unsaved form of `owner`'s configuration `id` with its stored key (its
    /// connection's). The key goes only where it was going: a different provider or base URL
    /// needs the key entered again (refused on `api_key`), so that a test cannot redirect a
    /// stored key either.
    async fn test_edit_with_stored_key(
        &self,
        owner: Uuid,
        id: Uuid,
        provider: Provider,
        base_url: Option<BaseUrl>,
        model: Option<ModelId>,
    ) -> Result<TestOutcome, TestError> {
        let requested_base = crate::services::configurations::stored_base_url(provider, base_url.as_ref());
        let configuration = self
            .database
            .run(move |conn| store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(TestError::NotFound))
            .await?;
        if !configuration.seen.can_edit(configuration.organisation_id) {
            return Err(TestError::Forbidden);
        }
        let row = self
            .counted_connection(owner, configuration.connection_id.0, move |row| {
                if row.provider != provider || row.base_url != requested_base {
                    return Err(invalid(
                        "api_key",
                        "enter the key to test a different provider or base URL",
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(
            saved_target(self.keyring, &row, model.map(|model| model.as_str().to_owned()))
                .outcome(self.client)
                .await,
        )
    }
}
