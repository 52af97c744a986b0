//! The `llm_configurations` table. Every query is scoped by the owner inside the query itself,
//! so another user's id behaves exactly like an id that does not exist.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::connections as cn;
use super::schema::llm_configurations as cfg;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId, on_backend};
use crate::domain::{Configuration, ConfigurationHealth, Parameters, Provider, TestStatus};

/// Whether the configuration's model is in its connection's catalogue (Ollama lists `x:latest`
/// for `x`), as `providers::model_is_listed` judges it: what `model_listed` is set to whenever the
/// catalogue or the configuration's model or connection changes (`refresh_model_listed*`), so
/// that listings read a column instead of probing the catalogue once per row.
///
/// A fragment type of its own rather than `diesel::dsl::sql`, which would mark the statement
/// unsafe to cache.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct ModelInCatalogue;

impl diesel::expression::Expression for ModelInCatalogue {
    type SqlType = diesel::sql_types::Bool;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for ModelInCatalogue {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "EXISTS (SELECT 1 FROM connection_models \
             INNER JOIN connections ON connections.id = connection_models.connection_id \
             WHERE connection_models.connection_id = llm_configurations.connection_id \
             AND (connection_models.model = llm_configurations.model \
             OR (connections.provider = 'ollama' AND connection_models.model = llm_configurations.model || ':latest')))",
        );
        Ok(())
    }
}

impl diesel::expression::AppearsOnTable<cfg::table> for ModelInCatalogue {}

impl diesel::expression::ValidGrouping<()> for ModelInCatalogue {
    type IsAggregate = diesel::expression::is_aggregate::No;
}

/// A configuration with what it takes from its connection (provider, base URL, key, last test),
/// read in one join.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationRow {
    pub id: DbId,
    pub user_id: DbId,
    pub connection_id: DbId,
    #[diesel(select_expression = cn::name)]
    pub connection_name: String,
    pub name: String,
    #[diesel(select_expression = cn::provider)]
    pub provider: Provider,
    pub model: String,
    #[diesel(select_expression = cn::api_key_encrypted)]
    pub api_key_encrypted: Option<Vec<u8>>,
    #[diesel(select_expression = cn::api_key_hint)]
    pub api_key_hint: Option<String>,
    /// The upgrade's marker: the key is still sealed under this configuration's row binding.
    #[diesel(select_expression = cn::legacy_configuration_id)]
    pub legacy_configuration_id: Option<DbId>,
    #[diesel(select_expression = cn::base_url)]
    pub base_url: Option<String>,
    pub is_default: bool,
    pub is_active: bool,
    #[diesel(select_expression = cn::test_status)]
    pub test_status: TestStatus,
    #[diesel(select_expression = cn::test_message)]
    pub test_message: Option<String>,
    #[diesel(select_expression = cn::test_latency_ms)]
    pub test_latency_ms: Option<i64>,
    #[diesel(select_expression = cn::tested_at, deserialize_as = MaybeStamp)]
    pub tested_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    pub use_count: i64,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Canonical JSON (`Parameters::to_json_text`).
    pub parameters: String,
    /// When the connection's catalogue was last fetched (`None`: never), and whether this
    /// configuration's model is in it: together, the configuration's model drift.
    #[diesel(select_expression = cn::models_fetched_at, deserialize_as = MaybeStamp)]
    pub models_fetched_at: Option<NaiveDateTime>,
    pub model_listed: bool,
}

/// Everything a listing shows: all columns but the ciphertext, so that listing never reads (or
/// could decrypt) a key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationSummary {
    pub id: DbId,
    pub connection_id: DbId,
    #[diesel(select_expression = cn::name)]
    pub connection_name: String,
    pub name: String,
    #[diesel(select_expression = cn::provider)]
    pub provider: Provider,
    pub model: String,
    #[diesel(select_expression = cn::api_key_hint)]
    pub api_key_hint: Option<String>,
    #[diesel(select_expression = cn::base_url)]
    pub base_url: Option<String>,
    pub is_default: bool,
    pub is_active: bool,
    #[diesel(select_expression = cn::test_status)]
    pub test_status: TestStatus,
    #[diesel(select_expression = cn::test_message)]
    pub test_message: Option<String>,
    #[diesel(select_expression = cn::test_latency_ms)]
    pub test_latency_ms: Option<i64>,
    #[diesel(select_expression = cn::tested_at, deserialize_as = MaybeStamp)]
    pub tested_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    pub use_count: i64,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Canonical JSON (`Parameters::to_json_text`).
    pub parameters: String,
    /// When the connection's catalogue was last fetched (`None`: never), and whether this
    /// configuration's model is in it: together, the configuration's model drift.
    #[diesel(select_expression = cn::models_fetched_at, deserialize_as = MaybeStamp)]
    pub models_fetched_at: Option<NaiveDateTime>,
    pub model_listed: bool,
}

