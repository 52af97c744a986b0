//! Accounts: creating users and hashing their passwords, the login limits, and the security
//! events that record what was done to an account.

use chrono::{Duration, NaiveDateTime};
use uuid::Uuid;

use crate::crypto::{self, MasterKeyring};
use crate::db::{
    self, DbConnection, DbError, DbId, api_tokens, auth_failures, instance_settings, security_events, sessions, users,
};
use crate::domain::{Email, FieldErrors, Password, Role};
use crate::services::two_factor::{self, TwoFactorError};

/// What went wrong with an account, in the product's words (the edge gives it a status).
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    /// Too many failed attempts from this address (or for this account from it).
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Unknown email, wrong password or disabled account: one answer for all three.
    #[error("wrong email or password")]
    LoginFailed,
    /// Input refused, field by field.
    #[error("the input is invalid")]
    Invalid(FieldErrors),
    #[error("registering the first user needs the setup link that Lanyard printed in its log at start-up")]
    SetupLinkRequired,
    #[error("registration is closed; ask an admin for an account")]
    RegistrationClosed,
    /// An action that can reveal keys came without the current password, or with a wrong one.
    #[error("the current password is missing or wrong")]
    ReauthenticationRequired,
    /// The current password given to change it is wrong.
    #[error("is not your current password")]
    WrongPassword,
    #[error("this is the last active admin: make another user admin first")]
    LastAdmin,
    /// The user is the last owner of an organisation who can sign in.
    #[error("this user is the last owner of the organisation {organisation}: make another member owner first")]
    LastOwner { organisation: String },
    #[error("hashing the password failed: {0}")]
    PasswordHash(String),
    #[error("stored security event is invalid")]
    CorruptEvent,
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(AccountsError);

/// Hashes a new password (Argon2id: `crypto::hash_password`).
pub fn hash_password(password: &Password) -> Result<String, AccountsError> {
    crypto::hash_password(password.expose()).map_err(|error| AccountsError::PasswordHash(error.to_string()))
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
) -> Result<CreatedUser, AccountsError> {
    // Hash outside the transaction: it takes tens of milliseconds and holds no lock.
    let password_hash = hash_password(password)?;
    db::write_transaction(conn, |conn| {
        let email_key = email.key();
        if users::find_by_email_key(conn, &email_key)?.is_some() {
            return Err(AccountsError::EmailTaken);
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
                role,
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

/// The id of the user with this email.
pub fn id_by_email(conn: &mut DbConnection, email: &Email) -> Result<Uuid, AccountsError> {
    let user = users::find_by_email_key(conn, &email.key())?.ok_or(AccountsError::NotFound)?;
    Ok(user.id.0)
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

/// Which limits an attempt counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limits {
    /// Logins and wrong current passwords: per (account, address) pair and per address.
    AccountAndAddress,
    /// Registrations: per address only (each names a new account, so a pair limit would never
    /// bite, and must not lock an existing account's owner out).
    Address,
}

/// Registration attempts are recorded under this account key. It has no `@`, so no account can
/// have it: at worst it shares a pair count with logins that try this very nonsense name.
const REGISTRATION_ATTEMPTS: &str = "(registration)";

/// Takes one attempt from the budget *before* any password is hashed or verified, or refuses
/// with 429 when the budget is spent.
///
/// Counting and recording happen in one write transaction that holds the address's lock (see
/// `auth_failures::lock_client_address`), so that of 30 simultaneous attempts exactly as many as
/// the limit allows are judged, on both databases. The row stands for a failure until the
/// caller calls [`release_attempt`] because the password was right: one table, no separate
/// "attempt" and "failure" rows, at the price of an attempt in flight counting for a moment.
pub(super) fn reserve_attempt(
    conn: &mut DbConnection,
    account_key: &str,
    client: &str,
    limits: Limits,
) -> Result<DbId, AccountsError> {
    let now = db::now();
    db::write_transaction(conn, |conn| {
        auth_failures::lock_client_address(conn, client)?;
        auth_failures::purge_before(conn, now - FAILURE_WINDOW)?;
        let since = now - FAILURE_WINDOW;
        let (by_pair, by_address, oldest) = auth_failures::count_since(conn, account_key, client, since)?;
        let pair_spent = limits == Limits::AccountAndAddress && by_pair >= MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS;
        if pair_spent || by_address >= MAX_FAILURES_PER_ADDRESS {
            let retry_at = oldest.unwrap_or(now) + FAILURE_WINDOW;
            let retry_after_secs = (retry_at - now).num_seconds().max(1) as u64;
            return Err(AccountsError::RateLimited { retry_after_secs });
        }
        Ok(auth_failures::record(conn, account_key, client, now)?)
    })
}

/// The password of a reserved attempt was right: it no longer counts.
pub(super) fn release_attempt(conn: &mut DbConnection, attempt: DbId) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        auth_failures::delete(conn, attempt)?;
        Ok(())
    })
}

/// A signed-in user, as a session records it.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

/// What a right password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The account has no second factor: sign in.
    SignedIn(SignedInUser),
    /// The account has a second factor: its second step waits under this token (for a cookie),
    /// for 5 minutes. No session yet.
    SecondFactorNeeded { challenge: String },
}

