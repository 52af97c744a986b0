//! Serialised configuration listings kept per user and served again while the user's listing
//! version (`db::users::listing_version`) is unchanged.
//!
//! Scripts and runtimes list far more often than anything changes, and the listing was the
//! hot path's largest cost: building 50 rows from a join and serialising 25 KB for every call.
//! The version comes from the database in the round trip that checks the caller's token anyway,
//! and triggers raise it in the same transaction as any write to what the listing shows, so a
//! change made on any instance is seen by every instance on its next request: nothing is served
//! that the database would not answer now.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::web::Bytes;
use uuid::Uuid;

/// What the cache may hold in all; beyond it, entries are dropped (whichever come first).
const MAX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct ListingCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_user: HashMap<Uuid, (i64, Bytes)>,
    bytes: usize,
}

impl ListingCache {
    /// The listing kept for `user` if it was read at exactly `version`.
    pub fn get(&self, user: Uuid, version: i64) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.by_user.get(&user) {
            Some((kept, body)) if *kept == version => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body`, read after the database showed `version`, unless a listing read at a newer
    /// version is kept already. The body is at least as new as `version`, never older: it was
    /// read after the version was.
    pub fn put(&self, user: Uuid, version: i64, body: Bytes) {
        if body.len() > MAX_BYTES / 16 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((kept, old)) = entries.by_user.get(&user) {
            if *kept > version {
                return;
            }
            let freed = old.len();
            entries.bytes -= freed;
        }
        while entries.bytes + body.len() > MAX_BYTES {
            let Some(victim) = entries.by_user.keys().next().copied() else {
                break;
            };
            if let Some((_, dropped)) = entries.by_user.remove(&victim) {
                entries.bytes -= dropped.len();
            }
        }
        entries.bytes += body.len();
        entries.by_user.insert(user, (version, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_served_only_at_the_version_it_was_read_at() {
        let cache = ListingCache::default();
        let user = Uuid::from_u128(1);
        assert_eq!(cache.get(user, 1), None);
        cache.put(user, 1, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(user, 1).as_deref(), Some(&b"[1]"[..]));
        assert_eq!(cache.get(user, 2), None, "a newer version is a miss");
        assert_eq!(cache.get(Uuid::from_u128(2), 1), None, "another user's is never served");
        cache.put(user, 3, Bytes::from_static(b"[3]"));
        cache.put(user, 2, Bytes::from_static(b"[2]"));
        assert_eq!(
            cache.get(user, 3).as_deref(),
            Some(&b"[3]"[..]),
            "an older read does not replace a newer one"
        );
        assert_eq!(cache.get(user, 2), None);
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let cache = ListingCache::default();
        let body = Bytes::from(vec![b' '; MAX_BYTES / 16]);
        for user in 0..64 {
            cache.put(Uuid::from_u128(user), 1, body.clone());
        }
        let entries = cache.entries.lock().unwrap();
        assert!(entries.bytes <= MAX_BYTES);
        assert_eq!(entries.bytes, entries.by_user.len() * body.len());
        drop(entries);
        cache.put(Uuid::from_u128(100), 1, Bytes::from(vec![b' '; MAX_BYTES / 16 + 1]));
        assert_eq!(cache.entries.lock().unwrap().by_user.len(), 16, "too large to keep");
    }
}
