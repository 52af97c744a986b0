//! Single sign-on's pages: `/auth/oidc/start` (to the identity provider), its callback, and on
//! `/settings` the password step before linking and the unlink button.

use actix_session::Session;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::accounts::sign_in;
use super::respond::{private_html, see_other};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn};
use crate::http::client_address;
use crate::http::page_error::PageResult;
use crate::services::accounts::{self, AccountsError};
use crate::services::single_sign_on::{
    self, Callback, Finished, Intent, PENDING_SECONDS, REAUTHENTICATION_SECONDS, SingleSignOn, SingleSignOnError,
};

pub const START: &str = "/auth/oidc/start";
pub const CALLBACK: &str = "/auth/oidc/callback";
/// The sign-in in progress (sealed): sent only to `/auth/oidc/…`, and `Lax` so that the
/// provider's redirect back (a top-level navigation from another site) carries it.
const PENDING_COOKIE: &str = "lanyard_sso";
/// The proof of a fresh re-authentication by single sign-on (sealed, 5 minutes).
pub const REAUTHENTICATED_COOKIE: &str = "lanyard_sso_reauthenticated";
/// In the session: until when (Unix seconds) `/auth/oidc/start?intent=link` may go on, after
/// the password step.
const LINK_ALLOWED_UNTIL: &str = "sso_link_until";
/// How long the password step before linking counts.
const LINK_STEP_SECONDS: i64 = 5 * 60;

#[derive(Template)]
#[template(path = "auth/single_sign_on_done.html")]
struct MovingOn {
    target: String,
}

#[derive(Template)]
#[template(path = "auth/single_sign_on_refused.html")]
struct Refused {
    title: String,
    reason: String,
}

fn configured(state: &AppState) -> Result<&std::sync::Arc<SingleSignOn>, AppError> {
    state.single_sign_on.as_ref().ok_or(AppError::NotFound)
}

fn pending_cookie(sso: &SingleSignOn, value: String) -> Cookie<'static> {
    Cookie::build(PENDING_COOKIE, value)
        .path("/auth/oidc")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(sso.secure_cookies())
        .max_age(CookieDuration::seconds(PENDING_SECONDS))
        .finish()
}

