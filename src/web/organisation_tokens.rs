//! The "Service tokens" and "Reveal audit" sections of `/organisations/{id}` (its admins and
//! owners): creating a service token (shown once, in the answer to the form), revoking one, and
//! the organisation's reveals, newest first. Plain form posts: the page again (200 with the new
//! token, 422 with the form's refusals) or a 303 back to it.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde::Deserialize;
use uuid::Uuid;

use super::organisations::render_with_token_form;
use super::respond::see_other;
use super::views::{CreatedTokenView, TokenView, display_time};
use crate::domain::{FieldErrors, OrganisationRole};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn};
use crate::http::client_address;
use crate::http::page_error::PageResult;
use crate::services::accounts::{AccountsError, Reauthentication};
use crate::services::service_tokens::{self, ServiceTokensError};
use crate::services::tokens::{self, NewToken};

/// One line of the reveal audit.
pub struct AuditRowView {
    pub at: String,
    pub token_name: String,
    /// `None` once the member's account is deleted.
    pub member_email: Option<String>,
    pub configuration_name: String,
}

/// The create form's state: a token just created (shown this once), or what was refused.
#[derive(Default)]
pub struct TokenForm {
    pub created: Option<CreatedTokenView>,
    pub errors: FieldErrors,
    pub name: String,
}

/// What the two sections show.
pub struct Section {
    pub tokens: Vec<TokenView>,
    pub audit: Vec<AuditRowView>,
    pub form: TokenForm,
}

/// The sections for an admin or owner; `None` for a member, who sees neither.
pub async fn section(
    state: &AppState,
    user_id: Uuid,
    organisation: Uuid,
    role: OrganisationRole,
    form: TokenForm,
) -> Result<Option<Section>, AppError> {
    if !role.includes(OrganisationRole::Admin) {
        return Ok(None);
    }
    let (tokens, audit) = state
        .db
        .run(move |conn| {
            let tokens = service_tokens::list(conn, user_id, organisation)?;
            let audit = service_tokens::audit(conn, user_id, organisation)?;
            Ok::<_, ServiceTokensError>((tokens, audit))
        })
        .await?;
    // Only to show which tokens have expired.
    let now = chrono::Utc::now().naive_utc();
    Ok(Some(Section {
        tokens: tokens.into_iter().map(|token| TokenView::new(token, now)).collect(),
        audit: audit
            .into_iter()
            .map(|entry| AuditRowView {
                at: display_time(entry.at),
                token_name: entry.token_name,
                member_email: entry.member.map(|(_, email)| email),
                configuration_name: entry.configuration_name,
            })
            .collect(),
        form,
    }))
}

/// The create form's fields; `scopes` may repeat, so it is read from the raw pairs.
#[derive(Deserialize)]
pub struct TokenFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
    /// Needed for the `resolve` scope only.
    #[serde(default)]
    current_password: String,
    /// Needed with it when the account has a second factor.
    #[serde(default)]
    totp_code: String,
}

fn organisation_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<TokenFields>,
) -> PageResult {
    let id = organisation_id(&path)?;
    let mut errors = FieldErrors::new();
    let name = tokens::parse_token_name(&form.fields.name)
        .map_err(|message| errors.add("name", message))
        .ok();
    let scope_names: Vec<&str> = form
        .pairs
        .iter()
        .filter(|(field, _)| field == "scopes")
        .map(|(_, value)| value.as_str())
        .collect();
    let scopes = service_tokens::parse_scopes(&scope_names.join(","))
        .map_err(|message| errors.add("scopes", message))
        .ok();
    let expires_raw = form.fields.expires_in_days.trim();
    let expires_in_days = if expires_raw.is_empty() {
        None
    } else {
        expires_raw
            .parse::<i64>()
            .map_err(|_| "must be a whole number of days".to_owned())
            .and_then(tokens::parse_expiry_days)
            .map_err(|message| errors.add("expires_in_days", message))
            .ok()
    };
    let typed = form.fields.name.clone();
    let mut created = None;
    match NewToken::from_parsed(name, scopes, expires_in_days, std::mem::take(&mut errors)) {
        Err(refused) => {
            // A member or an outsider learns where they stand (403, 404), not what the form lacks.
            let user_id = user.user_id;
            state
                .db
                .run(move |conn| service_tokens::require_admin(conn, id, user_id))
                .await
                .map_err(AppError::from)?;
            errors = refused;
        }
        Ok(new) => {
            let user_id = user.user_id;
            let client = client_address(&req);
            let current_password = form.fields.current_password.clone();
            let totp_code = form.fields.totp_code.clone();
            let single_sign_on = super::single_sign_on::recently_reauthenticated(&state, &req, user.user_id);
            let cap = state.settings.caps.tokens;
            let keyring = state.keyring.clone();
            let outcome = state
                .db
                .run(move |conn| {
                    let proof = Reauthentication {
                        current_password: Some(current_password.as_str()),
                        totp_code: Some(totp_code.as_str()).filter(|code| !code.trim().is_empty()),
                        single_sign_on,
                    };
                    service_tokens::create(conn, &keyring, user_id, id, &new, cap, &proof, &client)
                })
                .await;
            match outcome {
                Ok(token) => {
                    created = Some(CreatedTokenView {
                        name: token.name.clone(),
                        secret: token.secret.expose().to_owned(),
                    })
                }
                Err(ServiceTokensError::Account(
                    AccountsError::ReauthenticationRequired | AccountsError::WrongPassword,
                )) => errors.add(
                    "current_password",
                    "enter your current password to create a token with the resolve scope",
                ),
                // The cap concerns the token being named: shown beside its name.
                Err(ServiceTokensError::CapReached(cap)) => errors.add("name", cap.describe()),
                Err(other) => return Err(AppError::from(other).into()),
            }
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // The token is in this one answer and never again: the page is rendered here (a redirect
    // would have to carry it) and never cached.
    let form = TokenForm {
        name: if created.is_some() { String::new() } else { typed },
        created,
        errors,
    };
    let mut response = render_with_token_form(&state, &user, id, status, form).await?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn revoke(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = organisation_id(&path.0)?;
    let token_id = Uuid::parse_str(&path.1).map_err(|_| AppError::NotFound)?;
    let user_id = user.user_id;
    state
        .db
        .run(move |conn| service_tokens::revoke(conn, user_id, id, token_id))
        .await
        .map_err(AppError::from)?;
    Ok(see_other(&format!("/organisations/{id}?done=token-revoked")))
}
