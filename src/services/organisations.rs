//! Organisations: creating them, their members and roles, invitations that the invited person
//! accepts or declines, the organisation's policy, and the last-owner rule.
//!
//! Every change is one write transaction that first locks the organisation's row
//! (`organisations::lock`), so that rules judged on its memberships (the last owner) hold under
//! concurrent requests on both databases. Anyone outside an organisation gets
//! [`OrganisationsError::NotFound`], exactly as for an id that does not exist.

use uuid::Uuid;

use crate::db::{self, DbConnection, DbError, DbId, invitations, memberships, organisations, users};
use crate::domain::{
    Email, FieldErrors, Member, MembershipStatus, Organisation, OrganisationCreation, OrganisationEntry,
    OrganisationName, OrganisationOverview, OrganisationPolicy, OrganisationRole,
};
use crate::services::configurations;

/// What went wrong with an organisation, in the product's words (the edge gives it a status).
#[derive(Debug, thiserror::Error)]
pub enum OrganisationsError {
    /// No such organisation, member or invitation, or the caller is not a member: one answer.
    #[error("not found")]
    NotFound,
    /// The caller's role in the organisation does not allow this.
    #[error("your role in this organisation does not allow this")]
    Forbidden,
    /// `LANYARD_ORGANISATION_CREATION=admins` and the caller is no instance admin.
    #[error("on this instance only admins may create organisations")]
    CreationRestricted,
    #[error("an organisation with this name already exists")]
    NameTaken,
    #[error("this person is already a member of the organisation")]
    AlreadyMember,
    /// The change would leave the organisation without an owner who can sign in.
    #[error("this is the last owner of {organisation}: make another member owner first")]
    LastOwner { organisation: String },
    /// Input refused, field by field.
    #[error("the input is invalid")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(OrganisationsError);

/// Who asks: a signed-in user, and whether they are an instance admin.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: Uuid,
    pub is_instance_admin: bool,
}

/// A change to an organisation: any subset of its name and policy.
#[derive(Debug, Clone, Default)]
pub struct OrganisationChanges {
    pub name: Option<OrganisationName>,
    pub allow_personal_configurations: Option<bool>,
    /// `Some(None)` clears the default.
    pub default_configuration_id: Option<Option<Uuid>>,
}

fn organisation(row: organisations::OrganisationRow, role: OrganisationRole, sharing: bool) -> Organisation {
    Organisation {
        id: row.id.0,
        name: row.name,
        role,
        policy: OrganisationPolicy {
            allow_personal_configurations: row.allow_personal_configurations,
            default_configuration_id: row.default_configuration_id.map(|id| id.0),
        },
        share_personal_configurations: sharing,
        created_at: row.created_at,
    }
}

/// The caller's membership, or `NotFound` for anyone outside; `Forbidden` when their role does
/// not include `needed`.
fn require_role(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    needed: OrganisationRole,
) -> Result<memberships::MembershipRow, OrganisationsError> {
    let membership = match memberships::find(conn, DbId(organisation_id), DbId(user_id))? {
        Some(membership) => membership,
        None => acting_owner(conn, organisation_id, user_id)?.ok_or(OrganisationsError::NotFound)?,
    };
    if membership.role.includes(needed) {
        Ok(membership)
    } else {
        Err(OrganisationsError::Forbidden)
    }
}

/// An instance admin acts as the owner of a managed organisation (one the single sign-on group
/// mapping created) while it has no owner who can sign in: otherwise nobody could manage it.
fn acting_owner(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
) -> Result<Option<memberships::MembershipRow>, OrganisationsError> {
    let Some(organisation) = organisations::find(conn, DbId(organisation_id))? else {
        return Ok(None);
    };
    let is_instance_admin = users::find_by_id(conn, DbId(user_id))?
        .is_some_and(|user| user.role == crate::domain::Role::Admin && !user.is_disabled);
    if !organisation.managed || !is_instance_admin || !memberships::active_owners(conn, organisation.id)?.is_empty() {
        return Ok(None);
    }
    Ok(Some(memberships::MembershipRow {
        organisation_id: organisation.id,
        user_id: DbId(user_id),
        role: OrganisationRole::Owner,
        share_personal_configurations: false,
        created_at: organisation.created_at,
        updated_at: organisation.updated_at,
        from_single_sign_on: false,
    }))
}

