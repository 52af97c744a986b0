//! Configuration listings, serialised (the API's JSON, the management page's HTML), kept per user
//! and served again while the user's listing version (`db::users::listing_version`) is unchanged.
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
    by_user: HashMap<(Uuid, View), (i64, Bytes)>,
    bytes: usize,
}

/// Which rendering of a user's listing, with everything besides the listing that it shows: the
/// answer is a function of the listing and of this, so equal views of one version are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    /// `GET /api/llm-configurations`.
    Json,
    /// The management page, as its layout shows this session's user and carries its CSRF token.
    Page {
        email: String,
        is_admin: bool,
        csrf_token: String,
    },
}

impl ListingCache {
    /// The listing kept for `user` in `view` if it was read at exactly `version`.
    pub fn get(&self, user: Uuid, view: &View, version: i64) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.by_user.get(&(user, view.clone())) {
            Some((kept, body)) if *kept == version => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body`, read after the database showed `version`, unless a listing read at a newer
    /// version is kept already. The body is at least as new as `version`, never older: it was
    /// read after the version was.
    pub fn put(&self, user: Uuid, view: View, version: i64, body: Bytes) {
        if body.len() > MAX_BYTES / 16 {
            return;
        }
        let key = (user, view);
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((kept, old)) = entries.by_user.get(&key) {
            if *kept > version {
                return;
            }
            let freed = old.len();
            entries.bytes -= freed;
        }
        while entries.bytes + body.len() > MAX_BYTES {
            let Some(victim) = entries.by_user.keys().next().cloned() else {
                break;
            };
            if let Some((_, dropped)) = entries.by_user.remove(&victim) {
                entries.bytes -= dropped.len();
            }
        }
        entries.bytes += body.len();
        entries.by_user.insert(key, (version, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_served_only_at_the_version_it_was_read_at() {
        let cache = ListingCache::default();
        let user = Uuid::from_u128(1);
        assert_eq!(cache.get(user, &View::Json, 1), None);
        cache.put(user, View::Json, 1, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(user, &View::Json, 1).as_deref(), Some(&b"[1]"[..]));
        assert_eq!(cache.get(user, &View::Json, 2), None, "a newer version is a miss");
        assert_eq!(
            cache.get(Uuid::from_u128(2), &View::Json, 1),
            None,
            "another user's is never served"
        );
        cache.put(user, View::Json, 3, Bytes::from_static(b"[3]"));
        cache.put(user, View::Json, 2, Bytes::from_static(b"[2]"));
        assert_eq!(
            cache.get(user, &View::Json, 3).as_deref(),
            Some(&b"[3]"[..]),
            "an older read does not replace a newer one"
        );
        assert_eq!(cache.get(user, &View::Json, 2), None);
    }

    #[test]
    fn a_page_is_served_only_to_the_same_view() {
        let cache = ListingCache::default();
        let user = Uuid::from_u128(1);
        let page = |csrf_token: &str| View::Page {
            email: "a@example.com".into(),
            is_admin: false,
            csrf_token: csrf_token.into(),
        };
        cache.put(user, page("one"), 1, Bytes::from_static(b"<html>one"));
        assert_eq!(cache.get(user, &page("one"), 1).as_deref(), Some(&b"<html>one"[..]));
        assert_eq!(cache.get(user, &page("two"), 1), None, "another session's form token");
        assert_eq!(cache.get(user, &View::Json, 1), None, "another rendering");
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let cache = ListingCache::default();
        let body = Bytes::from(vec![b' '; MAX_BYTES / 16]);
        for user in 0..64 {
            cache.put(Uuid::from_u128(user), View::Json, 1, body.clone());
        }
        let entries = cache.entries.lock().unwrap();
        assert!(entries.bytes <= MAX_BYTES);
        assert_eq!(entries.bytes, entries.by_user.len() * body.len());
        drop(entries);
        cache.put(
            Uuid::from_u128(100),
            View::Json,
            1,
            Bytes::from(vec![b' '; MAX_BYTES / 16 + 1]),
        );
        assert_eq!(cache.entries.lock().unwrap().by_user.len(), 16, "too large to keep");
    }
}
