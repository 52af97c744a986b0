//! Accounts: creating users and hashing their passwords.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{self, DbConnection, DbId, auth_failures, instance_settings, sessions, users};
use crate::domain::{Email, Password, Role, TokenSecret};
use crate::error::{AppError, FieldErrors};

/// Argon2id at the OWASP minimum: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Result<Argon2<'static>, AppError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|error| AppError::Internal(format!("argon2 params: {error}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(password: &Password) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AppError::Internal(format!("argon2 hashing failed: {error}")))
}

#[derive(Debug, Clone)]
pub struct CreatedUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// Creates a user. The first user ever created is an admin, whatever was asked.
pub fn create_user(
    conn: &mut DbConnection,
    email: &Email,
    password: &Password,
    admin: bool,
) -> Result<CreatedUser, AppError> {
    // Hash outside the transaction: it takes tens of milliseconds and holds no lock.
    let password_hash = hash_password(password)?;
    db::write_transaction(conn, |conn| {
        let email_key = email.key();
        if users::find_by_email_key(conn, &email_key)?.is_some() {
            return Err(AppError::conflict(
                Some("email"),
                "a user with this email already exists",
            ));
        }
        let role = if admin || users::count(conn)? == 0 {
            Role::Admin
        } else {
            Role::Member
        };
        let id = Uuid::now_v7();
        let now = db::now();
        users::insert(
            conn,
            &users::UserInsert {
                id: DbId(id),
                email: email.as_str(),
                email_key: &email_key,
                password_hash: &password_hash,
                role: role.as_str(),
                is_disabled: false,
                created_at: now,
                updated_at: now,
            },
        )?;
        Ok(CreatedUser {
            id,
            email: email.as_str().to_owned(),
            role,
        })
    })
}

/// The active user with this email, or a clear error.
pub fn find_by_email(conn: &mut DbConnection, email: &Email) -> Result<users::UserRow, AppError> {
    users::find_by_email_key(conn, &email.key())?.ok_or(AppError::NotFound)
}

/// Failed logins and registrations are limited over this window...
const FAILURE_WINDOW: Duration = Duration::minutes(5);
/// ...to this many per (account, client address) pair: limiting per account alone would let
/// anyone lock anyone out...
const MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS: i64 = 10;
/// ...and this many per client address.
const MAX_FAILURES_PER_ADDRESS: i64 = 50;

const SETUP_TOKEN_SETTING: &str = "setup_token_sha256";
const REGISTRATION_OPEN_SETTING: &str = "registration_open";

/// The same sentence for an unknown email and a wrong password.
pub const LOGIN_FAILED: &str = "wrong email or password";

/// A hash to verify against when the email is unknown, so that both failures take as long.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let filler = Password::parse("lanyard-dummy-password-for-timing").map(|p| hash_password(&p));
        match filler {
            Ok(Ok(hash)) => hash,
            _ => String::new(),
        }
    })
}

fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    hasher().is_ok_and(|argon| argon.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Refuses with 429 when the (account, address) pair or the address has failed too often.
fn check_failure_budget(
    conn: &mut DbConnection,
    account_key: &str,
    client: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let since = now - FAILURE_WINDOW;
    let (by_pair, by_address, oldest) = auth_failures::count_since(conn, account_key, client, since)?;
    if by_pair >= MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS || by_address >= MAX_FAILURES_PER_ADDRESS {
        let retry_at = oldest.unwrap_or(now) + FAILURE_WINDOW;
        let retry_after_secs = (retry_at - now).num_seconds().max(1) as u64;
        return Err(AppError::RateLimited { retry_after_secs });
    }
    Ok(())
}

fn record_failure(
    conn: &mut DbConnection,
    account_key: &str,
    client: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    auth_failures::record(conn, account_key, client, now)?;
    auth_failures::purge_before(conn, now - FAILURE_WINDOW)?;
    Ok(())
}

/// A signed-in user, as a session records it.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// Checks an email and password. Unknown email, wrong password and disabled account all get
/// [`LOGIN_FAILED`] after the same amount of work.
pub fn login(conn: &mut DbConnection, email: &str, password: &str, client: &str) -> Result<SignedInUser, AppError> {
    let now = db::now();
    let account_key = email.trim().to_lowercase();
    check_failure_budget(conn, &account_key, client, now)?;
    let user = users::find_by_email_key(conn, &account_key)?;
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |user| user.password_hash.clone());
    let hash = hash.as_str();
    let password_ok = verify_password(hash, password);
    match user {
        Some(user) if password_ok && !user.is_disabled => {
            let role =
                Role::parse(&user.role).ok_or_else(|| AppError::Internal("stored user role is invalid".into()))?;
            Ok(SignedInUser {
                id: user.id.0,
                email: user.email,
                role,
            })
        }
        _ => {
            db::write_transaction(conn, |conn| record_failure(conn, &account_key, client, now))?;
            Err(AppError::Validation(FieldErrors::single("email", LOGIN_FAILED)))
        }
    }
}