/// Locks the organisation for the rest of the transaction, then checks the caller's role.
fn lock_as(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    needed: OrganisationRole,
) -> Result<memberships::MembershipRow, OrganisationsError> {
    if !organisations::lock(conn, DbId(organisation_id))? {
        return Err(OrganisationsError::NotFound);
    }
    require_role(conn, organisation_id, user_id, needed)
}

/// Refuses a change that takes `user_id` away from the owners who can sign in when they are the
/// last of them. Judged on the owners as they are once the organisation is locked.
fn ensure_not_last_owner(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
) -> Result<(), OrganisationsError> {
    let owners = memberships::active_owners(conn, DbId(organisation_id))?;
    if owners.len() <= 1 && owners.contains(&DbId(user_id)) {
        let organisation = organisation_name(conn, organisation_id)?;
        return Err(OrganisationsError::LastOwner { organisation });
    }
    Ok(())
}

fn organisation_name(conn: &mut DbConnection, organisation_id: Uuid) -> Result<String, OrganisationsError> {
    Ok(organisations::find(conn, DbId(organisation_id))?
        .map(|row| row.name)
        .unwrap_or_default())
}

fn user_email_key(conn: &mut DbConnection, user_id: Uuid) -> Result<String, OrganisationsError> {
    Ok(users::find_by_id(conn, DbId(user_id))?
        .ok_or(OrganisationsError::NotFound)?
        .email_key)
}

fn name_taken(error: diesel::result::Error) -> OrganisationsError {
    match error {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            OrganisationsError::NameTaken
        }
        other => OrganisationsError::from(other),
    }
}

/// Creates an organisation; the creator becomes its owner. With
/// [`OrganisationCreation::Admins`], only instance admins may.
pub fn create(
    conn: &mut DbConnection,
    actor: Actor,
    name: &OrganisationName,
    creation: OrganisationCreation,
) -> Result<Organisation, OrganisationsError> {
    if creation == OrganisationCreation::Admins && !actor.is_instance_admin {
        return Err(OrganisationsError::CreationRestricted);
    }
    let now = db::now();
    let row = organisations::OrganisationRow {
        id: DbId(Uuid::now_v7()),
        name: name.as_str().to_owned(),
        name_key: name.key(),
        allow_personal_configurations: false,
        default_configuration_id: None,
        created_at: now,
        updated_at: now,
        managed: false,
    };
    db::write_transaction(conn, |conn| {
        if !users::lock_owner(conn, DbId(actor.user_id))? {
            return Err(OrganisationsError::NotFound);
        }
        if organisations::name_taken(conn, &row.name_key, None)? {
            return Err(OrganisationsError::NameTaken);
        }
        organisations::insert(conn, &row).map_err(name_taken)?;
        memberships::insert(
            conn,
            &memberships::MembershipRow {
                organisation_id: row.id,
                user_id: DbId(actor.user_id),
                role: OrganisationRole::Owner,
                share_personal_configurations: false,
                created_at: now,
                updated_at: now,
                from_single_sign_on: false,
            },
        )?;
        Ok(())
    })?;
    Ok(organisation(row, OrganisationRole::Owner, false))
}

/// The caller's organisations with their role, then the invitations waiting for their e-mail.
pub fn list_for_user(conn: &mut DbConnection, user_id: Uuid) -> Result<Vec<OrganisationEntry>, OrganisationsError> {
    let mut entries: Vec<OrganisationEntry> = organisations::list_for_member(conn, DbId(user_id))?
        .into_iter()
        .map(|(row, role)| OrganisationEntry {
            id: row.id.0,
            name: row.name,
            role,
            status: MembershipStatus::Active,
            created_at: row.created_at,
        })
        .collect();
    let email_key = user_email_key(conn, user_id)?;
    for (invitation, name, created_at) in invitations::list_for_email(conn, &email_key)? {
        // An invitation left over for someone who is a member since (joined another way).
        if entries.iter().any(|entry| entry.id == invitation.organisation_id.0) {
            continue;
        }
        entries.push(OrganisationEntry {
            id: invitation.organisation_id.0,
            name,
            role: invitation.role,
            status: MembershipStatus::Invited,
            created_at,
        });
    }
    Ok(entries)
}

