//! Request bodies at the edge: at most [`MAX_BODY_BYTES`], parsed once, and wiped once parsed
//! (a body may carry a key in clear).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::api_error::ApiError;
use crate::error::AppError;

/// Request bodies are capped at 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
