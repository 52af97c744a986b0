//! Two-factor authentication for password accounts (sign-in.md): enrolment with a time-based
//! one-time password, the second step of a login, codes for re-authentication, recovery codes,
//! turning it off, the command line's reset, and the admin's "require a second factor".
//!
//! A wrong code counts twice: against the login limits (per account and address, per address;
//! `accounts::reserve_attempt`) and against at most [`MAX_CODE_FAILURES_PER_ACCOUNT`] per account
//! from every address together, so that a botnet cannot walk the million codes.

use chrono::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::accounts::{self, AccountsError, Actor, Limits, SecurityEventKind, SignedInUser};
use crate::crypto::{self, MasterKeyring, RowBinding, TotpSecret};
use crate::db::{
    self, DbConnection, DbError, DbId, instance_settings, login_challenges, recovery_codes, second_factor_failures,
    second_factors, sessions, users,
};

/// What went wrong with a second factor, in the product's words.
#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    /// The code (or recovery code) is wrong, already used, or too old.
    #[error("this code is not valid; enter the current code from your app or an unused recovery code")]
    WrongCode,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The login's second step is unknown or older than 5 minutes: start again.
    #[error("this sign-in has expired; log in again")]
    ChallengeExpired,
    /// The enrolment form's secret cannot be read (another instance's key, too old, tampered).
    #[error("this set-up page has expired; start again")]
    EnrolmentExpired,
    #[error("two-factor authentication is already on")]
    AlreadyOn,
    #[error("this account has no second factor")]
    NotOn,
    /// The stored secret cannot be opened with the configured master keys.
    #[error("the stored second factor cannot be decrypted")]
    SecretUnreadable,
    #[error("no such user")]
    NotFound,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(TwoFactorError);

impl From<AccountsError> for TwoFactorError {
    fn from(error: AccountsError) -> Self {
        match error {
            AccountsError::RateLimited { retry_after_secs } => TwoFactorError::RateLimited { retry_after_secs },
            AccountsError::NotFound => TwoFactorError::NotFound,
            AccountsError::Store(error) => TwoFactorError::Store(error),
            other => TwoFactorError::Internal(other.to_string()),
        }
    }
}

/// The instance setting behind the admin's switch.
pub const REQUIRE_SECOND_FACTOR_SETTING: &str = "require_second_factor";
/// How authenticator apps name the account's issuer.
const ISSUER: &str = "Lanyard";
/// How long the second step of a login waits.
const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);
/// How long an enrolment page's secret can be confirmed.
const ENROLMENT_LIFETIME_SECONDS: i64 = 30 * 60;
/// Wrong codes per account from every address together, over the login limits' window.
const CODE_FAILURE_WINDOW: Duration = Duration::minutes(5);
pub const MAX_CODE_FAILURES_PER_ACCOUNT: i64 = 10;

fn unix_now() -> u64 {
    u64::try_from(db::now().and_utc().timestamp()).unwrap_or_default()
}

/// Whether the admin requires a second factor of every password account.
pub fn is_required(conn: &mut DbConnection) -> Result<bool, TwoFactorError> {
    Ok(instance_settings::get(conn, REQUIRE_SECOND_FACTOR_SETTING)?.as_deref() == Some("true"))
}

/// Whether the user has a second factor.
pub fn is_on(conn: &mut DbConnection, user_id: Uuid) -> Result<bool, TwoFactorError> {
    Ok(second_factors::exists(conn, DbId(user_id))?)
}

/// Whether a session of this user must set a second factor up before anything else: the admin
/// requires one and the password account has none. (Accounts without a password, such as a
/// later single sign-on's, are not password accounts and would be exempt here.)
pub fn setup_required(conn: &mut DbConnection, user_id: Uuid, has_second_factor: bool) -> Result<bool, DbError> {
    if has_second_factor {
        return Ok(false);
    }
    Ok(
        instance_settings::get(conn, REQUIRE_SECOND_FACTOR_SETTING)?.as_deref() == Some("true")
            && users::find_by_id(conn, DbId(user_id))?.is_some_and(|user| user.has_password()),
    )
}

