//! A client for Fly.io's Machines REST API (`https://api.machines.dev/v1`), as documented in
//! `shared/research/fly-machines-api.md`: apps, IP assignments, secrets, volumes (with forks)
//! and machines (with `/wait`). Errors are typed by status ([`FlyError`]); idempotent calls are
//! retried with jittered backoff within bounds ([`RetryPolicy`]); creates never are once the
//! request may have reached Fly, since the API has no idempotency key: the provider built on
//! this client looks its objects up by metadata ([`names`]) before creating again.
//!
//! [`FlyProvider`] is the `fly` [`Provider`](crate::Provider) built on the client: research §6's
//! idempotent steps, with what must survive a crash kept through a [`FlyStore`].

mod apps;
mod backups;
mod client;
mod error;
mod machines;
pub mod names;
mod provider;
mod provision;
mod ready;
mod reconcile;
mod retry;
mod rollout;
mod secret_files;
mod store;
mod sweep;
mod token;
mod types;
mod volumes;
mod workspace_files;

pub use client::{DEFAULT_BASE_URL, FlyClient, FlyConfig, Timeouts, parse_retry_after};
pub use error::{ApiError, FlyError, TransportKind};
pub use machines::WaitOptions;
pub use provider::{FlyOptions, FlyProvider};
pub use ready::{
    AGENT_SECRET_HEADER, DEFAULT_AGENT_ADDRESS, DEFAULT_MACHINE_SIZE, agent_address, check_address_template,
    parse_machine_size,
};
pub use reconcile::{Host, Report, Turn};
pub use retry::{Decision, Idempotency, RetryPolicy, Sleeper, classify, classify_after_create};
pub use store::{FlyRecord, FlyStore, MemoryFlyStore, StoreError, StoredRecord, new_provision_id};
pub use token::{ApiToken, InvalidToken};
pub use types::*;
