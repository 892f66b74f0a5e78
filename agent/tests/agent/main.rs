//! The `roost-agent` sidecar: its admission and forwarding against a fake upstream (`proxy`),
//! its secret files route (`files`), its workspace files routes (`workspace_files`), its backup
//! routes (`backups`),
//! and the whole binary in front of the real Node + OpenClaw runtime (`e2e_openclaw`).

mod backups;
mod e2e_openclaw;
mod files;
mod image;
mod proxy;
mod workspace_files;

pub const SECRET: &str = "agent-secret-0123456789abcdef0123456789";

/// A port free at the time of asking (tests give it to a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
