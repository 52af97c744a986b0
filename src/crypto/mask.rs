//! The display hint for a key: its well-known prefix and its last four characters.

/// Known prefixes, longest first so that `sk-ant-` wins over `sk-`.
const KNOWN_PREFIXES: [&str; 7] = ["sk-or-v1-", "sk-proj-", "sk-ant-", "gsk_", "xai-", "AIza", "sk-"];

/// Keys this short are shown as dots alone: a prefix and four characters would give away too much.
const SHORT_KEY_CHARS: usize = 12;

/// `sk-…x7Qa`, `…x7Qa` without a known prefix, `••••` for a key of 12 characters or fewer.
pub fn mask_api_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= SHORT_KEY_CHARS {
        return "••••".to_owned();
    }
    let prefix = KNOWN_PREFIXES
        .iter()
        .copied()
        .filter(|prefix| key.starts_with(prefix))
        .max_by_key(|prefix| prefix.len())
        .unwrap_or("");
    let last_four: String = chars[chars.len() - 4..].iter().collect();
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
    fn short_keys_are_dots_alone() {
        assert_eq!(mask_api_key("sk-12345678"), "••••");
        assert_eq!(mask_api_key("abcdefghijkl"), "••••");
        assert_eq!(mask_api_key("abcdefghijklm"), "…jklm");
    }

    #[test]
    fn a_mask_never_holds_more_than_the_prefix_and_four_characters() {
        let key = "sk-ant-0123456789abcdefghijklmnopqrstuvwxyz";
        let mask = mask_api_key(key);
        assert_eq!(mask.chars().count(), "sk-ant-".len() + 1 + 4);
    }
}
