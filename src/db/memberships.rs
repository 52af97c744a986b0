//! The `memberships` table: who belongs to which organisation, in which role.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{memberships, organisations, users};
use super::sql_types::Stamp;
use super::{DbConnection, DbId};
use crate::domain::OrganisationRole;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships)]
pub struct MembershipRow {
    pub organisation_id: DbId,
    pub user_id: DbId,
    pub role: OrganisationRole,
    pub share_personal_configurations: bool,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Made by the single sign-on group mapping, which takes away only what it made.
    pub from_single_sign_on: bool,
}

pub fn insert(conn: &mut DbConnection, row: &MembershipRow) -> QueryResult<()> {
    diesel::insert_into(memberships::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, organisation_id: DbId, user_id: DbId) -> QueryResult<Option<MembershipRow>> {
    memberships::table
        .find((organisation_id, user_id))
        .select(MembershipRow::as_select())
        .first(conn)
        .optional()
}

/// The organisation's members with their e-mails, by e-mail.
pub fn list_with_emails(
    conn: &mut DbConnection,
    organisation_id: DbId,
) -> QueryResult<Vec<(DbId, String, OrganisationRole)>> {
    memberships::table
        .inner_join(users::table)
        .filter(memberships::organisation_id.eq(organisation_id))
        .order((users::email_key, users::id))
        .select((users::id, users::email, memberships::role))
        .load(conn)
}

/// The owners of an organisation who can still sign in. Call after `organisations::lock`.
pub fn active_owners(conn: &mut DbConnection, organisation_id: DbId) -> QueryResult<Vec<DbId>> {
    memberships::table
        .inner_join(users::table)
        .filter(memberships::organisation_id.eq(organisation_id))
        .filter(memberships::role.eq(OrganisationRole::Owner))
        .filter(users::is_disabled.eq(false))
        .select(memberships::user_id)
        .load(conn)
}

/// The organisations the user belongs to, as (id, name), by id: the order in which a
/// transaction that concerns all of them locks them.
pub fn organisations_of(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<(DbId, String)>> {
    memberships::table
        .inner_join(organisations::table)
        .filter(memberships::user_id.eq(user_id))
        .order(organisations::id)
        .select((organisations::id, organisations::name))
        .load(conn)
}

pub fn set_role(
    conn: &mut DbConnection,
    organisation_id: DbId,
    user_id: DbId,
    role: OrganisationRole,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(memberships::table.find((organisation_id, user_id)))
        .set((memberships::role.eq(role), memberships::updated_at.eq(now)))
        .execute(conn)
}

pub fn set_sharing(
    conn: &mut DbConnection,
    organisation_id: DbId,
    user_id: DbId,
    share: bool,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(memberships::table.find((organisation_id, user_id)))
        .set((
            memberships::share_personal_configurations.eq(share),
            memberships::updated_at.eq(now),
        ))
        .execute(conn)
}

pub fn delete(conn: &mut DbConnection, organisation_id: DbId, user_id: DbId) -> QueryResult<usize> {
    diesel::delete(memberships::table.find((organisation_id, user_id))).execute(conn)
}

/// The member of the organisation named by id or by case-folded e-mail, whose account is
/// enabled: their id and whether they share their personal configurations with it. Anyone else
/// (unknown, invited only, disabled, outside) is `None`, one answer.
pub fn find_active_member(
    conn: &mut DbConnection,
    organisation_id: DbId,
    user_id: Option<DbId>,
    email_key: Option<&str>,
) -> QueryResult<Option<(DbId, bool)>> {
    let mut query = memberships::table
        .inner_join(users::table)
        .filter(memberships::organisation_id.eq(organisation_id))
        .filter(users::is_disabled.eq(false))
        .select((users::id, memberships::share_personal_configurations))
        .into_boxed();
    query = match (user_id, email_key) {
        (Some(id), _) => query.filter(users::id.eq(id)),
        (None, Some(key)) => query.filter(users::email_key.eq(key.to_owned())),
        (None, None) => return Ok(None),
    };
    query.first(conn).optional()
}

/// The organisations where the group mapping made the user a member.
pub fn made_by_single_sign_on(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<DbId>> {
    memberships::table
        .filter(memberships::user_id.eq(user_id))
        .filter(memberships::from_single_sign_on.eq(true))
        .select(memberships::organisation_id)
        .load(conn)
}