fn setup_token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// While no user exists, issues a fresh one-time setup token (only its hash is stored) for the
/// start-up log's registration link. `None` once users exist.
pub fn issue_setup_token(conn: &mut DbConnection) -> Result<Option<String>, AppError> {
    db::write_transaction(conn, |conn| {
        if users::count(conn)? > 0 {
            return Ok(None);
        }
        let token = TokenSecret::generate();
        let token = token.expose().trim_start_matches(TokenSecret::PREFIX).to_owned();
        instance_settings::set(conn, SETUP_TOKEN_SETTING, &setup_token_hash(&token))?;
        Ok(Some(token))
    })
}

/// Whether anyone may register now (an admin opened registration).
pub fn registration_open(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(instance_settings::get(conn, REGISTRATION_OPEN_SETTING)?.as_deref() == Some("true"))
}

/// Whether the instance still waits for its first user.
pub fn needs_setup(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(users::count(conn)? == 0)
}

/// Registers a user: the first one with the setup token (and becomes admin), later ones only
/// while registration is open. A wrong setup token counts as a failed attempt.
pub fn register(
    conn: &mut DbConnection,
    email: &Email,
    password: &Password,
    setup_token: Option<&str>,
    client: &str,
) -> Result<SignedInUser, AppError> {
    let now = db::now();
    let account_key = email.key();
    check_failure_budget(conn, &account_key, client, now)?;
    let password_hash = hash_password(password)?;
    let outcome = db::write_transaction(conn, |conn| -> Result<Result<SignedInUser, AppError>, AppError> {
        let first_user = users::count(conn)? == 0;
        if first_user {
            let presented = setup_token.map(setup_token_hash).unwrap_or_default();
            // Consuming the token is the lock: exactly one request can take it.
            if presented.is_empty() || !instance_settings::take(conn, SETUP_TOKEN_SETTING, &presented)? {
                return Ok(Err(AppError::Forbidden(
                    "registering the first user needs the setup link that Lanyard printed in its log at start-up"
                        .into(),
                )));
            }
        } else if !registration_open(conn)? {
            return Ok(Err(AppError::Forbidden(
                "registration is closed; ask an admin for an account".into(),
            )));
        }
        if users::find_by_email_key(conn, &account_key)?.is_some() {
            return Ok(Err(AppError::conflict(
                Some("email"),
                "a user with this email already exists",
            )));
        }
        let role = if first_user { Role::Admin } else { Role::Member };
        let id = Uuid::now_v7();
        users::insert(
            conn,
            &users::UserInsert {
                id: DbId(id),
                email: email.as_str(),
                email_key: &account_key,
                password_hash: &password_hash,
                role: role.as_str(),
                is_disabled: false,
                created_at: now,
                updated_at: now,
            },
        )?;
        Ok(Ok(SignedInUser {
            id,
            email: email.as_str().to_owned(),
            role,
        }))
    })?;
    if let Err(AppError::Forbidden(_)) = &outcome {
        db::write_transaction(conn, |conn| record_failure(conn, &account_key, client, now))?;
    }
    outcome
}

