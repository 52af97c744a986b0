//! Who is signed in, and the checks every state-changing page request passes: the per-session
//! CSRF token and the `Origin` of the request.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use url::Url;
use uuid::Uuid;

use super::AppState;
use super::anonymous_csrf::AnonymousCsrf;
use super::page_error::PageError;
use super::page_error::SECOND_FACTOR_SETUP;
use super::session::{CSRF_TOKEN, EMAIL, ROLE, SECOND_FACTOR_MISSING, UNAVAILABLE, USER_ID};
use crate::crypto;
use crate::domain::Role;
use crate::error::AppError;

/// Is this an htmx request (`HX-Request: true`)?
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers()
        .get("HX-Request")
        .is_some_and(|value| value.as_bytes() == b"true")
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, AppError> {
    if let Ok(Some(token)) = session.get::<String>(CSRF_TOKEN) {
        return Ok(token);
    }
    let token = crypto::new_csrf_token();
    session
        .insert(CSRF_TOKEN, &token)
        .map_err(|error| AppError::Internal(format!("session write failed: {error}")))?;
    Ok(token)
}

/// Does a submitted token match the session's? Constant time.
pub fn csrf_matches(session: &Session, submitted: Option<&str>) -> bool {
    match (session.get::<String>(CSRF_TOKEN).ok().flatten(), submitted) {
        (Some(expected), Some(submitted)) => crypto::constant_time_eq(submitted.as_bytes(), expected.as_bytes()),
        _ => false,
    }
}

/// A request whose `Origin` is present must come from the instance's own public URL. For a
/// loopback public URL, `localhost`, `127.0.0.1` and `[::1]` on the same port all count.
pub fn origin_allowed(req: &HttpRequest, public_url: &Url) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(|origin| Url::parse(origin).ok()) else {
        return false;
    };
    if origin.scheme() != public_url.scheme() || origin.port_or_known_default() != public_url.port_or_known_default() {
        return false;
    }
    let is_loopback = |url: &Url| matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    origin.host_str() == public_url.host_str() || (is_loopback(public_url) && is_loopback(&origin))
}

/// The X-CSRF-Token header, if sent.
pub fn csrf_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("X-CSRF-Token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Refuses (403) an unsafe request without the session's CSRF token or from a foreign origin.
pub fn check_request(req: &HttpRequest, session: &Session, form_token: Option<&str>) -> Result<(), AppError> {
    check_origin(req)?;
    let header_token = csrf_header(req);
    if !csrf_matches(session, form_token.or(header_token.as_deref())) {
        return Err(missing_token());
    }
    Ok(())
}

/// Refuses (403) a sign-in form (login, registration) without the token of the visitor's
/// signed CSRF cookie or from a foreign origin. Returns the token, for a page shown again.
pub fn check_sign_in_request(req: &HttpRequest, form_token: Option<&str>) -> Result<String, AppError> {
    check_origin(req)?;
    let csrf = req
        .app_data::<web::Data<AnonymousCsrf>>()
        .ok_or_else(|| AppError::Internal("the CSRF cookie key is missing".into()))?;
    let header_token = csrf_header(req);
    let submitted = form_token.or(header_token.as_deref());
    if !csrf.matches(req, submitted) {
        return Err(missing_token());
    }
    Ok(submitted.unwrap_or_default().to_owned())
}

fn check_origin(req: &HttpRequest) -> Result<(), AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::Internal("application state missing".into()))?;
    if !origin_allowed(req, &state.settings.public_url) {
        return Err(AppError::Forbidden("this request came from another site".into()));
    }
    Ok(())
}

fn missing_token() -> AppError {
    AppError::Forbidden("the form is missing its security token or it has expired; reload the page".into())
}

/// The signed-in user of a page request; without one, pages redirect to `/login`.
#[derive(Clone)]
pub struct SignedIn {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
    pub csrf_token: String,
    pub session: Session,
    /// The admin requires a second factor and this account has none yet: the extractor lets
    /// such a session reach only [`SECOND_FACTOR_SETUP`] (and logout, which needs no user).
    pub second_factor_missing: bool,
}

