//! Roost's side of the OpenClaw gateway protocol (v4): its device identity and the handshake.

mod admin;
mod connect;
mod device;

pub use admin::{AdminError, AdminLink};
pub use connect::{
    AgentSocket, ConnectError, Upstream, connect, connect_scoped, connect_through, connect_with_retry, socket_config,
};
pub use device::DeviceIdentity;

/// What Roost asks for on every agent connection.
pub const SCOPES: [&str; 2] = ["operator.read", "operator.write"];
pub const PROTOCOL: u64 = 4;
