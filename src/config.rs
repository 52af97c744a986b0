//! Settings from the environment (and a `.env` file, read by `main`). Every variable is listed
//! in `.env.example`.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use crate::db::DatabaseUrl;
use crate::domain::{
    ApiKey, BaseUrl, CheckSchedule, FallbackConfiguration, ModelId, OrganisationCreation, OrganisationName,
    OrganisationRole, Provider, RetrySchedule, UserCaps,
};
use crate::egress::EgressPolicy;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://lanyard-data/lanyard.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_MASTER_KEY_FILE: &str = "lanyard-data/master.key";

/// Where the master keys come from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `LANYARD_MASTER_KEYS`: comma-separated `ID:BASE64` entries.
    Entries(SecretString),
    /// `LANYARD_MASTER_KEY_FILE` (default `lanyard-data/master.key`), created on first start of
    /// an empty database.
    KeyFile(PathBuf),
    /// `LANYARD_MASTER_PASSPHRASE`, stretched with Argon2id under a salt kept in the database.
    Passphrase(SecretString),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub public_url: Url,
    pub master_keys: MasterKeySource,
    pub egress: EgressPolicy,
    pub test_rate_per_minute: u32,
    pub pool_size: u32,
    /// `LANYARD_FALLBACK_*`: what resolution answers for a user with no configuration.
    pub fallback: Option<FallbackConfiguration>,
    /// `LANYARD_METRICS_TOKEN`: when set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<SecretString>,
    /// `LANYARD_TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `LANYARD_MAX_CONFIGURATIONS`, `LANYARD_MAX_TOKENS`, `LANYARD_MAX_OVERRIDES`.
    pub caps: UserCaps,
    /// `LANYARD_ORGANISATION_CREATION`: `anyone` (the default) or `admins`.
    pub organisation_creation: OrganisationCreation,
    /// `LANYARD_CHECK_INTERVAL` (default `6h`, `off`, at least `5s`) and
    /// `LANYARD_CHECK_CONCURRENCY` (default 4): the scheduled checks of connections.
    pub checks: CheckSchedule,
    /// `LANYARD_WEBHOOK_ALLOW` and `LANYARD_WEBHOOK_RETRY_SCHEDULE`.
    pub webhooks: WebhookSettings,
    /// `LANYARD_OIDC_*`: single sign-on, when `LANYARD_OIDC_ISSUER` is set.
    pub single_sign_on: Option<SingleSignOnSettings>,
    /// `LANYARD_PASSWORD_LOGIN` (`on` by default): with `off`, `/login` offers single sign-on
    /// alone and refuses passwords.
    pub password_login: bool,
}

/// The operator's OpenID Connect client (sign-in.md).
#[derive(Debug, Clone)]
pub struct SingleSignOnSettings {
    /// `LANYARD_OIDC_ISSUER`: https, or http on a loopback host only.
    pub issuer: Url,
    pub client_id: String,
    /// `LANYARD_OIDC_CLIENT_SECRET` or the content of `LANYARD_OIDC_CLIENT_SECRET_FILE`.
    pub client_secret: SecretString,
    /// `LANYARD_OIDC_NAME`: the button's label.
    pub name: String,
    /// `LANYARD_OIDC_SCOPES`, `openid` always among them.
    pub scopes: Vec<String>,
    /// `LANYARD_OIDC_GROUPS_CLAIM`.
    pub groups_claim: String,
    /// `LANYARD_OIDC_ORGANISATIONS`.
    pub organisations: Vec<GroupMapping>,
    /// `LANYARD_OIDC_CREATE_USERS`: create an account at a first sign-in.
    pub create_users: bool,
    /// `{LANYARD_PUBLIC_URL}/auth/oidc/callback`.
    pub redirect_url: Url,
    /// Whether cookies must be `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

/// One entry of `LANYARD_OIDC_ORGANISATIONS`: members of `group` at the provider are members of
/// `organisation` in `role`.
#[derive(Debug, Clone)]
pub struct GroupMapping {
    pub group: String,
    pub organisation: OrganisationName,
    pub role: OrganisationRole,
}

impl SingleSignOnSettings {
    /// The settings with their defaults, for an issuer and a client (tests and `from_env`).
    pub fn new(issuer: Url, client_id: &str, client_secret: &str, public_url: &Url) -> Result<Self, ConfigError> {
        if !issuer_allowed(&issuer) {
            return Err(ConfigError(format!(
                "LANYARD_OIDC_ISSUER `{issuer}` must be an https URL (plain http only on a loopback host, e.g. http://127.0.0.1:8081)"
            )));
        }
        let mut redirect_url = public_url.clone();
        redirect_url.set_path("/auth/oidc/callback");
        redirect_url.set_query(None);
        Ok(SingleSignOnSettings {
            issuer,
            client_id: client_id.to_owned(),
            client_secret: SecretString::from(client_secret.to_owned()),
            name: "Single sign-on".to_owned(),
            scopes: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
            groups_claim: "groups".to_owned(),
            organisations: Vec::new(),
            create_users: false,
            redirect_url,
            secure_cookies: public_url.scheme() == "https",
        })
    }

