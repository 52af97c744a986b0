//! `/healthz` (the process runs) and `/readyz` (the database answers).

use actix_web::{HttpResponse, web};

use crate::http::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let ready = tokio::task::spawn_blocking(move || db.is_ready())
        .await
        .unwrap_or(false);
    if ready {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("database unavailable")
    }
}