/// One organisation, for its members.
pub fn get(conn: &mut DbConnection, organisation_id: Uuid, user_id: Uuid) -> Result<Organisation, OrganisationsError> {
    let (row, role, sharing) = organisations::find_for_member(conn, DbId(organisation_id), DbId(user_id))?
        .ok_or(OrganisationsError::NotFound)?;
    Ok(organisation(row, role, sharing))
}

/// Renames an organisation and changes its policy (admins). Its default must be one of its own
/// configurations.
pub fn update(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    changes: &OrganisationChanges,
) -> Result<Organisation, OrganisationsError> {
    db::write_transaction(conn, |conn| {
        lock_as(conn, organisation_id, user_id, OrganisationRole::Admin)?;
        if let Some(Some(default)) = changes.default_configuration_id
            && !crate::db::llm_configurations::ids_of_organisation(conn, DbId(organisation_id))?
                .contains(&DbId(default))
        {
            return Err(OrganisationsError::Invalid(FieldErrors::single(
                "policy.default_configuration_id",
                "must be one of the organisation's configurations",
            )));
        }
        let now = db::now();
        if let Some(name) = &changes.name {
            if organisations::name_taken(conn, &name.key(), Some(DbId(organisation_id)))? {
                return Err(OrganisationsError::NameTaken);
            }
            organisations::rename(conn, DbId(organisation_id), name.as_str(), &name.key(), now).map_err(name_taken)?;
        }
        if changes.allow_personal_configurations.is_some() || changes.default_configuration_id.is_some() {
            let current = get(conn, organisation_id, user_id)?;
            let allow = changes
                .allow_personal_configurations
                .unwrap_or(current.policy.allow_personal_configurations);
            let default = match changes.default_configuration_id {
                Some(default) => default,
                None => current.policy.default_configuration_id,
            };
            organisations::set_policy(conn, DbId(organisation_id), allow, default.map(DbId), now)?;
        }
        get(conn, organisation_id, user_id)
    })
}

/// Deletes an organisation with its memberships and invitations (owners).
pub fn delete(conn: &mut DbConnection, organisation_id: Uuid, user_id: Uuid) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        lock_as(conn, organisation_id, user_id, OrganisationRole::Owner)?;
        configurations::delete_everything_of(conn, organisation_id)?;
        organisations::delete(conn, DbId(organisation_id))?;
        Ok(())
    })
}

/// The members and the open invitations (admins).
pub fn members(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<Member>, OrganisationsError> {
    require_role(conn, organisation_id, user_id, OrganisationRole::Admin)?;
    let mut members: Vec<Member> = memberships::list_with_emails(conn, DbId(organisation_id))?
        .into_iter()
        .map(|(id, email, role)| Member {
            user_id: Some(id.0),
            email,
            role,
            status: MembershipStatus::Active,
        })
        .collect();
    members.extend(
        invitations::list_for_organisation(conn, DbId(organisation_id))?
            .into_iter()
            .map(|invitation| Member {
                user_id: None,
                email: invitation.email,
                role: invitation.role,
                status: MembershipStatus::Invited,
            }),
    );
    Ok(members)
}

/// Invites an e-mail with a role (admins; owners only may invite owners). The answer is the same
/// whether or not an account has that e-mail: the invitation waits for one. Inviting an e-mail
/// again changes the role its invitation offers.
pub fn invite(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    email: &Email,
    role: OrganisationRole,
) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        let inviter = lock_as(conn, organisation_id, user_id, OrganisationRole::Admin)?;
        if role == OrganisationRole::Owner && inviter.role != OrganisationRole::Owner {
            return Err(OrganisationsError::Forbidden);
        }
        let email_key = email.key();
        if let Some(existing) = users::find_by_email_key(conn, &email_key)?
            && memberships::find(conn, DbId(organisation_id), existing.id)?.is_some()
        {
            return Err(OrganisationsError::AlreadyMember);
        }
        match invitations::find(conn, DbId(organisation_id), &email_key)? {
            Some(open) => {
                if open.role == OrganisationRole::Owner && inviter.role != OrganisationRole::Owner {
                    return Err(OrganisationsError::Forbidden);
                }
                invitations::set_role(conn, open.id, role)?;
            }
            None => invitations::insert(
                conn,
                &invitations::InvitationRow {
                    id: DbId(Uuid::now_v7()),
                    organisation_id: DbId(organisation_id),
                    email: email.as_str().to_owned(),
                    email_key,
                    role,
                    invited_by: Some(DbId(user_id)),
                    created_at: db::now(),
                },
            )?,
        }
        Ok(())
    })
}

