//! Per-conversation overrides, and resolution: which configuration a conversation uses, with its
//! key. Every resolution of a stored configuration records its use and writes an audit entry,
//! through resolve's journal (group commits): the answer is read here, its writes are committed
//! there, and it leaves only after they are.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::{MasterKeyring, ResolveTagSecret, mask_api_key};
use crate::db::conversation_overrides as overrides;
use crate::db::llm_configurations::{self as store, ConfigurationRow};
use crate::db::{self, DbConnection, DbError, DbId, key_reveals, memberships, organisation_reveals, organisations};
use crate::domain::{
    Configuration, ConversationId, ConversationOverride, FallbackConfiguration, MemberAccess, MemberRef, Provider,
    UserCap,
};
use crate::services::ServicePrincipal;
use crate::services::resolve_journal::{ConfigurationUse, Entry, JournalError, ResolveJournal, Reveal};

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
    /// A service token asked for someone who is no active member of its organisation (unknown,
    /// invited only, disabled, outside): one answer for all.
    #[error("this token's organisation has no such member")]
    NotAMember,
    /// The stored key does not open under any configured master key.
    #[error("the stored API key cannot be decrypted; re-enter the key")]
    KeyUnreadable,
    /// A row written or read a moment ago is gone: a bug, not the caller's doing.
    #[error("{0}")]
    Vanished(&'static str),
    /// The journal could not commit the resolve's writes: the key is not handed out.
    #[error(transparent)]
    NotRecorded(#[from] JournalError),
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
    /// The organisation's default (`policy.default_configuration_id`), for a service token.
    OrganisationDefault,
    Fallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Override => "override",
            Source::Default => "default",
            Source::OrganisationDefault => "organisation_default",
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

/// What a runtime already holds: the tags of `If-None-Match` (runtimes.md), and the secret
/// tags are made with.
pub struct Condition<'a> {
    pub tags: &'a ResolveTagSecret,
    /// The tags the runtime sent (`*` matches any); empty when it sent none.
    pub if_none_match: &'a [String],
}

/// A resolution, or the news that the runtime's copy is still current.
#[derive(Debug)]
pub enum Resolution {
    /// The answer, with the tag that covers it; its use and its reveal are recorded.
    Fresh { resolved: Box<Resolved>, tag: String },
    /// The runtime's tag is current: nothing revealed, nothing recorded.
    NotModified { tag: String },
}

/// A resolution whose writes (its use and audit lines, or a 304's refreshed `last_used_at`) are
/// not committed yet: [`Pending::record`] commits them and only then gives the answer.
#[derive(Debug)]
#[must_use = "a resolution's answer may leave only once its writes are recorded"]
pub struct Pending {
    resolution: Resolution,
    writes: Option<Entry>,
}

impl Pending {
    /// Hands the writes to resolve's journal and waits (holding no thread and no connection)
    /// until they are committed; then the answer, its use count exact.
    pub async fn record(self, journal: &ResolveJournal) -> Result<Resolution, ConversationsError> {
        let Pending { mut resolution, writes } = self;
        let Some(writes) = writes else {
            return Ok(resolution);
        };
        let recorded = journal.record(writes).await?;
        if let (Resolution::Fresh { resolved, .. }, Some(use_count)) = (&mut resolution, recorded.use_count)
            && let Some(configuration) = &mut resolved.configuration
        {
            configuration.use_count = use_count;
        }
        Ok(resolution)
    }
}

/// `last_used_at` is refreshed by a 304 at most this often.
const TOUCH_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Resolves the configuration a conversation uses: its override if that is active, else the
/// default, else the instance fallback, else 404. Records the use and the reveal; a reveal of an
/// organisation's configuration (`member_access: reveal`) also goes to that organisation's audit.
/// When the runtime's tag is still current, answers `NotModified` after the same checks.
/// Reads only: the writes are left to [`Pending::record`].
pub fn resolve(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    requester: &Requester,
    conversation: Option<&ConversationId>,
    fallback: Option<&FallbackConfiguration>,
    condition: &Condition<'_>,
) -> Result<Pending, ConversationsError> {
    let owner = DbId(requester.user_id);
    let chosen = choose_for_user(conn, owner, conversation)?;
    if let Some(not_modified) = unchanged(keyring, condition, chosen.as_ref(), fallback)? {
        return Ok(not_modified);
    }
    let organisation_audit = match &chosen {
        Some((_, row)) => match (row.organisation_id, requester.token_id) {
            (Some(organisation), Some(token_id)) => Some(OrganisationAudit {
                organisation_id: organisation.0,
                token_id,
                token_name: db::api_tokens::name_of(conn, DbId(token_id))?.unwrap_or_default(),
            }),
            _ => None,
        },
        None => None,
    };
    let audit = Audit {
        user_id: requester.user_id,
        token_id: requester.token_id,
        conversation,
        organisation: organisation_audit,
    };
    reveal(keyring, condition.tags, &audit, chosen, fallback)
}

/// The user's active override for the conversation, else their default; a member's own token
/// never lands on an organisation's key its members may not read.
fn choose_for_user(
    conn: &mut DbConnection,
    owner: DbId,
    conversation: Option<&ConversationId>,
) -> Result<Option<(Source, store::SeenRow)>, ConversationsError> {
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
    if let Some((_, row)) = &chosen
        && row.organisation_id.is_some()
        && row.member_access != MemberAccess::Reveal
    {
        return Err(ConversationsError::OrganisationKey);
    }
    Ok(chosen)
}

/// `NotModified` when the runtime holds the tag of what would be revealed now, with the
/// refresh of `last_used_at` that is due.
fn unchanged(
    keyring: &MasterKeyring,
    condition: &Condition<'_>,
    chosen: Option<&(Source, store::SeenRow)>,
    fallback: Option<&FallbackConfiguration>,
) -> Result<Option<Pending>, ConversationsError> {
    if condition.if_none_match.is_empty() {
        return Ok(None);
    }
    let current = match chosen {
        Some((source, row)) => present(keyring, *source, row.clone())?,
        None => present_fallback(fallback)?,
    };
    let tag = tag_of(condition.tags, &current);
    let held = condition
        .if_none_match
        .iter()
        .any(|presented| presented == "*" || *presented == tag);
    if !held {
        return Ok(None);
    }
    let now = db::now();
    let not_since = now - TOUCH_GRANULARITY;
    let writes = chosen
        .filter(|(_, row)| row.last_used_at.is_none_or(|last| last < not_since))
        .and_then(|(_, row)| {
            Some(Entry::Touch {
                configuration: ConfigurationUse {
                    id: row.id,
                    owner: row.owner()?,
                    at: now,
                },
                not_since,
            })
        });
    Ok(Some(Pending {
        resolution: Resolution::NotModified { tag },
        writes,
    }))
}

fn fresh(tags: &ResolveTagSecret, resolved: Resolved) -> Resolution {
    let tag = tag_of(tags, &resolved);
    Resolution::Fresh {
        resolved: Box::new(resolved),
        tag,
    }
}

/// The tag of an answer: what a runtime acts on (the source, the configuration's id, name,
/// provider, model, base URL, parameters and `is_active`, and the key), never its counters,
/// timestamps or test results.
fn tag_of(tags: &ResolveTagSecret, resolved: &Resolved) -> String {
    let source = resolved.source.as_str().as_bytes();
    let key = resolved
        .api_key
        .as_ref()
        .map_or(&b""[..], |key| key.expose_secret().as_bytes());
    let has_key: &[u8] = if resolved.api_key.is_some() { b"1" } else { b"0" };
    let base_url = resolved.base_url.as_deref().unwrap_or("").as_bytes();
    match &resolved.configuration {
        Some(configuration) => {
            let id = configuration.id.as_bytes();
            let parameters = configuration.parameters.to_json_text();
            let active: &[u8] = if configuration.is_active { b"1" } else { b"0" };
            tags.tag([
                source,
                id.as_slice(),
                configuration.name.as_bytes(),
                configuration.provider.id().as_bytes(),
                configuration.model.as_bytes(),
                base_url,
                parameters.as_bytes(),
                active,
                has_key,
                key,
            ])
        }
        None => tags.tag([
            source,
            resolved.provider.id().as_bytes(),
            resolved.model.as_bytes(),
            base_url,
            has_key,
            key,
        ]),
    }
}

/// The organisation's audit line a reveal writes: through which token.
struct OrganisationAudit {
    organisation_id: Uuid,
    token_id: Uuid,
    token_name: String,
}

/// What a reveal records: for whom (the member, for a service token), with which token, for
/// which conversation, and the organisation's line if one is due.
struct Audit<'a> {
    user_id: Uuid,
    token_id: Option<Uuid>,
    conversation: Option<&'a ConversationId>,
    organisation: Option<OrganisationAudit>,
}

