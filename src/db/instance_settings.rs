//! The `instance_settings` table: small instance-wide values by name.

use diesel::prelude::*;

use super::schema::instance_settings;
use super::{DbConnection, on_backend};

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

/// Sets `name` to `new` only if it still holds `old`; returns whether it did (a value re-sealed
/// by one instance is not overwritten by another's stale copy).
pub fn replace(conn: &mut DbConnection, name: &str, old: &str, new: &str) -> QueryResult<bool> {
    diesel::update(
        instance_settings::table
            .filter(instance_settings::name.eq(name))
            .filter(instance_settings::value.eq(old)),
    )
    .set((
        instance_settings::value.eq(new),
        instance_settings::updated_at.eq(super::now()),
    ))
    .execute(conn)
    .map(|rows| rows == 1)
}

/// Inserts `name` unless it exists; returns whether this call inserted it (two instances
/// starting at once: one value wins, both read it).
pub fn insert_if_absent(conn: &mut DbConnection, name: &str, value: &str) -> QueryResult<bool> {
    let inserted = on_backend!(conn, |backend| {
        diesel::insert_into(instance_settings::table)
            .values((
                instance_settings::name.eq(name),
                instance_settings::value.eq(value),
                instance_settings::updated_at.eq(super::now()),
            ))
            .on_conflict_do_nothing()
            .execute(backend)
    })?;
    Ok(inserted == 1)
}