impl SignedIn {
    /// From a request's session, if it is signed in.
    pub fn from_session(session: Session) -> Result<Option<SignedIn>, AppError> {
        if session.get::<bool>(UNAVAILABLE).ok().flatten() == Some(true) {
            return Err(AppError::Unavailable);
        }
        let user_id = session.get::<Uuid>(USER_ID).ok().flatten();
        let role = session
            .get::<String>(ROLE)
            .ok()
            .flatten()
            .as_deref()
            .and_then(Role::parse);
        match (user_id, role) {
            (Some(user_id), Some(role)) => {
                let csrf_token = csrf_token(&session)?;
                let email = session.get::<String>(EMAIL).ok().flatten().unwrap_or_default();
                let second_factor_missing = session.get::<bool>(SECOND_FACTOR_MISSING).ok().flatten() == Some(true);
                Ok(Some(SignedIn {
                    user_id,
                    email,
                    role,
                    csrf_token,
                    session,
                    second_factor_missing,
                }))
            }
            _ => Ok(None),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let htmx = is_htmx(req);
        std::future::ready(match SignedIn::from_session(req.get_session()) {
            Ok(Some(user)) if user.second_factor_missing && !second_factor_setup_path(req) => {
                Err(PageError::SecondFactorSetup { htmx })
            }
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(PageError::SignedOut { htmx }),
            Err(error) => Err(PageError::App(error)),
        })
    }
}

/// The pages a session without its required second factor may still reach: setting it up.
fn second_factor_setup_path(req: &HttpRequest) -> bool {
    req.path() == SECOND_FACTOR_SETUP
}

/// A urlencoded form (at most 64 KiB) whose CSRF token and origin have been checked. `T`
/// ignores the `csrf_token` field; `pairs` keeps every field, for repeated ones.
pub struct ProtectedForm<T> {
    pub fields: T,
    pub pairs: FormPairs,
}

/// A form's fields as name/value pairs, wiped when dropped: a form may carry a key in clear
/// (the parsed `fields` hold it in a secret type of their own).
pub struct FormPairs(Vec<(String, String)>);

impl std::ops::Deref for FormPairs {
    type Target = [(String, String)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for FormPairs {
    fn drop(&mut self) {
        for (_, value) in &mut self.0 {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// A form with nothing in it but its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

impl<T: DeserializeOwned + 'static> FromRequest for ProtectedForm<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = read_checked_form(req.clone(), payload.take(), |req, token| {
            check_request(req, &req.get_session(), token)
        });
        Box::pin(async move {
            let (fields, pairs, ()) = form.await?;
            Ok(ProtectedForm { fields, pairs })
        })
    }
}

/// A urlencoded form posted before signing in (login, registration; at most 64 KiB), whose
/// origin and CSRF cookie token have been checked. `csrf_token` is that token, for a page shown
/// again after a failed attempt.
pub struct SignInForm<T> {
    pub fields: T,
    pub csrf_token: String,
}

impl<T: DeserializeOwned + 'static> FromRequest for SignInForm<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = read_checked_form(req.clone(), payload.take(), check_sign_in_request);
        Box::pin(async move {
            let (fields, _, csrf_token) = form.await?;
            Ok(SignInForm { fields, csrf_token })
        })
    }
}

/// Reads a urlencoded form, passes its CSRF token to `check` (with the request), and only then
/// parses its fields: the fields, the pairs, and what `check` returned.
async fn read_checked_form<T: DeserializeOwned, C>(
    req: HttpRequest,
    payload: Payload,
    check: impl FnOnce(&HttpRequest, Option<&str>) -> Result<C, AppError>,
) -> Result<(T, FormPairs, C), AppError> {
    let (body, pairs) = read_form(payload).await?;
    let checked = check(&req, form_token(&pairs))?;
    let fields = parse_fields(body)?;
    Ok((fields, pairs, checked))
}

/// The body of a urlencoded form (at most 64 KiB) and its fields as pairs.
async fn read_form(mut payload: Payload) -> Result<(web::BytesMut, FormPairs), AppError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| AppError::BadRequest("the form could not be read".into()))?;
        if body.len() + chunk.len() > super::MAX_BODY_BYTES {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let pairs = serde_urlencoded::from_bytes(&body).map_err(|_| AppError::BadRequest("the form is not valid".into()));
    match pairs {
        Ok(pairs) => Ok((body, FormPairs(pairs))),
        Err(error) => {
            zeroize::Zeroize::zeroize(&mut body[..]);
            Err(error)
        }
    }
}

/// The form's fields; the raw body, which may hold a key in clear, is wiped once they are read.
fn parse_fields<T: DeserializeOwned>(mut body: web::BytesMut) -> Result<T, AppError> {
    let fields = serde_urlencoded::from_bytes(&body);
    zeroize::Zeroize::zeroize(&mut body[..]);
    fields.map_err(|error| AppError::BadRequest(format!("the form is not valid: {error}")))
}

fn form_token(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .find(|(name, _)| name == "csrf_token")
        .map(|(_, value)| value.as_str())
}
