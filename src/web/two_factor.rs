//! Two-factor authentication: `/settings/two-factor` (turn it on with a code, see it, turn it
//! off) and `/login/two-factor`, the second step of a login whose password was right.

use actix_session::Session;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::accounts::sign_in;
use super::respond::{private_html, see_other};
use super::views::Layout;
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::anonymous_csrf::AnonymousCsrf;
use crate::http::auth::{ProtectedForm, SignInForm, SignedIn};
use crate::http::client_address;
use crate::http::page_error::PageResult;
use crate::services::two_factor::{self, Enrolment, TwoFactorError};

pub const PAGE: &str = "/settings/two-factor";
pub const LOGIN_STEP: &str = "/login/two-factor";
/// The pending second step's cookie: a random token, sent only to the second step's path.
const CHALLENGE_COOKIE: &str = "lanyard_login_challenge";
const CHALLENGE_SECONDS: i64 = 5 * 60;

/// The cookie that binds the second step to the login attempt that passed its password.
pub fn challenge_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build(CHALLENGE_COOKIE, token)
        .path(LOGIN_STEP)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.public_url.scheme() == "https")
        .max_age(CookieDuration::seconds(CHALLENGE_SECONDS))
        .finish()
}

fn expired_challenge_cookie() -> Cookie<'static> {
    Cookie::build(CHALLENGE_COOKIE, "")
        .path(LOGIN_STEP)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::ZERO)
        .finish()
}

fn with_cookie(mut response: HttpResponse, cookie: &Cookie<'static>) -> PageResult {
    response
        .add_cookie(cookie)
        .map_err(|error| AppError::Internal(format!("cannot set the sign-in cookie: {error}")))?;
    Ok(response)
}

#[derive(Template)]
#[template(path = "settings/two_factor.html")]
struct TwoFactorPage {
    layout: Layout,
    csrf_token: String,
    /// The admin requires a second factor and the account has none yet.
    required: bool,
    is_on: bool,
    enrolment: Option<EnrolmentView>,
    /// Shown once, right after turning it on.
    recovery_codes: Vec<String>,
    recovery_codes_left: i64,
    errors: FieldErrors,
}

struct EnrolmentView {
    secret_text: String,
    qr_svg: String,
    pending: String,
}

impl From<Enrolment> for EnrolmentView {
    fn from(enrolment: Enrolment) -> Self {
        EnrolmentView {
            secret_text: enrolment.secret_text.to_string(),
            qr_svg: enrolment.qr_svg,
            pending: enrolment.pending,
        }
    }
}

struct PageContent {
    enrolment: Option<Enrolment>,
    recovery_codes: Vec<String>,
    errors: FieldErrors,
}

/// The page as it stands: on (with what is left of the recovery codes), or a secret to set up.
async fn render(state: &AppState, user: &SignedIn, content: PageContent, status: StatusCode) -> PageResult {
    let owner = user.user_id;
    let (is_on, recovery_codes_left) = state
        .db
        .run(move |conn| {
            let on = two_factor::is_on(conn, owner)?;
            let left = if on {
                two_factor::recovery_codes_left(conn, owner)?
            } else {
                0
            };
            Ok::<_, TwoFactorError>((on, left))
        })
        .await?;
    let enrolment = match (is_on, content.enrolment) {
        (true, _) => None,
        (false, Some(enrolment)) => Some(enrolment),
        (false, None) => Some(two_factor::offer(&state.keyring, owner, &user.email)?),
    };
    let page = TwoFactorPage {
        layout: Layout::signed_in("Two-factor authentication", "settings", user),
        csrf_token: user.csrf_token.clone(),
        required: user.second_factor_missing,
        is_on,
        enrolment: enrolment.map(EnrolmentView::from),
        recovery_codes: content.recovery_codes,
        recovery_codes_left,
        errors: content.errors,
    };
    // The page holds a secret: never cached (private_html sends `no-store`).
    Ok(private_html(status, page.render().map_err(AppError::from)?))
}

