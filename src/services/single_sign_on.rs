//! Single sign-on by OpenID Connect (sign-in.md): the provider's discovery (cached; retried in
//! the background while the provider is unreachable), the start of a sign-in (authorization
//! code with PKCE S256, `state` and `nonce`, carried in a sealed cookie and remembered by a
//! single-use row), and its callback: the code exchanged, the ID token checked by
//! `openidconnect` (signature against the provider's keys, fetched again once for an unknown
//! key; `iss`, `aud`, `exp`, `iat`, `nonce`), then the account found by its `sub`, linked, or
//! made, and its organisations brought in line with its groups.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, Client,
    ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, JsonWebKeySet, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::accounts::SignedInUser;
use crate::config::{GroupMapping, SingleSignOnSettings};
use crate::crypto::{self, MasterKeyring};
use crate::db::{
    self, Database, DbConnection, DbError, DbId, memberships, organisations, single_sign_on_states, users,
};
use crate::domain::{Email, OrganisationRole, Role};
use crate::egress::{EgressError, IdentityProviderClient};

/// How long a sign-in may take at the provider (the cookie's and the state's lifetime).
pub const PENDING_SECONDS: i64 = 10 * 60;
/// How long a re-authentication by single sign-on counts.
pub const REAUTHENTICATION_SECONDS: i64 = 5 * 60;
/// Between two attempts to read an unreachable provider's discovery document.
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);
/// How far in the future an ID token's `iat` may be (clocks differ a little).
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What went wrong, in words a person can act on (the callback's page shows them).
#[derive(Debug, thiserror::Error)]
pub enum SingleSignOnError {
    #[error("single sign-on is unavailable: the identity provider cannot be reached yet")]
    Unavailable,
    #[error("single sign-on is not configured")]
    NotConfigured,
    #[error("the sign-in cookie is missing or has expired: start the sign-in again")]
    MissingCookie,
    #[error("the state does not match the sign-in this browser started")]
    WrongState,
    #[error("this sign-in was already used or has expired: start the sign-in again")]
    StateUsed,
    #[error("the identity provider refused the sign-in ({0})")]
    ProviderRefused(String),
    #[error("the identity provider did not accept the authorization code")]
    ExchangeFailed,
    #[error("the identity provider's answer has no ID token")]
    NoIdToken,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is for another audience")]
    WrongAudience,
    #[error("the ID token is from another issuer")]
    WrongIssuer,
    #[error("the ID token's nonce does not match this sign-in")]
    WrongNonce,
    #[error("the ID token is not signed with an allowed algorithm (unsigned tokens are refused)")]
    Unsigned,
    #[error("the ID token's signature is not by the identity provider's keys")]
    BadSignature,
    #[error("the ID token was issued in the future")]
    IssuedInFuture,
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error(
        "an account with this e-mail already exists: sign in with its password, then link single sign-on from Settings"
    )]
    EmailBelongsToPasswordAccount,
    #[error("the identity provider has not verified this person's e-mail address, so no account is made or linked")]
    EmailNotVerified,
    #[error("no account is linked to this sign-in; ask an admin of this instance for an account")]
    NoAccount,
    #[error(
        "Lanyard has no user yet: the first (admin) account is made with the setup link that Lanyard printed in its log"
    )]
    NoFirstUser,
    #[error("this account is disabled")]
    Disabled,
    #[error("this identity is already linked to another account")]
    LinkedElsewhere,
    #[error("this sign-in is for another account than the one that asked for it")]
    WrongAccount,
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(SingleSignOnError);

impl SingleSignOnError {
    /// A refused sign-in (400 with a page that says why), as opposed to a store failure.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            SingleSignOnError::Store(_) | SingleSignOnError::Unavailable | SingleSignOnError::NotConfigured
        )
    }
}

/// Why the browser went to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    SignIn,
    /// A signed-in password account links its identity (after its password).
    Link,
    /// An account without a password proves itself again (before creating a token).
    Reauthenticate,
}

impl Intent {
    pub fn parse(raw: &str) -> Option<Intent> {
        match raw {
            "" | "sign_in" | "sign-in" => Some(Intent::SignIn),
            "link" => Some(Intent::Link),
            "reauthenticate" => Some(Intent::Reauthenticate),
            _ => None,
        }
    }
}

