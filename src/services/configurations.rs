//! LLM configurations: create, list, get, update, delete, set default; and the rules that keep
//! at most one active default per user. A configuration uses a connection (provider, base URL,
//! key): one named when it is created, or one of its own made from the old fields. It belongs to
//! a user or to an organisation: members see an organisation's configurations and may choose
//! them (default, override), its admins and owners change them. Every change is one write
//! transaction that first locks the caller (and the organisation), so concurrent requests take
//! turns and never break the rules.

use std::cmp::Reverse;

use uuid::Uuid;

use crate::crypto::MasterKeyring;
use crate::db::llm_configurations::{self as store, ConfigurationChanges, ConfigurationInsert, SeenRow};
use crate::db::{
    self, DbConnection, DbError, DbId, connections as connection_store, conversation_overrides, memberships,
    user_defaults, users,
};
use crate::domain::FieldErrors;
use crate::domain::{
    ApiKey, BaseUrl, ConfigName, Configuration, MemberAccess, ModelId, OrganisationRole, Owner, Parameters, Provider,
    UserCap,
};
use crate::services::connections;

/// What can go wrong with a configuration, in the product's words (`http::configuration_errors`
/// says how each reaches a client).
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    /// No such configuration, or someone else's: the same either way.
    #[error("not found")]
    NotFound,
    /// A member (not an admin) of the organisation that owns it tried to change it.
    #[error("only the organisation's admins and owners may change its configurations")]
    Forbidden,
    #[error("you already have a configuration with this name")]
    NameTaken,
    #[error("an inactive configuration cannot be the default; activate it first")]
    InactiveDefault,
    /// The owner holds as many configurations as the cap allows.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    #[error("the configuration is invalid")]
    Invalid(FieldErrors),
    /// A change of provider, base URL or key through a configuration whose connection other
    /// configurations use: `fields` names what was to change.
    #[error(
        "other configurations use this configuration's connection {connection_id}: change the connection \
         instead (PUT /api/connections/{connection_id})"
    )]
    ConnectionShared { connection_id: Uuid, fields: FieldErrors },
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for ConfigurationError {
    fn from(error: diesel::result::Error) -> Self {
        ConfigurationError::Store(DbError::Query(error))
    }
}

impl ConfigurationError {
    /// The refusals that concern one field of the input (a form shows them beside it, an import
    /// names them), or the error itself when it concerns no field.
    pub fn into_field_errors(self) -> Result<FieldErrors, ConfigurationError> {
        match self {
            ConfigurationError::Invalid(errors) => Ok(errors),
            ConfigurationError::NameTaken => Ok(FieldErrors::single("name", self.to_string())),
            ConfigurationError::CapReached(cap) => Ok(FieldErrors::single(cap.variable, cap.describe())),
            ConfigurationError::ConnectionShared { fields, .. } if !fields.is_empty() => Ok(fields),
            other => Err(other),
        }
    }
}

/// `Ok(())` when nothing was refused.
fn refuse_any(errors: FieldErrors) -> Result<(), ConfigurationError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigurationError::Invalid(errors))
    }
}

/// A new configuration, its fields already parsed.
#[derive(Debug)]
pub struct NewConfiguration {
    pub name: ConfigName,
    pub provider: Provider,
    pub model: ModelId,
    pub api_key: Option<ApiKey>,
    pub base_url: Option<BaseUrl>,
    pub is_default: bool,
    pub is_active: bool,
    pub parameters: Parameters,
    /// What an organisation's members may do with its key (ignored on a personal one).
    pub member_access: MemberAccess,
}

/// A new configuration on one of the owner's connections.
#[derive(Debug)]
pub struct NewConfigurationOnConnection {
    pub name: ConfigName,
    pub connection_id: Uuid,
    pub model: ModelId,
    pub is_default: bool,
    pub is_active: bool,
    pub parameters: Parameters,
    /// What an organisation's members may do with its key (ignored on a personal one).
    pub member_access: MemberAccess,
}