/// Checks an email and password. Unknown email, wrong password and disabled account all get
/// [`LOGIN_FAILED`] after the same amount of work.
pub fn login(
    conn: &mut DbConnection,
    email: &str,
    password: &str,
    client: &str,
) -> Result<LoginOutcome, AccountsError> {
    let account_key = email.trim().to_lowercase();
    let attempt = reserve_attempt(conn, &account_key, client, Limits::AccountAndAddress)?;
    let user = users::find_by_email_key(conn, &account_key)?;
    let hash = user.as_ref().map_or_else(
        || crypto::dummy_password_hash().to_owned(),
        |user| user.password_hash.clone(),
    );
    let hash = hash.as_str();
    let password_ok = crypto::verify_password(hash, password);
    match user {
        Some(user) if password_ok && !user.is_disabled => {
            let role = user.role;
            release_attempt(conn, attempt)?;
            if let Some(challenge) = two_factor::start_challenge(conn, user.id.0).map_err(AccountsError::from)? {
                return Ok(LoginOutcome::SecondFactorNeeded { challenge });
            }
            Ok(LoginOutcome::SignedIn(SignedInUser {
                id: user.id.0,
                email: user.email,
                role,
            }))
        }
        // The reserved attempt stays: it is the recorded failure.
        _ => Err(AccountsError::LoginFailed),
    }
}

/// While no user exists, issues a fresh one-time setup token (only its hash is stored) for the
/// start-up log's registration link. `None` once users exist.
pub fn issue_setup_token(conn: &mut DbConnection) -> Result<Option<String>, AccountsError> {
    db::write_transaction(conn, |conn| {
        if users::count(conn)? > 0 {
            return Ok(None);
        }
        let token = crypto::new_setup_token();
        instance_settings::set(conn, SETUP_TOKEN_SETTING, &crypto::hash_setup_token(&token))?;
        Ok(Some(token))
    })
}

/// Whether anyone may register now (an admin opened registration).
pub fn registration_open(conn: &mut DbConnection) -> Result<bool, AccountsError> {
    Ok(instance_settings::get(conn, REGISTRATION_OPEN_SETTING)?.as_deref() == Some("true"))
}

/// Whether the instance still waits for its first user.
pub fn needs_setup(conn: &mut DbConnection) -> Result<bool, AccountsError> {
    Ok(users::count(conn)? == 0)
}

/// What a visitor submits to register, as typed.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub setup_token: Option<&'a str>,
}

/// The one answer for an e-mail that cannot be registered, taken or malformed alike, so that
/// registration tells nobody which addresses have accounts.
pub const EMAIL_UNUSABLE: &str = "this e-mail cannot be used";

