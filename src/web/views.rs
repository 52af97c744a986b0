//! What templates show: the page layout and display forms of configurations and tokens.

use chrono::NaiveDateTime;

use super::assets::asset_url;
use crate::domain::{Configuration, Provider};
use crate::http::auth::SignedIn;
use crate::services::tokens::TokenSummary;

/// `2026-11-26 10:00 UTC`.
pub fn display_time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub struct NavUser {
    pub email: String,
    pub is_admin: bool,
}

/// What `base.html` needs.
pub struct Layout {
    pub title: String,
    pub csrf_token: String,
    pub section: &'static str,
    pub user: Option<NavUser>,
}

impl Layout {
    pub fn signed_in(title: impl Into<String>, section: &'static str, user: &SignedIn) -> Self {
        Layout {
            title: title.into(),
            csrf_token: user.csrf_token.clone(),
            section,
            user: Some(NavUser {
                email: user.email.clone(),
                is_admin: user.is_admin(),
            }),
        }
    }

    pub fn anonymous(title: impl Into<String>, csrf_token: String) -> Self {
        Layout {
            title: title.into(),
            csrf_token,
            section: "",
            user: None,
        }
    }

    pub fn asset(&self, path: &str) -> String {
        asset_url(path)
    }
}

/// An id as templates write it (in ids, URLs and form values, a dozen times per row): a UUID is
/// hex digits and hyphens, so it needs no HTML escaping (askama skips `HtmlSafe` values), and it
/// is formatted straight into the page without a `String` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtmlId(pub uuid::Uuid);

impl std::fmt::Display for HtmlId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0.hyphenated(), formatter)
    }
}

impl askama::filters::HtmlSafe for HtmlId {}

#[derive(Clone)]
pub struct ConfigurationView {
    pub id: HtmlId,
    pub name: String,
    /// The provider's display name (static for every known provider).
    pub provider_label: std::borrow::Cow<'static, str>,
    pub model: String,
    pub masked_key: Option<String>,
    pub base_url: Option<String>,
    /// The connection's name (on the management page; other pages leave it out).
    pub connection_name: Option<String>,
    pub is_default: bool,
    pub is_active: bool,
    pub test_status: &'static str,
    pub status_label: &'static str,
    pub test_message: Option<String>,
    pub tested_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The model is no longer in its connection's catalogue.
    pub model_missing: bool,
    /// Failing or its model missing: the management page's banner says so.
    pub needs_attention: bool,
    /// The organisation it belongs to (`None`: the caller's own).
    pub organisation: Option<String>,
    pub organisation_id: Option<HtmlId>,
    /// `use` or `reveal`: whether members' own resolve tokens may read an organisation's key.
    pub member_access: &'static str,
    /// Whether the caller may change it (a member of its organisation may only use it).
    pub can_edit: bool,
}

impl From<Configuration> for ConfigurationView {
    fn from(row: Configuration) -> Self {
        let status_label = row.test_status.label();
        ConfigurationView {
            id: HtmlId(row.id),
            provider_label: row.provider.label().into(),
            name: row.name,
            model: row.model,
            masked_key: row.api_key_hint,
            base_url: row.base_url,
            connection_name: None,
            is_default: row.is_default,
            is_active: row.is_active,
            test_status: row.test_status.as_str(),
            status_label,
            test_message: row.test_message,
            tested_at: row.tested_at.map(display_time),
            last_used_at: row.last_used_at.map(display_time),
            model_missing: row.health == crate::domain::ConfigurationHealth::ModelMissing,
            needs_attention: row.health.needs_attention(),
            can_edit: row.ownership.can_edit(),
            member_access: row.member_access.as_str(),
            organisation_id: match &row.ownership {
                crate::domain::Ownership::Own => None,
                crate::domain::Ownership::Organisation { id, .. } => Some(HtmlId(*id)),
            },
            organisation: match row.ownership {
                crate::domain::Ownership::Own => None,
                crate::domain::Ownership::Organisation { name, .. } => Some(name),
            },
        }
    }
}

pub fn configuration_views(rows: Vec<Configuration>) -> Vec<ConfigurationView> {
    rows.into_iter().map(ConfigurationView::from).collect()
}

/// The same, each with the name of the connection it uses (read in the same query).
pub fn configuration_views_with_connections(rows: Vec<Configuration>) -> Vec<ConfigurationView> {
    rows.into_iter()
        .map(|mut row| {
            let connection_name = Some(std::mem::take(&mut row.connection_name));
            ConfigurationView {
                connection_name,
                ..ConfigurationView::from(row)
            }
        })
        .collect()
}

/// The configurations of one owner, as the pages group them: the caller's own, or one
/// organisation's.
pub struct ConfigurationGroup {
    /// The organisation's name and id (`None`: the caller's own).
    pub organisation: Option<(String, HtmlId)>,
    pub configurations: Vec<ConfigurationView>,
}

