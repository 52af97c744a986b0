//! The `organisation_reveals` table: an organisation's audit of the keys revealed through its
//! service tokens, and of its configurations revealed by a member's own token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{organisation_reveals, users};
use super::sql_types::Stamp;
use super::{DbConnection, DbId, on_backend};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = organisation_reveals)]
pub struct OrganisationRevealRow {
    pub id: DbId,
    pub organisation_id: DbId,
    pub token_id: DbId,
    /// The token's name when it revealed the key.
    pub token_name: String,
    /// `None` once the member's account is deleted.
    pub member_id: Option<DbId>,
    /// `None` for the instance fallback.
    pub configuration_id: Option<DbId>,
    pub configuration_name: String,
    #[diesel(deserialize_as = Stamp)]
    pub revealed_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &OrganisationRevealRow) -> QueryResult<()> {
    diesel::insert_into(organisation_reveals::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Many lines in one statement (resolve's group commits).
pub fn insert_many(conn: &mut DbConnection, rows: &[OrganisationRevealRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    on_backend!(conn, |backend| diesel::insert_into(organisation_reveals::table)
        .values(rows)
        .execute(backend)
        .map(|_| ()))
}

/// The organisation's latest lines, newest first, each with its member's e-mail while the
/// member's account exists.
pub fn recent_for_organisation(
    conn: &mut DbConnection,
    organisation_id: DbId,
    limit: i64,
) -> QueryResult<Vec<(OrganisationRevealRow, Option<String>)>> {
    organisation_reveals::table
        .left_join(users::table)
        .filter(organisation_reveals::organisation_id.eq(organisation_id))
        .order((
            organisation_reveals::revealed_at.desc(),
            organisation_reveals::id.desc(),
        ))
        .limit(limit)
        .select((OrganisationRevealRow::as_select(), users::email.nullable()))
        .load(conn)
}

/// Every row, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<OrganisationRevealRow>> {
    organisation_reveals::table
        .order(organisation_reveals::id)
        .select(OrganisationRevealRow::as_select())
        .load(conn)
}
