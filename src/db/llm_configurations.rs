//! The `llm_configurations` table. Every query is scoped by the owner inside the query itself,
//! so another user's id behaves exactly like an id that does not exist. What a caller reads is
//! what they may see: their own configurations and those of the organisations they belong to,
//! with `is_default` meaning the caller's own default (`user_defaults`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::connections::configuration_owned_by;
use super::schema::connections as cn;
use super::schema::llm_configurations as cfg;
use super::schema::memberships as ms;
use super::schema::organisations as orgs;
use super::schema::user_defaults as ud;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId, on_backend};
use crate::domain::{
    Configuration, ConfigurationHealth, MemberAccess, OrganisationRole, Owner, Ownership, Parameters, Provider,
    TestStatus,
};

/// What the row types below select from, for one caller: each configuration with its
/// connection, the caller's default choice, its organisation and the caller's membership of it
/// (the last three left joins: absent for a personal configuration or a non-member).
macro_rules! seen_by {
    ($caller:expr) => {
        cfg::table
            .inner_join(cn::table)
            .left_join(ud::table.on(ud::configuration_id.eq(cfg::id).and(ud::user_id.eq($caller))))
            .left_join(orgs::table.on(cfg::organisation_id.eq(orgs::id.nullable())))
            .left_join(
                ms::table.on(cfg::organisation_id
                    .eq(ms::organisation_id.nullable())
                    .and(ms::user_id.eq($caller))),
            )
    };
}

/// The listing's one statement: the caller's own rows, then their organisations' rows.
macro_rules! listing {
    ($caller:expr) => {
        seen_by!($caller)
            .filter(cfg::user_id.eq($caller))
            .select(SeenSummary::as_select())
            .union_all(
                seen_by!($caller)
                    .filter(ms::user_id.nullable().is_not_null())
                    .select(SeenSummary::as_select()),
            )
    };
}

/// A configuration the caller may see: their own, or one of an organisation they belong to.
macro_rules! visible_to {
    ($caller:expr) => {
        cfg::user_id.eq($caller).or(ms::user_id.nullable().is_not_null())
    };
}

type IsCallersDefault = diesel::dsl::IsNotNull<diesel::dsl::Nullable<ud::user_id>>;

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
    /// The owner: a user, or (`organisation_id`) an organisation.
    pub user_id: Option<DbId>,
    pub organisation_id: Option<DbId>,
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
    pub member_access: MemberAccess,
}

/// How the caller sees a configuration: whether it is their default, and its organisation's
/// name with the caller's role there (both `None` for their own). Read with `seen_by!`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct CallerView {
    #[diesel(select_expression = ud::user_id.nullable().is_not_null(), select_expression_type = IsCallersDefault)]
    pub is_default: bool,
    #[diesel(select_expression = orgs::name.nullable(), select_expression_type = diesel::dsl::Nullable<orgs::name>)]
    pub organisation_name: Option<String>,
    #[diesel(select_expression = ms::role.nullable(), select_expression_type = diesel::dsl::Nullable<ms::role>)]
    pub member_role: Option<OrganisationRole>,
}

impl CallerView {
    fn ownership(self, organisation_id: Option<DbId>) -> Ownership {
        match (organisation_id, self.organisation_name) {
            (Some(id), Some(name)) => Ownership::Organisation {
                id: id.0,
                name,
                role: self.member_role.unwrap_or(OrganisationRole::Member),
            },
            _ => Ownership::Own,
        }
    }

    /// Whether the caller may change it: their own, or as its organisation's admin or owner.
    pub fn can_edit(&self, organisation_id: Option<DbId>) -> bool {
        organisation_id.is_none()
            || self
                .member_role
                .is_some_and(|role| role.includes(OrganisationRole::Admin))
    }
}

/// A configuration row as one caller sees it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct SeenRow {
    #[diesel(embed)]
    pub row: ConfigurationRow,
    #[diesel(embed)]
    pub seen: CallerView,
}

impl std::ops::Deref for SeenRow {
    type Target = ConfigurationRow;

    fn deref(&self) -> &ConfigurationRow {
        &self.row
    }
}

/// A listing's row as one caller sees it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct SeenSummary {
    #[diesel(embed)]
    pub summary: ConfigurationSummary,
    #[diesel(embed)]
    pub seen: CallerView,
}

/// Everything a listing shows: all columns but the ciphertext, so that listing never reads (or
/// could decrypt) a key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationSummary {
    pub id: DbId,
    pub organisation_id: Option<DbId>,
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
    pub member_access: MemberAccess,
}

impl From<SeenSummary> for Configuration {
    fn from(SeenSummary { summary: row, seen }: SeenSummary) -> Self {
        Configuration {
            id: row.id.0,
            connection_id: row.connection_id.0,
            connection_name: row.connection_name,
            name: row.name,
            provider: row.provider,
            model: row.model,
            api_key_hint: row.api_key_hint,
            base_url: row.base_url,
            is_default: seen.is_default,
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
            ownership: seen.ownership(row.organisation_id),
            member_access: row.member_access,
        }
    }
}

