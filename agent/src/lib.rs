//! `roost-agent`: the sidecar on every per-user Fly machine (design §5, research §7).
//!
//! It writes the platform's OpenClaw config keys and supervises OpenClaw on loopback
//! ([`supervisor`]), and forwards Roost's connections from the private network to it
//! ([`proxy`]), admitting only requests that carry the machine's own secret. Its own routes
//! (readiness, and the secret files bot tokens are read from) live under `/roost/` ([`router`]).
//!
//! Without the `sidecar` feature only [`config`], [`secret_files`] and [`workspace`] are built:
//! the local provider shares them.

pub mod archive;
pub mod config;
pub mod secret_files;
pub mod workspace;

/// The header that carries the per-machine secret; the sidecar strips it before forwarding.
pub const SECRET_HEADER: &str = "x-roost-agent-secret";
/// The sidecar's readiness route.
pub const READY_PATH: &str = "/roost/ready";
/// The sidecar's secret files: `PUT` (the body is the contents) or `DELETE` `<prefix><name>`.
pub const SECRETS_PATH: &str = "/roost/secrets/";
/// The sidecar's workspace files: `GET <prefix>list?path=`, `GET`/`PUT <prefix>content?path=`,
/// `DELETE <prefix>content?path=[&recursive=true]` ([`workspace`]).
pub const FILES_PATH: &str = "/roost/files/";
/// The sidecar's backup of the agent's state: `GET` streams the archive ([`archive`]).
pub const EXPORT_PATH: &str = "/roost/export";
/// The sidecar's restore: `PUT` an archive; OpenClaw is paused while the state is replaced.
pub const IMPORT_PATH: &str = "/roost/import";

#[cfg(feature = "sidecar")]
pub mod backups;
#[cfg(feature = "sidecar")]
pub mod files;
#[cfg(feature = "sidecar")]
pub mod proxy;
#[cfg(feature = "sidecar")]
pub mod ready;
#[cfg(feature = "sidecar")]
pub mod router;
#[cfg(feature = "sidecar")]
pub mod secret;
#[cfg(feature = "sidecar")]
pub mod settings;
#[cfg(feature = "sidecar")]
pub mod supervisor;
#[cfg(feature = "sidecar")]
pub mod tmp_dir;
#[cfg(feature = "sidecar")]
pub mod workspace_files;