/// What the enrolment page shows: the secret as text and as a QR code, and the sealed secret
/// the form carries back (bound to the user, so another account's form cannot be replayed).
pub struct Enrolment {
    pub secret_text: Zeroizing<String>,
    pub qr_svg: String,
    pub pending: String,
}

/// Offers a fresh secret to `user_id` (nothing is stored until it is confirmed).
pub fn offer(keyring: &MasterKeyring, user_id: Uuid, email: &str) -> Result<Enrolment, TwoFactorError> {
    let secret = TotpSecret::generate();
    let offered_at = db::now().and_utc().timestamp();
    let sealed = keyring.seal(
        &crypto::pending_plaintext(&secret, offered_at),
        RowBinding::PendingSecondFactor { user: user_id },
    );
    present(&secret, crypto::encode_for_form(&sealed.bytes), email)
}

/// The same offer again, from its form (after a wrong code).
pub fn reoffer(
    keyring: &MasterKeyring,
    user_id: Uuid,
    email: &str,
    pending: &str,
) -> Result<Enrolment, TwoFactorError> {
    let secret = open_pending(keyring, user_id, pending)?;
    present(&secret, pending.trim().to_owned(), email)
}

fn present(secret: &TotpSecret, pending: String, email: &str) -> Result<Enrolment, TwoFactorError> {
    let uri = secret.otpauth_uri(ISSUER, email);
    let qr_svg =
        crypto::qr_code_svg(&uri).ok_or_else(|| TwoFactorError::Internal("the QR code cannot be drawn".into()))?;
    Ok(Enrolment {
        secret_text: secret.base32(),
        qr_svg,
        pending,
    })
}

fn open_pending(keyring: &MasterKeyring, user_id: Uuid, pending: &str) -> Result<TotpSecret, TwoFactorError> {
    let sealed = crypto::decode_from_form(pending).ok_or(TwoFactorError::EnrolmentExpired)?;
    let plain = keyring
        .open(&sealed, RowBinding::PendingSecondFactor { user: user_id })
        .map_err(|_| TwoFactorError::EnrolmentExpired)?;
    let (secret, offered_at) = crypto::parse_pending_plaintext(&plain).ok_or(TwoFactorError::EnrolmentExpired)?;
    if db::now().and_utc().timestamp() - offered_at > ENROLMENT_LIFETIME_SECONDS {
        return Err(TwoFactorError::EnrolmentExpired);
    }
    Ok(secret)
}

/// Recovery codes in clear, shown once.
pub struct RecoveryCodes(pub Vec<Zeroizing<String>>);

/// Turns the second factor on once `code` matches the offered secret: stores the secret sealed
/// to the user (the code's step counts as used) and ten recovery codes as digests, and records
/// the event. Returns the recovery codes, to show once.
pub fn confirm(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user_id: Uuid,
    pending: &str,
    code: &str,
) -> Result<RecoveryCodes, TwoFactorError> {
    let secret = open_pending(keyring, user_id, pending)?;
    let step = secret
        .matching_step(code.trim(), unix_now())
        .ok_or(TwoFactorError::WrongCode)?;
    let sealed = keyring.seal(secret.expose_bytes(), RowBinding::SecondFactor { user: user_id });
    let codes: Vec<Zeroizing<String>> = (0..crypto::RECOVERY_CODES)
        .map(|_| crypto::new_recovery_code())
        .collect();
    db::write_transaction(conn, |conn| {
        if !users::lock_owner(conn, DbId(user_id))? {
            return Err(TwoFactorError::NotFound);
        }
        if second_factors::exists(conn, DbId(user_id))? {
            return Err(TwoFactorError::AlreadyOn);
        }
        second_factors::insert(
            conn,
            &second_factors::SecondFactorRow {
                user_id: DbId(user_id),
                secret_encrypted: sealed.bytes.clone(),
                key_id: sealed.key_id.clone(),
                last_used_step: i64::try_from(step).unwrap_or(i64::MAX),
                enabled_at: db::now(),
            },
        )?;
        replace_recovery_codes(conn, user_id, &codes)?;
        accounts::record_event(
            conn,
            user_id,
            SecurityEventKind::SecondFactorEnabled,
            Actor::Themselves,
            0,
            0,
        )?;
        Ok(())
    })?;
    Ok(RecoveryCodes(codes))
}

fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: Uuid,
    codes: &[Zeroizing<String>],
) -> Result<(), TwoFactorError> {
    recovery_codes::delete_for_user(conn, DbId(user_id))?;
    for code in codes {
        recovery_codes::insert(
            conn,
            &recovery_codes::RecoveryCodeRow {
                id: DbId(Uuid::now_v7()),
                user_id: DbId(user_id),
                code_hash: crypto::hash_recovery_code(code).to_vec(),
                used_at: None,
            },
        )?;
    }
    Ok(())
}

/// After a right password: when the account has a second factor, records the pending second
/// step and returns its token (for the browser's cookie). `None` when there is no second factor.
pub fn start_challenge(conn: &mut DbConnection, user_id: Uuid) -> Result<Option<String>, TwoFactorError> {
    if !is_on(conn, user_id)? {
        return Ok(None);
    }
    let (token, hash) = crypto::new_login_challenge();
    let now = db::now();
    db::write_transaction(conn, |conn| {
        login_challenges::purge_before(conn, now)?;
        login_challenges::insert(conn, &hash, DbId(user_id), now + CHALLENGE_LIFETIME)?;
        Ok::<_, TwoFactorError>(())
    })?;
    Ok(Some(token))
}

/// Whether a pending second step is live (for showing its form).
pub fn challenge_live(conn: &mut DbConnection, token: &str) -> Result<bool, TwoFactorError> {
    Ok(login_challenges::find_live(conn, &crypto::hash_login_challenge(token), db::now())?.is_some())
}

/// The second step of a login: the challenge must be live and `code` a current one-time code
/// or an unused recovery code. Success ends the challenge (it signs in once) and returns the
/// user, to sign in exactly as a password login does.
pub fn complete_login(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    token: &str,
    code: &str,
    client: &str,
) -> Result<SignedInUser, TwoFactorError> {
    let hash = crypto::hash_login_challenge(token);
    let user_id = login_challenges::find_live(conn, &hash, db::now())?.ok_or(TwoFactorError::ChallengeExpired)?;
    let user = users::find_by_id(conn, user_id)?.ok_or(TwoFactorError::ChallengeExpired)?;
    if user.is_disabled {
        return Err(TwoFactorError::ChallengeExpired);
    }
    check_code(conn, keyring, &user, code, client, |conn| {
        if login_challenges::delete(conn, &hash)? {
            Ok(())
        } else {
            Err(TwoFactorError::ChallengeExpired)
        }
    })?;
    Ok(SignedInUser {
        id: user.id.0,
        email: user.email,
        role: user.role,
    })
}

/// A code attempt taken from both budgets before it is judged.
struct Reservation {
    login_attempt: DbId,
    code_attempt: DbId,
}

fn reserve_code_attempt(
    conn: &mut DbConnection,
    user: &users::UserRow,
    client: &str,
) -> Result<Reservation, TwoFactorError> {
    let now = db::now();
    let code_attempt = db::write_transaction(conn, |conn| {
        second_factor_failures::lock_account(conn, user.id)?;
        let since = now - CODE_FAILURE_WINDOW;
        second_factor_failures::purge_before(conn, since)?;
        let (count, oldest) = second_factor_failures::count_since(conn, user.id, since)?;
        if count >= MAX_CODE_FAILURES_PER_ACCOUNT {
            let retry_at = oldest.unwrap_or(now) + CODE_FAILURE_WINDOW;
            let retry_after_secs = (retry_at - now).num_seconds().max(1) as u64;
            return Err(TwoFactorError::RateLimited { retry_after_secs });
        }
        Ok(second_factor_failures::record(conn, user.id, now)?)
    })?;
    match accounts::reserve_attempt(conn, &user.email_key, client, Limits::AccountAndAddress) {
        Ok(login_attempt) => Ok(Reservation {
            login_attempt,
            code_attempt,
        }),
        Err(error) => {
            // Refused by the login limits: this attempt was never judged.
            second_factor_failures::delete(conn, code_attempt)?;
            Err(error.into())
        }
    }
}

