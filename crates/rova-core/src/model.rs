//! The instance record as the compute service stores it: Nova's column
//! names, states and timestamps. Views (JSON per microversion) are built
//! from this elsewhere; filters and sorting read it here.

use crate::states::{PowerState, TaskState, VmState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The flavor as embedded in the instance at build (and resize) time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FlavorSnapshot {
    /// `flavorid`, the public id.
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram: u64,
    pub disk: u64,
    pub ephemeral: u64,
    pub swap: u64,
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
}

/// One fixed address on a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedIp {
    pub address: String,
    /// 4 or 6.
    pub version: u8,
    #[serde(default)]
    pub subnet_id: String,
    /// Floating addresses pointing at this one (Nova's network info
    /// cache): filled from the network service when the server is shown,
    /// never stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floating_ips: Vec<String>,
}

/// One virtual interface: a port on a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vif {
    pub port_id: String,
    pub network_id: String,
    /// The network's name: the key in `addresses`.
    pub network_label: String,
    pub mac: String,
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub tag: Option<String>,
    /// True when Rova created the port (and deletes it with the server).
    #[serde(default)]
    pub created_by_nova: bool,
}

/// An instance fault (shown when status is ERROR or DELETED).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceFault {
    pub code: u16,
    pub message: String,
    #[serde(default)]
    pub details: Option<String>,
    pub created: DateTime<Utc>,
}

/// One block device mapping as accepted at create (v2 form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BlockDeviceMapping {
    pub source_type: Option<String>,
    pub destination_type: Option<String>,
    pub uuid: Option<String>,
    pub boot_index: Option<i64>,
    pub volume_size: Option<u64>,
    pub device_name: Option<String>,
    pub delete_on_termination: bool,
    pub guest_format: Option<String>,
    pub device_type: Option<String>,
    pub disk_bus: Option<String>,
    pub tag: Option<String>,
    pub volume_type: Option<String>,
    pub no_device: bool,
    /// The block storage attachment of an attached volume.
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// This mapping's own id (Nova's `bdm.uuid`), for a volume attached
    /// after the build.
    #[serde(default)]
    pub bdm_uuid: Option<String>,
    /// How the hypervisor reaches an attached volume (Nova's
    /// `connection_info`): `driver_volume_type` and its `data`, e.g.
    /// `{"driver_volume_type": "file", "data": {"path": …}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<serde_json::Value>,
}

impl BlockDeviceMapping {
    /// The file an attached volume is, when its `connection_info` says so.
    pub fn volume_file(&self) -> Option<&str> {
        let ci = self.connection_info.as_ref()?;
        if ci.get("driver_volume_type")?.as_str()? != "file" {
            return None;
        }
        ci.get("data")?.get("path")?.as_str()
    }

    /// An attached volume (a volume destination with an attachment).
    pub fn is_attached_volume(&self) -> bool {
        self.destination_type.as_deref() == Some("volume") && self.attachment_id.is_some()
    }
}

/// An injected file (personality).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectedFile {
    pub path: String,
    /// base64 as sent by the client.
    pub contents: String,
}