/// Registers a user: the first one with the setup token (and becomes admin), later ones only
/// while registration is open.
///
/// Every attempt counts against the per-address login limit before anything else happens, and
/// the password is hashed only once the budget, the right to register and every field have
/// passed: a taken e-mail gets [`EMAIL_UNUSABLE`] like any other unusable one.
pub fn register(conn: &mut DbConnection, form: &Registration<'_>, client: &str) -> Result<SignedInUser, AccountsError> {
    reserve_attempt(conn, REGISTRATION_ATTEMPTS, client, Limits::Address)?;
    // Judged here to refuse early and cheaply, and again when inserting (authoritative).
    let first_user = users::count(conn)? == 0;
    ensure_may_register(conn, first_user, form.setup_token, false)?;

    let mut errors = FieldErrors::new();
    let email = match Email::parse(form.email) {
        Ok(email) if users::find_by_email_key(conn, &email.key())?.is_none() => Some(email),
        _ => {
            errors.add("email", EMAIL_UNUSABLE);
            None
        }
    };
    let password = Password::parse(form.password)
        .map_err(|message| errors.add("password", message))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AccountsError::Invalid(errors));
    };
    let password_hash = hash_password(&password)?;
    let account_key = email.key();
    let now = db::now();
    db::write_transaction(conn, |conn| {
        let first_user = users::count(conn)? == 0;
        ensure_may_register(conn, first_user, form.setup_token, true)?;
        if users::find_by_email_key(conn, &account_key)?.is_some() {
            return Err(email_unusable());
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
                role,
                is_disabled: false,
                created_at: now,
                updated_at: now,
            },
        )
        .map_err(|error| match error {
            // Registered by someone else since the check (PostgreSQL).
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                email_unusable()
            }
            other => AccountsError::from(other),
        })?;
        Ok(SignedInUser {
            id,
            email: email.as_str().to_owned(),
            role,
        })
    })
}

fn email_unusable() -> AccountsError {
    AccountsError::Invalid(FieldErrors::single("email", EMAIL_UNUSABLE))
}

/// The first user needs the setup token, later ones open registration. `consume` takes the
/// setup token (inside the inserting transaction: exactly one request can take it).
fn ensure_may_register(
    conn: &mut DbConnection,
    first_user: bool,
    setup_token: Option<&str>,
    consume: bool,
) -> Result<(), AccountsError> {
    if first_user {
        let presented = setup_token.map(crypto::hash_setup_token).unwrap_or_default();
        let valid = !presented.is_empty()
            && if consume {
                instance_settings::take(conn, SETUP_TOKEN_SETTING, &presented)?
            } else {
                setup_token_valid(conn, setup_token.unwrap_or_default())?
            };
        if !valid {
            return Err(AccountsError::SetupLinkRequired);
        }
    } else if !registration_open(conn)? {
        return Err(AccountsError::RegistrationClosed);
    }
    Ok(())
}

