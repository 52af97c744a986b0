//! `/api/organisations`: organisations, their members and roles, invitations and the member's
//! own sharing switch. Reads need `read`, changes `write`; anyone outside an organisation gets
//! the same 404 as for an id that does not exist.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Field, FieldReader, parse_id};
use super::wire::{Rfc3339, json_array, json_ok};
use crate::domain::{Email, Member, Organisation, OrganisationEntry, OrganisationName, OrganisationRole, Role, Scope};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::api_error::{ApiResult, ErrorBody};
use crate::http::{Caller, JsonObject};
use crate::services::organisations::{self, Actor, OrganisationChanges};

/// What an organisation decides for its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyResource {
    pub allow_personal_configurations: bool,
    pub default_configuration_id: Option<uuid::Uuid>,
}

/// An organisation as one of its members sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationResource {
    pub id: uuid::Uuid,
    pub name: String,
    /// The caller's role: `owner`, `admin` or `member`.
    pub role: &'static str,
    pub policy: PolicyResource,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
}

impl From<Organisation> for OrganisationResource {
    fn from(organisation: Organisation) -> Self {
        OrganisationResource {
            id: organisation.id,
            name: organisation.name,
            role: organisation.role.as_str(),
            policy: PolicyResource {
                allow_personal_configurations: organisation.policy.allow_personal_configurations,
                default_configuration_id: organisation.policy.default_configuration_id,
            },
            created_at: Rfc3339(organisation.created_at),
        }
    }
}

/// One of the caller's organisations, or one they are invited to (`status` `invited`, `role` the
/// role offered).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationEntryResource {
    pub id: uuid::Uuid,
    pub name: String,
    pub role: &'static str,
    /// `active` or `invited`.
    pub status: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
}

impl From<OrganisationEntry> for OrganisationEntryResource {
    fn from(entry: OrganisationEntry) -> Self {
        OrganisationEntryResource {
            id: entry.id,
            name: entry.name,
            role: entry.role.as_str(),
            status: entry.status.as_str(),
            created_at: Rfc3339(entry.created_at),
        }
    }
}

/// A member, or an e-mail invited (`user_id` null, `status` `invited`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResource {
    pub user_id: Option<uuid::Uuid>,
    pub email: String,
    pub role: &'static str,
    /// `active` or `invited`.
    pub status: &'static str,
}

impl From<Member> for MemberResource {
    fn from(member: Member) -> Self {
        MemberResource {
            user_id: member.user_id,
            email: member.email,
            role: member.role.as_str(),
            status: member.status.as_str(),
        }
    }
}

/// The 202 answer to an invitation: the same for every e-mail, known or not.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationAccepted {
    /// Always `invited`.
    pub status: &'static str,
}

/// The caller's own membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResource {
    pub share_personal_configurations: bool,
}

/// The body of `POST /api/organisations`.
#[derive(Debug, ToSchema)]
pub struct CreateOrganisationRequest {
    /// 1 to 64 characters, unique across the instance ignoring case.
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    name: OrganisationName,
}

impl CreateOrganisationRequest {
    fn read(body: JsonObject) -> Result<Self, AppError> {
        let mut reader = FieldReader::new(body.0, &["name"], &["id", "role", "policy", "created_at"]);
        let name = reader.required_string("name");
        let name = reader.parsed("name", name, OrganisationName::parse);
        let errors = reader.errors.clone();
        reader.finish()?;
        let name = name.ok_or(AppError::Validation(errors))?;
        Ok(CreateOrganisationRequest { name })
    }
}

/// The policy part of `PUT /api/organisations/{id}`: any subset.
#[derive(Debug, ToSchema)]
pub struct PolicyChanges {
    allow_personal_configurations: Option<bool>,
    /// One of the organisation's configurations, or null to clear it.
    #[schema(value_type = Option<String>, format = Uuid)]
    default_configuration_id: Option<Option<uuid::Uuid>>,
}

