//! What a waiting resolve holds while it waits (`wait=`, runtimes.md): thousands may wait at
//! once, each for up to a minute, and 5,000 must cost an instance less than 50 MB.
//!
//! actix-http gives every request a header map with room for 16 headers: about 6.4 KiB, of
//! which a handful of pages are touched by the few headers a runtime sends. Pooled heads cover
//! only the first 128 requests of a worker, so each waiting request beyond them kept its own
//! (BENCHMARKS.md: a third of a waiting request's memory). A request that is about to wait
//! moves its headers into a map of their size, and the large one is freed for the next request.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::middleware::Next;

/// Middleware for the routes that may wait: a request with a `wait` parameter keeps its
/// headers in a map of their own size. Every other request passes untouched.
pub async fn shrink_headers_of_waits(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if asks_to_wait(req.query_string()) {
        let headers = &mut req.head_mut().headers;
        let all = std::mem::replace(headers, HeaderMap::new());
        *headers = fitted(all);
    }
    next.call(req).await
}

/// The same headers (every value, in order) in a map with room for them and no more.
fn fitted(all: HeaderMap) -> HeaderMap {
    let mut fitted = HeaderMap::with_capacity(all.len_keys());
    for (name, value) in all {
        fitted.append(name, value);
    }
    fitted
}

fn asks_to_wait(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(name, _)| name) == "wait")
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn only_a_wait_parameter_counts() {
        assert!(asks_to_wait("wait=30"));
        assert!(asks_to_wait("conversation_id=c1&wait=5"));
        assert!(asks_to_wait("wait"));
        assert!(!asks_to_wait(""));
        assert!(!asks_to_wait("await=5"));
        assert!(!asks_to_wait("conversation_id=wait"));
    }

    #[test]
    fn a_fitted_map_keeps_every_value_in_order_in_less_room() {
        let mut all = HeaderMap::with_capacity(16);
        let cookie = HeaderName::from_static("cookie");
        all.append(cookie.clone(), HeaderValue::from_static("a=1"));
        all.append(cookie.clone(), HeaderValue::from_static("b=2"));
        all.append(
            HeaderName::from_static("if-none-match"),
            HeaderValue::from_static("\"tag\""),
        );
        let room = all.capacity();

        let fitted = fitted(all.clone());

        assert!(fitted.capacity() < room, "{} not below {room}", fitted.capacity());
        assert_eq!(fitted.len(), 3);
        let cookies: Vec<_> = fitted.get_all(&cookie).collect();
        assert_eq!(
            cookies,
            [&HeaderValue::from_static("a=1"), &HeaderValue::from_static("b=2")]
        );
        assert_eq!(fitted.get("if-none-match"), all.get("if-none-match"));
    }
}
