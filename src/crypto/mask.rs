//! The display hint for a key: its well-known prefix and its last four characters.

/// Known prefixes, longest first so that `sk-ant-` wins over `sk-`.
const KNOWN_PREFIXES: [&str; 7] = ["sk-or-v1-", "sk-proj-", "sk-ant-", "gsk_", "xai-", "AIza", "sk-"];

/// A mask shows a prefix and four characters only while at least this many stay hidden; a
/// shorter key is dots alone, since its visible part would be too large a share of it.
const MIN_HIDDEN_CHARS: usize = 12;

/// Bumped whenever the rule below changes, so that hints stored under an older rule are
/// recomputed once at start-up (see `services::configurations::recompute_key_hints`).
pub const MASK_RULE_VERSION: u32 = 2;

/// `sk-…x7Qa`, `…x7Qa` without a known prefix, and `••••` unless at least
/// [`MIN_HIDDEN_CHARS`] characters stay hidden behind the prefix and the last four.
pub fn mask_api_key(key: &str) -> String {
    let chars = key.chars().count();
    let prefix = KNOWN_PREFIXES
        .iter()
        .copied()
        .filter(|prefix| key.starts_with(prefix))
        .max_by_key(|prefix| prefix.len())
        .unwrap_or("");
    let hidden = chars.saturating_sub(prefix.chars().count() + 4);
    if hidden < MIN_HIDDEN_CHARS {
        return "••••".to_owned();
    }
    let last_four: String = key.chars().skip(chars - 4).collect();
    format!("{prefix}…{last_four}")
}

#[cfg(test)]
mod tests {
    use super::mask_api_key;

    #[test]
    fn masks_show_the_longest_known_prefix_and_the_last_four() {
        assert_eq!(mask_api_key("sk-abcdefghijklmnopx7Qa"), "sk-…x7Qa");
        assert_eq!(mask_api_key("sk-ant-api03-abcdefghijx7Qa"), "sk-ant-…x7Qa");
        assert_eq!(mask_api_key("sk-proj-abcdefghijklx7Qa"), "sk-proj-…x7Qa");
        assert_eq!(mask_api_key("sk-or-v1-abcdefghijklx7Qa"), "sk-or-v1-…x7Qa");
        assert_eq!(mask_api_key("gsk_abcdefghijklmnx7Qa"), "gsk_…x7Qa");
        assert_eq!(mask_api_key("xai-abcdefghijklmnx7Qa"), "xai-…x7Qa");
        assert_eq!(mask_api_key("AIzaSyabcdefghijklx7Qa"), "AIza…x7Qa");
        assert_eq!(mask_api_key("0123456789abcdefx7Qa"), "…x7Qa");
    }

    #[test]
    fn keys_that_would_hide_fewer_than_twelve_characters_are_dots_alone() {
        assert_eq!(mask_api_key("sk-12345678"), "••••");
        assert_eq!(mask_api_key("abcdefghijkl"), "••••");
        // 16 characters without a known prefix: showing four would hide only twelve.
        assert_eq!(mask_api_key("abcdefghijklmnop"), "…mnop");
        assert_eq!(mask_api_key("abcdefghijklmno"), "••••");
        // The prefix counts as shown: `sk-ant-` + 11 hidden + 4 is too short, + 12 is not.
        assert_eq!(mask_api_key("sk-ant-0123456789Ax7Qa"), "••••");
        assert_eq!(mask_api_key("sk-ant-0123456789ABx7Qa"), "sk-ant-…x7Qa");
    }

    #[test]
    fn a_mask_never_holds_more_than_the_prefix_and_four_characters() {
        let key = "sk-ant-0123456789abcdefghijklmnopqrstuvwxyz";
        let mask = mask_api_key(key);
        assert_eq!(mask.chars().count(), "sk-ant-".len() + 1 + 4);
    }
}
