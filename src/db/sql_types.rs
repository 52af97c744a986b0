//! The one SQL type that the two backends spell differently: UUIDs are native `uuid` on
//! PostgreSQL and lowercase hyphenated text on SQLite. diesel's own `Uuid` type does not pass
//! through the multi-backend connection, so ids cross it as [`DbId`]. Also a faster way to read
//! timestamps ([`Stamp`]), and the states kept as text ([`Role`], [`OrganisationRole`], [`Provider`],
//! [`TestStatus`]).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{HasSqlType, Nullable, SqlType, Text, Timestamp};
use diesel::sqlite::Sqlite;
use std::io::Write;
use uuid::Uuid;

use super::MultiBackend;
use crate::domain::{
    CheckStatus, CheckTrigger, DeliveryState, EventType, MemberAccess, OrganisationRole, Provider, Role, TestStatus,
};

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

/// A state stored as one of a fixed set of words in a `TEXT` column: written as `as_str`
/// writes it, read back through `parse`. A word outside the set is a deserialisation error that
/// names the column's type and the word (never a panic, never a silent default).
macro_rules! text_state {
    ($state:ty, $what:literal, $as_str:expr, $parse:expr) => {
        impl ToSql<Text, Pg> for $state {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql($as_str(*self), out)
            }
        }

        impl ToSql<Text, Sqlite> for $state {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <str as ToSql<Text, Sqlite>>::to_sql($as_str(*self), out)
            }
        }

        impl ToSql<Text, MultiBackend> for $state {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }

        // Read in place, without a `String` per row: listings read two states a row.
        impl FromSql<Text, Pg> for $state {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                $parse(text).ok_or_else(|| format!("unknown {} `{text}` in the database", $what).into())
            }
        }

        impl FromSql<Text, Sqlite> for $state {
            fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                let text = value.read_text();
                $parse(text).ok_or_else(|| format!("unknown {} `{text}` in the database", $what).into())
            }
        }

        impl FromSql<Text, MultiBackend> for $state {
            fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                value.from_sql::<$state, Text>()
            }
        }
    };
}

text_state!(Role, "role", Role::as_str, Role::parse);
text_state!(
    OrganisationRole,
    "organisation role",
    OrganisationRole::as_str,
    OrganisationRole::parse
);
text_state!(Provider, "provider", Provider::id, Provider::parse);
text_state!(MemberAccess, "member access", MemberAccess::as_str, MemberAccess::parse);
text_state!(TestStatus, "test status", TestStatus::as_str, TestStatus::parse);
text_state!(CheckTrigger, "check trigger", CheckTrigger::as_str, CheckTrigger::parse);
text_state!(CheckStatus, "check status", CheckStatus::as_str, CheckStatus::parse);
text_state!(
    DeliveryState,
    "delivery state",
    DeliveryState::as_str,
    DeliveryState::parse
);
text_state!(EventType, "event type", EventType::as_str, EventType::parse);

/// A `Timestamp` column read through the multi-backend connection, for row structs to name with
/// `#[diesel(deserialize_as = Stamp)]` on a `NaiveDateTime` field.
///
/// On SQLite a timestamp is text. diesel reads it with chrono's `parse_from_str`, which parses
/// the format string again for every value; a listing reads four per row, and that showed up as
/// about a tenth of a listing's CPU. The one shape diesel writes (`YYYY-MM-DD HH:MM:SS[.f]`) is
/// parsed by hand here; anything else still goes through diesel.
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct Stamp(pub NaiveDateTime);

