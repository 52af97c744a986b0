//! The CSRF token of the forms a visitor fills in before signing in (login, registration and
//! the setup link). It is kept in a signed cookie that the form repeats (a double submit), not
//! in a session: looking at these pages writes no database row, so strangers cannot fill the
//! sessions table by asking for them. Once signed in, every form carries the session's own
//! token instead (`auth::check_request`); this one is accepted nowhere else.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time::Duration as CookieDuration};

use super::session::IDLE_TIMEOUT;
use crate::crypto::{self, MasterKeyring};

pub const COOKIE_NAME: &str = "lanyard_csrf";

/// Issues and checks the cookie. Its signing key is derived from the active master key, like
/// the session cookie's but under its own label, so that every instance agrees and neither
/// cookie can stand in for the other.
#[derive(Clone)]
pub struct AnonymousCsrf {
    key: Key,
    secure: bool,
}

impl AnonymousCsrf {
    /// `secure`: whether the public URL is https (the cookie is then sent only over https).
    pub fn new(keyring: &MasterKeyring, secure: bool) -> Self {
        AnonymousCsrf {
            key: Key::from(&crypto::anonymous_csrf_signing_key(keyring)),
            secure,
        }
    }

    /// The token the request's cookie carries, if the cookie is there and its signature holds.
    pub fn presented(&self, req: &HttpRequest) -> Option<String> {
        let mut jar = CookieJar::new();
        jar.add_original(req.cookie(COOKIE_NAME)?);
        jar.signed(&self.key)
            .get(COOKIE_NAME)
            .map(|cookie| cookie.value().to_owned())
    }

    /// Does `submitted` match the request's cookie? Constant time; no cookie never matches.
    pub fn matches(&self, req: &HttpRequest, submitted: Option<&str>) -> bool {
        match (self.presented(req), submitted) {
            (Some(expected), Some(submitted)) => crypto::constant_time_eq(submitted.as_bytes(), expected.as_bytes()),
            _ => false,
        }
    }

    /// The token for a form page: the visitor's own while their cookie holds (so that a login
    /// page and a registration page open side by side both work), else a new one. The cookie
    /// comes back every time, so that its lifetime starts again with each page shown.
    pub fn issue(&self, req: &HttpRequest) -> (String, Cookie<'static>) {
        let token = self.presented(req).unwrap_or_else(crypto::new_csrf_token);
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(
            Cookie::build(COOKIE_NAME, token.clone())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(self.secure)
                .max_age(CookieDuration::seconds(IDLE_TIMEOUT.num_seconds()))
                .finish(),
        );
        let cookie = jar
            .get(COOKIE_NAME)
            .cloned()
            .unwrap_or_else(|| Cookie::new(COOKIE_NAME, ""));
        (token, cookie)
    }
}
