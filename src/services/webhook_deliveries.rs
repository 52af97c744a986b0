//! Webhook deliveries (monitoring.md): every instance runs a courier that claims due rows of
//! the outbox in the database (one instance at a time per delivery) and POSTs them through the
//! egress client built with the webhook allow list: signed, no redirects followed, the answer's
//! body read up to 64 KiB and discarded, 10 s in all. A 2xx ends a delivery; anything else is
//! retried on `LANYARD_WEBHOOK_RETRY_SCHEDULE`, then given up. Every attempt is logged.
//!
//! At least once: an instance that dies between sending and recording leaves its claim to lapse
//! (after [`CLAIM`]), and another instance sends the same event (same `Lanyard-Event-Id`) again.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::crypto::MasterKeyring;
use crate::db::webhook_attempts::{self, AttemptRow};
use crate::db::webhook_deliveries::{self as outbox, DeliveryRow};
use crate::db::webhooks::{self as webhook_store, WebhookRow};
use crate::db::{self, Database, DbError, DbId};
use crate::domain::{DeliveryState, EventType, RetrySchedule};
use crate::egress::{EgressError, OutboundClient, header};
use crate::services::webhooks::open_secret;

/// How long a claim holds: longer than an attempt can take (10 s), so that a slow receiver is
/// not sent the same event twice by another instance meanwhile.
const CLAIM: Duration = Duration::from_secs(60);
/// How often an instance looks for due deliveries.
const TICK: Duration = Duration::from_millis(500);
/// Deliveries attempted at once per instance.
const CONCURRENCY: usize = 8;
/// How much of a receiver's answer is read (and discarded).
pub const ANSWER_READ: usize = 64 * 1024;
/// Finished deliveries are forgotten after this long (their attempts stay in the log).
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(7);

/// The running courier of this instance; stopping (or dropping) it ends its attempts, whose
/// claims then lapse for another instance to take.
pub struct Courier {
    task: JoinHandle<()>,
}

impl Courier {
    pub fn start(
        database: Database,
        keyring: Arc<MasterKeyring>,
        client: OutboundClient,
        retry: RetrySchedule,
    ) -> Courier {
        let worker = Worker {
            database,
            keyring,
            client,
            retry: Arc::new(retry),
        };
        Courier {
            task: tokio::spawn(worker.run()),
        }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Worker {
    database: Database,
    keyring: Arc<MasterKeyring>,
    client: OutboundClient,
    retry: Arc<RetrySchedule>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempted {
    status_code: Option<u16>,
    /// Why there was no 2xx (none with a 2xx).
    error: Option<&'static str>,
}

impl Attempted {
    fn failed(error: &'static str) -> Attempted {
        Attempted {
            status_code: None,
            error: Some(error),
        }
    }

    fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

impl Worker {
    async fn run(self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut running = JoinSet::new();
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            ticks = ticks.wrapping_add(1);
            while running.try_join_next().is_some() {}
            if !self.database.is_prepared() {
                continue;
            }
            if ticks % 1200 == 1 {
                let purged = self
                    .database
                    .run(|conn| outbox::purge_finished(conn, db::now() - KEEP_FINISHED).map_err(DbError::from))
                    .await;
                if let Err(error) = purged {
                    tracing::warn!(%error, "forgetting finished webhook deliveries failed");
                }
            }
            let free = CONCURRENCY.saturating_sub(running.len());
            if free == 0 {
                continue;
            }
            let claims = self.database.run(move |conn| claim(conn, db::now(), free)).await;
            match claims {
                Ok(claims) => {
                    for delivery in claims {
                        running.spawn(self.clone().attempt(delivery));
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming webhook deliveries failed"),
            }
        }
    }

    async fn attempt(self, delivery: DeliveryRow) {
        let webhook_id = delivery.webhook_id;
        let webhook = self
            .database
            .run(move |conn| webhook_store::find_for_delivery(conn, webhook_id).map_err(DbError::from))
            .await;
        let attempted = match webhook {
            // Deleted since the claim (its deliveries went with it).
            Ok(None) => return,
            Ok(Some(webhook)) if !webhook.is_active && delivery.event_type != EventType::Ping => {
                Attempted::failed("webhook_inactive")
            }
            Ok(Some(webhook)) => self.send(&webhook, &delivery).await,
            Err(error) => {
                tracing::warn!(%error, "reading a webhook to deliver to failed");
                return;
            }
        };
        let attempts = delivery.attempts.saturating_add(1);
        let now = db::now();
        let (state, next) = if attempted.delivered() {
            (DeliveryState::Delivered, None)
        } else if attempted.error == Some("webhook_inactive") {
            (DeliveryState::GivenUp, None)
        } else {
            match self.retry.delay_after(usize::try_from(attempts).unwrap_or(usize::MAX)) {
                Some(delay) => (
                    DeliveryState::Pending,
                    Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)),
                ),
                None => (DeliveryState::GivenUp, None),
            }
        };
        let result = match (attempted.delivered(), state) {
            (true, _) => "delivered",
            (false, DeliveryState::Pending) => "retrying",
            (false, _) => "given_up",
        };
        crate::metrics::record_webhook_delivery(result);
        tracing::info!(
            event_id = %delivery.event_id,
            event_type = delivery.event_type.as_str(),
            webhook = %delivery.webhook_id.0,
            attempt = attempts,
            status_code = attempted.status_code,
            error = attempted.error,
            result,
            "webhook delivery attempt"
        );
        let recorded = self
            .database
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    outbox::finish(conn, &delivery, state, attempts, next)?;
                    webhook_attempts::record(
                        conn,
                        &AttemptRow {
                            id: DbId(Uuid::now_v7()),
                            webhook_id: delivery.webhook_id,
                            delivery_id: delivery.id,
                            event_id: delivery.event_id.clone(),
                            event_type: delivery.event_type,
                            attempt: attempts,
                            status_code: attempted.status_code.map(i64::from),
                            error: attempted.error.map(str::to_owned),
                            attempted_at: now,
                        },
                    )?;
                    Ok::<_, DbError>(())
                })
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(%error, "recording a webhook delivery attempt failed");
        }
    }

