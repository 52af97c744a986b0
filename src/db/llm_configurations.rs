//! The `llm_configurations` table. Every query is scoped by the owner inside the query itself,
//! so another user's id behaves exactly like an id that does not exist.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::llm_configurations as cfg;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId, on_backend};
use crate::domain::{Configuration, Parameters, Provider, TestStatus};

/// A whole row: what a listing shows ([`ConfigurationSummary`], reached through `Deref`) and the
/// columns a listing never reads.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationRow {
    pub user_id: DbId,
    pub name_key: String,
    pub api_key_encrypted: Option<Vec<u8>>,
    pub key_id: Option<String>,
    #[diesel(embed)]
    pub summary: ConfigurationSummary,
}

impl std::ops::Deref for ConfigurationRow {
    type Target = ConfigurationSummary;

    fn deref(&self) -> &ConfigurationSummary {
        &self.summary
    }
}

/// Everything a listing shows: all columns but the ciphertext, so that listing never reads (or
/// could decrypt) a key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationSummary {
    pub id: DbId,
    pub name: String,
    pub provider: Provider,
    pub model: String,
    pub api_key_hint: Option<String>,
    pub base_url: Option<String>,
    pub is_default: bool,
    pub is_active: bool,
    pub test_status: TestStatus,
    pub test_message: Option<String>,
    pub test_latency_ms: Option<i64>,
    #[diesel(deserialize_as = MaybeStamp)]
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
}

impl From<ConfigurationSummary> for Configuration {
    fn from(row: ConfigurationSummary) -> Self {
        Configuration {
            id: row.id.0,
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
        }
    }
}

impl From<ConfigurationRow> for Configuration {
    fn from(row: ConfigurationRow) -> Self {
        Configuration::from(row.summary)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationInsert<'a> {
    pub id: DbId,
    pub user_id: DbId,
    pub name: &'a str,
    pub name_key: &'a str,
    pub provider: Provider,
    pub model: &'a str,
    pub api_key_encrypted: Option<&'a [u8]>,
    pub key_id: Option<&'a str>,
    pub api_key_hint: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub is_default: bool,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub parameters: &'a str,
}

/// A partial update: `None` leaves a column alone, `Some(None)` sets it to NULL.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = cfg)]
pub struct ConfigurationChanges<'a> {
    pub name: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub provider: Option<Provider>,
    pub model: Option<&'a str>,
    pub api_key_encrypted: Option<Option<&'a [u8]>>,
    pub key_id: Option<Option<&'a str>>,
    pub api_key_hint: Option<Option<&'a str>>,
    pub base_url: Option<Option<&'a str>>,
    pub is_active: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
    pub parameters: Option<&'a str>,
}

pub fn insert(conn: &mut DbConnection, row: &ConfigurationInsert<'_>) -> QueryResult<()> {
    diesel::insert_into(cfg::table).values(row).execute(conn).map(|_| ())
}

