//! `/login`, `/register` and `/logout`.

use actix_session::Session;
use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;

use super::respond::{html, see_other};
use super::views::Layout;
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::anonymous_csrf::AnonymousCsrf;
use crate::http::auth::{NoFields, ProtectedForm, SignInForm, SignedIn, csrf_token};
use crate::http::client_address;
use crate::http::page_error::PageResult;
use crate::http::session::{CSRF_TOKEN, EMAIL, USER_ID};
use crate::services::accounts::{self, AccountsError, LoginOutcome, SignedInUser};

/// Starts a fresh session for `user`: a new session id (so a planted id is worthless) and a
/// new CSRF token.
pub fn sign_in(session: &Session, user: &SignedInUser) -> Result<(), AppError> {
    session.renew();
    session.remove(CSRF_TOKEN);
    let write = |error: actix_session::SessionInsertError| AppError::Internal(format!("session write failed: {error}"));
    session.insert(USER_ID, user.id).map_err(write)?;
    session.insert(EMAIL, &user.email).map_err(write)?;
    csrf_token(session)?;
    Ok(())
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    email: String,
    registration_open: bool,
    password_login: bool,
    single_sign_on: Option<SingleSignOnButton>,
}

/// The login page's single sign-on button.
struct SingleSignOnButton {
    name: String,
    /// The provider's discovery document has been read.
    available: bool,
}

fn single_sign_on_button(state: &AppState) -> Option<SingleSignOnButton> {
    state.single_sign_on.as_ref().map(|sso| SingleSignOnButton {
        name: sso.name().to_owned(),
        available: sso.available(),
    })
}

/// Writes nothing on the server: the form's CSRF token is a signed cookie (see
/// `anonymous_csrf`), not a session.
pub async fn login_form(
    state: web::Data<AppState>,
    csrf: web::Data<AnonymousCsrf>,
    req: HttpRequest,
    session: Session,
) -> PageResult {
    if SignedIn::from_session(session.clone())?.is_some() {
        return Ok(see_other("/llm-configurations"));
    }
    let registration_open = state.db.run(accounts::registration_open).await?;
    let (token, cookie) = csrf.issue(&req);
    let page = LoginPage {
        layout: Layout::anonymous("Log in", token),
        error: None,
        email: String::new(),
        registration_open,
        password_login: state.settings.password_login,
        single_sign_on: single_sign_on_button(&state),
    };
    let mut response = html(actix_web::http::StatusCode::OK, page.render().map_err(AppError::from)?);
    set_csrf_cookie(&mut response, &cookie)?;
    Ok(response)
}

fn set_csrf_cookie(
    response: &mut actix_web::HttpResponse,
    cookie: &actix_web::cookie::Cookie<'static>,
) -> Result<(), AppError> {
    response
        .add_cookie(cookie)
        .map_err(|error| AppError::Internal(format!("cannot set the CSRF cookie: {error}")))
}

#[derive(Deserialize)]
pub struct LoginFields {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: SignInForm<LoginFields>,
) -> PageResult {
    if !state.settings.password_login {
        return Err(AppError::Forbidden(
            "password sign-in is turned off on this instance (LANYARD_PASSWORD_LOGIN=off): use single sign-on".into(),
        )
        .into());
    }
    let LoginFields { email, password } = form.fields;
    let client = client_address(&req);
    let outcome = state
        .db
        .run(move |conn| accounts::login(conn, &email, &password, &client))
        .await;
    match outcome {
        Ok(LoginOutcome::SignedIn(user)) => {
            sign_in(&session, &user)?;
            Ok(see_other("/llm-configurations"))
        }
        Ok(LoginOutcome::SecondFactorNeeded { challenge }) => {
            // No session yet: the second step is bound to this attempt by its own cookie.
            let mut response = see_other(super::two_factor::LOGIN_STEP);
            let cookie = super::two_factor::challenge_cookie(&state, challenge);
            response
                .add_cookie(&cookie)
                .map_err(|error| AppError::Internal(format!("cannot set the sign-in cookie: {error}")))?;
            Ok(response)
        }
        Err(AccountsError::LoginFailed) => {
            // The same page for an unknown email and a wrong password: nothing is echoed back.
            let page = LoginPage {
                layout: Layout::anonymous("Log in", form.csrf_token),
                error: Some(format!("Login failed: {}.", accounts::LOGIN_FAILED)),
                email: String::new(),
                registration_open: false,
                password_login: true,
                single_sign_on: single_sign_on_button(&state),
            };
            Ok(html(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                page.render().map_err(AppError::from)?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "auth/register.html")]
struct RegisterPage {
    layout: Layout,
    first_user: bool,
    allowed: bool,
    closed_message: String,
    setup_token: String,
    email: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct SetupQuery {
    setup_token: Option<String>,
}

/// Writes nothing on the server, like `login_form`.
pub async fn register_form(
    state: web::Data<AppState>,
    csrf: web::Data<AnonymousCsrf>,
    req: HttpRequest,
    session: Session,
    query: web::Query<SetupQuery>,
) -> PageResult {
    if SignedIn::from_session(session.clone())?.is_some() {
        return Ok(see_other("/llm-configurations"));
    }
    let setup_token = query.into_inner().setup_token.unwrap_or_default();
    let presented = setup_token.clone();
    let (first_user, allowed) = state
        .db
        .run(move |conn| {
            if accounts::needs_setup(conn)? {
                Ok::<_, AppError>((true, accounts::setup_token_valid(conn, &presented)?))
            } else {
                Ok((false, accounts::registration_open(conn)?))
            }
        })
        .await?;
    let closed_message = if first_user {
        "Lanyard is waiting for its first user: open the setup link that `lanyard serve` printed in its log."
    } else {
        "Registration is closed. Ask an admin of this instance for an account."
    };
    let (token, cookie) = csrf.issue(&req);
    let page = RegisterPage {
        layout: Layout::anonymous(if first_user { "Set up" } else { "Register" }, token),
        first_user,
        allowed,
        closed_message: closed_message.to_owned(),
        setup_token,
        email: String::new(),
        errors: FieldErrors::new(),
    };
    let status = if allowed {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::FORBIDDEN
    };
    let mut response = html(status, page.render().map_err(AppError::from)?);
    set_csrf_cookie(&mut response, &cookie)?;
    Ok(response)
}

#[derive(Deserialize)]
pub struct RegisterFields {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    setup_token: Option<String>,
}

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: SignInForm<RegisterFields>,
) -> PageResult {
    let RegisterFields {
        email,
        password,
        setup_token,
    } = form.fields;
    let client = client_address(&req);
    let outcome = {
        let (email, setup_token) = (email.clone(), setup_token.clone());
        state
            .db
            .run(move |conn| {
                let form = accounts::Registration {
                    email: &email,
                    password: &password,
                    setup_token: setup_token.as_deref(),
                };
                accounts::register(conn, &form, &client)
            })
            .await
    };
    match outcome {
        Ok(user) => {
            sign_in(&session, &user)?;
            Ok(see_other("/llm-configurations"))
        }
        Err(AccountsError::Invalid(errors)) => {
            let first_user = setup_token.is_some();
            let page = RegisterPage {
                layout: Layout::anonymous("Register", form.csrf_token),
                first_user,
                allowed: true,
                closed_message: String::new(),
                setup_token: setup_token.unwrap_or_default(),
                email,
                errors,
            };
            Ok(html(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                page.render().map_err(AppError::from)?,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn logout(session: Session, _form: ProtectedForm<NoFields>) -> PageResult {
    session.purge();
    Ok(see_other("/login"))
}
