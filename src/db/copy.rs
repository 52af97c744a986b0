//! Copying a whole vault from one database to another (the way from the embedded SQLite to
//! PostgreSQL). Rows keep their ids, so every ciphertext stays valid under the same master keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::api_tokens::TokenRow;
use super::connection_checks::CheckRow;
use super::connections::{ConnectionRow, ModelRow};
use super::conversation_overrides::OverrideRow;
use super::invitations::InvitationRow;
use super::key_reveals::RevealRow;
use super::llm_configurations::ConfigurationTableRow;
use super::master_key_canaries::CanaryRow;
use super::memberships::MembershipRow;
use super::organisation_reveals::OrganisationRevealRow;
use super::organisations::OrganisationRow;
use super::recovery_codes::RecoveryCodeRow;
use super::schema::{
    api_tokens, connection_checks, connection_models, connections, conversation_overrides, instance_settings,
    invitations, key_reveals, llm_configurations, master_key_canaries, memberships, organisation_reveals,
    organisations, security_events, service_tokens, sessions, users, webhook_attempts, webhook_deliveries, webhooks,
};
use super::second_factors::SecondFactorRow;
use super::security_events::EventRow;
use super::service_tokens::ServiceTokenRow;
use super::sessions::SessionRow;
use super::user_defaults::UserDefaultRow;
use super::users::UserRow;
use super::webhook_attempts::AttemptRow;
use super::webhook_deliveries::DeliveryRow;
use super::webhooks::WebhookRow;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = instance_settings)]
pub struct SettingRow {
    pub name: String,
    pub value: String,
    pub updated_at: NaiveDateTime,
}

/// Everything worth keeping (rate-limit counters are transient and stay behind).
pub struct Snapshot {
    pub users: Vec<UserRow>,
    pub tokens: Vec<TokenRow>,
    pub connections: Vec<ConnectionRow>,
    pub connection_models: Vec<ModelRow>,
    pub connection_checks: Vec<CheckRow>,
    pub configurations: Vec<ConfigurationTableRow>,
    pub overrides: Vec<OverrideRow>,
    pub defaults: Vec<UserDefaultRow>,
    pub reveals: Vec<RevealRow>,
    pub canaries: Vec<CanaryRow>,
    pub settings: Vec<SettingRow>,
    pub sessions: Vec<SessionRow>,
    pub security_events: Vec<EventRow>,
    pub organisations: Vec<OrganisationRow>,
    pub memberships: Vec<MembershipRow>,
    pub invitations: Vec<InvitationRow>,
    pub webhooks: Vec<WebhookRow>,
    pub webhook_deliveries: Vec<DeliveryRow>,
    pub webhook_attempts: Vec<AttemptRow>,
    pub service_tokens: Vec<ServiceTokenRow>,
    pub organisation_reveals: Vec<OrganisationRevealRow>,
    pub second_factors: Vec<SecondFactorRow>,
    pub recovery_codes: Vec<RecoveryCodeRow>,
}