impl From<ConfigurationSummary> for Configuration {
    fn from(row: ConfigurationSummary) -> Self {
        Configuration {
            id: row.id.0,
            connection_id: row.connection_id.0,
            connection_name: row.connection_name,
            name: row.name,
            provider: row.provider,
            model: row.model,
            api_key_hint: row.api_key_hint,
            base_url: row.base_url,
            is_default: row.is_default,
            is_active: row.is_active,
            test_status: row.test_status,
            test_message: row.test_message,
            test_latency_ms: row.test_latency_ms,
            tested_at: row.tested_at,
            last_used_at: row.last_used_at,
            use_count: row.use_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            parameters: Parameters::from_stored(&row.parameters),
            health: ConfigurationHealth::of(row.test_status, row.models_fetched_at.is_some(), row.model_listed),
        }
    }
}

impl From<ConfigurationRow> for Configuration {
    fn from(row: ConfigurationRow) -> Self {
        Configuration::from(ConfigurationSummary::from(row))
    }
}

impl From<ConfigurationRow> for ConfigurationSummary {
    fn from(row: ConfigurationRow) -> Self {
        ConfigurationSummary {
            id: row.id,
            connection_id: row.connection_id,
            connection_name: row.connection_name,
            name: row.name,
            provider: row.provider,
            model: row.model,
            api_key_hint: row.api_key_hint,
            base_url: row.base_url,
            is_default: row.is_default,
            is_active: row.is_active,
            test_status: row.test_status,
            test_message: row.test_message,
            test_latency_ms: row.test_latency_ms,
            tested_at: row.tested_at,
            last_used_at: row.last_used_at,
            use_count: row.use_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            parameters: row.parameters,
            models_fetched_at: row.models_fetched_at,
            model_listed: row.model_listed,
        }
    }
}

/// The table's own columns, as stored (copying a database).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationTableRow {
    pub id: DbId,
    pub user_id: DbId,
    pub connection_id: DbId,
    pub name: String,
    pub name_key: String,
    pub model: String,
    pub is_default: bool,
    pub is_active: bool,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    pub use_count: i64,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Canonical JSON (`Parameters::to_json_text`).
    pub parameters: String,
    pub model_listed: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationInsert<'a> {
    pub id: DbId,
    pub user_id: DbId,
    pub connection_id: DbId,
    pub name: &'a str,
    pub name_key: &'a str,
    pub model: &'a str,
    pub is_default: bool,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub parameters: &'a str,
}

/// A partial update: `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = cfg)]
pub struct ConfigurationChanges<'a> {
    pub name: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub connection_id: Option<DbId>,
    pub model: Option<&'a str>,
    pub is_active: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
    pub parameters: Option<&'a str>,
}

pub fn insert(conn: &mut DbConnection, row: &ConfigurationInsert<'_>) -> QueryResult<()> {
    diesel::insert_into(cfg::table).values(row).execute(conn)?;
    refresh_model_listed(conn, row.id)
}

/// Sets `model_listed` of one configuration (its model or connection changed).
fn refresh_model_listed(conn: &mut DbConnection, id: DbId) -> QueryResult<()> {
    diesel::update(cfg::table.filter(cfg::id.eq(id)))
        .set(cfg::model_listed.eq(ModelInCatalogue))
        .execute(conn)
        .map(|_| ())
}

/// Sets `model_listed` of every configuration of a connection whose catalogue changed. Call in
/// the transaction that changed it.
pub fn refresh_model_listed_of_connection(conn: &mut DbConnection, connection_id: DbId) -> QueryResult<()> {
    diesel::update(cfg::table.filter(cfg::connection_id.eq(connection_id)))
        .set(cfg::model_listed.eq(ModelInCatalogue))
        .execute(conn)
        .map(|_| ())
}

/// The owner's configurations, default first, then by case-folded name (unique per owner).
pub fn list_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<ConfigurationSummary>> {
    // Ordered by the (user_id, name_key) unique index, so the database reads rows in order
    // instead of sorting them; the one default is moved to the front here.
    let mut rows: Vec<ConfigurationSummary> = on_backend!(conn, |backend| {
        cfg::table
            .inner_join(cn::table)
            .filter(cfg::user_id.eq(user_id))
            .order(cfg::name_key)
            .select(ConfigurationSummary::as_select())
            .load(backend)
    })?;
    if let Some(default) = rows.iter().position(|row| row.is_default) {
        rows[..=default].rotate_right(1);
    }
    Ok(rows)
}