/// Checks the signed-in user's current password, counting a wrong one against the login
/// limits (the same budget as failed logins from `client`). `Ok(false)` for a wrong password.
pub(super) fn current_password_matches(
    conn: &mut DbConnection,
    user: &users::UserRow,
    presented: &str,
    client: &str,
) -> Result<bool, AccountsError> {
    let attempt = reserve_attempt(conn, &user.email_key, client, Limits::AccountAndAddress)?;
    if crypto::verify_password(&user.password_hash, presented) {
        release_attempt(conn, attempt)?;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// What a request presents to re-authenticate: the current password, and a second-factor code
/// (or a recovery code) when the account has a second factor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reauthentication<'a> {
    pub current_password: Option<&'a str>,
    pub totp_code: Option<&'a str>,
    /// The request carries a fresh re-authentication by single sign-on (its sealed cookie,
    /// checked at the edge). It counts only for an account without a password.
    pub single_sign_on: bool,
}

/// Re-authenticates the signed-in user for an action that can reveal keys: the current password
/// must come with the request, and a second-factor code when the account has one. Missing or
/// wrong: [`AccountsError::ReauthenticationRequired`]; a wrong one counts against the login
/// limits (a wrong code also against the account's second-factor limit).
pub fn reauthenticate(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user_id: Uuid,
    proof: &Reauthentication<'_>,
    client: &str,
) -> Result<(), AccountsError> {
    if proof.single_sign_on {
        let user = find_user(conn, user_id)?;
        if !user.has_password() && user.oidc_subject.is_some() && !user.is_disabled {
            return Ok(());
        }
    }
    let Some(presented) = proof.current_password.filter(|password| !password.is_empty()) else {
        return Err(AccountsError::ReauthenticationRequired);
    };
    let user = find_user(conn, user_id)?;
    if !current_password_matches(conn, &user, presented, client)? {
        return Err(AccountsError::ReauthenticationRequired);
    }
    if !two_factor::is_on(conn, user_id).map_err(AccountsError::from)? {
        return Ok(());
    }
    let Some(code) = proof.totp_code.map(str::trim).filter(|code| !code.is_empty()) else {
        return Err(AccountsError::ReauthenticationRequired);
    };
    two_factor::check_code(conn, keyring, &user, code, client, |_| Ok(())).map_err(AccountsError::from)
}

/// A second factor's refusals, as re-authentication and login word them.
impl From<TwoFactorError> for AccountsError {
    fn from(error: TwoFactorError) -> Self {
        match error {
            TwoFactorError::RateLimited { retry_after_secs } => AccountsError::RateLimited { retry_after_secs },
            TwoFactorError::Store(error) => AccountsError::Store(error),
            _ => AccountsError::ReauthenticationRequired,
        }
    }
}

/// Changes a password after checking the current one (a wrong one counts against the login
/// limits), and ends every session of the user (the caller then starts a fresh one for itself).
pub fn change_password(
    conn: &mut DbConnection,
    user_id: Uuid,
    current: &str,
    new: &Password,
    client: &str,
) -> Result<(), AccountsError> {
    let user = find_user(conn, user_id)?;
    if !current_password_matches(conn, &user, current, client)? {
        return Err(AccountsError::WrongPassword);
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
pub fn setup_token_valid(conn: &mut DbConnection, token: &str) -> Result<bool, AccountsError> {
    let stored = instance_settings::get(conn, SETUP_TOKEN_SETTING)?;
    Ok(stored
        .is_some_and(|stored| crypto::constant_time_eq(stored.as_bytes(), crypto::hash_setup_token(token).as_bytes())))
}

/// The last admin who can log in must stay one: no disabling, demoting or deleting them. Judged
/// on the admins as they are once locked, not on a row read before.
fn ensure_not_last_admin(conn: &mut DbConnection, user: &users::UserRow) -> Result<(), AccountsError> {
    let active_admins = users::lock_active_admins(conn)?;
    if active_admins.len() <= 1 && active_admins.contains(&user.id) {
        return Err(AccountsError::LastAdmin);
    }
    Ok(())
}

/// The last owner of an organisation must stay one: no disabling or deleting them. The user's
/// row is locked first, then their organisations (see `organisations::sole_owner_of`).
fn ensure_not_last_owner_anywhere(conn: &mut DbConnection, user_id: Uuid) -> Result<(), AccountsError> {
    users::lock_owner(conn, DbId(user_id))?;
    match super::organisations::sole_owner_of(conn, user_id)? {
        Some(organisation) => Err(AccountsError::LastOwner { organisation }),
        None => Ok(()),
    }
}

pub(super) fn find_user(conn: &mut DbConnection, user_id: Uuid) -> Result<users::UserRow, AccountsError> {
    users::find_by_id(conn, DbId(user_id))?.ok_or(AccountsError::NotFound)
}

/// Who changed an account, for its security events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in admin, by user id.
    Admin(Uuid),
    /// An operator at the command line (who holds the database, so has no account here).
    CommandLine,
    /// The account's own user, signed in.
    Themselves,
}

/// What happened to an account, as its security events record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEventKind {
    UserDisabled,
    UserEnabled,
    PasswordReset,
    SecondFactorEnabled,
    SecondFactorDisabled,
    /// Removed at the command line (`lanyard user reset-2fa`).
    SecondFactorReset,
    RecoveryCodeUsed,
}

impl SecurityEventKind {
    fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::UserDisabled => "user_disabled",
            SecurityEventKind::UserEnabled => "user_enabled",
            SecurityEventKind::PasswordReset => "password_reset",
            SecurityEventKind::SecondFactorEnabled => "second_factor_enabled",
            SecurityEventKind::SecondFactorDisabled => "second_factor_disabled",
            SecurityEventKind::SecondFactorReset => "second_factor_reset",
            SecurityEventKind::RecoveryCodeUsed => "recovery_code_used",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user_disabled" => Some(SecurityEventKind::UserDisabled),
            "user_enabled" => Some(SecurityEventKind::UserEnabled),
            "password_reset" => Some(SecurityEventKind::PasswordReset),
            "second_factor_enabled" => Some(SecurityEventKind::SecondFactorEnabled),
            "second_factor_disabled" => Some(SecurityEventKind::SecondFactorDisabled),
            "second_factor_reset" => Some(SecurityEventKind::SecondFactorReset),
            "recovery_code_used" => Some(SecurityEventKind::RecoveryCodeUsed),
            _ => None,
        }
    }
}

