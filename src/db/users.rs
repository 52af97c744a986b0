//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::sql_types::Stamp;
use super::{DbConnection, DbId, on_backend};
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: DbId,
    pub email: String,
    pub email_key: String,
    pub password_hash: String,
    pub role: Role,
    pub is_disabled: bool,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// The identity provider's `sub`, once single sign-on is linked.
    pub oidc_subject: Option<String>,
}

impl UserRow {
    /// An account made by single sign-on has no password (an empty hash) until one is set.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct UserInsert<'a> {
    pub id: DbId,
    pub email: &'a str,
    pub email_key: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub is_disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, user: &UserInsert<'_>) -> QueryResult<()> {
    diesel::insert_into(users::table).values(user).execute(conn).map(|_| ())
}

/// The version of everything the user's configuration listing shows: triggers on the tables it
/// reads (`llm_configurations`, `connections`) raise it in the writing transaction, so a listing
/// read after seeing version `v` is at least as new as `v`. `None`: no such user.
pub fn listing_version(conn: &mut DbConnection, id: DbId) -> QueryResult<Option<i64>> {
    on_backend!(conn, |backend| {
        users::table
            .filter(users::id.eq(id))
            .select(users::listing_version)
            .get_results(backend)
    })
    .map(|versions| versions.into_iter().next())
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn find_by_email_key(conn: &mut DbConnection, email_key: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email_key.eq(email_key))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConnection, id: DbId) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// Serialises every change to one user's configurations on PostgreSQL by locking the owner's
/// row for the rest of the transaction; SQLite's `IMMEDIATE` transactions already serialise all
/// writers. Returns whether the user exists.
pub fn lock_owner(conn: &mut DbConnection, id: DbId) -> QueryResult<bool> {
    match conn {
        DbConnection::Postgres(pg) => users::table
            .find(id)
            .select(users::id)
            .for_update()
            .first::<DbId>(pg)
            .optional()
            .map(|found| found.is_some()),
        DbConnection::Sqlite(_) => users::table
            .find(id)
            .select(users::id)
            .first::<DbId>(conn)
            .optional()
            .map(|found| found.is_some()),
    }
}

pub fn update_password_hash(
    conn: &mut DbConnection,
    id: DbId,
    password_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(password_hash), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<UserRow>> {
    users::table
        .order((users::email_key, users::id))
        .select(UserRow::as_select())
        .load(conn)
}

/// The admins who can still log in, their rows locked until the transaction ends on PostgreSQL
/// (SQLite's `IMMEDIATE` transactions already serialise every writer): of two concurrent
/// demotions, disablings or deletions of the last two admins, the second waits for the first and
/// then sees it.
pub fn lock_active_admins(conn: &mut DbConnection) -> QueryResult<Vec<DbId>> {
    let active_admins = users::table
        .filter(users::role.eq(Role::Admin))
        .filter(users::is_disabled.eq(false))
        .select(users::id);
    match conn {
        DbConnection::Postgres(pg) => active_admins.for_update().load(pg),
        DbConnection::Sqlite(_) => active_admins.load(conn),
    }
}

pub fn set_disabled(conn: &mut DbConnection, id: DbId, disabled: bool, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::is_disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(conn)
}

pub fn set_role(conn: &mut DbConnection, id: DbId, role: Role, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::role.eq(role), users::updated_at.eq(now)))
        .execute(conn)
}

/// Deletes a user; their configurations, overrides, tokens, sessions and audit entries go with
/// them (foreign keys cascade).
pub fn delete(conn: &mut DbConnection, id: DbId) -> QueryResult<usize> {
    diesel::delete(users::table.find(id)).execute(conn)
}

/// The account linked to the identity provider's `sub`.
pub fn find_by_oidc_subject(conn: &mut DbConnection, subject: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::oidc_subject.eq(subject))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// Links (`Some`) or unlinks (`None`) single sign-on.
pub fn set_oidc_subject(
    conn: &mut DbConnection,
    id: DbId,
    subject: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::oidc_subject.eq(subject), users::updated_at.eq(now)))
        .execute(conn)
}
