//! The `instance_settings` table: small instance-wide values by name.

use diesel::prelude::*;

use super::DbConnection;
use super::schema::instance_settings;

pub fn get(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    instance_settings::table
        .find(name)
        .select(instance_settings::value)
        .first(conn)
        .optional()
}

/// Sets a value; call inside a write transaction (update, then insert when there was none).
pub fn set(conn: &mut DbConnection, name: &str, value: &str) -> QueryResult<()> {
    let now = super::now();
    let updated = diesel::update(instance_settings::table.find(name))
        .set((
            instance_settings::value.eq(value),
            instance_settings::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(instance_settings::table)
            .values((
                instance_settings::name.eq(name),
                instance_settings::value.eq(value),
                instance_settings::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes `name` only if it still holds `value`; returns whether it did. A one-time value
/// (the setup token) is consumed this way by exactly one request.
pub fn take(conn: &mut DbConnection, name: &str, value: &str) -> QueryResult<bool> {
    diesel::delete(
        instance_settings::table
            .filter(instance_settings::name.eq(name))
            .filter(instance_settings::value.eq(value)),
    )
    .execute(conn)
    .map(|rows| rows == 1)
}
