//! Embedded migrations, one folder per backend, run on the backend in hand.

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbConnection;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// An arbitrary constant naming Lanyard's migration lock among PostgreSQL advisory locks.
const MIGRATION_LOCK_ID: i64 = 0x6c61_6e79_6172_6401;

/// Applies every pending migration and returns how many ran. On PostgreSQL the run holds an
/// advisory lock, so instances starting together on one database take turns.
pub fn run_pending_migrations(conn: &mut DbConnection) -> Result<usize, String> {
    match conn {
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|applied| applied.len())
            .map_err(|error| error.to_string()),
        DbConnection::Postgres(pg) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
                .execute(pg)
                .map_err(|error| error.to_string())?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|applied| applied.len())
                .map_err(|error| error.to_string());
            let unlocked = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
                .execute(pg)
                .map_err(|error| error.to_string());
            let applied = result?;
            unlocked?;
            Ok(applied)
        }
    }
}

/// Whether the vault's tables exist yet (a fresh database has none): lets the master-key check
/// run read-only before the first migration.
pub fn vault_tables_exist(conn: &mut DbConnection) -> QueryResult<bool> {
    table_exists(conn, "master_key_canaries")
}

/// Whether a table exists, asked read-only.
pub fn table_exists(conn: &mut DbConnection, table: &'static str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    // Backend-specific catalogue queries: the only way to ask "does this table exist" read-only.
    let query = match conn {
        DbConnection::Sqlite(_) => "SELECT COUNT(*) AS count FROM sqlite_master WHERE type = 'table' AND name = ?",
        DbConnection::Postgres(_) => {
            "SELECT COUNT(*) AS count FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let row: Count = diesel::sql_query(query)
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result(conn)?;
    Ok(row.count > 0)
}
