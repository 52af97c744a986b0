//! What `/api` handlers read from a JSON body: typed fields collected with every problem by
//! field name, and ids from the path. Who is calling and the body itself come from the edge
//! (`crate::http`).

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{AppError, FieldErrors};
use crate::http::{ApiError, JsonObject};
use crate::services::configuration_input::Sent;

/// Refuses the fields of a body that are not expected: those in `read_only` as read-only, any
/// other not in `allowed` as unknown.
fn refuse_unexpected<'k>(keys: impl Iterator<Item = &'k String>, allowed: &[&str], read_only: &[&str]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for key in keys {
        if read_only.contains(&key.as_str()) {
            errors.add(key, "is read-only");
        } else if !allowed.contains(&key.as_str()) {
            errors.add(key, "is not a known field");
        }
    }
    errors
}

/// A request body's field as it arrived, read leniently: a value of the wrong JSON type is kept
/// as `WrongType` rather than failing the whole body, so that every problem of a body is
/// reported together. Request types (the OpenAPI document's schemas) are made of these.
#[derive(Debug, Default)]
pub enum Wire<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    WrongType,
}

/// A JSON type a request field may hold, and how a value of another type is refused.
pub trait WireType: Sized {
    const EXPECTED: &'static str;
    fn from_json(value: Value) -> Option<Self>;
}

impl WireType for String {
    const EXPECTED: &'static str = "must be a string";
    fn from_json(value: Value) -> Option<Self> {
        match value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

impl WireType for bool {
    const EXPECTED: &'static str = "must be true or false";
    fn from_json(value: Value) -> Option<Self> {
        value.as_bool()
    }
}

/// A key: moved out of the body into a secret type, never copied into a plain `String`.
impl WireType for SecretString {
    const EXPECTED: &'static str = "must be a string";
    fn from_json(value: Value) -> Option<Self> {
        String::from_json(value).map(SecretString::from)
    }
}

/// Any JSON: what the value must be is the parser's to say (e.g. parameters, an object).
impl WireType for Value {
    const EXPECTED: &'static str = "must be JSON";
    fn from_json(value: Value) -> Option<Self> {
        Some(value)
    }
}

impl<'de, T: WireType> Deserialize<'de> for Wire<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Wire::Null,
            value => T::from_json(value).map_or(Wire::WrongType, Wire::Value),
        })
    }
}

impl<T: WireType> Wire<T> {
    /// As sent, with a value of the wrong type refused under `field`.
    pub fn sent(self, field: &str, refused: &mut FieldErrors) -> Sent<T> {
        match self {
            Wire::Absent => Sent::Absent,
            Wire::Null => Sent::Null,
            Wire::Value(value) => Sent::Value(value),
            Wire::WrongType => {
                refused.add(field, T::EXPECTED);
                Sent::Absent
            }
        }
    }
}

/// The names of the fields `T` reads (what serde hands the deserializer of a struct).
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names(&'static [&'static str]);

    impl<'de> Deserializer<'de> for &mut Names {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only the field names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("only the field names are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut names = Names(&[]);
    // Fails by design once the names are known.
    let _ = T::deserialize(&mut names);
    names.0
}

/// A JSON object body read into the request type `T`, whose fields are all [`Wire`] values
/// (so no value fails it), with what it refused so far: fields `T` does not have, as read-only
/// when named in `read_only`, else as unknown.
pub fn read_request<T: DeserializeOwned>(body: JsonObject, read_only: &[&str]) -> Result<(T, FieldErrors), AppError> {
    let refused = refuse_unexpected(body.0.keys(), field_names::<T>(), read_only);
    let request = serde_json::from_value(Value::Object(body.0))
        .map_err(|_| AppError::Internal("a request type refused a JSON object".into()))?;
    Ok((request, refused))
}

/// A field that may be absent, explicitly `null`, or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    Absent,
    Null,
    Value(T),
}

/// Reads typed fields out of a JSON object, collecting every problem by field name: unknown
/// fields, read-only fields and wrong types are all reported together.
pub struct FieldReader {
    map: Map<String, Value>,
    pub errors: FieldErrors,
}

impl FieldReader {
    /// Fields named in `read_only` are refused as read-only; any other field not in `allowed`
    /// as unknown.
    pub fn new(map: Map<String, Value>, allowed: &[&str], read_only: &[&str]) -> Self {
        let errors = refuse_unexpected(map.keys(), allowed, read_only);
        FieldReader { map, errors }
    }

    pub fn string(&mut self, field: &str) -> Field<String> {
        match self.map.remove(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::String(value)) => Field::Value(value),
            Some(_) => {
                self.errors.add(field, "must be a string");
                Field::Absent
            }
        }
    }

    pub fn boolean(&mut self, field: &str) -> Field<bool> {
        match self.map.remove(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Bool(value)) => Field::Value(value),
            Some(_) => {
                self.errors.add(field, "must be true or false");
                Field::Absent
            }
        }
    }

    /// A whole number.
    pub fn integer(&mut self, field: &str) -> Field<i64> {
        match self.map.remove(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Number(number)) if number.is_i64() => Field::Value(number.as_i64().unwrap_or_default()),
            Some(_) => {
                self.errors.add(field, "must be a whole number");
                Field::Absent
            }
        }
    }

    /// The raw value, for fields of several accepted shapes.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    /// A string that must be present and non-null.
    pub fn required_string(&mut self, field: &str) -> Option<String> {
        match self.string(field) {
            Field::Value(value) => Some(value),
            Field::Null | Field::Absent => {
                if self.errors.get(field).is_none() {
                    self.errors.add(field, "is required");
                }
                None
            }
        }
    }

    /// Parses a present value with `parse`, recording its message on failure.
    pub fn parsed<T>(
        &mut self,
        field: &str,
        value: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.add(field, message);
                None
            }
        }
    }

    /// A string field that holds a secret (an API key): moved out of the body into a secret
    /// type, which is zeroised when dropped, never copied into a plain `String`.
    pub fn secret(&mut self, field: &str) -> Field<SecretString> {
        match self.string(field) {
            Field::Value(value) => Field::Value(SecretString::from(value)),
            Field::Null => Field::Null,
            Field::Absent => Field::Absent,
        }
    }

    /// [`FieldReader::parsed`] for a secret field.
    pub fn parsed_secret<T>(
        &mut self,
        field: &str,
        value: &SecretString,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value.expose_secret()) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.add(field, message);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), AppError> {
        self.errors.into_result()
    }
}

/// A configuration id from the path; anything but a UUID is a 400.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        AppError::BadRequest(format!(
            "`{}` is not a valid UUID",
            raw.chars().take(64).collect::<String>()
        ))
        .into()
    })
}
