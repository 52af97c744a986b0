//! Who owns a connection or a configuration (a user or an organisation), and how a resource
//! shows its owner to its caller.

use uuid::Uuid;

use super::OrganisationRole;

/// The owner of a connection or a configuration: exactly one user or one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    User(Uuid),
    Organisation(Uuid),
}

impl Owner {
    /// From the two exclusive owner columns (the database's CHECK keeps exactly one set).
    pub fn from_columns(user: Option<Uuid>, organisation: Option<Uuid>) -> Option<Owner> {
        match (user, organisation) {
            (Some(user), None) => Some(Owner::User(user)),
            (None, Some(organisation)) => Some(Owner::Organisation(organisation)),
            _ => None,
        }
    }

    pub fn user(self) -> Option<Uuid> {
        match self {
            Owner::User(id) => Some(id),
            Owner::Organisation(_) => None,
        }
    }

    pub fn organisation(self) -> Option<Uuid> {
        match self {
            Owner::User(_) => None,
            Owner::Organisation(id) => Some(id),
        }
    }

    /// The owner's own id, whichever kind it is.
    pub fn id(self) -> Uuid {
        match self {
            Owner::User(id) | Owner::Organisation(id) => id,
        }
    }
}

/// A resource's owner as its caller sees it, and what the caller may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The caller's own.
    Own,
    /// An organisation's, seen by one of its members in `role`.
    Organisation {
        id: Uuid,
        name: String,
        role: OrganisationRole,
    },
}

impl Ownership {
    /// Whether the caller may change it: their own, or as an organisation's admin or owner.
    pub fn can_edit(&self) -> bool {
        match self {
            Ownership::Own => true,
            Ownership::Organisation { role, .. } => role.includes(OrganisationRole::Admin),
        }
    }

    /// The organisation it belongs to, if any.
    pub fn organisation_id(&self) -> Option<Uuid> {
        match self {
            Ownership::Own => None,
            Ownership::Organisation { id, .. } => Some(*id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_owner_column_names_an_owner() {
        let id = Uuid::now_v7();
        assert_eq!(Owner::from_columns(Some(id), None), Some(Owner::User(id)));
        assert_eq!(Owner::from_columns(None, Some(id)), Some(Owner::Organisation(id)));
        assert_eq!(Owner::from_columns(Some(id), Some(id)), None);
        assert_eq!(Owner::from_columns(None, None), None);
    }

    #[test]
    fn members_use_and_admins_edit() {
        let member = Ownership::Organisation {
            id: Uuid::now_v7(),
            name: "Acme".into(),
            role: OrganisationRole::Member,
        };
        assert!(!member.can_edit());
        assert!(Ownership::Own.can_edit());
    }
}