    /// Parses `LANYARD_OIDC_ORGANISATIONS`.
    pub fn parse_organisations(raw: &str) -> Result<Vec<GroupMapping>, ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            group: String,
            organisation: String,
            #[serde(default = "member")]
            role: String,
        }
        fn member() -> String {
            "member".to_owned()
        }
        let fail = |why: String| {
            ConfigError(format!(
                "LANYARD_OIDC_ORGANISATIONS {why}; expected JSON like [{{\"group\": \"eng\", \"organisation\": \"Engineering\", \"role\": \"member\"}}]"
            ))
        };
        let entries: Vec<Entry> = serde_json::from_str(raw).map_err(|error| fail(format!("is not valid: {error}")))?;
        entries
            .into_iter()
            .map(|entry| {
                if entry.group.is_empty() {
                    return Err(fail("has an entry with an empty group".to_owned()));
                }
                let organisation = OrganisationName::parse(&entry.organisation)
                    .map_err(|why| fail(format!("organisation `{}`: {why}", entry.organisation)))?;
                let role = OrganisationRole::parse(&entry.role)
                    .ok_or_else(|| fail(format!("role `{}` must be owner, admin or member", entry.role)))?;
                Ok(GroupMapping {
                    group: entry.group,
                    organisation,
                    role,
                })
            })
            .collect()
    }
}

/// https anywhere; plain http only to a loopback host (a provider on the same machine).
pub fn issuer_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(address)) => address.is_loopback(),
            Some(url::Host::Ipv6(address)) => address.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

fn single_sign_on_from_env(public_url: &Url) -> Result<Option<SingleSignOnSettings>, ConfigError> {
    let Some(raw_issuer) = var("LANYARD_OIDC_ISSUER") else {
        return Ok(None);
    };
    let issuer = Url::parse(raw_issuer.trim())
        .map_err(|_| ConfigError(format!("LANYARD_OIDC_ISSUER `{raw_issuer}` is not a URL")))?;
    let client_id = var("LANYARD_OIDC_CLIENT_ID")
        .ok_or_else(|| ConfigError("LANYARD_OIDC_CLIENT_ID must be set with LANYARD_OIDC_ISSUER".into()))?;
    let client_secret = match (
        var("LANYARD_OIDC_CLIENT_SECRET"),
        var("LANYARD_OIDC_CLIENT_SECRET_FILE"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "set either LANYARD_OIDC_CLIENT_SECRET or LANYARD_OIDC_CLIENT_SECRET_FILE, not both".into(),
            ));
        }
        (Some(secret), None) => secret,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|secret| secret.trim().to_owned())
            .map_err(|error| {
                ConfigError(format!(
                    "LANYARD_OIDC_CLIENT_SECRET_FILE `{path}` cannot be read ({})",
                    error.kind()
                ))
            })?,
        (None, None) => {
            return Err(ConfigError(
                "LANYARD_OIDC_CLIENT_SECRET (or LANYARD_OIDC_CLIENT_SECRET_FILE) must be set with LANYARD_OIDC_ISSUER"
                    .into(),
            ));
        }
    };
    let mut settings = SingleSignOnSettings::new(issuer, client_id.trim(), &client_secret, public_url)?;
    if let Some(name) = var("LANYARD_OIDC_NAME") {
        settings.name = name.trim().to_owned();
    }
    if let Some(scopes) = var("LANYARD_OIDC_SCOPES") {
        let mut scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
        if !scopes.iter().any(|scope| scope == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        settings.scopes = scopes;
    }
    if let Some(claim) = var("LANYARD_OIDC_GROUPS_CLAIM") {
        settings.groups_claim = claim.trim().to_owned();
    }
    if let Some(raw) = var("LANYARD_OIDC_ORGANISATIONS") {
        settings.organisations = SingleSignOnSettings::parse_organisations(&raw)?;
    }
    settings.create_users = on_off("LANYARD_OIDC_CREATE_USERS", false)?;
    Ok(Some(settings))
}