/// The owner's configurations, default first, then by case-folded name (unique per owner).
pub fn list_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<ConfigurationSummary>> {
    // Ordered by the (user_id, name_key) unique index, so the database reads rows in order
    // instead of sorting them; the one default is moved to the front here.
    let mut rows: Vec<ConfigurationSummary> = on_backend!(conn, |backend| {
        cfg::table
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
        .filter(cfg::id.eq(id))
        .filter(cfg::user_id.eq(user_id))
        .select(ConfigurationRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_default_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Option<ConfigurationRow>> {
    cfg::table
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
    diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set(changes)
        .execute(conn)
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
        .filter(cfg::user_id.eq(user_id))
        .filter(cfg::is_active.eq(true))
        .select((
            (cfg::id, cfg::last_used_at, cfg::created_at),
            cfg::provider,
            cfg::api_key_encrypted.is_not_null(),
        ))
        .load(conn)
}

/// How many stored keys each master key id protects.
pub fn count_keys_by_key_id(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<(Option<String>, i64)> = cfg::table
        .filter(cfg::key_id.is_not_null())
        .group_by(cfg::key_id)
        .select((cfg::key_id, diesel::dsl::count_star()))
        .order(cfg::key_id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(key_id, count)| key_id.map(|id| (id, count)))
        .collect())
}

/// Records a provider test's outcome (not an edit: `updated_at` stays).
pub fn record_test_result(
    conn: &mut DbConnection,
    user_id: DbId,
    id: DbId,
    status: TestStatus,
    message: Option<&str>,
    latency_ms: Option<i64>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set((
            cfg::test_status.eq(status),
            cfg::test_message.eq(message),
            cfg::test_latency_ms.eq(latency_ms),
            cfg::tested_at.eq(at),
        ))
        .execute(conn)
}

/// Records one use: `use_count + 1` and `last_used_at`, in one statement.
pub fn record_use(conn: &mut DbConnection, user_id: DbId, id: DbId, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(cfg::user_id.eq(user_id)))
        .set((cfg::use_count.eq(cfg::use_count + 1), cfg::last_used_at.eq(now)))
        .execute(conn)
}

/// A stored key for re-encryption: its row, owner and sealed value.
#[derive(Debug, Clone, Queryable)]
pub struct SealedKey {
    pub id: DbId,
    pub user_id: DbId,
    pub sealed: Option<Vec<u8>>,
}

/// The next `limit` stored keys not sealed under `key_id`, after `after` in id order.
pub fn sealed_keys_not_under(
    conn: &mut DbConnection,
    key_id: &str,
    after: Option<DbId>,
    limit: i64,
) -> QueryResult<Vec<SealedKey>> {
    let mut query = cfg::table
        .filter(cfg::api_key_encrypted.is_not_null())
        .filter(cfg::key_id.ne(key_id))
        .order(cfg::id)
        .limit(limit)
        .select((cfg::id, cfg::user_id, cfg::api_key_encrypted))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(cfg::id.gt(after));
    }
    query.load(conn)
}

/// Replaces a sealed key only if it is still the one that was read (compare-and-swap), so that
/// a rotation never overwrites a concurrent edit. Returns whether it replaced it.
pub fn replace_sealed_key(
    conn: &mut DbConnection,
    id: DbId,
    expected: &[u8],
    sealed: &[u8],
    key_id: &str,
) -> QueryResult<bool> {
    diesel::update(
        cfg::table
            .filter(cfg::id.eq(id))
            .filter(cfg::api_key_encrypted.eq(expected)),
    )
    .set((cfg::api_key_encrypted.eq(sealed), cfg::key_id.eq(key_id)))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// How many configurations the user holds.
pub fn count_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<i64> {
    cfg::table.filter(cfg::user_id.eq(user_id)).count().get_result(conn)
}

/// A stored key with the display hint kept beside it, for recomputing hints.
#[derive(Debug, Clone, Queryable)]
pub struct SealedKeyHint {
    pub id: DbId,
    pub user_id: DbId,
    pub sealed: Vec<u8>,
    pub hint: Option<String>,
}

/// The next `limit` stored keys after `after`, in id order.
pub fn sealed_keys_with_hints(
    conn: &mut DbConnection,
    after: Option<DbId>,
    limit: i64,
) -> QueryResult<Vec<SealedKeyHint>> {
    let mut query = cfg::table
        .filter(cfg::api_key_encrypted.is_not_null())
        .order(cfg::id)
        .limit(limit)
        .select((
            cfg::id,
            cfg::user_id,
            cfg::api_key_encrypted.assume_not_null(),
            cfg::api_key_hint,
        ))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(cfg::id.gt(after));
    }
    query.load(conn)
}

/// Replaces a key's hint only while the key is still the one it was computed from.
pub fn replace_hint(conn: &mut DbConnection, id: DbId, sealed: &[u8], hint: &str) -> QueryResult<bool> {
    diesel::update(
        cfg::table
            .filter(cfg::id.eq(id))
            .filter(cfg::api_key_encrypted.eq(sealed)),
    )
    .set(cfg::api_key_hint.eq(hint))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// Configurations per user and test status, for the admin's key health (never a key).
pub fn health_by_user(conn: &mut DbConnection) -> QueryResult<Vec<(DbId, TestStatus, i64)>> {
    cfg::table
        .group_by((cfg::user_id, cfg::test_status))
        .select((cfg::user_id, cfg::test_status, diesel::dsl::count_star()))
        .load(conn)
}
