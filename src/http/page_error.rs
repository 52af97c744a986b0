//! Errors on pages: a signed-out visitor is sent to `/login` (with `HX-Redirect` for htmx), any
//! other error renders the error page with its status.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// Where a session that must set up a second factor is sent.
pub const SECOND_FACTOR_SETUP: &str = "/settings/two-factor";

#[derive(Debug)]
pub enum PageError {
    SignedOut {
        htmx: bool,
    },
    /// The admin requires a second factor and this account has none: to its set-up page.
    SecondFactorSetup {
        htmx: bool,
    },
    App(AppError),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::SignedOut { .. } => f.write_str("not signed in"),
            PageError::SecondFactorSetup { .. } => f.write_str("a second factor must be set up first"),
            PageError::App(error) => error.fmt(f),
        }
    }
}

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError::App(error.into())
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Internal(format!("template rendering failed: {error}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

fn title_for(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        413 => "Too large",
        422 => "Invalid input",
        429 => "Too many attempts",
        503 => "Temporarily unavailable",
        _ => "Something went wrong",
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignedOut { htmx: true } | PageError::SecondFactorSetup { htmx: true } => StatusCode::OK,
            PageError::SignedOut { htmx: false } | PageError::SecondFactorSetup { htmx: false } => {
                StatusCode::SEE_OTHER
            }
            PageError::App(AppError::Unauthorized) => StatusCode::SEE_OTHER,
            PageError::App(error) => StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = match self {
            PageError::SignedOut { htmx: true } => {
                return HttpResponse::Ok().insert_header(("HX-Redirect", "/login")).finish();
            }
            PageError::SignedOut { htmx: false } | PageError::App(AppError::Unauthorized) => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/login"))
                    .finish();
            }
            PageError::SecondFactorSetup { htmx: true } => {
                return HttpResponse::Ok()
                    .insert_header(("HX-Redirect", SECOND_FACTOR_SETUP))
                    .finish();
            }
            PageError::SecondFactorSetup { htmx: false } => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, SECOND_FACTOR_SETUP))
                    .finish();
            }
            PageError::App(error) => error,
        };
        if let AppError::Internal(detail) = error {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status_code();
        let message = match error {
            AppError::Internal(_) => "An unexpected error occurred. It has been logged.".to_owned(),
            other => other.to_string(),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title: title_for(status.as_u16()),
            message,
        };
        let mut response = HttpResponse::build(status);
        if let AppError::RateLimited { retry_after_secs } = error {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        match page.render() {
            Ok(body) => response.content_type("text/html; charset=utf-8").body(body),
            Err(_) => response.content_type("text/plain; charset=utf-8").body(page.message),
        }
    }
}

pub type PageResult = Result<HttpResponse, PageError>;