/// What an update does to the stored key.
#[derive(Debug, Default)]
pub enum KeyChange {
    #[default]
    Keep,
    Replace(ApiKey),
    Remove,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ConfigurationUpdate {
    pub name: Option<ConfigName>,
    /// Move to another of the owner's connections.
    pub connection_id: Option<Uuid>,
    pub provider: Option<Provider>,
    pub model: Option<ModelId>,
    pub api_key: KeyChange,
    /// `Some(None)`: back to the provider's default.
    pub base_url: Option<Option<BaseUrl>>,
    pub is_active: Option<bool>,
    /// `Some`: replaces the stored parameters as a whole.
    pub parameters: Option<Parameters>,
    /// Only on an organisation's configuration.
    pub member_access: Option<MemberAccess>,
}

/// `base_url` is stored only when it differs from the provider's default.
pub(crate) fn stored_base_url(provider: Provider, base_url: Option<&BaseUrl>) -> Option<String> {
    base_url
        .map(BaseUrl::as_str)
        .filter(|url| Some(*url) != provider.default_base_url())
        .map(str::to_owned)
}

fn lock_owner(conn: &mut DbConnection, user_id: Uuid) -> Result<(), ConfigurationError> {
    if users::lock_owner(conn, DbId(user_id))? {
        Ok(())
    } else {
        Err(ConfigurationError::NotFound)
    }
}

/// Locks what a change to `owner`'s configurations serialises on (after the caller's own row).
fn lock(conn: &mut DbConnection, owner: Owner) -> Result<(), ConfigurationError> {
    if connections::lock(conn, owner)? {
        Ok(())
    } else {
        Err(ConfigurationError::NotFound)
    }
}

/// The configuration `caller` may change: their own, or their organisation's when they are its
/// admin or owner (a member: 403; anyone else: 404, as for a missing id). With its owner.
fn editable(conn: &mut DbConnection, caller: Uuid, id: Uuid) -> Result<(SeenRow, Owner), ConfigurationError> {
    let row = store::find_for_user(conn, DbId(caller), DbId(id))?.ok_or(ConfigurationError::NotFound)?;
    let owner = row.owner().ok_or(ConfigurationError::NotFound)?;
    if !row.seen.can_edit(row.organisation_id) {
        return Err(ConfigurationError::Forbidden);
    }
    lock(conn, owner)?;
    Ok((row, owner))
}

/// Whether `caller` may manage `organisation`'s resources: `Ok` for its admins and owners, 403
/// for its members, 404 for anyone else (as for an organisation that does not exist).
fn may_manage(conn: &mut DbConnection, caller: Uuid, organisation: Uuid) -> Result<(), ConfigurationError> {
    match memberships::find(conn, DbId(organisation), DbId(caller))? {
        None => Err(ConfigurationError::NotFound),
        Some(membership) if !membership.role.includes(OrganisationRole::Admin) => Err(ConfigurationError::Forbidden),
        Some(_) => Ok(()),
    }
}

fn not_your_connection() -> ConfigurationError {
    ConfigurationError::Invalid(FieldErrors::single(
        "connection_id",
        "must be one of your connections (see GET /api/connections)",
    ))
}

/// A provider that needs a key cannot be active without one.
fn check_key_rules(provider: Provider, has_key: bool, key_was_given: bool, is_active: bool, errors: &mut FieldErrors) {
    if has_key && !provider.accepts_api_key() {
        errors.add("api_key", format!("{} takes no API key", provider.label()));
    }
    if !has_key && provider.needs_api_key() && is_active {
        let field = if key_was_given { "api_key" } else { "is_active" };
        errors.add(
            field,
            format!(
                "{} needs an API key before this configuration can be active",
                provider.label()
            ),
        );
    }
}

/// Whether a new configuration must hold the key its provider needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Created by its owner: a provider that needs a key gets one.
    Required,
    /// Imported: it may lack the key, and then arrives inactive until a key is entered.
    MayLack,
}

