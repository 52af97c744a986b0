//! The `invitations` table: e-mails invited to an organisation, waiting for the person with that
//! e-mail to accept or decline. Looked up by the e-mail's case-folded key, so an invitation
//! waits for an account that does not exist yet.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{invitations, organisations};
use super::sql_types::Stamp;
use super::{DbConnection, DbId};
use crate::domain::OrganisationRole;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    pub id: DbId,
    pub organisation_id: DbId,
    pub email: String,
    pub email_key: String,
    pub role: OrganisationRole,
    pub invited_by: Option<DbId>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &InvitationRow) -> QueryResult<()> {
    diesel::insert_into(invitations::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn find(conn: &mut DbConnection, organisation_id: DbId, email_key: &str) -> QueryResult<Option<InvitationRow>> {
    invitations::table
        .filter(invitations::organisation_id.eq(organisation_id))
        .filter(invitations::email_key.eq(email_key))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()
}

/// Changes the role an open invitation offers (inviting the same e-mail again).
pub fn set_role(conn: &mut DbConnection, id: DbId, role: OrganisationRole) -> QueryResult<usize> {
    diesel::update(invitations::table.find(id))
        .set(invitations::role.eq(role))
        .execute(conn)
}

/// The organisation's open invitations, by e-mail.
pub fn list_for_organisation(conn: &mut DbConnection, organisation_id: DbId) -> QueryResult<Vec<InvitationRow>> {
    invitations::table
        .filter(invitations::organisation_id.eq(organisation_id))
        .order((invitations::email_key, invitations::id))
        .select(InvitationRow::as_select())
        .load(conn)
}

/// The invitations waiting for this e-mail, with the organisation's name and creation time.
pub fn list_for_email(
    conn: &mut DbConnection,
    email_key: &str,
) -> QueryResult<Vec<(InvitationRow, String, NaiveDateTime)>> {
    invitations::table
        .inner_join(organisations::table)
        .filter(invitations::email_key.eq(email_key))
        .order((organisations::name_key, organisations::id))
        .select((
            InvitationRow::as_select(),
            organisations::name,
            organisations::created_at,
        ))
        .load(conn)
}

pub fn delete(conn: &mut DbConnection, id: DbId) -> QueryResult<usize> {
    diesel::delete(invitations::table.find(id)).execute(conn)
}
