//! What `/api` handlers read from a JSON body: typed fields collected with every problem by
//! field name, and ids from the path. Who is calling and the body itself come from the edge
//! (`crate::http`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{AppError, FieldErrors};
use crate::http::ApiError;

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
        let mut errors = FieldErrors::new();
        for key in map.keys() {
            if read_only.contains(&key.as_str()) {
                errors.add(key, "is read-only");
            } else if !allowed.contains(&key.as_str()) {
                errors.add(key, "is not a known field");
            }
        }
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
        Ok(self.errors.into_result()?)
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
