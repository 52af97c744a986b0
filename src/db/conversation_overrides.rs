//! The `conversation_overrides` table: conversations pinned to a configuration.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::conversation_overrides as overrides;
use super::sql_types::Stamp;
use super::{DbConnection, DbId};
use crate::domain::ConversationOverride;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = overrides)]
pub struct OverrideRow {
    pub user_id: DbId,
    pub conversation_id: String,
    pub configuration_id: DbId,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

impl From<OverrideRow> for ConversationOverride {
    fn from(row: OverrideRow) -> Self {
        ConversationOverride {
            conversation_id: row.conversation_id,
            configuration_id: row.configuration_id.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub fn list_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<Vec<OverrideRow>> {
    overrides::table
        .filter(overrides::user_id.eq(user_id))
        .order((overrides::updated_at.desc(), overrides::conversation_id))
        .select(OverrideRow::as_select())
        .load(conn)
}

pub fn find(conn: &mut DbConnection, user_id: DbId, conversation_id: &str) -> QueryResult<Option<OverrideRow>> {
    overrides::table
        .filter(overrides::user_id.eq(user_id))
        .filter(overrides::conversation_id.eq(conversation_id))
        .select(OverrideRow::as_select())
        .first(conn)
        .optional()
}

/// Sets the override (update, then insert when there was none); call in a write transaction.
pub fn upsert(
    conn: &mut DbConnection,
    user_id: DbId,
    conversation_id: &str,
    configuration_id: DbId,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let updated = diesel::update(
        overrides::table
            .filter(overrides::user_id.eq(user_id))
            .filter(overrides::conversation_id.eq(conversation_id)),
    )
    .set((
        overrides::configuration_id.eq(configuration_id),
        overrides::updated_at.eq(now),
    ))
    .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(overrides::table)
            .values((
                overrides::user_id.eq(user_id),
                overrides::conversation_id.eq(conversation_id),
                overrides::configuration_id.eq(configuration_id),
                overrides::created_at.eq(now),
                overrides::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete(conn: &mut DbConnection, user_id: DbId, conversation_id: &str) -> QueryResult<usize> {
    diesel::delete(
        overrides::table
            .filter(overrides::user_id.eq(user_id))
            .filter(overrides::conversation_id.eq(conversation_id)),
    )
    .execute(conn)
}

/// Removes the overrides that point at a configuration (the foreign key does it too; this keeps
/// SQLite databases opened without `foreign_keys` honest).
pub fn delete_for_configuration(conn: &mut DbConnection, configuration_id: DbId) -> QueryResult<usize> {
    diesel::delete(overrides::table.filter(overrides::configuration_id.eq(configuration_id))).execute(conn)
}

/// How many conversations the user has pinned.
pub fn count_for_user(conn: &mut DbConnection, user_id: DbId) -> QueryResult<i64> {
    overrides::table
        .filter(overrides::user_id.eq(user_id))
        .count()
        .get_result(conn)
}
