//! The integration suite: one binary, the real application on a random port, a fresh database
//! per test, on SQLite and (when LANYARD_TEST_POSTGRES_URL is set) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod helpers;

mod accounts;
mod admin;
mod cli;
mod configurations;
mod defaults;
mod egress;
mod http;
mod import_export;
mod limits;
mod openapi;
mod operations;
mod overrides;
mod pages;
mod provider_tests;
mod resolve;
mod rotation;
mod schema;
mod secrets;
mod sessions;
mod tokens;
