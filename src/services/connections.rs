//! Connections: a user's provider accounts (provider, base URL, sealed key), which
//! configurations use. One key change on a connection is what every configuration of it
//! resolves to from the next request on. Also the implicit connection made for a configuration
//! created the old way, opening a stored key under whichever binding seals it, and the model
//! catalogue. A connection belongs to a user or to an organisation (whose members see it and
//! whose admins change it). Every change is one write transaction that first locks the caller
//! and the owner.

use secrecy::SecretString;
use uuid::Uuid;

use crate::crypto::{MasterKeyring, RowBinding, Sealed, mask_api_key};
use crate::db::connections::{self as store, ConnectionChanges, ConnectionRow};
use crate::db::{self, DbConnection, DbError, DbId, memberships, organisations, users};
use crate::domain::FieldErrors;
use crate::domain::{
    ApiKey, BaseUrl, ConfigName, Connection, ModelCatalogue, OrganisationRole, Owner, Ownership, Provider, TestStatus,
    UserCap,
};
use crate::services::configurations::{KeyChange, NewConfiguration, stored_base_url};

/// What can go wrong with a connection, in the product's words (`http::configuration_errors`
/// says how each reaches a client).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// No such connection, or someone else's: the same either way.
    #[error("not found")]
    NotFound,
    /// A member (not an admin) of the organisation that owns it tried to change it.
    #[error("only the organisation's admins and owners may change its connections")]
    Forbidden,
    #[error("you already have a connection with this name")]
    NameTaken,
    /// The owner holds as many connections as the cap allows.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    #[error("the connection is invalid")]
    Invalid(FieldErrors),
    /// Configurations use it (named, by name).
    #[error(
        "the connection is used by {} configuration(s): {}; move them to another connection or delete them first",
        .0.len(),
        .0.join(", ")
    )]
    InUse(Vec<String>),
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for ConnectionError {
    fn from(error: diesel::result::Error) -> Self {
        ConnectionError::Store(DbError::Query(error))
    }
}