/// The stored instance. Field names follow Nova's `instances` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Sequential internal id (drives `instance-%08x`).
    pub id: i64,
    pub uuid: String,
    pub display_name: String,
    pub display_description: Option<String>,
    pub project_id: String,
    pub user_id: String,
    /// Image uuid, or "" when booted from volume.
    pub image_ref: String,
    pub flavor: FlavorSnapshot,
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    pub power_state: PowerState,
    pub progress: u8,
    pub host: Option<String>,
    pub node: Option<String>,
    /// The AZ the instance landed in (or was requested in).
    pub availability_zone: Option<String>,
    /// The AZ requested by the user (the RequestSpec's), if any.
    #[serde(default)]
    pub pinned_availability_zone: Option<String>,
    pub hostname: String,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    /// base64 text as sent.
    pub user_data: Option<String>,
    pub config_drive: bool,
    pub access_ip_v4: Option<String>,
    pub access_ip_v6: Option<String>,
    pub auto_disk_config: bool,
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub system_metadata: BTreeMap<String, String>,
    /// The server's tags. The store keeps them as rows of their own, not
    /// in the server's document: filled when the server is read for a
    /// view, a tag query or a tag filter.
    #[serde(skip)]
    pub tags: Vec<String>,
    /// `owner` or `admin` when locked.
    pub locked_by: Option<String>,
    pub locked_reason: Option<String>,
    pub launch_index: u32,
    pub reservation_id: String,
    pub kernel_id: String,
    pub ramdisk_id: String,
    pub root_device_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub vifs: Vec<Vif>,
    pub security_groups: Vec<String>,
    pub fault: Option<InstanceFault>,
    /// `os:scheduler_hints` as given (values kept as JSON).
    pub scheduler_hints: BTreeMap<String, Value>,
    pub block_device_mapping: Vec<BlockDeviceMapping>,
    pub personality: Vec<InjectedFile>,
    /// The admin password of the operation in flight (create, rebuild,
    /// evacuate, rescue, changePassword), for the driver and the config
    /// drive. Never stored (Nova keeps no copy): it is skipped when the
    /// record is serialised and dropped once the operation ends.
    #[serde(default, skip_serializing)]
    pub admin_pass: Option<String>,
    #[serde(default)]
    pub trusted_image_certificates: Option<Vec<String>>,
    #[serde(default)]
    pub server_groups: Vec<String>,
    /// Image properties captured at build (shown at 2.98+).
    #[serde(default)]
    pub image_properties: BTreeMap<String, String>,
    /// Optimistic-concurrency generation; bumped on every write.
    #[serde(default)]
    pub generation: u64,
    /// The process (its store's lease-owner name) running the operation in
    /// flight on this server — a build, a delete, an action with a task
    /// state — or None when none is. Of several processes sharing a
    /// database, only this one carries the operation on; when it dies,
    /// another takes the server over (`rova::compute::owners`). Internal:
    /// never shown by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_owner: Option<String>,
    /// What quota counts for the server while a resize that grows it is
    /// in flight or awaiting confirmation: the larger of the old and the
    /// new flavor's vCPUs and RAM, held from the write that admits the
    /// resize (checked against the project's limits in that transaction)
    /// until the resize is confirmed, reverted or fails. So a revert never
    /// overshoots, and two processes admitting resizes together cannot
    /// pass the limits together. Dropped by every write that leaves the
    /// server out of a resize ([`Instance::resizing`]). Internal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_hold: Option<ResizeHold>,
}

/// The resources quota counts for a server being resized
/// ([`Instance::resize_hold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeHold {
    pub vcpus: u32,
    pub ram: u64,
}

impl Instance {
    pub fn locked(&self) -> bool {
        self.locked_by.is_some()
    }
    pub fn status(&self) -> &'static str {
        crate::states::status(self.vm_state, self.task_state, self.deleted)
    }
    /// Whether a resize or cold migration is in flight on the server or
    /// awaits confirmation.
    pub fn resizing(&self) -> bool {
        use crate::states::TaskState as T;
        self.vm_state == VmState::Resized
            || matches!(
                self.task_state,
                Some(
                    T::ResizePrep
                        | T::ResizeMigrating
                        | T::ResizeMigrated
                        | T::ResizeFinish
                        | T::ResizeReverting
                        | T::ResizeConfirming
                )
            )
    }
    /// The (vCPUs, RAM) quota counts for the server.
    pub fn quota_resources(&self) -> (i64, i64) {
        match self.resize_hold {
            Some(h) => (i64::from(h.vcpus), h.ram as i64),
            None => (i64::from(self.flavor.vcpus), self.flavor.ram as i64),
        }
    }
    /// Booted from volume: no image, or a root mapping (boot index 0)
    /// that is a volume (a server booted from a volume-backed server's
    /// image keeps that image's id), as Nova's `is_volume_backed_instance`.
    pub fn is_volume_backed(&self) -> bool {
        self.image_ref.is_empty() || self.root_volume_mapping().is_some()
    }
    /// The mapping of the volume the server boots from (boot index 0,
    /// destination `volume`), if it has one.
    pub fn root_volume_mapping(&self) -> Option<&BlockDeviceMapping> {
        self.block_device_mapping
            .iter()
            .find(|b| b.boot_index == Some(0) && b.destination_type.as_deref() == Some("volume"))
    }
    /// `OS-EXT-SRV-ATTR:instance_name` (`instance-%08x`).
    pub fn instance_name(&self) -> String {
        format!("instance-{:08x}", self.id)
    }
}

/// Nova's time format for `created`/`updated`: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_z(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Naive ISO with microseconds (launched_at, instance actions).
pub fn iso_micro(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
