//! The agent API's messages, shared by both ends: what an agent sends a
//! control replica (enrollment, registration, heartbeats) and what a
//! control replica sends an agent (driver calls), with their answers.
//! Every driver call carries a request id: an agent that sees the same id
//! again answers with the first call's outcome instead of acting twice, so
//! a retried or duplicated message changes nothing.

use crate::compute::driver::{DriverFault, DriverOp, LiveStats};
use rova_core::model::Instance;
use serde::{Deserialize, Serialize};

/// Paths of the control replica's agent listener.
pub const ENROLL: &str = "/agent/v1/enroll";
pub const REGISTER: &str = "/agent/v1/register";
pub const HEARTBEAT: &str = "/agent/v1/heartbeat";
pub const CLEANED: &str = "/agent/v1/evacuations/cleaned";
/// Path of an agent's listener.
pub const DRIVER: &str = "/agent/v1/driver";

/// An agent redeeming its one-time token for a certificate.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnrollRequest {
    pub token: String,
    /// A PKCS#10 request over the agent's own key (PEM).
    pub csr_pem: String,
}

/// What a host offers guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inventory {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

/// An agent registering its host (the host is the one its certificate
/// names): where its listener is, which driver it runs, its inventory.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegisterRequest {
    /// `IP:PORT` of the agent's listener, as control replicas reach it.
    pub address: String,
    /// `fake` or `qemu`.
    pub driver: String,
    pub inventory: Inventory,
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The servers whose guests the agent runs now (`None`: it does not
    /// know, and no power state is synced). Servers the control plane
    /// places on this host as running whose guests are not listed are
    /// stopped (SHUTOFF); listed ones are re-adopted as they are.
    #[serde(default)]
    pub guests: Option<Vec<String>>,
}

/// The control plane's answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Registered {
    pub host: String,
    /// Seconds between heartbeats the control plane expects.
    pub report_interval: u64,
    /// Servers evacuated away from this host while it was gone: the agent
    /// destroys its copies, then reports them cleaned ([`Cleaned`]).
    #[serde(default)]
    pub evacuated: Vec<Evacuated>,
    /// When the agent sent no guest list (it keeps none yet): the servers
    /// the control plane places on this host, which the agent takes as the
    /// guests it runs.
    #[serde(default)]
    pub hosted: Option<Vec<String>>,
}

/// A server rebuilt elsewhere while its host was down.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evacuated {
    pub migration_uuid: String,
    /// The server's record (rova_core::model::Instance).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub instance: Instance,
}

/// The evacuations whose stale guests the agent has destroyed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cleaned {
    pub migrations: Vec<String>,
}

/// A heartbeat (its sender is the certificate's host).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeartbeatRequest {
    /// Guests the agent's driver runs now.
    #[serde(default)]
    pub guests: u64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeartbeatReply {
    pub report_count: u64,
}

/// Where an agent serves, as its `agent_endpoints` row keeps it (id: the
/// host name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEndpoint {
    pub host: String,
    pub address: String,
    pub driver: String,
    pub registered_at: chrono::DateTime<chrono::Utc>,
}

/// What a control replica asks an agent's driver to do.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "call")]
pub enum DriverCall {
    Spawn,
    Destroy,
    Perform {
        op: DriverOp,
    },
    LiveMigrate {
        dest: String,
    },
    /// The server's guest was moved onto this host by its source's driver
    /// (a simulated move needs nothing from the destination): the agent
    /// counts it among the guests it runs.
    Adopt,
}

/// One driver call, with the instance it acts on.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriverRequest {
    /// Unique per call; a retry carries the same id.
    pub request_id: String,
    /// The server's record (rova_core::model::Instance).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub instance: Instance,
    #[serde(flatten)]
    pub call: DriverCall,
}

/// How a driver call ended.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum DriverReply {
    Done,
    Migrated { stats: LiveStats },
    Failed { fault: DriverFault },
}
