//! Webhooks as their owners manage them (monitoring.md): a user's own, and an organisation's
//! for its admins and owners. The signing secret is made here, shown once (on creation and on
//! rotation) and kept sealed under the master keyring, bound to the webhook.

use uuid::Uuid;

use crate::crypto::{MasterKeyring, RowBinding, Sealed, WebhookSecret};
use crate::db::webhook_attempts;
use crate::db::webhooks::{self as store, WebhookChanges, WebhookRow};
use crate::db::{self, DbConnection, DbError, DbId, memberships, organisations};
use crate::domain::{
    DeliveryAttempt, EventSelection, EventType, FieldErrors, OrganisationRole, Owner, Webhook, WebhookUrl,
};
use crate::services::events::{self, Event};

/// How many webhooks one user or one organisation may keep.
pub const MAX_WEBHOOKS: i64 = 20;
/// How many attempts `GET /api/webhooks/{id}/deliveries` shows.
pub const DELIVERIES_SHOWN: i64 = 100;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    /// No such webhook, or one the caller may not manage: the same either way.
    #[error("not found")]
    NotFound,
    /// A member of the organisation who is not one of its admins.
    #[error("only the organisation's admins and owners manage its webhooks")]
    Forbidden,
    #[error("at most {MAX_WEBHOOKS} webhooks per user or organisation")]
    CapReached,
    #[error("the webhook is invalid")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] DbError),
}

crate::services::store_error!(WebhooksError);