/// A path within the site to go on to: starts with exactly one `/` (never `//host`), no
/// backslash, no control characters.
pub fn safe_next(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let safe = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.contains('\\')
        && !raw.chars().any(char::is_control)
        && raw.len() <= 512;
    safe.then(|| raw.to_owned())
}

/// What the sealed cookie carries between the start and the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    intent: Intent,
    next: Option<String>,
    /// The account that asked (link, re-authenticate).
    user: Option<Uuid>,
    expires_at: i64,
}

/// What the proof of a re-authentication carries (its own sealed cookie).
#[derive(Serialize, Deserialize)]
struct Reauthenticated {
    reauthenticated: Uuid,
    until: i64,
}

/// Claims beyond the standard ones: the groups claim's name is the operator's choice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdentityTokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type IdentityTokenResponse = StandardTokenResponse<IdentityTokenFields, CoreTokenType>;
type IdentityToken =
    openidconnect::IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type IdentityClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    IdentityTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider as its discovery document describes it, with its keys, and the outbound client
/// that reaches its hosts.
struct Discovered {
    metadata: CoreProviderMetadata,
    http: IdentityProviderClient,
}

/// The signed-in outcome of a callback.
#[derive(Debug)]
pub enum Finished {
    /// Start a session for this user.
    SignedIn { user: SignedInUser, next: Option<String> },
    /// The identity is now linked to the account that asked.
    Linked { next: Option<String> },
    /// The account proved itself: this sealed proof goes into its own cookie.
    Reauthenticated { proof: String, next: Option<String> },
}

/// A sign-in begun: where the browser goes, and the cookie it keeps meanwhile.
pub struct Started {
    pub authorize_url: Url,
    pub cookie: String,
}

/// The operator's single sign-on, shared by every worker.
pub struct SingleSignOn {
    settings: SingleSignOnSettings,
    nameservers: Vec<SocketAddr>,
    database: Database,
    keyring: Arc<MasterKeyring>,
    provider: RwLock<Option<Arc<Discovered>>>,
}

impl SingleSignOn {
    pub fn new(
        settings: SingleSignOnSettings,
        nameservers: Vec<SocketAddr>,
        database: Database,
        keyring: Arc<MasterKeyring>,
    ) -> Self {
        SingleSignOn {
            settings,
            nameservers,
            database,
            keyring,
            provider: RwLock::new(None),
        }
    }

