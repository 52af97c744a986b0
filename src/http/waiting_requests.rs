//! What a waiting request holds while it waits (`wait=` on `/api/resolve`, runtimes.md):
//! thousands may wait at once, each for up to a minute, and 5,000 must cost an instance less
//! than 50 MB.
//!
//! actix-http gives every request a header map with room for 16 headers (about 6.4 KiB, pooled
//! only for the first 128 requests of a worker), and a request holds it until it is answered.
//! A request that may wait is therefore read at once, before its handler runs: [`ReadAhead`]
//! keeps what the route's reader makes of it with the request, and drops its headers, which
//! nothing reads after that (BENCHMARKS.md, waiting resolves).

use std::future::{Ready, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::HeaderMap;
use actix_web::{HttpMessage, HttpRequest};

/// Middleware for a route that may wait: a request with a `wait` parameter is read by `read`
/// (which must take from the request everything its handler needs), the result is kept for the
/// handler ([`take_read_ahead`]), and the request's headers are dropped. Every other request
/// passes untouched, and its handler reads it itself.
pub struct ReadAhead<T> {
    read: fn(&HttpRequest) -> T,
}

impl<T> ReadAhead<T> {
    pub fn new(read: fn(&HttpRequest) -> T) -> Self {
        ReadAhead { read }
    }
}

/// What [`ReadAhead`] read, in the request's extensions until the handler takes it.
struct Read<T>(T);

/// What [`ReadAhead`] read from this request, if it read it (once: it is taken).
pub fn take_read_ahead<T: 'static>(req: &HttpRequest) -> Option<T> {
    req.extensions_mut().remove::<Read<T>>().map(|read| read.0)
}

impl<S, B, T: 'static> Transform<S, ServiceRequest> for ReadAhead<T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ReadAheadService<S, T>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ReadAheadService {
            service,
            read: self.read,
        }))
    }
}

pub struct ReadAheadService<S, T> {
    service: S,
    read: fn(&HttpRequest) -> T,
}

impl<S, B, T: 'static> Service<ServiceRequest> for ReadAheadService<S, T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    // The route's own future: reading ahead adds nothing to what a request holds.
    type Future = S::Future;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if asks_to_wait(req.query_string()) {
            let read = (self.read)(req.request());
            req.extensions_mut().insert(Read(read));
            req.head_mut().headers = HeaderMap::new();
        }
        self.service.call(req)
    }
}

fn asks_to_wait(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(name, _)| name) == "wait")
}

#[cfg(test)]
mod tests {
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, HttpResponse, web};

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

    /// The reader's view of the request, and what the handler still sees of it.
    fn if_none_match(req: &HttpRequest) -> Option<String> {
        req.headers()
            .get("if-none-match")
            .map(|value| value.to_str().unwrap_or_default().to_owned())
    }

    async fn handler(req: HttpRequest) -> HttpResponse {
        let read: Option<Option<String>> = take_read_ahead(&req);
        HttpResponse::Ok().body(format!("read {read:?}, headers {}", req.headers().len()))
    }

    #[actix_web::test]
    async fn a_waiting_request_is_read_ahead_and_keeps_no_headers() {
        let app =
            init_service(App::new().service(web::resource("/r").wrap(ReadAhead::new(if_none_match)).to(handler))).await;
        let waiting = TestRequest::get()
            .uri("/r?wait=5")
            .insert_header(("if-none-match", "\"tag\""))
            .to_request();
        let body = actix_web::body::to_bytes(call_service(&app, waiting).await.into_body()).await;
        assert_eq!(body.unwrap(), "read Some(Some(\"\\\"tag\\\"\")), headers 0");

        let plain = TestRequest::get()
            .uri("/r")
            .insert_header(("if-none-match", "\"tag\""))
            .to_request();
        let body = actix_web::body::to_bytes(call_service(&app, plain).await.into_body()).await;
        assert_eq!(body.unwrap(), "read None, headers 1");
    }
}
