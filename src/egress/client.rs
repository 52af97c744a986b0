//! The one outbound HTTP client. Every request it makes goes through the egress policy: the
//! host is resolved once by [`CheckedResolver`], every address is checked, and the connection
//! goes to exactly the checked addresses (no second lookup, so DNS rebinding fails). Names are
//! looked up by an async resolver (hickory) with its own 3 s limit, never by getaddrinfo on
//! the blocking threads that serve the database. No redirects, no proxies from the environment,
//! 5 s to connect, 10 s in all, 1 MiB of body.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use url::{Host, Url};

use super::EgressPolicy;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A name lookup's own limit, inside [`TOTAL_TIMEOUT`].
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EgressError {
    /// The policy refuses the destination; the message names the host (never an address it
    /// resolved to) and the variable that would allow it.
    #[error("{0}")]
    Blocked(String),
    /// No answer in time: the name lookup (3 s) or the whole request (10 s).
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider could not be reached")]
    Unreachable,
    #[error("the TLS connection to the provider failed (certificate or handshake)")]
    Tls,
    #[error("the provider's answer was larger than 1 MiB")]
    TooLarge,
}

/// The outbound client could not be built (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum OutboundBuildError {
    #[error(
        "cannot read the system's name servers ({0}); set LANYARD_EGRESS_NAMESERVERS to the name servers outbound calls should use"
    )]
    SystemNameServers(String),
    #[error("cannot build the name resolver: {0}")]
    Resolver(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

tokio::task_local! {
    /// The port the current request goes to. reqwest asks the resolver for a name alone; an
    /// allow-list entry with a port needs the port too.
    static DESTINATION_PORT: u16;
}

/// Why the resolver gave no address, found again in reqwest's error chain.
#[derive(Debug)]
enum LookupFailure {
    Refused(String),
    TimedOut,
    NoAddress,
}

impl std::fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupFailure::Refused(reason) => f.write_str(reason),
            LookupFailure::TimedOut => f.write_str("the name lookup timed out"),
            LookupFailure::NoAddress => f.write_str("the name does not resolve"),
        }
    }
}

impl std::error::Error for LookupFailure {}

