use std::fmt;

/// Lifecycle states, as stored and shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Provisioning,
    Starting,
    Ready,
    IdleStopped,
    Stopping,
    Failed,
    Destroying,
    Destroyed,
}

impl MachineState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::IdleStopped => "idle_stopped",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step a machine is on; users see these names while they wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for one of the host's agent slots (`--max-agents`).
    Queued,
    InstallingRuntime,
    PreparingState,
    /// Fly: creating (or finding again) the user's app and setting its secrets.
    CreatingApp,
    /// Fly: creating (or reusing, or forking) the user's volume.
    CreatingVolume,
    /// Fly: creating (or finding again) the user's machine.
    CreatingMachine,
    Starting,
    WaitingReady,
    Ready,
    Restarting,
    Stopped,
    Failed,
    /// The account was deleted: the machine and its data are being removed.
    Destroying,
    Destroyed,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InstallingRuntime => "installing_runtime",
            Self::PreparingState => "preparing_state",
            Self::CreatingApp => "creating_app",
            Self::CreatingVolume => "creating_volume",
            Self::CreatingMachine => "creating_machine",
            Self::Starting => "starting",
            Self::WaitingReady => "waiting_ready",
            Self::Ready => "ready",
            Self::Restarting => "restarting",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }

    /// Every stage, for reading names back and for tests.
    pub const ALL: [Stage; 14] = [
        Stage::Queued,
        Stage::InstallingRuntime,
        Stage::PreparingState,
        Stage::CreatingApp,
        Stage::CreatingVolume,
        Stage::CreatingMachine,
        Stage::Starting,
        Stage::WaitingReady,
        Stage::Ready,
        Stage::Restarting,
        Stage::Stopped,
        Stage::Failed,
        Stage::Destroying,
        Stage::Destroyed,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == name)
    }

    /// The lifecycle state a machine is in while at this stage.
    pub fn state(self) -> MachineState {
        match self {
            Self::InstallingRuntime
            | Self::PreparingState
            | Self::CreatingApp
            | Self::CreatingVolume
            | Self::CreatingMachine => MachineState::Provisioning,
            Self::Queued | Self::Starting | Self::WaitingReady | Self::Restarting => MachineState::Starting,
            Self::Ready => MachineState::Ready,
            Self::Stopped => MachineState::IdleStopped,
            Self::Failed => MachineState::Failed,
            Self::Destroying => MachineState::Destroying,
            Self::Destroyed => MachineState::Destroyed,
        }
    }
}

/// Receives every stage change, with a human-readable detail (never a secret).
pub trait Progress: Send + Sync {
    fn report(&self, user_id: &str, stage: Stage, detail: &str);
}

/// What an agent needs to run. Secrets here go to the agent's environment, never to disk.
#[derive(Clone)]
pub struct AgentSpec {
    pub user_id: String,
    /// The OpenClaw `gateway.auth.token` Roost uses to connect.
    pub gateway_token: String,
    /// What a Fly machine's sidecar admits Roost by (`x-roost-agent-secret`); unused locally.
    pub agent_secret: String,
    pub llm: LlmEndpoint,
    /// The machine size of the user's plan; `None`: the provider's own (`--fly-machine-size`).
    /// The local provider ignores it: a local agent is a process, not a sized machine.
    pub guest: Option<crate::fly::Guest>,
    /// Whether the user's plan lets an idle agent be suspended rather than stopped; `None`: the
    /// provider's own switch. Only the Fly provider suspends.
    pub suspend: Option<bool>,
}

impl fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSpec")
            .field("user_id", &self.user_id)
            .field("llm", &self.llm)
            .field("guest", &self.guest)
            .field("suspend", &self.suspend)
            .finish_non_exhaustive()
    }
}

/// The model endpoint the agent calls: Roost's own metered proxy.
#[derive(Clone)]
pub struct LlmEndpoint {
    /// e.g. `http://127.0.0.1:8080/llm/openai/v1`
    pub base_url: String,
    /// OpenClaw's `api` value: `openai-completions` or `anthropic-messages`.
    pub api: &'static str,
    /// The per-user credential for the proxy.
    pub credential: String,
    pub model: String,
}

impl fmt::Debug for LlmEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmEndpoint")
            .field("base_url", &self.base_url)
            .field("api", &self.api)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A running machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `ws://host:port/` of the agent's OpenClaw gateway.
    pub address: String,
    /// The provider's own id (a process id for `local`, a machine id for Fly).
    pub external_id: String,
}

/// Why a machine did not start. `Display` carries details for the server's log (paths, tool
/// output); users are shown only [`ProvisionError::public_message`].
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("installing the agent runtime failed: {0}")]
    Install(String),
    #[error("the agent did not start: {0}")]
    Start(String),
    /// It was stopped (by a stop or a restart) before it was ready.
    #[error("the agent was stopped while it was starting; its log ends: {0}")]
    Exited(String),
    #[error("the agent did not become ready within {0} s")]
    NotReady(u64),
    /// The agent crashed too often and is no longer restarted; the text is written for users.
    #[error("{0}")]
    CrashLoop(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Fly answered with an error that is not ours to retry (bad token, a refused request, a
    /// wait that ran out). Holds the scrubbed API error, for the log only.
    #[error("Fly: {0}")]
    Cloud(String),
    /// Every configured region is out of room for the machine or its volume.
    #[error("no region has room: {0}")]
    NoCapacity(String),
    /// The provider's own records (the `fly_machines` row) could not be read or written.
    #[error("provider storage: {0}")]
    Storage(String),
    /// The provider cannot do what was asked; the text is written for users.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A backup archive failed its checks; nothing was changed.
    #[error("{0}")]
    Refused(roost_agent::archive::Refusal),
}

impl ProvisionError {
    /// What a user may be told: a plain sentence, nothing internal.
    pub fn public_message(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Install(_) => "Installing the agent's runtime failed.".into(),
            Self::Start(_) | Self::Io(_) => "Your agent could not be started.".into(),
            Self::Exited(_) => "Your agent was stopped while it was starting.".into(),
            Self::NotReady(_) => "Your agent did not become ready in time.".into(),
            Self::CrashLoop(reason) => reason.as_str().into(),
            Self::Cloud(_) => "Your agent's machine could not be set up. Try again in a few minutes.".into(),
            Self::NoCapacity(_) => {
                "There is no room for your agent's machine right now. Try again in a few minutes.".into()
            }
            Self::Storage(_) => "Your agent could not be started.".into(),
            Self::Unsupported(why) => (*why).into(),
            Self::Refused(refusal) => refusal.message().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_parses_back_and_the_fly_stages_are_provisioning() {
        for name in ["creating_app", "creating_volume", "creating_machine", "queued", "ready", "destroyed"] {
            assert_eq!(Stage::parse(name).map(Stage::as_str), Some(name));
        }
        for stage in [Stage::CreatingApp, Stage::CreatingVolume, Stage::CreatingMachine] {
            assert_eq!(stage.state(), MachineState::Provisioning);
        }
        assert_eq!(Stage::parse("creating"), None);
    }
}
