//! Comparing secrets without telling an attacker, by the time it takes, how much of a guess was
//! right.

use subtle::ConstantTimeEq;

/// Whether `presented` equals `expected`, in time that depends only on their lengths.
pub fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
