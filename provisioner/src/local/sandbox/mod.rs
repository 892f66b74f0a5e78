//! Confinement for local agents. Each agent is launched through `roost agent-exec`, which applies
//! a [`Policy`] to itself (Landlock rules, resource limits, no capabilities) and then execs Node,
//! so the agent and everything it spawns can reach only its own state, the runtime and the
//! system files Node needs.
//!
//! The server decides once, at start, what the kernel supports ([`Support::probe`]) and whether
//! that is enough ([`Sandbox::choose`]); the helper then enforces exactly that ([`exec`]).

mod enforce;
mod policy;
mod support;

pub use enforce::{EnforceError, exec};
pub use policy::{AGENT_WRITABLE, AgentPaths, Limits, Policy, PolicyError, Rules, prepare_lock_dir};
pub use support::{MIN_ABI, Refusal, Sandbox, Support};
