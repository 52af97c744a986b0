//! The one outbound HTTP client. Every request it makes goes through the egress policy: the
//! host is resolved once by [`CheckedResolver`], every address is checked, and the connection
//! goes to exactly the checked addresses (no second lookup, so DNS rebinding fails). No
//! redirects, no proxies from the environment, 5 s to connect, 10 s in all, 1 MiB of body.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use url::{Host, Url};

use super::EgressPolicy;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    /// The policy refuses the destination; the message says why and names the variable.
    #[error("{0}")]
    Blocked(String),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider could not be reached")]
    Unreachable,
    #[error("the TLS connection to the provider failed (certificate or handshake)")]
    Tls,
    #[error("the provider's answer was larger than 1 MiB")]
    TooLarge,
}

/// The resolver's refusal, found again in reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves a host once and refuses it if any of its addresses is forbidden.
struct CheckedResolver {
    policy: Arc<EgressPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(
                    Box::new(Refused(format!("{host} does not resolve"))) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            for address in &addresses {
                if let Err(reason) = policy.permits(Some(&host), address.ip()) {
                    return Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// An answer, its body capped at 1 MiB.
#[derive(Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub latency: Duration,
}

#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl OutboundClient {
    pub fn new(policy: EgressPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .dns_resolver(Arc::new(CheckedResolver { policy: policy.clone() }))
            .user_agent(concat!("Lanyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OutboundClient { client, policy })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Checks a URL before any connection: scheme, credentials, and IP-literal hosts (which
    /// never reach the resolver).
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::Blocked("only http and https URLs are allowed".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Blocked("URLs with credentials are not allowed".into()));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(address)) => Some(IpAddr::V4(address)),
            Some(Host::Ipv6(address)) => Some(IpAddr::V6(address)),
            Some(Host::Domain(_)) => None,
            None => return Err(EgressError::Blocked("the URL has no host".into())),
        };
        if let Some(address) = literal {
            self.policy.permits(None, address).map_err(EgressError::Blocked)?;
        }
        Ok(())
    }

    /// A GET with these headers. The body is read up to 1 MiB.
    pub async fn get(&self, url: Url, headers: HeaderMap) -> Result<OutboundResponse, EgressError> {
        self.check_url(&url)?;
        let started = Instant::now();
        let response = self.client.get(url).headers(headers).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify)?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(EgressError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            body,
            latency: started.elapsed(),
        })
    }
}

/// Maps reqwest's error to what a person can act on, without its details (which may echo the
/// URL or the provider's words).
fn classify(error: reqwest::Error) -> EgressError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut tls = false;
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return EgressError::Blocked(refused.0.clone());
        }
        let text = current.to_string().to_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") || text.contains("rustls")
        {
            tls = true;
        }
        source = current.source();
    }
    if error.is_timeout() {
        EgressError::Timeout
    } else if tls {
        EgressError::Tls
    } else {
        EgressError::Unreachable
    }
}