/// A new webhook, its fields already parsed.
#[derive(Debug)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub events: EventSelection,
    pub description: String,
    pub is_active: bool,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookUpdate {
    pub url: Option<WebhookUrl>,
    pub events: Option<EventSelection>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

/// A webhook with its secret, shown this once.
#[derive(Debug)]
pub struct WithSecret {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// A description as stored: trimmed, at most [`MAX_DESCRIPTION_CHARS`], no control characters.
pub fn parse_description(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

fn to_domain(row: WebhookRow) -> Webhook {
    Webhook {
        id: row.id.0,
        owner: owner_of(&row),
        url: row.url,
        events: EventSelection::from_stored(&row.events),
        description: row.description,
        is_active: row.is_active,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn owner_of(row: &WebhookRow) -> Owner {
    // The table's CHECK keeps exactly one column set; an owner of nil would match no one.
    Owner::from_columns(
        row.owner_user_id.map(|id| id.0),
        row.owner_organisation_id.map(|id| id.0),
    )
    .unwrap_or(Owner::User(Uuid::nil()))
}

/// May `user` manage the webhooks of `owner`? Someone outside an organisation gets `NotFound`
/// (as for the organisation itself), a member who is no admin `Forbidden`.
fn authorise(conn: &mut DbConnection, user: Uuid, owner: Owner) -> Result<Owner, WebhooksError> {
    match owner {
        Owner::User(id) if id == user => Ok(owner),
        Owner::User(_) => Err(WebhooksError::NotFound),
        Owner::Organisation(organisation) => {
            let membership = memberships::find(conn, DbId(organisation), DbId(user))?.ok_or(WebhooksError::NotFound)?;
            if membership.role.includes(OrganisationRole::Admin) {
                Ok(owner)
            } else {
                Err(WebhooksError::Forbidden)
            }
        }
    }
}

/// The webhook `id` if `user` may manage it.
fn manageable(conn: &mut DbConnection, user: Uuid, id: Uuid) -> Result<WebhookRow, WebhooksError> {
    store::find_manageable(conn, DbId(user), DbId(id))?.ok_or(WebhooksError::NotFound)
}

fn seal(keyring: &MasterKeyring, id: Uuid, secret: &WebhookSecret) -> Sealed {
    keyring.seal(secret.expose().as_bytes(), RowBinding::Webhook { webhook: id })
}

/// A stored secret in clear; `None` when it does not open (master key gone, tampered, moved).
pub fn open_secret(keyring: &MasterKeyring, row: &WebhookRow) -> Option<WebhookSecret> {
    let plain = keyring
        .open(&row.secret_encrypted, RowBinding::Webhook { webhook: row.id.0 })
        .ok()?;
    String::from_utf8(plain.to_vec()).ok().map(WebhookSecret::from_stored)
}

pub fn list(conn: &mut DbConnection, user: Uuid, owner: Owner) -> Result<Vec<Webhook>, WebhooksError> {
    let owner = authorise(conn, user, owner)?;
    Ok(store::list(conn, owner)?.into_iter().map(to_domain).collect())
}

pub fn create(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user: Uuid,
    owner: Owner,
    new: NewWebhook,
) -> Result<WithSecret, WebhooksError> {
    db::write_transaction(conn, |conn| {
        let owner = authorise(conn, user, owner)?;
        // Serialises creations by one owner, so that the cap holds under concurrency.
        match owner {
            Owner::User(id) => {
                db::users::lock_owner(conn, DbId(id))?;
            }
            Owner::Organisation(id) => {
                organisations::lock(conn, DbId(id))?;
            }
        }
        if store::count(conn, owner)? >= MAX_WEBHOOKS {
            return Err(WebhooksError::CapReached);
        }
        let id = Uuid::now_v7();
        let secret = WebhookSecret::generate();
        let sealed = seal(keyring, id, &secret);
        let now = db::now();
        let row = WebhookRow {
            id: DbId(id),
            owner_user_id: owner.user().map(DbId),
            owner_organisation_id: owner.organisation().map(DbId),
            url: new.url.as_str().to_owned(),
            events: new.events.to_stored(),
            description: new.description,
            is_active: new.is_active,
            secret_encrypted: sealed.bytes,
            key_id: sealed.key_id,
            created_at: now,
            updated_at: now,
        };
        store::insert(conn, &row)?;
        Ok(WithSecret {
            webhook: to_domain(row),
            secret,
        })
    })
}

pub fn get(conn: &mut DbConnection, user: Uuid, id: Uuid) -> Result<Webhook, WebhooksError> {
    Ok(to_domain(manageable(conn, user, id)?))
}

pub fn update(conn: &mut DbConnection, user: Uuid, id: Uuid, update: WebhookUpdate) -> Result<Webhook, WebhooksError> {
    db::write_transaction(conn, |conn| {
        let row = manageable(conn, user, id)?;
        let owner = owner_of(&row);
        let events = update.events.as_ref().map(EventSelection::to_stored);
        let changes = WebhookChanges {
            url: update.url.as_ref().map(WebhookUrl::as_str),
            events: events.as_deref(),
            description: update.description.as_deref(),
            is_active: update.is_active,
            updated_at: Some(db::now()),
            ..WebhookChanges::default()
        };
        store::update(conn, owner, row.id, &changes)?;
        Ok(to_domain(
            store::find(conn, owner, row.id)?.ok_or(WebhooksError::NotFound)?,
        ))
    })
}

pub fn delete(conn: &mut DbConnection, user: Uuid, id: Uuid) -> Result<(), WebhooksError> {
    db::write_transaction(conn, |conn| {
        let row = manageable(conn, user, id)?;
        store::delete(conn, owner_of(&row), row.id)?;
        Ok(())
    })
}

/// Replaces the secret; the new one is shown this once. Deliveries still queued are signed with
/// the new secret from their next attempt on.
pub fn rotate_secret(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user: Uuid,
    id: Uuid,
) -> Result<WithSecret, WebhooksError> {
    db::write_transaction(conn, |conn| {
        let row = manageable(conn, user, id)?;
        let owner = owner_of(&row);
        let secret = WebhookSecret::generate();
        let sealed = seal(keyring, id, &secret);
        let changes = WebhookChanges {
            secret_encrypted: Some(&sealed.bytes),
            key_id: Some(&sealed.key_id),
            updated_at: Some(db::now()),
            ..WebhookChanges::default()
        };
        store::update(conn, owner, row.id, &changes)?;
        let row = store::find(conn, owner, row.id)?.ok_or(WebhooksError::NotFound)?;
        Ok(WithSecret {
            webhook: to_domain(row),
            secret,
        })
    })
}

/// The webhook's latest attempts, newest first.
pub fn deliveries(conn: &mut DbConnection, user: Uuid, id: Uuid) -> Result<Vec<DeliveryAttempt>, WebhooksError> {
    let row = manageable(conn, user, id)?;
    Ok(
        webhook_attempts::recent(conn, owner_of(&row), row.id, DELIVERIES_SHOWN)?
            .into_iter()
            .map(|attempt| DeliveryAttempt {
                event_id: attempt.event_id,
                event_type: attempt.event_type.as_str().to_owned(),
                attempt: attempt.attempt,
                status_code: attempt.status_code,
                error: attempt.error,
                attempted_at: attempt.attempted_at,
            })
            .collect(),
    )
}

/// Queues a `ping` for this webhook alone, due now (sent even while it is switched off); the
/// event's id.
pub fn ping(conn: &mut DbConnection, user: Uuid, id: Uuid) -> Result<String, WebhooksError> {
    db::write_transaction(conn, |conn| {
        let row = manageable(conn, user, id)?;
        let event = Event::new(
            EventType::Ping,
            db::now(),
            serde_json::json!({"webhook": {"id": row.id.0, "url": row.url}}),
        );
        events::enqueue_for(conn, row.id, &event)?;
        Ok(event.id)
    })
}