fn with_cookies(mut response: HttpResponse, cookies: &[Cookie<'static>]) -> PageResult {
    for cookie in cookies {
        response
            .add_cookie(cookie)
            .map_err(|error| AppError::Internal(format!("cannot set a sign-in cookie: {error}")))?;
    }
    Ok(response)
}

fn refused_page(status: StatusCode, title: &str, reason: String) -> PageResult {
    let page = Refused {
        title: title.to_owned(),
        reason,
    };
    Ok(private_html(status, page.render().map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct StartQuery {
    intent: Option<String>,
    /// `reauth=1`: security.md's name for `intent=reauthenticate`.
    reauth: Option<String>,
    next: Option<String>,
}

/// `GET /auth/oidc/start`: 303 to the provider, with the sealed cookie of this sign-in.
pub async fn start(state: web::Data<AppState>, session: Session, query: web::Query<StartQuery>) -> PageResult {
    let sso = configured(&state)?.clone();
    let StartQuery { intent, reauth, next } = query.into_inner();
    let intent = match reauth.as_deref() {
        Some("1" | "true") if intent.is_none() => Some("reauthenticate"),
        _ => intent.as_deref(),
    };
    let intent = Intent::parse(intent.unwrap_or_default())
        .ok_or_else(|| AppError::BadRequest("intent must be sign_in, link or reauthenticate".into()))?;
    let next = single_sign_on::safe_next(next.as_deref());
    let signed_in = SignedIn::from_session(session.clone())?;
    let user = match intent {
        Intent::SignIn => None,
        Intent::Link => {
            let Some(user) = signed_in else {
                return Ok(see_other("/login"));
            };
            // Linking comes after the password step (`POST /settings/single-sign-on/link`).
            let allowed = session
                .remove_as::<i64>(LINK_ALLOWED_UNTIL)
                .and_then(Result::ok)
                .is_some_and(|until| until > chrono::Utc::now().timestamp());
            if !allowed {
                return Ok(see_other("/settings#single-sign-on"));
            }
            Some(user.user_id)
        }
        Intent::Reauthenticate => {
            let Some(user) = signed_in else {
                return Ok(see_other("/login"));
            };
            Some(user.user_id)
        }
    };
    match sso.start(intent, user, next).await {
        Ok(started) => with_cookies(
            see_other(started.authorize_url.as_str()),
            &[pending_cookie(&sso, started.cookie)],
        ),
        Err(SingleSignOnError::Unavailable) => refused_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Single sign-on is unavailable",
            SingleSignOnError::Unavailable.to_string(),
        ),
        Err(other) => Err(AppError::from(other).into()),
    }
}

/// `GET /auth/oidc/callback`: the provider sends the browser back here.
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<Callback>,
) -> PageResult {
    let sso = configured(&state)?.clone();
    let cookie = req.cookie(PENDING_COOKIE).map(|cookie| cookie.value().to_owned());
    // The cookie is spent whatever happens next.
    let mut spent = pending_cookie(&sso, String::new());
    spent.make_removal();
    match sso.finish(cookie.as_deref(), query.into_inner()).await {
        Ok(Finished::SignedIn { user, next }) => {
            sign_in(&session, &user)?;
            moving_on(next.as_deref().unwrap_or("/llm-configurations"), &[spent])
        }
        Ok(Finished::Linked { next }) => moving_on(next.as_deref().unwrap_or("/settings#single-sign-on"), &[spent]),
        Ok(Finished::Reauthenticated { proof, next }) => {
            let proof = Cookie::build(REAUTHENTICATED_COOKIE, proof)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(sso.secure_cookies())
                .max_age(CookieDuration::seconds(REAUTHENTICATION_SECONDS))
                .finish();
            moving_on(next.as_deref().unwrap_or("/settings"), &[spent, proof])
        }
        Err(error) if error.is_refusal() => {
            tracing::info!(reason = %error, "a single sign-on was refused");
            let response = refused_page(StatusCode::BAD_REQUEST, "Sign-in refused", error.to_string())?;
            with_cookies(response, &[spent])
        }
        Err(SingleSignOnError::Unavailable) => {
            let response = refused_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Single sign-on is unavailable",
                SingleSignOnError::Unavailable.to_string(),
            )?;
            with_cookies(response, &[spent])
        }
        Err(other) => Err(AppError::from(other).into()),
    }
}

/// 200 with a page that moves on within the site: the session cookie is `SameSite=Strict`, so
/// it is sent only once the browser navigates from a page of this site.
fn moving_on(target: &str, cookies: &[Cookie<'static>]) -> PageResult {
    let page = MovingOn {
        target: target.to_owned(),
    };
    with_cookies(
        private_html(StatusCode::OK, page.render().map_err(AppError::from)?),
        cookies,
    )
}

#[derive(Deserialize)]
pub struct LinkFields {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    totp_code: String,
}

/// `POST /settings/single-sign-on/link`: the password step, then on to the provider.
pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    user: SignedIn,
    form: ProtectedForm<LinkFields>,
) -> PageResult {
    configured(&state)?;
    let LinkFields {
        current_password,
        totp_code,
    } = form.fields;
    let client = client_address(&req);
    let keyring = state.keyring.clone();
    let user_id = user.user_id;
    let outcome = state
        .db
        .run(move |conn| {
            let proof = accounts::Reauthentication {
                current_password: Some(current_password.as_str()),
                totp_code: Some(totp_code.as_str()).filter(|code| !code.trim().is_empty()),
                single_sign_on: false,
            };
            accounts::reauthenticate(conn, &keyring, user_id, &proof, &client)
        })
        .await;
    match outcome {
        Ok(()) => {
            let until = chrono::Utc::now().timestamp() + LINK_STEP_SECONDS;
            session
                .insert(LINK_ALLOWED_UNTIL, until)
                .map_err(|error| AppError::Internal(format!("session write failed: {error}")))?;
            // Not a 303: the CSP's `form-action 'self'` covers a form post's redirects too, and
            // this one would end at the provider. A page that moves on is a plain navigation.
            moving_on(&format!("{START}?intent=link"), &[])
        }
        Err(AccountsError::ReauthenticationRequired) => Err(AppError::validation(
            "current_password",
            "enter your current password (and a code from your authenticator app, when two-factor authentication is on) to link single sign-on",
        )
        .into()),
        Err(other) => Err(AppError::from(other).into()),
    }
}

/// `POST /settings/single-sign-on/unlink` (refused while the account has no password).
pub async fn unlink(state: web::Data<AppState>, user: SignedIn, _form: ProtectedForm<NoFields>) -> PageResult {
    configured(&state)?;
    let user_id = user.user_id;
    state.db.run(move |conn| single_sign_on::unlink(conn, user_id)).await?;
    Ok(see_other("/settings#single-sign-on"))
}

/// Whether this request carries a fresh re-authentication by single sign-on of `user_id`.
pub fn recently_reauthenticated(state: &AppState, req: &HttpRequest, user_id: uuid::Uuid) -> bool {
    state.single_sign_on.as_ref().is_some_and(|sso| {
        sso.recently_reauthenticated(
            req.cookie(REAUTHENTICATED_COOKIE).as_ref().map(|cookie| cookie.value()),
            user_id,
        )
    })
}