    /// The button's label.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn secure_cookies(&self) -> bool {
        self.settings.secure_cookies
    }

    /// Whether the provider's discovery document has been read.
    pub fn available(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Discovered>> {
        self.provider.read().ok().and_then(|provider| provider.clone())
    }

    fn store(&self, discovered: Discovered) {
        if let Ok(mut provider) = self.provider.write() {
            *provider = Some(Arc::new(discovered));
        }
    }

    /// Reads the discovery document now; if the provider cannot be reached, keeps trying in the
    /// background until it can (password sign-in works meanwhile).
    pub async fn discover_or_retry(self: &Arc<Self>) {
        match self.discover().await {
            Ok(discovered) => {
                self.store(discovered);
                tracing::info!(issuer = %self.settings.issuer, "single sign-on is ready");
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.settings.issuer, %reason, "single sign-on is unavailable: retrying in the background");
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(DISCOVERY_RETRY).await;
                        match this.discover().await {
                            Ok(discovered) => {
                                this.store(discovered);
                                tracing::info!(issuer = %this.settings.issuer, "single sign-on is ready");
                                return;
                            }
                            Err(reason) => tracing::debug!(%reason, "the identity provider is still unavailable"),
                        }
                    }
                });
            }
        }
    }

    /// The discovery document (through a client that reaches the issuer's host alone), then the
    /// keys (through one that reaches the issuer's and its endpoints' hosts).
    async fn discover(&self) -> Result<Discovered, String> {
        let issuer = &self.settings.issuer;
        let issuer_only =
            IdentityProviderClient::for_urls([issuer], &self.nameservers).map_err(|error| error.to_string())?;
        let mut address = issuer.clone();
        let path = format!(
            "{}/.well-known/openid-configuration",
            issuer.path().trim_end_matches('/')
        );
        address.set_path(&path);
        let body = get_json(&issuer_only, &address).await?;
        let metadata: CoreProviderMetadata =
            serde_json::from_slice(&body).map_err(|error| format!("the discovery document is invalid: {error}"))?;
        if metadata.issuer().as_str().trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
            return Err(format!(
                "the discovery document names another issuer (`{}`)",
                metadata.issuer().as_str()
            ));
        }
        let mut endpoints: Vec<Url> = vec![issuer.clone(), metadata.jwks_uri().url().clone()];
        if let Some(token) = metadata.token_endpoint() {
            endpoints.push(token.url().clone());
        } else {
            return Err("the discovery document names no token endpoint".into());
        }
        for endpoint in &endpoints {
            if !crate::config::issuer_allowed(endpoint) {
                return Err(format!(
                    "the endpoint `{endpoint}` must be https (plain http only on a loopback host)"
                ));
            }
        }
        let http =
            IdentityProviderClient::for_urls(&endpoints, &self.nameservers).map_err(|error| error.to_string())?;
        let jwks = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &http)
            .await
            .map_err(|error| format!("the provider's keys cannot be read: {error}"))?;
        Ok(Discovered {
            metadata: metadata.set_jwks(jwks),
            http,
        })
    }

    /// Reads the provider's keys again (an ID token named a key not among them).
    async fn refresh_keys(&self, discovered: &Discovered) -> Result<Arc<Discovered>, SingleSignOnError> {
        let jwks = JsonWebKeySet::fetch_async(discovered.metadata.jwks_uri(), &discovered.http)
            .await
            .map_err(|_| SingleSignOnError::BadSignature)?;
        let refreshed = Discovered {
            metadata: discovered.metadata.clone().set_jwks(jwks),
            http: discovered.http.clone(),
        };
        self.store(refreshed);
        self.current().ok_or(SingleSignOnError::Unavailable)
    }

    fn client(&self, discovered: &Discovered) -> Result<IdentityClient, SingleSignOnError> {
        let redirect = RedirectUrl::from_url(self.settings.redirect_url.clone());
        Ok(IdentityClient::from_provider_metadata(
            discovered.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(redirect))
    }

    /// Begins a sign-in: the provider's authorization URL, and the sealed cookie that the
    /// callback needs. Its `state` is remembered (10 minutes) until its callback uses it.
    pub async fn start(
        &self,
        intent: Intent,
        user: Option<Uuid>,
        next: Option<String>,
    ) -> Result<Started, SingleSignOnError> {
        let discovered = self.current().ok_or(SingleSignOnError::Unavailable)?;
        let client = self.client(&discovered)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|scope| *scope != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if intent == Intent::Reauthenticate {
            // The person must prove themselves now, not ride on the provider's session.
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        let (authorize_url, state, nonce) = request.url();
        let now = db::now();
        let expires_at = now + chrono::Duration::seconds(PENDING_SECONDS);
        let state_hash = crypto::hash_sign_in_state(state.secret());
        self.database
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    single_sign_on_states::purge_before(conn, now)?;
                    single_sign_on_states::insert(conn, &state_hash, expires_at)?;
                    Ok::<_, SingleSignOnError>(())
                })
            })
            .await?;
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            intent,
            next,
            user,
            expires_at: expires_at.and_utc().timestamp(),
        };
        let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&pending).unwrap_or_default());
        Ok(Started {
            authorize_url,
            cookie: crypto::seal_pending_sign_in(&self.keyring, &plaintext),
        })
    }

    /// The callback: checks everything, then signs in, links or re-authenticates.
    pub async fn finish(&self, cookie: Option<&str>, callback: Callback) -> Result<Finished, SingleSignOnError> {
        let plaintext = cookie
            .and_then(|cookie| crypto::open_pending_sign_in(&self.keyring, cookie))
            .ok_or(SingleSignOnError::MissingCookie)?;
        let pending: Pending = serde_json::from_slice(&plaintext).map_err(|_| SingleSignOnError::MissingCookie)?;
        if pending.expires_at <= Utc::now().timestamp() {
            return Err(SingleSignOnError::MissingCookie);
        }
        let presented_state = callback.state.unwrap_or_default();
        if !crypto::constant_time_eq(presented_state.as_bytes(), pending.state.as_bytes()) {
            return Err(SingleSignOnError::WrongState);
        }
        // Taken before anything else happens: a replayed callback finds it gone.
        let state_hash = crypto::hash_sign_in_state(&pending.state);
        let taken = self
            .database
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    Ok::<_, SingleSignOnError>(single_sign_on_states::take_live(conn, &state_hash, db::now())?)
                })
            })
            .await?;
        if !taken {
            return Err(SingleSignOnError::StateUsed);
        }
        if let Some(error) = callback.error {
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(SingleSignOnError::ProviderRefused(code));
        }
        let code = callback
            .code
            .filter(|code| !code.is_empty())
            .ok_or(SingleSignOnError::ExchangeFailed)?;
        let discovered = self.current().ok_or(SingleSignOnError::Unavailable)?;
        let client = self.client(&discovered)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|_| SingleSignOnError::ExchangeFailed)?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&discovered.http)
            .await
            .map_err(|error| {
                tracing::info!(%error, "the identity provider did not accept the authorization code");
                SingleSignOnError::ExchangeFailed
            })?;
        let id_token = response.id_token().ok_or(SingleSignOnError::NoIdToken)?;
        let nonce = Nonce::new(pending.nonce.clone());
        let identity = match self.verify(&client, &discovered, id_token, &nonce) {
            Err(SingleSignOnError::BadSignature) if unknown_key(&client, &discovered, id_token, &nonce) => {
                // The provider may have rotated its keys: read them again, once.
                let refreshed = self.refresh_keys(&discovered).await?;
                let client = self.client(&refreshed)?;
                self.verify(&client, &refreshed, id_token, &nonce)?
            }
            other => other?,
        };
        let settings = self.settings.clone();
        let intent = pending.intent;
        let asking = pending.user;
        let next = pending.next;
        let keyring = Arc::clone(&self.keyring);
        self.database
            .run(move |conn| match intent {
                Intent::SignIn => {
                    let user = sign_in(conn, &settings, &identity)?;
                    Ok(Finished::SignedIn { user, next })
                }
                Intent::Link => {
                    link(conn, asking.ok_or(SingleSignOnError::WrongAccount)?, &identity)?;
                    Ok(Finished::Linked { next })
                }
                Intent::Reauthenticate => {
                    let user_id = asking.ok_or(SingleSignOnError::WrongAccount)?;
                    let user = users::find_by_id(conn, DbId(user_id))?.ok_or(SingleSignOnError::WrongAccount)?;
                    if user.oidc_subject.as_deref() != Some(identity.subject.as_str()) {
                        return Err(SingleSignOnError::WrongAccount);
                    }
                    if user.is_disabled {
                        return Err(SingleSignOnError::Disabled);
                    }
                    let proof = Reauthenticated {
                        reauthenticated: user_id,
                        until: Utc::now().timestamp() + REAUTHENTICATION_SECONDS,
                    };
                    let plaintext = serde_json::to_vec(&proof).unwrap_or_default();
                    Ok(Finished::Reauthenticated {
                        proof: crypto::seal_pending_sign_in(&keyring, &plaintext),
                        next,
                    })
                }
            })
            .await
    }

    /// Checks the ID token (`openidconnect` does: signature, `iss`, `aud`, `exp`, `nonce`; and
    /// `iat` here) and reads the identity from it.
    fn verify(
        &self,
        client: &IdentityClient,
        discovered: &Discovered,
        id_token: &IdentityToken,
        nonce: &Nonce,
    ) -> Result<Identity, SingleSignOnError> {
        let verifier = verifier_for(client, discovered);
        let claims = id_token.claims(&verifier, nonce).map_err(claims_error)?;
        if claims.issue_time() > Utc::now() + chrono::Duration::seconds(CLOCK_SKEW_SECONDS) {
            return Err(SingleSignOnError::IssuedInFuture);
        }
        let other = &claims.additional_claims().claims;
        let groups = match other.get(&self.settings.groups_claim) {
            Some(serde_json::Value::Array(values)) => values
                .iter()
                .filter_map(|value| value.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(single)) => vec![single.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true),
            groups,
        })
    }

    /// Whether this proof (the re-authentication cookie) is a fresh re-authentication of
    /// `user_id`.
    pub fn recently_reauthenticated(&self, proof: Option<&str>, user_id: Uuid) -> bool {
        recently_reauthenticated(&self.keyring, proof, user_id)
    }
}

