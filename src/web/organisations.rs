//! `/organisations` (the caller's organisations, the invitations waiting for them, a form to
//! create one) and `/organisations/{id}` (members and invitations, roles, the policy, the
//! caller's own sharing switch). Every action is a plain form post answered with a 303; a refusal
//! shows the page again with the reason.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::organisation_resources::{self, OrganisationSections, ResourceForms, Viewer};
use super::respond::{html, see_other};
use super::views::{HtmlId, Layout, display_time};
use crate::domain::{
    Email, MembershipStatus, Organisation, OrganisationEntry, OrganisationName, OrganisationRole, Role,
};
use crate::error::{AppError, FieldErrors};
use crate::http::AppState;
use crate::http::auth::{NoFields, ProtectedForm, SignedIn};
use crate::http::page_error::{PageError, PageResult};
use crate::services::Work;
use crate::services::organisations::{self, Actor, OrganisationChanges, OrganisationsError};

const LIST: &str = "/organisations";

pub struct EntryView {
    pub id: HtmlId,
    pub name: String,
    pub role: &'static str,
    pub invited: bool,
}

impl From<OrganisationEntry> for EntryView {
    fn from(entry: OrganisationEntry) -> Self {
        EntryView {
            id: HtmlId(entry.id),
            name: entry.name,
            role: entry.role.as_str(),
            invited: entry.status == MembershipStatus::Invited,
        }
    }
}

#[derive(Template)]
#[template(path = "organisations/page.html")]
struct ListPage {
    layout: Layout,
    csrf_token: String,
    notice: Option<&'static str>,
    organisations: Vec<EntryView>,
    invitations: Vec<EntryView>,
    name: String,
    errors: FieldErrors,
}

pub struct MemberView {
    pub user_id: Option<HtmlId>,
    pub email: String,
    pub role: &'static str,
    pub invited: bool,
    pub is_you: bool,
}

#[derive(Template)]
#[template(path = "organisations/detail.html")]
struct DetailPage {
    layout: Layout,
    csrf_token: String,
    notice: Option<&'static str>,
    errors: FieldErrors,
    id: HtmlId,
    name: String,
    role: &'static str,
    is_admin: bool,
    is_owner: bool,
    allow_personal_configurations: bool,
    share_personal_configurations: bool,
    created_at: String,
    members: Vec<MemberView>,
    roles: [&'static str; 3],
    invite_email: String,
    /// The caller's own id, for the form that leaves.
    you: HtmlId,
    /// Its connections, configurations and webhooks (`organisation_resources`).
    resources: OrganisationSections,
    /// Service tokens and the reveal audit, for admins (`organisation_tokens`).
    service: Option<super::organisation_tokens::Section>,
}

struct Detail {
    organisation: Organisation,
    members: Vec<MemberView>,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    done: Option<String>,
}

fn notice(query: &NoticeQuery) -> Option<&'static str> {
    Some(match query.done.as_deref()? {
        "created" => "The organisation was created; you are its owner.",
        "joined" => "You joined the organisation.",
        "declined" => "The invitation was declined.",
        "left" => "You left the organisation.",
        "deleted" => "The organisation and everything it owned were deleted.",
        "invited" => "The invitation was sent: the person sees it once they sign in with that e-mail.",
        "withdrawn" => "The invitation was withdrawn.",
        "role" => "The role was changed.",
        "removed" => "The member was removed.",
        "sharing" => "Your sharing choice was saved.",
        _ => "Saved.",
    })
}

