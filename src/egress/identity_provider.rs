//! The identity provider's own outbound client (single sign-on): a separate door from the one
//! provider tests use. It reaches exactly the hosts (and ports) it was built for, the
//! configured issuer's and then its endpoints', whatever their address (the operator chose
//! them, so an internal provider is fine); it follows no redirect, and keeps the provider
//! tests' timeouts and 1 MiB cap. `openidconnect` talks through it (its async client trait).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use ipnet::IpNet;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use url::{Host, Url};

use super::client::{EgressError, OutboundBuildError, OutboundClient};
use super::{AllowEntry, AllowTarget, EgressMode, EgressPolicy};

#[derive(Clone)]
pub struct IdentityProviderClient {
    outbound: OutboundClient,
}

impl IdentityProviderClient {
    /// A client that may reach these URLs' hosts on their ports, and nothing else. A URL without
    /// a host or port allows nothing.
    pub fn for_urls<'a>(
        urls: impl IntoIterator<Item = &'a Url>,
        nameservers: &[SocketAddr],
    ) -> Result<Self, OutboundBuildError> {
        let allow = urls
            .into_iter()
            .filter_map(|url| {
                let port = url.port_or_known_default()?;
                let target = match url.host()? {
                    Host::Ipv4(address) => AllowTarget::Network(IpNet::from(IpAddr::V4(address))),
                    Host::Ipv6(address) => AllowTarget::Network(IpNet::from(IpAddr::V6(address))),
                    Host::Domain(name) => AllowTarget::Host(name.trim_end_matches('.').to_ascii_lowercase()),
                };
                Some(AllowEntry {
                    target,
                    port: Some(port),
                })
            })
            .collect();
        let policy = EgressPolicy {
            mode: EgressMode::Allowlist,
            allow,
            nameservers: nameservers.to_vec(),
        };
        Ok(IdentityProviderClient {
            outbound: OutboundClient::new(policy)?,
        })
    }
}

impl<'c> AsyncHttpClient<'c> for IdentityProviderClient {
    type Error = EgressError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, EgressError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = Url::parse(&parts.uri.to_string())
                .map_err(|_| EgressError::Blocked("the identity provider's URL is invalid".into()))?;
            let (status, headers, body) = self.outbound.exchange(parts.method, url, parts.headers, body).await?;
            let mut response = HttpResponse::new(body);
            *response.status_mut() =
                openidconnect::http::StatusCode::from_u16(status).map_err(|_| EgressError::Unreachable)?;
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}
