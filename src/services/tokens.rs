//! API tokens: creation (the secret is returned once) and bearer authentication.

use chrono::{Duration, NaiveDateTime};
use uuid::Uuid;

use super::accounts::{self, AccountsError};
use super::{Authenticated, Credential, Principal, ServicePrincipal};
use crate::crypto::{self, MasterKeyring, TokenSecret, hash_token};
use crate::db::{self, DbConnection, DbError, DbId, api_tokens, service_tokens, users};
use crate::domain::{FieldErrors, Scope, Scopes, UserCap};

/// What went wrong with a token, in the product's words (the edge gives it a status).
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// No such token (or user) for this owner.
    #[error("no such token")]
    NotFound,
    /// The user holds as many live tokens as the cap allows.
    #[error("{}", .0.describe())]
    CapReached(UserCap),
    /// A presented token that is unknown, revoked, expired or its owner's disabled: one answer.
    #[error("missing or invalid credentials")]
    InvalidCredential,
    #[error("stored token scopes are invalid")]
    CorruptScopes,
    /// Re-authenticating for a `resolve` token failed.
    #[error(transparent)]
    Account(#[from] AccountsError),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(TokensError);

/// A token's name: trimmed, 1 to 64 characters, no control characters.
pub fn parse_token_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// At most ten years.
pub fn parse_expiry_days(days: i64) -> Result<i64, String> {
    if (1..=3650).contains(&days) {
        Ok(days)
    } else {
        Err("must be 1 to 3650 days".into())
    }
}

#[derive(Debug)]
pub struct CreatedToken {
    pub id: Uuid,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub secret: TokenSecret,
}

/// A token to create, its fields already parsed.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Scopes,
    pub expires_in_days: Option<i64>,
}

impl NewToken {
    /// The token to create once every field has parsed; else the refusals in `errors` (the page
    /// and the API read their fields differently, and share this).
    pub fn from_parsed(
        name: Option<String>,
        scopes: Option<Scopes>,
        expires_in_days: Option<i64>,
        errors: FieldErrors,
    ) -> Result<Self, FieldErrors> {
        match (name, scopes) {
            (Some(name), Some(scopes)) if errors.is_empty() => Ok(NewToken {
                name,
                scopes,
                expires_in_days,
            }),
            _ => Err(errors),
        }
    }
}

