//! What `/api` handlers take from a request: the authenticated principal, a bounded JSON
//! object, and ids from the path.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::app::AppState;
use crate::db;
use crate::error::{AppError, FieldErrors};
use crate::services::{Credential, Principal, tokens};
use crate::web::auth::{self, SignedIn};

/// Request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The caller, authenticated by a bearer token.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let session_principal = session_principal(req);
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(|token| token.trim().to_owned());
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("application state missing".into()))?;
            let Some(presented) = presented else {
                return session_principal?
                    .map(Authenticated)
                    .ok_or_else(|| AppError::Unauthorized.into());
            };
            let principal = state
                .db
                .run(move |conn| tokens::authenticate(conn, &presented, db::now()))
                .await?;
            Ok(Authenticated(principal))
        })
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
            let value: Value = serde_json::from_slice(&body)
                .map_err(|error| AppError::BadRequest(format!("the body is not valid JSON: {error}")))?;
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
