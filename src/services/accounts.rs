//! Accounts: creating users and hashing their passwords.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use uuid::Uuid;

use crate::db::{self, DbConnection, DbId, users};
use crate::domain::{Email, Password, Role};
use crate::error::AppError;

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
