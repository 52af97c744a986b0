//! The two migration trees (SQLite and PostgreSQL) build equivalent schemas, and the database's
//! own constraints hold.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use lanyard::db::{self, ConnectionManager, DbConnection, DbId, run_pending_migrations, schema};
use r2d2::ManageConnection;
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase};
use crate::on_both_backends;

on_both_backends!(blocking database:
    the_one_default_per_user_is_enforced_by_the_database,
);

/// A schema as both catalogues can describe it, with types mapped to one vocabulary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    tables: BTreeSet<String>,
    columns: BTreeSet<Column>,
    /// Indexes created by name (`CREATE INDEX`), not those behind a key or UNIQUE constraint.
    indexes: BTreeSet<Index>,
    /// UNIQUE constraints by table and columns (SQLite does not keep their names).
    unique_constraints: BTreeSet<(String, String)>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// CHECK constraints per table (their expressions are spelled differently per backend).
    checks: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    table: String,
    name: String,
    kind: &'static str,
    not_null: bool,
    primary_key: bool,
    default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    table: String,
    name: String,
    columns: String,
    unique: bool,
    partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    table: String,
    column: String,
    references: String,
    on_delete: String,
    on_update: String,
}

fn sqlite_kind(declared: &str) -> &'static str {
    match declared.to_ascii_uppercase().as_str() {
        "TEXT" => "text",
        "BLOB" => "bytes",
        "BOOLEAN" => "boolean",
        "BIGINT" => "bigint",
        "TIMESTAMP" => "timestamp",
        other => panic!("SQLite column type {other} has no PostgreSQL counterpart in this test"),
    }
}

fn postgres_kind(data_type: &str) -> &'static str {
    match data_type {
        // Ids are native uuid on PostgreSQL and hyphenated text on SQLite.
        "text" | "uuid" => "text",
        "bytea" => "bytes",
        "boolean" => "boolean",
        "bigint" => "bigint",
        "timestamp without time zone" => "timestamp",
        other => panic!("PostgreSQL column type {other} has no SQLite counterpart in this test"),
    }
}

/// `'untested'::text` and `'untested'`, `false` and `0`, spelled one way.
fn normalise_default(raw: Option<String>) -> Option<String> {
    raw.map(|value| {
        let value = value.trim().to_ascii_lowercase();
        let value = match value.find("::") {
            Some(cast) if value.starts_with('\'') => value[..cast].to_owned(),
            _ => value,
        };
        match value.as_str() {
            "false" => "0".to_owned(),
            "true" => "1".to_owned(),
            _ => value,
        }
    })
}

/// Migrates a fresh database through the application's own connection and migration code.
fn migrated(database: &TestDatabase) -> DbConnection {
    let mut conn = ConnectionManager::new(database.url())
        .connect()
        .expect("the test connects to its database");
    run_pending_migrations(&mut conn).expect("migrations run");
    conn
}

fn read_schema(conn: &mut DbConnection) -> Schema {
    match conn {
        DbConnection::Sqlite(sqlite) => sqlite_schema(sqlite),
        DbConnection::Postgres(pg) => postgres_schema(pg),
    }
}

// --- SQLite: sqlite_master and the pragma table functions -------------------------------------

const SQLITE_TABLES: &str = "FROM sqlite_master AS m \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'";

#[derive(QueryableByName)]
struct SqliteTable {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    declared_type: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
    #[diesel(sql_type = Nullable<Text>)]
    default_value: Option<String>,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    is_unique: i32,
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Integer)]
    partial: i32,
}

#[derive(QueryableByName)]
struct SqliteIndexColumn {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A foreign key as both catalogues' queries name its columns. SQLite leaves `to_column` NULL
/// when the key references the primary key implicitly.
#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    from_column: String,
    #[diesel(sql_type = Text)]
    to_table: String,
    #[diesel(sql_type = Nullable<Text>)]
    to_column: Option<String>,
    #[diesel(sql_type = Text)]
    on_delete: String,
    #[diesel(sql_type = Text)]
    on_update: String,
}

impl From<ForeignKeyRow> for ForeignKey {
    fn from(key: ForeignKeyRow) -> ForeignKey {
        ForeignKey {
            table: key.table_name,
            column: key.from_column,
            references: format!("{}({})", key.to_table, key.to_column.unwrap_or_default()),
            on_delete: key.on_delete,
            on_update: key.on_update,
        }
    }
}

