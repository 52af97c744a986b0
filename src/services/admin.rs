//! What an admin sees of the instance: every user with the health of their configurations, the
//! master keys in use, the audit of key reveals and of security events. Never a key, never a
//! password hash.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::accounts::{self, AccountsError, SecurityEvent};
use super::two_factor;
use crate::db::{DbConnection, DbError, key_reveals, llm_configurations, users};
use crate::domain::{Role, TestStatus};

/// What can go wrong reading the instance's overview: nothing of the admin's doing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Account(#[from] AccountsError),
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(AdminError);

/// A user as the admin page lists them.
#[derive(Debug, Clone)]
pub struct UserOverview {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub is_disabled: bool,
    pub created_at: NaiveDateTime,
    /// Their configurations by last test result: ok, failed, untested.
    pub tested_ok: i64,
    pub tested_failed: i64,
    pub untested: i64,
}

/// One key reveal from the audit.
#[derive(Debug, Clone)]
pub struct Reveal {
    pub at: NaiveDateTime,
    pub email: String,
    pub configuration: String,
    pub source: String,
    pub conversation: Option<String>,
    pub token: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct AdminOverview {
    pub users: Vec<UserOverview>,
    pub registration_open: bool,
    pub second_factor_required: bool,
    /// Stored keys per master key id.
    pub keys_by_id: Vec<(String, i64)>,
    pub reveals: Vec<Reveal>,
    pub security_events: Vec<SecurityEvent>,
}

/// Sealed values per master key id, for the admin's master-key table: API keys and second-factor
/// secrets (every sealed value `rotate-keys` re-seals).
fn sealed_values_by_key_id(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AdminError> {
    let mut counts: std::collections::BTreeMap<String, i64> = crate::db::connections::count_keys_by_key_id(conn)?
        .into_iter()
        .collect();
    for (key_id, count) in crate::db::second_factors::count_by_key_id(conn)? {
        *counts.entry(key_id).or_default() += count;
    }
    Ok(counts.into_iter().collect())
}

/// Reveals shown on the admin page.
const REVEALS_SHOWN: i64 = 100;

pub fn overview(conn: &mut DbConnection) -> Result<AdminOverview, AdminError> {
    let mut health: HashMap<Uuid, (i64, i64, i64)> = HashMap::new();
    for (user_id, status, count) in llm_configurations::health_by_user(conn)? {
        let entry = health.entry(user_id.0).or_default();
        match status {
            TestStatus::Ok => entry.0 += count,
            TestStatus::Failed => entry.1 += count,
            TestStatus::Untested => entry.2 += count,
        }
    }
    let users = users::list_all(conn)?
        .into_iter()
        .map(|user| {
            let (tested_ok, tested_failed, untested) = health.get(&user.id.0).copied().unwrap_or_default();
            UserOverview {
                id: user.id.0,
                email: user.email,
                role: user.role,
                is_disabled: user.is_disabled,
                created_at: user.created_at,
                tested_ok,
                tested_failed,
                untested,
            }
        })
        .collect();
    let reveals = key_reveals::recent(conn, REVEALS_SHOWN)?
        .into_iter()
        .map(|(line, email)| Reveal {
            at: line.revealed_at,
            email,
            configuration: line.configuration_name,
            source: line.source,
            conversation: line.conversation_id,
            token: line.token_id.map(|id| id.0),
        })
        .collect();
    Ok(AdminOverview {
        users,
        registration_open: accounts::registration_open(conn)?,
        second_factor_required: crate::db::instance_settings::get(conn, two_factor::REQUIRE_SECOND_FACTOR_SETTING)?
            .as_deref()
            == Some("true"),
        keys_by_id: sealed_values_by_key_id(conn)?,
        reveals,
        security_events: accounts::recent_security_events(conn)?,
    })
}