/// An `on`/`off` switch.
fn on_off(name: &str, default: bool) -> Result<bool, ConfigError> {
    match var(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError(format!("{name} must be `on` or `off`, not `{other}`"))),
    }
}

/// Where webhooks may point and how deliveries are retried.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// `LANYARD_WEBHOOK_ALLOW` (same syntax as `LANYARD_EGRESS_ALLOW`, a separate list, empty by
    /// default) under `LANYARD_EGRESS_MODE` (public addresses too, or only the list), with
    /// `LANYARD_EGRESS_NAMESERVERS`: what webhook URLs may name and deliveries may reach.
    /// Opening a host to provider tests never opens it here.
    pub policy: EgressPolicy,
    /// `LANYARD_WEBHOOK_RETRY_SCHEDULE` (default `1m,5m,30m,2h,6h`).
    pub retry: RetrySchedule,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A variable's value, or `None` when unset or empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

impl Settings {
    pub fn from_env() -> Result<Settings, ConfigError> {
        let database_url = DatabaseUrl::parse(&var_or("DATABASE_URL", DEFAULT_DATABASE_URL)).map_err(ConfigError)?;
        let bind_raw = var_or("LANYARD_BIND", DEFAULT_BIND);
        let bind: SocketAddr = bind_raw.parse().map_err(|_| {
            ConfigError(format!(
                "LANYARD_BIND `{bind_raw}` must be an address and port, e.g. 127.0.0.1:8080"
            ))
        })?;
        let public_url = match var("LANYARD_PUBLIC_URL") {
            Some(raw) => Url::parse(&raw)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "LANYARD_PUBLIC_URL `{raw}` must be an http(s) URL, e.g. https://lanyard.example.com"
                    ))
                })?,
            None => default_public_url(bind)?,
        };
        let master_keys = match (
            var("LANYARD_MASTER_KEYS"),
            std::env::var("LANYARD_MASTER_PASSPHRASE").ok(),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "set either LANYARD_MASTER_KEYS or LANYARD_MASTER_PASSPHRASE, not both".into(),
                ));
            }
            (Some(entries), None) => MasterKeySource::Entries(SecretString::from(entries)),
            (None, Some(passphrase)) => MasterKeySource::Passphrase(SecretString::from(passphrase)),
            (None, None) => MasterKeySource::KeyFile(PathBuf::from(var_or(
                "LANYARD_MASTER_KEY_FILE",
                DEFAULT_MASTER_KEY_FILE,
            ))),
        };
        let egress = EgressPolicy::parse(
            &var_or("LANYARD_EGRESS_ALLOW", ""),
            &var_or("LANYARD_EGRESS_MODE", "public"),
        )
        .and_then(|policy| policy.with_nameservers(&var_or("LANYARD_EGRESS_NAMESERVERS", "")))
        .map_err(ConfigError)?;
        let test_rate_raw = var_or("LANYARD_TEST_RATE_PER_MINUTE", "10");
        let test_rate_per_minute = test_rate_raw
            .parse::<u32>()
            .ok()
            .filter(|rate| *rate > 0)
            .ok_or_else(|| {
                ConfigError(format!(
                    "LANYARD_TEST_RATE_PER_MINUTE `{test_rate_raw}` must be a positive whole number"
                ))
            })?;
        let pool_size = if database_url.is_postgres() { 10 } else { 8 };
        let fallback = fallback_from_env(&egress)?;
        let metrics_token = var("LANYARD_METRICS_TOKEN").map(SecretString::from);
        let trusted_proxies = var_or("LANYARD_TRUSTED_PROXIES", "")
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "LANYARD_TRUSTED_PROXIES entry `{entry}` is not a CIDR or IP address"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let caps = caps_from_env()?;
        let organisation_creation = OrganisationCreation::parse(&var_or("LANYARD_ORGANISATION_CREATION", "anyone"))
            .map_err(|message| ConfigError(format!("LANYARD_ORGANISATION_CREATION {message}")))?;
        let checks = checks_from_env()?;
        let webhooks = webhooks_from_env()?;
        let single_sign_on = single_sign_on_from_env(&public_url)?;
        let password_login = on_off("LANYARD_PASSWORD_LOGIN", true)?;
        if !password_login && single_sign_on.is_none() {
            return Err(ConfigError(
                "LANYARD_PASSWORD_LOGIN=off needs single sign-on (LANYARD_OIDC_ISSUER): nobody could sign in".into(),
            ));
        }
        Ok(Settings {
            database_url,
            bind,
            public_url,
            master_keys,
            egress,
            test_rate_per_minute,
            pool_size,
            fallback,
            metrics_token,
            trusted_proxies,
            caps,
            organisation_creation,
            checks,
            webhooks,
            single_sign_on,
            password_login,
        })
    }
}

