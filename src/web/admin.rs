//! `/admin`: users, registration, the egress policy in force, key health, master-key usage, the
//! audit of key reveals and the users' security events. Admins only (403 otherwise); never a key.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::respond::{private_html, see_other};
use super::views::{Layout, SecurityEventView, display_time};
use crate::domain::{Email, Password, Role};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn};
use crate::http::page_error::{PageError, PageResult};
use crate::services::accounts::{self, AccountsError};
use crate::services::{Work, admin, organisations};

const PAGE: &str = "/admin";

/// A signed-in admin; anyone else gets 403.
pub struct Admin(pub SignedIn);

impl FromRequest for Admin {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedIn::from_request(req, payload).into_inner();
        std::future::ready(match signed_in {
            Ok(user) if user.is_admin() => Ok(Admin(user)),
            Ok(_) => Err(AppError::Forbidden("this page is for admins".into()).into()),
            Err(error) => Err(error),
        })
    }
}

pub struct UserView {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
    pub is_disabled: bool,
    pub is_you: bool,
    pub configurations: i64,
    pub ok: i64,
    pub failed: i64,
    pub untested: i64,
    pub created_at: String,
}

pub struct OrganisationView {
    pub id: String,
    pub name: String,
    pub owners: String,
    pub member_count: i64,
    pub created_at: String,
}

pub struct MasterKeyView {
    pub id: String,
    pub state: &'static str,
    pub count: i64,
}