/// Groups a listing for the pages, in the view (the listing stays one query, its order kept
/// within each group): the caller's own first, always there even when empty, then one group per
/// organisation, by name.
pub fn group_by_owner(rows: Vec<ConfigurationView>) -> Vec<ConfigurationGroup> {
    let mut own = Vec::new();
    let mut organisations: Vec<ConfigurationGroup> = Vec::new();
    for row in rows {
        let (Some(name), Some(id)) = (row.organisation.clone(), row.organisation_id) else {
            own.push(row);
            continue;
        };
        match organisations
            .iter_mut()
            .find(|group| group.organisation.as_ref().is_some_and(|(_, seen)| *seen == id))
        {
            Some(group) => group.configurations.push(row),
            None => organisations.push(ConfigurationGroup {
                organisation: Some((name, id)),
                configurations: vec![row],
            }),
        }
    }
    // Names are unique ignoring case across the instance; the id only settles the impossible tie.
    organisations.sort_by_cached_key(|group| {
        group
            .organisation
            .as_ref()
            .map(|(name, id)| (name.to_lowercase(), id.0))
    });
    let mut groups = Vec::with_capacity(organisations.len() + 1);
    groups.push(ConfigurationGroup {
        organisation: None,
        configurations: own,
    });
    groups.extend(organisations);
    groups
}

/// The same groups keeping only what `keep` accepts, and no group left empty (for the
/// selectors: nothing to offer is no group at all).
pub fn grouped_where(rows: &[ConfigurationView], keep: impl Fn(&ConfigurationView) -> bool) -> Vec<ConfigurationGroup> {
    let mut groups = group_by_owner(rows.iter().filter(|row| keep(row)).cloned().collect());
    groups.retain(|group| !group.configurations.is_empty());
    groups
}

/// A provider in the form's select, with what the form's script needs to adapt the fields.
pub struct ProviderOption {
    pub id: &'static str,
    pub label: &'static str,
    pub needs_base_url: bool,
    pub needs_api_key: bool,
    pub accepts_api_key: bool,
    pub base_url_placeholder: &'static str,
}

pub fn provider_options() -> Vec<ProviderOption> {
    Provider::ALL
        .into_iter()
        .map(|provider| ProviderOption {
            id: provider.id(),
            label: provider.label(),
            needs_base_url: provider.needs_base_url(),
            needs_api_key: provider.needs_api_key(),
            accepts_api_key: provider.accepts_api_key(),
            base_url_placeholder: provider.suggested_base_url().unwrap_or(""),
        })
        .collect()
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub is_revoked: bool,
    pub is_expired: bool,
}

impl TokenView {
    pub fn new(token: TokenSummary, now: NaiveDateTime) -> Self {
        TokenView {
            id: token.id.to_string(),
            name: token.name,
            scopes: token.scopes.replace(',', ", "),
            created_at: display_time(token.created_at),
            last_used_at: token.last_used_at.map(display_time),
            is_expired: token.expires_at.is_some_and(|at| at <= now),
            expires_at: token.expires_at.map(display_time),
            is_revoked: token.is_revoked,
        }
    }
}

/// A token just created, shown once.
pub struct CreatedTokenView {
    pub name: String,
    pub secret: String,
}

/// One line of "Security events": what happened to an account, when, and by whom.
pub struct SecurityEventView {
    pub at: String,
    /// The account it happened to (on the admin page; the user's own page leaves it out).
    pub user_email: Option<String>,
    pub what: String,
    pub by: String,
}

impl SecurityEventView {
    pub fn new(event: crate::services::accounts::SecurityEvent) -> Self {
        SecurityEventView {
            at: display_time(event.occurred_at),
            what: event.description(),
            user_email: event.user_email,
            by: event.actor,
        }
    }
}

/// A webhook on the settings page, with its latest attempts.
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: String,
    pub description: String,
    pub is_active: bool,
    pub attempts: Vec<AttemptView>,
}

impl WebhookView {
    pub fn new(webhook: crate::domain::Webhook, attempts: Vec<crate::domain::DeliveryAttempt>) -> Self {
        WebhookView {
            id: webhook.id.to_string(),
            url: webhook.url,
            events: webhook.events.names().join(", "),
            description: webhook.description,
            is_active: webhook.is_active,
            attempts: attempts.into_iter().map(AttemptView::new).collect(),
        }
    }
}

/// One delivery attempt, in a sentence.
pub struct AttemptView {
    pub at: String,
    pub event_type: String,
    pub attempt: i64,
    pub outcome: String,
    pub ok: bool,
}

impl AttemptView {
    fn new(attempt: crate::domain::DeliveryAttempt) -> Self {
        let outcome = match (attempt.status_code, attempt.error.as_deref()) {
            (Some(code), None) => format!("HTTP {code}"),
            (Some(code), Some(error)) => format!("HTTP {code} ({error})"),
            (None, Some(error)) => error.to_owned(),
            (None, None) => "no answer".to_owned(),
        };
        AttemptView {
            at: display_time(attempt.attempted_at),
            event_type: attempt.event_type,
            attempt: attempt.attempt,
            ok: attempt.error.is_none(),
            outcome,
        }
    }
}

/// A webhook just created: its secret, shown this once.
pub struct CreatedWebhookView {
    pub url: String,
    pub secret: String,
}
