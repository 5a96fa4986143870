//! Sort columns: the sort-key table and each column's value and ordering
//! (NULLs first ascending).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SortCol {
    AccessIpV4,
    AccessIpV6,
    AutoDiskConfig,
    AvailabilityZone,
    ConfigDrive,
    CreatedAt,
    DisplayDescription,
    DisplayName,
    Host,
    Hostname,
    ImageRef,
    InstanceTypeId,
    KernelId,
    KeyName,
    LaunchIndex,
    LaunchedAt,
    Locked,
    LockedBy,
    Node,
    PowerState,
    Progress,
    ProjectId,
    RamdiskId,
    RootDeviceName,
    TaskState,
    TerminatedAt,
    UpdatedAt,
    UserId,
    Uuid,
    VmState,
    /// The internal id (Nova's tiebreaker).
    Id,
}

const SORT_COLS: &[(&str, SortCol)] = &[
    ("access_ip_v4", SortCol::AccessIpV4),
    ("access_ip_v6", SortCol::AccessIpV6),
    ("auto_disk_config", SortCol::AutoDiskConfig),
    ("availability_zone", SortCol::AvailabilityZone),
    ("config_drive", SortCol::ConfigDrive),
    ("created_at", SortCol::CreatedAt),
    ("display_description", SortCol::DisplayDescription),
    ("display_name", SortCol::DisplayName),
    ("host", SortCol::Host),
    ("hostname", SortCol::Hostname),
    ("image_ref", SortCol::ImageRef),
    ("instance_type_id", SortCol::InstanceTypeId),
    ("kernel_id", SortCol::KernelId),
    ("key_name", SortCol::KeyName),
    ("launch_index", SortCol::LaunchIndex),
    ("launched_at", SortCol::LaunchedAt),
    ("locked", SortCol::Locked),
    ("locked_by", SortCol::LockedBy),
    ("node", SortCol::Node),
    ("power_state", SortCol::PowerState),
    ("progress", SortCol::Progress),
    ("project_id", SortCol::ProjectId),
    ("ramdisk_id", SortCol::RamdiskId),
    ("root_device_name", SortCol::RootDeviceName),
    ("task_state", SortCol::TaskState),
    ("terminated_at", SortCol::TerminatedAt),
    ("updated_at", SortCol::UpdatedAt),
    ("user_id", SortCol::UserId),
    ("uuid", SortCol::Uuid),
    ("vm_state", SortCol::VmState),
    ("id", SortCol::Id),
];

/// A sortable column value; `None` (NULL) sorts before any value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SortVal<'a> {
    Int(i64),
    Text(&'a str),
    Time(DateTime<Utc>),
}

impl SortCol {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        SORT_COLS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
    pub(super) fn name(self) -> &'static str {
        SORT_COLS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |(n, _)| n)
    }
    pub(super) fn value(self, inst: &Instance) -> Option<SortVal<'_>> {
        use SortVal::{Int, Text, Time};
        fn text(s: &Option<String>) -> Option<SortVal<'_>> {
            s.as_deref().map(SortVal::Text)
        }
        match self {
            SortCol::AccessIpV4 => text(&inst.access_ip_v4),
            SortCol::AccessIpV6 => text(&inst.access_ip_v6),
            SortCol::AutoDiskConfig => Some(Int(i64::from(inst.auto_disk_config))),
            SortCol::AvailabilityZone => text(&inst.availability_zone),
            SortCol::ConfigDrive => Some(Text(if inst.config_drive { "True" } else { "" })),
            SortCol::CreatedAt => Some(Time(inst.created_at)),
            SortCol::DisplayDescription => text(&inst.display_description),
            SortCol::DisplayName => Some(Text(&inst.display_name)),
            SortCol::Host => text(&inst.host),
            SortCol::Hostname => Some(Text(&inst.hostname)),
            SortCol::ImageRef => Some(Text(&inst.image_ref)),
            SortCol::InstanceTypeId => Some(Text(&inst.flavor.id)),
            SortCol::KernelId => Some(Text(&inst.kernel_id)),
            SortCol::KeyName => text(&inst.key_name),
            SortCol::LaunchIndex => Some(Int(i64::from(inst.launch_index))),
            SortCol::LaunchedAt => inst.launched_at.map(Time),
            SortCol::Locked => Some(Int(i64::from(inst.locked()))),
            SortCol::LockedBy => text(&inst.locked_by),
            SortCol::Node => text(&inst.node),
            SortCol::PowerState => Some(Int(i64::from(inst.power_state.code()))),
            SortCol::Progress => Some(Int(i64::from(inst.progress))),
            SortCol::ProjectId => Some(Text(&inst.project_id)),
            SortCol::RamdiskId => Some(Text(&inst.ramdisk_id)),
            SortCol::RootDeviceName => text(&inst.root_device_name),
            SortCol::TaskState => inst.task_state.map(|t| Text(t.as_str())),
            SortCol::TerminatedAt => inst.terminated_at.map(Time),
            SortCol::UpdatedAt => Some(Time(inst.updated_at)),
            SortCol::UserId => Some(Text(&inst.user_id)),
            SortCol::Uuid => Some(Text(&inst.uuid)),
            SortCol::VmState => Some(Text(inst.vm_state.as_str())),
            SortCol::Id => Some(Int(inst.id)),
        }
    }
}
