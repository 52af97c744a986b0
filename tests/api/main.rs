//! The integration suite: one binary, the real application on a random port, a fresh database
//! per test, on SQLite and (when LANYARD_TEST_POSTGRES_URL is set) on PostgreSQL.
//!
//! One file per feature of the product, named as the product names it (configurations, defaults,
//! overrides, resolve, tokens, sessions, accounts, admin, provider tests, egress, import/export,
//! rotation, operations, limits, secrets, …): to find where X is tested, open the file named
//! after X. `helpers` holds the app, the fixture macro and what several files share; `binary`
//! drives the real `lanyard` executable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod helpers;

mod accounts;
mod admin;
mod cli;
mod configurations;
mod connection_checks;
mod connection_pages;
mod connections;
mod defaults;
mod egress;
mod exec;
mod http;
mod import_export;
mod limits;
mod openapi;
mod operations;
mod organisation_pages;
mod organisation_resources;
mod organisations;
mod overrides;
mod pages;
mod parameters;
mod provider_tests;
mod resolve;
mod resolve_waits;
mod rotation;
mod schema;
mod secrets;
mod service_tokens;
mod sessions;
mod single_sign_on;
mod tokens;
mod two_factor;
mod upgrade;
mod webhooks;