/// Records a security event inside the caller's transaction. The actor is named in words as
/// well, so that the event still says who acted after the actor's account is deleted.
pub(super) fn record_event(
    conn: &mut DbConnection,
    user_id: Uuid,
    kind: SecurityEventKind,
    actor: Actor,
    sessions_ended: usize,
    tokens_revoked: usize,
) -> Result<(), AccountsError> {
    let (actor_id, actor_name) = match actor {
        Actor::Admin(admin_id) => (Some(DbId(admin_id)), find_user(conn, admin_id)?.email),
        Actor::CommandLine => (None, COMMAND_LINE.to_owned()),
        Actor::Themselves => (Some(DbId(user_id)), find_user(conn, user_id)?.email),
    };
    security_events::insert(
        conn,
        &security_events::EventRow {
            id: DbId(Uuid::now_v7()),
            user_id: DbId(user_id),
            event: kind.as_str().to_owned(),
            actor_id,
            actor: actor_name,
            sessions_ended: i64::try_from(sessions_ended).unwrap_or(i64::MAX),
            tokens_revoked: i64::try_from(tokens_revoked).unwrap_or(i64::MAX),
            occurred_at: db::now(),
        },
    )?;
    Ok(())
}

/// How an event names an operator at the command line.
const COMMAND_LINE: &str = "the command line";

/// Ends every session of the user and revokes every token they hold, for good: returns how
/// many of each.
fn cut_off(conn: &mut DbConnection, user_id: Uuid) -> Result<(usize, usize), AccountsError> {
    let sessions_ended = sessions::delete_for_user(conn, DbId(user_id), None)?;
    let tokens_revoked = api_tokens::revoke_all_for_user(conn, DbId(user_id))?;
    Ok((sessions_ended, tokens_revoked))
}

/// Disables a user (ending every session and revoking every token at once: enabling them again
/// brings no token back) or re-enables them; either way a security event records who did it.
pub fn set_disabled(conn: &mut DbConnection, user_id: Uuid, disabled: bool, actor: Actor) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        let (kind, (sessions_ended, tokens_revoked)) = if disabled {
            ensure_not_last_admin(conn, &user)?;
            ensure_not_last_owner_anywhere(conn, user_id)?;
            (SecurityEventKind::UserDisabled, cut_off(conn, user_id)?)
        } else {
            (SecurityEventKind::UserEnabled, (0, 0))
        };
        users::set_disabled(conn, DbId(user_id), disabled, db::now())?;
        record_event(conn, user_id, kind, actor, sessions_ended, tokens_revoked)
    })
}

pub fn set_role(conn: &mut DbConnection, user_id: Uuid, role: Role) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        if role == Role::Member {
            ensure_not_last_admin(conn, &user)?;
        }
        users::set_role(conn, DbId(user_id), role, db::now())?;
        Ok(())
    })
}

/// Deletes a user with everything they own.
pub fn delete_user(conn: &mut DbConnection, user_id: Uuid) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        let user = find_user(conn, user_id)?;
        ensure_not_last_admin(conn, &user)?;
        ensure_not_last_owner_anywhere(conn, user_id)?;
        users::delete(conn, DbId(user_id))?;
        Ok(())
    })
}