/// The invited person accepts: they become a member with the role offered.
pub fn accept(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
) -> Result<Organisation, OrganisationsError> {
    db::write_transaction(conn, |conn| {
        // The user first, then the organisation: the order every transaction that concerns both
        // takes them in (see `accounts::ensure_not_last_owner_anywhere`).
        if !users::lock_owner(conn, DbId(user_id))? || !organisations::lock(conn, DbId(organisation_id))? {
            return Err(OrganisationsError::NotFound);
        }
        let email_key = user_email_key(conn, user_id)?;
        let invitation =
            invitations::find(conn, DbId(organisation_id), &email_key)?.ok_or(OrganisationsError::NotFound)?;
        invitations::delete(conn, invitation.id)?;
        if memberships::find(conn, DbId(organisation_id), DbId(user_id))?.is_none() {
            let now = db::now();
            memberships::insert(
                conn,
                &memberships::MembershipRow {
                    organisation_id: DbId(organisation_id),
                    user_id: DbId(user_id),
                    role: invitation.role,
                    share_personal_configurations: false,
                    created_at: now,
                    updated_at: now,
                    from_single_sign_on: false,
                },
            )?;
        }
        get(conn, organisation_id, user_id)
    })
}

/// The invited person declines: the invitation is gone.
pub fn decline(conn: &mut DbConnection, organisation_id: Uuid, user_id: Uuid) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        let email_key = user_email_key(conn, user_id)?;
        let invitation =
            invitations::find(conn, DbId(organisation_id), &email_key)?.ok_or(OrganisationsError::NotFound)?;
        invitations::delete(conn, invitation.id)?;
        Ok(())
    })
}

/// Withdraws an open invitation (admins; owners for an invitation to be owner).
pub fn withdraw(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    email: &Email,
) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        let actor = lock_as(conn, organisation_id, user_id, OrganisationRole::Admin)?;
        let invitation =
            invitations::find(conn, DbId(organisation_id), &email.key())?.ok_or(OrganisationsError::NotFound)?;
        if invitation.role == OrganisationRole::Owner && actor.role != OrganisationRole::Owner {
            return Err(OrganisationsError::Forbidden);
        }
        invitations::delete(conn, invitation.id)?;
        Ok(())
    })
}

/// Changes a member's role (admins; owners when the member is or becomes an owner). The last
/// owner cannot be demoted.
pub fn change_role(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    member_id: Uuid,
    role: OrganisationRole,
) -> Result<Member, OrganisationsError> {
    db::write_transaction(conn, |conn| {
        // The member's user row before the organisation: the order of `accounts`' transactions.
        users::lock_owner(conn, DbId(member_id))?;
        let actor = lock_as(conn, organisation_id, user_id, OrganisationRole::Admin)?;
        let member =
            memberships::find(conn, DbId(organisation_id), DbId(member_id))?.ok_or(OrganisationsError::NotFound)?;
        let owner_change = member.role == OrganisationRole::Owner || role == OrganisationRole::Owner;
        if owner_change && actor.role != OrganisationRole::Owner {
            return Err(OrganisationsError::Forbidden);
        }
        if member.role == OrganisationRole::Owner && role != OrganisationRole::Owner {
            ensure_not_last_owner(conn, organisation_id, member_id)?;
        }
        memberships::set_role(conn, DbId(organisation_id), DbId(member_id), role, db::now())?;
        let email = users::find_by_id(conn, DbId(member_id))?
            .ok_or(OrganisationsError::NotFound)?
            .email;
        Ok(Member {
            user_id: Some(member_id),
            email,
            role,
            status: MembershipStatus::Active,
        })
    })
}

