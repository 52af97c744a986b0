//! Resolves that wait for a change (`wait=` with `If-None-Match`, runtimes.md): who is waiting
//! for whose answer, and the bells that wake them when the database reports a change, whichever
//! instance or process made it (`db::resolve_feed`). A waiting request holds no database
//! connection and no thread, only a [`Subscription`]; when woken it resolves again, with every
//! check, and answers if the answer changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};

use tokio::sync::watch;
use uuid::Uuid;

use crate::db::resolve_feed::{self, Change};
use crate::db::{DatabaseUrl, DbConnection, DbError, DbId, memberships};
use crate::domain::MemberRef;

/// How many requests one token may have waiting at once (429 beyond).
pub const MAX_WAITS_PER_TOKEN: usize = 100;

/// The bells of one process: one per user someone waits for, and one for the waits that have
/// no user (a service token's, for someone who is no member: they hear only changes that
/// concern everyone). A change that concerns everyone rings every bell.
pub struct ResolveWaits {
    url: DatabaseUrl,
    /// The feed is followed from the first wait on, by one thread, for the life of the waits.
    following: Once,
    bells: Mutex<HashMap<Option<Uuid>, Bell>>,
    per_token: Mutex<HashMap<Uuid, usize>>,
}

struct Bell {
    rung: watch::Sender<u64>,
    waiters: usize,
}

impl Bell {
    fn ring(&self) {
        self.rung.send_modify(|rung| *rung = rung.wrapping_add(1));
    }
}

impl ResolveWaits {
    pub fn new(url: DatabaseUrl) -> Self {
        ResolveWaits {
            url,
            following: Once::new(),
            bells: Mutex::default(),
            per_token: Mutex::default(),
        }
    }

    /// Listens for changes to `user`'s answer (`None`: only to changes that concern everyone).
    /// Take it before resolving, so that a change committed after the resolve read is heard.
    pub fn subscribe(self: &Arc<Self>, user: Option<Uuid>) -> Subscription {
        self.follow_changes();
        let mut bells = lock(&self.bells);
        let bell = bells.entry(user).or_insert_with(|| Bell {
            rung: watch::Sender::new(0),
            waiters: 0,
        });
        bell.waiters += 1;
        Subscription {
            waits: self.clone(),
            user,
            rung: bell.rung.subscribe(),
        }
    }

    /// A place among the token's waiting requests, or `None` when it has
    /// [`MAX_WAITS_PER_TOKEN`] already.
    pub fn hold_place(self: &Arc<Self>, token: Uuid) -> Option<WaitingPlace> {
        let mut places = lock(&self.per_token);
        let held = places.entry(token).or_default();
        if *held >= MAX_WAITS_PER_TOKEN {
            return None;
        }
        *held += 1;
        Some(WaitingPlace {
            waits: self.clone(),
            token,
        })
    }

    /// Wakes whoever waits for one of these users, or everyone.
    pub fn ring(&self, change: &Change) {
        let bells = lock(&self.bells);
        match change {
            Change::Everyone => bells.values().for_each(Bell::ring),
            Change::Users(users) => users
                .iter()
                .filter_map(|user| bells.get(&Some(*user)))
                .for_each(Bell::ring),
        }
    }

    /// Starts the thread that follows the database's changes, once: it ends when these waits
    /// are dropped (the server stopped).
    fn follow_changes(self: &Arc<Self>) {
        self.following.call_once(|| {
            let waits: Weak<ResolveWaits> = Arc::downgrade(self);
            let url = self.url.clone();
            let started = std::thread::Builder::new()
                .name("resolve-changes".into())
                .spawn(move || {
                    resolve_feed::follow(&url, |change| match waits.upgrade() {
                        Some(waits) => {
                            waits.ring(&change);
                            true
                        }
                        None => false,
                    })
                });
            if let Err(error) = started {
                // Waits still end at their deadline, with a fresh resolve; only early wakes are lost.
                tracing::error!(%error, "cannot start following resolve changes");
            }
        });
    }
}

/// The member a service token's waiting resolve is for, to know whose changes to wait for
/// (`None` for anyone who is no active member: that resolve is refused anyway).
pub fn member_id(conn: &mut DbConnection, organisation_id: Uuid, member: &MemberRef) -> Result<Option<Uuid>, DbError> {
    let (id, email_key) = match member {
        MemberRef::Id(id) => (Some(DbId(*id)), None),
        MemberRef::Email(email) => (None, Some(email.key())),
        MemberRef::Nobody => return Ok(None),
    };
    Ok(memberships::find_active_member(conn, DbId(organisation_id), id, email_key.as_deref())?.map(|(id, _)| id.0))
}