/// A new connection, its fields already parsed.
#[derive(Debug)]
pub struct NewConnection {
    pub name: ConfigName,
    pub provider: Provider,
    pub api_key: Option<ApiKey>,
    pub base_url: Option<BaseUrl>,
    /// When the key stops working, if known.
    pub expires_at: Option<chrono::NaiveDateTime>,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ConnectionUpdate {
    pub name: Option<ConfigName>,
    pub provider: Option<Provider>,
    pub api_key: KeyChange,
    /// `Some(None)`: back to the provider's default.
    pub base_url: Option<Option<BaseUrl>>,
    /// `Some(None)`: no known expiry.
    pub expires_at: Option<Option<chrono::NaiveDateTime>>,
}

/// The binding a stored key is sealed under: the connection's, or, for a key the upgrade moved
/// over and has not re-sealed yet, the configuration's it was stored on.
pub fn key_binding(owner: Owner, connection: Uuid, legacy_configuration: Option<Uuid>) -> RowBinding {
    match (legacy_configuration, owner) {
        (Some(configuration), _) => RowBinding::Configuration {
            owner: owner.id(),
            configuration,
        },
        (None, Owner::User(owner)) => RowBinding::Connection { owner, connection },
        (None, Owner::Organisation(organisation)) => RowBinding::OrganisationConnection {
            organisation,
            connection,
        },
    }
}

/// The binding a connection's key is sealed under from now on (the connection's own, never the
/// upgrade's).
pub fn own_binding(owner: Owner, connection: Uuid) -> RowBinding {
    key_binding(owner, connection, None)
}

/// Seals a key for a connection (always under the connection's own binding).
pub fn seal_key(keyring: &MasterKeyring, owner: Owner, connection: Uuid, key: &ApiKey) -> Sealed {
    keyring.seal(key.expose().as_bytes(), own_binding(owner, connection))
}

/// A stored key in clear; `None` when it does not open (tampered, moved, master key gone) or
/// is not text. Never says more than that.
pub fn open_key(
    keyring: &MasterKeyring,
    owner: Owner,
    connection: Uuid,
    legacy_configuration: Option<Uuid>,
    sealed: &[u8],
) -> Option<SecretString> {
    let plain = keyring
        .open(sealed, key_binding(owner, connection, legacy_configuration))
        .ok()?;
    String::from_utf8(plain.to_vec()).ok().map(SecretString::from)
}

fn lock_owner(conn: &mut DbConnection, owner: Uuid) -> Result<(), ConnectionError> {
    if users::lock_owner(conn, DbId(owner))? {
        Ok(())
    } else {
        Err(ConnectionError::NotFound)
    }
}

/// Locks what a change to `owner`'s connections and configurations serialises on: the user's
/// row, or the organisation's. Returns whether it exists.
pub(crate) fn lock(conn: &mut DbConnection, owner: Owner) -> Result<bool, diesel::result::Error> {
    match owner {
        Owner::User(user) => users::lock_owner(conn, DbId(user)),
        Owner::Organisation(organisation) => organisations::lock(conn, DbId(organisation)),
    }
}

fn lock_resources(conn: &mut DbConnection, owner: Owner) -> Result<(), ConnectionError> {
    if lock(conn, owner)? {
        Ok(())
    } else {
        Err(ConnectionError::NotFound)
    }
}

/// Whether `caller` may manage `organisation`'s resources: `Ok` for its admins and owners, 403
/// for its members, 404 for anyone else (as for an organisation that does not exist).
fn may_manage(conn: &mut DbConnection, caller: Uuid, organisation: Uuid) -> Result<(), ConnectionError> {
    match memberships::find(conn, DbId(organisation), DbId(caller))? {
        None => Err(ConnectionError::NotFound),
        Some(membership) if !membership.role.includes(OrganisationRole::Admin) => Err(ConnectionError::Forbidden),
        Some(_) => Ok(()),
    }
}

/// The connection `caller` may see (their own, or an organisation's they belong to), with how
/// they see it; 404 otherwise.
pub fn find_visible_row(
    conn: &mut DbConnection,
    caller: Uuid,
    id: Uuid,
) -> Result<(ConnectionRow, Ownership), ConnectionError> {
    let (row, name, role) = store::find_visible(conn, DbId(caller), DbId(id))?.ok_or(ConnectionError::NotFound)?;
    let ownership = match (row.organisation_id, name) {
        (Some(organisation), Some(name)) => Ownership::Organisation {
            id: organisation.0,
            name,
            role: role.unwrap_or(OrganisationRole::Member),
        },
        _ => Ownership::Own,
    };
    Ok((row, ownership))
}

/// The connection `caller` may change (their own, or as the organisation's admin or owner; a
/// member: 403), its owner locked.
fn editable(conn: &mut DbConnection, caller: Uuid, id: Uuid) -> Result<(ConnectionRow, Owner), ConnectionError> {
    let (row, ownership) = find_visible_row(conn, caller, id)?;
    if !ownership.can_edit() {
        return Err(ConnectionError::Forbidden);
    }
    let owner = row.owner().ok_or(ConnectionError::NotFound)?;
    lock_resources(conn, owner)?;
    Ok((row, owner))
}

/// `Ok(())` when nothing was refused.
fn refuse_any(errors: FieldErrors) -> Result<(), ConnectionError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConnectionError::Invalid(errors))
    }
}

fn to_domain(row: ConnectionRow, configuration_count: i64, ownership: Ownership) -> Connection {
    Connection {
        id: row.id.0,
        name: row.name,
        provider: row.provider,
        base_url: row.base_url,
        api_key_hint: row.api_key_hint,
        test_status: row.test_status,
        test_code: row.test_code,
        test_message: row.test_message,
        test_latency_ms: row.test_latency_ms,
        tested_at: row.tested_at,
        models_fetched_at: row.models_fetched_at,
        model_count: row.model_count,
        configuration_count,
        is_implicit: row.is_implicit,
        created_at: row.created_at,
        updated_at: row.updated_at,
        ownership,
        expires_at: row.expires_at,
    }
}

/// The key rules of `api.md` for a key on `provider`.
fn check_key(provider: Provider, has_key: bool, errors: &mut FieldErrors) {
    if has_key && !provider.accepts_api_key() {
        errors.add("api_key", format!("{} takes no API key", provider.label()));
    }
    if !has_key && provider.needs_api_key() {
        errors.add("api_key", format!("is required for {}", provider.label()));
    }
}