fn webhooks_from_env() -> Result<WebhookSettings, ConfigError> {
    // The operator's LANYARD_EGRESS_MODE applies here too: `allowlist` locks deliveries to
    // LANYARD_WEBHOOK_ALLOW as it locks provider tests to LANYARD_EGRESS_ALLOW.
    let policy = EgressPolicy::parse(
        &var_or("LANYARD_WEBHOOK_ALLOW", ""),
        &var_or("LANYARD_EGRESS_MODE", "public"),
    )
    .map_err(|message| ConfigError(message.replace("LANYARD_EGRESS_ALLOW", "LANYARD_WEBHOOK_ALLOW")))?
    .with_nameservers(&var_or("LANYARD_EGRESS_NAMESERVERS", ""))
    .map_err(ConfigError)?;
    let retry = match var("LANYARD_WEBHOOK_RETRY_SCHEDULE") {
        Some(raw) => RetrySchedule::parse(&raw)
            .map_err(|message| ConfigError(format!("LANYARD_WEBHOOK_RETRY_SCHEDULE {message}")))?,
        None => RetrySchedule::default(),
    };
    Ok(WebhookSettings { policy, retry })
}

fn checks_from_env() -> Result<CheckSchedule, ConfigError> {
    let mut checks = CheckSchedule::default();
    if let Some(raw) = var("LANYARD_CHECK_INTERVAL") {
        checks.interval = CheckSchedule::parse_interval(&raw)
            .map_err(|message| ConfigError(format!("LANYARD_CHECK_INTERVAL {message}")))?;
    }
    if let Some(raw) = var("LANYARD_CHECK_CONCURRENCY") {
        checks.concurrency = CheckSchedule::parse_concurrency(&raw)
            .map_err(|message| ConfigError(format!("LANYARD_CHECK_CONCURRENCY {message}")))?;
    }
    Ok(checks)
}

/// Each per-user cap from its variable, or its default.
fn caps_from_env() -> Result<UserCaps, ConfigError> {
    let mut caps = UserCaps::default();
    for cap in [
        &mut caps.configurations,
        &mut caps.connections,
        &mut caps.tokens,
        &mut caps.overrides,
    ] {
        if let Some(raw) = var(cap.variable) {
            cap.max = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|max| *max > 0)
                .ok_or_else(|| ConfigError(format!("{} `{raw}` must be a positive whole number", cap.variable)))?;
        }
    }
    Ok(caps)
}

/// How the start-up re-seal of upgraded keys proceeds (`LANYARD_UPGRADE_BATCH_SIZE`, default 100
/// keys per transaction; `LANYARD_UPGRADE_BATCH_PAUSE_MS`, default 0, a pause between batches
/// that spreads the work on a busy database). Read where start-up runs, not in [`Settings`]:
/// only that one pass uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradePace {
    pub batch_size: i64,
    pub pause: std::time::Duration,
}

impl Default for UpgradePace {
    fn default() -> Self {
        UpgradePace {
            batch_size: 100,
            pause: std::time::Duration::ZERO,
        }
    }
}

impl UpgradePace {
    pub fn from_env() -> Result<UpgradePace, ConfigError> {
        let mut pace = UpgradePace::default();
        if let Some(raw) = var("LANYARD_UPGRADE_BATCH_SIZE") {
            pace.batch_size = raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|size| (1..=10_000).contains(size))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "LANYARD_UPGRADE_BATCH_SIZE `{raw}` must be a whole number from 1 to 10000"
                    ))
                })?;
        }
        if let Some(raw) = var("LANYARD_UPGRADE_BATCH_PAUSE_MS") {
            let millis = raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|millis| *millis <= 60_000)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "LANYARD_UPGRADE_BATCH_PAUSE_MS `{raw}` must be a whole number of milliseconds up to 60000"
                    ))
                })?;
            pace.pause = std::time::Duration::from_millis(millis);
        }
        Ok(pace)
    }
}

