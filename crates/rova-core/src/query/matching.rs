//! The filter conditions a [`ListQuery`] holds (visibility, exact and
//! regex column matches, IP filters) and how each matches an instance.

use super::*;

/// Which deleted / soft-deleted rows are visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Visibility {
    /// No `deleted` filter (changes-since/before given): everything.
    All,
    /// `deleted=false`: live rows, soft-deleted ones only if asked.
    Live { include_soft: bool },
    /// `deleted=true`: hard-deleted rows, plus soft-deleted ones if asked.
    Deleted { include_soft: bool },
}

impl Visibility {
    pub(super) fn matches(self, inst: &Instance) -> bool {
        let soft = inst.vm_state == VmState::SoftDeleted;
        match self {
            Visibility::All => true,
            Visibility::Live { include_soft } => !inst.deleted && (include_soft || !soft),
            Visibility::Deleted { include_soft } => inst.deleted || (include_soft && soft),
        }
    }
}

/// Columns compared with `=` / `IN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExactCol {
    ProjectId,
    UserId,
    ImageRef,
    Uuid,
    Host,
    /// `instance_type_id`: the flavor the instance has now.
    Flavor,
    VmState,
    TaskState,
}

impl ExactCol {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "project_id" => ExactCol::ProjectId,
            "user_id" => ExactCol::UserId,
            "image_ref" => ExactCol::ImageRef,
            "uuid" => ExactCol::Uuid,
            "host" => ExactCol::Host,
            "instance_type_id" => ExactCol::Flavor,
            "vm_state" => ExactCol::VmState,
            "task_state" => ExactCol::TaskState,
            _ => return None,
        })
    }
    fn value(self, inst: &Instance) -> Option<&str> {
        match self {
            ExactCol::ProjectId => Some(&inst.project_id),
            ExactCol::UserId => Some(&inst.user_id),
            ExactCol::ImageRef => Some(&inst.image_ref),
            ExactCol::Uuid => Some(&inst.uuid),
            ExactCol::Host => inst.host.as_deref(),
            ExactCol::Flavor => Some(&inst.flavor.id),
            ExactCol::VmState => Some(inst.vm_state.as_str()),
            ExactCol::TaskState => inst.task_state.map(|t| t.as_str()),
        }
    }
}

/// Columns matched with an unanchored regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RegexCol {
    DisplayName,
    DisplayDescription,
    Hostname,
    Node,
    KeyName,
    ReservationId,
    AvailabilityZone,
    ConfigDrive,
    LaunchedAt,
    TerminatedAt,
    CreatedAt,
    PowerState,
    Progress,
    KernelId,
    RamdiskId,
    RootDeviceName,
    AccessIpV4,
    AccessIpV6,
    AutoDiskConfig,
    LaunchIndex,
    LockedBy,
}

impl RegexCol {
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "display_name" => RegexCol::DisplayName,
            "display_description" => RegexCol::DisplayDescription,
            "hostname" => RegexCol::Hostname,
            "node" => RegexCol::Node,
            "key_name" => RegexCol::KeyName,
            "reservation_id" => RegexCol::ReservationId,
            "availability_zone" => RegexCol::AvailabilityZone,
            "config_drive" => RegexCol::ConfigDrive,
            "launched_at" => RegexCol::LaunchedAt,
            "terminated_at" => RegexCol::TerminatedAt,
            "created_at" => RegexCol::CreatedAt,
            "power_state" => RegexCol::PowerState,
            "progress" => RegexCol::Progress,
            "kernel_id" => RegexCol::KernelId,
            "ramdisk_id" => RegexCol::RamdiskId,
            "root_device_name" => RegexCol::RootDeviceName,
            "access_ip_v4" => RegexCol::AccessIpV4,
            "access_ip_v6" => RegexCol::AccessIpV6,
            "auto_disk_config" => RegexCol::AutoDiskConfig,
            "launch_index" => RegexCol::LaunchIndex,
            "locked_by" => RegexCol::LockedBy,
            _ => return None,
        })
    }
    /// The column as text, `None` for NULL.
    fn text(self, inst: &Instance) -> Option<String> {
        match self {
            RegexCol::DisplayName => Some(inst.display_name.clone()),
            RegexCol::DisplayDescription => inst.display_description.clone(),
            RegexCol::Hostname => Some(inst.hostname.clone()),
            RegexCol::Node => inst.node.clone(),
            RegexCol::KeyName => inst.key_name.clone(),
            RegexCol::ReservationId => Some(inst.reservation_id.clone()),
            RegexCol::AvailabilityZone => inst.availability_zone.clone(),
            RegexCol::ConfigDrive => Some(if inst.config_drive { "True" } else { "" }.to_string()),
            RegexCol::LaunchedAt => inst.launched_at.as_ref().map(db_time),
            RegexCol::TerminatedAt => inst.terminated_at.as_ref().map(db_time),
            RegexCol::CreatedAt => Some(db_time(&inst.created_at)),
            RegexCol::PowerState => Some(inst.power_state.code().to_string()),
            RegexCol::Progress => Some(inst.progress.to_string()),
            RegexCol::KernelId => Some(inst.kernel_id.clone()),
            RegexCol::RamdiskId => Some(inst.ramdisk_id.clone()),
            RegexCol::RootDeviceName => inst.root_device_name.clone(),
            RegexCol::AccessIpV4 => inst.access_ip_v4.clone(),
            RegexCol::AccessIpV6 => inst.access_ip_v6.clone(),
            RegexCol::AutoDiskConfig => {
                Some(if inst.auto_disk_config { "1" } else { "0" }.to_string())
            }
            RegexCol::LaunchIndex => Some(inst.launch_index.to_string()),
            RegexCol::LockedBy => inst.locked_by.clone(),
        }
    }
}