fn sqlite_schema(conn: &mut diesel::SqliteConnection) -> Schema {
    let tables: Vec<SqliteTable> = diesel::sql_query(format!("SELECT m.name AS name, m.sql AS sql {SQLITE_TABLES}"))
        .load(conn)
        .expect("sqlite tables");
    let columns: Vec<SqliteColumn> = diesel::sql_query(format!(
        "SELECT m.name AS table_name, p.name AS name, p.type AS declared_type, p.\"notnull\" AS not_null, \
         p.pk AS pk, p.dflt_value AS default_value {}",
        SQLITE_TABLES.replacen(
            "FROM sqlite_master AS m",
            "FROM sqlite_master AS m, pragma_table_info(m.name) AS p",
            1
        )
    ))
    .load(conn)
    .expect("sqlite columns");
    let indexes: Vec<SqliteIndex> = diesel::sql_query(format!(
        "SELECT m.name AS table_name, i.name AS name, i.\"unique\" AS is_unique, i.origin AS origin, \
         i.partial AS partial {}",
        SQLITE_TABLES.replacen(
            "FROM sqlite_master AS m",
            "FROM sqlite_master AS m, pragma_index_list(m.name) AS i",
            1
        )
    ))
    .load(conn)
    .expect("sqlite indexes");
    let foreign_keys: Vec<ForeignKeyRow> = diesel::sql_query(format!(
        "SELECT m.name AS table_name, f.\"from\" AS from_column, f.\"table\" AS to_table, f.\"to\" AS to_column, \
         f.on_delete AS on_delete, f.on_update AS on_update {}",
        SQLITE_TABLES.replacen(
            "FROM sqlite_master AS m",
            "FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f",
            1
        )
    ))
    .load(conn)
    .expect("sqlite foreign keys");

    let mut schema = Schema {
        tables: tables.iter().map(|table| table.name.clone()).collect(),
        ..Schema::default()
    };
    for table in &tables {
        let checks = table.sql.to_ascii_uppercase().matches("CHECK (").count()
            + table.sql.to_ascii_uppercase().matches("CHECK(").count();
        if checks > 0 {
            schema.checks.insert(table.name.clone(), checks);
        }
    }
    schema.columns = columns
        .into_iter()
        .map(|column| Column {
            kind: sqlite_kind(&column.declared_type),
            table: column.table_name,
            name: column.name,
            not_null: column.not_null != 0,
            primary_key: column.pk != 0,
            default: normalise_default(column.default_value),
        })
        .collect();
    for index in indexes {
        let index_columns: Vec<SqliteIndexColumn> = diesel::sql_query(format!(
            "SELECT name FROM pragma_index_info('{}') ORDER BY seqno",
            index.name.replace('\'', "''")
        ))
        .load(conn)
        .expect("sqlite index columns");
        let columns = index_columns
            .into_iter()
            .map(|column| column.name)
            .collect::<Vec<_>>()
            .join(",");
        match index.origin.as_str() {
            "pk" => {}
            "u" => {
                schema.unique_constraints.insert((index.table_name, columns));
            }
            _ => {
                schema.indexes.insert(Index {
                    table: index.table_name,
                    name: index.name,
                    columns,
                    unique: index.is_unique != 0,
                    partial: index.partial != 0,
                });
            }
        }
    }
    schema.foreign_keys = foreign_keys.into_iter().map(ForeignKey::from).collect();
    schema
}

// --- PostgreSQL: information_schema and pg_indexes ---------------------------------------------

#[derive(QueryableByName)]
struct PgName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    primary_key: bool,
    #[diesel(sql_type = Nullable<Text>)]
    default_value: Option<String>,
}

#[derive(QueryableByName)]
struct PgIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
    #[diesel(sql_type = Nullable<Text>)]
    constraint_type: Option<String>,
}

#[derive(QueryableByName)]
struct PgCheck {
    #[diesel(sql_type = Text)]
    table_name: String,
}