/// Creates a configuration the old way, with a connection of its own made from its provider,
/// key and base URL (named after it); refuses one more than `cap` allows the owner.
pub fn create(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    new: NewConfiguration,
    cap: UserCap,
    key_rule: KeyRule,
) -> Result<Configuration, ConfigurationError> {
    create_owned(conn, keyring, owner, Owner::User(owner), new, cap, key_rule)
}

/// Creates an organisation's configuration the old way (with a connection of its own), by one
/// of its admins or owners; it is nobody's default until a member chooses it.
pub fn create_for_organisation(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    caller: Uuid,
    organisation: Uuid,
    new: NewConfiguration,
    cap: UserCap,
) -> Result<Configuration, ConfigurationError> {
    create_owned(
        conn,
        keyring,
        caller,
        Owner::Organisation(organisation),
        new,
        cap,
        KeyRule::Required,
    )
}

fn create_owned(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    caller: Uuid,
    owner: Owner,
    new: NewConfiguration,
    cap: UserCap,
    key_rule: KeyRule,
) -> Result<Configuration, ConfigurationError> {
    let mut errors = FieldErrors::new();
    if key_rule == KeyRule::Required && new.provider.needs_api_key() && new.api_key.is_none() {
        errors.add("api_key", format!("is required for {}", new.provider.label()));
    }
    if new.is_default && !new.is_active {
        errors.add("is_default", "an inactive configuration cannot be the default");
    }
    if errors.get("api_key").is_none() {
        check_key_rules(new.provider, new.api_key.is_some(), true, new.is_active, &mut errors);
    }
    if new.provider.needs_base_url() && new.base_url.is_none() {
        errors.add("base_url", format!("is required for {}", new.provider.label()));
    }
    refuse_any(errors)?;

    let id = Uuid::now_v7();
    let name_key = new.name.key();

    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        if let Owner::Organisation(organisation) = owner {
            may_manage(conn, caller, organisation)?;
        }
        lock(conn, owner)?;
        if store::name_key_taken(conn, owner, &name_key, None)? {
            return Err(ConfigurationError::NameTaken);
        }
        if cap.is_reached(store::count_for_owner(conn, owner)?) {
            return Err(ConfigurationError::CapReached(cap));
        }
        let now = db::now();
        let connection_id = connections::insert_implicit(conn, keyring, owner, &new, now)?;
        insert_row(
            conn,
            owner,
            id,
            connection_id,
            &new.name,
            &new.model,
            (new.is_default, new.is_active),
            (&new.parameters, new.member_access),
            now,
        )?;
        find(conn, caller, id)
    })
}

/// Inside the write transaction: the row itself, and the default rules (a user's new active
/// configuration becomes their default when they have none; an organisation's is nobody's).
#[allow(clippy::too_many_arguments)]
fn insert_row(
    conn: &mut DbConnection,
    owner: Owner,
    id: Uuid,
    connection_id: Uuid,
    name: &ConfigName,
    model: &ModelId,
    (is_default, is_active): (bool, bool),
    (parameters, member_access): (&Parameters, MemberAccess),
    now: chrono::NaiveDateTime,
) -> Result<(), ConfigurationError> {
    let parameters = parameters.to_json_text();
    store::insert(
        conn,
        &ConfigurationInsert {
            id: DbId(id),
            user_id: owner.user().map(DbId),
            organisation_id: owner.organisation().map(DbId),
            connection_id: DbId(connection_id),
            name: name.as_str(),
            name_key: &name.key(),
            model: model.as_str(),
            is_active,
            created_at: now,
            updated_at: now,
            parameters: &parameters,
            member_access: match owner {
                Owner::User(_) => MemberAccess::Use,
                Owner::Organisation(_) => member_access,
            },
        },
    )?;
    if let Owner::User(user) = owner {
        let has_default = store::find_default_for_user(conn, DbId(user))?.is_some();
        if is_default || (is_active && !has_default) {
            user_defaults::set(conn, DbId(user), DbId(id))?;
        }
    }
    Ok(())
}