/// Creates a token, refusing one more live token than `cap` allows the user.
pub fn create_token(
    conn: &mut DbConnection,
    user_id: Uuid,
    new: &NewToken,
    cap: UserCap,
) -> Result<CreatedToken, TokensError> {
    let secret = TokenSecret::generate();
    let id = Uuid::now_v7();
    let now = db::now();
    let expires_at = new.expires_in_days.map(|days| now + Duration::days(days));
    db::write_transaction(conn, |conn| {
        // The owner's row is the lock that makes the count exact under concurrent creations.
        if !users::lock_owner(conn, DbId(user_id))? {
            return Err(TokensError::NotFound);
        }
        if cap.is_reached(api_tokens::count_live_for_user(conn, DbId(user_id), now)?) {
            return Err(TokensError::CapReached(cap));
        }
        api_tokens::insert(
            conn,
            &api_tokens::TokenInsert {
                id: DbId(id),
                user_id: DbId(user_id),
                name: &new.name,
                scopes: &new.scopes.to_stored(),
                token_hash: &secret.hash(),
                created_at: now,
                expires_at,
            },
        )?;
        Ok::<_, TokensError>(())
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

/// Creates a token for the signed-in user of a browser session. A token with the `resolve` scope
/// can reveal keys, so it is created only when the request also carries the user's current
/// password, and a second-factor code when the account has one (a wrong one counts against the
/// login limits from `client`); other scopes need none. The command line uses [`create_token`]
/// directly: its operator holds the database.
pub fn create_for_session(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user_id: Uuid,
    new: &NewToken,
    cap: UserCap,
    proof: &accounts::Reauthentication<'_>,
    client: &str,
) -> Result<CreatedToken, TokensError> {
    if new.scopes.iter().any(|scope| scope == Scope::Resolve) {
        accounts::reauthenticate(conn, keyring, user_id, proof, client)?;
    }
    create_token(conn, user_id, new, cap)
}

/// Token use is stamped at most once a minute.
const LAST_USED_GRANULARITY: Duration = Duration::minutes(1);

/// Authenticates a presented bearer token: a personal token (unrevoked, unexpired, of an enabled
/// user) or, when no personal token has its hash, an organisation's service token (unrevoked,
/// unexpired). Every failure is the same 401. A personal token costs one query, as before
/// service tokens existed; only a miss reads the second table.
pub fn authenticate(
    conn: &mut DbConnection,
    presented: &str,
    now: NaiveDateTime,
) -> Result<Authenticated, TokensError> {
    if !presented.starts_with(TokenSecret::PREFIX) || presented.len() > 256 {
        return Err(TokensError::InvalidCredential);
    }
    let hash = hash_token(presented);
    let Some(token) = api_tokens::find_credential_by_hash(conn, &hash)? else {
        return authenticate_service(conn, &hash, now).map(Authenticated::Service);
    };
    let hash_matches = crypto::constant_time_eq(&token.token_hash, &hash);
    let expired = token.expires_at.is_some_and(|expires_at| expires_at <= now);
    if !hash_matches || token.is_revoked || expired || token.owner_is_disabled {
        return Err(TokensError::InvalidCredential);
    }
    let scopes = Scopes::parse(&token.scopes).map_err(|_| TokensError::CorruptScopes)?;
    let role = token.owner_role;
    if token.last_used_at.is_none_or(|last| last < now - LAST_USED_GRANULARITY) {
        api_tokens::touch_last_used(conn, token.id, now, now - LAST_USED_GRANULARITY)?;
    }
    Ok(Authenticated::User(Principal {
        user_id: token.user_id.0,
        role,
        credential: Credential::Token { id: token.id.0, scopes },
        listing_version: Some(token.owner_listing_version),
    }))
}

fn authenticate_service(
    conn: &mut DbConnection,
    hash: &[u8],
    now: NaiveDateTime,
) -> Result<ServicePrincipal, TokensError> {
    let token = service_tokens::find_by_hash(conn, hash)?.ok_or(TokensError::InvalidCredential)?;
    let hash_matches = crypto::constant_time_eq(&token.token_hash, hash);
    let expired = token.expires_at.is_some_and(|expires_at| expires_at <= now);
    if !hash_matches || token.is_revoked || expired {
        return Err(TokensError::InvalidCredential);
    }
    let scopes = Scopes::parse(&token.scopes).map_err(|_| TokensError::CorruptScopes)?;
    if token.last_used_at.is_none_or(|last| last < now - LAST_USED_GRANULARITY) {
        service_tokens::touch_last_used(conn, token.id, now, now - LAST_USED_GRANULARITY)?;
    }
    Ok(ServicePrincipal {
        token_id: token.id.0,
        token_name: token.name,
        organisation_id: token.organisation_id.0,
        scopes,
    })
}

/// A token as its owner sees it in a list (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenSummary {
    pub id: Uuid,
    pub name: String,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub is_revoked: bool,
}

pub fn list(conn: &mut DbConnection, user_id: Uuid) -> Result<Vec<TokenSummary>, TokensError> {
    Ok(api_tokens::list_for_user(conn, DbId(user_id))?
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

/// Revokes one of the user's tokens (404 for anyone else's).
pub fn revoke(conn: &mut DbConnection, user_id: Uuid, id: Uuid) -> Result<(), TokensError> {
    if api_tokens::revoke(conn, DbId(user_id), DbId(id))? {
        Ok(())
    } else {
        Err(TokensError::NotFound)
    }
}