/// The body of `PUT /api/organisations/{id}`: any subset of `name` and `policy`.
#[derive(Debug, ToSchema)]
pub struct UpdateOrganisationRequest {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    name: Option<OrganisationName>,
    policy: Option<PolicyChanges>,
}

impl UpdateOrganisationRequest {
    fn read(body: JsonObject) -> Result<Self, AppError> {
        let mut reader = FieldReader::new(body.0, &["name", "policy"], &["id", "role", "created_at"]);
        let name = match reader.string("name") {
            Field::Value(name) => reader.parsed("name", Some(name), OrganisationName::parse),
            Field::Null => {
                reader.errors.add("name", "must be a string");
                None
            }
            Field::Absent => None,
        };
        let policy = match reader.take("policy") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(policy)) => {
                let mut inner = FieldReader::new(
                    policy,
                    &["allow_personal_configurations", "default_configuration_id"],
                    &[],
                );
                let allow = match inner.boolean("allow_personal_configurations") {
                    Field::Value(allow) => Some(allow),
                    Field::Null => {
                        inner
                            .errors
                            .add("allow_personal_configurations", "must be true or false");
                        None
                    }
                    Field::Absent => None,
                };
                let default = match inner.string("default_configuration_id") {
                    Field::Value(raw) => inner
                        .parsed("default_configuration_id", Some(raw), |raw| {
                            uuid::Uuid::parse_str(raw).map_err(|_| "must be a configuration id (UUID)".to_owned())
                        })
                        .map(Some),
                    Field::Null => Some(None),
                    Field::Absent => None,
                };
                for (field, messages) in inner.errors.iter() {
                    for message in messages {
                        reader.errors.add(&format!("policy.{field}"), message.clone());
                    }
                }
                Some(PolicyChanges {
                    allow_personal_configurations: allow,
                    default_configuration_id: default,
                })
            }
            Some(_) => {
                reader.errors.add("policy", "must be an object");
                None
            }
        };
        reader.finish()?;
        Ok(UpdateOrganisationRequest { name, policy })
    }

    fn into_changes(self) -> OrganisationChanges {
        let (allow, default) = match self.policy {
            Some(policy) => (policy.allow_personal_configurations, policy.default_configuration_id),
            None => (None, None),
        };
        OrganisationChanges {
            name: self.name,
            allow_personal_configurations: allow,
            default_configuration_id: default,
        }
    }
}

fn parse_role(raw: &str) -> Result<OrganisationRole, String> {
    OrganisationRole::parse(raw).ok_or_else(|| "must be owner, admin or member".to_owned())
}

/// The body of `POST /api/organisations/{id}/members`.
#[derive(Debug, ToSchema)]
pub struct InviteRequest {
    #[schema(value_type = String, format = Email)]
    email: Email,
    /// `owner` (owners only), `admin` or `member` (the default).
    #[schema(value_type = Option<String>)]
    role: OrganisationRole,
}

