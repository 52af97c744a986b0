//! The edge shared by pages and the API: who is calling (a session or a token, as one
//! [`Caller`]), CSRF and `Origin` checks, the body cap, the client's address, the request id and
//! metrics, sessions, and the one place that renders an error as JSON, as a page or as an htmx
//! redirect. `web/` and `api/` build on it; it knows no page and no resource.

pub mod anonymous_csrf;
pub mod api_error;
pub mod auth;
pub mod body;
pub mod caller;
pub mod client;
pub mod configuration_errors;
pub mod listing_cache;
pub mod observability;
pub mod page_error;
pub mod service_errors;
pub mod session;
pub mod waiting_requests;

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::MasterKeyring;
use crate::db::Database;
use crate::egress::OutboundClient;
use crate::services::connection_tests::Tester;
use crate::services::resolve_journal::ResolveJournal;
use crate::services::resolve_tags::TagSecretCell;
use crate::services::resolve_waits::ResolveWaits;

pub use api_error::{ApiError, ApiResult, ErrorBody};
pub use auth::{NoFields, ProtectedForm, SignInForm, SignedIn, is_htmx};
pub use body::{JsonObject, MAX_BODY_BYTES};
pub use caller::Caller;
pub use client::client_address;
pub use listing_cache::ListingCache;
pub use page_error::{PageError, PageResult};

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    /// Every outbound request (provider tests) goes through this client and its egress policy.
    pub outbound: OutboundClient,
    pub keyring: Arc<MasterKeyring>,
    pub settings: Arc<Settings>,
    /// Configuration listings served again while unchanged (shared by the workers).
    pub listings: Arc<ListingCache>,
    /// The secret of resolve's tags, read once from the database.
    pub resolve_tags: Arc<TagSecretCell>,
    /// Resolves waiting for a change (`wait=`), and what wakes them.
    pub resolve_waits: Arc<ResolveWaits>,
    /// Single sign-on, when the operator configured it (`LANYARD_OIDC_ISSUER`).
    pub single_sign_on: Option<Arc<crate::services::single_sign_on::SingleSignOn>>,
    /// Resolve's writes, committed in groups.
    pub resolve_journal: ResolveJournal,
}

impl AppState {
    /// What provider tests run with: the pool, the keyring, the outbound client and the budget.
    pub fn tester(&self) -> Tester<'_> {
        Tester {
            database: &self.db,
            keyring: &self.keyring,
            client: &self.outbound,
            per_minute: self.settings.test_rate_per_minute,
        }
    }
}
