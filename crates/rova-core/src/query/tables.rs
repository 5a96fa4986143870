//! The parameter tables of `GET /servers`: each filter's value kind and
//! microversion range, the non-admin allow-list, joined-table names, and
//! the valid and ignored sort keys.

use super::*;

/// How the schema checks a parameter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Regex,
    DateTime,
    Limit,
    SortKey,
}

/// Names known to the 2.1 query schema (besides the joined-table names,
/// the paging names and `^_`), with their value check.
const BASE_PARAMS: &[(&str, Kind)] = &[
    ("user_id", Kind::Text),
    ("project_id", Kind::Text),
    ("tenant_id", Kind::Text),
    ("launch_index", Kind::Text),
    ("image_ref", Kind::Text),
    ("image", Kind::Text),
    ("kernel_id", Kind::Regex),
    ("ramdisk_id", Kind::Regex),
    ("hostname", Kind::Regex),
    ("key_name", Kind::Regex),
    ("power_state", Kind::Regex),
    ("vm_state", Kind::Text),
    ("task_state", Kind::Text),
    ("host", Kind::Text),
    ("node", Kind::Regex),
    ("flavor", Kind::Regex),
    ("reservation_id", Kind::Regex),
    ("launched_at", Kind::Regex),
    ("terminated_at", Kind::Regex),
    ("availability_zone", Kind::Regex),
    ("name", Kind::Regex),
    ("display_name", Kind::Regex),
    ("description", Kind::Regex),
    ("display_description", Kind::Regex),
    ("locked_by", Kind::Regex),
    ("uuid", Kind::Text),
    ("root_device_name", Kind::Regex),
    ("config_drive", Kind::Regex),
    ("access_ip_v4", Kind::Regex),
    ("access_ip_v6", Kind::Regex),
    ("auto_disk_config", Kind::Regex),
    ("progress", Kind::Regex),
    ("sort_key", Kind::SortKey),
    ("sort_dir", Kind::Text),
    ("all_tenants", Kind::Text),
    ("soft_deleted", Kind::Text),
    ("deleted", Kind::Text),
    ("status", Kind::Text),
    ("changes-since", Kind::DateTime),
    ("ip", Kind::Regex),
    ("ip6", Kind::Regex),
    ("created_at", Kind::Regex),
    ("limit", Kind::Limit),
    ("marker", Kind::Text),
];

/// Names that would need a joined table: 400 for admins.
pub(super) const JOINED_TABLE_PARAMS: &[&str] = &[
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
];

pub(super) const TAG_FILTERS: &[&str] = &["tags", "tags-any", "not-tags", "not-tags-any"];

/// Removed from an admin's filters (handled separately).
pub(super) const PAGING_SORTING: &[&str] = &["sort_key", "sort_dir", "limit", "marker"];

/// Sort keys that sort (`locked` joins them at 2.73).
pub(super) const VALID_SORT_KEYS: &[&str] = &[
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
];

/// Sort keys accepted but ignored below 2.75 (`locked` only below 2.73).
pub(super) const IGNORED_SORT_KEYS: &[&str] = &[
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
];

pub(super) const TRUE_STRINGS: &[&str] = &["1", "t", "true", "on", "y", "yes"];
pub(super) const FALSE_STRINGS: &[&str] = &["0", "f", "false", "off", "n", "no"];

/// The schema's value check for `name` at `v`, or `None` when the name is
/// not in that version's schema.
pub(super) fn param_kind(name: &str, v: Microversion) -> Option<Kind> {
    if let Some((_, k)) = BASE_PARAMS.iter().find(|(n, _)| *n == name) {
        return Some(*k);
    }
    if JOINED_TABLE_PARAMS.contains(&name) {
        return Some(Kind::Text);
    }
    if TAG_FILTERS.contains(&name) && v.at_least(26) {
        return Some(Kind::Regex);
    }
    if name == "changes-before" && v.at_least(66) {
        return Some(Kind::DateTime);
    }
    if name == "locked" && v.at_least(73) {
        return Some(Kind::Text);
    }
    if name.starts_with('_') {
        return Some(Kind::Text);
    }
    None
}

/// The non-admin allow-list at `v`.
pub(super) fn non_admin_allowed(name: &str, v: Microversion) -> bool {
    const BASE: &[&str] = &[
        "reservation_id",
        "name",
        "status",
        "image",
        "flavor",
        "ip",
        "changes-since",
        "all_tenants",
    ];
    const V283: &[&str] = &[
        "availability_zone",
        "config_drive",
        "key_name",
        "created_at",
        "launched_at",
        "terminated_at",
        "power_state",
        "task_state",
        "vm_state",
        "progress",
        "user_id",
    ];
    BASE.contains(&name)
        || (name == "ip6" && v.at_least(5))
        || (TAG_FILTERS.contains(&name) && v.at_least(26))
        || (name == "changes-before" && v.at_least(66))
        || (name == "locked" && v.at_least(73))
        || (V283.contains(&name) && v.at_least(83))
        || (name == "hostname" && v.at_least(90))
}

/// The `sort_key` enum of the schema at `v`.
pub(super) fn sort_key_enum(v: Microversion) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    if v.at_least(73) {
        keys.push("locked");
    }
    keys.extend_from_slice(VALID_SORT_KEYS);
    if !v.at_least(75) {
        keys.extend(ignored_sort_keys(v));
    }
    keys
}

/// Sort keys silently dropped at `v` (only reachable below 2.75).
pub(super) fn ignored_sort_keys(v: Microversion) -> impl Iterator<Item = &'static str> {
    let with_locked = !v.at_least(73);
    IGNORED_SORT_KEYS
        .iter()
        .copied()
        .filter(move |k| with_locked || *k != "locked")
}
