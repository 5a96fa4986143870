//! The agent API's messages, shared by both ends: what an agent sends a
//! control replica (enrollment, registration, heartbeats) and what a
//! control replica sends an agent (driver calls), with their answers, and
//! what an agent's QEMU driver asks the control plane about its guests.
//! Every driver call carries a request id: an agent that sees the same id
//! again answers with the first call's outcome instead of acting twice, so
//! a retried or duplicated message changes nothing.

use crate::compute::driver::{DriverFault, DriverOp, LiveRequest, LiveStats};
use crate::virt::env::{DhcpPort, GuestEvent, ImageInfo, PasswordPost, PortSecurity, RouterPlan};
use rova_core::metadata::{GuestFacts, NetFact};
use rova_core::model::Instance;
use serde::{Deserialize, Serialize};

/// Paths of the control replica's agent listener.
pub const ENROLL: &str = "/agent/v1/enroll";
pub const REGISTER: &str = "/agent/v1/register";
pub const HEARTBEAT: &str = "/agent/v1/heartbeat";
pub const CLEANED: &str = "/agent/v1/evacuations/cleaned";
/// What an agent's QEMU driver asks the control plane about the guests
/// it runs (images, instance records, guest facts, networks) and what it
/// reports ([`EnvRequest`]).
pub const ENV: &str = "/agent/v1/env";
/// An image's bytes (`{id}`: the image): `GET` fetches them into the
/// agent's image cache, `PUT` stores a disk the agent exported as the
/// image's data (query `virtual_size`). Bytes never go through the
/// database.
pub const IMAGE_FILE: &str = "/agent/v1/images/{id}/file";
/// Path of an agent's listener.
pub const DRIVER: &str = "/agent/v1/driver";
/// A guest's file on an agent's listener (`{name}`: a disk, its config
/// drive or console history, `root.json` — its root disk's size and
/// backing image — or `base-{image}`: a cached image it is backed by),
/// read by another agent a move takes the guest to when their instances
/// paths are not shared; query `offset`, at most [`FILE_CHUNK`] bytes an
/// answer. Only the agent of the destination of a move of that guest
/// from this host in progress may read it (the control plane says which).
pub const INSTANCE_FILE: &str = "/agent/v1/instances/{uuid}/files/{name}";
/// A guest's console on an agent's listener (`{kind}`: `serial` or
/// `vnc`): a control replica's console proxy asks to switch protocols to
/// [`CONSOLE_PROTOCOL`], and the connection then carries the console's
/// bytes both ways (the serial port, or RFB).
pub const CONSOLE: &str = "/agent/v1/instances/{uuid}/console/{kind}";
/// The `Upgrade` protocol of [`CONSOLE`].
pub const CONSOLE_PROTOCOL: &str = "rova-console";

/// [`CONSOLE`] for a guest's console of `kind`.
pub fn console_path(uuid: &str, kind: &str) -> String {
    CONSOLE.replace("{uuid}", uuid).replace("{kind}", kind)
}

/// Most bytes one [`INSTANCE_FILE`] answer carries.
pub const FILE_CHUNK: u64 = 16 << 20;

/// [`INSTANCE_FILE`] for a guest's file from `offset`.
pub fn instance_file_path(uuid: &str, name: &str, offset: u64) -> String {
    INSTANCE_FILE
        .replace("{uuid}", uuid)
        .replace("{name}", name)
        + &format!("?offset={offset}")
}

/// [`IMAGE_FILE`] for image `id`.
pub fn image_file_path(id: &str) -> String {
    IMAGE_FILE.replace("{id}", id)
}

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
    /// Which storage holds the agent's instance disks: agents whose
    /// instances path is one shared directory report the same id, an
    /// agent keeping its disks to itself an id of its own (`None`: a
    /// simulated driver, with no disks). Live migration between hosts
    /// with the same id needs no block migration.
    #[serde(default)]
    pub storage: Option<String>,
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
    /// [`RegisterRequest::storage`].
    #[serde(default)]
    pub storage: Option<String>,
}

