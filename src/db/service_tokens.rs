//! The `service_tokens` table: an organisation's tokens, stored only as SHA-256 hashes. Every
//! query an admin makes is scoped by the organisation inside the query.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::service_tokens;
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId, on_backend};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_tokens)]
pub struct ServiceTokenRow {
    pub id: DbId,
    pub organisation_id: DbId,
    pub created_by: Option<DbId>,
    pub name: String,
    pub scopes: String,
    pub token_hash: Vec<u8>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub expires_at: Option<NaiveDateTime>,
    pub is_revoked: bool,
}

pub fn insert(conn: &mut DbConnection, row: &ServiceTokenRow) -> QueryResult<()> {
    diesel::insert_into(service_tokens::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The token with this hash, if any (revocation and expiry are judged by the caller). Read
/// only when no personal token has the hash, so the personal tokens' path stays one query.
pub fn find_by_hash(conn: &mut DbConnection, token_hash: &[u8]) -> QueryResult<Option<ServiceTokenRow>> {
    // At most one row: token_hash is unique (and `first` would bind a LIMIT).
    on_backend!(conn, |backend| {
        service_tokens::table
            .filter(service_tokens::token_hash.eq(token_hash))
            .select(ServiceTokenRow::as_select())
            .get_results(backend)
    })
    .map(|rows| rows.into_iter().next())
}

/// Records a use, at most once a minute per token (see `api_tokens::touch_last_used`).
pub fn touch_last_used(
    conn: &mut DbConnection,
    id: DbId,
    now: NaiveDateTime,
    not_since: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        service_tokens::table.filter(service_tokens::id.eq(id)).filter(
            service_tokens::last_used_at
                .is_null()
                .or(service_tokens::last_used_at.lt(not_since)),
        ),
    )
    .set(service_tokens::last_used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

/// The organisation's tokens, newest first.
pub fn list_for_organisation(conn: &mut DbConnection, organisation_id: DbId) -> QueryResult<Vec<ServiceTokenRow>> {
    service_tokens::table
        .filter(service_tokens::organisation_id.eq(organisation_id))
        .order((service_tokens::created_at.desc(), service_tokens::id))
        .select(ServiceTokenRow::as_select())
        .load(conn)
}

/// Revokes one of the organisation's tokens; returns whether it existed.
pub fn revoke(conn: &mut DbConnection, organisation_id: DbId, id: DbId) -> QueryResult<bool> {
    diesel::update(
        service_tokens::table
            .filter(service_tokens::id.eq(id))
            .filter(service_tokens::organisation_id.eq(organisation_id)),
    )
    .set(service_tokens::is_revoked.eq(true))
    .execute(conn)
    .map(|rows| rows > 0)
}

/// How many of the organisation's tokens still work or could (neither revoked nor expired).
pub fn count_live_for_organisation(
    conn: &mut DbConnection,
    organisation_id: DbId,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    service_tokens::table
        .filter(service_tokens::organisation_id.eq(organisation_id))
        .filter(service_tokens::is_revoked.eq(false))
        .filter(
            service_tokens::expires_at
                .is_null()
                .or(service_tokens::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
}

/// Every row, for copying a database.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<ServiceTokenRow>> {
    service_tokens::table
        .order(service_tokens::id)
        .select(ServiceTokenRow::as_select())
        .load(conn)
}