/// Rows per table, in the order they are copied.
pub type Counts = Vec<(&'static str, i64)>;

impl Snapshot {
    pub fn read(conn: &mut DbConnection) -> QueryResult<Snapshot> {
        Ok(Snapshot {
            users: users::table.order(users::id).select(UserRow::as_select()).load(conn)?,
            tokens: api_tokens::table
                .order(api_tokens::id)
                .select(TokenRow::as_select())
                .load(conn)?,
            connections: super::connections::all(conn)?,
            connection_models: super::connections::all_models(conn)?,
            connection_checks: super::connection_checks::all(conn)?,
            configurations: super::llm_configurations::all(conn)?,
            overrides: conversation_overrides::table
                .select(OverrideRow::as_select())
                .load(conn)?,
            defaults: super::user_defaults::all(conn)?,
            reveals: key_reveals::table
                .order(key_reveals::id)
                .select(RevealRow::as_select())
                .load(conn)?,
            canaries: master_key_canaries::table.select(CanaryRow::as_select()).load(conn)?,
            settings: instance_settings::table.select(SettingRow::as_select()).load(conn)?,
            sessions: sessions::table.select(SessionRow::as_select()).load(conn)?,
            security_events: security_events::table
                .order(security_events::id)
                .select(EventRow::as_select())
                .load(conn)?,
            organisations: organisations::table
                .order(organisations::id)
                .select(OrganisationRow::as_select())
                .load(conn)?,
            memberships: memberships::table
                .order((memberships::organisation_id, memberships::user_id))
                .select(MembershipRow::as_select())
                .load(conn)?,
            invitations: invitations::table
                .order(invitations::id)
                .select(InvitationRow::as_select())
                .load(conn)?,
            webhooks: super::webhooks::all(conn)?,
            webhook_deliveries: super::webhook_deliveries::all(conn)?,
            webhook_attempts: super::webhook_attempts::all(conn)?,
            service_tokens: super::service_tokens::all(conn)?,
            organisation_reveals: super::organisation_reveals::all(conn)?,
            second_factors: super::second_factors::all(conn)?,
            recovery_codes: super::recovery_codes::all(conn)?,
        })
    }

    pub fn counts(&self) -> Counts {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        vec![
            ("users", count(self.users.len())),
            ("api_tokens", count(self.tokens.len())),
            ("connections", count(self.connections.len())),
            ("connection_models", count(self.connection_models.len())),
            ("connection_checks", count(self.connection_checks.len())),
            ("llm_configurations", count(self.configurations.len())),
            ("conversation_overrides", count(self.overrides.len())),
            ("user_defaults", count(self.defaults.len())),
            ("key_reveals", count(self.reveals.len())),
            ("master_key_canaries", count(self.canaries.len())),
            ("instance_settings", count(self.settings.len())),
            ("sessions", count(self.sessions.len())),
            ("security_events", count(self.security_events.len())),
            ("organisations", count(self.organisations.len())),
            ("memberships", count(self.memberships.len())),
            ("invitations", count(self.invitations.len())),
            ("webhooks", count(self.webhooks.len())),
            ("webhook_deliveries", count(self.webhook_deliveries.len())),
            ("webhook_attempts", count(self.webhook_attempts.len())),
            ("service_tokens", count(self.service_tokens.len())),
            ("organisation_reveals", count(self.organisation_reveals.len())),
            ("second_factors", count(self.second_factors.len())),
            ("recovery_codes", count(self.recovery_codes.len())),
        ]
    }

    /// Inserts everything (parents before children); call inside one write transaction.
    pub fn write(&self, conn: &mut DbConnection) -> QueryResult<()> {
        // Row by row: the multi-backend connection does not batch inserts, and a vault is small.
        for row in &self.users {
            diesel::insert_into(users::table).values(row).execute(conn)?;
        }
        for row in &self.tokens {
            diesel::insert_into(api_tokens::table).values(row).execute(conn)?;
        }
        // Before what they own; their defaults (configurations they own) once those exist.
        for row in &self.organisations {
            let without_default = OrganisationRow {
                default_configuration_id: None,
                ..row.clone()
            };
            diesel::insert_into(organisations::table)
                .values(&without_default)
                .execute(conn)?;
        }
        for row in &self.connections {
            diesel::insert_into(connections::table).values(row).execute(conn)?;
        }
        for row in &self.connection_models {
            diesel::insert_into(connection_models::table)
                .values(row)
                .execute(conn)?;
        }
        for row in &self.connection_checks {
            super::connection_checks::insert(conn, row)?;
        }
        for row in &self.configurations {
            diesel::insert_into(llm_configurations::table)
                .values(row)
                .execute(conn)?;
        }
        for row in &self.overrides {
            diesel::insert_into(conversation_overrides::table)
                .values(row)
                .execute(conn)?;
        }
        for row in &self.defaults {
            super::user_defaults::insert(conn, row)?;
        }
        for row in &self.reveals {
            diesel::insert_into(key_reveals::table).values(row).execute(conn)?;
        }
        for row in &self.canaries {
            diesel::insert_into(master_key_canaries::table)
                .values(row)
                .execute(conn)?;
        }
        for row in &self.settings {
            diesel::insert_into(instance_settings::table)
                .values(row)
                .execute(conn)?;
        }
        for row in &self.sessions {
            diesel::insert_into(sessions::table).values(row).execute(conn)?;
        }
        for row in &self.security_events {
            diesel::insert_into(security_events::table).values(row).execute(conn)?;
        }
        // After the configurations: an organisation may name one as its default.
        for row in &self.organisations {
            if row.default_configuration_id.is_some() {
                diesel::update(organisations::table.find(row.id))
                    .set(organisations::default_configuration_id.eq(row.default_configuration_id))
                    .execute(conn)?;
            }
        }
        for row in &self.memberships {
            diesel::insert_into(memberships::table).values(row).execute(conn)?;
        }
        for row in &self.invitations {
            diesel::insert_into(invitations::table).values(row).execute(conn)?;
        }
        // After users and organisations, which own them.
        for row in &self.webhooks {
            super::webhooks::insert(conn, row)?;
        }
        for row in &self.webhook_deliveries {
            super::webhook_deliveries::insert(conn, row)?;
        }
        for row in &self.webhook_attempts {
            super::webhook_attempts::insert(conn, row)?;
        }
        // After organisations and users, which own them and appear in them.
        for row in &self.service_tokens {
            super::service_tokens::insert(conn, row)?;
        }
        for row in &self.organisation_reveals {
            super::organisation_reveals::insert(conn, row)?;
        }
        // After users, who own them. Pending login steps stay behind, like rate-limit counters.
        for row in &self.second_factors {
            super::second_factors::insert(conn, row)?;
        }
        for row in &self.recovery_codes {
            super::recovery_codes::insert(conn, row)?;
        }
        Ok(())
    }
}

/// Rows per table as the database holds them now.
pub fn count_rows(conn: &mut DbConnection) -> QueryResult<Counts> {
    Ok(vec![
        ("users", users::table.count().get_result(conn)?),
        ("api_tokens", api_tokens::table.count().get_result(conn)?),
        ("connections", connections::table.count().get_result(conn)?),
        ("connection_models", connection_models::table.count().get_result(conn)?),
        ("connection_checks", connection_checks::table.count().get_result(conn)?),
        (
            "llm_configurations",
            llm_configurations::table.count().get_result(conn)?,
        ),
        (
            "conversation_overrides",
            conversation_overrides::table.count().get_result(conn)?,
        ),
        ("user_defaults", super::user_defaults::count_all(conn)?),
        ("key_reveals", key_reveals::table.count().get_result(conn)?),
        (
            "master_key_canaries",
            master_key_canaries::table.count().get_result(conn)?,
        ),
        ("instance_settings", instance_settings::table.count().get_result(conn)?),
        ("sessions", sessions::table.count().get_result(conn)?),
        ("security_events", security_events::table.count().get_result(conn)?),
        ("organisations", organisations::table.count().get_result(conn)?),
        ("memberships", memberships::table.count().get_result(conn)?),
        ("invitations", invitations::table.count().get_result(conn)?),
        ("webhooks", webhooks::table.count().get_result(conn)?),
        (
            "webhook_deliveries",
            webhook_deliveries::table.count().get_result(conn)?,
        ),
        ("webhook_attempts", webhook_attempts::table.count().get_result(conn)?),
        ("service_tokens", service_tokens::table.count().get_result(conn)?),
        (
            "organisation_reveals",
            organisation_reveals::table.count().get_result(conn)?,
        ),
        (
            "second_factors",
            super::schema::second_factors::table.count().get_result(conn)?,
        ),
        (
            "recovery_codes",
            super::schema::recovery_codes::table.count().get_result(conn)?,
        ),
    ])
}