/// The column list of `CREATE [UNIQUE] INDEX … USING btree (a, b) [WHERE …]`.
fn index_columns(definition: &str) -> String {
    let start = definition
        .find(" USING ")
        .and_then(|using| definition[using..].find('(').map(|open| using + open + 1))
        .unwrap_or_else(|| panic!("unexpected index definition {definition}"));
    let end = start
        + definition[start..]
            .find(')')
            .unwrap_or_else(|| panic!("unexpected index definition {definition}"));
    definition[start..end]
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

fn postgres_schema(conn: &mut diesel::PgConnection) -> Schema {
    let tables: Vec<PgName> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .expect("postgres tables");
    let columns: Vec<PgColumn> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS name, c.data_type::text AS data_type, \
                c.is_nullable = 'NO' AS not_null, c.column_default::text AS default_value, \
                EXISTS (SELECT 1 FROM information_schema.table_constraints tc \
                        JOIN information_schema.key_column_usage k \
                          ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name \
                        WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema \
                          AND tc.table_name = c.table_name AND k.column_name = c.column_name) AS primary_key \
         FROM information_schema.columns c \
         WHERE c.table_schema = current_schema() AND c.table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .expect("postgres columns");
    let indexes: Vec<PgIndex> = diesel::sql_query(
        "SELECT i.tablename::text AS table_name, i.indexname::text AS name, i.indexdef AS definition, \
                (SELECT tc.constraint_type::text FROM information_schema.table_constraints tc \
                 WHERE tc.table_schema = i.schemaname AND tc.table_name = i.tablename \
                   AND tc.constraint_name = i.indexname) AS constraint_type \
         FROM pg_indexes i \
         WHERE i.schemaname = current_schema() AND i.tablename <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .expect("postgres indexes");
    let foreign_keys: Vec<ForeignKeyRow> = diesel::sql_query(
        "SELECT tc.table_name::text AS table_name, k.column_name::text AS from_column, \
                cu.table_name::text AS to_table, cu.column_name::text AS to_column, \
                rc.delete_rule::text AS on_delete, rc.update_rule::text AS on_update \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k \
           ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name \
         JOIN information_schema.constraint_column_usage cu \
           ON cu.constraint_schema = tc.constraint_schema AND cu.constraint_name = tc.constraint_name \
         JOIN information_schema.referential_constraints rc \
           ON rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name \
         WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
    )
    .load(conn)
    .expect("postgres foreign keys");
    // pg_constraint rather than information_schema: the latter also lists NOT NULL as CHECK.
    let checks: Vec<PgCheck> = diesel::sql_query(
        "SELECT t.relname::text AS table_name FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE c.contype = 'c' AND n.nspname = current_schema()",
    )
    .load(conn)
    .expect("postgres checks");

    let mut schema = Schema {
        tables: tables.into_iter().map(|table| table.name).collect(),
        ..Schema::default()
    };
    for check in checks {
        *schema.checks.entry(check.table_name).or_default() += 1;
    }
    schema.columns = columns
        .into_iter()
        .map(|column| Column {
            kind: postgres_kind(&column.data_type),
            table: column.table_name,
            name: column.name,
            not_null: column.not_null,
            primary_key: column.primary_key,
            default: normalise_default(column.default_value),
        })
        .collect();
    for index in indexes {
        let columns = index_columns(&index.definition);
        match index.constraint_type.as_deref() {
            Some("PRIMARY KEY") => {}
            Some("UNIQUE") => {
                schema.unique_constraints.insert((index.table_name, columns));
            }
            _ => {
                schema.indexes.insert(Index {
                    unique: index.definition.starts_with("CREATE UNIQUE INDEX"),
                    partial: index.definition.contains(" WHERE "),
                    table: index.table_name,
                    name: index.name,
                    columns,
                });
            }
        }
    }
    schema.foreign_keys = foreign_keys.into_iter().map(ForeignKey::from).collect();
    schema
}

#[test]
fn sqlite_and_postgres_migrations_build_equivalent_schemas() {
    let Some(postgres) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let sqlite = TestDatabase::create(Backend::Sqlite).expect("sqlite is always available");
    let sqlite = read_schema(&mut migrated(&sqlite));
    let postgres = read_schema(&mut migrated(&postgres));

    assert!(
        sqlite.tables.contains("llm_configurations") && sqlite.tables.contains("master_key_canaries"),
        "the catalogue read found the vault: {:?}",
        sqlite.tables
    );
    assert!(
        sqlite
            .tables
            .iter()
            .all(|table| sqlite.columns.iter().any(|column| &column.table == table)),
        "every table has its columns read"
    );
    assert!(
        !sqlite.indexes.is_empty()
            && !sqlite.unique_constraints.is_empty()
            && !sqlite.foreign_keys.is_empty()
            && !sqlite.checks.is_empty(),
        "the catalogue read found indexes, constraints and foreign keys: {sqlite:?}"
    );
    assert_eq!(sqlite.tables, postgres.tables, "tables");
    for table in &sqlite.tables {
        let of = |schema: &Schema| -> Vec<Column> {
            schema
                .columns
                .iter()
                .filter(|column| &column.table == table)
                .cloned()
                .collect()
        };
        assert_eq!(
            of(&sqlite),
            of(&postgres),
            "columns of {table} (SQLite left, PostgreSQL right)"
        );
    }
    assert_eq!(sqlite.indexes, postgres.indexes, "indexes (SQLite left)");
    assert_eq!(
        sqlite.unique_constraints, postgres.unique_constraints,
        "UNIQUE constraints (SQLite left)"
    );
    assert_eq!(sqlite.foreign_keys, postgres.foreign_keys, "foreign keys (SQLite left)");
    assert_eq!(
        sqlite.checks, postgres.checks,
        "CHECK constraints per table (SQLite left)"
    );
    assert_eq!(sqlite, postgres);
}

fn insert_user(conn: &mut DbConnection) -> DbId {
    use schema::users::dsl as u;
    let id = DbId(Uuid::new_v4());
    let now = db::now();
    let email = format!("{}@example.com", id.0.simple());
    diesel::insert_into(u::users)
        .values((
            u::id.eq(id),
            u::email.eq(&email),
            u::email_key.eq(&email),
            u::password_hash.eq("not a real hash"),
            u::role.eq("member"),
            u::is_disabled.eq(false),
            u::created_at.eq(now),
            u::updated_at.eq(now),
        ))
        .execute(conn)
        .expect("insert a user");
    id
}

fn insert_configuration(conn: &mut DbConnection, user: DbId, name: &str, is_default: bool) -> QueryResult<usize> {
    use schema::connections::dsl as n;
    use schema::llm_configurations::dsl as c;
    let now = db::now();
    let connection = DbId(Uuid::new_v4());
    diesel::insert_into(n::connections)
        .values((
            n::id.eq(connection),
            n::owner_user_id.eq(user),
            n::name.eq(name),
            n::name_key.eq(name),
            n::provider.eq("ollama"),
            n::base_url.eq("http://127.0.0.1:11434"),
            n::test_status.eq("untested"),
            n::model_count.eq(0_i64),
            n::is_implicit.eq(true),
            n::created_at.eq(now),
            n::updated_at.eq(now),
        ))
        .execute(conn)?;
    let configuration = DbId(Uuid::new_v4());
    diesel::insert_into(c::llm_configurations)
        .values((
            c::id.eq(configuration),
            c::user_id.eq(user),
            c::connection_id.eq(connection),
            c::name.eq(name),
            c::name_key.eq(name),
            c::model.eq("llama3"),
            c::is_active.eq(true),
            c::use_count.eq(0_i64),
            c::created_at.eq(now),
            c::updated_at.eq(now),
        ))
        .execute(conn)?;
    if !is_default {
        return Ok(1);
    }
    // A user's default is a row of its own (`user_defaults`, one per user).
    use schema::user_defaults::dsl as d;
    diesel::insert_into(d::user_defaults)
        .values((d::user_id.eq(user), d::configuration_id.eq(configuration)))
        .execute(conn)
}

/// A user's default is a per-user choice (`organisations.md`): the `user_defaults` table, keyed
/// by the user, replaced the partial unique index on `llm_configurations.is_default`.
fn the_one_default_per_user_is_enforced_by_the_database(database: TestDatabase) {
    let mut conn = migrated(&database);
    let schema = read_schema(&mut conn);
    let key = schema
        .columns
        .iter()
        .find(|column| column.table == "user_defaults" && column.name == "user_id")
        .unwrap_or_else(|| panic!("user_defaults.user_id is missing: {:?}", schema.tables));
    assert!(key.primary_key && key.not_null, "{key:?}");
    assert!(
        !schema
            .columns
            .iter()
            .any(|column| column.table == "llm_configurations" && column.name == "is_default"),
        "the default is no longer a flag on the configuration"
    );

    // The database itself refuses a second default for one user, and only that.
    let ada = insert_user(&mut conn);
    let bo = insert_user(&mut conn);
    insert_configuration(&mut conn, ada, "first", true).expect("a first default");
    insert_configuration(&mut conn, ada, "second", false).expect("a non-default");
    insert_configuration(&mut conn, ada, "third", false).expect("another non-default");
    insert_configuration(&mut conn, bo, "theirs", true).expect("another user's default");
    let second_default = insert_configuration(&mut conn, ada, "fourth", true);
    assert!(
        matches!(
            second_default,
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
        ),
        "a second default must violate the key of user_defaults: {second_default:?}"
    );
}