pub fn find_for_user(conn: &mut DbConnection, user_id: DbId, id: DbId) -> QueryResult<Option<ConfigurationRow>> {
    cfg::table
        .inner_join(cn::table)
        .filter(cfg::id.eq(id))
        .filter(cfg::user_id.eq(user_id))
        .select(ConfigurationRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_default_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Option<ConfigurationRow>> {
    cfg::table
        .inner_join(cn::table)
        .filter(cfg::user_id.eq(user_id))
        .filter(cfg::is_default.eq(true))
        .select(ConfigurationRow::as_select())
        .first(conn)
        .optional()
}

/// Is `name_key` used by another of the owner's configurations (other than `except`)?
pub fn name_key_taken(
    conn: &mut DbConnection,
    user_id: DbId,
    name_key: &str,
    except: Option<DbId>,
) -> QueryResult<bool> {
    let mut query = cfg::table
        .filter(cfg::user_id.eq(user_id))
        .filter(cfg::name_key.eq(name_key))
        .select(cfg::id)
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(cfg::id.ne(except));
    }
    query.first::<DbId>(conn).optional().map(|found| found.is_some())
}

pub fn update(
    conn: &mut DbConnection,
    user_id: DbId,
    id: DbId,
    changes: &ConfigurationChanges<'_>,
) -> QueryResult<usize> {
    let updated = diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set(changes)
        .execute(conn)?;
    if updated > 0 && (changes.model.is_some() || changes.connection_id.is_some()) {
        refresh_model_listed(conn, id)?;
    }
    Ok(updated)
}

pub fn delete(conn: &mut DbConnection, user_id: DbId, id: DbId) -> QueryResult<bool> {
    diesel::delete(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .execute(conn)
        .map(|rows| rows > 0)
}

/// Clears the owner's default flag (on at most one row).
pub fn clear_default(conn: &mut DbConnection, user_id: DbId, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        cfg::table
            .filter(cfg::user_id.eq(user_id))
            .filter(cfg::is_default.eq(true)),
    )
    .set((cfg::is_default.eq(false), cfg::updated_at.eq(now)))
    .execute(conn)
}

pub fn mark_default(conn: &mut DbConnection, user_id: DbId, id: DbId, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set((cfg::is_default.eq(true), cfg::updated_at.eq(now)))
        .execute(conn)
}

/// What choosing a new default needs to know about each active configuration.
#[derive(Debug, Clone, Queryable)]
pub struct DefaultCandidate {
    pub id: DbId,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

/// The owner's active configurations that hold a key or need none (the caller decides which).
pub fn active_candidates(
    conn: &mut DbConnection,
    user_id: DbId,
) -> QueryResult<Vec<(DefaultCandidate, Provider, bool)>> {
    cfg::table
        .inner_join(cn::table)
        .filter(cfg::user_id.eq(user_id))
        .filter(cfg::is_active.eq(true))
        .select((
            (cfg::id, cfg::last_used_at, cfg::created_at),
            cn::provider,
            cn::api_key_encrypted.is_not_null(),
        ))
        .load(conn)
}

/// Records one use: `use_count + 1` and `last_used_at`, in one statement.
pub fn record_use(conn: &mut DbConnection, user_id: DbId, id: DbId, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set((cfg::use_count.eq(cfg::use_count + 1), cfg::last_used_at.eq(now)))
        .execute(conn)
}

/// How many configurations the user holds.
pub fn count_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<i64> {
    cfg::table.filter(cfg::user_id.eq(user_id)).count().get_result(conn)
}

/// Configurations per user and test status, for the admin's key health (never a key).
pub fn health_by_user(conn: &mut DbConnection) -> QueryResult<Vec<(DbId, TestStatus, i64)>> {
    cfg::table
        .inner_join(cn::table)
        // A configuration and its connection have the same owner: grouping by the connection's
        // columns alone counts the configurations.
        .group_by((cn::owner_user_id, cn::test_status))
        .select((cn::owner_user_id, cn::test_status, diesel::dsl::count_star()))
        .load(conn)
}

/// Every row as stored, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<ConfigurationTableRow>> {
    cfg::table
        .order(cfg::id)
        .select(ConfigurationTableRow::as_select())
        .load(conn)
}

/// How many stored keys each master key id protects, on a database the release before
/// connections wrote (keys on the configurations): read by the master-key check, which runs
/// before migrations. Plain SQL: today's schema no longer has these columns.
pub fn legacy_count_keys_by_key_id(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct KeyCount {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key_id: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let rows: Vec<KeyCount> = diesel::sql_query(
        "SELECT key_id, COUNT(*) AS count FROM llm_configurations WHERE key_id IS NOT NULL \
         GROUP BY key_id ORDER BY key_id",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|row| (row.key_id, row.count)).collect())
}
