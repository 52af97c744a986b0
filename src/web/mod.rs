//! Pages (server-rendered, htmx for partial updates) and the operational endpoints outside
//! `/api`. Handlers read their input, call one service, and render.

pub mod accounts;
pub mod admin;
pub mod assets;
pub mod check_strip;
pub mod connections;
pub mod conversations;
pub mod health;
pub mod llm_configurations;
pub mod organisation_resources;
pub mod organisation_tokens;
pub mod organisations;
pub mod respond;
pub mod settings;
pub mod single_sign_on;
pub mod two_factor;
pub mod views;

use actix_web::{HttpResponse, web};

use crate::http::{PageError, SignedIn};
use respond::see_other;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(crate::http::observability::metrics))
        .route("/static/{path:.*}", web::get().to(assets::serve))
        .route("/", web::get().to(home))
        .service(web::resource("/login").get(accounts::login_form).post(accounts::login))
        .service(
            web::resource("/register")
                .get(accounts::register_form)
                .post(accounts::register),
        )
        .service(
            web::resource(two_factor::LOGIN_STEP)
                .get(two_factor::login_step_form)
                .post(two_factor::login_step),
        )
        .route("/logout", web::post().to(accounts::logout))
        .route(single_sign_on::START, web::get().to(single_sign_on::start))
        .route(single_sign_on::CALLBACK, web::get().to(single_sign_on::callback))
        .route("/settings/single-sign-on/link", web::post().to(single_sign_on::link))
        .route(
            "/settings/single-sign-on/unlink",
            web::post().to(single_sign_on::unlink),
        )
        .service(
            web::resource("/llm-configurations")
                .get(llm_configurations::page)
                .post(llm_configurations::create),
        )
        .route("/llm-configurations/new", web::get().to(llm_configurations::new_form))
        .route("/llm-configurations/models", web::get().to(llm_configurations::models))
        .route(
            "/llm-configurations/test",
            web::post().to(llm_configurations::test_unsaved),
        )
        .route(
            "/llm-configurations/{id}/test",
            web::post().to(llm_configurations::test_saved),
        )
        .route("/llm-configurations/{id}", web::post().to(llm_configurations::update))
        .route(
            "/llm-configurations/{id}/edit",
            web::get().to(llm_configurations::edit_form),
        )
        .route(
            "/llm-configurations/{id}/set-default",
            web::post().to(llm_configurations::set_default),
        )
        .route(
            "/llm-configurations/{id}/active",
            web::post().to(llm_configurations::set_active),
        )
        .service(
            web::resource("/llm-configurations/{id}/delete")
                .get(llm_configurations::delete_confirm)
                .post(llm_configurations::delete),
        )
        .service(
            web::resource("/connections")
                .get(connections::page)
                .post(connections::create),
        )
        .service(
            web::resource("/connections/{id}")
                .get(connections::detail)
                .post(connections::update),
        )
        .route("/connections/{id}/delete", web::post().to(connections::delete))
        .route("/connections/{id}/test", web::post().to(connections::test))
        .route(
            "/connections/{id}/models/refresh",
            web::post().to(connections::refresh_models),
        )
        .service(
            web::resource("/conversations")
                .get(conversations::page)
                .post(conversations::pin),
        )
        .route(
            "/conversations/{conversation_id}",
            web::post().to(conversations::update),
        )
        .service(
            web::resource("/organisations")
                .get(organisations::page)
                .post(organisations::create),
        )
        .route("/organisations/{id}", web::get().to(organisations::detail))
        .route("/organisations/{id}/members", web::post().to(organisations::invite))
        .route(
            "/organisations/{id}/members/{user_id}/role",
            web::post().to(organisations::set_role),
        )
        .route(
            "/organisations/{id}/members/{user_id}/remove",
            web::post().to(organisations::remove),
        )
        .route(
            "/organisations/{id}/invitations/withdraw",
            web::post().to(organisations::withdraw),
        )
        .route(
            "/organisations/{id}/invitation/accept",
            web::post().to(organisations::accept),
        )
        .route(
            "/organisations/{id}/invitation/decline",
            web::post().to(organisations::decline),
        )
        .route("/organisations/{id}/policy", web::post().to(organisations::policy))
        .route(
            "/organisations/{id}/tokens",
            web::post().to(organisation_tokens::create),
        )
        .route(
            "/organisations/{id}/tokens/{token_id}/revoke",
            web::post().to(organisation_tokens::revoke),
        )
        .route(
            "/organisations/{id}/membership",
            web::post().to(organisations::membership),
        )
        .route("/organisations/{id}/delete", web::post().to(organisations::delete))
        .route(
            "/organisations/{id}/connections",
            web::post().to(organisation_resources::create_connection),
        )
        .route(
            "/organisations/{id}/llm-configurations",
            web::post().to(organisation_resources::create_configuration),
        )
        .route(
            "/organisations/{id}/webhooks",
            web::post().to(organisation_resources::create_webhook),
        )
        .route(
            "/organisations/{id}/webhooks/{webhook_id}/delete",
            web::post().to(organisation_resources::delete_webhook),
        )
        .route(
            "/organisations/{id}/webhooks/{webhook_id}/ping",
            web::post().to(organisation_resources::ping_webhook),
        )
        .route("/admin", web::get().to(admin::page))
        .route("/admin/users", web::post().to(admin::create_user))
        .route("/admin/users/{id}/disable", web::post().to(admin::disable_user))
        .route("/admin/users/{id}/enable", web::post().to(admin::enable_user))
        .route("/admin/users/{id}/delete", web::post().to(admin::delete_user))
        .route("/admin/users/{id}/role", web::post().to(admin::set_role))
        .route("/admin/users/{id}/password", web::post().to(admin::reset_password))
        .route("/admin/registration", web::post().to(admin::set_registration))
        .route(
            "/admin/organisations/{id}/delete",
            web::post().to(admin::delete_organisation),
        )
        .route("/settings", web::get().to(settings::page))
        .route("/settings/default", web::post().to(settings::set_default))
        .route("/settings/tokens", web::post().to(settings::create_token))
        .route("/settings/tokens/{id}/revoke", web::post().to(settings::revoke_token))
        .route("/settings/webhooks", web::post().to(settings::create_webhook))
        .route(
            "/settings/webhooks/{id}/delete",
            web::post().to(settings::delete_webhook),
        )
        .route("/settings/webhooks/{id}/ping", web::post().to(settings::ping_webhook))
        .route("/settings/password", web::post().to(settings::change_password))
        .service(
            web::resource(two_factor::PAGE)
                .get(two_factor::page)
                .post(two_factor::enable),
        )
        .route("/settings/two-factor/disable", web::post().to(two_factor::disable))
        .route(
            "/admin/second-factor",
            web::post().to(admin::set_second_factor_required),
        );
}

/// `/` leads to the management page (a visitor without a session is sent to `/login` first).
async fn home(_user: SignedIn) -> HttpResponse {
    see_other("/llm-configurations")
}

/// Anything else outside `/api`.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&PageError::App(crate::error::AppError::NotFound))
}
