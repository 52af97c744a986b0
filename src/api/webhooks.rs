//! `/api/webhooks` and `/api/organisations/{id}/webhooks`: webhooks, their secret (shown once,
//! on creation and rotation), their deliveries log, and `ping`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{Field, FieldReader, parse_id};
use super::wire::{Rfc3339, json_array, json_ok};
use crate::domain::{DeliveryAttempt, EventSelection, Owner, PlainHttpHosts, Scope, Webhook, WebhookUrl};
use crate::error::AppError;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::{AppState, Caller, JsonObject};
use crate::services::webhooks::{self, NewWebhook, WebhookUpdate, WithSecret, parse_description};

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResource {
    pub id: uuid::Uuid,
    pub url: String,
    /// The events it receives: a list of `connection.failed`, `connection.recovered`,
    /// `configuration.model_missing`, `connection.expiring`, or `["*"]` for all.
    pub events: Vec<&'static str>,
    pub description: String,
    pub is_active: bool,
    /// The organisation it belongs to; `null` for a user's own.
    pub organisation_id: Option<uuid::Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Rfc3339,
}

impl From<Webhook> for WebhookResource {
    fn from(webhook: Webhook) -> Self {
        WebhookResource {
            id: webhook.id,
            url: webhook.url,
            events: webhook.events.names(),
            description: webhook.description,
            is_active: webhook.is_active,
            organisation_id: match webhook.owner {
                Owner::Organisation(id) => Some(id),
                Owner::User(_) => None,
            },
            created_at: Rfc3339(webhook.created_at),
            updated_at: Rfc3339(webhook.updated_at),
        }
    }
}

/// A webhook with its signing secret: answered once, on creation and on rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecretResource {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<&'static str>,
    pub description: String,
    pub is_active: bool,
    pub organisation_id: Option<uuid::Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Rfc3339,
    /// `whsec_` and 32 characters; the HMAC-SHA256 key of `Lanyard-Signature` (its UTF-8 bytes,
    /// prefix included). Shown this once.
    pub secret: String,
}

impl From<WithSecret> for WebhookWithSecretResource {
    fn from(created: WithSecret) -> Self {
        let resource = WebhookResource::from(created.webhook);
        WebhookWithSecretResource {
            id: resource.id,
            url: resource.url,
            events: resource.events,
            description: resource.description,
            is_active: resource.is_active,
            organisation_id: resource.organisation_id,
            created_at: resource.created_at,
            updated_at: resource.updated_at,
            secret: created.secret.expose().to_owned(),
        }
    }
}

/// The body of `POST /api/webhooks` (and of an organisation's). Unknown and read-only fields
/// are refused.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_new` reads it field by field
pub struct CreateWebhookRequest {
    /// An absolute `https` URL; plain `http`, an IP address or `localhost` only for hosts the
    /// operator lists in `LANYARD_WEBHOOK_ALLOW`.
    #[schema(max_length = 2048, pattern = "^https?://")]
    url: String,
    /// A non-empty list of event types, or `["*"]` (the default) for all.
    #[schema(min_items = 1)]
    events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Default `true`.
    is_active: Option<bool>,
}

