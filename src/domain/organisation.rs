//! Organisations: their names, who may create them, and the read models the organisation
//! services return.

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::account::OrganisationRole;
use super::configuration::ConfigName;

/// An organisation's name: the rules of a configuration's name (trimmed, 1 to 64 characters, no
/// control characters), unique across the instance ignoring case ([`OrganisationName::key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationName(ConfigName);

impl OrganisationName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        ConfigName::parse(raw).map(OrganisationName)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The case-folded form that uniqueness uses.
    pub fn key(&self) -> String {
        self.0.key()
    }
}

/// Who may create organisations (`LANYARD_ORGANISATION_CREATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrganisationCreation {
    /// Any signed-in user (`anyone`, the default).
    #[default]
    Anyone,
    /// Only instance admins (`admins`).
    Admins,
}

impl OrganisationCreation {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "anyone" => Ok(OrganisationCreation::Anyone),
            "admins" => Ok(OrganisationCreation::Admins),
            _ => Err("must be `anyone` or `admins`".into()),
        }
    }
}

/// What an organisation decides for its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationPolicy {
    /// Whether a service token may reveal a member's own configurations (when that member also
    /// shares them).
    pub allow_personal_configurations: bool,
    pub default_configuration_id: Option<Uuid>,
}

/// An organisation as one of its members sees it.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub id: Uuid,
    pub name: String,
    /// The caller's role in it.
    pub role: OrganisationRole,
    pub policy: OrganisationPolicy,
    /// Whether the caller shares their personal configurations with it.
    pub share_personal_configurations: bool,
    pub created_at: NaiveDateTime,
}

/// Whether someone belongs to an organisation or is only invited to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipStatus {
    Active,
    Invited,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Active => "active",
            MembershipStatus::Invited => "invited",
        }
    }
}

/// One line of the caller's organisations: one they belong to, or one they are invited to
/// (with the role offered).
#[derive(Debug, Clone)]
pub struct OrganisationEntry {
    pub id: Uuid,
    pub name: String,
    pub role: OrganisationRole,
    pub status: MembershipStatus,
    pub created_at: NaiveDateTime,
}

/// A member or an invited e-mail, as an organisation's admins see them.
#[derive(Debug, Clone)]
pub struct Member {
    /// `None` while invited.
    pub user_id: Option<Uuid>,
    pub email: String,
    pub role: OrganisationRole,
    pub status: MembershipStatus,
}

/// An organisation as the instance's admins see it on `/admin`.
#[derive(Debug, Clone)]
pub struct OrganisationOverview {
    pub id: Uuid,
    pub name: String,
    /// The owners' e-mails.
    pub owners: Vec<String>,
    pub member_count: i64,
    pub created_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_names_follow_configuration_names() {
        let name = OrganisationName::parse("  Acme Lab ").unwrap();
        assert_eq!(name.as_str(), "Acme Lab");
        assert_eq!(name.key(), "acme lab");
        assert!(OrganisationName::parse(" ").is_err());
        assert!(OrganisationName::parse(&"x".repeat(65)).is_err());
        assert!(OrganisationName::parse("bad\u{7}name").is_err());
    }

    #[test]
    fn creation_is_by_anyone_or_by_admins() {
        assert_eq!(OrganisationCreation::parse("anyone"), Ok(OrganisationCreation::Anyone));
        assert_eq!(OrganisationCreation::parse(" admins"), Ok(OrganisationCreation::Admins));
        assert!(OrganisationCreation::parse("everyone").is_err());
        assert_eq!(OrganisationCreation::default(), OrganisationCreation::Anyone);
    }
}

/// Whom a service token resolves for (`GET /api/resolve?user=…`): a user id or an e-mail. What
/// is neither names nobody, and gets the answer anyone outside the organisation gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRef {
    Id(Uuid),
    Email(super::Email),
    Nobody,
}

impl MemberRef {
    pub fn parse(raw: &str) -> MemberRef {
        let raw = raw.trim();
        if let Ok(id) = Uuid::parse_str(raw) {
            return MemberRef::Id(id);
        }
        match super::Email::parse(raw) {
            Ok(email) => MemberRef::Email(email),
            Err(_) => MemberRef::Nobody,
        }
    }
}
