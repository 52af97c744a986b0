//! LLM configurations: create, list, get, update, delete, set default; and the rules that keep
//! exactly one active default per user. Every change is one write transaction that first locks
//! the owner, so concurrent requests for one user take turns and never break the rules.

use std::cmp::Reverse;

use uuid::Uuid;

use crate::crypto::{MasterKeyring, RowBinding, mask_api_key};
use crate::db::llm_configurations::{self as store, ConfigurationChanges, ConfigurationInsert};
use crate::db::{self, DbConnection, DbError, DbId, conversation_overrides, users};
use crate::domain::FieldErrors;
use crate::domain::{ApiKey, BaseUrl, ConfigName, Configuration, ModelId, Parameters, Provider, UserCap};

/// What can go wrong with a configuration, in the product's words (`http::configuration_errors`
/// says how each reaches a client).
#[derive(Debug, thiserror::Error)]
pub enum ConfigurationError {
    /// No such configuration, or someone else's: the same either way.
    #[error("not found")]
    NotFound,
    #[error("you already have a configuration with this name")]
    NameTaken,
    #[error("an inactive configuration cannot be the default; activate it first")]
    InactiveDefault,
    /// The owner holds as many configurations as the cap allows.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    #[error("the configuration is invalid")]
    Invalid(FieldErrors),
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
    pub provider: Option<Provider>,
    pub model: Option<ModelId>,
    pub api_key: KeyChange,
    /// `Some(None)`: back to the provider's default.
    pub base_url: Option<Option<BaseUrl>>,
    pub is_active: Option<bool>,
    /// `Some`: replaces the stored parameters as a whole.
    pub parameters: Option<Parameters>,
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

/// Creates a configuration, refusing one more than `cap` allows the owner.
pub fn create(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    owner: Uuid,
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
    let sealed = new.api_key.as_ref().map(|key| {
        keyring.seal(
            key.expose().as_bytes(),
            RowBinding::Configuration {
                owner,
                configuration: id,
            },
        )
    });
    let hint = new.api_key.as_ref().map(|key| mask_api_key(key.expose()));
    let base_url = stored_base_url(new.provider, new.base_url.as_ref());
    let name_key = new.name.key();
    let parameters = new.parameters.to_json_text();

    db::write_transaction(conn, |conn| {
        lock_owner(conn, owner)?;
        if store::name_key_taken(conn, DbId(owner), &name_key, None)? {
            return Err(ConfigurationError::NameTaken);
        }
        if cap.is_reached(store::count_for_user(conn, DbId(owner))?) {
            return Err(ConfigurationError::CapReached(cap));
        }
        let now = db::now();
        let has_default = store::find_default_for_user(conn, DbId(owner))?.is_some();
        if new.is_default && has_default {
            store::clear_default(conn, DbId(owner), now)?;
        }
        let is_default = new.is_default || (new.is_active && !has_default);
        store::insert(
            conn,
            &ConfigurationInsert {
                id: DbId(id),
                user_id: DbId(owner),
                name: new.name.as_str(),
                name_key: &name_key,
                provider: new.provider,
                model: new.model.as_str(),
                api_key_encrypted: sealed.as_ref().map(|sealed| sealed.bytes.as_slice()),
                key_id: sealed.as_ref().map(|sealed| sealed.key_id.as_str()),
                api_key_hint: hint.as_deref(),
                base_url: base_url.as_deref(),
                is_default,
                is_active: new.is_active,
                created_at: now,
                updated_at: now,
                parameters: &parameters,
            },
        )?;
        find(conn, owner, id)
    })
}

pub fn list(conn: &mut DbConnection, owner: Uuid) -> Result<Vec<Configuration>, ConfigurationError> {
    Ok(store::list_for_user(conn, DbId(owner))?
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
    db::write_transaction(conn, |conn| {
        lock_owner(conn, owner)?;
        let row = store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(ConfigurationError::NotFound)?;
        let stored_provider = row.provider;
        let provider = update.provider.unwrap_or(stored_provider);
        let base_url = match &update.base_url {
            Some(new) => stored_base_url(provider, new.as_ref()),
            // A kept URL may be the new provider's default, which is stored as null.
            None => row
                .base_url
                .clone()
                .filter(|url| Some(url.as_str()) != provider.default_base_url()),
        };
        let is_active = update.is_active.unwrap_or(row.is_active);
        let had_key = row.api_key_encrypted.is_some();

        let mut errors = FieldErrors::new();
        let destination_changed = provider != stored_provider || base_url != row.base_url;
        if destination_changed && had_key && matches!(update.api_key, KeyChange::Keep) {
            errors.add(
                "api_key",
                "re-enter the API key (or send \"\" to remove it) when changing the provider or base URL, \
                 so that a stored key is never sent to a new destination",
            );
        }
        if matches!(update.api_key, KeyChange::Remove) && provider.needs_api_key() {
            errors.add(
                "api_key",
                format!("cannot be removed: {} needs an API key", provider.label()),
            );
        }
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
        refuse_any(errors)?;

        let name_key = update.name.as_ref().map(ConfigName::key);
        if let Some(name_key) = &name_key
            && store::name_key_taken(conn, DbId(owner), name_key, Some(DbId(id)))?
        {
            return Err(ConfigurationError::NameTaken);
        }
        let sealed = match &update.api_key {
            KeyChange::Replace(key) => Some(keyring.seal(
                key.expose().as_bytes(),
                RowBinding::Configuration {
                    owner,
                    configuration: id,
                },
            )),
            KeyChange::Keep | KeyChange::Remove => None,
        };
        let hint = match &update.api_key {
            KeyChange::Replace(key) => Some(mask_api_key(key.expose())),
            KeyChange::Keep | KeyChange::Remove => None,
        };
        let now = db::now();
        let deactivating_default = row.is_default && !is_active;
        if deactivating_default {
            // Before the update: the table refuses an inactive default.
            store::clear_default(conn, DbId(owner), now)?;
        }
        let key_columns_change = !matches!(update.api_key, KeyChange::Keep);
        let parameters = update.parameters.as_ref().map(Parameters::to_json_text);
        let changes = ConfigurationChanges {
            name: update.name.as_ref().map(ConfigName::as_str),
            name_key: name_key.as_deref(),
            provider: update.provider,
            model: update.model.as_ref().map(ModelId::as_str),
            api_key_encrypted: key_columns_change.then(|| sealed.as_ref().map(|sealed| sealed.bytes.as_slice())),
            key_id: key_columns_change.then(|| sealed.as_ref().map(|sealed| sealed.key_id.as_str())),
            api_key_hint: key_columns_change.then_some(hint.as_deref()),
            base_url: Some(base_url.as_deref()),
            is_active: update.is_active,
            updated_at: Some(now),
            parameters: parameters.as_deref(),
        };
        store::update(conn, DbId(owner), DbId(id), &changes)?;
        if deactivating_default {
            promote_default(conn, owner, now)?;
        } else if is_active && !row.is_default && store::find_default_for_user(conn, DbId(owner))?.is_none() {
            store::mark_default(conn, DbId(owner), DbId(id), now)?;
        }
        find(conn, owner, id)
    })
}

pub fn delete(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<(), ConfigurationError> {
    db::write_transaction(conn, |conn| {
        lock_owner(conn, owner)?;
        let row = store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(ConfigurationError::NotFound)?;
        conversation_overrides::delete_for_configuration(conn, DbId(id))?;
        store::delete(conn, DbId(owner), DbId(id))?;
        if row.is_default {
            promote_default(conn, owner, db::now())?;
        }
        Ok(())
    })
}

/// Makes `id` the owner's default in one step.
pub fn set_default(conn: &mut DbConnection, owner: Uuid, id: Uuid) -> Result<Configuration, ConfigurationError> {
    db::write_transaction(conn, |conn| {
        lock_owner(conn, owner)?;
        let row = store::find_for_user(conn, DbId(owner), DbId(id))?.ok_or(ConfigurationError::NotFound)?;
        if row.is_default {
            return Ok(Configuration::from(row));
        }
        if !row.is_active {
            return Err(ConfigurationError::InactiveDefault);
        }
        let now = db::now();
        store::clear_default(conn, DbId(owner), now)?;
        store::mark_default(conn, DbId(owner), DbId(id), now)?;
        find(conn, owner, id)
    })
}

/// After the default was deleted or deactivated: the active configuration used most recently
/// becomes the default (never-used ones after used ones, then the newest, then by id). Decided
/// here rather than in SQL so that both databases order NULLs and ids identically.
fn promote_default(conn: &mut DbConnection, owner: Uuid, now: chrono::NaiveDateTime) -> Result<(), ConfigurationError> {
    let candidates = store::active_candidates(conn, DbId(owner))?;
    let chosen = candidates
        .into_iter()
        .filter(|(_, provider, has_key)| *has_key || !provider.needs_api_key())
        .map(|(candidate, _, _)| candidate)
        .max_by_key(|candidate| (candidate.last_used_at, candidate.created_at, Reverse(candidate.id)));
    if let Some(chosen) = chosen {
        store::mark_default(conn, DbId(owner), chosen.id, now)?;
    }
    Ok(())
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
                let binding = RowBinding::Configuration {
                    owner: key.user_id.0,
                    configuration: key.id.0,
                };
                let hint = match keyring.open(&key.sealed, binding) {
                    Ok(plain) => mask_api_key(&String::from_utf8_lossy(&plain)),
                    Err(_) => mask_api_key(""),
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