/// One waiting request's ear: its user's bell. Thousands wait at once, so it is kept small: one
/// receiver, and a wait that is one timeout around it.
pub struct Subscription {
    waits: Arc<ResolveWaits>,
    user: Option<Uuid>,
    rung: watch::Receiver<u64>,
}

impl Subscription {
    /// Waits until the answer may have changed since the subscription was taken or last woke
    /// (`true`), or until `deadline` (`false`).
    pub async fn changed_before(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.rung.changed()).await {
            Ok(Ok(())) => true,
            Err(_elapsed) => false,
            // The bell is gone, which it never is while this subscription holds it: no wake.
            Ok(Err(_closed)) => {
                tokio::time::sleep_until(deadline).await;
                false
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut bells = lock(&self.waits.bells);
        if let Some(bell) = bells.get_mut(&self.user) {
            bell.waiters = bell.waiters.saturating_sub(1);
            if bell.waiters == 0 {
                bells.remove(&self.user);
            }
        }
    }
}

/// One of a token's [`MAX_WAITS_PER_TOKEN`] places, given back when dropped.
pub struct WaitingPlace {
    waits: Arc<ResolveWaits>,
    token: Uuid,
}

impl Drop for WaitingPlace {
    fn drop(&mut self) {
        let mut places = lock(&self.waits.per_token);
        if let Some(held) = places.get_mut(&self.token) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                places.remove(&self.token);
            }
        }
    }
}

/// A bell map stays consistent whatever panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waits() -> Arc<ResolveWaits> {
        // A path that never opens: the feed thread retries quietly while the tests ring by hand.
        Arc::new(ResolveWaits::new(DatabaseUrl::Sqlite(
            "/nonexistent/dir/lanyard.db".into(),
        )))
    }

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(200)
    }

    #[tokio::test]
    async fn a_user_s_bell_wakes_only_that_user_s_waits_and_everyone_s_wakes_all() {
        let waits = waits();
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut for_alice = waits.subscribe(Some(alice));
        let mut for_bob = waits.subscribe(Some(bob));
        waits.ring(&Change::Users(vec![alice]));
        assert!(for_alice.changed_before(soon()).await);
        assert!(!for_bob.changed_before(soon()).await);
        waits.ring(&Change::Everyone);
        assert!(for_bob.changed_before(soon()).await);
        assert!(for_alice.changed_before(soon()).await);
    }

    #[tokio::test]
    async fn a_wait_without_a_user_hears_only_changes_for_everyone() {
        let waits = waits();
        let alice = Uuid::new_v4();
        let mut for_nobody = waits.subscribe(None);
        let _for_alice = waits.subscribe(Some(alice));
        waits.ring(&Change::Users(vec![alice]));
        assert!(!for_nobody.changed_before(soon()).await);
        waits.ring(&Change::Everyone);
        assert!(for_nobody.changed_before(soon()).await);
    }

    #[tokio::test]
    async fn a_change_between_subscribing_and_waiting_is_not_lost() {
        let waits = waits();
        let alice = Uuid::new_v4();
        let mut subscription = waits.subscribe(Some(alice));
        waits.ring(&Change::Users(vec![alice]));
        assert!(subscription.changed_before(soon()).await);
        assert!(!subscription.changed_before(soon()).await, "one change wakes once");
    }

    #[test]
    fn bells_and_places_are_given_back() {
        let waits = waits();
        let alice = Uuid::new_v4();
        let first = waits.subscribe(Some(alice));
        let second = waits.subscribe(Some(alice));
        let nobody = waits.subscribe(None);
        drop(first);
        assert_eq!(lock(&waits.bells).len(), 2);
        drop(second);
        assert_eq!(lock(&waits.bells).len(), 1);
        drop(nobody);
        assert!(lock(&waits.bells).is_empty());

        let token = Uuid::new_v4();
        let places: Vec<_> = (0..MAX_WAITS_PER_TOKEN)
            .map_while(|_| waits.hold_place(token))
            .collect();
        assert_eq!(places.len(), MAX_WAITS_PER_TOKEN);
        assert!(waits.hold_place(token).is_none());
        assert!(
            waits.hold_place(Uuid::new_v4()).is_some(),
            "another token has its own places"
        );
        drop(places);
        assert!(lock(&waits.per_token).is_empty());
    }
}
