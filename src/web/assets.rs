//! Static assets (vendored htmx and Pico CSS, Lanyard's own CSS and JS), embedded in the binary.
//! URLs carry a content hash (`?v=…`), so responses can be cached for a year.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// `/static/{path}?v={first 8 bytes of its SHA-256, hex}`.
pub fn asset_url(path: &str) -> String {
    match Static::get(path) {
        Some(file) => {
            let hash = file.metadata.sha256_hash();
            let version: String = hash[..8].iter().map(|byte| format!("{byte:02x}")).collect();
            format!("/static/{path}?v={version}")
        }
        None => format!("/static/{path}"),
    }
}

pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(file) = Static::get(&path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let mime = mime_guess::from_path(path.as_str()).first_or_octet_stream();
    let versioned = req.query_string().starts_with("v=");
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime.to_string()))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(file.data.into_owned())
}