/// The body of `PUT /api/webhooks/{id}`: any subset of the fields.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the wire format; `parse_update` reads it field by field
pub struct UpdateWebhookRequest {
    #[schema(max_length = 2048, pattern = "^https?://")]
    url: Option<String>,
    #[schema(min_items = 1)]
    events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    is_active: Option<bool>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptResource {
    /// `evt_…`: the `Lanyard-Event-Id` (the same on every attempt of an event).
    pub event_id: String,
    /// The event type, or `ping`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The receiver's HTTP status; `null` when there was no answer.
    pub status_code: Option<i64>,
    /// Why the attempt failed (`http_status`, `redirect_not_followed`, `blocked_address`,
    /// `timeout`, `unreachable`, `tls_error`, `secret_unreadable`, `webhook_inactive`);
    /// `null` for a 2xx.
    pub error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: Rfc3339,
}

impl From<DeliveryAttempt> for DeliveryAttemptResource {
    fn from(attempt: DeliveryAttempt) -> Self {
        DeliveryAttemptResource {
            event_id: attempt.event_id,
            event_type: attempt.event_type,
            attempt: attempt.attempt,
            status_code: attempt.status_code,
            error: attempt.error,
            attempted_at: Rfc3339(attempt.attempted_at),
        }
    }
}

/// The answer to a ping: the event queued (attempted within a second).
#[derive(Debug, Serialize, ToSchema)]
pub struct PingResource {
    pub event_id: String,
}

const FIELDS: [&str; 4] = ["url", "events", "description", "is_active"];
const READ_ONLY: [&str; 5] = ["id", "secret", "organisation_id", "created_at", "updated_at"];

fn read_events(reader: &mut FieldReader) -> Field<EventSelection> {
    match reader.take("events") {
        None => Field::Absent,
        Some(Value::Null) => Field::Null,
        Some(Value::Array(items)) => {
            let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let parsed = match names {
                Some(names) => EventSelection::parse(names),
                None => Err("must be a list of event types".to_owned()),
            };
            match parsed {
                Ok(selection) => Field::Value(selection),
                Err(message) => {
                    reader.errors.add("events", message);
                    Field::Absent
                }
            }
        }
        Some(_) => {
            reader.errors.add("events", "must be a list of event types, or [\"*\"]");
            Field::Absent
        }
    }
}

fn parse_new(body: JsonObject, listed: &impl PlainHttpHosts) -> Result<NewWebhook, AppError> {
    let mut reader = FieldReader::new(body.0, &FIELDS, &READ_ONLY);
    let url = reader.required_string("url");
    let url = reader.parsed("url", url, |raw| WebhookUrl::parse(raw, listed));
    let events = match read_events(&mut reader) {
        Field::Value(events) => Some(events),
        Field::Absent | Field::Null => Some(EventSelection::All),
    };
    let description = match reader.string("description") {
        Field::Value(raw) => reader.parsed("description", Some(raw), parse_description),
        Field::Null | Field::Absent => Some(String::new()),
    };
    let is_active = match reader.boolean("is_active") {
        Field::Value(active) => active,
        Field::Null | Field::Absent => true,
    };
    let errors = reader.errors.clone();
    reader.finish()?;
    match (url, events, description) {
        (Some(url), Some(events), Some(description)) => Ok(NewWebhook {
            url,
            events,
            description,
            is_active,
        }),
        _ => Err(AppError::Validation(errors)),
    }
}

fn parse_update(body: JsonObject, listed: &impl PlainHttpHosts) -> Result<WebhookUpdate, AppError> {
    let mut reader = FieldReader::new(body.0, &FIELDS, &READ_ONLY);
    let url = match reader.string("url") {
        Field::Value(raw) => reader.parsed("url", Some(raw), |raw| WebhookUrl::parse(raw, listed)),
        Field::Null => {
            reader.errors.add("url", "must not be null");
            None
        }
        Field::Absent => None,
    };
    let events = match read_events(&mut reader) {
        Field::Value(events) => Some(events),
        Field::Null => {
            reader.errors.add("events", "must not be null");
            None
        }
        Field::Absent => None,
    };
    let description = match reader.string("description") {
        Field::Value(raw) => reader.parsed("description", Some(raw), parse_description),
        Field::Null => Some(String::new()),
        Field::Absent => None,
    };
    let is_active = match reader.boolean("is_active") {
        Field::Value(active) => Some(active),
        Field::Null => {
            reader.errors.add("is_active", "must not be null");
            None
        }
        Field::Absent => None,
    };
    reader.finish()?;
    Ok(WebhookUpdate {
        url,
        events,
        description,
        is_active,
    })
}

fn created(resource: WithSecret) -> HttpResponse {
    let location = format!("/api/webhooks/{}", resource.webhook.id);
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(WebhookWithSecretResource::from(resource))
}

async fn list_of(state: &AppState, caller: Caller, owner: Option<uuid::Uuid>) -> ApiResult<HttpResponse> {
    let body = caller
        .run_for_user(&state.db, Scope::Read, move |conn, user| {
            let owner = owner.map_or(Owner::User(user), Owner::Organisation);
            let rows = webhooks::list(conn, user, owner).map_err(AppError::from)?;
            let resources: Vec<_> = rows.into_iter().map(WebhookResource::from).collect();
            json_array(&resources, 320)
        })
        .await?;
    Ok(json_ok(body))
}

async fn create_for(
    state: &AppState,
    caller: Caller,
    owner: Option<uuid::Uuid>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let new = parse_new(body, &state.settings.webhooks.policy)?;
    let keyring = state.keyring.clone();
    let created_webhook = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            let owner = owner.map_or(Owner::User(user), Owner::Organisation);
            webhooks::create(conn, &keyring, user, owner, new)
        })
        .await?;
    Ok(created(created_webhook))
}