    /// One POST of the delivery's exact body, signed now.
    async fn send(&self, webhook: &WebhookRow, delivery: &DeliveryRow) -> Attempted {
        let Some(secret) = open_secret(&self.keyring, webhook) else {
            return Attempted::failed("secret_unreadable");
        };
        let Ok(url) = url::Url::parse(&webhook.url) else {
            return Attempted::failed("invalid_url");
        };
        let body = delivery.body.as_bytes().to_vec();
        let timestamp = chrono::Utc::now().timestamp();
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        let (Ok(event_id), Ok(signature)) = (
            header::HeaderValue::from_str(&delivery.event_id),
            header::HeaderValue::from_str(&secret.signature_header(timestamp, &body)),
        ) else {
            return Attempted::failed("invalid_header");
        };
        headers.insert("lanyard-event-id", event_id);
        headers.insert("lanyard-signature", signature);
        match self.client.post(url, headers, body, ANSWER_READ).await {
            Ok(answer) if (200..300).contains(&answer.status) => Attempted {
                status_code: Some(answer.status),
                error: None,
            },
            Ok(answer) => Attempted {
                status_code: Some(answer.status),
                error: Some(if (300..400).contains(&answer.status) {
                    "redirect_not_followed"
                } else {
                    "http_status"
                }),
            },
            Err(error) => Attempted::failed(match error {
                EgressError::Blocked(_) => "blocked_address",
                EgressError::Timeout => "timeout",
                EgressError::Unreachable => "unreachable",
                EgressError::Tls => "tls_error",
                EgressError::TooLarge => "answer_too_large",
            }),
        }
    }
}

/// Claims up to `limit` due deliveries, in one write transaction.
fn claim(conn: &mut db::DbConnection, now: NaiveDateTime, limit: usize) -> Result<Vec<DeliveryRow>, DbError> {
    if !outbox::anything_due(conn, now)? {
        return Ok(Vec::new());
    }
    let lapses = now + chrono::Duration::from_std(CLAIM).unwrap_or(chrono::Duration::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    db::write_transaction(conn, |conn| Ok(outbox::claim_due(conn, now, lapses, limit)?))
}