/// Judges `code` for `user` after taking it from both budgets: a one-time code of a step later
/// than every step used before (one step either side of now), or an unused recovery code. On
/// success, in one transaction: the step (or recovery code) is used up, `also` runs, and the
/// attempt no longer counts. Anything else is [`TwoFactorError::WrongCode`], still counted.
pub(super) fn check_code(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user: &users::UserRow,
    code: &str,
    client: &str,
    also: impl FnOnce(&mut DbConnection) -> Result<(), TwoFactorError>,
) -> Result<(), TwoFactorError> {
    let reservation = reserve_code_attempt(conn, user, client)?;
    let factor = second_factors::find(conn, user.id)?.ok_or(TwoFactorError::NotOn)?;
    let code = code.trim();
    let recovery = crypto::looks_like_recovery_code(code);
    let step = if recovery {
        None
    } else {
        let plain = keyring
            .open(&factor.secret_encrypted, RowBinding::SecondFactor { user: user.id.0 })
            .map_err(|_| TwoFactorError::SecretUnreadable)?;
        let secret = TotpSecret::from_bytes(plain);
        Some(
            secret
                .matching_step(code, unix_now())
                .ok_or(TwoFactorError::WrongCode)?,
        )
    };
    db::write_transaction(conn, |conn| {
        let used = match step {
            Some(step) => second_factors::advance_step(conn, user.id, i64::try_from(step).unwrap_or(i64::MAX))?,
            None => {
                let used = recovery_codes::use_code(conn, user.id, &crypto::hash_recovery_code(code), db::now())?;
                if used {
                    accounts::record_event(
                        conn,
                        user.id.0,
                        SecurityEventKind::RecoveryCodeUsed,
                        Actor::Themselves,
                        0,
                        0,
                    )?;
                }
                used
            }
        };
        if !used {
            return Err(TwoFactorError::WrongCode);
        }
        also(conn)?;
        second_factor_failures::delete(conn, reservation.code_attempt)?;
        crate::db::auth_failures::delete(conn, reservation.login_attempt)?;
        Ok(())
    })
}

/// Turns the second factor off: the current password and a code are both required (each wrong
/// one counts against the limits).
pub fn disable(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    user_id: Uuid,
    current_password: &str,
    code: &str,
    client: &str,
) -> Result<(), TwoFactorError> {
    let user = users::find_by_id(conn, DbId(user_id))?.ok_or(TwoFactorError::NotFound)?;
    if !accounts::current_password_matches(conn, &user, current_password, client)? {
        return Err(TwoFactorError::WrongPassword);
    }
    if !is_on(conn, user_id)? {
        return Err(TwoFactorError::NotOn);
    }
    check_code(conn, keyring, &user, code, client, |conn| {
        remove(conn, user_id)?;
        accounts::record_event(
            conn,
            user_id,
            SecurityEventKind::SecondFactorDisabled,
            Actor::Themselves,
            0,
            0,
        )?;
        Ok(())
    })
}

fn remove(conn: &mut DbConnection, user_id: Uuid) -> Result<bool, TwoFactorError> {
    let removed = second_factors::delete(conn, DbId(user_id))?;
    recovery_codes::delete_for_user(conn, DbId(user_id))?;
    Ok(removed)
}

/// Removes a user's second factor for recovery (the command line), ending their sessions so
/// that none outlives the factor it was made with; the user's security events record it.
pub fn reset(conn: &mut DbConnection, user_id: Uuid, actor: Actor) -> Result<(), TwoFactorError> {
    db::write_transaction(conn, |conn| {
        if !users::lock_owner(conn, DbId(user_id))? {
            return Err(TwoFactorError::NotFound);
        }
        if !remove(conn, user_id)? {
            return Err(TwoFactorError::NotOn);
        }
        let sessions_ended = sessions::delete_for_user(conn, DbId(user_id), None)?;
        accounts::record_event(
            conn,
            user_id,
            SecurityEventKind::SecondFactorReset,
            actor,
            sessions_ended,
            0,
        )?;
        Ok(())
    })
}

/// How many recovery codes the user has left (for the settings page).
pub fn recovery_codes_left(conn: &mut DbConnection, user_id: Uuid) -> Result<i64, TwoFactorError> {
    Ok(recovery_codes::count_unused(conn, DbId(user_id))?)
}
