//! Request and response bodies, as research §2 documents them. Nearly every response field is
//! optional in the spec and the spec grows often, so responses default every field and ignore
//! unknown ones; requests skip what is unset so the server's defaults apply.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

// ---- apps (§2.1) ----

#[derive(Debug, Clone, Serialize)]
pub struct CreateAppRequest {
    /// `name`, as the spec and fly-go send it (the docs' `app_name` is older, pitfall 3).
    pub name: String,
    pub org_slug: String,
    /// A per-app network isolates the user's machine from every other (§7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct App {
    pub id: String,
    pub name: String,
    /// `pending` (nothing deployed), `deployed`, `suspended`.
    pub status: String,
    /// `"default"` for the org's default network (which ip_assignments calls `""`, pitfall 14).
    pub network: String,
    pub organization: Option<Organization>,
    pub machine_count: u64,
    pub volume_count: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Organization {
    pub name: String,
    pub slug: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct AppList {
    pub apps: Vec<App>,
}

// ---- IP assignments (§2.2) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpType {
    V4,
    V6,
    SharedV4,
    /// Flycast: a private address that goes through Fly Proxy.
    PrivateV6,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssignIpRequest {
    #[serde(rename = "type")]
    pub kind: IpType,
    /// `""` is the org's default network; which value cross-network Flycast needs is contested
    /// (research §7.3), so the caller chooses.
    pub network: String,
    pub org_slug: String,
    pub region: String,
    pub service_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpAssignment {
    pub ip: String,
    pub region: String,
    pub service_name: String,
    pub shared: bool,
    pub created_at: String,
    /// Observed on the live API; `null` for public addresses.
    pub network: Option<IpNetwork>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpNetwork {
    pub name: String,
    pub org_slug: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct IpAssignments {
    pub ips: Vec<IpAssignment>,
}

// ---- secrets (§2.3) ----

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct AppSecret {
    pub name: String,
    pub digest: String,
    pub created_at: String,
    pub updated_at: String,
    /// Only with `show_secrets=true`, which this client never asks for.
    pub value: Option<String>,
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSecret").field("name", &self.name).field("digest", &self.digest).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretsUpdate {
    pub secrets: Vec<AppSecret>,
    /// Pass as `min_secrets_version` on the next machine create so it sees these values.
    pub version: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct SecretsList {
    pub secrets: Vec<AppSecret>,
}

// ---- volumes (§2.4) ----

#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateVolumeRequest {
    pub name: String,
    /// A real region: volumes take no meta-regions (pitfall 6).
    pub region: String,
    pub size_gb: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_unique_zone: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_backup_enabled: Option<bool>,
    /// Placement hints, so the volume lands on a host that can also fit the machine (pitfall 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<Guest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_image: Option<String>,
    /// Set by [`FlyClient::fork_volume`](super::FlyClient::fork_volume): the volume to copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_volume_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Volume {
    pub id: String,
    pub name: String,
    /// `created`, `hydrating` (a fork filling), `destroyed`, or one of the destroying states.
    pub state: String,
    pub size_gb: u32,
    pub region: String,
    pub zone: String,
    pub encrypted: bool,
    pub attached_machine_id: Option<String>,
    pub attached_alloc_id: Option<String>,
    pub created_at: String,
}

// ---- machines (§2.5) ----

#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateMachineRequest {
    /// Unique within the app, so a duplicate create gets a 409: a second guard (§6 item 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The volume's region (it is the mount that places the machine on the volume's host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub config: MachineConfig,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_launch: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_secrets_version: Option<u64>,
}

/// A machine's whole config. Update replaces it whole (pitfall 10), so fields this type does not
/// name are kept in `extra` and sent back unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineConfig {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<Init>,
    /// Plain text, readable by any token holder (pitfall 12): no secrets here.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<Guest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_config: Option<StopConfig>,
    /// The idempotency tag list-by-metadata filters on (see [`names`](super::names)).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Init {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guest {
    /// `shared` or `performance`.
    pub cpu_kind: String,
    pub cpus: u32,
    /// A multiple of 256.
    pub memory_mb: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    pub volume: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    pub protocol: String,
    pub internal_port: u16,
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostop: Option<Autostop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    pub port: u16,
    pub handlers: Vec<String>,
}

/// Sent as `"off" | "stop" | "suspend"`; answered as `false | true | "suspend"` (pitfall 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Autostop {
    Off,
    Stop,
    Suspend,
}

impl<'de> Deserialize<'de> for Autostop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(false) => Ok(Self::Off),
            Value::Bool(true) => Ok(Self::Stop),
            Value::String(s) if s == "off" => Ok(Self::Off),
            Value::String(s) if s == "stop" => Ok(Self::Stop),
            Value::String(s) if s == "suspend" => Ok(Self::Suspend),
            other => Err(serde::de::Error::custom(format!("unknown autostop {other}"))),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Restart {
    /// `no`, `always`, `on-failure`, `spot-price`.
    pub policy: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StopConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// A duration string such as `"30s"` (the prose docs' nanoseconds are stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub id: String,
    pub name: String,
    /// See research §3: `created`, `starting`, `started`, `stopping`, `stopped`, `suspending`,
    /// `suspended`, `failed`, `destroying`, `destroyed`, and more transient ones.
    pub state: String,
    pub region: String,
    /// The per-version id; `/wait?state=stopped` wants it as `version`.
    pub instance_id: String,
    /// The 6PN address. Not stable (§7): address the machine by `<id>.vm.<app>.internal`.
    pub private_ip: String,
    /// Missing when the host is unreachable (`host_status` not `ok`).
    pub config: Option<MachineConfig>,
    pub host_status: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Machine {
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.metadata.get(key).map(String::as_str)
    }
}

/// `POST /v1/apps/{app}/machines/{id}`: the **whole** config (update replaces it, pitfall 10),
/// so it is built from a fresh GET of the machine with only the wanted fields changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateMachineRequest {
    pub config: MachineConfig,
    /// The `instance_id` the config was read at: a machine changed meanwhile answers 412.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Leave a stopped machine stopped on its new version.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_launch: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_secrets_version: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StopRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The docs' start answer (the spec documents none, so every field may be missing).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StartResponse {
    pub previous_state: String,
    pub migrated: bool,
    pub new_host: String,
}

/// The states `/wait` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitState {
    Started,
    Stopped,
    Suspended,
    Destroyed,
    Failed,
    /// Any persistent state (flyctl's default).
    Settled,
}

impl WaitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::Suspended => "suspended",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
            Self::Settled => "settled",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WaitResponse {
    pub ok: bool,
    pub state: String,
    pub version: String,
    pub event_id: String,
}

/// A machine list filter. Every `metadata` pair must match.
#[derive(Debug, Clone, Default)]
pub struct MachineFilter {
    pub metadata: BTreeMap<String, String>,
    pub include_deleted: bool,
    pub region: Option<String>,
}