/// The status the edge gives a refusal (`http::service_errors`), for the page shown again.
fn status_of(error: OrganisationsError) -> StatusCode {
    StatusCode::from_u16(AppError::from(error).status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An organisation or member id from the path; anything but a UUID is the same 404 as a
/// missing one.
pub(super) fn path_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

fn load_list(conn: &mut Work, user_id: Uuid) -> Result<(Vec<EntryView>, Vec<EntryView>), AppError> {
    let (invitations, organisations): (Vec<EntryView>, Vec<EntryView>) = organisations::list_for_user(conn, user_id)?
        .into_iter()
        .map(EntryView::from)
        .partition(|entry| entry.invited);
    Ok((organisations, invitations))
}

async fn render_list(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    notice: Option<&'static str>,
    name: String,
    errors: FieldErrors,
) -> PageResult {
    let user_id = user.user_id;
    let (organisations, invitations) = state.db.run(move |conn| load_list(conn, user_id)).await?;
    let page = ListPage {
        layout: Layout::signed_in("Organisations", "organisations", user),
        csrf_token: user.csrf_token.clone(),
        notice,
        organisations,
        invitations,
        name,
        errors,
    };
    Ok(html(status, page.render().map_err(AppError::from)?))
}

pub async fn page(state: web::Data<AppState>, user: SignedIn, query: web::Query<NoticeQuery>) -> PageResult {
    render_list(
        &state,
        &user,
        StatusCode::OK,
        notice(&query),
        String::new(),
        FieldErrors::new(),
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateFields {
    #[serde(default)]
    name: String,
}

pub async fn create(state: web::Data<AppState>, user: SignedIn, form: ProtectedForm<CreateFields>) -> PageResult {
    let typed = form.fields.name.clone();
    let name = match OrganisationName::parse(&form.fields.name) {
        Ok(name) => name,
        Err(message) => {
            let errors = FieldErrors::single("name", message);
            return render_list(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, None, typed, errors).await;
        }
    };
    let actor = Actor {
        user_id: user.user_id,
        is_instance_admin: user.role == Role::Admin,
    };
    let creation = state.settings.organisation_creation;
    match state
        .db
        .run(move |conn| organisations::create(conn, actor, &name, creation))
        .await
    {
        Ok(created) => Ok(see_other(&format!("{LIST}/{}?done=created", created.id))),
        Err(error @ (OrganisationsError::NameTaken | OrganisationsError::CreationRestricted)) => {
            let errors = FieldErrors::single("name", error.to_string());
            render_list(&state, &user, status_of(error), None, typed, errors).await
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn accept(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    answer_invitation(&state, &user, &path, organisations::accept, |id| {
        format!("{LIST}/{id}?done=joined")
    })
    .await
}

pub async fn decline(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    answer_invitation(&state, &user, &path, organisations::decline, |_| {
        format!("{LIST}?done=declined")
    })
    .await
}

/// Accepts or declines the invitation to the organisation in `path` that waits for the
/// signed-in user's e-mail, then a 303 to `done`; no invitation is an error page (404).
async fn answer_invitation<T: Send + 'static>(
    state: &AppState,
    user: &SignedIn,
    path: &str,
    answer: fn(&mut Work, Uuid, Uuid) -> Result<T, OrganisationsError>,
    done: impl FnOnce(Uuid) -> String,
) -> PageResult {
    let id = path_id(path)?;
    let user_id = user.user_id;
    state.db.run(move |conn| answer(conn, id, user_id)).await?;
    Ok(see_other(&done(id)))
}

fn load_detail(conn: &mut Work, id: Uuid, user_id: Uuid) -> Result<Detail, OrganisationsError> {
    let organisation = organisations::get(conn, id, user_id)?;
    let members = if organisation.role.includes(OrganisationRole::Admin) {
        organisations::members(conn, id, user_id)?
            .into_iter()
            .map(|member| MemberView {
                user_id: member.user_id.map(HtmlId),
                is_you: member.user_id == Some(user_id),
                email: member.email,
                role: member.role.as_str(),
                invited: member.status == MembershipStatus::Invited,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Detail { organisation, members })
}

async fn render_detail(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    status: StatusCode,
    notice: Option<&'static str>,
    errors: FieldErrors,
    invite_email: String,
) -> PageResult {
    render_page(
        state,
        user,
        id,
        status,
        PageForms {
            notice,
            errors,
            invite_email,
            ..PageForms::default()
        },
    )
    .await
}

/// The page again after a post of one of the organisation's resource forms (`forms` as it
/// left them).
pub(super) async fn render_with_resource_forms(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    status: StatusCode,
    forms: ResourceForms,
) -> PageResult {
    let forms = PageForms {
        resources: forms,
        ..PageForms::default()
    };
    render_page(state, user, id, status, forms).await
}

/// The page with the service-token form in the state `tokens` (a token just created, or the
/// form's refusals).
pub(super) async fn render_with_token_form(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    status: StatusCode,
    tokens: super::organisation_tokens::TokenForm,
) -> PageResult {
    let forms = PageForms {
        tokens,
        ..PageForms::default()
    };
    render_page(state, user, id, status, forms).await
}

/// What the page's forms show: a notice, the member forms' refusals and input, and the state of
/// the resource and token forms.
#[derive(Default)]
struct PageForms {
    notice: Option<&'static str>,
    errors: FieldErrors,
    invite_email: String,
    resources: ResourceForms,
    tokens: super::organisation_tokens::TokenForm,
}

async fn render_page(state: &AppState, user: &SignedIn, id: Uuid, status: StatusCode, forms: PageForms) -> PageResult {
    let PageForms {
        notice,
        errors,
        invite_email,
        resources: forms,
        tokens,
    } = forms;
    let user_id = user.user_id;
    let viewer = Viewer::of(user);
    let (Detail { organisation, members }, resources) = state
        .db
        .run(move |conn| {
            let detail = load_detail(conn, id, user_id)?;
            let is_admin = detail.organisation.role.includes(OrganisationRole::Admin);
            let resources = organisation_resources::load(conn, id, &viewer, is_admin, forms)?;
            Ok::<_, AppError>((detail, resources))
        })
        .await?;
    let role = organisation.role;
    let service = super::organisation_tokens::section(state, user_id, id, role, tokens).await?;
    let page = DetailPage {
        layout: Layout::signed_in(organisation.name.clone(), "organisations", user),
        csrf_token: user.csrf_token.clone(),
        notice,
        errors,
        id: HtmlId(organisation.id),
        name: organisation.name,
        role: role.as_str(),
        is_admin: role.includes(OrganisationRole::Admin),
        is_owner: role == OrganisationRole::Owner,
        allow_personal_configurations: organisation.policy.allow_personal_configurations,
        share_personal_configurations: organisation.share_personal_configurations,
        created_at: display_time(organisation.created_at),
        members,
        roles: OrganisationRole::ALL.map(OrganisationRole::as_str),
        invite_email,
        you: HtmlId(user.user_id),
        resources,
        service,
    };
    Ok(html(status, page.render().map_err(AppError::from)?))
}

pub async fn detail(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> PageResult {
    let id = path_id(&path)?;
    render_detail(
        &state,
        &user,
        id,
        StatusCode::OK,
        notice(&query),
        FieldErrors::new(),
        String::new(),
    )
    .await
}

/// Runs an action on the organisation `id`: on success a 303 to `done`; a refusal the caller
/// can act on (the last owner, a role that does not allow it, invalid input, a taken name or
/// e-mail) shows the organisation's page again with the reason under `field`; anything else
/// (not found) is an error page.
async fn act<T: Send + 'static>(
    state: web::Data<AppState>,
    user: SignedIn,
    id: Uuid,
    field: &str,
    done: String,
    action: impl FnOnce(&mut Work, Uuid) -> Result<T, OrganisationsError> + Send + 'static,
) -> PageResult {
    let user_id = user.user_id;
    match state.db.run(move |conn| action(conn, user_id)).await {
        Ok(_) => Ok(see_other(&done)),
        Err(OrganisationsError::Invalid(errors)) => {
            refuse(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await
        }
        Err(
            error @ (OrganisationsError::LastOwner { .. }
            | OrganisationsError::Forbidden
            | OrganisationsError::NameTaken
            | OrganisationsError::AlreadyMember),
        ) => {
            let errors = FieldErrors::single(field, error.to_string());
            refuse(&state, &user, id, status_of(error), errors).await
        }
        Err(other) => Err(PageError::from(other)),
    }
}

async fn refuse(state: &AppState, user: &SignedIn, id: Uuid, status: StatusCode, errors: FieldErrors) -> PageResult {
    render_detail(state, user, id, status, None, errors, String::new()).await
}

#[derive(Deserialize)]
pub struct InviteFields {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

fn parse_role(raw: &str) -> Result<OrganisationRole, String> {
    OrganisationRole::parse(raw).ok_or_else(|| "must be owner, admin or member".to_owned())
}

pub async fn invite(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<InviteFields>,
) -> PageResult {
    let id = path_id(&path)?;
    let mut errors = FieldErrors::new();
    let email = Email::parse(&form.fields.email)
        .map_err(|message| errors.add("email", message))
        .ok();
    let role = parse_role(&form.fields.role)
        .map_err(|message| errors.add("role", message))
        .ok();
    let (Some(email), Some(role)) = (email, role) else {
        let typed = form.fields.email.clone();
        return render_detail(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, None, errors, typed).await;
    };
    act(
        state,
        user,
        id,
        "email",
        format!("{LIST}/{id}?done=invited"),
        move |conn, me| organisations::invite(conn, id, me, &email, role),
    )
    .await
}

#[derive(Deserialize)]
pub struct EmailField {
    #[serde(default)]
    email: String,
}

pub async fn withdraw(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<EmailField>,
) -> PageResult {
    let id = path_id(&path)?;
    let email = Email::parse(&form.fields.email).map_err(|message| AppError::validation("email", message))?;
    act(
        state,
        user,
        id,
        "email",
        format!("{LIST}/{id}?done=withdrawn"),
        move |conn, me| organisations::withdraw(conn, id, me, &email),
    )
    .await
}

#[derive(Deserialize)]
pub struct RoleField {
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    form: ProtectedForm<RoleField>,
) -> PageResult {
    let id = path_id(&path.0)?;
    let member = path_id(&path.1)?;
    let role = match parse_role(&form.fields.role) {
        Ok(role) => role,
        Err(message) => {
            let errors = FieldErrors::single("role", message);
            return refuse(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    act(
        state,
        user,
        id,
        "role",
        format!("{LIST}/{id}?done=role"),
        move |conn, me| organisations::change_role(conn, id, me, member, role),
    )
    .await
}

pub async fn remove(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<(String, String)>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = path_id(&path.0)?;
    let member = path_id(&path.1)?;
    let done = if member == user.user_id {
        format!("{LIST}?done=left")
    } else {
        format!("{LIST}/{id}?done=removed")
    };
    act(state, user, id, "member", done, move |conn, me| {
        organisations::remove(conn, id, me, member)
    })
    .await
}

#[derive(Deserialize)]
pub struct PolicyFields {
    #[serde(default)]
    name: String,
    allow_personal_configurations: Option<String>,
}

pub async fn policy(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<PolicyFields>,
) -> PageResult {
    let id = path_id(&path)?;
    let name = match OrganisationName::parse(&form.fields.name) {
        Ok(name) => name,
        Err(message) => {
            let errors = FieldErrors::single("name", message);
            return refuse(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let changes = OrganisationChanges {
        name: Some(name),
        allow_personal_configurations: Some(form.fields.allow_personal_configurations.as_deref() == Some("true")),
        default_configuration_id: None,
    };
    act(
        state,
        user,
        id,
        "name",
        format!("{LIST}/{id}?done=saved"),
        move |conn, me| organisations::update(conn, id, me, &changes),
    )
    .await
}

#[derive(Deserialize)]
pub struct SharingField {
    share_personal_configurations: Option<String>,
}

pub async fn membership(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    form: ProtectedForm<SharingField>,
) -> PageResult {
    let id = path_id(&path)?;
    let share = form.fields.share_personal_configurations.as_deref() == Some("true");
    act(
        state,
        user,
        id,
        "sharing",
        format!("{LIST}/{id}?done=sharing"),
        move |conn, me| organisations::set_sharing(conn, id, me, share),
    )
    .await
}

pub async fn delete(
    state: web::Data<AppState>,
    user: SignedIn,
    path: web::Path<String>,
    _form: ProtectedForm<NoFields>,
) -> PageResult {
    let id = path_id(&path)?;
    act(
        state,
        user,
        id,
        "organisation",
        format!("{LIST}?done=deleted"),
        move |conn, me| organisations::delete(conn, id, me),
    )
    .await
}
