//! The `organisations` table. Every query a member makes is scoped by their membership inside
//! the query (`find_for_member`): an organisation they do not belong to is not found.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{memberships, organisations, users};
use super::sql_types::Stamp;
use super::{DbConnection, DbId};
use crate::domain::OrganisationRole;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organisations)]
pub struct OrganisationRow {
    pub id: DbId,
    pub name: String,
    pub name_key: String,
    pub allow_personal_configurations: bool,
    pub default_configuration_id: Option<DbId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Created by the single sign-on group mapping (instance admins act as its owners while it
    /// has none).
    pub managed: bool,
}

pub fn insert(conn: &mut DbConnection, row: &OrganisationRow) -> QueryResult<()> {
    diesel::insert_into(organisations::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn name_taken(conn: &mut DbConnection, name_key: &str, except: Option<DbId>) -> QueryResult<bool> {
    let mut query = organisations::table
        .filter(organisations::name_key.eq(name_key))
        .select(organisations::id)
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(organisations::id.ne(except));
    }
    Ok(query.first::<DbId>(conn).optional()?.is_some())
}

pub fn find(conn: &mut DbConnection, id: DbId) -> QueryResult<Option<OrganisationRow>> {
    organisations::table
        .find(id)
        .select(OrganisationRow::as_select())
        .first(conn)
        .optional()
}

/// The organisation with the caller's membership (role, sharing), when the caller belongs to it.
pub fn find_for_member(
    conn: &mut DbConnection,
    id: DbId,
    user_id: DbId,
) -> QueryResult<Option<(OrganisationRow, OrganisationRole, bool)>> {
    organisations::table
        .inner_join(memberships::table)
        .filter(organisations::id.eq(id))
        .filter(memberships::user_id.eq(user_id))
        .select((
            OrganisationRow::as_select(),
            memberships::role,
            memberships::share_personal_configurations,
        ))
        .first(conn)
        .optional()
}

/// The caller's organisations with their role, by name.
pub fn list_for_member(
    conn: &mut DbConnection,
    user_id: DbId,
) -> QueryResult<Vec<(OrganisationRow, OrganisationRole)>> {
    organisations::table
        .inner_join(memberships::table)
        .filter(memberships::user_id.eq(user_id))
        .order((organisations::name_key, organisations::id))
        .select((OrganisationRow::as_select(), memberships::role))
        .load(conn)
}

/// Every organisation, by name (for the instance's admins).
pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<OrganisationRow>> {
    organisations::table
        .order((organisations::name_key, organisations::id))
        .select(OrganisationRow::as_select())
        .load(conn)
}

/// Every membership of every organisation with the member's e-mail (for the instance's admins).
pub fn all_members(conn: &mut DbConnection) -> QueryResult<Vec<(DbId, OrganisationRole, String)>> {
    memberships::table
        .inner_join(users::table)
        .order((memberships::organisation_id, users::email_key))
        .select((memberships::organisation_id, memberships::role, users::email))
        .load(conn)
}

/// Serialises every change to one organisation's memberships on PostgreSQL by locking its row for
/// the rest of the transaction (SQLite's `IMMEDIATE` transactions already serialise all
/// writers): the last-owner rule is judged on the owners as they are once locked. Returns
/// whether the organisation exists.
pub fn lock(conn: &mut DbConnection, id: DbId) -> QueryResult<bool> {
    let query = organisations::table.find(id).select(organisations::id);
    let found = match conn {
        DbConnection::Postgres(pg) => query.for_update().first::<DbId>(pg).optional()?,
        DbConnection::Sqlite(_) => query.first::<DbId>(conn).optional()?,
    };
    Ok(found.is_some())
}

pub fn rename(conn: &mut DbConnection, id: DbId, name: &str, name_key: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(organisations::table.find(id))
        .set((
            organisations::name.eq(name),
            organisations::name_key.eq(name_key),
            organisations::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn set_policy(
    conn: &mut DbConnection,
    id: DbId,
    allow_personal_configurations: bool,
    default_configuration_id: Option<DbId>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(organisations::table.find(id))
        .set((
            organisations::allow_personal_configurations.eq(allow_personal_configurations),
            organisations::default_configuration_id.eq(default_configuration_id),
            organisations::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Deletes an organisation; its memberships and invitations go with it (foreign keys cascade).
pub fn delete(conn: &mut DbConnection, id: DbId) -> QueryResult<usize> {
    diesel::delete(organisations::table.find(id)).execute(conn)
}

/// The organisation with this case-folded name.
pub fn find_by_name_key(conn: &mut DbConnection, name_key: &str) -> QueryResult<Option<OrganisationRow>> {
    organisations::table
        .filter(organisations::name_key.eq(name_key))
        .select(OrganisationRow::as_select())
        .first(conn)
        .optional()
}