/// Creates a connection, refusing one more than `cap` allows the owner.
pub fn create(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    new: NewConnection,
    cap: UserCap,
) -> Result<Connection, ConnectionError> {
    create_owned(conn, keyring, owner, Owner::User(owner), new, cap)
}

/// Creates an organisation's connection, by one of its admins or owners.
pub fn create_for_organisation(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    caller: Uuid,
    organisation: Uuid,
    new: NewConnection,
    cap: UserCap,
) -> Result<Connection, ConnectionError> {
    create_owned(conn, keyring, caller, Owner::Organisation(organisation), new, cap)
}

fn create_owned(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    caller: Uuid,
    owner: Owner,
    new: NewConnection,
    cap: UserCap,
) -> Result<Connection, ConnectionError> {
    let mut errors = FieldErrors::new();
    check_key(new.provider, new.api_key.is_some(), &mut errors);
    if new.provider.needs_base_url() && new.base_url.is_none() {
        errors.add("base_url", format!("is required for {}", new.provider.label()));
    }
    refuse_any(errors)?;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        if let Owner::Organisation(organisation) = owner {
            may_manage(conn, caller, organisation)?;
        }
        lock_resources(conn, owner)?;
        if store::name_key_taken(conn, owner, &new.name.key(), None)? {
            return Err(ConnectionError::NameTaken);
        }
        if cap.is_reached(store::count_for_owner(conn, owner)?) {
            return Err(ConnectionError::CapReached(cap));
        }
        let id = Uuid::now_v7();
        let now = db::now();
        insert_row(
            conn,
            keyring,
            owner,
            id,
            new.name.as_str(),
            new.provider,
            new.base_url.as_ref(),
            new.api_key.as_ref(),
            false,
            now,
        )?;
        if new.expires_at.is_some() {
            store::set_expiry(conn, owner, DbId(id), new.expires_at)?;
        }
        find(conn, caller, id)
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_row(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Owner,
    id: Uuid,
    name: &str,
    provider: Provider,
    base_url: Option<&BaseUrl>,
    api_key: Option<&ApiKey>,
    is_implicit: bool,
    now: chrono::NaiveDateTime,
) -> Result<(), diesel::result::Error> {
    let sealed = api_key.map(|key| seal_key(keyring, owner, id, key));
    store::insert(
        conn,
        &ConnectionRow {
            id: DbId(id),
            owner_user_id: owner.user().map(DbId),
            organisation_id: owner.organisation().map(DbId),
            name: name.to_owned(),
            name_key: name.to_lowercase(),
            provider,
            base_url: stored_base_url(provider, base_url),
            api_key_hint: api_key.map(|key| mask_api_key(key.expose())),
            key_id: sealed.as_ref().map(|sealed| sealed.key_id.clone()),
            api_key_encrypted: sealed.map(|sealed| sealed.bytes),
            legacy_configuration_id: None,
            test_status: TestStatus::Untested,
            test_code: None,
            test_message: None,
            test_latency_ms: None,
            tested_at: None,
            models_fetched_at: None,
            model_count: 0,
            is_implicit,
            created_at: now,
            updated_at: now,
            expires_at: None,
            expiry_notice: 0,
        },
    )
}

/// The first free name of `base`, `base (2)`, `base (3)`, … among the owner's connections,
/// shortened so that it fits a name's 64 characters.
fn free_name(conn: &mut DbConnection, owner: Owner, base: &ConfigName) -> Result<String, diesel::result::Error> {
    let mut n: u64 = 1;
    loop {
        let candidate = if n == 1 {
            base.as_str().to_owned()
        } else {
            let suffix = format!(" ({n})");
            let room = ConfigName::MAX_CHARS.saturating_sub(suffix.chars().count());
            let stem: String = base.as_str().chars().take(room).collect();
            format!("{}{suffix}", stem.trim_end())
        };
        if !store::name_key_taken(conn, owner, &candidate.to_lowercase(), None)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Inside the caller's write transaction (owner locked): a connection of its own for a
/// configuration created the old way, named after it. Returns its id.
pub fn insert_implicit(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Owner,
    configuration: &NewConfiguration,
    now: chrono::NaiveDateTime,
) -> Result<Uuid, diesel::result::Error> {
    let name = free_name(conn, owner, &configuration.name)?;
    let id = Uuid::now_v7();
    insert_row(
        conn,
        keyring,
        owner,
        id,
        &name,
        configuration.provider,
        configuration.base_url.as_ref(),
        configuration.api_key.as_ref(),
        true,
        now,
    )?;
    Ok(id)
}

/// The caller's own connections, by name.
pub fn list(conn: &mut DbConnection, owner: Uuid) -> Result<Vec<Connection>, ConnectionError> {
    list_owned(conn, Owner::User(owner), Ownership::Own)
}

/// An organisation's connections, for one of its members (anyone else: 404).
pub fn list_for_organisation(
    conn: &mut DbConnection,
    caller: Uuid,
    organisation: Uuid,
) -> Result<Vec<Connection>, ConnectionError> {
    let membership = memberships::find(conn, DbId(organisation), DbId(caller))?.ok_or(ConnectionError::NotFound)?;
    let row = organisations::find(conn, DbId(organisation))?.ok_or(ConnectionError::NotFound)?;
    let ownership = Ownership::Organisation {
        id: organisation,
        name: row.name,
        role: membership.role,
    };
    list_owned(conn, Owner::Organisation(organisation), ownership)
}

/// The organisation's connections for its own service token (with `read`): masked, seen as a
/// member sees them (editable by none).
pub fn list_for_service_token(conn: &mut DbConnection, organisation: Uuid) -> Result<Vec<Connection>, ConnectionError> {
    let row = organisations::find(conn, DbId(organisation))?.ok_or(ConnectionError::NotFound)?;
    let ownership = Ownership::Organisation {
        id: organisation,
        name: row.name,
        role: OrganisationRole::Member,
    };
    list_owned(conn, Owner::Organisation(organisation), ownership)
}

fn list_owned(conn: &mut DbConnection, owner: Owner, ownership: Ownership) -> Result<Vec<Connection>, ConnectionError> {
    let counts: std::collections::HashMap<DbId, i64> = store::configuration_counts(conn, owner)?.into_iter().collect();
    let mut rows = store::list_for_owner(conn, owner)?;
    // By the case-folded name, compared as Rust compares it: the same on both databases,
    // whatever their collation.
    rows.sort_by(|a, b| a.name_key.cmp(&b.name_key));
    Ok(rows
        .into_iter()
        .map(|row| {
            let count = counts.get(&row.id).copied().unwrap_or(0);
            to_domain(row, count, ownership.clone())
        })
        .collect())
}

/// One connection the caller may see (their own, or an organisation's they belong to).
pub fn find(conn: &mut DbConnection, caller: Uuid, id: Uuid) -> Result<Connection, ConnectionError> {
    let (row, ownership) = find_visible_row(conn, caller, id)?;
    let owner = row.owner().ok_or(ConnectionError::NotFound)?;
    let count = store::configuration_names(conn, owner, DbId(id))?.len();
    Ok(to_domain(row, i64::try_from(count).unwrap_or(i64::MAX), ownership))
}

/// The one connection row of `owner`, or 404 (someone else's is the same as none).
pub fn find_row(conn: &mut DbConnection, owner: Owner, id: Uuid) -> Result<ConnectionRow, ConnectionError> {
    store::find_for_owner(conn, owner, DbId(id))?.ok_or(ConnectionError::NotFound)
}

/// The rules for changing where a stored key goes and what it is (`api.md`): a new provider or
/// base URL needs the key again in the same request, and a key its provider needs cannot be
/// removed. `base_url` is the stored form after the change.
pub(crate) fn check_destination_change(
    row: &ConnectionRow,
    provider: Provider,
    base_url: &Option<String>,
    key: &KeyChange,
    errors: &mut FieldErrors,
) {
    let destination_changed = provider != row.provider || *base_url != row.base_url;
    if destination_changed && row.api_key_encrypted.is_some() && matches!(key, KeyChange::Keep) {
        errors.add(
            "api_key",
            "re-enter the API key (or send \"\" to remove it) when changing the provider or base URL, \
             so that a stored key is never sent to a new destination",
        );
    }
    if matches!(key, KeyChange::Remove) && provider.needs_api_key() {
        errors.add(
            "api_key",
            format!("cannot be removed: {} needs an API key", provider.label()),
        );
    }
}

/// The stored base URL after an update that may change the provider and the URL.
pub(crate) fn base_url_after(
    row: &ConnectionRow,
    provider: Provider,
    change: &Option<Option<BaseUrl>>,
) -> Option<String> {
    match change {
        Some(new) => stored_base_url(provider, new.as_ref()),
        // A kept URL may be the new provider's default, which is stored as null.
        None => row
            .base_url
            .clone()
            .filter(|url| Some(url.as_str()) != provider.default_base_url()),
    }
}

/// Writes a checked change of name, provider, base URL and key. A new or removed key is no
/// longer under the upgrade's binding; a new destination forgets the model catalogue.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_changes(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Owner,
    row: &ConnectionRow,
    name: Option<&ConfigName>,
    provider: Provider,
    base_url: Option<String>,
    key: &KeyChange,
    now: chrono::NaiveDateTime,
) -> Result<(), diesel::result::Error> {
    let id = row.id.0;
    let sealed = match key {
        KeyChange::Replace(key) => Some(seal_key(keyring, owner, id, key)),
        KeyChange::Keep | KeyChange::Remove => None,
    };
    let hint = match key {
        KeyChange::Replace(key) => Some(mask_api_key(key.expose())),
        KeyChange::Keep | KeyChange::Remove => None,
    };
    let key_changes = !matches!(key, KeyChange::Keep);
    let name_key = name.map(ConfigName::key);
    let destination_changed = provider != row.provider || base_url != row.base_url;
    let changes = ConnectionChanges {
        name: name.map(ConfigName::as_str),
        name_key: name_key.as_deref(),
        provider: Some(provider),
        base_url: Some(base_url.as_deref()),
        api_key_encrypted: key_changes.then(|| sealed.as_ref().map(|sealed| sealed.bytes.as_slice())),
        key_id: key_changes.then(|| sealed.as_ref().map(|sealed| sealed.key_id.as_str())),
        api_key_hint: key_changes.then_some(hint.as_deref()),
        legacy_configuration_id: key_changes.then_some(None),
        updated_at: Some(now),
    };
    store::update(conn, owner, row.id, &changes)?;
    if destination_changed {
        store::clear_models(conn, owner, row.id)?;
    }
    Ok(())
}

pub fn update(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    id: Uuid,
    update: ConnectionUpdate,
) -> Result<Connection, ConnectionError> {
    let caller = owner;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        let (row, owner) = editable(conn, caller, id)?;
        let provider = update.provider.unwrap_or(row.provider);
        let base_url = base_url_after(&row, provider, &update.base_url);
        let mut errors = FieldErrors::new();
        check_destination_change(&row, provider, &base_url, &update.api_key, &mut errors);
        if errors.get("api_key").is_none() {
            let has_key = match &update.api_key {
                KeyChange::Keep => row.api_key_encrypted.is_some(),
                KeyChange::Replace(_) => true,
                KeyChange::Remove => false,
            };
            // A connection made implicitly by an import may lack the key its provider needs;
            // leaving that as it is stays allowed.
            let key_untouched = matches!(update.api_key, KeyChange::Keep) && provider == row.provider;
            if !key_untouched {
                check_key(provider, has_key, &mut errors);
            }
        }
        if provider.needs_base_url() && base_url.is_none() {
            errors.add("base_url", format!("is required for {}", provider.label()));
        }
        refuse_any(errors)?;
        if let Some(name) = &update.name
            && store::name_key_taken(conn, owner, &name.key(), Some(DbId(id)))?
        {
            return Err(ConnectionError::NameTaken);
        }
        write_changes(
            conn,
            keyring,
            owner,
            &row,
            update.name.as_ref(),
            provider,
            base_url,
            &update.api_key,
            db::now(),
        )?;
        if let Some(expires_at) = update.expires_at
            && expires_at != row.expires_at
        {
            store::set_expiry(conn, owner, DbId(id), expires_at)?;
        }
        find(conn, caller, id)
    })
}

