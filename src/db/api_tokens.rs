//! The `api_tokens` table: personal tokens, stored only as SHA-256 hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_tokens, users};
use super::sql_types::{MaybeStamp, Stamp};
use super::{DbConnection, DbId, on_backend};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: DbId,
    pub user_id: DbId,
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

#[derive(Debug, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenInsert<'a> {
    pub id: DbId,
    pub user_id: DbId,
    pub name: &'a str,
    pub scopes: &'a str,
    pub token_hash: &'a [u8],
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, token: &TokenInsert<'_>) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table)
        .values(token)
        .execute(conn)
        .map(|_| ())
}

/// What authenticating a bearer token reads: the token's state and its owner's (not the whole
/// user row: its password hash and e-mail address have no business on every API request).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct TokenCredential {
    pub id: DbId,
    pub user_id: DbId,
    pub scopes: String,
    pub token_hash: Vec<u8>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub expires_at: Option<NaiveDateTime>,
    pub is_revoked: bool,
    #[diesel(select_expression = users::role)]
    pub owner_role: Role,
    #[diesel(select_expression = users::is_disabled)]
    pub owner_is_disabled: bool,
    /// See [`super::users::listing_version`].
    #[diesel(select_expression = users::listing_version)]
    pub owner_listing_version: i64,
}

/// The token with this hash and its owner's state, in one round trip. Revocation, expiry and a
/// disabled owner are judged by the caller, so that every instance sees them at once (no cache).
pub fn find_credential_by_hash(conn: &mut DbConnection, token_hash: &[u8]) -> QueryResult<Option<TokenCredential>> {
    // At most one row: token_hash is unique (and `first` would bind a LIMIT).
    on_backend!(conn, |backend| {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::token_hash.eq(token_hash))
            .select(TokenCredential::as_select())
            .get_results(backend)
    })
    .map(|rows| rows.into_iter().next())
}

/// Records a use, at most once a minute per token: a read-heavy API must not write on every call.
pub fn touch_last_used(
    conn: &mut DbConnection,
    id: DbId,
    now: NaiveDateTime,
    not_since: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        api_tokens::table.filter(api_tokens::id.eq(id)).filter(
            api_tokens::last_used_at
                .is_null()
                .or(api_tokens::last_used_at.lt(not_since)),
        ),
    )
    .set(api_tokens::last_used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

pub fn list_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order((api_tokens::created_at.desc(), api_tokens::id))
        .select(TokenRow::as_select())
        .load(conn)
}

/// Revokes one of the user's tokens; returns whether it existed.
pub fn revoke(conn: &mut DbConnection, user_id: DbId, id: DbId) -> QueryResult<bool> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::user_id.eq(user_id)),
    )
    .set(api_tokens::is_revoked.eq(true))
    .execute(conn)
    .map(|rows| rows > 0)
}

/// How many of the user's tokens still work or could (neither revoked nor expired).
pub fn count_live_for_user(conn: &mut DbConnection, user_id: DbId, now: NaiveDateTime) -> QueryResult<i64> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::is_revoked.eq(false))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .count()
        .get_result(conn)
}

/// Revokes every token of the user that is not revoked yet; returns how many. Revocation is
/// permanent: enabling the user again brings none back.
pub fn revoke_all_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<usize> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::is_revoked.eq(false)),
    )
    .set(api_tokens::is_revoked.eq(true))
    .execute(conn)
}

/// A token's name (for an organisation's audit of a member's reveal).
pub fn name_of(conn: &mut DbConnection, id: DbId) -> QueryResult<Option<String>> {
    api_tokens::table
        .find(id)
        .select(api_tokens::name)
        .first(conn)
        .optional()
}