/// Whether a re-authentication cookie proves a fresh single sign-on of `user_id`.
pub fn recently_reauthenticated(keyring: &MasterKeyring, proof: Option<&str>, user_id: Uuid) -> bool {
    let Some(plaintext) = proof.and_then(|proof| crypto::open_pending_sign_in(keyring, proof)) else {
        return false;
    };
    serde_json::from_slice::<Reauthenticated>(&plaintext)
        .is_ok_and(|proof| proof.reauthenticated == user_id && proof.until > Utc::now().timestamp())
}

/// The verifier for this provider: its keys, the algorithms it announces for ID tokens (never
/// `none`), this client's id as the audience.
fn verifier_for<'a>(
    client: &'a IdentityClient,
    discovered: &Discovered,
) -> openidconnect::IdTokenVerifier<'a, CoreJsonWebKey> {
    let algorithms: Vec<CoreJwsSigningAlgorithm> = discovered
        .metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect();
    client.id_token_verifier().set_allowed_algs(algorithms)
}

/// Whether the token failed only because its key is not among the ones known.
fn unknown_key(client: &IdentityClient, discovered: &Discovered, id_token: &IdentityToken, nonce: &Nonce) -> bool {
    matches!(
        id_token.claims(&verifier_for(client, discovered), nonce),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
        ))
    )
}