/// Deletes a connection; refused with 409 `in_use`, naming the configurations, while any
/// configuration uses it.
pub fn delete(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<(), ConnectionError> {
    let caller = owner;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        let (_, owner) = editable(conn, caller, id)?;
        let users_of = store::configuration_names(conn, owner, DbId(id))?;
        if !users_of.is_empty() {
            return Err(ConnectionError::InUse(users_of));
        }
        store::delete(conn, owner, DbId(id))?;
        Ok(())
    })
}

/// Inside the caller's write transaction: deletes an implicit connection that no configuration
/// uses any more (a connection made explicitly stays until its owner deletes it).
pub(crate) fn delete_if_unused_implicit(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
) -> Result<(), diesel::result::Error> {
    let Some(row) = store::find_for_owner(conn, owner, id)? else {
        return Ok(());
    };
    if row.is_implicit && store::configuration_names(conn, owner, id)?.is_empty() {
        store::delete(conn, owner, id)?;
    }
    Ok(())
}

/// The connection's model catalogue, sorted.
pub fn catalogue(conn: &mut DbConnection, caller: Uuid, id: Uuid) -> Result<ModelCatalogue, ConnectionError> {
    let (row, _) = find_visible_row(conn, caller, id)?;
    let owner = row.owner().ok_or(ConnectionError::NotFound)?;
    let models = store::model_ids(conn, owner, DbId(id))?;
    Ok(ModelCatalogue {
        fetched_at: row.models_fetched_at,
        models: ModelCatalogue::normalise(models),
    })
}

