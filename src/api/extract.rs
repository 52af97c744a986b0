//! What `/api` handlers take from a request: the caller, a bounded JSON object, and ids from
//! the path.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::db;
use crate::domain::Scope;
use crate::error::{AppError, FieldErrors};
use crate::services::{Credential, Principal, tokens};
use crate::web::auth::{self, SignedIn};

/// Request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Who is calling, as far as the request itself tells without the database: a bearer token
/// still to be checked, or a browser session (already loaded by the session middleware). A
/// request with neither is refused (401) here.
///
/// Handlers check the token inside the same blocking database task as their own work
/// ([`Caller::authorize`]), so a request costs one trip to the blocking pool, not two.
pub enum Caller {
    Token(String),
    Session(Principal),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(|token| token.trim().to_owned());
        std::future::ready(match presented {
            Some(token) => Ok(Caller::Token(token)),
            None => match session_principal(req) {
                Ok(Some(principal)) => Ok(Caller::Session(principal)),
                Ok(None) => Err(AppError::Unauthorized.into()),
                Err(error) => Err(error.into()),
            },
        })
    }
}

impl Caller {
    /// Checks the credential (a token against the database) and that it grants `scope`.
    pub fn authorize(self, conn: &mut db::DbConnection, scope: Scope) -> Result<Principal, AppError> {
        let principal = match self {
            Caller::Token(token) => tokens::authenticate(conn, &token, db::now())?,
            Caller::Session(principal) => principal,
        };
        principal.require(scope)?;
        Ok(principal)
    }

    /// The same, in a blocking task of its own, for handlers whose work is not one database task.
    pub async fn authorize_async(self, database: &db::Database, scope: Scope) -> Result<Principal, AppError> {
        match self {
            Caller::Session(principal) => {
                principal.require(scope)?;
                Ok(principal)
            }
            token => database.run(move |conn| token.authorize(conn, scope)).await,
        }
    }
}

/// The browser session's user, if any. Unsafe methods must carry the session's CSRF token in
/// `X-CSRF-Token` and come from the instance's own origin (403 otherwise).
fn session_principal(req: &HttpRequest) -> Result<Option<Principal>, AppError> {
    let session = req.get_session();
    let Some(user) = SignedIn::from_session(session.clone())? else {
        return Ok(None);
    };
    if !req.method().is_safe() {
        auth::check_request(req, &session, None)?;
    }
    Ok(Some(Principal {
        user_id: user.user_id,
        role: user.role,
        credential: Credential::Session,
    }))
}

/// A JSON object body: `application/json`, at most 64 KiB, syntactically valid (else 400), an
/// object (else 422).
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared_length.is_some_and(|length| length > MAX_BODY_BYTES) {
                return Err(AppError::PayloadTooLarge.into());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| AppError::BadRequest("the request body could not be read".into()))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(AppError::PayloadTooLarge.into());
                }
                body.extend_from_slice(&chunk);
            }
            if !is_json {
                return Err(AppError::BadRequest(
                    "the body must be JSON sent with Content-Type: application/json".into(),
                )
                .into());
            }
            let parsed = serde_json::from_slice::<Value>(&body);
            // The raw body may hold a key in clear; the parsed fields are taken from here on.
            zeroize::Zeroize::zeroize(&mut body[..]);
            let value = parsed.map_err(|error| AppError::BadRequest(format!("the body is not valid JSON: {error}")))?;
            match value {
                Value::Object(map) => Ok(JsonObject(map)),
                _ => Err(AppError::validation("body", "must be a JSON object").into()),
            }
        })
    }
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