/// One filter condition; all must hold.
#[derive(Debug, Clone)]
pub(super) enum Cond {
    /// The value is one of these (never matches NULL).
    Exact(ExactCol, Vec<String>),
    Locked(bool),
    /// `None`: the pattern did not compile, so nothing matches.
    Regex(RegexCol, Option<Regex>),
    ChangesSince(DateTime<Utc>),
    ChangesBefore(DateTime<Utc>),
    /// Has every tag.
    TagsAll(Vec<String>),
    /// Has at least one tag.
    TagsAny(Vec<String>),
    /// Lacks at least one tag.
    NotTagsAll(Vec<String>),
    /// Has none of the tags.
    NotTagsAny(Vec<String>),
    /// Matches nothing (an empty `IN` list).
    Never,
}

impl Cond {
    /// Whether the condition reads the row's tags.
    pub(super) fn on_tags(&self) -> bool {
        matches!(
            self,
            Cond::TagsAll(_) | Cond::TagsAny(_) | Cond::NotTagsAll(_) | Cond::NotTagsAny(_)
        )
    }

    pub(super) fn matches(&self, inst: &Instance) -> bool {
        let has = |t: &String| inst.tags.contains(t);
        match self {
            Cond::Exact(col, values) => col
                .value(inst)
                .is_some_and(|v| values.iter().any(|w| w == v)),
            Cond::Locked(want) => inst.locked() == *want,
            Cond::Regex(col, re) => match (re, col.text(inst)) {
                (Some(re), Some(text)) => re.is_match(&text),
                _ => false,
            },
            Cond::ChangesSince(t) => inst.updated_at >= *t,
            Cond::ChangesBefore(t) => inst.updated_at <= *t,
            Cond::TagsAll(tags) => tags.iter().all(has),
            Cond::TagsAny(tags) => tags.iter().any(has),
            Cond::NotTagsAll(tags) => !tags.iter().all(has),
            Cond::NotTagsAny(tags) => !tags.iter().any(has),
            Cond::Never => false,
        }
    }
}

/// `ip` / `ip6`: start-anchored regexes over fixed IPs of each version.
#[derive(Debug, Clone)]
pub(super) struct IpFilter {
    pub(super) v4: Option<Regex>,
    pub(super) v6: Option<Regex>,
}

impl IpFilter {
    pub(super) fn matches(&self, inst: &Instance) -> bool {
        inst.vifs.iter().flat_map(|v| v.fixed_ips.iter()).any(|ip| {
            if ip.address.is_empty() {
                return false;
            }
            let re = match ip.version {
                4 => self.v4.as_ref(),
                6 => self.v6.as_ref(),
                _ => None,
            };
            re.is_some_and(|re| re.is_match(&ip.address))
        })
    }
}

pub(super) fn anchored(pattern: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{pattern})")).ok()
}