/// Creates a configuration on one of the owner's connections (anyone else's is refused under
/// `connection_id`, exactly like one that does not exist).
pub fn create_on_connection(
    conn: &mut DbConnection,
    owner: Uuid,
    new: NewConfigurationOnConnection,
    cap: UserCap,
) -> Result<Configuration, ConfigurationError> {
    create_on_connection_owned(conn, owner, Owner::User(owner), new, cap)
}

/// Creates an organisation's configuration on one of its connections, by one of its admins or
/// owners.
pub fn create_on_organisation_connection(
    conn: &mut DbConnection,
    caller: Uuid,
    organisation: Uuid,
    new: NewConfigurationOnConnection,
    cap: UserCap,
) -> Result<Configuration, ConfigurationError> {
    create_on_connection_owned(conn, caller, Owner::Organisation(organisation), new, cap)
}

fn create_on_connection_owned(
    conn: &mut DbConnection,
    caller: Uuid,
    owner: Owner,
    new: NewConfigurationOnConnection,
    cap: UserCap,
) -> Result<Configuration, ConfigurationError> {
    if new.is_default && !new.is_active {
        return Err(ConfigurationError::Invalid(FieldErrors::single(
            "is_default",
            "an inactive configuration cannot be the default",
        )));
    }
    let id = Uuid::now_v7();
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        if let Owner::Organisation(organisation) = owner {
            may_manage(conn, caller, organisation)?;
        }
        lock(conn, owner)?;
        let connection =
            connection_store::find_for_owner(conn, owner, DbId(new.connection_id))?.ok_or_else(not_your_connection)?;
        let mut errors = FieldErrors::new();
        if new.is_active && connection.api_key_encrypted.is_none() && connection.provider.needs_api_key() {
            errors.add(
                "is_active",
                format!(
                    "{} needs an API key before this configuration can be active: add one to the connection",
                    connection.provider.label()
                ),
            );
        }
        refuse_any(errors)?;
        if store::name_key_taken(conn, owner, &new.name.key(), None)? {
            return Err(ConfigurationError::NameTaken);
        }
        if cap.is_reached(store::count_for_owner(conn, owner)?) {
            return Err(ConfigurationError::CapReached(cap));
        }
        let now = db::now();
        insert_row(
            conn,
            owner,
            id,
            new.connection_id,
            &new.name,
            &new.model,
            (new.is_default, new.is_active),
            (&new.parameters, new.member_access),
            now,
        )?;
        find(conn, caller, id)
    })
}

/// The version of what [`list`] shows for this caller: unchanged version, unchanged listing (on
/// every instance, since the database keeps it). A token's check reads it already
/// ([`crate::services::Principal::listing_version`]); this reads it for a session.
pub fn listing_version(conn: &mut DbConnection, owner: Uuid) -> Result<i64, ConfigurationError> {
    users::listing_version(conn, DbId(owner))?.ok_or(ConfigurationError::NotFound)
}

/// What the caller sees: their own configurations and their organisations'.
pub fn list(conn: &mut DbConnection, owner: Uuid) -> Result<Vec<Configuration>, ConfigurationError> {
    Ok(store::list_for_user(conn, DbId(owner))?
        .into_iter()
        .map(Configuration::from)
        .collect())
}

/// An organisation's configurations, for one of its members (anyone else: 404).
pub fn list_for_organisation(
    conn: &mut DbConnection,
    caller: Uuid,
    organisation: Uuid,
) -> Result<Vec<Configuration>, ConfigurationError> {
    if memberships::find(conn, DbId(organisation), DbId(caller))?.is_none() {
        return Err(ConfigurationError::NotFound);
    }
    Ok(store::list_for_organisation(conn, DbId(caller), DbId(organisation))?
        .into_iter()
        .map(Configuration::from)
        .collect())
}

