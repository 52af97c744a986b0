//! The JSON API under `/api`: one file per resource, all errors rendered by `ApiError`.

pub mod configurations;
pub mod connection_checks;
pub mod connection_tests;
pub mod connections;
pub mod conversations;
pub mod exports;
pub mod extract;
pub mod openapi;
pub mod organisations;
pub mod providers;
pub mod service_tokens;
pub mod tokens;
pub mod webhooks;
pub mod wire;

use actix_web::{HttpResponse, web};

use crate::error::AppError;
use crate::http::ApiError;
use crate::http::waiting_requests::ReadAhead;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .service(
                web::resource("/openapi.json")
                    .get(openapi::document)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/export")
                    .get(exports::export)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/providers")
                    .get(providers::list)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations")
                    .get(configurations::list)
                    .post(configurations::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations/default")
                    .get(configurations::get_default)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations/test")
                    .post(connection_tests::test_unsaved)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations/{id}/test")
                    .post(connection_tests::test_saved)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations/{id}")
                    .get(configurations::get)
                    .put(configurations::update)
                    .delete(configurations::delete)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/llm-configurations/{id}/set-default")
                    .put(configurations::set_default)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections")
                    .get(connections::list)
                    .post(connections::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections/{id}")
                    .get(connections::get)
                    .put(connections::update)
                    .delete(connections::delete)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections/{id}/test")
                    .post(connections::test)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections/{id}/checks")
                    .get(connection_checks::list)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections/{id}/models")
                    .get(connections::models)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/connections/{id}/models/refresh")
                    .post(connections::refresh_models)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/conversations")
                    .get(conversations::list)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/conversations/{conversation_id}/llm-configuration")
                    .put(conversations::set_override)
                    .delete(conversations::remove_override)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/resolve")
                    .wrap(ReadAhead::new(conversations::read_resolve_request))
                    .get(conversations::resolve)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tokens")
                    .get(tokens::list)
                    .post(tokens::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/tokens/{id}")
                    .delete(tokens::revoke)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations")
                    .get(organisations::list)
                    .post(organisations::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}")
                    .get(organisations::get)
                    .put(organisations::update)
                    .delete(organisations::delete)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/membership")
                    .put(organisations::set_membership)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/members")
                    .get(organisations::members)
                    .post(organisations::invite)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/members/{user_id}")
                    .put(organisations::change_role)
                    .delete(organisations::remove)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/connections")
                    .get(connections::list_for_organisation)
                    .post(connections::create_for_organisation)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/llm-configurations")
                    .get(configurations::list_for_organisation)
                    .post(configurations::create_for_organisation)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/tokens")
                    .get(service_tokens::list)
                    .post(service_tokens::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/tokens/{token_id}")
                    .delete(service_tokens::revoke)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/audit")
                    .get(service_tokens::audit)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/invitations")
                    .delete(organisations::withdraw)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/invitation/accept")
                    .post(organisations::accept)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/webhooks")
                    .get(webhooks::organisation_list)
                    .post(webhooks::organisation_create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks")
                    .get(webhooks::list)
                    .post(webhooks::create)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks/{id}")
                    .get(webhooks::get)
                    .put(webhooks::update)
                    .delete(webhooks::delete)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks/{id}/rotate-secret")
                    .post(webhooks::rotate_secret)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks/{id}/deliveries")
                    .get(webhooks::deliveries)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/webhooks/{id}/ping")
                    .post(webhooks::ping)
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/organisations/{id}/invitation/decline")
                    .post(organisations::decline)
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(AppError::NotFound.into())
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(crate::http::ErrorBody {
        error: "method_not_allowed".into(),
        message: "this method is not allowed on this resource".into(),
        fields: None,
    })
}