impl From<SeenRow> for Configuration {
    fn from(SeenRow { row, seen }: SeenRow) -> Self {
        Configuration::from(SeenSummary {
            summary: ConfigurationSummary::from(row),
            seen,
        })
    }
}

impl ConfigurationRow {
    /// Whose it is (`None` only if the database's CHECK were broken).
    pub fn owner(&self) -> Option<Owner> {
        Owner::from_columns(self.user_id.map(|id| id.0), self.organisation_id.map(|id| id.0))
    }
}

impl From<ConfigurationRow> for ConfigurationSummary {
    fn from(row: ConfigurationRow) -> Self {
        ConfigurationSummary {
            id: row.id,
            organisation_id: row.organisation_id,
            connection_id: row.connection_id,
            connection_name: row.connection_name,
            name: row.name,
            provider: row.provider,
            model: row.model,
            api_key_hint: row.api_key_hint,
            base_url: row.base_url,
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
            member_access: row.member_access,
        }
    }
}

/// The table's own columns, as stored (copying a database).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationTableRow {
    pub id: DbId,
    pub user_id: Option<DbId>,
    pub connection_id: DbId,
    pub name: String,
    pub name_key: String,
    pub model: String,
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
    pub organisation_id: Option<DbId>,
    pub member_access: MemberAccess,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = cfg)]
pub struct ConfigurationInsert<'a> {
    pub id: DbId,
    pub user_id: Option<DbId>,
    pub organisation_id: Option<DbId>,
    pub connection_id: DbId,
    pub name: &'a str,
    pub name_key: &'a str,
    pub model: &'a str,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub parameters: &'a str,
    pub member_access: MemberAccess,
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
    pub member_access: Option<MemberAccess>,
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

/// What the caller sees: their own configurations and those of the organisations they belong
/// to; their default first, then their own by case-folded name, then each organisation's (by
/// the organisation's name) by name. One statement: the caller's own rows through the
/// `(user_id, name_key)` index, then, through `memberships`, their organisations' rows; the few
/// rows are put in order here, the same on both databases whatever their collation.
pub fn list_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<SeenSummary>> {
    let mut rows: Vec<SeenSummary> = on_backend!(conn, |backend| listing!(user_id).load(backend))?;
    rows.sort_by_cached_key(|row| {
        (
            !row.seen.is_default,
            row.seen.organisation_name.as_ref().map(|name| name.to_lowercase()),
            row.summary.name.to_lowercase(),
        )
    });
    Ok(rows)
}

/// One configuration the caller may see (their own, or an organisation's they belong to).
pub fn find_for_user(conn: &mut DbConnection, user_id: DbId, id: DbId) -> QueryResult<Option<SeenRow>> {
    seen_by!(user_id)
        .filter(cfg::id.eq(id))
        .filter(visible_to!(user_id))
        .select(SeenRow::as_select())
        .first(conn)
        .optional()
}

/// The caller's default, while they may still see it.
pub fn find_default_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Option<SeenRow>> {
    seen_by!(user_id)
        .filter(ud::user_id.nullable().is_not_null())
        .filter(visible_to!(user_id))
        .select(SeenRow::as_select())
        .first(conn)
        .optional()
}

/// An organisation's configurations as one of its members (`user_id`) sees them, by name.
pub fn list_for_organisation(
    conn: &mut DbConnection,
    user_id: DbId,
    organisation_id: DbId,
) -> QueryResult<Vec<SeenSummary>> {
    let mut rows: Vec<SeenSummary> = seen_by!(user_id)
        .filter(cfg::organisation_id.eq(organisation_id))
        .filter(ms::user_id.nullable().is_not_null())
        .select(SeenSummary::as_select())
        .load(conn)?;
    rows.sort_by_cached_key(|row| row.summary.name.to_lowercase());
    Ok(rows)
}

/// The organisation's configurations by name as its service token sees them: nobody's default,
/// no member's role (the nil id matches no user, so the caller's joins stay empty).
pub fn list_of_organisation(conn: &mut DbConnection, organisation_id: DbId) -> QueryResult<Vec<SeenSummary>> {
    let nobody = DbId(uuid::Uuid::nil());
    let mut rows: Vec<SeenSummary> = seen_by!(nobody)
        .filter(cfg::organisation_id.eq(organisation_id))
        .select(SeenSummary::as_select())
        .load(conn)?;
    rows.sort_by_cached_key(|row| row.summary.name.to_lowercase());
    Ok(rows)
}

