//! The one SQL type that the two backends spell differently: UUIDs are native `uuid` on
//! PostgreSQL and lowercase hyphenated text on SQLite. diesel's own `Uuid` type does not pass
//! through the multi-backend connection, so ids cross it as [`DbId`].

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{HasSqlType, SqlType, Text};
use diesel::sqlite::Sqlite;
use std::io::Write;
use uuid::Uuid;

use super::MultiBackend;

/// The SQL type of every id column (`uuid` on PostgreSQL, `TEXT` on SQLite).
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct DbUuid;

/// A UUID as stored in an id column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, FromSqlRow, AsExpression)]
#[diesel(sql_type = DbUuid)]
pub struct DbId(pub Uuid);

impl From<Uuid> for DbId {
    fn from(id: Uuid) -> Self {
        DbId(id)
    }
}

impl From<DbId> for Uuid {
    fn from(id: DbId) -> Self {
        id.0
    }
}

impl ToSql<DbUuid, Pg> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, Pg> for DbId {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(DbId(Uuid::from_slice(value.as_bytes())?))
    }
}

impl ToSql<DbUuid, Sqlite> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, Sqlite> for DbId {
    fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(DbId(Uuid::parse_str(&text)?))
    }
}

impl HasSqlType<DbUuid> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<DbUuid>(lookup)
    }
}

impl ToSql<DbUuid, MultiBackend> for DbId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((DbUuid, self));
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, MultiBackend> for DbId {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<DbId, DbUuid>()
    }
}
