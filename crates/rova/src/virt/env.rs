//! What the QEMU driver and its metadata service need from the rest of the
//! service, and nothing more: [`GuestEnv`]. The driver resolves images to
//! local files, gathers the facts a guest is told about itself, reads the
//! instance record the metadata service answers for, records a password
//! the guest posts, stores a disk it exported into an image, reads the
//! (virtual) time and reports what it observes on its own (a guest that
//! powered off) — all through this trait, never through the API or the
//! store. The compute service implements it (`crate::compute::guest_env`).
//! Every method that fetches or stores something returns a future
//! ([`BoxFut`]), so an implementation may do it over the network; the
//! plain data it exchanges is serde-serialisable for the same reason.

use crate::compute::driver::BoxFut;
use chrono::{DateTime, Utc};
use rova_core::metadata::{GuestFacts, NetFact};
use rova_core::model::Instance;
use rova_core::states::VmState;
use std::path::PathBuf;
use std::sync::Arc;

/// The service behind the driver is gone (it is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the compute service is shutting down")
    }
}

/// An image as the driver sees it: where its bytes are, whether it may be
/// booted from, its declared disk format and its boot hints (the
/// AMI-style `kernel_id` / `ramdisk_id` / `os_command_line` properties;
/// empty ones are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ImageInfo {
    /// The image's bytes in the image service (present when active).
    pub file: PathBuf,
    /// Status `active`: its bytes may be used.
    pub active: bool,
    pub disk_format: Option<String>,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
    pub command_line: Option<String>,
}

/// What became of a password a guest posted to its metadata service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PasswordPost {
    /// Stored on the instance (200).
    Stored,
    /// A password is already stored (409).
    Conflict,
    /// The body was refused (400 with this message).
    BadRequest(String),
    /// The instance is gone (404).
    NotFound,
    /// The service is shutting down (503).
    Unavailable,
    /// Storing failed (500); the reason is logged.
    Failed(String),
}

/// Something the driver observed on its own, not as part of an operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GuestEvent {
    /// The guest's process is gone while the server was `was` on `host`
    /// (it powered itself off): the server becomes SHUTOFF unless its
    /// record changed meanwhile.
    PoweredOff {
        uuid: String,
        host: String,
        was: VmState,
        seen_at: DateTime<Utc>,
    },
}

/// The DHCP port of a network on one data path (Neutron's
/// `network:dhcp` port): the address the bridge carries in each subnet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DhcpPort {
    pub port_id: String,
    pub mac: String,
    /// (subnet id, address).
    pub fixed_ips: Vec<(String, String)>,
}

/// One security-group rule of a port, as the data path enforces it: the
/// remote side resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterRule {
    /// Traffic to the guest (`ingress`) or from it (`egress`).
    pub ingress: bool,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol number; `None` for any.
    pub protocol: Option<u8>,
    pub port_min: Option<u32>,
    pub port_max: Option<u32>,
    /// The other side: `None` is anywhere; otherwise CIDRs or addresses
    /// (a remote group's members), possibly none (then the rule matches
    /// nothing).
    pub remote: Option<Vec<String>>,
}

/// What the data path enforces on one port: its addresses (anti-spoofing)
/// and the rules of its security groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortSecurity {
    pub port_id: String,
    pub mac: String,
    pub fixed_ips: Vec<String>,
    pub rules: Vec<FilterRule>,
}

/// One leg of a router: its port on a network, the address it holds
/// there (with the subnet's prefix length) and, for the gateway, the next
/// hop out (the external subnet's gateway).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouterLeg {
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    /// e.g. `10.0.0.1/16`.
    pub cidr: String,
    pub next_hop: Option<String>,
}

/// A router as the data path builds it: its gateway, its interfaces,
/// whether it masquerades its subnets, and its floating IPs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouterPlan {
    pub id: String,
    pub gateway: Option<RouterLeg>,
    pub interfaces: Vec<RouterLeg>,
    pub snat: bool,
    /// (floating address, fixed address) of each associated floating IP.
    pub floating: Vec<(String, String)>,
}

/// The driver's narrow view of the service it runs under. Only
/// [`GuestEnv::now`] answers at once; everything else is awaited.
pub trait GuestEnv: Send + Sync {
    /// The image `id`, `Ok(None)` when there is no such image.
    fn image<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, Unavailable>>;

    /// The facts the instance record lacks, for the metadata service and
    /// the config drive: DHCP domain, networks and subnets behind its
    /// VIFs, keypair type, today's date and fresh random seed bytes.
    fn guest_facts<'a>(&'a self, inst: &'a Instance)
        -> BoxFut<'a, Result<GuestFacts, Unavailable>>;

    /// The instance as it is now; deleted or missing ones are `Ok(None)`.
    fn instance<'a>(
        &'a self,
        uuid: &'a str,
    ) -> BoxFut<'a, Result<Option<Arc<Instance>>, Unavailable>>;

    /// Every instance record that is not deleted (empty when the service
    /// is gone).
    fn instances(&self) -> BoxFut<'_, Vec<Arc<Instance>>>;

    /// Records a password the guest POSTed (the raw body), checked and
    /// stored atomically against the current record, so two racing posts
    /// cannot both store.
    fn post_password(&self, uuid: &str, body: Vec<u8>) -> BoxFut<'_, PasswordPost>;

    /// Stores an exported disk (standalone qcow2 bytes) as the data of
    /// image `image_id`, which becomes active; `virtual_size` when known.
    fn save_image(
        &self,
        image_id: &str,
        bytes: Vec<u8>,
        virtual_size: Option<u64>,
    ) -> BoxFut<'_, Result<(), String>>;

    /// Network `network_id` with its subnets, `Ok(None)` when it is gone.
    fn network<'a>(
        &'a self,
        network_id: &'a str,
    ) -> BoxFut<'a, Result<Option<NetFact>, Unavailable>>;

    /// The DHCP port of `network_id` on the data path named `datapath`,
    /// made (with an address in each subnet) when it does not exist yet.
    fn dhcp_port<'a>(
        &'a self,
        network_id: &'a str,
        datapath: &'a str,
    ) -> BoxFut<'a, Result<DhcpPort, String>>;

    /// The instance whose port on `network_id` holds address `ip`.
    fn instance_at<'a>(
        &'a self,
        network_id: &'a str,
        ip: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, Unavailable>>;

    /// The addresses and security-group rules of ports `port_ids` (the
    /// ones that still exist).
    fn port_security<'a>(
        &'a self,
        port_ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<PortSecurity>, Unavailable>>;

    /// Every router that is up, with its legs and floating IPs.
    fn routers(&self) -> BoxFut<'_, Result<Vec<RouterPlan>, Unavailable>>;

    /// The service's current (possibly virtual) time.
    fn now(&self) -> DateTime<Utc>;

    /// Reports an observation; true when it changed the instance record.
    fn report(&self, event: GuestEvent) -> BoxFut<'_, bool>;
}
