//! The `connections` table (a provider account: provider, base URL, sealed key, last test) and
//! its model catalogue, `connection_models`. Every query is scoped by the owner inside the query
//! itself, so another user's id behaves exactly like an id that does not exist.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::connection_models as models;
use super::schema::connections as cn;
use super::schema::llm_configurations as cfg;
use super::schema::memberships as ms;
use super::schema::organisations as orgs;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId};
use crate::domain::{OrganisationRole, Owner, Provider, TestStatus};

/// The owner's connections: `owner_user_id = ? OR organisation_id = ?` with the other side bound
/// to NULL (which matches nothing), so that one statement, with a static query id, serves both
/// kinds of owner.
pub(crate) type OwnedBy = diesel::dsl::Or<
    diesel::dsl::Eq<cn::owner_user_id, Option<DbId>>,
    diesel::dsl::Eq<cn::organisation_id, Option<DbId>>,
>;

pub(crate) fn owned_by(owner: Owner) -> OwnedBy {
    cn::owner_user_id
        .eq(owner.user().map(DbId))
        .or(cn::organisation_id.eq(owner.organisation().map(DbId)))
}

/// The same for configurations (a configuration and its connection have the same owner).
pub(crate) type ConfigurationOwnedBy =
    diesel::dsl::Or<diesel::dsl::Eq<cfg::user_id, Option<DbId>>, diesel::dsl::Eq<cfg::organisation_id, Option<DbId>>>;

pub(crate) fn configuration_owned_by(owner: Owner) -> ConfigurationOwnedBy {
    cfg::user_id
        .eq(owner.user().map(DbId))
        .or(cfg::organisation_id.eq(owner.organisation().map(DbId)))
}

/// One connection, every column.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cn)]
pub struct ConnectionRow {
    pub id: DbId,
    /// The owner: a user, or (`organisation_id`) an organisation; exactly one is set.
    pub owner_user_id: Option<DbId>,
    pub name: String,
    pub name_key: String,
    pub provider: Provider,
    pub base_url: Option<String>,
    pub api_key_encrypted: Option<Vec<u8>>,
    pub key_id: Option<String>,
    pub api_key_hint: Option<String>,
    /// Set by the upgrade: the key is still sealed under this configuration's row binding.
    pub legacy_configuration_id: Option<DbId>,
    pub test_status: TestStatus,
    pub test_code: Option<String>,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub tested_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub models_fetched_at: Option<NaiveDateTime>,
    pub model_count: i64,
    pub is_implicit: bool,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    pub organisation_id: Option<DbId>,
    /// When the key stops working, as its owner said (`connection.expiring` announces it).
    #[diesel(deserialize_as = MaybeStamp)]
    pub expires_at: Option<NaiveDateTime>,
    /// The smallest expiry window already announced: 0 none, 7 or 1 days.
    pub expiry_notice: i64,
}

impl ConnectionRow {
    /// Whose it is (`None` only if the database's CHECK were broken).
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_columns(self.owner_user_id.map(|id| id.0), self.organisation_id.map(|id| id.0))
    }
}

/// A partial update: `None` leaves a column alone, `Some(None)` sets it to NULL.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = cn)]
pub struct ConnectionChanges<'a> {
    pub name: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub provider: Option<Provider>,
    pub base_url: Option<Option<&'a str>>,
    pub api_key_encrypted: Option<Option<&'a [u8]>>,
    pub key_id: Option<Option<&'a str>>,
    pub api_key_hint: Option<Option<&'a str>>,
    pub legacy_configuration_id: Option<Option<DbId>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// One catalogue row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = models)]
pub struct ModelRow {
    pub connection_id: DbId,
    pub model: String,
}

pub fn insert(conn: &mut DbConnection, row: &ConnectionRow) -> QueryResult<()> {
    diesel::insert_into(cn::table).values(row).execute(conn).map(|_| ())
}

