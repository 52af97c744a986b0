//! Service tokens: `lny_` tokens owned by an organisation, with which the team's runtime
//! resolves for its members (`resolve`) and lists the organisation's configurations and
//! connections (`read`). Its admins and owners create (shown once), list and revoke them, and
//! read the organisation's audit of reveals. Anyone outside the organisation gets `NotFound`,
//! exactly as for an id that does not exist.

use chrono::{Duration, NaiveDateTime};
use uuid::Uuid;

use super::accounts::{self, AccountsError, Reauthentication};
use super::tokens::{CreatedToken, NewToken, TokenSummary};
use crate::crypto::{MasterKeyring, TokenSecret};
use crate::db::{self, DbConnection, DbError, DbId, memberships, organisation_reveals, organisations, service_tokens};
use crate::domain::{OrganisationRole, Scope, Scopes, UserCap};

/// What went wrong with a service token or the audit (the edge gives it a status).
#[derive(Debug, thiserror::Error)]
pub enum ServiceTokensError {
    /// No such organisation or token, or the caller is no member: one answer.
    #[error("not found")]
    NotFound,
    /// A member who is neither admin nor owner.
    #[error("only the organisation's admins and owners manage its service tokens and read its audit")]
    Forbidden,
    /// The organisation holds as many live service tokens as the cap allows.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    /// Re-authenticating for a `resolve` token failed.
    #[error(transparent)]
    Account(#[from] AccountsError),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(ServiceTokensError);

/// A service token's scopes: `read` and/or `resolve`, nothing else.
pub fn parse_scopes(raw: &str) -> Result<Scopes, String> {
    let scopes = Scopes::parse(raw)?;
    if scopes.iter().any(|scope| scope == Scope::Write) {
        return Err("a service token's scopes are `read` and `resolve`".into());
    }
    Ok(scopes)
}

/// The most lines the audit shows.
pub const AUDIT_LIMIT: i64 = 500;

/// Refuses anyone but the organisation's admins and owners (`NotFound` for outsiders).
pub fn require_admin(conn: &mut DbConnection, organisation_id: Uuid, user_id: Uuid) -> Result<(), ServiceTokensError> {
    let membership =
        memberships::find(conn, DbId(organisation_id), DbId(user_id))?.ok_or(ServiceTokensError::NotFound)?;
    if membership.role.includes(OrganisationRole::Admin) {
        Ok(())
    } else {
        Err(ServiceTokensError::Forbidden)
    }
}

/// Creates a service token for an admin's browser session. A token with `resolve` can reveal
/// keys, so it needs the admin's re-authentication in the same request (the current password,
/// and a code when the account has a second factor; a wrong one counts against the login limits
/// from `client`), as a personal one does.
#[allow(clippy::too_many_arguments)]
pub fn create(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user_id: Uuid,
    organisation_id: Uuid,
    new: &NewToken,
    cap: UserCap,
    proof: &Reauthentication<'_>,
    client: &str,
) -> Result<CreatedToken, ServiceTokensError> {
    require_admin(conn, organisation_id, user_id)?;
    if new.scopes.iter().any(|scope| scope == Scope::Resolve) {
        accounts::reauthenticate(conn, keyring, user_id, proof, client)?;
    }
    let secret = TokenSecret::generate();
    let id = Uuid::now_v7();
    let now = db::now();
    let expires_at = new.expires_in_days.map(|days| now + Duration::days(days));
    db::write_transaction(conn, |conn| {
        // The organisation's row is the lock that makes the count exact under concurrent creations.
        if !organisations::lock(conn, DbId(organisation_id))? {
            return Err(ServiceTokensError::NotFound);
        }
        require_admin(conn, organisation_id, user_id)?;
        if cap.is_reached(service_tokens::count_live_for_organisation(
            conn,
            DbId(organisation_id),
            now,
        )?) {
            return Err(ServiceTokensError::CapReached(cap));
        }
        service_tokens::insert(
            conn,
            &service_tokens::ServiceTokenRow {
                id: DbId(id),
                organisation_id: DbId(organisation_id),
                created_by: Some(DbId(user_id)),
                name: new.name.clone(),
                scopes: new.scopes.to_stored(),
                token_hash: secret.hash().to_vec(),
                created_at: now,
                last_used_at: None,
                expires_at,
                is_revoked: false,
            },
        )?;
        Ok(())
    })?;
    Ok(CreatedToken {
        id,
        name: new.name.clone(),
        scopes: new.scopes.clone(),
        created_at: now,
        expires_at,
        secret,
    })
}

/// The organisation's service tokens, newest first (never the tokens themselves).
pub fn list(
    conn: &mut DbConnection,
    user_id: Uuid,
    organisation_id: Uuid,
) -> Result<Vec<TokenSummary>, ServiceTokensError> {
    require_admin(conn, organisation_id, user_id)?;
    Ok(service_tokens::list_for_organisation(conn, DbId(organisation_id))?
        .into_iter()
        .map(|row| TokenSummary {
            id: row.id.0,
            name: row.name,
            scopes: row.scopes,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            is_revoked: row.is_revoked,
        })
        .collect())
}

/// Revokes one of the organisation's service tokens (404 for any other id).
pub fn revoke(
    conn: &mut DbConnection,
    user_id: Uuid,
    organisation_id: Uuid,
    id: Uuid,
) -> Result<(), ServiceTokensError> {
    require_admin(conn, organisation_id, user_id)?;
    if service_tokens::revoke(conn, DbId(organisation_id), DbId(id))? {
        Ok(())
    } else {
        Err(ServiceTokensError::NotFound)
    }
}

/// One line of an organisation's audit.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: NaiveDateTime,
    pub token_id: Uuid,
    pub token_name: String,
    /// `None` once the member's account is deleted.
    pub member: Option<(Uuid, String)>,
    /// `None` for the instance fallback.
    pub configuration_id: Option<Uuid>,
    pub configuration_name: String,
}

/// The organisation's reveals, newest first, at most [`AUDIT_LIMIT`].
pub fn audit(
    conn: &mut DbConnection,
    user_id: Uuid,
    organisation_id: Uuid,
) -> Result<Vec<AuditEntry>, ServiceTokensError> {
    require_admin(conn, organisation_id, user_id)?;
    Ok(
        organisation_reveals::recent_for_organisation(conn, DbId(organisation_id), AUDIT_LIMIT)?
            .into_iter()
            .map(|(row, email)| AuditEntry {
                at: row.revealed_at,
                token_id: row.token_id.0,
                token_name: row.token_name,
                member: row.member_id.zip(email).map(|(id, email)| (id.0, email)),
                configuration_id: row.configuration_id.map(|id| id.0),
                configuration_name: row.configuration_name,
            })
            .collect(),
    )
}