/// The organisation's configurations for its own service token (with `read`): masked, nobody's
/// default, editable by none.
pub fn list_for_service_token(
    conn: &mut DbConnection,
    organisation: Uuid,
) -> Result<Vec<Configuration>, ConfigurationError> {
    Ok(store::list_of_organisation(conn, DbId(organisation))?
        .into_iter()
        .map(Configuration::from)
        .collect())
}

pub fn find(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<Configuration, ConfigurationError> {
    store::find_for_user(conn, DbId(owner), DbId(id))?
        .map(Configuration::from)
        .ok_or(ConfigurationError::NotFound)
}

pub fn find_default(conn: &mut DbConnection, owner: Uuid) -> Result<Configuration, ConfigurationError> {
    store::find_default_for_user(conn, DbId(owner))?
        .map(Configuration::from)
        .ok_or(ConfigurationError::NotFound)
}

pub fn update(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    id: Uuid,
    update: ConfigurationUpdate,
) -> Result<Configuration, ConfigurationError> {
    let caller = owner;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        let (row, owner) = editable(conn, caller, id)?;
        if update.member_access.is_some() && owner.organisation().is_none() {
            return Err(ConfigurationError::Invalid(FieldErrors::single(
                "member_access",
                "applies only to an organisation's configuration",
            )));
        }
        let moving = update.connection_id.filter(|target| *target != row.connection_id.0);
        let connection_id = moving.unwrap_or(row.connection_id.0);
        let connection =
            connection_store::find_for_owner(conn, owner, DbId(connection_id))?.ok_or_else(not_your_connection)?;
        let provider = update.provider.unwrap_or(connection.provider);
        let base_url = connections::base_url_after(&connection, provider, &update.base_url);
        let is_active = update.is_active.unwrap_or(row.is_active);
        let changes_connection = provider != connection.provider
            || base_url != connection.base_url
            || !matches!(update.api_key, KeyChange::Keep);

        let mut errors = FieldErrors::new();
        if changes_connection && moving.is_some() {
            for field in ["provider", "base_url", "api_key"] {
                errors.add(
                    field,
                    "change either connection_id or the connection's own fields, not both in one request",
                );
            }
            return Err(ConfigurationError::Invalid(errors));
        }
        if changes_connection && connection_store::other_configurations(conn, connection.id, DbId(id))? > 0 {
            let connection_id = connection.id.0;
            let mut fields = FieldErrors::new();
            for (field, changed) in [
                ("provider", provider != connection.provider),
                ("base_url", base_url != connection.base_url),
                ("api_key", !matches!(update.api_key, KeyChange::Keep)),
            ] {
                if changed {
                    fields.add(field, "belongs to the shared connection: change the connection instead");
                }
            }
            return Err(ConfigurationError::ConnectionShared { connection_id, fields });
        }
        connections::check_destination_change(&connection, provider, &base_url, &update.api_key, &mut errors);
        let had_key = connection.api_key_encrypted.is_some();
        let has_key = match &update.api_key {
            KeyChange::Keep => had_key,
            KeyChange::Replace(_) => true,
            KeyChange::Remove => false,
        };
        if errors.get("api_key").is_none() {
            check_key_rules(
                provider,
                has_key,
                !matches!(update.api_key, KeyChange::Keep),
                is_active,
                &mut errors,
            );
        }
        if provider.needs_base_url() && base_url.is_none() {
            errors.add("base_url", format!("is required for {}", provider.label()));
        }
        if moving.is_some() && errors.has("is_active") {
            errors = errors.rename("is_active", "connection_id");
        }
        refuse_any(errors)?;

        let name_key = update.name.as_ref().map(ConfigName::key);
        if let Some(name_key) = &name_key
            && store::name_key_taken(conn, owner, name_key, Some(DbId(id)))?
        {
            return Err(ConfigurationError::NameTaken);
        }
        let now = db::now();
        if changes_connection {
            connections::write_changes(
                conn,
                keyring,
                owner,
                &connection,
                None,
                provider,
                base_url,
                &update.api_key,
                now,
            )?;
        }
        // Everyone whose default it is loses it when it is deactivated (each then gets one of
        // their own, as when a default is deleted).
        let orphaned = if row.is_active && !is_active {
            let users = user_defaults::users_of(conn, DbId(id))?;
            user_defaults::clear_for_configuration(conn, DbId(id))?;
            users
        } else {
            Vec::new()
        };
        let parameters = update.parameters.as_ref().map(Parameters::to_json_text);
        let changes = ConfigurationChanges {
            name: update.name.as_ref().map(ConfigName::as_str),
            name_key: name_key.as_deref(),
            connection_id: moving.map(DbId),
            model: update.model.as_ref().map(ModelId::as_str),
            is_active: update.is_active,
            updated_at: Some(now),
            parameters: parameters.as_deref(),
            member_access: update.member_access,
        };
        store::update(conn, owner, DbId(id), &changes)?;
        if moving.is_some() {
            connections::delete_if_unused_implicit(conn, owner, row.connection_id)?;
        }
        for user in orphaned {
            promote_default(conn, user.0)?;
        }
        if let Owner::User(user) = owner
            && is_active
            && !row.seen.is_default
            && store::find_default_for_user(conn, DbId(user))?.is_none()
        {
            user_defaults::set(conn, DbId(user), DbId(id))?;
        }
        find(conn, caller, id)
    })
}

