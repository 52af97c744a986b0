//! The integration suite: one binary, the real application on a random port, a fresh database
//! per test, on SQLite and (when LANYARD_TEST_POSTGRES_URL is set) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod helpers;

mod account_security;
mod cli;
mod configurations;
mod defaults;
mod egress_hardening;
mod http_hardening;
mod openapi;
mod operations;
mod pages;
mod provider_tests;
mod resolution;
mod schema;
mod secret_hygiene;
mod security;
mod sessions;
mod validation;