impl InviteRequest {
    fn read(body: JsonObject) -> Result<Self, AppError> {
        let mut reader = FieldReader::new(body.0, &["email", "role"], &["user_id", "status"]);
        let email = reader.required_string("email");
        let email = reader.parsed("email", email, Email::parse);
        let role = match reader.string("role") {
            Field::Value(role) => reader.parsed("role", Some(role), parse_role),
            Field::Null | Field::Absent => Some(OrganisationRole::Member),
        };
        let errors = reader.errors.clone();
        reader.finish()?;
        match (email, role) {
            (Some(email), Some(role)) => Ok(InviteRequest { email, role }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// The body of `PUT /api/organisations/{id}/members/{user_id}`.
#[derive(Debug, ToSchema)]
pub struct ChangeRoleRequest {
    /// `owner`, `admin` or `member`.
    #[schema(value_type = String)]
    role: OrganisationRole,
}

impl ChangeRoleRequest {
    fn read(body: JsonObject) -> Result<Self, AppError> {
        let mut reader = FieldReader::new(body.0, &["role"], &["user_id", "email", "status"]);
        let role = reader.required_string("role");
        let role = reader.parsed("role", role, parse_role);
        let errors = reader.errors.clone();
        reader.finish()?;
        let role = role.ok_or(AppError::Validation(errors))?;
        Ok(ChangeRoleRequest { role })
    }
}

/// The body of `PUT /api/organisations/{id}/membership`.
#[derive(Debug, ToSchema)]
pub struct MembershipRequest {
    share_personal_configurations: bool,
}

impl MembershipRequest {
    fn read(body: JsonObject) -> Result<Self, AppError> {
        let mut reader = FieldReader::new(body.0, &["share_personal_configurations"], &[]);
        let share = match reader.boolean("share_personal_configurations") {
            Field::Value(share) => Some(share),
            Field::Null | Field::Absent => {
                if reader.errors.get("share_personal_configurations").is_none() {
                    reader.errors.add("share_personal_configurations", "is required");
                }
                None
            }
        };
        let errors = reader.errors.clone();
        reader.finish()?;
        let share = share.ok_or(AppError::Validation(errors))?;
        Ok(MembershipRequest {
            share_personal_configurations: share,
        })
    }
}

/// The query of `DELETE /api/organisations/{id}/invitations`.
#[derive(Debug, Deserialize)]
pub struct WithdrawQuery {
    email: Option<String>,
}

#[utoipa::path(
    get, path = "/api/organisations", tag = "organisations",
    description = "The caller's organisations with their role (`status` `active`), then the invitations waiting for \
        the caller's e-mail (`status` `invited`, `role` the role offered). Scope: `read`.",
    responses(
        (status = 200, body = [OrganisationEntryResource]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let body = caller
        .run(&state.db, Scope::Read, |conn, principal| {
            let entries: Vec<OrganisationEntryResource> = organisations::list_for_user(conn, principal.user_id)?
                .into_iter()
                .map(OrganisationEntryResource::from)
                .collect();
            json_array(&entries, 160)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/organisations", tag = "organisations",
    description = "Create an organisation; the caller becomes its owner. With `LANYARD_ORGANISATION_CREATION=admins` \
        only instance admins may (403 otherwise). Scope: `write`.",
    request_body = CreateOrganisationRequest,
    responses(
        (status = 201, body = OrganisationResource, headers(("Location" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonObject) -> ApiResult<HttpResponse> {
    let request = CreateOrganisationRequest::read(body)?;
    let creation = state.settings.organisation_creation;
    let created = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            let actor = Actor {
                user_id: principal.user_id,
                is_instance_admin: principal.role == Role::Admin,
            };
            Ok(organisations::create(conn, actor, &request.name, creation)?)
        })
        .await?;
    let location = format!("/api/organisations/{}", created.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(OrganisationResource::from(created)))
}

#[utoipa::path(
    get, path = "/api/organisations/{id}", tag = "organisations",
    description = "One of the caller's organisations (members). Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = OrganisationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let found = caller
        .run(&state.db, Scope::Read, move |conn, principal| {
            Ok(organisations::get(conn, id, principal.user_id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OrganisationResource::from(found)))
}

#[utoipa::path(
    put, path = "/api/organisations/{id}", tag = "organisations",
    description = "Rename an organisation or change its `policy` (admins; members get 403 `forbidden`). \
        Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = UpdateOrganisationRequest,
    responses(
        (status = 200, body = OrganisationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let changes = UpdateOrganisationRequest::read(body)?.into_changes();
    let updated = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::update(conn, id, principal.user_id, &changes)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OrganisationResource::from(updated)))
}

#[utoipa::path(
    delete, path = "/api/organisations/{id}", tag = "organisations",
    description = "Delete an organisation with everything it owns (owners). Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::delete(conn, id, principal.user_id)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put, path = "/api/organisations/{id}/membership", tag = "organisations",
    description = "The caller's own membership: whether their personal configurations may count for the \
        organisation's service tokens (off by default). Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = MembershipRequest,
    responses(
        (status = 200, body = MembershipResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_membership(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let request = MembershipRequest::read(body)?;
    let updated = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::set_sharing(
                conn,
                id,
                principal.user_id,
                request.share_personal_configurations,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(MembershipResource {
        share_personal_configurations: updated.share_personal_configurations,
    }))
}

#[utoipa::path(
    get, path = "/api/organisations/{id}/members", tag = "organisations",
    description = "The members and the open invitations (admins). Scope: `read`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = [MemberResource]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn members(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let body = caller
        .run(&state.db, Scope::Read, move |conn, principal| {
            let members: Vec<MemberResource> = organisations::members(conn, id, principal.user_id)?
                .into_iter()
                .map(MemberResource::from)
                .collect();
            json_array(&members, 120)
        })
        .await?;
    Ok(json_ok(body))
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/members", tag = "organisations",
    description = "Invite an e-mail with a role (admins; owners only may invite owners). The answer is 202 and the \
        same for any e-mail, known or not: the invited person accepts or declines, and an e-mail without an account \
        waits for one. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    request_body = InviteRequest,
    responses(
        (status = 202, body = InvitationAccepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: already a member", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let request = InviteRequest::read(body)?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::invite(
                conn,
                id,
                principal.user_id,
                &request.email,
                request.role,
            )?)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(InvitationAccepted { status: "invited" }))
}

/// The organisation and member ids of `/api/organisations/{id}/members/{user_id}`.
fn member_path(path: &(String, String)) -> Result<(uuid::Uuid, uuid::Uuid), AppError> {
    let organisation = parse_id(&path.0).map_err(|error| error.0)?;
    let member = parse_id(&path.1).map_err(|error| error.0)?;
    Ok((organisation, member))
}

#[utoipa::path(
    put, path = "/api/organisations/{id}/members/{user_id}", tag = "organisations",
    description = "Change a member's role (admins; owners when the member is or becomes an owner). The last owner \
        cannot be demoted (409 `last_owner`). Scope: `write`.",
    params(
        ("id" = uuid::Uuid, Path, description = "The organisation's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
    ),
    request_body = ChangeRoleRequest,
    responses(
        (status = 200, body = MemberResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_role(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: JsonObject,
) -> ApiResult<HttpResponse> {
    let (id, member_id) = member_path(&path)?;
    let request = ChangeRoleRequest::read(body)?;
    let member = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::change_role(
                conn,
                id,
                principal.user_id,
                member_id,
                request.role,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(MemberResource::from(member)))
}

#[utoipa::path(
    delete, path = "/api/organisations/{id}/members/{user_id}", tag = "organisations",
    description = "Remove a member (admins; owners to remove an owner); any member may remove themselves. The last \
        owner can neither leave nor be removed (409 `last_owner`). Scope: `write`.",
    params(
        ("id" = uuid::Uuid, Path, description = "The organisation's id"),
        ("user_id" = uuid::Uuid, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, member_id) = member_path(&path)?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::remove(conn, id, principal.user_id, member_id)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    delete, path = "/api/organisations/{id}/invitations", tag = "organisations",
    description = "Withdraw the invitation of `email` (admins; owners for an invitation to be owner). \
        Scope: `write`.",
    params(
        ("id" = uuid::Uuid, Path, description = "The organisation's id"),
        ("email" = String, Query, description = "The e-mail invited"),
    ),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<WithdrawQuery>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let email = Email::parse(query.email.as_deref().unwrap_or_default())
        .map_err(|message| AppError::validation("email", message))?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::withdraw(conn, id, principal.user_id, &email)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/invitation/accept", tag = "organisations",
    description = "Accept the invitation waiting for the caller's e-mail: the caller becomes a member with the role \
        offered. 404 when there is none. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, body = OrganisationResource),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn accept(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let joined = caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::accept(conn, id, principal.user_id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OrganisationResource::from(joined)))
}

#[utoipa::path(
    post, path = "/api/organisations/{id}/invitation/decline", tag = "organisations",
    description = "Decline the invitation waiting for the caller's e-mail. 404 when there is none. Scope: `write`.",
    params(("id" = uuid::Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn decline(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    caller
        .run(&state.db, Scope::Write, move |conn, principal| {
            Ok(organisations::decline(conn, id, principal.user_id)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