pub struct RevealView {
    pub at: String,
    pub email: String,
    pub configuration: String,
    pub source: String,
    pub conversation: Option<String>,
    pub token: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/page.html")]
struct AdminPage {
    layout: Layout,
    csrf_token: String,
    notice: Option<String>,
    errors: FieldErrors,
    users: Vec<UserView>,
    organisations: Vec<OrganisationView>,
    registration_open: bool,
    second_factor_required: bool,
    egress_mode: &'static str,
    egress_allow: Vec<String>,
    master_keys: Vec<MasterKeyView>,
    reveals: Vec<RevealView>,
    security_events: Vec<SecurityEventView>,
}

struct AdminData {
    users: Vec<UserView>,
    organisations: Vec<OrganisationView>,
    registration_open: bool,
    second_factor_required: bool,
    keys_by_id: Vec<(String, i64)>,
    reveals: Vec<RevealView>,
    security_events: Vec<SecurityEventView>,
}

fn load(conn: &mut Work, me: Uuid) -> Result<AdminData, AppError> {
    let overview = admin::overview(conn)?;
    let users = overview
        .users
        .into_iter()
        .map(|user| UserView {
            id: user.id.to_string(),
            is_you: user.id == me,
            email: user.email,
            is_admin: user.role == Role::Admin,
            is_disabled: user.is_disabled,
            configurations: user.tested_ok + user.tested_failed + user.untested,
            ok: user.tested_ok,
            failed: user.tested_failed,
            untested: user.untested,
            created_at: display_time(user.created_at),
        })
        .collect();
    let reveals = overview
        .reveals
        .into_iter()
        .map(|reveal| RevealView {
            at: display_time(reveal.at),
            email: reveal.email,
            configuration: reveal.configuration,
            source: reveal.source,
            conversation: reveal.conversation,
            token: reveal.token.map(|id| id.to_string()),
        })
        .collect();
    let organisations = organisations::overview_for_instance_admin(conn)?
        .into_iter()
        .map(|organisation| OrganisationView {
            id: organisation.id.to_string(),
            name: organisation.name,
            owners: organisation.owners.join(", "),
            member_count: organisation.member_count,
            created_at: display_time(organisation.created_at),
        })
        .collect();
    Ok(AdminData {
        users,
        organisations,
        registration_open: overview.registration_open,
        second_factor_required: overview.second_factor_required,
        keys_by_id: overview.keys_by_id,
        reveals,
        security_events: overview
            .security_events
            .into_iter()
            .map(SecurityEventView::new)
            .collect(),
    })
}

fn render(
    state: &AppState,
    admin: &SignedIn,
    data: AdminData,
    notice: Option<String>,
    errors: FieldErrors,
) -> PageResult {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut master_keys: Vec<MasterKeyView> = state
        .keyring
        .keys()
        .enumerate()
        .map(|(index, key)| MasterKeyView {
            id: key.id().to_string(),
            state: if index == 0 {
                "active (encrypts)"
            } else {
                "configured (decrypts)"
            },
            count: data
                .keys_by_id
                .iter()
                .find(|(id, _)| id == key.id().as_str())
                .map_or(0, |(_, count)| *count),
        })
        .collect();
    for (id, count) in &data.keys_by_id {
        if state.keyring.get(id).is_none() {
            master_keys.push(MasterKeyView {
                id: id.clone(),
                state: "not configured",
                count: *count,
            });
        }
    }
    let page = AdminPage {
        layout: Layout::signed_in("Administration", "admin", admin),
        csrf_token: admin.csrf_token.clone(),
        notice,
        errors,
        users: data.users,
        organisations: data.organisations,
        registration_open: data.registration_open,
        second_factor_required: data.second_factor_required,
        egress_mode: state.settings.egress.mode_name(),
        egress_allow: state.settings.egress.describe_allow_list(),
        master_keys,
        reveals: data.reveals,
        security_events: data.security_events,
    };
    Ok(private_html(status, page.render().map_err(AppError::from)?))
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    done: Option<String>,
}

pub async fn page(state: web::Data<AppState>, Admin(admin): Admin, query: web::Query<NoticeQuery>) -> PageResult {
    let me = admin.user_id;
    let data = state.db.run(move |conn| load(conn, me)).await?;
    let notice = query.into_inner().done.map(|done| match done.as_str() {
        "created" => "The user was created.",
        "deleted" => "The user and everything they owned were deleted.",
        "disabled" => "The user was disabled: their sessions ended and their tokens were revoked.",
        "enabled" => "The user was enabled; their revoked tokens stay revoked.",
        "role" => "The role was changed.",
        "password" => "The password was set; the user's sessions were ended and their tokens revoked.",
        "organisation-deleted" => "The organisation and everything it owned were deleted.",
        _ => "Saved.",
    });
    render(&state, &admin, data, notice.map(str::to_owned), FieldErrors::new())
}

/// Runs an admin action; a refusal (a taken e-mail, the last-admin rule, invalid input)
/// re-renders the page with the reason, anything else is an error page.
async fn act(
    state: web::Data<AppState>,
    admin: SignedIn,
    done: &str,
    action: impl FnOnce(&mut Work) -> Result<(), AccountsError> + Send + 'static,
) -> PageResult {
    match state.db.run(action).await {
        Ok(()) => Ok(see_other(&format!("{PAGE}?done={done}"))),
        // Shown under the e-mail field, as any other refusal of the form.
        Err(error @ AccountsError::EmailTaken) => {
            let errors = FieldErrors::single("email", error.to_string());
            refuse(state, admin, StatusCode::UNPROCESSABLE_ENTITY, errors).await
        }
        Err(error @ (AccountsError::LastAdmin | AccountsError::LastOwner { .. })) => {
            let errors = FieldErrors::single("user", error.to_string());
            refuse(state, admin, StatusCode::CONFLICT, errors).await
        }
        Err(AccountsError::Invalid(errors)) => refuse(state, admin, StatusCode::UNPROCESSABLE_ENTITY, errors).await,
        Err(other) => Err(other.into()),
    }
}

/// The page again, with the reason an action was refused.
async fn refuse(state: web::Data<AppState>, admin: SignedIn, status: StatusCode, errors: FieldErrors) -> PageResult {
    let me = admin.user_id;
    let data = state.db.run(move |conn| load(conn, me)).await?;
    let mut response = render(&state, &admin, data, None, errors)?;
    *response.status_mut() = status;
    Ok(response)
}

/// A user or organisation id from the path; anything but a UUID is a 404.
fn user_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[derive(Deserialize)]
pub struct CreateUserFields {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    admin: Option<String>,
}

pub async fn create_user(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    form: ProtectedForm<CreateUserFields>,
) -> PageResult {
    let CreateUserFields {
        email,
        password,
        admin: make_admin,
    } = form.fields;
    let mut errors = FieldErrors::new();
    let email = Email::parse(&email).map_err(|m| errors.add("email", m)).ok();
    let password = Password::parse(&password).map_err(|m| errors.add("password", m)).ok();
    let (Some(email), Some(password)) = (email, password) else {
        return refuse(state, admin, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    };
    act(state, admin, "created", move |conn| {
        accounts::create_user(conn, &email, &password, make_admin.is_some()).map(|_| ())
    })
    .await
}

/// Disables (`disabled`) or enables the user of the path.
async fn set_disabled(state: web::Data<AppState>, admin: SignedIn, path: &str, disabled: bool) -> PageResult {
    let id = user_id(path)?;
    let actor = accounts::Actor::Admin(admin.user_id);
    let done = if disabled { "disabled" } else { "enabled" };
    act(state, admin, done, move |conn| {
        accounts::set_disabled(conn, id, disabled, actor)
    })
    .await
}

pub async fn disable_user(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    set_disabled(state, admin, &path, true).await
}

pub async fn enable_user(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    set_disabled(state, admin, &path, false).await
}

pub async fn delete_user(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = user_id(&path)?;
    act(state, admin, "deleted", move |conn| accounts::delete_user(conn, id)).await
}

#[derive(Deserialize)]
pub struct RoleField {
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    form: ProtectedForm<RoleField>,
) -> PageResult {
    let id = user_id(&path)?;
    let role = Role::parse(&form.fields.role).ok_or_else(|| AppError::validation("role", "must be admin or member"))?;
    act(state, admin, "role", move |conn| accounts::set_role(conn, id, role)).await
}

#[derive(Deserialize)]
pub struct PasswordField {
    #[serde(default)]
    new_password: String,
}

pub async fn reset_password(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    path: web::Path<String>,
    form: ProtectedForm<PasswordField>,
) -> PageResult {
    let id = user_id(&path)?;
    let password = match Password::parse(&form.fields.new_password) {
        Ok(password) => password,
        Err(message) => {
            let errors = FieldErrors::single("new_password", message);
            return refuse(state, admin, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let actor = accounts::Actor::Admin(admin.user_id);
    act(state, admin, "password", move |conn| {
        accounts::reset_password(conn, id, &password, actor)
    })
    .await
}

#[derive(Deserialize)]
pub struct RegistrationField {
    #[serde(default)]
    open: String,
}

pub async fn set_registration(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    form: ProtectedForm<RegistrationField>,
) -> PageResult {
    let open = form.fields.open == "true";
    act(state, admin, "saved", move |conn| {
        accounts::set_registration_open(conn, open)
    })
    .await
}

#[derive(Deserialize)]
pub struct SecondFactorField {
    #[serde(default)]
    required: String,
}

/// The switch "require a second factor" for every password account.
pub async fn set_second_factor_required(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    form: ProtectedForm<SecondFactorField>,
) -> PageResult {
    let required = form.fields.required == "true";
    act(state, admin, "saved", move |conn| {
        accounts::set_second_factor_required(conn, required)
    })
    .await
}

/// Deletes any organisation with everything it owns.
pub async fn delete_organisation(
    state: web::Data<AppState>,
    Admin(_admin): Admin,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = user_id(&path)?;
    state
        .db
        .run(move |conn| organisations::delete_as_instance_admin(conn, id))
        .await?;
    Ok(see_other(&format!("{PAGE}?done=organisation-deleted")))
}
