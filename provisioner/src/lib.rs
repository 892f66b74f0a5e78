//! Per-user agent machines: the [`Provider`] trait, machine states and progress stages, the
//! `local` provider (one OpenClaw process per user), and the Fly.io Machines API client (`fly`).
//! Storage is the caller's: progress and results are reported through [`Progress`], and this
//! crate never touches a database.

pub mod backup;
pub mod files;
pub mod fly;
pub mod lease;
pub mod lifecycle;
pub mod local;
mod machine;
pub mod reconcile;

pub use machine::{AgentSpec, LlmEndpoint, Machine, MachineState, Progress, ProvisionError, Stage};
/// The backup archive format, shared with the Fly sidecar.
pub use roost_agent::archive;
/// The OpenClaw config paths Roost owns (refused in the agent console) and the console's path.
pub use roost_agent::config::{CONTROL_UI_BASE_PATH, PLATFORM_OWNED};

use async_trait::async_trait;
use files::{ByteStream, Download, FileError, Listing, WorkspacePath};

const NO_FILES: &str = "Files cannot be reached on this server's agent provider.";

/// Where agents run. Every method is idempotent and safe to retry after a crash at any point.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short name stored with each machine row (`local`, `fly`, `fake`).
    fn name(&self) -> &'static str;

    /// Creates whatever the user's machine needs (runtime, state dir, app, volume), reporting
    /// each stage. Leaves the machine stopped or running; never destroys anything.
    async fn ensure(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<(), ProvisionError>;

    /// Starts the machine (ensuring it first) and waits until the agent answers as ready.
    async fn start(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<Machine, ProvisionError>;

    /// Stops the machine, keeping its state for the next start.
    async fn stop(&self, user_id: &str) -> Result<(), ProvisionError>;

    /// The machine's current state as the provider sees it.
    async fn status(&self, user_id: &str) -> MachineState;

    /// The agent's WebSocket address, when it is running.
    async fn address(&self, user_id: &str) -> Option<String>;

    /// The machine's resident memory at its last sample, while it runs (`None`: unknown).
    async fn memory_bytes(&self, _user_id: &str) -> Option<u64> {
        None
    }

    /// Writes a secret file (a bot token) that only the user's agent reads, or deletes it with
    /// `None`; returns the path the agent reads it at. `name` is `[a-z0-9.-]`, chosen by Roost.
    async fn put_secret_file(
        &self,
        _user_id: &str,
        _name: &str,
        _contents: Option<&[u8]>,
    ) -> Result<String, ProvisionError> {
        Err(ProvisionError::Unsupported("Bots cannot be connected to agents on this server's provider yet."))
    }

    /// The names in a folder of the agent's workspace ([`files`]).
    async fn list_files(&self, _user_id: &str, _path: &WorkspacePath) -> Result<Listing, FileError> {
        Err(FileError::Unsupported(NO_FILES))
    }

    /// A file of the agent's workspace, streamed.
    async fn read_file(&self, _user_id: &str, _path: &WorkspacePath) -> Result<Download, FileError> {
        Err(FileError::Unsupported(NO_FILES))
    }

    /// Writes a file of the agent's workspace from a streamed body of at most
    /// [`files::MAX_UPLOAD_BYTES`], replacing it whole; returns its size. Nothing is kept of a
    /// refused or broken upload. The folder must exist.
    async fn write_file(&self, _user_id: &str, _path: &WorkspacePath, _body: ByteStream) -> Result<u64, FileError> {
        Err(FileError::Unsupported(NO_FILES))
    }

    /// Deletes a file, a symlink or an empty folder of the agent's workspace; with `recursive`,
    /// a folder and everything in it.
    async fn delete_file(&self, _user_id: &str, _path: &WorkspacePath, _recursive: bool) -> Result<(), FileError> {
        Err(FileError::Unsupported(NO_FILES))
    }

    /// Whether backups reach the agent's state only through its running machine (Fly: the
    /// sidecar on its volume), so the caller wakes the agent before [`Self::export`] and
    /// [`Self::import`]. `false`: the state is on this host, reachable stopped or running.
    fn backups_need_running(&self) -> bool {
        false
    }

    /// Streams a backup of the agent's state ([`archive`]: config without the platform's keys,
    /// transcripts, workspace): running or not, or, with [`Self::backups_need_running`], once the
    /// caller has woken it.
    async fn export(&self, _user_id: &str) -> Result<backup::ArchiveChunks, ProvisionError> {
        Err(ProvisionError::Unsupported("Backups are not available for agents on this server's provider yet."))
    }

    /// Replaces the agent's state with the archive in `archive` (checked already by the caller,
    /// and again as it is unpacked), keeping the machine's platform-owned parts. A refused
    /// archive changes nothing.
    ///
    /// Who stops what is [`Self::backups_need_running`]'s answer. `false`: the caller stops the
    /// agent first (it frees its slot and tells its pages; the provider makes sure it is down)
    /// and starts it after. `true`: the caller wakes the machine first, and the provider pauses
    /// only the agent on it for the swap (stopping the machine would stop what reaches its
    /// volume) and starts it again; the caller then waits for it to be ready as for any start.
    async fn import(&self, _user_id: &str, _archive: std::fs::File) -> Result<archive::Restored, ProvisionError> {
        Err(ProvisionError::Unsupported("Backups are not available for agents on this server's provider yet."))
    }

    /// Stops the machine and deletes everything kept for it.
    async fn destroy(&self, user_id: &str) -> Result<(), ProvisionError>;

    /// Stops agents an earlier run of Roost left behind, except those of the users in `keep`
    /// (another live instance runs them). Called once at start, before anything is started.
    async fn reap_leftovers(&self, _keep: &[String]) {}

    /// Stops every machine this process started (called on shutdown).
    async fn shutdown(&self) {}
}