/// Hands out the chosen configuration's key (or the fallback's), with the use and the audit
/// lines it writes; nothing chosen and no fallback is 404.
fn reveal(
    keyring: &MasterKeyring,
    tags: &ResolveTagSecret,
    audit: &Audit<'_>,
    chosen: Option<(Source, store::SeenRow)>,
    fallback: Option<&FallbackConfiguration>,
) -> Result<Pending, ConversationsError> {
    let now = db::now();
    let writes = |source: Source, configuration: Option<(ConfigurationUse, &str)>| {
        let configuration_id = configuration.map(|(used, _)| used.id);
        let configuration_name = configuration.map_or("instance fallback", |(_, name)| name);
        Entry::Reveal(Box::new(Reveal {
            configuration: configuration.map(|(used, _)| used),
            audit: key_reveals::RevealRow {
                id: DbId(Uuid::now_v7()),
                user_id: DbId(audit.user_id),
                token_id: audit.token_id.map(DbId),
                configuration_id,
                configuration_name: configuration_name.to_owned(),
                conversation_id: audit.conversation.map(|id| id.as_str().to_owned()),
                source: source.as_str().to_owned(),
                revealed_at: now,
            },
            organisation_audit: audit.organisation.as_ref().map(|organisation| {
                organisation_reveals::OrganisationRevealRow {
                    id: DbId(Uuid::now_v7()),
                    organisation_id: DbId(organisation.organisation_id),
                    token_id: DbId(organisation.token_id),
                    token_name: organisation.token_name.clone(),
                    member_id: Some(DbId(audit.user_id)),
                    configuration_id,
                    configuration_name: configuration_name.to_owned(),
                    revealed_at: now,
                }
            }),
        }))
    };
    let Some((source, mut row)) = chosen else {
        let resolved = present_fallback(fallback)?;
        return Ok(Pending {
            writes: Some(writes(Source::Fallback, None)),
            resolution: fresh(tags, resolved),
        });
    };
    let used = ConfigurationUse {
        id: row.id,
        owner: row.owner().ok_or(ConversationsError::NotFound)?,
        at: now,
    };
    let api_key = open_key(keyring, &row)?;
    let writes = writes(source, Some((used, &row.name)));
    // As the row will read once the use is committed; the journal gives the exact count.
    row.row.use_count += 1;
    row.row.last_used_at = Some(now);
    Ok(Pending {
        resolution: fresh(tags, presented(source, row, api_key)),
        writes: Some(writes),
    })
}

