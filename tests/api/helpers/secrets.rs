//! Looking for a key in text, in every window of it.

/// Every 12-character window of `key`: none of them may leak.
pub fn windows_of(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    chars.windows(12).map(|window| window.iter().collect()).collect()
}

/// Asserts that no 12-character window of any of `keys` occurs in `text`.
pub fn assert_no_key_in(text: &str, keys: &[&str], context: &str) {
    for key in keys {
        for window in windows_of(key) {
            assert!(
                !text.contains(&window),
                "{context} contains `{window}` of a key: {text}"
            );
        }
    }
}
