//! The `webhooks` table: where a user or an organisation wants to hear about transitions, with
//! the sealed signing secret. Every query is scoped by the owner inside the query: a user's own
//! webhooks, or an organisation's for its admins and owners.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::memberships as ms;
use super::schema::webhooks as wh;
use super::sql_types::Stamp;
use super::{DbConnection, DbId};
use crate::domain::{OrganisationRole, Owner};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = wh)]
pub struct WebhookRow {
    pub id: DbId,
    pub owner_user_id: Option<DbId>,
    pub owner_organisation_id: Option<DbId>,
    pub url: String,
    pub events: String,
    pub description: String,
    pub is_active: bool,
    pub secret_encrypted: Vec<u8>,
    pub key_id: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

pub(crate) type OwnedBy = diesel::dsl::Or<
    diesel::dsl::Eq<wh::owner_user_id, Option<DbId>>,
    diesel::dsl::Eq<wh::owner_organisation_id, Option<DbId>>,
>;

/// The owner's webhooks (exactly one of the two columns is set; NULL equals nothing).
pub(crate) fn owned_by(owner: Owner) -> OwnedBy {
    wh::owner_user_id
        .eq(owner.user().map(DbId))
        .or(wh::owner_organisation_id.eq(owner.organisation().map(DbId)))
}

/// A partial update: `None` leaves a column alone.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = wh)]
pub struct WebhookChanges<'a> {
    pub url: Option<&'a str>,
    pub events: Option<&'a str>,
    pub description: Option<&'a str>,
    pub is_active: Option<bool>,
    pub secret_encrypted: Option<&'a [u8]>,
    pub key_id: Option<&'a str>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &WebhookRow) -> QueryResult<()> {
    diesel::insert_into(wh::table).values(row).execute(conn).map(|_| ())
}

/// The owner's webhooks, oldest first.
pub fn list(conn: &mut DbConnection, owner: Owner) -> QueryResult<Vec<WebhookRow>> {
    wh::table
        .filter(owned_by(owner))
        .order((wh::created_at, wh::id))
        .select(WebhookRow::as_select())
        .load(conn)
}

/// How many webhooks the owner has.
pub fn count(conn: &mut DbConnection, owner: Owner) -> QueryResult<i64> {
    wh::table.filter(owned_by(owner)).count().get_result(conn)
}

/// The webhook `id` if `user` may manage it: their own, or one of an organisation in which they
/// are an admin or an owner. Anyone else's is the same as none.
pub fn find_manageable(conn: &mut DbConnection, user: DbId, id: DbId) -> QueryResult<Option<WebhookRow>> {
    let administered = ms::table
        .filter(ms::user_id.eq(user))
        .filter(
            ms::role
                .eq(OrganisationRole::Owner)
                .or(ms::role.eq(OrganisationRole::Admin)),
        )
        .select(ms::organisation_id.nullable());
    wh::table
        .filter(wh::id.eq(id))
        .filter(
            wh::owner_user_id
                .eq(user)
                .or(wh::owner_organisation_id.eq_any(administered)),
        )
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// The owner's webhook `id`.
pub fn find(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<Option<WebhookRow>> {
    wh::table
        .filter(wh::id.eq(id))
        .filter(owned_by(owner))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

pub fn update(conn: &mut DbConnection, owner: Owner, id: DbId, changes: &WebhookChanges<'_>) -> QueryResult<usize> {
    diesel::update(wh::table.filter(wh::id.eq(id)).filter(owned_by(owner)))
        .set(changes)
        .execute(conn)
}

/// Deletes the owner's webhook (its deliveries and their log go with it).
pub fn delete(conn: &mut DbConnection, owner: Owner, id: DbId) -> QueryResult<bool> {
    let deleted = diesel::delete(wh::table.filter(wh::id.eq(id)).filter(owned_by(owner))).execute(conn)?;
    Ok(deleted > 0)
}

/// The owner's active webhooks: those an event about the owner's things goes to.
pub fn active(conn: &mut DbConnection, owner: Owner) -> QueryResult<Vec<WebhookRow>> {
    wh::table
        .filter(wh::is_active.eq(true))
        .filter(owned_by(owner))
        .order(wh::id)
        .select(WebhookRow::as_select())
        .load(conn)
}

/// A webhook by id alone, for the delivery worker that holds a claim on one of its deliveries
/// (the claim, not a caller, is what entitles it).
pub fn find_for_delivery(conn: &mut DbConnection, id: DbId) -> QueryResult<Option<WebhookRow>> {
    wh::table
        .filter(wh::id.eq(id))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()
}

/// Every webhook, for copying a database and re-sealing secrets.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<WebhookRow>> {
    wh::table.order(wh::id).select(WebhookRow::as_select()).load(conn)
}

/// Replaces a sealed secret only if it is still the one that was read (compare-and-swap).
pub fn replace_sealed_secret(
    conn: &mut DbConnection,
    id: DbId,
    expected: &[u8],
    sealed: &[u8],
    key_id: &str,
) -> QueryResult<bool> {
    diesel::update(
        wh::table
            .filter(wh::id.eq(id))
            .filter(wh::secret_encrypted.eq(expected)),
    )
    .set((wh::secret_encrypted.eq(sealed), wh::key_id.eq(key_id)))
    .execute(conn)
    .map(|rows| rows == 1)
}