/// The instance fallback, validated like any configuration: all of it or none of it.
fn fallback_from_env(egress: &EgressPolicy) -> Result<Option<FallbackConfiguration>, ConfigError> {
    let provider = var("LANYARD_FALLBACK_PROVIDER");
    let model = var("LANYARD_FALLBACK_MODEL");
    let api_key = var("LANYARD_FALLBACK_API_KEY");
    let base_url = var("LANYARD_FALLBACK_BASE_URL");
    let Some(provider_id) = provider else {
        if model.is_some() || api_key.is_some() || base_url.is_some() {
            return Err(ConfigError(
                "LANYARD_FALLBACK_PROVIDER must be set when any LANYARD_FALLBACK_* variable is".into(),
            ));
        }
        return Ok(None);
    };
    let fail = |variable: &str, message: String| ConfigError(format!("{variable} {message}"));
    let provider = Provider::parse(&provider_id).ok_or_else(|| {
        fail(
            "LANYARD_FALLBACK_PROVIDER",
            format!("`{provider_id}` is not a provider id (see GET /api/providers)"),
        )
    })?;
    let model =
        ModelId::parse(&model.unwrap_or_default()).map_err(|message| fail("LANYARD_FALLBACK_MODEL", message))?;
    let api_key = api_key
        .map(|key| ApiKey::parse(&key).map_err(|message| fail("LANYARD_FALLBACK_API_KEY", message)))
        .transpose()?;
    if provider.needs_api_key() && api_key.is_none() {
        return Err(fail(
            "LANYARD_FALLBACK_API_KEY",
            format!("is required for {}", provider.label()),
        ));
    }
    let base_url = base_url
        .map(|url| BaseUrl::parse(&url, egress).map_err(|message| fail("LANYARD_FALLBACK_BASE_URL", message)))
        .transpose()?;
    if provider.needs_base_url() && base_url.is_none() {
        return Err(fail(
            "LANYARD_FALLBACK_BASE_URL",
            format!("is required for {}", provider.label()),
        ));
    }
    Ok(Some(FallbackConfiguration {
        provider,
        model: model.as_str().to_owned(),
        base_url: base_url.map(|url| url.as_str().to_owned()),
        api_key: api_key.map(|key| SecretString::from(key.expose().to_owned())),
    }))
}

fn default_public_url(bind: SocketAddr) -> Result<Url, ConfigError> {
    let host = if bind.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        bind.ip().to_string()
    };
    let host = if bind.is_ipv6() && !bind.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    Url::parse(&format!("http://{host}:{}", bind.port()))
        .map_err(|error| ConfigError(format!("cannot form the public URL: {error}")))
}

/// Loads `.env` from the working folder or the nearest parent that has one, as dotenvy does,
/// and returns its path. A malformed line is reported by its file and line number and never by
/// its text: it may hold a secret (dotenvy's own message quotes the line).
pub fn load_dotenv() -> Result<Option<PathBuf>, String> {
    let Ok(start) = std::env::current_dir() else {
        return Ok(None);
    };
    let Some(path) = start
        .ancestors()
        .map(|dir| dir.join(".env"))
        .find(|path| path.is_file())
    else {
        return Ok(None);
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(Some(path)),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            Err(format!(
                "{} {}: cannot be parsed as NAME=value (the line is not shown: it may hold a secret)",
                path.display(),
                line_number_of(&text, &line).map_or_else(|| "has a line that".to_owned(), |n| format!("line {n}")),
            ))
        }
        Err(dotenvy::Error::Io(error)) => Err(format!("{}: cannot be read ({})", path.display(), error.kind())),
        Err(dotenvy::Error::EnvVar(_)) => Err(format!(
            "{}: a variable it substitutes is not valid Unicode",
            path.display()
        )),
        Err(_) => Err(format!("{}: cannot be loaded", path.display())),
    }
}

/// The 1-based number of the line where `logical_line` (as dotenvy reports it) starts.
fn line_number_of(text: &str, logical_line: &str) -> Option<usize> {
    let first = logical_line.lines().next()?.trim_end();
    if first.is_empty() {
        return None;
    }
    text.lines()
        .position(|line| line.trim_end() == first)
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::line_number_of;

    #[test]
    fn a_malformed_dotenv_line_is_found_by_number() {
        let text = "# settings\nLANYARD_LOG=info\nnot a line sk-secret-0123\nOTHER=1\n";
        assert_eq!(line_number_of(text, "not a line sk-secret-0123\n"), Some(3));
        assert_eq!(line_number_of(text, ""), None);
    }
}