#[utoipa::path(
    get, path = "/api/webhooks", tag = "webhooks",
    description = "The caller's own webhooks, oldest first (never their secrets). Scope: `read`.",
    responses(
        (status = 200, body = [WebhookResource]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    list_of(&state, caller, None).await
}

#[utoipa::path(
    post, path = "/api/webhooks", tag = "webhooks",
    description = "Create a webhook: `url`, `events` (default `[\"*\"]`), `description`, `is_active`. \
                   The answer carries the signing `secret`, shown this once. At most 20 per user \
                   (409 `cap_reached`). Scope: `write`.",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = WebhookWithSecretResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonObject) -> ApiResult<HttpResponse> {
    create_for(&state, caller, None, body).await
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/webhooks", tag = "webhooks",
    description = "The organisation's webhooks (its admins and owners). Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [WebhookResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn organisation_list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let organisation = parse_id(&path)?;
    list_of(&state, caller, Some(organisation)).await
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/webhooks", tag = "webhooks",
    description = "Create a webhook of the organisation (its admins and owners); the same shape as \
                   `POST /api/webhooks`. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = WebhookWithSecretResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn organisation_create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let organisation = parse_id(&path)?;
    create_for(&state, caller, Some(organisation), body).await
}

#[utoipa::path(
    get, path = "/api/webhooks/{id}", tag = "webhooks",
    description = "One webhook: the caller's own, or an organisation's for its admins. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let webhook = caller
        .run_for_user(&state.db, Scope::Read, move |conn, user| webhooks::get(conn, user, id))
        .await?;
    Ok(HttpResponse::Ok().json(WebhookResource::from(webhook)))
}

#[utoipa::path(
    put, path = "/api/webhooks/{id}", tag = "webhooks",
    description = "Update any subset of `url`, `events`, `description`, `is_active`. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, body = WebhookResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let update = parse_update(body, &state.settings.webhooks.policy)?;
    let webhook = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            webhooks::update(conn, user, id, update)
        })
        .await?;
    Ok(HttpResponse::Ok().json(WebhookResource::from(webhook)))
}

#[utoipa::path(
    delete, path = "/api/webhooks/{id}", tag = "webhooks",
    description = "Delete a webhook, with its queued deliveries and its log. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            webhooks::delete(conn, user, id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks",
    description = "Replace the signing secret; the answer shows the new one, this once. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookWithSecretResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let keyring = state.keyring.clone();
    let rotated = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            webhooks::rotate_secret(conn, &keyring, user, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(WebhookWithSecretResource::from(rotated)))
}

#[utoipa::path(
    get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    description = "The webhook's last 100 delivery attempts, newest first: event id, type, attempt, \
                   status code or error, time. Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = [DeliveryAttemptResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let body = caller
        .run_for_user(&state.db, Scope::Read, move |conn, user| {
            let attempts = webhooks::deliveries(conn, user, id).map_err(AppError::from)?;
            let resources: Vec<_> = attempts.into_iter().map(DeliveryAttemptResource::from).collect();
            json_array(&resources, 200)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/webhooks/{id}/ping", tag = "webhooks",
    description = "Queue a `ping` event for this webhook now (sent within about a second, retried like \
                   any delivery, even while the webhook is switched off). Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 202, body = PingResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn ping(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let event_id = caller
        .run_for_user(&state.db, Scope::Write, move |conn, user| {
            webhooks::ping(conn, user, id)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(PingResource { event_id }))
}