/// Sets a new password without the old one (an admin's reset, or the command line), ending
/// every session of the user and revoking their tokens; a security event records who did it.
pub fn reset_password(
    conn: &mut DbConnection,
    user_id: Uuid,
    new: &Password,
    actor: Actor,
) -> Result<(), AccountsError> {
    let hash = hash_password(new)?;
    db::write_transaction(conn, |conn| {
        find_user(conn, user_id)?;
        users::update_password_hash(conn, DbId(user_id), &hash, db::now())?;
        let (sessions_ended, tokens_revoked) = cut_off(conn, user_id)?;
        record_event(
            conn,
            user_id,
            SecurityEventKind::PasswordReset,
            actor,
            sessions_ended,
            tokens_revoked,
        )
    })
}

/// A security event as the user or an admin reads it.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    /// The account it happened to.
    pub user_email: Option<String>,
    pub kind: SecurityEventKind,
    /// Who did it: an admin's e-mail or "the command line".
    pub actor: String,
    pub sessions_ended: i64,
    pub tokens_revoked: i64,
    pub occurred_at: NaiveDateTime,
}

impl SecurityEvent {
    fn from_row(row: security_events::EventRow, user_email: Option<String>) -> Result<Self, AccountsError> {
        Ok(SecurityEvent {
            user_email,
            kind: SecurityEventKind::parse(&row.event).ok_or(AccountsError::CorruptEvent)?,
            actor: row.actor,
            sessions_ended: row.sessions_ended,
            tokens_revoked: row.tokens_revoked,
            occurred_at: row.occurred_at,
        })
    }

    /// What happened, in a sentence.
    pub fn description(&self) -> String {
        let cut_off = format!(
            "{} session(s) ended, {} token(s) revoked",
            self.sessions_ended, self.tokens_revoked
        );
        match self.kind {
            SecurityEventKind::UserDisabled => format!("Account disabled: {cut_off}"),
            SecurityEventKind::UserEnabled => "Account enabled (revoked tokens stay revoked)".to_owned(),
            SecurityEventKind::PasswordReset => format!("Password reset: {cut_off}"),
            SecurityEventKind::SecondFactorEnabled => "Two-factor authentication turned on".to_owned(),
            SecurityEventKind::SecondFactorDisabled => "Two-factor authentication turned off".to_owned(),
            SecurityEventKind::SecondFactorReset => "Two-factor authentication removed for recovery".to_owned(),
            SecurityEventKind::RecoveryCodeUsed => "A recovery code was used to sign in".to_owned(),
        }
    }
}

/// How many events a page shows.
const EVENTS_SHOWN: i64 = 50;

/// The user's own security events, newest first.
pub fn security_events_of(conn: &mut DbConnection, user_id: Uuid) -> Result<Vec<SecurityEvent>, AccountsError> {
    security_events::list_for_user(conn, DbId(user_id), EVENTS_SHOWN)?
        .into_iter()
        .map(|row| SecurityEvent::from_row(row, None))
        .collect()
}

/// Everyone's recent security events, newest first (for admins).
pub fn recent_security_events(conn: &mut DbConnection) -> Result<Vec<SecurityEvent>, AccountsError> {
    security_events::recent(conn, EVENTS_SHOWN * 2)?
        .into_iter()
        .map(|(row, email)| SecurityEvent::from_row(row, Some(email)))
        .collect()
}

/// Opens or closes self-service registration.
pub fn set_registration_open(conn: &mut DbConnection, open: bool) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        instance_settings::set(conn, REGISTRATION_OPEN_SETTING, if open { "true" } else { "false" })?;
        Ok(())
    })
}

/// The admin's switch: require a second factor of every password account (or not).
pub fn set_second_factor_required(conn: &mut DbConnection, required: bool) -> Result<(), AccountsError> {
    db::write_transaction(conn, |conn| {
        instance_settings::set(
            conn,
            two_factor::REQUIRE_SECOND_FACTOR_SETTING,
            if required { "true" } else { "false" },
        )?;
        Ok(())
    })
}