/// The async resolver: the operator's name servers, or the system's (`/etc/resolv.conf`); a
/// system configuration that cannot be read stops start-up rather than leaving every test to
/// fail later. One attempt per server, 3 s at most.
fn name_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, OutboundBuildError> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|error| OutboundBuildError::SystemNameServers(error.to_string()))?
    } else {
        let servers = nameservers
            .iter()
            .map(|server| {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                config
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let options = builder.options_mut();
    options.timeout = LOOKUP_TIMEOUT;
    options.attempts = 1;
    builder
        .build()
        .map_err(|error| OutboundBuildError::Resolver(error.to_string()))
}

/// Resolves a host once and refuses it if any of its addresses is forbidden.
struct CheckedResolver {
    policy: Arc<EgressPolicy>,
    names: TokioResolver,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let names = self.names.clone();
        let host = name.as_str().to_owned();
        // Read now, on the request's task: the future below may be finished by another.
        let port = DESTINATION_PORT.try_with(|port| *port).ok();
        Box::pin(async move {
            let failure = |failure: LookupFailure| Box::new(failure) as Box<dyn std::error::Error + Send + Sync>;
            let addresses: Vec<IpAddr> =
                match tokio::time::timeout(LOOKUP_TIMEOUT, names.lookup_ip(host.as_str())).await {
                    Ok(Ok(found)) => found.iter().collect(),
                    Ok(Err(NetError::Timeout)) | Err(_) => return Err(failure(LookupFailure::TimedOut)),
                    Ok(Err(_)) => return Err(failure(LookupFailure::NoAddress)),
                };
            if addresses.is_empty() {
                return Err(failure(LookupFailure::NoAddress));
            }
            for address in &addresses {
                policy
                    .permits(Some(&host), *address, port)
                    .map_err(|reason| failure(LookupFailure::Refused(reason)))?;
            }
            Ok(Box::new(addresses.into_iter().map(|address| SocketAddr::new(address, 0))) as Addrs)
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
    /// Builds the client and its resolver (once, at start-up).
    pub fn new(policy: EgressPolicy) -> Result<Self, OutboundBuildError> {
        let names = name_resolver(&policy.nameservers)?;
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
                names,
            }))
            .user_agent(concat!("Lanyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| OutboundBuildError::Http(error.to_string()))?;
        Ok(OutboundClient { client, policy })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Checks a URL before any connection: scheme, credentials, and IP-literal hosts (which
    /// never reach the resolver). Answers the port the request goes to.
    pub fn check_url(&self, url: &Url) -> Result<u16, EgressError> {
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
        let port = url
            .port_or_known_default()
            .ok_or_else(|| EgressError::Blocked("the URL has no port".into()))?;
        if let Some(address) = literal {
            self.policy
                .permits(None, address, Some(port))
                .map_err(EgressError::Blocked)?;
        }
        Ok(port)
    }

    /// A GET with these headers. The body is read up to 1 MiB.
    pub async fn get(&self, url: Url, headers: HeaderMap) -> Result<OutboundResponse, EgressError> {
        let port = self.check_url(&url)?;
        DESTINATION_PORT.scope(port, self.send(url, headers)).await
    }

    /// A POST of `body` with these headers (a webhook delivery). At most `keep_body` bytes of
    /// the answer are read, and discarded; the rest is never read.
    pub async fn post(
        &self,
        url: Url,
        headers: HeaderMap,
        body: Vec<u8>,
        keep_body: usize,
    ) -> Result<OutboundResponse, EgressError> {
        let port = self.check_url(&url)?;
        DESTINATION_PORT
            .scope(port, async move {
                let started = Instant::now();
                let response = self
                    .client
                    .post(url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(classify)?;
                let status = response.status().as_u16();
                let mut read = 0_usize;
                let mut stream = response.bytes_stream();
                while read < keep_body {
                    match stream.next().await {
                        Some(Ok(chunk)) => read += chunk.len(),
                        Some(Err(error)) => return Err(classify(error)),
                        None => break,
                    }
                }
                Ok(OutboundResponse {
                    status,
                    body: Vec::new(),
                    latency: started.elapsed(),
                })
            })
            .await
    }

    /// A request of any method, its answer's headers kept (the identity provider's client reads
    /// the content type). The body is read up to 1 MiB.
    pub(super) async fn exchange(
        &self,
        method: reqwest::Method,
        url: Url,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), EgressError> {
        let port = self.check_url(&url)?;
        DESTINATION_PORT
            .scope(port, async move {
                let response = self
                    .client
                    .request(method, url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(classify)?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = read_capped(response).await?;
                Ok((status, headers, body))
            })
            .await
    }

    async fn send(&self, url: Url, headers: HeaderMap) -> Result<OutboundResponse, EgressError> {
        let started = Instant::now();
        let response = self.client.get(url).headers(headers).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = read_capped(response).await?;
        Ok(OutboundResponse {
            status,
            body,
            latency: started.elapsed(),
        })
    }
}

/// A response's body, refused once it passes [`MAX_BODY_BYTES`] (read as it streams, never whole
/// first).
async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, EgressError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(classify)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(EgressError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps reqwest's error to what a person can act on, without its details (which may echo the
/// URL or the provider's words).
fn classify(error: reqwest::Error) -> EgressError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut tls = false;
    while let Some(current) = source {
        match current.downcast_ref::<LookupFailure>() {
            Some(LookupFailure::Refused(reason)) => return EgressError::Blocked(reason.clone()),
            Some(LookupFailure::TimedOut) => return EgressError::Timeout,
            Some(LookupFailure::NoAddress) => return EgressError::Unreachable,
            None => {}
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
