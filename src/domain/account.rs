//! Accounts: email addresses, passwords, roles.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use validator::ValidateEmail;

/// An email address as entered (trimmed), compared case-insensitively through [`Email::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        if email.len() > 254 || !email.validate_email() {
            return Err("must be a valid email address".into());
        }
        Ok(Email(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and login use.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A new password: 10 to 1024 characters. Held as a secret.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Password(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A user's role, stored as `admin` or `member` (the text mapping is in `db/sql_types.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A member's role in an organisation, stored as `owner`, `admin` or `member` (the text mapping
/// is in `db/sql_types.rs`). Each role may do all that the ones after it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum OrganisationRole {
    Owner,
    Admin,
    Member,
}

impl OrganisationRole {
    pub const ALL: [OrganisationRole; 3] = [
        OrganisationRole::Owner,
        OrganisationRole::Admin,
        OrganisationRole::Member,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationRole::Owner => "owner",
            OrganisationRole::Admin => "admin",
            OrganisationRole::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<OrganisationRole> {
        match raw {
            "owner" => Some(OrganisationRole::Owner),
            "admin" => Some(OrganisationRole::Admin),
            "member" => Some(OrganisationRole::Member),
            _ => None,
        }
    }

    /// Whether this role may do what `needed` may (owner ⊇ admin ⊇ member).
    pub fn includes(self, needed: OrganisationRole) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            OrganisationRole::Owner => 2,
            OrganisationRole::Admin => 1,
            OrganisationRole::Member => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keyed_case_insensitively() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada@Example.COM");
        assert_eq!(email.key(), "ada@example.com");
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("").is_err());
    }

    #[test]
    fn passwords_have_a_minimum_length_and_never_print() {
        assert!(Password::parse("short").is_err());
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(password.expose(), "correct horse battery");
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn organisation_roles_include_the_ones_after_them() {
        use OrganisationRole::{Admin, Member, Owner};
        assert!(Owner.includes(Admin) && Owner.includes(Member) && Admin.includes(Member));
        assert!(!Admin.includes(Owner) && !Member.includes(Admin));
        for role in OrganisationRole::ALL {
            assert!(role.includes(role));
            assert_eq!(OrganisationRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(OrganisationRole::parse("Owner"), None);
    }
}
