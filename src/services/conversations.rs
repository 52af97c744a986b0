//! Per-conversation overrides, and resolution: which configuration a conversation uses, with its
//! key. Every resolution of a stored configuration records its use and writes an audit entry.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::{MasterKeyring, mask_api_key};
use crate::db::conversation_overrides as overrides;
use crate::db::llm_configurations::{self as store, ConfigurationRow};
use crate::db::{self, DbConnection, DbError, DbId, key_reveals};
use crate::domain::{
    Configuration, ConversationId, ConversationOverride, FallbackConfiguration, MemberAccess, Provider, UserCap,
};

/// What went wrong with an override or a resolution (the edge gives it a status).
#[derive(Debug, thiserror::Error)]
pub enum ConversationsError {
    /// No such configuration (or user) for this owner; or nothing to resolve to.
    #[error("not found")]
    NotFound,
    /// A new pin beyond the user's cap.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    /// A member's own token landed on an organisation's configuration whose key its members may
    /// not read (`member_access` is `use`).
    #[error("this configuration belongs to an organisation: its key is resolved by the organisation's service tokens")]
    OrganisationKey,
    /// The stored key does not open under any configured master key.
    #[error("the stored API key cannot be decrypted; re-enter the key")]
    KeyUnreadable,
    /// A row written or read a moment ago is gone: a bug, not the caller's doing.
    #[error("{0}")]
    Vanished(&'static str),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(ConversationsError);

pub fn list(conn: &mut DbConnection, owner: Uuid) -> Result<Vec<ConversationOverride>, ConversationsError> {
    Ok(overrides::list_for_user(conn, DbId(owner))?
        .into_iter()
        .map(ConversationOverride::from)
        .collect())
}

/// Pins a conversation to one of the owner's configurations (404 for anyone else's); a new pin
/// beyond `cap` is refused, a changed one never is.
pub fn set_override(
    conn: &mut DbConnection,
    owner: Uuid,
    conversation: &ConversationId,
    configuration_id: Uuid,
    cap: UserCap,
) -> Result<ConversationOverride, ConversationsError> {
    db::write_transaction(conn, |conn| {
        // The owner's row is the lock that makes the count exact under concurrent pins.
        if !db::users::lock_owner(conn, DbId(owner))? {
            return Err(ConversationsError::NotFound);
        }
        store::find_for_user(conn, DbId(owner), DbId(configuration_id))?.ok_or(ConversationsError::NotFound)?;
        if overrides::find(conn, DbId(owner), conversation.as_str())?.is_none()
            && cap.is_reached(overrides::count_for_user(conn, DbId(owner))?)
        {
            return Err(ConversationsError::CapReached(cap));
        }
        overrides::upsert(
            conn,
            DbId(owner),
            conversation.as_str(),
            DbId(configuration_id),
            db::now(),
        )?;
        overrides::find(conn, DbId(owner), conversation.as_str())?
            .map(ConversationOverride::from)
            .ok_or(ConversationsError::Vanished("the override vanished after writing it"))
    })
}

/// Removes a conversation's override; removing one that does not exist is not an error.
pub fn remove_override(
    conn: &mut DbConnection,
    owner: Uuid,
    conversation: &ConversationId,
) -> Result<(), ConversationsError> {
    overrides::delete(conn, DbId(owner), conversation.as_str())?;
    Ok(())
}

/// Where a resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Override,
    Default,
    Fallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Override => "override",
            Source::Default => "default",
            Source::Fallback => "fallback",
        }
    }
}

/// A resolved configuration and its key in clear (redacted in `Debug`).
#[derive(Debug)]
pub struct Resolved {
    pub source: Source,
    /// `None` for the instance fallback.
    pub configuration: Option<Configuration>,
    pub provider: Provider,
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub api_key_masked: Option<String>,
}

/// Who asked, for the audit.
pub struct Requester {
    pub user_id: Uuid,
    pub token_id: Option<Uuid>,
}

/// Resolves the configuration a conversation uses: its override if that is active, else the
/// default, else the instance fallback, else 404. Records the use and the reveal.
pub fn resolve(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    requester: &Requester,
    conversation: Option<&ConversationId>,
    fallback: Option<&FallbackConfiguration>,
) -> Result<Resolved, ConversationsError> {
    let owner = DbId(requester.user_id);
    db::write_transaction(conn, |conn| {
        let pinned = match conversation {
            Some(conversation) => match overrides::find(conn, owner, conversation.as_str())? {
                Some(pin) => store::find_for_user(conn, owner, pin.configuration_id)?.filter(|row| row.is_active),
                None => None,
            },
            None => None,
        };
        let chosen = match pinned {
            Some(row) => Some((Source::Override, row)),
            None => store::find_default_for_user(conn, owner)?.map(|row| (Source::Default, row)),
        };
        let now = db::now();
        let audit = |conn: &mut DbConnection, source: Source, configuration: Option<(DbId, &str)>| {
            key_reveals::insert(
                conn,
                &key_reveals::RevealInsert {
                    id: DbId(Uuid::now_v7()),
                    user_id: owner,
                    token_id: requester.token_id.map(DbId),
                    configuration_id: configuration.map(|(id, _)| id),
                    configuration_name: configuration.map_or("instance fallback", |(_, name)| name),
                    conversation_id: conversation.map(ConversationId::as_str),
                    source: source.as_str(),
                    revealed_at: now,
                },
            )
        };
        let Some((source, row)) = chosen else {
            let Some(fallback) = fallback else {
                return Err(ConversationsError::NotFound);
            };
            audit(conn, Source::Fallback, None)?;
            return Ok(Resolved {
                source: Source::Fallback,
                configuration: None,
                provider: fallback.provider,
                model: fallback.model.clone(),
                base_url: fallback.base_url.clone(),
                api_key_masked: fallback.api_key.as_ref().map(|key| mask_api_key(key.expose_secret())),
                api_key: fallback.api_key.clone(),
            });
        };
        let configuration_owner = row.owner().ok_or(ConversationsError::NotFound)?;
        if configuration_owner.organisation().is_some() && row.member_access != MemberAccess::Reveal {
            return Err(ConversationsError::OrganisationKey);
        }
        let api_key = open_key(keyring, &row)?;
        store::record_use(conn, configuration_owner, row.id, now)?;
        audit(conn, source, Some((row.id, &row.name)))?;
        let row = store::find_for_user(conn, owner, row.id)?.ok_or(ConversationsError::Vanished(
            "the configuration vanished while resolving",
        ))?;
        Ok(Resolved {
            source,
            provider: row.provider,
            model: row.model.clone(),
            base_url: row.base_url.clone(),
            api_key_masked: row.api_key_hint.clone(),
            api_key,
            configuration: Some(Configuration::from(row)),
        })
    })
}

/// The key in clear, read through the configuration's connection, or 409 `key_unreadable`
/// (never a partial key, never a 500).
fn open_key(keyring: &MasterKeyring, row: &ConfigurationRow) -> Result<Option<SecretString>, ConversationsError> {
    let Some(sealed) = &row.api_key_encrypted else {
        return Ok(None);
    };
    let owner = row.owner().ok_or(ConversationsError::KeyUnreadable)?;
    crate::services::connections::open_key(
        keyring,
        owner,
        row.connection_id.0,
        row.legacy_configuration_id.map(|id| id.0),
        sealed,
    )
    .map(Some)
    .ok_or(ConversationsError::KeyUnreadable)
}