fn claims_error(error: ClaimsVerificationError) -> SingleSignOnError {
    match error {
        ClaimsVerificationError::Expired(_) => SingleSignOnError::Expired,
        ClaimsVerificationError::InvalidAudience(_) => SingleSignOnError::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => SingleSignOnError::WrongIssuer,
        ClaimsVerificationError::InvalidNonce(_) => SingleSignOnError::WrongNonce,
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoSignature
            | SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_),
        ) => SingleSignOnError::Unsigned,
        ClaimsVerificationError::SignatureVerification(_) => SingleSignOnError::BadSignature,
        other => SingleSignOnError::InvalidToken(other.to_string()),
    }
}

/// What the callback's query carries.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    groups: Vec<String>,
}

async fn get_json(client: &IdentityProviderClient, url: &Url) -> Result<Vec<u8>, String> {
    let request = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::GET)
        .uri(url.as_str())
        .header(openidconnect::http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|error| error.to_string())?;
    let response = client
        .call(request)
        .await
        .map_err(|error: EgressError| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("`{url}` answered {}", response.status()));
    }
    Ok(response.into_body())
}

/// Signs in by the identity: the account linked to its `sub`, or (with
/// `LANYARD_OIDC_CREATE_USERS=on`) a new one; never the first user, never over a password
/// account with the same e-mail. Then the group mapping.
fn sign_in(
    conn: &mut DbConnection,
    settings: &SingleSignOnSettings,
    identity: &Identity,
) -> Result<SignedInUser, SingleSignOnError> {
    db::write_transaction(conn, |conn| {
        let user = match users::find_by_oidc_subject(conn, &identity.subject)? {
            Some(user) => user,
            None => create_account(conn, settings, identity)?,
        };
        if user.is_disabled {
            return Err(SingleSignOnError::Disabled);
        }
        apply_group_mapping(conn, &settings.organisations, user.id, &identity.groups)?;
        Ok(SignedInUser {
            id: user.id.0,
            email: user.email,
            role: user.role,
        })
    })
}

fn create_account(
    conn: &mut DbConnection,
    settings: &SingleSignOnSettings,
    identity: &Identity,
) -> Result<users::UserRow, SingleSignOnError> {
    if users::count(conn)? == 0 {
        return Err(SingleSignOnError::NoFirstUser);
    }
    let email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(|email| Email::parse(email).ok())
        .ok_or(SingleSignOnError::EmailNotVerified)?;
    let email_key = email.key();
    if users::find_by_email_key(conn, &email_key)?.is_some() {
        return Err(SingleSignOnError::EmailBelongsToPasswordAccount);
    }
    if !settings.create_users {
        return Err(SingleSignOnError::NoAccount);
    }
    let id = DbId(Uuid::now_v7());
    let now = db::now();
    users::insert(
        conn,
        &users::UserInsert {
            id,
            email: email.as_str(),
            email_key: &email_key,
            // No password: this account signs in by single sign-on alone.
            password_hash: "",
            role: Role::Member,
            is_disabled: false,
            created_at: now,
            updated_at: now,
        },
    )?;
    users::set_oidc_subject(conn, id, Some(&identity.subject), now)?;
    users::find_by_id(conn, id)?.ok_or(SingleSignOnError::NoAccount)
}