/// The configuration form's "a new connection" on an edit: a connection of its own made from
/// `provider`, `api_key` and `base_url` (named after the configuration, like one made the old
/// way, and gone with it when nothing else uses it), and the configuration moved onto it with
/// the rest of `update`, as one change.
pub fn update_onto_new_connection(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
    id: Uuid,
    connection: (Provider, Option<ApiKey>, Option<BaseUrl>),
    update: ConfigurationUpdate,
) -> Result<Configuration, ConfigurationError> {
    let (provider, api_key, base_url) = connection;
    let mut errors = FieldErrors::new();
    if api_key.is_some() && !provider.accepts_api_key() {
        errors.add("api_key", format!("{} takes no API key", provider.label()));
    }
    if api_key.is_none() && provider.needs_api_key() {
        errors.add("api_key", format!("is required for {}", provider.label()));
    }
    if provider.needs_base_url() && base_url.is_none() {
        errors.add("base_url", format!("is required for {}", provider.label()));
    }
    refuse_any(errors)?;
    let caller = owner;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        let (row, owner) = editable(conn, caller, id)?;
        let invalid = |field: &str, message: String| ConfigurationError::Invalid(FieldErrors::single(field, message));
        let name = match &update.name {
            Some(name) => name.clone(),
            None => ConfigName::parse(&row.name).map_err(|message| invalid("name", message))?,
        };
        let model = match &update.model {
            Some(model) => model.clone(),
            None => ModelId::parse(&row.model).map_err(|message| invalid("model", message))?,
        };
        let new = NewConfiguration {
            name,
            provider,
            model,
            api_key,
            base_url,
            is_default: false,
            is_active: update.is_active.unwrap_or(row.is_active),
            parameters: Parameters::default(),
            member_access: row.member_access,
        };
        let connection_id = connections::insert_implicit(conn, keyring, owner, &new, db::now())?;
        let moved = ConfigurationUpdate {
            connection_id: Some(connection_id),
            provider: None,
            api_key: KeyChange::Keep,
            base_url: None,
            ..update
        };
        self::update(conn, keyring, caller, id, moved)
    })
}