/// The agent of another host, as a move's destination reaches it: the
/// source of a guest's files when the hosts do not share storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeerAgent {
    pub host: String,
    /// `IP:PORT` of its listener.
    pub address: String,
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
    /// Live-migrate the guest to `dest`. With `uri` (a real guest whose
    /// destination is another agent), the migration stream goes to the
    /// guest waiting there ([`DriverCall::PrepareIncoming`]).
    /// With `nbd` (a block migration) the disks are mirrored to the NBD
    /// exports there first.
    LiveMigrate {
        dest: String,
        #[serde(default)]
        uri: Option<String>,
        #[serde(default)]
        nbd: Option<String>,
    },
    /// The destination's half of a live migration: start the guest
    /// waiting for the migration stream on this agent's address; the
    /// answer is [`DriverReply::Incoming`]. `from` is the source's agent:
    /// when the hosts do not share storage, the guest's config drive
    /// comes from there and its disks are made here, empty, to be
    /// mirrored (a block migration).
    PrepareIncoming {
        #[serde(default)]
        from: Option<PeerAgent>,
    },
    /// The live migration prepared here failed: stop the waiting guest
    /// (disks shared with the source stay; copies made here go).
    DropIncoming,
    /// The guest moved to another host for good (a confirmed resize or
    /// cold migration, a completed block migration): the disks a move
    /// left here go — all of them when this host's instances path is not
    /// shared, else only the copy kept for a revert.
    DropMoved,
    /// The guest's serial console log ([`DriverReply::Console`]).
    ConsoleLog,
    /// A request about the guest's live migration in flight from this
    /// agent (force-complete, abort).
    LiveRequest {
        request: LiveRequest,
    },
    /// The server's guest was moved onto this host by its source's driver
    /// (`op`: the cold move it carried out, after which a real guest is
    /// started here; a simulated move needs nothing from the
    /// destination): the agent counts it among the guests it runs.
    /// `from`: the source's agent, whose files a cold move copies here
    /// when the hosts do not share storage.
    Adopt {
        #[serde(default)]
        op: Option<DriverOp>,
        #[serde(default)]
        from: Option<PeerAgent>,
    },
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
    Migrated {
        stats: LiveStats,
    },
    /// A guest waits for the migration stream at `uri` (`tcp:IP:PORT`);
    /// with `nbd` (`IP:PORT`) its disks wait there for a block
    /// migration's mirror (export names: QEMU's drive ids).
    Incoming {
        uri: String,
        #[serde(default)]
        nbd: Option<String>,
    },
    /// The console log, base64.
    Console {
        log_b64: String,
    },
    Failed {
        fault: DriverFault,
    },
}

/// A question (or a report) from an agent's QEMU driver about the guests
/// it runs; the control plane answers from the database with an
/// [`EnvReply`]. The caller is the host its certificate names.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "ask")]
pub enum EnvRequest {
    /// An image's record (its bytes come from [`IMAGE_FILE`]).
    Image { id: String },
    /// What a guest is told about itself (metadata service, config drive).
    GuestFacts {
        #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
        instance: Box<Instance>,
    },
    /// One server's record.
    Instance { uuid: String },
    /// The servers placed on the caller's host.
    Instances,
    /// A password the guest posted to its metadata service (base64 of
    /// the raw body).
    PostPassword { uuid: String, body_b64: String },
    /// A network with its subnets.
    Network { network_id: String },
    /// The DHCP port of a network on one of the caller's data paths.
    DhcpPort {
        network_id: String,
        datapath: String,
    },
    /// The server holding `ip` on `network_id`.
    InstanceAt { network_id: String, ip: String },
    /// Ports' addresses and security-group rules.
    PortSecurity { port_ids: Vec<String> },
    /// Every router that is up.
    Routers,
    /// Whether agent `to` may read the files of guest `uuid` from the
    /// caller ([`INSTANCE_FILE`]): it is the destination of a move of
    /// that server from the caller's host still in progress.
    MayCopy { uuid: String, to: String },
    /// Something the driver saw on its own (a guest that powered off);
    /// only about the caller's own host.
    Report {
        #[schemars(with = "serde_json::Value")]
        event: GuestEvent,
    },
}

/// The answer to an [`EnvRequest`] (documents of the compute service's
/// own types: see crates/rova/src/virt/env.rs).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "answer")]
pub enum EnvReply {
    Image {
        #[schemars(with = "Option<serde_json::Value>")]
        image: Option<ImageInfo>,
    },
    GuestFacts {
        #[schemars(with = "serde_json::Value")]
        facts: Box<GuestFacts>,
    },
    Instance {
        #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
        instance: Option<Box<Instance>>,
    },
    Instances {
        #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
        instances: Vec<Instance>,
    },
    Password {
        #[schemars(with = "serde_json::Value")]
        outcome: PasswordPost,
    },
    Network {
        #[schemars(with = "Option<serde_json::Value>")]
        network: Option<NetFact>,
    },
    DhcpPort {
        #[schemars(with = "serde_json::Value")]
        port: DhcpPort,
    },
    InstanceAt {
        uuid: Option<String>,
    },
    PortSecurity {
        #[schemars(with = "Vec<serde_json::Value>")]
        ports: Vec<PortSecurity>,
    },
    Routers {
        #[schemars(with = "Vec<serde_json::Value>")]
        routers: Vec<RouterPlan>,
    },
    Reported {
        changed: bool,
    },
    MayCopy {
        allowed: bool,
    },
    /// The question could not be answered (e.g. a DHCP port that could
    /// not be made), with why.
    Failed {
        message: String,
    },
}