/// The chosen configuration as it would be handed out now, its key opened (or 409
/// `key_unreadable`).
fn present(keyring: &MasterKeyring, source: Source, row: store::SeenRow) -> Result<Resolved, ConversationsError> {
    let api_key = open_key(keyring, &row)?;
    Ok(presented(source, row, api_key))
}

fn presented(source: Source, row: store::SeenRow, api_key: Option<SecretString>) -> Resolved {
    Resolved {
        source,
        provider: row.provider,
        model: row.model.clone(),
        base_url: row.base_url.clone(),
        api_key_masked: row.api_key_hint.clone(),
        api_key,
        configuration: Some(Configuration::from(row)),
    }
}

/// The instance fallback, or 404 when there is none.
fn present_fallback(fallback: Option<&FallbackConfiguration>) -> Result<Resolved, ConversationsError> {
    let fallback = fallback.ok_or(ConversationsError::NotFound)?;
    Ok(Resolved {
        source: Source::Fallback,
        configuration: None,
        provider: fallback.provider,
        model: fallback.model.clone(),
        base_url: fallback.base_url.clone(),
        api_key_masked: fallback.api_key.as_ref().map(|key| mask_api_key(key.expose_secret())),
        api_key: fallback.api_key.clone(),
    })
}

/// Resolves for a member of the service token's organisation: the member's override, else the
/// member's default, else the organisation's default, else the instance fallback, else 404.
/// Only what counts is taken (the organisation's own active configurations; the member's own
/// only while the policy allows it and the member shares them); the rest falls through. Anyone
/// who is not an active member, whoever they are, gets one answer (`NotAMember`).
pub fn resolve_for_member(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    service: &ServicePrincipal,
    member: &MemberRef,
    conversation: Option<&ConversationId>,
    fallback: Option<&FallbackConfiguration>,
    condition: &Condition<'_>,
) -> Result<Pending, ConversationsError> {
    let (member_id, chosen) = choose_for_member(conn, service, member, conversation)?;
    if let Some(not_modified) = unchanged(keyring, condition, chosen.as_ref(), fallback)? {
        return Ok(not_modified);
    }
    let audit = Audit {
        user_id: member_id.0,
        token_id: Some(service.token_id),
        conversation,
        organisation: Some(OrganisationAudit {
            organisation_id: service.organisation_id,
            token_id: service.token_id,
            token_name: service.token_name.clone(),
        }),
    };
    reveal(keyring, condition.tags, &audit, chosen, fallback)
}