/// Changes a password after checking the current one, and ends every session of the user
/// (the caller then starts a fresh one for itself).
pub fn change_password(conn: &mut DbConnection, user_id: Uuid, current: &str, new: &Password) -> Result<(), AppError> {
    let user = users::find_by_id(conn, DbId(user_id))?.ok_or(AppError::NotFound)?;
    if !verify_password(&user.password_hash, current) {
        return Err(AppError::validation("current_password", "is not your current password"));
    }
    let hash = hash_password(new)?;
    db::write_transaction(conn, |conn| {
        users::update_password_hash(conn, DbId(user_id), &hash, db::now())?;
        sessions::delete_for_user(conn, DbId(user_id), None)?;
        Ok(())
    })
}

/// Whether `token` is the current setup token (read-only: the token is consumed only by
/// registering).
pub fn setup_token_valid(conn: &mut DbConnection, token: &str) -> Result<bool, AppError> {
    let stored = instance_settings::get(conn, SETUP_TOKEN_SETTING)?;
    Ok(stored.is_some_and(|stored| {
        use subtle::ConstantTimeEq;
        stored.as_bytes().ct_eq(setup_token_hash(token).as_bytes()).into()
    }))
}

/// The last admin who can log in must stay one: no disabling, demoting or deleting them. Judged
/// on the admins as they are once locked, not on a row read before.
fn ensure_not_last_admin(conn: &mut DbConnection, user: &users::UserRow) -> Result<(), AppError> {
    let active_admins = users::lock_active_admins(conn)?;
    if active_admins.len() <= 1 && active_admins.contains(&user.id) {
        return Err(AppError::conflict(
            None,
            "this is the last active admin: make another user admin first",
        ));
    }
    Ok(())
}

fn find_user(conn: &mut DbConnection, user_id: Uuid) -> Result<users::UserRow, AppError> {
    users::find_by_id(conn, DbId(user_id))?.ok_or(AppError::NotFound)
}

/// Disables (ending every session at once; their tokens stop working too) or re-enables a user.
pub fn set_disabled(conn: &mut DbConnection, user_id: Uuid, disabled: bool) -> Result<(), AppError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        if disabled {
            ensure_not_last_admin(conn, &user)?;
            sessions::delete_for_user(conn, DbId(user_id), None)?;
        }
        users::set_disabled(conn, DbId(user_id), disabled, db::now())?;
        Ok(())
    })
}

pub fn set_role(conn: &mut DbConnection, user_id: Uuid, role: Role) -> Result<(), AppError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        if role == Role::Member {
            ensure_not_last_admin(conn, &user)?;
        }
        users::set_role(conn, DbId(user_id), role.as_str(), db::now())?;
        Ok(())
    })
}

/// Deletes a user with everything they own.
pub fn delete_user(conn: &mut DbConnection, user_id: Uuid) -> Result<(), AppError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        ensure_not_last_admin(conn, &user)?;
        users::delete(conn, DbId(user_id))?;
        Ok(())
    })
}

/// Sets a new password without the old one (an admin's reset, or the command line), ending
/// every session of the user.
pub fn reset_password(conn: &mut DbConnection, user_id: Uuid, new: &Password) -> Result<(), AppError> {
    let hash = hash_password(new)?;
    db::write_transaction(conn, |conn| {
        find_user(conn, user_id)?;
        users::update_password_hash(conn, DbId(user_id), &hash, db::now())?;
        sessions::delete_for_user(conn, DbId(user_id), None)?;
        Ok(())
    })
}

/// Opens or closes self-service registration.
pub fn set_registration_open(conn: &mut DbConnection, open: bool) -> Result<(), AppError> {
    db::write_transaction(conn, |conn| {
        instance_settings::set(conn, REGISTRATION_OPEN_SETTING, if open { "true" } else { "false" })?;
        Ok(())
    })
}