/// Removes a member (admins; owners to remove an owner); any member may remove themselves. The
/// last owner can neither leave nor be removed.
pub fn remove(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    member_id: Uuid,
) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        // The member's user row before the organisation, as `change_role` and `accounts` take
        // them: forgetting the member's organisation choices below may lock that row, and in the
        // other order a concurrent demotion of the same member deadlocked (PostgreSQL).
        users::lock_owner(conn, DbId(member_id))?;
        let needed = if member_id == user_id {
            OrganisationRole::Member
        } else {
            OrganisationRole::Admin
        };
        let actor = lock_as(conn, organisation_id, user_id, needed)?;
        let member =
            memberships::find(conn, DbId(organisation_id), DbId(member_id))?.ok_or(OrganisationsError::NotFound)?;
        if member.role == OrganisationRole::Owner {
            if member_id != user_id && actor.role != OrganisationRole::Owner {
                return Err(OrganisationsError::Forbidden);
            }
            ensure_not_last_owner(conn, organisation_id, member_id)?;
        }
        memberships::delete(conn, DbId(organisation_id), DbId(member_id))?;
        configurations::forget_organisation_choices(conn, member_id, organisation_id)?;
        Ok(())
    })
}

/// Whether the caller's own configurations may count for the organisation's service tokens
/// (only the member themselves decides).
pub fn set_sharing(
    conn: &mut DbConnection,
    organisation_id: Uuid,
    user_id: Uuid,
    share: bool,
) -> Result<Organisation, OrganisationsError> {
    db::write_transaction(conn, |conn| {
        lock_as(conn, organisation_id, user_id, OrganisationRole::Member)?;
        memberships::set_sharing(conn, DbId(organisation_id), DbId(user_id), share, db::now())?;
        get(conn, organisation_id, user_id)
    })
}

/// For `accounts`: refuses to disable or delete a user who is the last owner (who can sign in)
/// of an organisation. Locks the user's organisations (by id) for the rest of the caller's
/// transaction, after the caller locked the user's row, so that a concurrent demotion or
/// departure of another owner waits for this change and then sees it.
pub fn sole_owner_of(conn: &mut DbConnection, user_id: Uuid) -> Result<Option<String>, DbError> {
    for (organisation_id, name) in memberships::organisations_of(conn, DbId(user_id))? {
        organisations::lock(conn, organisation_id)?;
        let owners = memberships::active_owners(conn, organisation_id)?;
        if owners.len() <= 1 && owners.contains(&DbId(user_id)) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Every organisation with its owners and member count (for the instance's admins; the page
/// that calls this checks the role).
pub fn overview_for_instance_admin(conn: &mut DbConnection) -> Result<Vec<OrganisationOverview>, OrganisationsError> {
    let members = organisations::all_members(conn)?;
    Ok(organisations::list_all(conn)?
        .into_iter()
        .map(|row| {
            let of_this = members.iter().filter(|(organisation, _, _)| *organisation == row.id);
            OrganisationOverview {
                id: row.id.0,
                name: row.name,
                owners: of_this
                    .clone()
                    .filter(|(_, role, _)| *role == OrganisationRole::Owner)
                    .map(|(_, _, email)| email.clone())
                    .collect(),
                member_count: i64::try_from(of_this.count()).unwrap_or(i64::MAX),
                created_at: row.created_at,
            }
        })
        .collect())
}

/// Deletes any organisation with everything it owns (for the instance's admins; the page that
/// calls this checks the role).
pub fn delete_as_instance_admin(conn: &mut DbConnection, organisation_id: Uuid) -> Result<(), OrganisationsError> {
    db::write_transaction(conn, |conn| {
        if !organisations::lock(conn, DbId(organisation_id))? {
            return Err(OrganisationsError::NotFound);
        }
        configurations::delete_everything_of(conn, organisation_id)?;
        organisations::delete(conn, DbId(organisation_id))?;
        Ok(())
    })
}
