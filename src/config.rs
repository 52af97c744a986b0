//! Settings from the environment (and a `.env` file, read by `main`). Every variable is listed
//! in `.env.example`.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use crate::db::DatabaseUrl;
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
        let master_keys = match var("LANYARD_MASTER_KEYS") {
            Some(entries) => MasterKeySource::Entries(SecretString::from(entries)),
            None => MasterKeySource::KeyFile(PathBuf::from(var_or(
                "LANYARD_MASTER_KEY_FILE",
                DEFAULT_MASTER_KEY_FILE,
            ))),
        };
        let egress = EgressPolicy::parse(
            &var_or("LANYARD_EGRESS_ALLOW", ""),
            &var_or("LANYARD_EGRESS_MODE", "public"),
        )
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
        Ok(Settings {
            database_url,
            bind,
            public_url,
            master_keys,
            egress,
            test_rate_per_minute,
            pool_size,
        })
    }
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
