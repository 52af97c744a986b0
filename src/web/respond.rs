//! The few response shapes every page handler uses.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};

/// A 303 to `location` (after a plain form post).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// An HTML page or fragment.
pub fn html(status: StatusCode, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The same, never cached: pages that carry key masks, tokens or forms holding a key.
pub fn private_html(status: StatusCode, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    let mut response = html(status, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}