/// Is `name_key` used by another of the owner's configurations (other than `except`)?
pub fn name_key_taken(
    conn: &mut DbConnection,
    owner: Owner,
    name_key: &str,
    except: Option<DbId>,
) -> QueryResult<bool> {
    let mut query = cfg::table
        .filter(configuration_owned_by(owner))
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
    owner: Owner,
    id: DbId,
    changes: &ConfigurationChanges<'_>,
) -> QueryResult<usize> {
    let updated = diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(configuration_owned_by(owner)))
        .set(changes)
        .execute(conn)?;
    if updated > 0 && (changes.model.is_some() || changes.connection_id.is_some()) {
        refresh_model_listed(conn, id)?;
    }
    Ok(updated)
}

pub fn delete(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<bool> {
    diesel::delete(cfg::table.filter(cfg::id.eq(id)).filter(configuration_owned_by(owner)))
        .execute(conn)
        .map(|rows| rows > 0)
}

/// The ids of an organisation's configurations (deleting it, or removing a member).
pub fn ids_of_organisation(conn: &mut DbConnection, organisation_id: DbId) -> QueryResult<Vec<DbId>> {
    cfg::table
        .filter(cfg::organisation_id.eq(organisation_id))
        .order(cfg::id)
        .select(cfg::id)
        .load(conn)
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

/// Records `count` uses at once (resolve's group commits): `use_count` grows by `count` and
/// `last_used_at` becomes `last_used_at`. Returns the use count afterwards, or `None` when the
/// configuration is no longer the owner's.
pub fn record_uses(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
    count: i64,
    last_used_at: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let update = diesel::update(cfg::table.filter(cfg::id.eq(id)).filter(configuration_owned_by(owner))).set((
        cfg::use_count.eq(cfg::use_count + count),
        cfg::last_used_at.eq(last_used_at),
    ));
    match conn {
        // One round trip instead of two: PostgreSQL is a network hop away.
        DbConnection::Postgres(pg) => update.returning(cfg::use_count).get_result(pg).optional(),
        DbConnection::Sqlite(sqlite) => {
            if update.execute(sqlite)? == 0 {
                return Ok(None);
            }
            cfg::table
                .filter(cfg::id.eq(id))
                .select(cfg::use_count)
                .first(sqlite)
                .optional()
        }
    }
}

/// Stamps `last_used_at` without counting a use (a conditional resolve answered 304), unless it
/// was stamped at `not_since` or later.
pub fn touch_last_used(
    conn: &mut DbConnection,
    owner: Owner,
    id: DbId,
    now: NaiveDateTime,
    not_since: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        cfg::table
            .filter(cfg::id.eq(id))
            .filter(configuration_owned_by(owner))
            .filter(cfg::last_used_at.is_null().or(cfg::last_used_at.lt(not_since))),
    )
    .set(cfg::last_used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

/// How many configurations the owner holds.
pub fn count_for_owner(conn: &mut DbConnection, owner: Owner) -> QueryResult<i64> {
    cfg::table
        .filter(configuration_owned_by(owner))
        .count()
        .get_result(conn)
}

/// Configurations per user and test status, for the admin's key health (never a key).
pub fn health_by_user(conn: &mut DbConnection) -> QueryResult<Vec<(DbId, TestStatus, i64)>> {
    cfg::table
        .inner_join(cn::table)
        // A configuration and its connection have the same owner: grouping by the connection's
        // columns alone counts the configurations.
        .filter(cn::owner_user_id.is_not_null())
        .group_by((cn::owner_user_id, cn::test_status))
        .select((
            cn::owner_user_id.assume_not_null(),
            cn::test_status,
            diesel::dsl::count_star(),
        ))
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

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::query_builder::{QueryFragment, QueryId};
    use diesel::sqlite::Sqlite;

    use super::*;

    fn static_on_sqlite<Q: QueryId + QueryFragment<Sqlite>>(_: &Q) -> bool {
        Q::HAS_STATIC_QUERY_ID
    }

    fn static_on_postgres<Q: QueryId + QueryFragment<Pg>>(_: &Q) -> bool {
        Q::HAS_STATIC_QUERY_ID
    }

    /// The hot listing and the lookups resolve uses stay cacheable prepared statements (a raw
    /// SQL literal anywhere in them would make each one be prepared afresh).
    #[test]
    fn the_listing_and_lookups_have_static_query_ids() {
        let caller = DbId(uuid::Uuid::nil());
        assert!(static_on_sqlite(&listing!(caller)));
        assert!(static_on_postgres(&listing!(caller)));
        let find = || seen_by!(caller).filter(cfg::id.eq(caller)).filter(visible_to!(caller));
        assert!(static_on_sqlite(&find().select(SeenRow::as_select())));
        assert!(static_on_postgres(&find().select(SeenRow::as_select())));
        let default = || {
            seen_by!(caller)
                .filter(ud::user_id.nullable().is_not_null())
                .filter(visible_to!(caller))
        };
        assert!(static_on_sqlite(&default().select(SeenRow::as_select())));
        assert!(static_on_postgres(&default().select(SeenRow::as_select())));
    }
}
