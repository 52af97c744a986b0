//! The one place a service's error gets a status, a code and the fields it names: one `From`
//! per service. Pages that show a refusal beside a form field match the service's variant
//! themselves; everything else goes through here, so the API and the pages answer alike.

use crate::error::AppError;
use crate::services::AccessError;
use crate::services::accounts::AccountsError;
use crate::services::admin::AdminError;
use crate::services::conversations::ConversationsError;
use crate::services::import::ImportError;
use crate::services::organisations::OrganisationsError;
use crate::services::service_tokens::ServiceTokensError;
use crate::services::tokens::TokensError;
use crate::services::two_factor::TwoFactorError;
use crate::services::webhooks::WebhooksError;

impl From<AccessError> for AppError {
    fn from(error: AccessError) -> Self {
        AppError::Forbidden(error.to_string())
    }
}

impl From<AccountsError> for AppError {
    fn from(error: AccountsError) -> Self {
        match error {
            AccountsError::EmailTaken => AppError::conflict(Some("email"), error.to_string()),
            AccountsError::NotFound => AppError::NotFound,
            AccountsError::RateLimited { retry_after_secs } => AppError::RateLimited { retry_after_secs },
            AccountsError::LoginFailed => AppError::validation("email", error.to_string()),
            AccountsError::Invalid(fields) => AppError::Validation(fields),
            AccountsError::SetupLinkRequired | AccountsError::RegistrationClosed => {
                AppError::Forbidden(error.to_string())
            }
            AccountsError::ReauthenticationRequired => AppError::ReauthenticationRequired,
            AccountsError::WrongPassword => AppError::validation("current_password", error.to_string()),
            AccountsError::LastAdmin => AppError::conflict(None, error.to_string()),
            AccountsError::LastOwner { .. } => AppError::LastOwner(error.to_string()),
            AccountsError::PasswordHash(_) | AccountsError::CorruptEvent => AppError::Internal(error.to_string()),
            AccountsError::Store(error) => AppError::from(error),
        }
    }
}

impl From<AdminError> for AppError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Account(error) => AppError::from(error),
            AdminError::Store(error) => AppError::from(error),
        }
    }
}

impl From<ConversationsError> for AppError {
    fn from(error: ConversationsError) -> Self {
        match error {
            ConversationsError::NotFound => AppError::NotFound,
            ConversationsError::CapReached(cap) => AppError::cap_reached(&cap),
            ConversationsError::KeyUnreadable => AppError::KeyUnreadable,
            ConversationsError::OrganisationKey => AppError::OrganisationKey(error.to_string()),
            ConversationsError::NotAMember => AppError::Forbidden(error.to_string()),
            ConversationsError::Vanished(detail) => AppError::Internal(detail.to_owned()),
            ConversationsError::NotRecorded(error) => AppError::Internal(error.to_string()),
            ConversationsError::Store(error) => AppError::from(error),
        }
    }
}

impl From<TokensError> for AppError {
    fn from(error: TokensError) -> Self {
        match error {
            TokensError::NotFound => AppError::NotFound,
            TokensError::CapReached(cap) => AppError::cap_reached(&cap),
            TokensError::InvalidCredential => AppError::Unauthorized,
            TokensError::CorruptScopes => AppError::Internal(error.to_string()),
            TokensError::Account(error) => AppError::from(error),
            TokensError::Store(error) => AppError::from(error),
        }
    }
}

impl From<TwoFactorError> for AppError {
    fn from(error: TwoFactorError) -> Self {
        match error {
            TwoFactorError::WrongCode => AppError::validation("code", error.to_string()),
            TwoFactorError::WrongPassword => AppError::validation("current_password", error.to_string()),
            TwoFactorError::RateLimited { retry_after_secs } => AppError::RateLimited { retry_after_secs },
            TwoFactorError::ChallengeExpired | TwoFactorError::EnrolmentExpired => {
                AppError::BadRequest(error.to_string())
            }
            TwoFactorError::AlreadyOn | TwoFactorError::NotOn => AppError::conflict(None, error.to_string()),
            TwoFactorError::SecretUnreadable => AppError::KeyUnreadable,
            TwoFactorError::NotFound => AppError::NotFound,
            TwoFactorError::Internal(detail) => AppError::Internal(detail),
            TwoFactorError::Store(error) => AppError::from(error),
        }
    }
}

impl From<OrganisationsError> for AppError {
    fn from(error: OrganisationsError) -> Self {
        match error {
            OrganisationsError::NotFound => AppError::NotFound,
            OrganisationsError::Forbidden | OrganisationsError::CreationRestricted => {
                AppError::Forbidden(error.to_string())
            }
            OrganisationsError::NameTaken => AppError::conflict(Some("name"), error.to_string()),
            OrganisationsError::AlreadyMember => AppError::conflict(Some("email"), error.to_string()),
            OrganisationsError::LastOwner { .. } => AppError::LastOwner(error.to_string()),
            OrganisationsError::Invalid(fields) => AppError::Validation(fields),
            OrganisationsError::Store(error) => AppError::from(error),
        }
    }
}

impl From<WebhooksError> for AppError {
    fn from(error: WebhooksError) -> Self {
        match error {
            WebhooksError::NotFound => AppError::NotFound,
            WebhooksError::Forbidden => AppError::Forbidden(error.to_string()),
            WebhooksError::CapReached => AppError::refused("cap_reached", error.to_string(), Default::default()),
            WebhooksError::Invalid(fields) => AppError::Validation(fields),
            WebhooksError::Store(error) => AppError::from(error),
        }
    }
}

impl From<ImportError> for AppError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Malformed { .. } | ImportError::Invalid { .. } => {
                AppError::validation("file", error.to_string())
            }
            ImportError::Configuration(error) => AppError::from(error),
            ImportError::Encoding(_) => AppError::Internal(error.to_string()),
            ImportError::Store(error) => AppError::from(error),
        }
    }
}

impl From<ServiceTokensError> for AppError {
    fn from(error: ServiceTokensError) -> Self {
        match error {
            ServiceTokensError::NotFound => AppError::NotFound,
            ServiceTokensError::Forbidden => AppError::Forbidden(error.to_string()),
            ServiceTokensError::CapReached(cap) => AppError::cap_reached(&cap),
            ServiceTokensError::Account(error) => AppError::from(error),
            ServiceTokensError::Store(error) => AppError::from(error),
        }
    }
}

impl From<crate::services::single_sign_on::SingleSignOnError> for AppError {
    fn from(error: crate::services::single_sign_on::SingleSignOnError) -> Self {
        use crate::services::single_sign_on::SingleSignOnError;
        match error {
            SingleSignOnError::Store(error) => AppError::from(error),
            SingleSignOnError::NotConfigured => AppError::NotFound,
            // Pages render refusals themselves (a 400 page that says why); elsewhere they are
            // a bad request like any other.
            other => AppError::BadRequest(other.to_string()),
        }
    }
}

impl From<crate::services::single_sign_on::UnlinkError> for AppError {
    fn from(error: crate::services::single_sign_on::UnlinkError) -> Self {
        use crate::services::single_sign_on::UnlinkError;
        match error {
            UnlinkError::NoPassword => AppError::conflict(None, error.to_string()),
            UnlinkError::NotFound => AppError::NotFound,
            UnlinkError::Store(error) => AppError::from(error),
        }
    }
}