/// Deletes a configuration (and its overrides); everyone whose default it was gets one of their
/// own, as `product.md` says.
pub fn delete(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<(), ConfigurationError> {
    let caller = owner;
    db::write_transaction(conn, |conn| {
        lock_owner(conn, caller)?;
        let (row, owner) = editable(conn, caller, id)?;
        delete_row(conn, owner, &row)
    })
}

/// Inside the caller's write transaction (owner locked): deletes one configuration with its
/// overrides and defaults, its implicit connection when nothing else uses it, and promotes a
/// new default for each user who had it.
pub(crate) fn delete_row(conn: &mut DbConnection, owner: Owner, row: &SeenRow) -> Result<(), ConfigurationError> {
    let orphaned = user_defaults::users_of(conn, row.id)?;
    user_defaults::clear_for_configuration(conn, row.id)?;
    conversation_overrides::delete_for_configuration(conn, row.id)?;
    store::delete(conn, owner, row.id)?;
    connections::delete_if_unused_implicit(conn, owner, row.connection_id)?;
    for user in orphaned {
        promote_default(conn, user.0)?;
    }
    Ok(())
}

/// Makes `id` the owner's default in one step.
/// Makes `id` the caller's default in one step: one of their own, or one of an organisation
/// they belong to.
pub fn set_default(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<Configuration, ConfigurationError> {
    db::write_transaction(conn, |conn| {
        lock_owner(conn, owner)?;
        let row = store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(ConfigurationError::NotFound)?;
        if row.seen.is_default {
            return Ok(Configuration::from(row));
        }
        if !row.is_active {
            return Err(ConfigurationError::InactiveDefault);
        }
        user_defaults::set(conn, DbId(owner), DbId(id))?;
        find(conn, owner, id)
    })
}

/// After the default was deleted or deactivated: the user's own active configuration used most
/// recently becomes the default (never-used ones after used ones, then the newest, then by id);
/// an organisation's never is. Decided here rather than in SQL so that both databases order
/// NULLs and ids identically.
pub(crate) fn promote_default(conn: &mut DbConnection, owner: Uuid) -> Result<(), diesel::result::Error> {
    let candidates = store::active_candidates(conn, DbId(owner))?;
    let chosen = candidates
        .into_iter()
        .filter(|(_, provider, has_key)| *has_key || !provider.needs_api_key())
        .map(|(candidate, _, _)| candidate)
        .max_by_key(|candidate| (candidate.last_used_at, candidate.created_at, Reverse(candidate.id)));
    if let Some(chosen) = chosen {
        user_defaults::set(conn, DbId(owner), chosen.id)?;
    }
    Ok(())
}

/// Inside the caller's write transaction (the organisation locked): deletes every configuration
/// and connection an organisation owns, with the overrides and defaults that point at them
/// (each member who loses their default gets one of their own), so that deleting the
/// organisation leaves nothing that names it.
pub(crate) fn delete_everything_of(conn: &mut DbConnection, organisation: Uuid) -> Result<(), diesel::result::Error> {
    let owner = Owner::Organisation(organisation);
    for id in store::ids_of_organisation(conn, DbId(organisation))? {
        let orphaned = user_defaults::users_of(conn, id)?;
        user_defaults::clear_for_configuration(conn, id)?;
        conversation_overrides::delete_for_configuration(conn, id)?;
        store::delete(conn, owner, id)?;
        for user in orphaned {
            promote_default(conn, user.0)?;
        }
    }
    connection_store::delete_all_for_owner(conn, owner)?;
    Ok(())
}

/// Inside the caller's write transaction: a member who left or was removed loses their default
/// and overrides that point at the organisation's configurations; a lost default is replaced by
/// one of their own.
pub(crate) fn forget_organisation_choices(
    conn: &mut DbConnection,
    user: Uuid,
    organisation: Uuid,
) -> Result<(), diesel::result::Error> {
    let (defaults, _) = user_defaults::clear_organisation_choices(conn, DbId(user), DbId(organisation))?;
    if defaults > 0 {
        promote_default(conn, user)?;
    }
    Ok(())
}
