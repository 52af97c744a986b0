//! Events on transitions (monitoring.md), written to the webhook outbox in the same
//! transaction as the check that caused them: `connection.failed` (was `ok` or unchecked, now
//! failing), `connection.recovered` (was failing, now `ok`), `configuration.model_missing` (a
//! configuration's model left the catalogue) and `connection.expiring` (7 days, then 1 day
//! before `expires_at`, once each).
//!
//! A manual test is a check like a scheduled one: both go through [`Observation`] and
//! [`after_check`]. An answer that gives no verdict (429, 5xx, no answer in time) changes no
//! status and fires no transition; an expiry notice fires at any check.

use chrono::{NaiveDateTime, SecondsFormat};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::connections as connection_store;
use crate::db::connections::ConnectionRow;
use crate::db::webhook_deliveries::{self as outbox, DeliveryRow};
use crate::db::webhooks as webhook_store;
use crate::db::{DbConnection, DbError, DbId};
use crate::domain::{CheckStatus, DeliveryState, EventSelection, EventType, Owner, Provider, TestStatus};
use crate::providers;
use crate::services::connection_tests::TestOutcome;
use crate::services::connections::{self, ConnectionError};

/// An event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    /// `evt_` and 32 hex digits; the `Lanyard-Event-Id` of every attempt.
    pub id: String,
    pub kind: EventType,
    pub occurred_at: NaiveDateTime,
    pub data: Value,
}

impl Event {
    pub fn new(kind: EventType, occurred_at: NaiveDateTime, data: Value) -> Event {
        Event {
            id: format!("evt_{}", Uuid::now_v7().simple()),
            kind,
            occurred_at,
            data,
        }
    }

    /// The exact body every attempt sends.
    pub fn body(&self) -> String {
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "occurred_at": rfc3339(self.occurred_at),
            "data": self.data,
        })
        .to_string()
    }
}

pub fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Queues `event` for one webhook, due now.
pub fn enqueue_for(conn: &mut DbConnection, webhook: DbId, event: &Event) -> Result<(), DbError> {
    outbox::insert(
        conn,
        &DeliveryRow {
            id: DbId(Uuid::now_v7()),
            webhook_id: webhook,
            event_id: event.id.clone(),
            event_type: event.kind,
            body: event.body(),
            attempts: 0,
            state: DeliveryState::Pending,
            next_attempt_at: Some(event.occurred_at),
            claimed_at: None,
            created_at: event.occurred_at,
        },
    )?;
    Ok(())
}