/// The same for a `Nullable<Timestamp>` column (`deserialize_as = MaybeStamp` on an
/// `Option<NaiveDateTime>` field).
#[derive(Debug, Clone, Copy, FromSqlRow)]
pub struct MaybeStamp(pub Option<NaiveDateTime>);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl From<MaybeStamp> for Option<NaiveDateTime> {
    fn from(stamp: MaybeStamp) -> Self {
        stamp.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(diesel::sqlite::SqliteType::Text)
            && let Some(at) = parse_sqlite_timestamp(value.read_text())
        {
            return Ok(Stamp(at));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Stamp, Timestamp>()
    }
}

impl<DB: Backend> FromSql<Nullable<Timestamp>, DB> for MaybeStamp
where
    Stamp: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        <Stamp as FromSql<Timestamp, DB>>::from_sql(value).map(|stamp| MaybeStamp(Some(stamp.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(MaybeStamp(None)),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 digits of fraction, nothing else.
fn parse_sqlite_timestamp(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b' ' {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |sum, &byte| {
            byte.is_ascii_digit().then(|| sum * 10 + u32::from(byte - b'0'))
        })
    };
    let nanosecond = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let value = digits(20..bytes.len())?;
            value * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?.and_hms_nano_opt(
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
        nanosecond,
    )
}

#[cfg(test)]
mod tests {
    use super::parse_sqlite_timestamp;
    use crate::db::DbConnection;
    use crate::domain::{Provider, Role, TestStatus};
    use chrono::NaiveDateTime;
    use diesel::dsl::sql;
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    fn read<T>(conn: &mut DbConnection, stored: &str) -> QueryResult<T>
    where
        T: diesel::deserialize::FromSqlRow<Text, crate::db::MultiBackend> + 'static,
    {
        diesel::select(sql::<Text>("").bind::<Text, _>(stored)).get_result(conn)
    }

    /// The error and every error under it, as text.
    fn whole(error: diesel::result::Error) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            text.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        text
    }

    #[test]
    fn states_read_back_as_stored_and_unknown_words_are_errors() {
        let mut conn = DbConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        assert_eq!(read::<Role>(&mut conn, "admin").unwrap(), Role::Admin);
        assert_eq!(read::<Role>(&mut conn, "member").unwrap(), Role::Member);
        assert_eq!(
            read::<Provider>(&mut conn, "azure_openai").unwrap(),
            Provider::AzureOpenai
        );
        assert_eq!(read::<TestStatus>(&mut conn, "untested").unwrap(), TestStatus::Untested);
        let error = read::<Role>(&mut conn, "owner").map(|_| ()).map_err(whole).unwrap_err();
        assert!(error.contains("unknown role `owner`"), "{error}");
        let error = read::<TestStatus>(&mut conn, "OK")
            .map(|_| ())
            .map_err(whole)
            .unwrap_err();
        assert!(error.contains("unknown test status `OK`"), "{error}");
        let error = read::<Provider>(&mut conn, "openai ")
            .map(|_| ())
            .map_err(whole)
            .unwrap_err();
        assert!(error.contains("unknown provider `openai `"), "{error}");
        // Written as the same words.
        let written: String = diesel::select(sql::<Text>("").bind::<Text, _>(TestStatus::Failed))
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(written, "failed");
    }

    #[test]
    fn sqlite_timestamps_parse_like_chrono() {
        for text in [
            "2026-11-26 14:40:00",
            "2026-11-26 14:40:00.1",
            "2026-11-26 14:40:00.123456",
            "2026-11-26 14:40:00.123456789",
            "1999-01-01 00:00:59.000001",
            "2024-02-29 23:59:59.5",
        ] {
            let expected = NaiveDateTime::parse_from_str(text, "%F %T%.f").unwrap();
            assert_eq!(parse_sqlite_timestamp(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn other_shapes_are_left_to_diesel() {
        for text in [
            "",
            "2026-11-26",
            "2026-11-26T14:40:00",
            "2026-11-26 14:40:00Z",
            "2026-11-26 14:40:00.",
            "2026-11-26 14:40:00.1234567890",
            "2026-13-26 14:40:00",
            "2025-02-29 14:40:00",
            "2026-11-26 24:40:00",
            "2026-1x-26 14:40:00",
            "+026-11-26 14:40:00",
        ] {
            assert_eq!(parse_sqlite_timestamp(text), None, "{text}");
        }
    }
}
