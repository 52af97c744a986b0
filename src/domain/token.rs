//! API token scopes. The token secret itself is `crypto::TokenSecret`.

/// What a token may do. `write` includes `read`; `resolve` includes nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Write,
    Resolve,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Resolve => "resolve",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        match raw.trim() {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "resolve" => Some(Scope::Resolve),
            _ => None,
        }
    }
}

/// A non-empty set of scopes, kept sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses `read,write` (commas or whitespace between names).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut scopes = Vec::new();
        for name in raw.split([',', ' ']).map(str::trim).filter(|name| !name.is_empty()) {
            let scope =
                Scope::parse(name).ok_or_else(|| format!("unknown scope `{name}`: use read, write or resolve"))?;
            scopes.push(scope);
        }
        Scopes::from_list(scopes)
    }

    pub fn from_list(mut scopes: Vec<Scope>) -> Result<Self, String> {
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err("name at least one scope: read, write or resolve".into());
        }
        Ok(Scopes(scopes))
    }

    /// Does this set grant `needed`? `write` grants `read`.
    pub fn grants(&self, needed: Scope) -> bool {
        self.0.contains(&needed) || (needed == Scope::Read && self.0.contains(&Scope::Write))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The stored form, `read,write`.
    pub fn to_stored(&self) -> String {
        self.0.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_grants_read_and_resolve_grants_nothing_else() {
        let write = Scopes::parse("write").unwrap();
        assert!(write.grants(Scope::Read) && write.grants(Scope::Write) && !write.grants(Scope::Resolve));
        let resolve = Scopes::parse("resolve").unwrap();
        assert!(!resolve.grants(Scope::Read) && !resolve.grants(Scope::Write) && resolve.grants(Scope::Resolve));
        assert_eq!(Scopes::parse("write, read,write").unwrap().to_stored(), "read,write");
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse("admin").is_err());
    }
}
