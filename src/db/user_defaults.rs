//! The `user_defaults` table: each user's default configuration, one per user (the primary key),
//! which may be their own or one of an organisation they belong to. Every query is scoped by the
//! user inside the query.

use diesel::prelude::*;

use super::schema::conversation_overrides as overrides;
use super::schema::llm_configurations as cfg;
use super::schema::user_defaults as ud;
use super::{DbConnection, DbId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ud)]
pub struct UserDefaultRow {
    pub user_id: DbId,
    pub configuration_id: DbId,
}

/// The user's default configuration id, if any.
pub fn get(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Option<DbId>> {
    ud::table
        .find(user_id)
        .select(ud::configuration_id)
        .first(conn)
        .optional()
}

/// Makes `configuration_id` the user's default (replacing any other). Call inside a write
/// transaction that has locked the user.
pub fn set(conn: &mut DbConnection, user_id: DbId, configuration_id: DbId) -> QueryResult<()> {
    clear(conn, user_id)?;
    diesel::insert_into(ud::table)
        .values(&UserDefaultRow {
            user_id,
            configuration_id,
        })
        .execute(conn)
        .map(|_| ())
}

/// Forgets the user's default; how many rows went (0 or 1).
pub fn clear(conn: &mut DbConnection, user_id: DbId) -> QueryResult<usize> {
    diesel::delete(ud::table.filter(ud::user_id.eq(user_id))).execute(conn)
}

/// The users whose default is this configuration.
pub fn users_of(conn: &mut DbConnection, configuration_id: DbId) -> QueryResult<Vec<DbId>> {
    ud::table
        .filter(ud::configuration_id.eq(configuration_id))
        .order(ud::user_id)
        .select(ud::user_id)
        .load(conn)
}

/// Forgets every user's choice of this configuration as default.
pub fn clear_for_configuration(conn: &mut DbConnection, configuration_id: DbId) -> QueryResult<usize> {
    diesel::delete(ud::table.filter(ud::configuration_id.eq(configuration_id))).execute(conn)
}

/// Forgets a user's default and conversation overrides that point at an organisation's
/// configurations (the user left it or was removed). Returns how many of each went.
pub fn clear_organisation_choices(
    conn: &mut DbConnection,
    user_id: DbId,
    organisation_id: DbId,
) -> QueryResult<(usize, usize)> {
    let of_organisation = cfg::table
        .filter(cfg::organisation_id.eq(organisation_id))
        .select(cfg::id);
    let defaults = diesel::delete(
        ud::table
            .filter(ud::user_id.eq(user_id))
            .filter(ud::configuration_id.eq_any(of_organisation)),
    )
    .execute(conn)?;
    let pins = diesel::delete(
        overrides::table
            .filter(overrides::user_id.eq(user_id))
            .filter(overrides::configuration_id.eq_any(of_organisation)),
    )
    .execute(conn)?;
    Ok((defaults, pins))
}

/// Every row, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<UserDefaultRow>> {
    ud::table
        .order(ud::user_id)
        .select(UserDefaultRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &UserDefaultRow) -> QueryResult<()> {
    diesel::insert_into(ud::table).values(row).execute(conn).map(|_| ())
}

pub fn count_all(conn: &mut DbConnection) -> QueryResult<i64> {
    ud::table.count().get_result(conn)
}
