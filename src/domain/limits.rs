//! Per-user caps set by the operator (`LANYARD_MAX_*`): how many of a thing one user may hold.

/// One cap: the most a user may hold, and the variable that sets it (named in the refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCap {
    pub max: u32,
    pub variable: &'static str,
    /// What is counted, in the plural: `configurations`.
    pub counted: &'static str,
}

impl UserCap {
    pub const fn new(variable: &'static str, counted: &'static str, max: u32) -> Self {
        UserCap { max, variable, counted }
    }

    /// Would one more be too many, for a user who already holds `held`?
    pub fn is_reached(&self, held: i64) -> bool {
        held >= i64::from(self.max)
    }

    /// The refusal, in words: `at most 1000 configurations per user (LANYARD_MAX_CONFIGURATIONS)`.
    pub fn describe(&self) -> String {
        format!(
            "at most {} {} per user ({}); delete one first",
            self.max, self.counted, self.variable
        )
    }
}

/// Every per-user cap, with the defaults of `operations.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCaps {
    pub configurations: UserCap,
    pub connections: UserCap,
    pub tokens: UserCap,
    pub overrides: UserCap,
}

impl Default for UserCaps {
    fn default() -> Self {
        UserCaps {
            configurations: UserCap::new("LANYARD_MAX_CONFIGURATIONS", "configurations", 1000),
            connections: UserCap::new("LANYARD_MAX_CONNECTIONS", "connections", 1000),
            tokens: UserCap::new("LANYARD_MAX_TOKENS", "API tokens", 100),
            overrides: UserCap::new("LANYARD_MAX_OVERRIDES", "conversation overrides", 10_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_is_reached_at_its_maximum_and_names_its_variable() {
        let cap = UserCap::new("LANYARD_MAX_TOKENS", "API tokens", 3);
        assert!(!cap.is_reached(2));
        assert!(cap.is_reached(3));
        assert!(cap.describe().contains("LANYARD_MAX_TOKENS"));
        assert!(cap.describe().contains("at most 3 API tokens"));
    }
}