/// Links the identity to the account that asked, unless another account holds it.
fn link(conn: &mut DbConnection, user_id: Uuid, identity: &Identity) -> Result<(), SingleSignOnError> {
    db::write_transaction(conn, |conn| {
        let user = users::find_by_id(conn, DbId(user_id))?.ok_or(SingleSignOnError::WrongAccount)?;
        if user.is_disabled {
            return Err(SingleSignOnError::Disabled);
        }
        match users::find_by_oidc_subject(conn, &identity.subject)? {
            Some(holder) if holder.id != user.id => return Err(SingleSignOnError::LinkedElsewhere),
            _ => {}
        }
        users::set_oidc_subject(conn, user.id, Some(&identity.subject), db::now())?;
        Ok(())
    })
}

/// Unlinks single sign-on from an account that has a password.
pub fn unlink(conn: &mut DbConnection, user_id: Uuid) -> Result<(), UnlinkError> {
    db::write_transaction(conn, |conn| {
        let user = users::find_by_id(conn, DbId(user_id))?.ok_or(UnlinkError::NotFound)?;
        if !user.has_password() {
            return Err(UnlinkError::NoPassword);
        }
        users::set_oidc_subject(conn, user.id, None, db::now())?;
        Ok(())
    })
}

/// Whether the account is linked, and whether it has a password (for `/settings`).
pub fn link_status(conn: &mut DbConnection, user_id: Uuid) -> Result<LinkStatus, DbError> {
    let user = users::find_by_id(conn, DbId(user_id))?;
    Ok(LinkStatus {
        linked: user.as_ref().is_some_and(|user| user.oidc_subject.is_some()),
        has_password: user.as_ref().is_some_and(users::UserRow::has_password),
    })
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStatus {
    pub linked: bool,
    pub has_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    #[error("this account has no password: single sign-on is its only way in, so it stays linked")]
    NoPassword,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Store(#[from] DbError),
}

super::store_error!(UnlinkError);

/// Brings the memberships named by `LANYARD_OIDC_ORGANISATIONS` in line with the person's
/// groups. A missing organisation is created as managed; one it did not create is never joined
/// (logged and skipped); memberships it did not make are left alone.
fn apply_group_mapping(
    conn: &mut DbConnection,
    mappings: &[GroupMapping],
    user_id: DbId,
    groups: &[String],
) -> Result<(), SingleSignOnError> {
    let groups: HashSet<&str> = groups.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    for mapping in mappings {
        let key = mapping.organisation.key();
        if !seen.insert(key.clone()) {
            continue;
        }
        // Several groups may name one organisation: the highest role among the person's wins.
        let wanted = mappings
            .iter()
            .filter(|other| other.organisation.key() == key && groups.contains(other.group.as_str()))
            .map(|other| other.role)
            .reduce(|best, role| if role.includes(best) { role } else { best });
        let organisation = organisations::find_by_name_key(conn, &key)?;
        match (organisation, wanted) {
            (Some(organisation), _) if !organisation.managed => {
                tracing::warn!(
                    organisation = %mapping.organisation.as_str(),
                    "the group mapping names an organisation it did not create: skipped"
                );
            }
            (None, Some(role)) => {
                let now = db::now();
                let row = organisations::OrganisationRow {
                    id: DbId(Uuid::now_v7()),
                    name: mapping.organisation.as_str().to_owned(),
                    name_key: key.clone(),
                    allow_personal_configurations: false,
                    default_configuration_id: None,
                    created_at: now,
                    updated_at: now,
                    managed: true,
                };
                organisations::insert(conn, &row)?;
                join(conn, row.id, user_id, role)?;
            }
            (None, None) => {}
            (Some(organisation), Some(role)) => match memberships::find(conn, organisation.id, user_id)? {
                None => join(conn, organisation.id, user_id, role)?,
                Some(membership) if membership.from_single_sign_on && membership.role != role => {
                    memberships::set_role(conn, organisation.id, user_id, role, db::now())?;
                }
                Some(_) => {}
            },
            (Some(organisation), None) => {
                if memberships::find(conn, organisation.id, user_id)?
                    .is_some_and(|membership| membership.from_single_sign_on)
                {
                    memberships::delete(conn, organisation.id, user_id)?;
                }
            }
        }
    }
    Ok(())
}

fn join(
    conn: &mut DbConnection,
    organisation: DbId,
    user: DbId,
    role: OrganisationRole,
) -> Result<(), SingleSignOnError> {
    let now = db::now();
    memberships::insert(
        conn,
        &memberships::MembershipRow {
            organisation_id: organisation,
            user_id: user,
            role,
            share_personal_configurations: false,
            created_at: now,
            updated_at: now,
            from_single_sign_on: true,
        },
    )?;
    Ok(())
}