/// Queues `event` for every active webhook of `owner` that wants it; how many.
pub fn publish(conn: &mut DbConnection, owner: Owner, event: &Event) -> Result<usize, DbError> {
    let mut queued = 0;
    for webhook in webhook_store::active(conn, owner)? {
        if EventSelection::from_stored(&webhook.events).wants(event.kind) {
            enqueue_for(conn, webhook.id, event)?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// What a connection looked like before a check recorded its result.
#[derive(Debug, Clone)]
pub struct Observation {
    owner: Owner,
    id: Uuid,
    test_status: TestStatus,
    missing: Vec<Uuid>,
}

impl Observation {
    /// Reads (and on PostgreSQL locks) the connection inside the check's write transaction;
    /// `None` when it is gone.
    pub fn read(conn: &mut DbConnection, owner: Owner, id: Uuid) -> Result<Option<Observation>, DbError> {
        let Some(row) = connection_store::lock_for_owner(conn, owner, DbId(id))? else {
            return Ok(None);
        };
        let missing = models_missing(conn, owner, id, row.provider, row.models_fetched_at.is_some())?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        Ok(Some(Observation {
            owner,
            id,
            test_status: row.test_status,
            missing,
        }))
    }
}

/// The configurations on the connection whose model is not in its catalogue (none without one).
fn models_missing(
    conn: &mut DbConnection,
    owner: Owner,
    id: Uuid,
    provider: Provider,
    has_catalogue: bool,
) -> Result<Vec<(Uuid, String)>, DbError> {
    if !has_catalogue {
        return Ok(Vec::new());
    }
    let catalogue = connection_store::model_ids(conn, owner, DbId(id))?;
    Ok(connection_store::configurations_using(conn, owner, DbId(id))?
        .into_iter()
        .filter(|(_, _, model)| !providers::model_is_listed(provider, model, &catalogue))
        .map(|(id, name, _)| (id.0, name))
        .collect())
}

/// After a check's result (and catalogue) is recorded, in the same transaction: queues the
/// events it caused. Returns what it queued, by type.
pub fn after_check(
    conn: &mut DbConnection,
    before: &Observation,
    outcome: &TestOutcome,
    now: NaiveDateTime,
) -> Result<Vec<EventType>, DbError> {
    let (owner, id) = (before.owner, before.id);
    let connection = match connections::find_row(conn, owner, id) {
        Ok(connection) => connection,
        Err(ConnectionError::Store(error)) => return Err(error),
        Err(_) => return Ok(Vec::new()),
    };
    let mut fired = Vec::new();
    if outcome.check_status() != CheckStatus::Unavailable {
        match (before.test_status, connection.test_status) {
            (TestStatus::Ok | TestStatus::Untested, TestStatus::Failed) => fired.push(EventType::ConnectionFailed),
            (TestStatus::Failed, TestStatus::Ok) => fired.push(EventType::ConnectionRecovered),
            _ => {}
        }
    }
    let provider = connection.provider;
    let now_missing = models_missing(conn, owner, id, provider, connection.models_fetched_at.is_some())?;
    let newly_missing: Vec<(Uuid, String)> = now_missing
        .into_iter()
        .filter(|(configuration, _)| !before.missing.contains(configuration))
        .collect();
    if let Some(expires_at) = connection.expires_at {
        let window = if now >= expires_at - chrono::Duration::days(1) {
            Some(1)
        } else if now >= expires_at - chrono::Duration::days(7) {
            Some(7)
        } else {
            None
        };
        if let Some(days) = window
            && connection_store::claim_expiry_notice(conn, owner, DbId(id), days)?
        {
            fired.push(EventType::ConnectionExpiring);
        }
    }
    if fired.is_empty() && newly_missing.is_empty() {
        return Ok(fired);
    }
    let using: Vec<(Uuid, String)> = connection_store::configurations_using(conn, owner, DbId(id))?
        .into_iter()
        .map(|(id, name, _)| (id.0, name))
        .collect();
    let resource = connection_payload(&connection, i64::try_from(using.len()).unwrap_or(i64::MAX));
    let result = result_payload(outcome);
    for kind in &fired {
        let data = json!({
            "connection": resource,
            "configurations": names(&using),
            "result": result,
        });
        publish(conn, owner, &Event::new(*kind, now, data))?;
    }
    if !newly_missing.is_empty() {
        let data = json!({
            "connection": resource,
            "configurations": names(&newly_missing),
            "result": result,
        });
        publish(
            conn,
            owner,
            &Event::new(EventType::ConfigurationModelMissing, now, data),
        )?;
        fired.push(EventType::ConfigurationModelMissing);
    }
    Ok(fired)
}

fn names(configurations: &[(Uuid, String)]) -> Value {
    Value::Array(
        configurations
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect(),
    )
}

/// The connection as the API shows it, without `api_key_masked`: no key, masked or not, is in
/// a delivery.
pub fn connection_payload(connection: &ConnectionRow, configuration_count: i64) -> Value {
    json!({
        "id": connection.id.0,
        "name": connection.name,
        "provider": connection.provider.id(),
        "base_url": connection.base_url,
        "has_api_key": connection.api_key_hint.is_some(),
        "test_status": connection.test_status.as_str(),
        "test_code": connection.test_code,
        "test_message": connection.test_message,
        "test_latency_ms": connection.test_latency_ms,
        "tested_at": connection.tested_at.map(rfc3339),
        "models_fetched_at": connection.models_fetched_at.map(rfc3339),
        "model_count": connection.model_count,
        "configuration_count": configuration_count,
        "created_at": rfc3339(connection.created_at),
        "updated_at": rfc3339(connection.updated_at),
        "expires_at": connection.expires_at.map(rfc3339),
    })
}

/// The test result as `POST /api/connections/{id}/test` answers it.
fn result_payload(outcome: &TestOutcome) -> Value {
    json!({
        "status": outcome.status(),
        "code": outcome.code,
        "message": outcome.message,
        "latency_ms": outcome.latency_ms,
        "models": outcome.models,
        "warnings": outcome.warnings,
    })
}
