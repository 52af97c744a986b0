//! Validated domain types: input is parsed into these once, at the edge, so an invalid name,
//! model, key or URL cannot exist past it.

mod account;
mod configuration;
mod connection;
mod conversation;
mod field_errors;
mod limits;
mod monitoring;
mod organisation;
mod owner;
mod parameters;
mod provider;
mod runtime;
mod token;
mod webhook;

pub use account::{Email, OrganisationRole, Password, Role};
pub use configuration::{
    ApiKey, BaseUrl, ConfigName, Configuration, MemberAccess, ModelId, PlainHttpHosts, TestStatus,
};
pub use connection::{Connection, MAX_CATALOGUE_MODELS, ModelCatalogue, parse_expiry};
pub use conversation::{ConversationId, ConversationOverride, FallbackConfiguration};
pub use field_errors::FieldErrors;
pub use limits::{UserCap, UserCaps};
pub use monitoring::{
    CheckRecord, CheckSchedule, CheckStatus, CheckTrigger, ConfigurationHealth, MAX_CHECK_BACKOFF, MIN_CHECK_INTERVAL,
};
pub use organisation::{
    Member, MemberRef, MembershipStatus, Organisation, OrganisationCreation, OrganisationEntry, OrganisationName,
    OrganisationOverview, OrganisationPolicy,
};
pub use owner::{Owner, Ownership};
pub use parameters::{ParameterError, Parameters, ReasoningEffort};
pub use provider::Provider;
pub use runtime::{RuntimeConfiguration, RuntimeFormat, RuntimeVariable, runtime_environment};
pub use token::{Scope, Scopes};
pub use webhook::{DeliveryAttempt, DeliveryState, EventSelection, EventType, RetrySchedule, Webhook, WebhookUrl};