pub fn find_for_owner(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<Option<ConnectionRow>> {
    cn::table
        .filter(cn::id.eq(id))
        .filter(owned_by(owner))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()
}

/// The owner's connections by case-folded name.
pub fn list_for_owner(conn: &mut DbConnection, owner: Owner) -> QueryResult<Vec<ConnectionRow>> {
    cn::table
        .filter(owned_by(owner))
        .order(cn::name_key)
        .select(ConnectionRow::as_select())
        .load(conn)
}

/// How many of the owner's configurations use each of their connections (connections that no
/// configuration uses are absent).
pub fn configuration_counts(conn: &mut DbConnection, owner: Owner) -> QueryResult<Vec<(DbId, i64)>> {
    cfg::table
        .filter(configuration_owned_by(owner))
        .group_by(cfg::connection_id)
        .select((cfg::connection_id, diesel::dsl::count_star()))
        .load(conn)
}

/// The names of the configurations using a connection, by case-folded name.
pub fn configuration_names(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<Vec<String>> {
    cfg::table
        .filter(configuration_owned_by(owner))
        .filter(cfg::connection_id.eq(id))
        .order(cfg::name_key)
        .select(cfg::name)
        .load(conn)
}

/// The configurations using a connection: id, name and model, by case-folded name.
pub fn configurations_using(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
) -> QueryResult<Vec<(DbId, String, String)>> {
    cfg::table
        .filter(configuration_owned_by(owner))
        .filter(cfg::connection_id.eq(id))
        .order(cfg::name_key)
        .select((cfg::id, cfg::name, cfg::model))
        .load(conn)
}

/// How many configurations other than `except` use a connection.
pub fn other_configurations(conn: &mut DbConnection, id: DbId, except: DbId) -> QueryResult<i64> {
    cfg::table
        .filter(cfg::connection_id.eq(id))
        .filter(cfg::id.ne(except))
        .count()
        .get_result(conn)
}

/// Is `name_key` used by another of the owner's connections (other than `except`)?
pub fn name_key_taken(
    conn: &mut DbConnection,
    owner: Owner,
    name_key: &str,
    except: Option<DbId>,
) -> QueryResult<bool> {
    let mut query = cn::table
        .filter(owned_by(owner))
        .filter(cn::name_key.eq(name_key))
        .select(cn::id)
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(cn::id.ne(except));
    }
    query.first::<DbId>(conn).optional().map(|found| found.is_some())
}

pub fn count_for_owner(conn: &mut DbConnection, owner: Owner) -> QueryResult<i64> {
    cn::table.filter(owned_by(owner)).count().get_result(conn)
}

pub fn update(conn: &mut DbConnection, owner: Owner, id: DbId, changes: &ConnectionChanges<'_>) -> QueryResult<usize> {
    diesel::update(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .set(changes)
        .execute(conn)
}

/// Deletes a connection (its catalogue goes with it). The database refuses while a
/// configuration uses it (`ON DELETE RESTRICT`); callers check first.
pub fn delete(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<bool> {
    diesel::delete(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .execute(conn)
        .map(|rows| rows > 0)
}

/// Deletes every connection of `owner` (their catalogues and checks go with them); call once
/// no configuration uses them.
pub fn delete_all_for_owner(conn: &mut DbConnection, owner: Owner) -> QueryResult<usize> {
    diesel::delete(cn::table.filter(owned_by(owner))).execute(conn)
}

/// Sets (or clears) when the connection expires; the expiry notices start again.
pub fn set_expiry(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
    expires_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .set((cn::expires_at.eq(expires_at), cn::expiry_notice.eq(0_i64)))
        .execute(conn)
}

/// Marks the expiry window of `days` (7 or 1) as announced, unless it (or a nearer one) was
/// already: `true` for exactly one caller however many instances race, so that the event
/// fires once.
pub fn claim_expiry_notice(conn: &mut DbConnection, owner: Owner, id: DbId, days: i64) -> QueryResult<bool> {
    diesel::update(
        cn::table
            .filter(cn::id.eq(id))
            .filter(owned_by(owner))
            .filter(cn::expiry_notice.eq(0_i64).or(cn::expiry_notice.gt(days))),
    )
    .set(cn::expiry_notice.eq(days))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// The owner's connection, its row locked until the transaction ends on PostgreSQL (SQLite's
/// immediate transaction already holds the only write lock), so that a check's transition is
/// judged against the status no other writer is changing.
pub fn lock_for_owner(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<Option<ConnectionRow>> {
    if let DbConnection::Postgres(pg) = conn {
        // Locks the row; what is read comes from the query below, through the shared backend.
        cn::table
            .filter(cn::id.eq(id))
            .filter(owned_by(owner))
            .select(cn::id)
            .for_update()
            .first::<DbId>(pg)
            .optional()?;
    }
    find_for_owner(conn, owner, id)
}

/// Records a provider test's outcome (not an edit: `updated_at` stays).
#[allow(clippy::too_many_arguments)]
pub fn record_test_result(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
    status: TestStatus,
    code: &str,
    message: Option<&str>,
    latency_ms: Option<i64>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .set((
            cn::test_status.eq(status),
            cn::test_code.eq(code),
            cn::test_message.eq(message),
            cn::test_latency_ms.eq(latency_ms),
            cn::tested_at.eq(at),
        ))
        .execute(conn)
}

/// Replaces the catalogue with `ids` (already sorted, deduplicated and capped by the caller);
/// `false` when the owner has no such connection. Call inside a write transaction.
pub fn replace_models(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
    ids: &[String],
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let updated = diesel::update(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .set((cn::models_fetched_at.eq(at), cn::model_count.eq(count)))
        .execute(conn)?;
    if updated == 0 {
        return Ok(false);
    }
    diesel::delete(models::table.filter(models::connection_id.eq(id))).execute(conn)?;
    // Row by row: the multi-backend connection does not batch inserts.
    for model in ids {
        diesel::insert_into(models::table)
            .values((models::connection_id.eq(id), models::model.eq(model)))
            .execute(conn)?;
    }
    super::llm_configurations::refresh_model_listed_of_connection(conn, id)?;
    Ok(true)
}

/// Forgets the catalogue (the provider or base URL changed). Call inside a write transaction.
pub fn clear_models(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<()> {
    let updated = diesel::update(cn::table.filter(cn::id.eq(id)).filter(owned_by(owner)))
        .set((
            cn::models_fetched_at.eq(None::<NaiveDateTime>),
            cn::model_count.eq(0_i64),
        ))
        .execute(conn)?;
    if updated > 0 {
        diesel::delete(models::table.filter(models::connection_id.eq(id))).execute(conn)?;
        super::llm_configurations::refresh_model_listed_of_connection(conn, id)?;
    }
    Ok(())
}

/// The catalogue's model ids, unsorted (the caller sorts: the two databases collate differently).
pub fn model_ids(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<Vec<String>> {
    models::table
        .inner_join(cn::table)
        .filter(owned_by(owner))
        .filter(models::connection_id.eq(id))
        .select(models::model)
        .load(conn)
}

/// Every catalogue row, for copying a database.
pub fn all_models(conn: &mut DbConnection) -> QueryResult<Vec<ModelRow>> {
    models::table
        .order((models::connection_id, models::model))
        .select(ModelRow::as_select())
        .load(conn)
}

pub fn insert_model(conn: &mut DbConnection, row: &ModelRow) -> QueryResult<()> {
    diesel::insert_into(models::table).values(row).execute(conn).map(|_| ())
}

pub fn count_models(conn: &mut DbConnection) -> QueryResult<i64> {
    models::table.count().get_result(conn)
}

/// How many stored keys each master key id protects.
pub fn count_keys_by_key_id(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<(Option<String>, i64)> = cn::table
        .filter(cn::key_id.is_not_null())
        .group_by(cn::key_id)
        .select((cn::key_id, diesel::dsl::count_star()))
        .order(cn::key_id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(key_id, count)| key_id.map(|id| (id, count)))
        .collect())
}

/// A stored key for re-sealing: its row, owner, sealed value, and the binding it is under.
#[derive(Debug, Clone, Queryable)]
pub struct SealedKey {
    pub id: DbId,
    pub owner_user_id: Option<DbId>,
    pub organisation_id: Option<DbId>,
    pub sealed: Vec<u8>,
    pub legacy_configuration_id: Option<DbId>,
}

impl SealedKey {
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_columns(self.owner_user_id.map(|id| id.0), self.organisation_id.map(|id| id.0))
    }
}

/// Which stored keys a re-seal pass visits.
#[derive(Debug, Clone, Copy)]
pub enum ResealSelection<'a> {
    /// Keys still under a configuration's binding (the upgrade).
    Upgraded,
    /// Keys under another master key than `active`, or still under a configuration's binding
    /// (`rotate-keys`).
    NotUnder { active: &'a str },
}

/// The next `limit` stored keys of `selection`, after `after` in id order.
pub fn sealed_keys(
    conn: &mut DbConnection,
    selection: ResealSelection<'_>,
    after: Option<DbId>,
    limit: i64,
) -> QueryResult<Vec<SealedKey>> {
    let mut query = cn::table
        .filter(cn::api_key_encrypted.is_not_null())
        .order(cn::id)
        .limit(limit)
        .select((
            cn::id,
            cn::owner_user_id,
            cn::organisation_id,
            cn::api_key_encrypted.assume_not_null(),
            cn::legacy_configuration_id,
        ))
        .into_boxed();
    query = match selection {
        ResealSelection::Upgraded => query.filter(cn::legacy_configuration_id.is_not_null()),
        ResealSelection::NotUnder { active } => {
            query.filter(cn::key_id.ne(active).or(cn::legacy_configuration_id.is_not_null()))
        }
    };
    if let Some(after) = after {
        query = query.filter(cn::id.gt(after));
    }
    query.load(conn)
}

/// How many keys the upgrade has yet to re-seal.
pub fn count_upgraded_keys(conn: &mut DbConnection) -> QueryResult<i64> {
    cn::table
        .filter(cn::legacy_configuration_id.is_not_null())
        .count()
        .get_result(conn)
}

/// Replaces a sealed key only if it is still the one that was read (compare-and-swap), so that
/// a re-seal never overwrites a concurrent edit; the new value is under the connection's own
/// binding, so the upgrade marker goes. Returns whether it replaced it.
pub fn replace_sealed_key(
    conn: &mut DbConnection,
    id: DbId,
    expected: &[u8],
    sealed: &[u8],
    key_id: &str,
) -> QueryResult<bool> {
    diesel::update(
        cn::table
            .filter(cn::id.eq(id))
            .filter(cn::api_key_encrypted.eq(expected)),
    )
    .set((
        cn::api_key_encrypted.eq(sealed),
        cn::key_id.eq(key_id),
        cn::legacy_configuration_id.eq(None::<DbId>),
    ))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// A stored key with the display hint kept beside it, for recomputing hints.
#[derive(Debug, Clone, Queryable)]
pub struct SealedKeyHint {
    pub id: DbId,
    pub owner_user_id: Option<DbId>,
    pub organisation_id: Option<DbId>,
    pub sealed: Vec<u8>,
    pub legacy_configuration_id: Option<DbId>,
    pub hint: Option<String>,
}

impl SealedKeyHint {
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_columns(self.owner_user_id.map(|id| id.0), self.organisation_id.map(|id| id.0))
    }
}

/// The next `limit` stored keys after `after`, in id order.
pub fn sealed_keys_with_hints(
    conn: &mut DbConnection,
    after: Option<DbId>,
    limit: i64,
) -> QueryResult<Vec<SealedKeyHint>> {
    let mut query = cn::table
        .filter(cn::api_key_encrypted.is_not_null())
        .order(cn::id)
        .limit(limit)
        .select((
            cn::id,
            cn::owner_user_id,
            cn::organisation_id,
            cn::api_key_encrypted.assume_not_null(),
            cn::legacy_configuration_id,
            cn::api_key_hint,
        ))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(cn::id.gt(after));
    }
    query.load(conn)
}

/// Replaces a key's hint only while the key is still the one it was computed from.
pub fn replace_hint(conn: &mut DbConnection, id: DbId, sealed: &[u8], hint: &str) -> QueryResult<bool> {
    diesel::update(cn::table.filter(cn::id.eq(id)).filter(cn::api_key_encrypted.eq(sealed)))
        .set(cn::api_key_hint.eq(hint))
        .execute(conn)
        .map(|rows| rows == 1)
}

/// Every connection, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<ConnectionRow>> {
    cn::table.order(cn::id).select(ConnectionRow::as_select()).load(conn)
}

pub fn count_all(conn: &mut DbConnection) -> QueryResult<i64> {
    cn::table.count().get_result(conn)
}

/// Whether the table exists yet: the master-key check reads stored keys before migrations run,
/// from `llm_configurations` on a database the previous release wrote.
pub fn table_exists(conn: &mut DbConnection) -> QueryResult<bool> {
    super::migrations::table_exists(conn, "connections")
}

/// A connection with its organisation's name and the caller's role there.
pub type VisibleConnection = (ConnectionRow, Option<String>, Option<OrganisationRole>);

/// One connection the caller may see (their own, or an organisation's they belong to), with
/// its organisation's name and the caller's role there (both `None` for their own).
pub fn find_visible(conn: &mut DbConnection, caller: DbId, id: DbId) -> QueryResult<Option<VisibleConnection>> {
    cn::table
        .left_join(orgs::table.on(cn::organisation_id.eq(orgs::id.nullable())))
        .left_join(
            ms::table.on(cn::organisation_id
                .eq(ms::organisation_id.nullable())
                .and(ms::user_id.eq(caller))),
        )
        .filter(cn::id.eq(id))
        .filter(cn::owner_user_id.eq(caller).or(ms::user_id.nullable().is_not_null()))
        .select((ConnectionRow::as_select(), orgs::name.nullable(), ms::role.nullable()))
        .first(conn)
        .optional()
}