/// The member, and what counts for them in the service token's organisation: their override,
/// else their default, else the organisation's default.
fn choose_for_member(
    conn: &mut DbConnection,
    service: &ServicePrincipal,
    member: &MemberRef,
    conversation: Option<&ConversationId>,
) -> Result<(DbId, Option<(Source, store::SeenRow)>), ConversationsError> {
    let organisation_id = DbId(service.organisation_id);
    let (member_id, email_key) = match member {
        MemberRef::Id(id) => (Some(DbId(*id)), None),
        MemberRef::Email(email) => (None, Some(email.key())),
        MemberRef::Nobody => (None, None),
    };
    let (member_id, sharing) = memberships::find_active_member(conn, organisation_id, member_id, email_key.as_deref())?
        .ok_or(ConversationsError::NotAMember)?;
    let organisation = organisations::find(conn, organisation_id)?.ok_or(ConversationsError::NotAMember)?;
    let personal_count = organisation.allow_personal_configurations && sharing;
    let counts = |row: &store::SeenRow| {
        row.is_active
            && (row.organisation_id == Some(organisation_id) || (personal_count && row.user_id == Some(member_id)))
    };
    let pinned = match conversation {
        Some(conversation) => match overrides::find(conn, member_id, conversation.as_str())? {
            Some(pin) => store::find_for_user(conn, member_id, pin.configuration_id)?.filter(counts),
            None => None,
        },
        None => None,
    };
    let mut chosen = pinned.map(|row| (Source::Override, row));
    if chosen.is_none() {
        chosen = store::find_default_for_user(conn, member_id)?
            .filter(counts)
            .map(|row| (Source::Default, row));
    }
    if chosen.is_none()
        && let Some(default) = organisation.default_configuration_id
    {
        chosen = store::find_for_user(conn, member_id, default)?
            .filter(|row| row.is_active && row.organisation_id == Some(organisation_id))
            .map(|row| (Source::OrganisationDefault, row));
    }
    Ok((member_id, chosen))
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