/// Stores what a provider listed as the connection's catalogue (sorted, at most 2,000 ids).
pub fn store_catalogue(
    conn: &mut DbConnection,
    owner: Owner,
    id: Uuid,
    models: Vec<String>,
) -> Result<ModelCatalogue, ConnectionError> {
    let models = ModelCatalogue::normalise(models);
    let now = db::now();
    db::write_transaction(conn, |conn| {
        if !store::replace_models(conn, owner, DbId(id), &models, now)? {
            return Err(ConnectionError::NotFound);
        }
        Ok::<_, ConnectionError>(())
    })?;
    Ok(ModelCatalogue {
        fetched_at: Some(now),
        models,
    })
}

/// Names the rule the stored display hints follow (see [`recompute_key_hints`]).
const KEY_HINT_RULE_SETTING: &str = "key_hint_rule";
const HINT_BATCH: i64 = 500;

/// Recomputes every stored display hint under today's masking rule, once per rule change:
/// hints written under an older rule may show too much of a short key. Each batch is its own
/// transaction and writes a hint only while the key is still the one it was computed from, so
/// that an edit made meanwhile wins; a key that no longer decrypts gets dots alone. Returns
/// how many hints changed.
pub fn recompute_key_hints(conn: &mut DbConnection, keyring: &MasterKeyring) -> Result<usize, diesel::result::Error> {
    let rule = crate::crypto::MASK_RULE_VERSION.to_string();
    if db::instance_settings::get(conn, KEY_HINT_RULE_SETTING)?.as_deref() == Some(rule.as_str()) {
        return Ok(0);
    }
    let mut changed = 0;
    let mut after = None;
    loop {
        let batch = store::sealed_keys_with_hints(conn, after, HINT_BATCH)?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        db::write_transaction(conn, |conn| {
            for key in &batch {
                let Some(owner) = key.owner() else { continue };
                let hint = match open_key(
                    keyring,
                    owner,
                    key.id.0,
                    key.legacy_configuration_id.map(|id| id.0),
                    &key.sealed,
                ) {
                    Some(plain) => mask_api_key(secrecy::ExposeSecret::expose_secret(&plain)),
                    None => mask_api_key(""),
                };
                if key.hint.as_deref() != Some(hint.as_str()) && store::replace_hint(conn, key.id, &key.sealed, &hint)?
                {
                    changed += 1;
                }
            }
            Ok::<_, diesel::result::Error>(())
        })?;
    }
    match db::write_transaction(conn, |conn| {
        db::instance_settings::set(conn, KEY_HINT_RULE_SETTING, &rule)
    }) {
        // Another instance starting at the same moment recorded it first: the same work, done.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
        other => other?,
    }
    Ok(changed)
}
