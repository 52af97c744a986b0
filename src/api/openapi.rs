//! The OpenAPI document, generated from the handlers' own annotations and types.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    configurations, connection_checks, connection_tests, connections, conversations, exports, organisations, providers,
    service_tokens, tokens, webhooks,
};
use crate::http::api_error as error;

#[derive(OpenApi)]
#[openapi(
    info(title = "Lanyard", description = "Named LLM provider configurations with encrypted keys."),
    paths(
        configurations::list,
        configurations::create,
        configurations::get_default,
        configurations::get,
        configurations::update,
        configurations::delete,
        configurations::set_default,
        connection_tests::test_unsaved,
        connection_tests::test_saved,
        connections::list,
        connections::create,
        connections::get,
        connections::update,
        connections::delete,
        connections::test,
        connections::models,
        connections::refresh_models,
        connection_checks::list,
        providers::list,
        exports::export,
        conversations::list,
        conversations::set_override,
        conversations::remove_override,
        conversations::resolve,
        tokens::list,
        tokens::create,
        tokens::revoke,
        organisations::list,
        organisations::create,
        organisations::get,
        organisations::update,
        organisations::delete,
        organisations::set_membership,
        organisations::members,
        organisations::invite,
        organisations::change_role,
        organisations::remove,
        organisations::withdraw,
        organisations::accept,
        organisations::decline,
        connections::list_for_organisation,
        connections::create_for_organisation,
        configurations::list_for_organisation,
        configurations::create_for_organisation,
        service_tokens::list,
        service_tokens::create,
        service_tokens::revoke,
        service_tokens::audit,
        webhooks::list,
        webhooks::create,
        webhooks::organisation_list,
        webhooks::organisation_create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::deliveries,
        webhooks::ping,
    ),
    components(schemas(
        configurations::ConfigurationResource,
        configurations::CreateConfigurationRequest,
        configurations::UpdateConfigurationRequest,
        configurations::CreateOrganisationConfigurationRequest,
        super::wire::OwnerResource,
        connections::ConnectionResource,
        connections::CreateConnectionRequest,
        connections::UpdateConnectionRequest,
        connections::ModelCatalogueResource,
        connections::ModelResource,
        connections::RefreshFailure,
        connection_checks::CheckResource,
        providers::ProviderResource,
        conversations::OverrideResource,
        conversations::SetOverrideRequest,
        conversations::ResolvedConfiguration,
        conversations::ResolveResponse,
        connection_tests::TestResultResource,
        connection_tests::TestRequest,
        crate::domain::Provider,
        tokens::TokenResource,
        tokens::CreatedTokenResource,
        tokens::CreateTokenRequest,
        service_tokens::CreateServiceTokenRequest,
        service_tokens::AuditEntryResource,
        service_tokens::AuditToken,
        service_tokens::AuditMember,
        service_tokens::AuditConfiguration,
        organisations::OrganisationResource,
        organisations::PolicyResource,
        organisations::OrganisationEntryResource,
        organisations::MemberResource,
        organisations::InvitationAccepted,
        organisations::MembershipResource,
        organisations::CreateOrganisationRequest,
        organisations::UpdateOrganisationRequest,
        organisations::PolicyChanges,
        organisations::InviteRequest,
        organisations::ChangeRoleRequest,
        organisations::MembershipRequest,
        webhooks::WebhookResource,
        webhooks::WebhookWithSecretResource,
        webhooks::CreateWebhookRequest,
        webhooks::UpdateWebhookRequest,
        webhooks::DeliveryAttemptResource,
        webhooks::PingResource,
        error::ErrorBody,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::session::COOKIE_NAME,
                "The browser session cookie; unsafe methods also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// `GET /api/openapi.json` (public: it describes the contract, not any data).
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
