//! The `provider_test_runs` table: when each user ran a provider test, for rate limiting.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::provider_test_runs as runs;
use super::{DbConnection, DbId};

/// How many tests the user started since `since`, and the oldest of them.
pub fn count_since(
    conn: &mut DbConnection,
    user_id: DbId,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let recent = runs::table
        .filter(runs::user_id.eq(user_id))
        .filter(runs::started_at.gt(since));
    let count = recent.count().get_result(conn)?;
    let oldest = recent.select(diesel::dsl::min(runs::started_at)).first(conn)?;
    Ok((count, oldest))
}

pub fn record(conn: &mut DbConnection, user_id: DbId, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(runs::table)
        .values((
            runs::id.eq(DbId(uuid::Uuid::now_v7())),
            runs::user_id.eq(user_id),
            runs::started_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn purge_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(runs::table.filter(runs::started_at.le(before))).execute(conn)
}
