//! Stripe: the API client (the only I/O in this crate) and the webhook signature check.

pub mod client;
pub mod signature;

pub use client::{CallError, Options, Stripe};