pub async fn page(state: web::Data<AppState>, user: SignedIn) -> PageResult {
    let content = PageContent {
        enrolment: None,
        recovery_codes: Vec::new(),
        errors: FieldErrors::new(),
    };
    render(&state, &user, content, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct EnrolmentFields {
    #[serde(default)]
    pending: String,
    #[serde(default)]
    code: String,
}

/// Turns it on once the posted `code` matches the secret the form was offered.
pub async fn enable(state: web::Data<AppState>, user: SignedIn, form: ProtectedForm<EnrolmentFields>) -> PageResult {
    let EnrolmentFields { pending, code } = form.fields;
    let owner = user.user_id;
    let keyring = state.keyring.clone();
    let offered = pending.clone();
    let outcome = state
        .db
        .run(move |conn| two_factor::confirm(conn, &keyring, owner, &offered, &code))
        .await;
    match outcome {
        Ok(codes) => {
            let content = PageContent {
                enrolment: None,
                recovery_codes: codes.0.iter().map(|code| code.to_string()).collect(),
                errors: FieldErrors::new(),
            };
            render(&state, &user, content, StatusCode::OK).await
        }
        Err(TwoFactorError::WrongCode) => {
            let content = PageContent {
                enrolment: Some(two_factor::reoffer(&state.keyring, owner, &user.email, &pending)?),
                recovery_codes: Vec::new(),
                errors: FieldErrors::single("code", TwoFactorError::WrongCode.to_string()),
            };
            render(&state, &user, content, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(TwoFactorError::EnrolmentExpired) => {
            let content = PageContent {
                enrolment: None,
                recovery_codes: Vec::new(),
                errors: FieldErrors::single(
                    "code",
                    "this set-up page expired: add the new secret below to your app and enter its code",
                ),
            };
            render(&state, &user, content, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(TwoFactorError::AlreadyOn) => Ok(see_other(PAGE)),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct DisableFields {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    code: String,
}

/// Turns it off: the current password and a code are both needed.
pub async fn disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    form: ProtectedForm<DisableFields>,
) -> PageResult {
    let DisableFields { current_password, code } = form.fields;
    let owner = user.user_id;
    let client = client_address(&req);
    let keyring = state.keyring.clone();
    let outcome = state
        .db
        .run(move |conn| two_factor::disable(conn, &keyring, owner, &current_password, &code, &client))
        .await;
    let errors = match outcome {
        Ok(()) | Err(TwoFactorError::NotOn) => return Ok(see_other("/settings")),
        Err(error @ TwoFactorError::WrongPassword) => FieldErrors::single("current_password", error.to_string()),
        Err(error @ TwoFactorError::WrongCode) => FieldErrors::single("code", error.to_string()),
        Err(other) => return Err(other.into()),
    };
    let content = PageContent {
        enrolment: None,
        recovery_codes: Vec::new(),
        errors,
    };
    render(&state, &user, content, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Template)]
#[template(path = "auth/two_factor.html")]
struct LoginStepPage {
    layout: Layout,
    errors: FieldErrors,
}

fn presented_challenge(req: &HttpRequest) -> Option<String> {
    req.cookie(CHALLENGE_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| !token.is_empty())
}

/// The second step's form. Without a live challenge, back to `/login`.
pub async fn login_step_form(
    state: web::Data<AppState>,
    csrf: web::Data<AnonymousCsrf>,
    req: HttpRequest,
) -> PageResult {
    let Some(token) = presented_challenge(&req) else {
        return Ok(see_other("/login"));
    };
    if !state
        .db
        .run(move |conn| two_factor::challenge_live(conn, &token))
        .await?
    {
        return with_cookie(see_other("/login"), &expired_challenge_cookie());
    }
    let (csrf_token, cookie) = csrf.issue(&req);
    let page = LoginStepPage {
        layout: Layout::anonymous("Two-factor authentication", csrf_token),
        errors: FieldErrors::new(),
    };
    with_cookie(
        private_html(StatusCode::OK, page.render().map_err(AppError::from)?),
        &cookie,
    )
}

#[derive(Deserialize)]
pub struct CodeField {
    #[serde(default)]
    code: String,
}

/// Takes the code (or a recovery code); success signs in exactly as a password login does.
pub async fn login_step(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: SignInForm<CodeField>,
) -> PageResult {
    let Some(token) = presented_challenge(&req) else {
        return Ok(see_other("/login"));
    };
    let code = form.fields.code;
    let client = client_address(&req);
    let keyring = state.keyring.clone();
    let outcome = state
        .db
        .run(move |conn| two_factor::complete_login(conn, &keyring, &token, &code, &client))
        .await;
    match outcome {
        Ok(user) => {
            sign_in(&session, &user)?;
            with_cookie(see_other("/llm-configurations"), &expired_challenge_cookie())
        }
        Err(error @ TwoFactorError::WrongCode) => {
            let page = LoginStepPage {
                layout: Layout::anonymous("Two-factor authentication", form.csrf_token),
                errors: FieldErrors::single("code", error.to_string()),
            };
            Ok(private_html(
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render().map_err(AppError::from)?,
            ))
        }
        Err(TwoFactorError::ChallengeExpired) => with_cookie(see_other("/login"), &expired_challenge_cookie()),
        Err(other) => Err(other.into()),
    }
}
