//! Lanyard: a self-hosted home for LLM provider configurations.

pub mod api;
pub mod app;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod egress;
pub mod error;
pub mod http;
pub mod lanyard_client;
pub mod metrics;
pub mod providers;
pub mod services;
pub mod startup;
pub mod telemetry;
pub mod web;
