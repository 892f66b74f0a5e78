//! Roost's gateway: accounts and auth, the chat relay, provisioning and billing glue.

pub mod admin;
pub mod agent_credentials;
pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
mod http_server;
pub mod json;
pub mod lifecycle;
pub mod llm;
pub mod machines;
pub mod malloc;
mod middleware;
pub mod openclaw;
pub mod private_files;
pub mod relay;
pub mod routes;
pub mod secret;
pub mod settings;
pub mod startup;
pub mod stripe_sync;
pub mod sweeps;
pub mod telemetry;
