//! Query semantics of `GET /servers` and `GET /servers/detail` (nova-facts
//! §c), as pure logic over [`Instance`]: validating and interpreting the raw
//! query pairs per microversion and caller role ([`parse_list_query`]),
//! filtering ([`ListQuery::matches`]), ordering ([`ListQuery::sort`]),
//! marker/limit paging ([`ListQuery::paginate`]) and the query string of the
//! `servers_links` "next" href ([`ListQuery::next_query`]). No I/O: the
//! caller hands in the rows and a uuid lookup.
//!
//! The order of checks follows Nova's, so when a request has several faults
//! the one Nova reports first is the one returned:
//!
//! 1. query schema (per microversion): value formats (`regex`, `date-time`,
//!    `limit`, the `sort_key` enum), then unknown names (dropped below 2.75,
//!    400 from 2.75);
//! 2. the non-admin allow-list (other names are silently dropped);
//! 3. admin-only 400 for `_`-prefixed and joined-table names;
//! 4. `status` (400 at 2.38+, an always-empty result below);
//! 5. `changes-since` / `changes-before`; `deleted`; `status=DELETED` (403
//!    for non-admins); tags; `all_tenants` (400 on a bad value); `locked`;
//!    the `get_all_tenants` policy (403); tenancy;
//! 6. sort keys (ignored keys dropped, `host`/`node` 403 for non-admins),
//!    sort directions (400);
//! 7. at paging time: an unknown marker (400).
//!
//! Where Nova's behaviour depends on its database, these choices are made:
//!
//! * Regex filters are unanchored searches with the `regex` crate,
//!   case-sensitive, `|` meaning alternation (SQLite/PostgreSQL behaviour;
//!   MySQL would be case-insensitive and escape `|`). A NULL column never
//!   matches. The text matched is what Nova's DB would hold: integers
//!   (`power_state` code, `progress`, `launch_index`) in decimal,
//!   `auto_disk_config` as `1`/`0`, `config_drive` as `True` or the empty
//!   string, and timestamps as MySQL `DATETIME` text `YYYY-MM-DD HH:MM:SS`
//!   (no fraction, no zone).
//! * A value that must be a regex (per the schema) and that the `regex`
//!   crate cannot compile (or that is empty) is rejected with Nova's schema
//!   400, so patterns valid only in Python's `re` (look-around,
//!   back-references) are refused. `launch_index` is not format-checked by
//!   Nova's schema; an uncompilable value there matches nothing.
//! * `ip` / `ip6` use the no-Neutron-extension path: a start-anchored regex
//!   over the fixed IPs of the right version; with both given a server
//!   matches if either does.
//! * `flavor` compares exactly with the embedded flavor's public id, so an
//!   unknown flavor yields an empty list. Sorting by `instance_type_id` sorts
//!   by that id as text.
//! * Sort tiebreakers are `created_at` then the internal `id` (as Nova),
//!   then `uuid` so the order is total. NULLs sort first ascending, last
//!   descending. Text compares by code point.
//! * `limit=0` returns an empty page before the marker is looked up, as
//!   Nova's DB layer does.
//! * Sort directions are validated even with `limit=0`.

use crate::error::Fault;
use crate::microversion::Microversion;
use crate::model::Instance;
use crate::states::{self, VmState};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use regex::Regex;
use std::cmp::Ordering;
use std::sync::OnceLock;

/// `[api]max_limit`'s default.
pub const DEFAULT_MAX_LIMIT: usize = 1000;

/// Who is asking, at which version, on which endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListContext {
    /// `context.is_admin` (admin role): lets every filter through.
    pub is_admin: bool,
    /// The caller's project; listing is scoped to it without `all_tenants`.
    pub project_id: String,
    /// The request's compute microversion.
    pub version: Microversion,
    /// `[api]max_limit` (normally [`DEFAULT_MAX_LIMIT`]).
    pub max_limit: usize,
    /// True for `/servers/detail`: only changes the policy rule named in the
    /// `all_tenants` 403.
    pub detail: bool,
}

/// A parsed, validated server-list query. Build it with
/// [`parse_list_query`].
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Nova answered `{"servers": []}` early (unknown status below 2.38).
    nothing: bool,
    visibility: Visibility,
    conds: Vec<Cond>,
    ip: Option<IpFilter>,
    all_tenants: bool,
    /// Full sort order including the tiebreakers; `true` = descending.
    sort: Vec<(SortCol, bool)>,
    /// Effective page size: `min(limit, max_limit)`.
    limit: usize,
    marker: Option<String>,
    /// The query pairs that survive the schema (what Nova's `req.params`
    /// holds), in request order, for the next link.
    link_params: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------
// Tables

/// How the schema checks a parameter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
const JOINED_TABLE_PARAMS: &[&str] = &[
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
];

const TAG_FILTERS: &[&str] = &["tags", "tags-any", "not-tags", "not-tags-any"];

/// Removed from an admin's filters (handled separately).
const PAGING_SORTING: &[&str] = &["sort_key", "sort_dir", "limit", "marker"];

/// Sort keys that sort (`locked` joins them at 2.73).
const VALID_SORT_KEYS: &[&str] = &[
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
const IGNORED_SORT_KEYS: &[&str] = &[
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

const TRUE_STRINGS: &[&str] = &["1", "t", "true", "on", "y", "yes"];
const FALSE_STRINGS: &[&str] = &["0", "f", "false", "off", "n", "no"];

/// The schema's value check for `name` at `v`, or `None` when the name is
/// not in that version's schema.
fn param_kind(name: &str, v: Microversion) -> Option<Kind> {
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
fn non_admin_allowed(name: &str, v: Microversion) -> bool {
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
fn sort_key_enum(v: Microversion) -> Vec<&'static str> {
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
fn ignored_sort_keys(v: Microversion) -> impl Iterator<Item = &'static str> {
    let with_locked = !v.at_least(73);
    IGNORED_SORT_KEYS
        .iter()
        .copied()
        .filter(move |k| with_locked || *k != "locked")
}

// ---------------------------------------------------------------------------
// Small helpers

/// Python's `repr()` of a string, as jsonschema quotes values.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn schema_error(name: &str, value: &str, detail: String) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for query parameters {name}. Value: {value}. {detail}"
    ))
}

/// The schema's check of one value.
fn validate_value(name: &str, value: &str, kind: Kind, v: Microversion) -> Result<(), Fault> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Regex => {
            if value.is_empty() || Regex::new(value).is_err() {
                Err(schema_error(
                    name,
                    value,
                    format!("{} is not a 'regex'", py_repr(value)),
                ))
            } else {
                Ok(())
            }
        }
        Kind::DateTime => match parse_iso8601(value) {
            Some(_) => Ok(()),
            None => Err(schema_error(
                name,
                value,
                format!("{} is not a 'date-time'", py_repr(value)),
            )),
        },
        Kind::Limit => {
            if !value.bytes().all(|b| b.is_ascii_digit()) {
                Err(schema_error(
                    name,
                    value,
                    format!("{} does not match '^[0-9]*$'", py_repr(value)),
                ))
            } else if value.is_empty() {
                Err(schema_error(
                    name,
                    value,
                    format!("{} should be non-empty", py_repr(value)),
                ))
            } else {
                Ok(())
            }
        }
        Kind::SortKey => {
            let allowed = sort_key_enum(v);
            if allowed.contains(&value) {
                Ok(())
            } else {
                let list: Vec<String> = allowed.iter().map(|k| py_repr(k)).collect();
                Err(schema_error(
                    name,
                    value,
                    format!("{} is not one of [{}]", py_repr(value), list.join(", ")),
                ))
            }
        }
    }
}

/// `oslo_utils.strutils.bool_from_string` without a default: `None` when
/// the value is not a recognised boolean.
fn parse_bool(s: &str) -> Option<bool> {
    let lowered = s.trim().to_lowercase();
    if TRUE_STRINGS.contains(&lowered.as_str()) {
        Some(true)
    } else if FALSE_STRINGS.contains(&lowered.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// The strict parse: an unrecognised value is Nova's `InvalidInput` (400).
fn strict_bool(s: &str) -> Result<bool, Fault> {
    parse_bool(s).ok_or_else(|| {
        let mut accepted: Vec<&str> = TRUE_STRINGS.iter().chain(FALSE_STRINGS).copied().collect();
        accepted.sort_unstable();
        let accepted: Vec<String> = accepted.iter().map(|a| format!("'{a}'")).collect();
        Fault::bad_request(format!(
            "Invalid input received: Unrecognized value '{s}', acceptable values are: {}",
            accepted.join(", ")
        ))
    })
}

fn iso8601_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        // year, then optionally a month (dashed or not), then optionally a
        // day (dashed or not) with an optional time and zone.
        Regex::new(concat!(
            r"^([0-9]{4})",
            r"(?:(?:-([0-9]{1,2})|([0-9]{2}))",
            r"(?:(?:-([0-9]{1,2})|([0-9]{2}))",
            r"(?:[ T]([0-9]{2})(?::?([0-9]{2}))?",
            r"(?::?([0-9]{1,2})(?:[.,]([0-9]+))?)?",
            r"(Z|([-+])([0-9]{2}):?([0-9]{2})?)?",
            r")?)?)?$"
        ))
        .ok()
    })
    .as_ref()
}

/// Parses an ISO 8601 date-time the way Nova's `date-time` format check and
/// `timeutils.parse_isotime` (the `iso8601` package) accept it: `YYYY`,
/// `YYYY-MM`, `YYYY-MM-DD`, `YYYYMMDD`, then optionally `T` or a space,
/// `HH[[:]MM[[:]SS[.fraction]]]` and `Z` / `±HH[[:]MM]`. No zone means UTC.
/// Returns `None` for anything else or an impossible date.
pub fn parse_iso8601(s: &str) -> Option<DateTime<Utc>> {
    let caps = iso8601_regex()?.captures(s)?;
    let num = |i: usize| -> Option<u32> { caps.get(i).and_then(|m| m.as_str().parse().ok()) };
    // A bare `YYYYMM` is not accepted.
    if caps.get(3).is_some() && caps.get(4).is_none() && caps.get(5).is_none() {
        return None;
    }
    let year: i32 = caps.get(1)?.as_str().parse().ok()?;
    if year < 1 {
        return None;
    }
    let month = num(2).or_else(|| num(3)).unwrap_or(1);
    let day = num(4).or_else(|| num(5)).unwrap_or(1);
    let micro = match caps.get(9) {
        Some(f) => {
            let mut digits: String = f.as_str().chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        None => 0,
    };
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(
        num(6).unwrap_or(0),
        num(7).unwrap_or(0),
        num(8).unwrap_or(0),
        micro,
    )?;
    let naive = NaiveDateTime::new(date, time);
    match caps.get(10).map(|m| m.as_str()) {
        None | Some("Z") => Some(Utc.from_utc_datetime(&naive)),
        Some(_) => {
            let secs =
                i64::from(num(12).unwrap_or(0)) * 3600 + i64::from(num(13).unwrap_or(0)) * 60;
            let secs = if caps.get(11).map(|m| m.as_str()) == Some("-") {
                -secs
            } else {
                secs
            };
            let offset = FixedOffset::east_opt(i32::try_from(secs).ok()?)?;
            let local = offset.from_local_datetime(&naive).single()?;
            Some(local.with_timezone(&Utc))
        }
    }
}

/// Python's `urllib.parse.quote_plus` with no extra safe characters.
fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Nova's text form of a timestamp column (MySQL `DATETIME`).
fn db_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

// ---------------------------------------------------------------------------
// The search options, as Nova's `search_opts` dict evolves

#[derive(Debug, Clone, PartialEq)]
enum Opt {
    Text(String),
    List(Vec<String>),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// An insertion-ordered map with Python dict semantics: re-setting a key
/// keeps its position and replaces its value.
#[derive(Debug, Default)]
struct Opts(Vec<(String, Opt)>);

impl Opts {
    fn get(&self, k: &str) -> Option<&Opt> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }
    fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
    fn set(&mut self, k: &str, v: Opt) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    fn remove(&mut self, k: &str) -> Option<Opt> {
        let i = self.0.iter().position(|(n, _)| n == k)?;
        Some(self.0.remove(i).1)
    }
    fn text(&self, k: &str) -> Option<&str> {
        match self.get(k) {
            Some(Opt::Text(s)) => Some(s),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Conditions

/// Which deleted / soft-deleted rows are visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    /// No `deleted` filter (changes-since/before given): everything.
    All,
    /// `deleted=false`: live rows, soft-deleted ones only if asked.
    Live { include_soft: bool },
    /// `deleted=true`: hard-deleted rows, plus soft-deleted ones if asked.
    Deleted { include_soft: bool },
}

impl Visibility {
    fn matches(self, inst: &Instance) -> bool {
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
enum ExactCol {
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
    fn from_name(name: &str) -> Option<Self> {
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
enum RegexCol {
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
    fn from_name(name: &str) -> Option<Self> {
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
enum Cond {
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
    fn matches(&self, inst: &Instance) -> bool {
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
struct IpFilter {
    v4: Option<Regex>,
    v6: Option<Regex>,
}

impl IpFilter {
    fn matches(&self, inst: &Instance) -> bool {
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

fn anchored(pattern: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{pattern})")).ok()
}

// ---------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortCol {
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
enum SortVal<'a> {
    Int(i64),
    Text(&'a str),
    Time(DateTime<Utc>),
}

impl SortCol {
    fn from_name(name: &str) -> Option<Self> {
        SORT_COLS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
    fn name(self) -> &'static str {
        SORT_COLS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |(n, _)| n)
    }
    fn value(self, inst: &Instance) -> Option<SortVal<'_>> {
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

// ---------------------------------------------------------------------------
// Parsing

/// Validates and interprets the raw query pairs of `GET /servers` or
/// `GET /servers/detail` (in request order, repeats allowed, already
/// percent-decoded) for `ctx`. Errors are Nova's 400/403 faults; see the
/// module docs for their order.
pub fn parse_list_query(
    params: &[(String, String)],
    ctx: &ListContext,
) -> Result<ListQuery, Fault> {
    let v = ctx.version;

    // 1. The query schema: value checks, then unknown names.
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for (k, val) in params {
        match param_kind(k, v) {
            Some(kind) => {
                validate_value(k, val, kind, v)?;
                kept.push((k.clone(), val.clone()));
            }
            None => {
                if !unknown.contains(&k.as_str()) {
                    unknown.push(k);
                }
            }
        }
    }
    if v.at_least(75) && !unknown.is_empty() {
        unknown.sort_unstable();
        let names: Vec<String> = unknown.iter().map(|n| py_repr(n)).collect();
        let verb = if names.len() == 1 { "does" } else { "do" };
        return Err(Fault::bad_request(format!(
            "{} {verb} not match any of the regexes: '^_'",
            names.join(", ")
        )));
    }
    let last = |name: &str| -> Option<&str> {
        kept.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    // 2. `search_opts`: one entry per name, last value wins.
    let mut opts = Opts::default();
    for (k, val) in &kept {
        opts.set(k, Opt::Text(val.clone()));
    }
    if ctx.is_admin {
        for k in PAGING_SORTING {
            opts.remove(k);
        }
    } else {
        opts.0.retain(|(k, _)| non_admin_allowed(k, v));
    }

    // 3. Names an admin may not filter on.
    if ctx.is_admin {
        if let Some((k, _)) = opts
            .0
            .iter()
            .find(|(k, _)| JOINED_TABLE_PARAMS.contains(&k.as_str()) || k.starts_with('_'))
        {
            return Err(Fault::bad_request(format!("Invalid filter field: {k}.")));
        }
    }

    // 4. `status` (every value counts).
    opts.remove("status");
    let statuses: Vec<&str> = kept
        .iter()
        .filter(|(k, _)| k == "status")
        .map(|(_, s)| s.as_str())
        .collect();
    if !statuses.is_empty() {
        match states::states_for_statuses(&statuses) {
            None if v.at_least(38) => return Err(Fault::bad_request("Invalid status value")),
            None => return Ok(ListQuery::nothing(ctx)),
            Some(f) => {
                let mut vms: Vec<String> =
                    f.vm_states.iter().map(|s| s.as_str().to_string()).collect();
                vms.sort();
                opts.set("vm_state", Opt::List(vms));
                if let Some(ts) = f.task_states {
                    let mut ts: Vec<String> = ts.iter().map(|t| t.as_str().to_string()).collect();
                    ts.sort();
                    opts.set("task_state", Opt::List(ts));
                }
            }
        }
    }

    // 5. Time filters.
    let mut since = None;
    if let Some(s) = opts.text("changes-since") {
        let t = parse_iso8601(s)
            .ok_or_else(|| Fault::bad_request("Invalid filter field: changes-since."))?;
        since = Some(t);
        opts.set("changes-since", Opt::Time(t));
    }
    if let Some(s) = opts.text("changes-before") {
        let t = parse_iso8601(s)
            .ok_or_else(|| Fault::bad_request("Invalid filter field: changes-before."))?;
        if since.is_some_and(|since| t < since) {
            return Err(Fault::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
        opts.set("changes-before", Opt::Time(t));
    }

    // 6. Deleted rows.
    match opts.get("deleted") {
        None => {
            if !opts.contains("changes-since") && !opts.contains("changes-before") {
                opts.set("deleted", Opt::Bool(false));
            }
        }
        Some(d) => {
            let b = match d {
                Opt::Text(s) => parse_bool(s).unwrap_or(false),
                _ => false,
            };
            opts.set("deleted", Opt::Bool(b));
        }
    }
    if opts.get("vm_state") == Some(&Opt::List(vec!["deleted".to_string()])) {
        if ctx.is_admin {
            opts.set("deleted", Opt::Bool(true));
        } else {
            return Err(Fault::forbidden(
                "Only administrators may list deleted instances",
            ));
        }
    }

    // 7. Tags are comma-separated lists.
    if v.at_least(26) {
        for tf in TAG_FILTERS {
            if let Some(s) = opts.text(tf) {
                let list = s.split(',').map(str::to_string).collect();
                opts.set(tf, Opt::List(list));
            }
        }
    }

    // 8. all_tenants and locked.
    let all_tenants = match opts.text("all_tenants") {
        Some(s) if !s.is_empty() => strict_bool(s)?,
        Some(_) => true,
        None => opts.contains("all_tenants"),
    };
    opts.remove("all_tenants");
    if let Some(s) = opts.text("locked") {
        let b = strict_bool(s)?;
        opts.set("locked", Opt::Bool(b));
    }

    // 9. Tenancy.
    if all_tenants {
        if !ctx.is_admin {
            let action = if ctx.detail { "detail" } else { "index" };
            return Err(Fault::policy(&format!(
                "os_compute_api:servers:{action}:get_all_tenants"
            )));
        }
    } else {
        opts.remove("tenant_id");
        opts.set("project_id", Opt::Text(ctx.project_id.clone()));
    }

    // 10. Paging.
    let limit = match last("limit") {
        // Digits only (checked by the schema); saturate on overflow.
        Some(s) => s.parse::<usize>().unwrap_or(usize::MAX).min(ctx.max_limit),
        None => ctx.max_limit,
    };
    let marker = last("marker").map(str::to_string);

    // 11. Sorting.
    let sort = sort_params(&kept, ctx)?;

    // 12. Remap names and build the conditions.
    let mut filters = Opts::default();
    for (k, val) in opts.0 {
        let name = match k.as_str() {
            "image" => "image_ref",
            "name" => "display_name",
            "tenant_id" => "project_id",
            "flavor" => "instance_type_id",
            other => other,
        };
        filters.set(name, val);
    }
    let mut conds = Vec::new();
    let mut visibility = Visibility::All;
    let mut ip: Option<IpFilter> = None;
    let soft_deleted = filters.get("soft_deleted").map(|o| match o {
        Opt::Text(s) => !s.is_empty(),
        Opt::Bool(b) => *b,
        _ => true,
    });
    for (name, val) in &filters.0 {
        let name = name.as_str();
        if name == "deleted" {
            if let Opt::Bool(d) = val {
                visibility = if *d {
                    Visibility::Deleted {
                        include_soft: soft_deleted.unwrap_or(true),
                    }
                } else {
                    Visibility::Live {
                        include_soft: soft_deleted.unwrap_or(false),
                    }
                };
            }
        } else if let Some(col) = ExactCol::from_name(name) {
            match val {
                Opt::Text(s) => conds.push(Cond::Exact(col, vec![s.clone()])),
                Opt::List(l) if l.is_empty() => conds.push(Cond::Never),
                Opt::List(l) => conds.push(Cond::Exact(col, l.clone())),
                _ => conds.push(Cond::Never),
            }
        } else if let Some(col) = RegexCol::from_name(name) {
            let re = match val {
                Opt::Text(s) => Regex::new(s).ok(),
                _ => None,
            };
            conds.push(Cond::Regex(col, re));
        } else {
            match (name, val) {
                ("locked", Opt::Bool(b)) => conds.push(Cond::Locked(*b)),
                ("changes-since", Opt::Time(t)) => conds.push(Cond::ChangesSince(*t)),
                ("changes-before", Opt::Time(t)) => conds.push(Cond::ChangesBefore(*t)),
                ("tags", Opt::List(l)) => conds.push(Cond::TagsAll(l.clone())),
                ("tags-any", Opt::List(l)) => conds.push(Cond::TagsAny(l.clone())),
                ("not-tags", Opt::List(l)) => conds.push(Cond::NotTagsAll(l.clone())),
                ("not-tags-any", Opt::List(l)) => conds.push(Cond::NotTagsAny(l.clone())),
                ("ip", Opt::Text(s)) => {
                    ip.get_or_insert(IpFilter { v4: None, v6: None }).v4 = anchored(s);
                }
                ("ip6", Opt::Text(s)) => {
                    ip.get_or_insert(IpFilter { v4: None, v6: None }).v6 = anchored(s);
                }
                // Not an instance column (e.g. `description`): ignored.
                _ => {}
            }
        }
    }

    Ok(ListQuery {
        nothing: false,
        visibility,
        conds,
        ip,
        all_tenants,
        sort,
        limit,
        marker,
        link_params: kept,
    })
}

/// `sort_key` / `sort_dir` handling: defaults, ignored keys, admin-only
/// keys, direction checks and the tiebreakers.
fn sort_params(
    kept: &[(String, String)],
    ctx: &ListContext,
) -> Result<Vec<(SortCol, bool)>, Fault> {
    let values = |name: &str| -> Vec<String> {
        kept.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    let mut keys = values("sort_key");
    let mut dirs = values("sort_dir");
    if keys.is_empty() {
        keys.push("created_at".to_string());
    }
    if dirs.is_empty() {
        dirs.push("desc".to_string());
    }

    let ignored: Vec<&str> = ignored_sort_keys(ctx.version).collect();
    for key in keys.clone() {
        if ignored.contains(&key.as_str()) {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                if dirs.len() > i {
                    dirs.remove(i);
                }
                keys.remove(i);
            }
        } else if (key == "host" || key == "node") && !ctx.is_admin {
            return Err(Fault::forbidden(format!(
                "Only administrators can sort servers by {key}"
            )));
        }
    }

    let default_dir = dirs.first().cloned().unwrap_or_else(|| "desc".to_string());
    for d in &dirs {
        if d != "asc" && d != "desc" {
            return Err(Fault::bad_request(
                "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'",
            ));
        }
    }
    while dirs.len() < keys.len() {
        dirs.push(default_dir.clone());
    }
    if dirs.len() > keys.len() {
        return Err(Fault::bad_request(
            "Invalid input received: Sort direction size exceeds sort key size",
        ));
    }
    for tiebreak in ["created_at", "id"] {
        if !keys.iter().any(|k| k == tiebreak) {
            keys.push(tiebreak.to_string());
            dirs.push(default_dir.clone());
        }
    }
    Ok(keys
        .iter()
        .zip(&dirs)
        .filter_map(|(k, d)| SortCol::from_name(k).map(|c| (c, d == "desc")))
        .collect())
}

impl ListQuery {
    /// The query Nova short-circuits to `{"servers": []}`.
    fn nothing(ctx: &ListContext) -> Self {
        ListQuery {
            nothing: true,
            visibility: Visibility::All,
            conds: Vec::new(),
            ip: None,
            all_tenants: false,
            sort: Vec::new(),
            limit: ctx.max_limit,
            marker: None,
            link_params: Vec::new(),
        }
    }

    /// True when `inst` passes every filter: tenancy (the caller's project
    /// unless `all_tenants`), deleted / soft-deleted visibility, status and
    /// every column, tag, time and IP filter.
    pub fn matches(&self, inst: &Instance) -> bool {
        !self.nothing
            && self.visibility.matches(inst)
            && self.conds.iter().all(|c| c.matches(inst))
            && self.ip.as_ref().is_none_or(|f| f.matches(inst))
    }

    /// Nova's ordering of two rows: the sort keys with their directions,
    /// then `created_at` and `id` in the first direction, then `uuid`.
    pub fn compare(&self, a: &Instance, b: &Instance) -> Ordering {
        for (col, desc) in &self.sort {
            let o = col.value(a).cmp(&col.value(b));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let o = a.uuid.cmp(&b.uuid);
        match self.sort.first() {
            Some((_, true)) => o.reverse(),
            _ => o,
        }
    }

    /// Sorts rows in list order (see [`ListQuery::compare`]).
    pub fn sort(&self, rows: &mut [&Instance]) {
        rows.sort_by(|a, b| self.compare(a, b));
    }

    /// Applies the marker and the limit to rows already filtered and sorted.
    /// The marker is looked up with `lookup` (which must see deleted rows
    /// too); an unknown marker is 400 `marker [<m>] not found`. Rows
    /// strictly after the marker's position in the sort order are kept, then
    /// at most `limit` of them. Returns the page and whether a `next` link
    /// is due (the page holds exactly `min(limit, max_limit)` rows, which
    /// may happen on the last page too). `limit=0` gives an empty page, no
    /// link, and skips the marker lookup.
    pub fn paginate<'a>(
        &self,
        sorted: Vec<&'a Instance>,
        lookup: &dyn Fn(&str) -> Option<&'a Instance>,
    ) -> Result<(Vec<&'a Instance>, bool), Fault> {
        if self.nothing || self.limit == 0 {
            return Ok((Vec::new(), false));
        }
        let mut rows = sorted;
        if let Some(m) = &self.marker {
            let at =
                lookup(m).ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?;
            rows.retain(|r| self.compare(r, at) == Ordering::Greater);
        }
        rows.truncate(self.limit);
        let more = rows.len() == self.limit;
        Ok((rows, more))
    }

    /// Filter, sort and page in one go over every stored row (deleted ones
    /// included, which the marker lookup needs).
    pub fn apply<'a>(&self, all: &[&'a Instance]) -> Result<(Vec<&'a Instance>, bool), Fault> {
        let mut rows: Vec<&'a Instance> = all.iter().copied().filter(|i| self.matches(i)).collect();
        self.sort(&mut rows);
        let lookup = |uuid: &str| all.iter().copied().find(|i| i.uuid == uuid);
        self.paginate(rows, &lookup)
    }

    /// The query string (no leading `?`) of the `servers_links` "next"
    /// href. Nova takes the request's parameters that survived the schema,
    /// sorts the `(name, value)` pairs, keeps one value per name (the last
    /// after sorting, i.e. the greatest), sets `marker` to `last_id` (in
    /// place if present, else appended at the end) and form-encodes them.
    pub fn next_query(&self, last_id: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .link_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        let mut collapsed: Vec<(&str, &str)> = Vec::new();
        for (k, v) in pairs {
            match collapsed.iter_mut().find(|(n, _)| *n == k) {
                Some(e) => e.1 = v,
                None => collapsed.push((k, v)),
            }
        }
        match collapsed.iter_mut().find(|(n, _)| *n == "marker") {
            Some(e) => e.1 = last_id,
            None => collapsed.push(("marker", last_id)),
        }
        collapsed
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The effective page size, `min(limit, max_limit)`.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The `marker` given, if any.
    pub fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }

    /// True when `all_tenants` was given with a true (or empty) value.
    pub fn all_tenants(&self) -> bool {
        self.all_tenants
    }

    /// The effective `(sort_key, sort_dir)` pairs, tiebreakers included.
    pub fn sort_keys(&self) -> Vec<(&'static str, &'static str)> {
        self.sort
            .iter()
            .map(|(c, d)| (c.name(), if *d { "desc" } else { "asc" }))
            .collect()
    }

    /// True when Nova would answer an empty list without looking (an
    /// unknown `status` below 2.38): no rows and no links.
    pub fn is_always_empty(&self) -> bool {
        self.nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FixedIp, FlavorSnapshot, Vif};
    use crate::states::{PowerState, TaskState};
    use chrono::Duration;
    use std::collections::BTreeMap;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, 10, 0, 0).unwrap()
    }

    fn uuid(n: i64) -> String {
        format!("00000000-0000-4000-8000-{n:012}")
    }

    /// A live, active instance in project `p1`, created (and updated) at
    /// `t0 + n minutes`.
    fn inst(n: i64) -> Instance {
        let created = t0() + Duration::minutes(n);
        Instance {
            id: n,
            uuid: uuid(n),
            display_name: format!("vm{n}"),
            display_description: None,
            project_id: "p1".into(),
            user_id: "u1".into(),
            image_ref: "img-1".into(),
            flavor: FlavorSnapshot {
                id: "1".into(),
                name: "m1.tiny".into(),
                vcpus: 1,
                ram: 512,
                disk: 1,
                ..Default::default()
            },
            vm_state: VmState::Active,
            task_state: None,
            power_state: PowerState::Running,
            progress: 0,
            host: Some("host1".into()),
            node: Some("node1".into()),
            availability_zone: Some("nova".into()),
            pinned_availability_zone: None,
            hostname: format!("vm{n}"),
            key_name: None,
            key_data: None,
            user_data: None,
            config_drive: false,
            access_ip_v4: None,
            access_ip_v6: None,
            auto_disk_config: false,
            metadata: BTreeMap::new(),
            system_metadata: BTreeMap::new(),
            tags: vec![],
            locked_by: None,
            locked_reason: None,
            launch_index: 0,
            reservation_id: format!("r-{n:08}"),
            kernel_id: String::new(),
            ramdisk_id: String::new(),
            root_device_name: Some("/dev/vda".into()),
            created_at: created,
            updated_at: created,
            launched_at: Some(created + Duration::seconds(30)),
            terminated_at: None,
            deleted_at: None,
            deleted: false,
            vifs: vec![],
            security_groups: vec!["default".into()],
            fault: None,
            scheduler_hints: BTreeMap::new(),
            block_device_mapping: vec![],
            personality: vec![],
            admin_pass: None,
            trusted_image_certificates: None,
            server_groups: vec![],
            image_properties: BTreeMap::new(),
            generation: 0,
        }
    }

    fn with(n: i64, f: impl FnOnce(&mut Instance)) -> Instance {
        let mut i = inst(n);
        f(&mut i);
        i
    }

    fn hard_deleted(n: i64) -> Instance {
        with(n, |i| {
            i.deleted = true;
            i.vm_state = VmState::Deleted;
            i.deleted_at = Some(i.updated_at);
        })
    }

    fn soft_deleted(n: i64) -> Instance {
        with(n, |i| i.vm_state = VmState::SoftDeleted)
    }

    fn vif(ips: &[(&str, u8)]) -> Vif {
        Vif {
            port_id: "port".into(),
            network_id: "net".into(),
            network_label: "private".into(),
            mac: "fa:16:3e:00:00:01".into(),
            fixed_ips: ips
                .iter()
                .map(|(a, v)| FixedIp {
                    address: a.to_string(),
                    version: *v,
                    subnet_id: String::new(),
                })
                .collect(),
            tag: None,
            created_by_nova: true,
        }
    }

    fn ctx(is_admin: bool, minor: u32) -> ListContext {
        ListContext {
            is_admin,
            project_id: "p1".into(),
            version: Microversion::new(2, minor),
            max_limit: DEFAULT_MAX_LIMIT,
            detail: false,
        }
    }
    fn admin(minor: u32) -> ListContext {
        ctx(true, minor)
    }
    fn user(minor: u32) -> ListContext {
        ctx(false, minor)
    }

    /// `a=1&b&c=` -> pairs (already "decoded": no escapes used here).
    fn pairs(qs: &str) -> Vec<(String, String)> {
        qs.split('&')
            .filter(|s| !s.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect()
    }

    fn parse(qs: &str, c: &ListContext) -> Result<ListQuery, Fault> {
        parse_list_query(&pairs(qs), c)
    }

    fn q(qs: &str, c: &ListContext) -> ListQuery {
        match parse(qs, c) {
            Ok(q) => q,
            Err(e) => panic!("{qs}: unexpected {e}"),
        }
    }

    fn err(qs: &str, c: &ListContext) -> Fault {
        match parse(qs, c) {
            Ok(_) => panic!("{qs}: expected an error"),
            Err(e) => e,
        }
    }

    /// Ids of the rows that match, in row order (no sorting or paging).
    fn matching(qs: &str, c: &ListContext, rows: &[Instance]) -> Vec<i64> {
        let query = q(qs, c);
        rows.iter()
            .filter(|i| query.matches(i))
            .map(|i| i.id)
            .collect()
    }

    /// Ids of the listed page, in list order, and the next-link flag.
    fn page(qs: &str, c: &ListContext, rows: &[Instance]) -> Result<(Vec<i64>, bool), Fault> {
        let all: Vec<&Instance> = rows.iter().collect();
        let (page, more) = parse(qs, c)?.apply(&all)?;
        Ok((page.iter().map(|i| i.id).collect(), more))
    }

    fn listed(qs: &str, c: &ListContext, rows: &[Instance]) -> Vec<i64> {
        match page(qs, c, rows) {
            Ok((ids, _)) => ids,
            Err(e) => panic!("{qs}: unexpected {e}"),
        }
    }

    // -- the allow-list and unknown names ---------------------------------

    #[test]
    fn non_admin_base_filters_and_silently_dropped_ones() {
        let rows = [
            inst(1),
            with(2, |i| {
                i.host = Some("host2".into());
                i.node = Some("node2".into());
                i.image_ref = "img-2".into();
                i.flavor.id = "2".into();
                i.uuid = "special".into();
                i.vifs = vec![vif(&[("10.0.0.2", 4)])];
            }),
        ];
        for qs in [
            "host=host2",
            "node=node2",
            "uuid=special",
            "image_ref=img-2",
            "project_id=p9",
            "user_id=u9",
            "deleted=true",
            "kernel_id=x",
            "tenant_id=p9",
        ] {
            assert_eq!(matching(qs, &user(1), &rows), vec![1, 2], "{qs} ignored");
        }
        assert_eq!(matching("host=host2", &admin(1), &rows), vec![2]);
        assert_eq!(matching("node=node2", &admin(1), &rows), vec![2]);
        assert_eq!(matching("uuid=special", &admin(1), &rows), vec![2]);
        assert_eq!(
            matching("reservation_id=r-00000002", &user(1), &rows),
            vec![2]
        );
        assert_eq!(matching("name=vm2", &user(1), &rows), vec![2]);
        assert_eq!(matching("image=img-2", &user(1), &rows), vec![2]);
        assert_eq!(matching("flavor=2", &user(1), &rows), vec![2]);
        assert_eq!(matching("ip=10.0.0.2", &user(1), &rows), vec![2]);
    }

    #[test]
    fn version_gated_filters_for_non_admins() {
        type Mutate = fn(&mut Instance);
        let cases: &[(&str, u32, Mutate, &[i64])] = &[
            (
                "ip6=fd00::2",
                5,
                |i| i.vifs = vec![vif(&[("fd00::2", 6)])],
                &[2],
            ),
            ("tags=x", 26, |i| i.tags = vec!["x".into()], &[2]),
            ("tags-any=x,y", 26, |i| i.tags = vec!["x".into()], &[2]),
            ("not-tags=x", 26, |i| i.tags = vec!["x".into()], &[1]),
            ("not-tags-any=x", 26, |i| i.tags = vec!["x".into()], &[1]),
            ("changes-before=2024-01-02T10:01:30Z", 66, |_| {}, &[1]),
            (
                "locked=true",
                73,
                |i| i.locked_by = Some("owner".into()),
                &[2],
            ),
            (
                "availability_zone=zone2",
                83,
                |i| i.availability_zone = Some("zone2".into()),
                &[2],
            ),
            ("config_drive=True", 83, |i| i.config_drive = true, &[2]),
            (
                "key_name=kp2",
                83,
                |i| i.key_name = Some("kp2".into()),
                &[2],
            ),
            (
                "created_at=2030",
                83,
                |i| i.created_at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
                &[2],
            ),
            (
                "launched_at=2031",
                83,
                |i| i.launched_at = Some(Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap()),
                &[2],
            ),
            (
                "terminated_at=2032",
                83,
                |i| i.terminated_at = Some(Utc.with_ymd_and_hms(2032, 1, 1, 0, 0, 0).unwrap()),
                &[2],
            ),
            (
                "power_state=4",
                83,
                |i| i.power_state = PowerState::Shutdown,
                &[2],
            ),
            (
                "task_state=rebooting",
                83,
                |i| i.task_state = Some(TaskState::Rebooting),
                &[2],
            ),
            (
                "vm_state=stopped",
                83,
                |i| i.vm_state = VmState::Stopped,
                &[2],
            ),
            ("progress=50", 83, |i| i.progress = 50, &[2]),
            ("user_id=u2", 83, |i| i.user_id = "u2".into(), &[2]),
            (
                "hostname=special",
                90,
                |i| i.hostname = "special".into(),
                &[2],
            ),
        ];
        for (qs, min, mutate, want) in cases {
            let rows = [inst(1), with(2, mutate)];
            assert_eq!(
                matching(qs, &user(min - 1), &rows),
                vec![1, 2],
                "{qs} below 2.{min}"
            );
            assert_eq!(
                matching(qs, &user(*min), &rows),
                want.to_vec(),
                "{qs} at 2.{min}"
            );
        }
    }

    #[test]
    fn admins_get_every_schema_filter_at_2_1() {
        type Mutate = fn(&mut Instance);
        let cases: &[(&str, Mutate)] = &[
            ("availability_zone=zone2", |i| {
                i.availability_zone = Some("zone2".into())
            }),
            ("key_name=kp2", |i| i.key_name = Some("kp2".into())),
            ("vm_state=stopped", |i| i.vm_state = VmState::Stopped),
            ("task_state=rebooting", |i| {
                i.task_state = Some(TaskState::Rebooting)
            }),
            ("user_id=u2", |i| i.user_id = "u2".into()),
            ("hostname=special", |i| i.hostname = "special".into()),
            ("kernel_id=aki", |i| i.kernel_id = "aki-1".into()),
            ("ramdisk_id=ari", |i| i.ramdisk_id = "ari-1".into()),
            ("root_device_name=sdb", |i| {
                i.root_device_name = Some("/dev/sdb".into())
            }),
            ("access_ip_v4=^192", |i| {
                i.access_ip_v4 = Some("192.0.2.1".into())
            }),
            ("access_ip_v6=2001:db8", |i| {
                i.access_ip_v6 = Some("2001:db8::1".into())
            }),
            ("auto_disk_config=1", |i| i.auto_disk_config = true),
            ("launch_index=3", |i| i.launch_index = 3),
            ("locked_by=admin", |i| i.locked_by = Some("admin".into())),
            ("display_description=hello", |i| {
                i.display_description = Some("well hello".into())
            }),
        ];
        for (qs, mutate) in cases {
            let rows = [inst(1), with(2, mutate)];
            assert_eq!(matching(qs, &admin(1), &rows), vec![2], "{qs}");
        }
    }

    #[test]
    fn schema_strips_names_below_their_version_even_for_admins() {
        let rows = [
            inst(1),
            with(2, |i| {
                i.tags = vec!["x".into()];
                i.locked_by = Some("owner".into());
            }),
        ];
        assert_eq!(matching("tags=x", &admin(25), &rows), vec![1, 2]);
        assert_eq!(matching("tags=x", &admin(26), &rows), vec![2]);
        assert_eq!(matching("locked=true", &admin(72), &rows), vec![1, 2]);
        // Not validated either when stripped.
        assert!(parse("locked=maybe", &admin(72)).is_ok());
        assert!(parse("changes-before=garbage", &admin(65)).is_ok());
        assert_eq!(
            err("changes-before=garbage", &admin(66)).message,
            "Invalid input for query parameters changes-before. Value: garbage. 'garbage' is not a 'date-time'"
        );
    }

    #[test]
    fn underscore_names() {
        let rows = [inst(1), inst(2)];
        assert_eq!(matching("_foo=1", &user(1), &rows), vec![1, 2]);
        assert_eq!(matching("_foo=1", &user(75), &rows), vec![1, 2]);
        for minor in [1, 74, 75, 104] {
            let e = err("_foo=1", &admin(minor));
            assert_eq!(
                (e.code, e.message.as_str()),
                (400, "Invalid filter field: _foo.")
            );
        }
    }

    #[test]
    fn joined_table_names() {
        let rows = [inst(1)];
        for name in JOINED_TABLE_PARAMS {
            let qs = format!("{name}=x");
            let e = err(&qs, &admin(1));
            assert_eq!(e.code, 400);
            assert_eq!(e.message, format!("Invalid filter field: {name}."));
            assert_eq!(err(&qs, &admin(75)).code, 400);
            assert_eq!(matching(&qs, &user(1), &rows), vec![1]);
            assert_eq!(matching(&qs, &user(75), &rows), vec![1]);
        }
    }

    #[test]
    fn unknown_names_by_version() {
        let rows = [inst(1), inst(2)];
        for c in [admin(1), user(1), admin(74), user(74)] {
            assert_eq!(matching("foo=1&name=vm1", &c, &rows), vec![1]);
        }
        for c in [admin(75), user(75), admin(104)] {
            let e = err("foo=1&name=vm1", &c);
            assert_eq!(e.code, 400);
            assert_eq!(e.message, "'foo' does not match any of the regexes: '^_'");
        }
        assert_eq!(
            err("zz=1&aa=2&zz=3", &user(75)).message,
            "'aa', 'zz' do not match any of the regexes: '^_'"
        );
        // Names Nova's schema never had, although they are columns.
        for qs in [
            "updated_at=2024",
            "hidden=1",
            "fixed_ip=10.0.0.1",
            "page_size=1",
            "offset=1",
        ] {
            assert_eq!(err(qs, &admin(75)).code, 400, "{qs}");
            assert!(parse(qs, &admin(74)).is_ok(), "{qs}");
        }
        // A bad value in a known name is reported before the unknown name.
        assert!(err("foo=1&limit=x", &admin(75))
            .message
            .starts_with("Invalid input for query parameters limit"));
    }

    #[test]
    fn repeated_names_keep_the_last_value() {
        let rows = [inst(1), inst(2), with(3, |i| i.vm_state = VmState::Stopped)];
        assert_eq!(matching("name=vm1&name=vm2", &user(1), &rows), vec![2]);
        assert_eq!(
            matching("image=nope&image=img-1", &user(1), &rows),
            vec![1, 2, 3]
        );
        // status is the exception: every value counts.
        assert_eq!(
            matching("status=SHUTOFF&status=ACTIVE", &user(1), &rows),
            vec![1, 2, 3]
        );
        assert_eq!(matching("status=SHUTOFF", &user(1), &rows), vec![3]);
    }

    // -- how each filter matches ------------------------------------------

    #[test]
    fn name_remaps() {
        let rows = [
            inst(1),
            with(2, |i| {
                i.image_ref = "img-10".into();
                i.flavor.id = "11".into();
                i.display_description = Some("desc2".into());
            }),
        ];
        // image -> image_ref, exact.
        assert_eq!(matching("image=img-1", &user(1), &rows), vec![1]);
        assert_eq!(matching("image=img", &user(1), &rows), Vec::<i64>::new());
        assert_eq!(matching("image_ref=img-10", &admin(1), &rows), vec![2]);
        // flavor -> exact on the flavor id; unknown flavor: empty, no error.
        assert_eq!(matching("flavor=1", &user(1), &rows), vec![1]);
        assert_eq!(matching("flavor=11", &user(1), &rows), vec![2]);
        assert_eq!(matching("flavor=999", &user(1), &rows), Vec::<i64>::new());
        // description is accepted but filters nothing.
        assert_eq!(matching("description=zzz", &admin(1), &rows), vec![1, 2]);
        assert_eq!(
            matching("display_description=desc", &admin(1), &rows),
            vec![2]
        );
        // name and display_name both: the one first seen later wins.
        assert_eq!(
            matching("display_name=vm1&name=vm2", &admin(1), &rows),
            vec![2]
        );
        assert_eq!(
            matching("name=vm2&display_name=vm1", &admin(1), &rows),
            vec![1]
        );
    }

    #[test]
    fn regex_columns_are_unanchored() {
        let names = ["t1", "t14", "test11", "t2", "T1"];
        let rows: Vec<Instance> = names
            .iter()
            .enumerate()
            .map(|(n, name)| with(n as i64 + 1, |i| i.display_name = name.to_string()))
            .collect();
        assert_eq!(matching("name=t1", &user(1), &rows), vec![1, 2, 3]);
        assert_eq!(matching("name=^t1$", &user(1), &rows), vec![1]);
        assert_eq!(matching("name=t1|t2", &user(1), &rows), vec![1, 2, 3, 4]);
        assert_eq!(matching("name=.", &user(1), &rows), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn invalid_regexes_are_400_from_the_schema() {
        let e = err("name=(", &user(1));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Invalid input for query parameters name. Value: (. '(' is not a 'regex'"
        );
        assert_eq!(
            err("name=", &user(1)).message,
            "Invalid input for query parameters name. Value: . '' is not a 'regex'"
        );
        // The schema runs before the allow-list.
        assert_eq!(err("node=[", &user(1)).code, 400);
        assert_eq!(err("ip=*", &user(1)).code, 400);
        assert_eq!(err("tags=(", &user(26)).code, 400);
        // launch_index is not format-checked: an uncompilable one matches nothing.
        let rows = [inst(1)];
        assert_eq!(
            matching("launch_index=(", &admin(1), &rows),
            Vec::<i64>::new()
        );
        assert_eq!(matching("launch_index=0", &admin(1), &rows), vec![1]);
    }

    #[test]
    fn regex_columns_see_the_db_text() {
        let rows = [
            inst(1),
            with(2, |i| {
                i.power_state = PowerState::Shutdown;
                i.progress = 50;
                i.config_drive = true;
                i.auto_disk_config = true;
                i.launch_index = 2;
                i.launched_at = None;
                i.locked_by = Some("owner".into());
            }),
        ];
        let a = admin(1);
        assert_eq!(matching("power_state=^1$", &a, &rows), vec![1]);
        assert_eq!(matching("power_state=^4$", &a, &rows), vec![2]);
        assert_eq!(matching("progress=^50$", &a, &rows), vec![2]);
        assert_eq!(matching("progress=^0$", &a, &rows), vec![1]);
        assert_eq!(matching("config_drive=^True$", &a, &rows), vec![2]);
        assert_eq!(matching("config_drive=^$", &a, &rows), vec![1]);
        assert_eq!(matching("auto_disk_config=^1$", &a, &rows), vec![2]);
        assert_eq!(matching("auto_disk_config=^0$", &a, &rows), vec![1]);
        assert_eq!(matching("launch_index=^2$", &a, &rows), vec![2]);
        assert_eq!(
            matching("created_at=^2024-01-02 10:01:00$", &a, &rows),
            vec![1]
        );
        assert_eq!(matching("created_at=10:02", &a, &rows), vec![2]);
        // NULL never matches, not even `.*`.
        assert_eq!(matching("launched_at=.*", &a, &rows), vec![1]);
        assert_eq!(
            matching("launched_at=2024-01-02 10:01:30", &a, &rows),
            vec![1]
        );
        assert_eq!(matching("locked_by=.*", &a, &rows), vec![2]);
        assert_eq!(matching("key_name=.*", &a, &rows), Vec::<i64>::new());
    }

    #[test]
    fn exact_columns_are_exact() {
        let rows = [inst(1), with(2, |i| i.host = None)];
        let a = admin(1);
        assert_eq!(matching("host=host1", &a, &rows), vec![1]);
        assert_eq!(matching("host=host", &a, &rows), Vec::<i64>::new());
        assert_eq!(matching("host=HOST1", &a, &rows), Vec::<i64>::new());
        assert_eq!(matching(&format!("uuid={}", uuid(2)), &a, &rows), vec![2]);
        assert_eq!(matching("uuid=00000000", &a, &rows), Vec::<i64>::new());
        assert_eq!(matching("vm_state=activ", &a, &rows), Vec::<i64>::new());
        assert_eq!(matching("vm_state=active", &a, &rows), vec![1, 2]);
        // NULL task_state never equals anything.
        assert_eq!(matching("task_state=None", &a, &rows), Vec::<i64>::new());
    }

    #[test]
    fn ip_filters() {
        let rows = [
            with(1, |i| {
                i.vifs = vec![vif(&[("10.0.0.1", 4), ("fd00::1", 6)])]
            }),
            with(2, |i| i.vifs = vec![vif(&[("110.0.0.2", 4)])]),
            with(3, |i| {
                i.vifs = vec![vif(&[("192.168.0.9", 4)]), vif(&[("10.0.0.13", 4)])]
            }),
            with(4, |i| i.vifs = vec![vif(&[("fd00::4", 6)])]),
            with(5, |i| i.access_ip_v4 = Some("10.0.0.1".into())),
        ];
        let c = user(5);
        assert_eq!(matching("ip=10.0.0.1", &c, &rows), vec![1, 3]);
        assert_eq!(matching("ip=0.0.2", &c, &rows), Vec::<i64>::new());
        assert_eq!(matching("ip=fd00", &c, &rows), Vec::<i64>::new());
        assert_eq!(matching("ip=.*0.2$", &c, &rows), vec![2]);
        assert_eq!(matching("ip6=fd00::", &c, &rows), vec![1, 4]);
        assert_eq!(matching("ip6=10", &c, &rows), Vec::<i64>::new());
        // Both: either one matching is enough.
        assert_eq!(matching("ip=10.0.0.13&ip6=fd00::4", &c, &rows), vec![3, 4]);
    }

    #[test]
    fn tag_filters() {
        let rows = [
            with(1, |i| i.tags = vec!["a".into(), "b".into()]),
            with(2, |i| i.tags = vec!["a".into()]),
            with(3, |i| i.tags = vec!["c".into()]),
            inst(4),
        ];
        let c = user(26);
        assert_eq!(matching("tags=a,b", &c, &rows), vec![1]);
        assert_eq!(matching("tags=a", &c, &rows), vec![1, 2]);
        assert_eq!(matching("tags-any=a,c", &c, &rows), vec![1, 2, 3]);
        assert_eq!(matching("not-tags=a,b", &c, &rows), vec![2, 3, 4]);
        assert_eq!(matching("not-tags-any=a,c", &c, &rows), vec![4]);
        assert_eq!(matching("tags=a&not-tags-any=b", &c, &rows), vec![2]);
        assert_eq!(matching("tags=A", &c, &rows), Vec::<i64>::new());
        assert_eq!(matching("tags=a,b", &user(25), &rows), vec![1, 2, 3, 4]);
    }

    #[test]
    fn locked_is_a_strict_boolean() {
        let rows = [with(1, |i| i.locked_by = Some("owner".into())), inst(2)];
        let c = user(73);
        for v in ["true", "TRUE", "yes", "1", "on", "t", "Y", " true "] {
            assert_eq!(matching(&format!("locked={v}"), &c, &rows), vec![1], "{v}");
        }
        for v in ["false", "0", "no", "off", "n", "F"] {
            assert_eq!(matching(&format!("locked={v}"), &c, &rows), vec![2], "{v}");
        }
        let e = err("locked=maybe", &c);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Invalid input received: Unrecognized value 'maybe', acceptable values are: \
             '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        );
        assert_eq!(err("locked=", &c).code, 400);
        assert_eq!(err("locked=maybe", &admin(73)).code, 400);
    }

    // -- status ------------------------------------------------------------

    fn status_rows() -> Vec<Instance> {
        vec![
            inst(1),
            with(2, |i| i.task_state = Some(TaskState::Rebooting)),
            with(3, |i| i.vm_state = VmState::Stopped),
            with(4, |i| i.vm_state = VmState::Error),
            hard_deleted(5),
            soft_deleted(6),
            with(7, |i| {
                i.vm_state = VmState::Active;
                i.task_state = Some(TaskState::RebootingHard);
            }),
        ]
    }

    #[test]
    fn status_maps_to_states() {
        let rows = status_rows();
        let c = user(1);
        assert_eq!(matching("status=ACTIVE", &c, &rows), vec![1, 2, 7]);
        assert_eq!(matching("status=active", &c, &rows), vec![1, 2, 7]);
        assert_eq!(matching("status=REBOOT", &c, &rows), vec![2]);
        assert_eq!(matching("status=HARD_REBOOT", &c, &rows), vec![7]);
        assert_eq!(
            matching("status=REBOOT&status=HARD_REBOOT", &c, &rows),
            vec![2, 7]
        );
        assert_eq!(matching("status=ERROR", &c, &rows), vec![4]);
        // Soft-deleted rows stay hidden unless asked for.
        assert_eq!(
            matching("status=SOFT_DELETED", &c, &rows),
            Vec::<i64>::new()
        );
        assert_eq!(
            matching("status=SOFT_DELETED&soft_deleted=1", &admin(1), &rows),
            vec![6]
        );
        // status replaces a direct vm_state; a direct task_state survives a
        // status whose row default matched, not one that set task states.
        assert_eq!(
            matching("vm_state=stopped&status=ACTIVE", &admin(1), &rows),
            vec![1, 2, 7]
        );
        assert_eq!(
            matching("status=ACTIVE&task_state=rebooting", &admin(1), &rows),
            vec![2]
        );
        assert_eq!(
            matching("task_state=pausing&status=REBOOT", &admin(1), &rows),
            vec![2]
        );
    }

    #[test]
    fn unknown_status_by_version() {
        let rows = status_rows();
        for qs in ["status=BOGUS", "status=UNKNOWN", "status="] {
            let e = err(qs, &user(38));
            assert_eq!(
                (e.code, e.message.as_str()),
                (400, "Invalid status value"),
                "{qs}"
            );
            let query = q(qs, &user(37));
            assert!(query.is_always_empty());
            assert!(rows.iter().all(|i| !query.matches(i)));
        }
        // Below 2.38 the early empty answer comes before the policy check.
        let query = q("status=BOGUS&all_tenants=1&limit=1", &user(37));
        let all: Vec<&Instance> = rows.iter().collect();
        let (got, more) = query.apply(&all).unwrap();
        assert!(got.is_empty() && !more);
        // A known status among unknown ones is enough.
        assert_eq!(
            matching("status=BOGUS&status=ERROR", &user(38), &rows),
            vec![4]
        );
    }

    #[test]
    fn status_deleted() {
        let rows = status_rows();
        let e = err("status=DELETED", &user(1));
        assert_eq!(
            (e.code, e.message.as_str()),
            (403, "Only administrators may list deleted instances")
        );
        assert_eq!(err("status=deleted", &user(90)).code, 403);
        assert_eq!(matching("status=DELETED", &admin(1), &rows), vec![5]);
        // Only when DELETED is the sole state does it imply deleted=true.
        assert_eq!(
            matching("status=DELETED&status=ERROR", &admin(1), &rows),
            vec![4]
        );
        assert_eq!(
            matching("status=DELETED&status=ERROR", &user(1), &rows),
            vec![4]
        );
    }

    // -- time filters and deleted rows -------------------------------------

    #[test]
    fn changes_since_and_before() {
        // Updated at t0+1m .. t0+6m; 4 hard-deleted, 5 soft-deleted.
        let rows = [
            inst(1),
            inst(2),
            inst(3),
            hard_deleted(4),
            soft_deleted(5),
            inst(6),
        ];
        let c = user(66);
        assert_eq!(
            matching("changes-since=2024-01-02T10:03:00Z", &c, &rows),
            vec![3, 4, 5, 6]
        );
        assert_eq!(
            matching("changes-since=2024-01-02T10:03:00.000001Z", &c, &rows),
            vec![4, 5, 6]
        );
        assert_eq!(
            matching("changes-before=2024-01-02T10:04:00Z", &c, &rows),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            matching(
                "changes-since=2024-01-02T10:02:00Z&changes-before=2024-01-02T10:05:00Z",
                &c,
                &rows
            ),
            vec![2, 3, 4, 5]
        );
        // Equal bounds are fine; offsets are honoured; no zone means UTC.
        assert_eq!(
            matching(
                "changes-since=2024-01-02T10:02:00Z&changes-before=2024-01-02T12:02:00+02:00",
                &c,
                &rows
            ),
            vec![2]
        );
        assert_eq!(
            matching("changes-since=2024-01-02 10:06", &c, &rows),
            vec![6]
        );
        assert_eq!(
            matching("changes-since=2024-01-02T05:05:00-0500", &c, &rows),
            vec![5, 6]
        );
        let e = err(
            "changes-since=2024-01-02T10:05:00Z&changes-before=2024-01-02T10:04:00Z",
            &c,
        );
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "The value of changes-since must be less than or equal to changes-before."
            )
        );
        let e = err("changes-since=yesterday", &c);
        assert_eq!(
            e.message,
            "Invalid input for query parameters changes-since. Value: yesterday. 'yesterday' is not a 'date-time'"
        );
        assert_eq!(err("changes-since=2024-13-01", &c).code, 400);
    }

    #[test]
    fn deleted_and_soft_deleted_visibility() {
        let rows = [inst(1), hard_deleted(2), soft_deleted(3)];
        let a = admin(1);
        assert_eq!(matching("", &user(1), &rows), vec![1]);
        assert_eq!(matching("", &a, &rows), vec![1]);
        assert_eq!(matching("deleted=true", &a, &rows), vec![2, 3]);
        assert_eq!(matching("deleted=true&soft_deleted=", &a, &rows), vec![2]);
        // soft_deleted is never parsed: any non-empty value is truthy.
        assert_eq!(
            matching("deleted=true&soft_deleted=false", &a, &rows),
            vec![2, 3]
        );
        assert_eq!(matching("deleted=false", &a, &rows), vec![1]);
        assert_eq!(
            matching("deleted=false&soft_deleted=1", &a, &rows),
            vec![1, 3]
        );
        assert_eq!(
            matching("deleted=false&soft_deleted=false", &a, &rows),
            vec![1, 3]
        );
        assert_eq!(matching("deleted=bogus", &a, &rows), vec![1]);
        assert_eq!(matching("deleted=YES", &a, &rows), vec![2, 3]);
        assert_eq!(matching("soft_deleted=1", &a, &rows), vec![1, 3]);
        // Non-admins cannot ask.
        assert_eq!(matching("deleted=true", &user(1), &rows), vec![1]);
        assert_eq!(
            matching("deleted=false&soft_deleted=1", &user(83), &rows),
            vec![1]
        );
        // changes-* shows everything...
        assert_eq!(
            matching("changes-since=2000-01-01", &user(1), &rows),
            vec![1, 2, 3]
        );
        assert_eq!(
            matching("changes-before=2999-01-01", &user(66), &rows),
            vec![1, 2, 3]
        );
        // ...unless deleted says otherwise.
        assert_eq!(
            matching("changes-since=2000-01-01&deleted=false", &a, &rows),
            vec![1]
        );
        assert_eq!(
            matching("changes-since=2000-01-01&deleted=true", &a, &rows),
            vec![2, 3]
        );
    }

    // -- tenancy -------------------------------------------------------------

    #[test]
    fn tenancy_and_all_tenants() {
        let rows = [
            inst(1),
            with(2, |i| i.project_id = "p2".into()),
            with(3, |i| i.project_id = "p3".into()),
        ];
        let a = admin(1);
        assert_eq!(matching("", &a, &rows), vec![1]);
        assert_eq!(matching("project_id=p2", &a, &rows), vec![1]);
        assert_eq!(matching("tenant_id=p2", &a, &rows), vec![1]);
        for qs in [
            "all_tenants",
            "all_tenants=",
            "all_tenants=1",
            "all_tenants=True",
            "all_tenants=yes",
        ] {
            assert_eq!(matching(qs, &a, &rows), vec![1, 2, 3], "{qs}");
            assert!(q(qs, &a).all_tenants());
        }
        for qs in ["all_tenants=0", "all_tenants=false", "all_tenants=off"] {
            assert_eq!(matching(qs, &a, &rows), vec![1], "{qs}");
            assert!(!q(qs, &a).all_tenants());
            assert_eq!(matching(qs, &user(1), &rows), vec![1], "{qs}");
        }
        let e = err("all_tenants=bogus", &a);
        assert_eq!(e.code, 400);
        assert!(e.message.starts_with(
            "Invalid input received: Unrecognized value 'bogus', acceptable values are: '0', '1',"
        ));
        // The bad value is reported before the policy check.
        assert_eq!(err("all_tenants=bogus", &user(1)).code, 400);
        assert_eq!(matching("all_tenants=1&project_id=p2", &a, &rows), vec![2]);
        assert_eq!(matching("all_tenants=1&tenant_id=p3", &a, &rows), vec![3]);
        assert_eq!(
            matching("all_tenants=1&tenant_id=p3&project_id=p2", &a, &rows),
            vec![2]
        );
        assert_eq!(
            matching("all_tenants=1&project_id=p2&tenant_id=p3", &a, &rows),
            vec![3]
        );
        let e = err("all_tenants=1", &user(1));
        assert_eq!(
            (e.code, e.message.as_str()),
            (403, "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.")
        );
        assert_eq!(err("all_tenants", &user(90)).code, 403);
        let detail = ListContext {
            detail: true,
            ..user(1)
        };
        assert_eq!(
            err("all_tenants=1", &detail).message,
            "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed."
        );
    }

    // -- sorting ---------------------------------------------------------------

    #[test]
    fn default_sort_is_created_at_desc_then_id() {
        let rows = [inst(1), inst(3), inst(2)];
        assert_eq!(listed("", &user(1), &rows), vec![3, 2, 1]);
        // Same created_at: id, in the first direction.
        let same: Vec<Instance> = (1..=3).map(|n| with(n, |i| i.created_at = t0())).collect();
        assert_eq!(listed("", &user(1), &same), vec![3, 2, 1]);
        assert_eq!(listed("sort_dir=asc", &user(1), &same), vec![1, 2, 3]);
        assert_eq!(
            q("", &user(1)).sort_keys(),
            vec![("created_at", "desc"), ("id", "desc")]
        );
        assert_eq!(
            q("sort_dir=asc", &user(1)).sort_keys(),
            vec![("created_at", "asc"), ("id", "asc")]
        );
    }

    fn sort_rows() -> Vec<Instance> {
        vec![
            with(1, |i| {
                i.display_name = "b".into();
                i.created_at = t0() + Duration::minutes(1);
            }),
            with(2, |i| {
                i.display_name = "a".into();
                i.created_at = t0() + Duration::minutes(1);
                i.vm_state = VmState::Stopped;
            }),
            with(3, |i| {
                i.display_name = "b".into();
                i.created_at = t0() + Duration::minutes(1);
                i.vm_state = VmState::Stopped;
            }),
            with(4, |i| {
                i.display_name = "b".into();
                i.created_at = t0();
            }),
        ]
    }

    #[test]
    fn sort_keys_dirs_and_ties() {
        let rows = sort_rows();
        let c = user(1);
        assert_eq!(
            listed("sort_key=display_name&sort_dir=asc", &c, &rows),
            vec![2, 4, 1, 3]
        );
        assert_eq!(
            listed("sort_key=display_name&sort_dir=desc", &c, &rows),
            vec![3, 1, 4, 2]
        );
        // No dir: the default desc.
        assert_eq!(listed("sort_key=display_name", &c, &rows), vec![3, 1, 4, 2]);
        // Two keys, each with its dir; ties fall back to the first dir.
        assert_eq!(
            listed(
                "sort_key=vm_state&sort_dir=asc&sort_key=display_name&sort_dir=desc",
                &c,
                &rows
            ),
            vec![4, 1, 3, 2]
        );
        // Fewer dirs than keys: the first dir fills in.
        let query = q("sort_key=vm_state&sort_key=display_name&sort_dir=asc", &c);
        assert_eq!(
            query.sort_keys(),
            vec![
                ("vm_state", "asc"),
                ("display_name", "asc"),
                ("created_at", "asc"),
                ("id", "asc")
            ]
        );
        assert_eq!(
            listed(
                "sort_key=vm_state&sort_key=display_name&sort_dir=asc",
                &c,
                &rows
            ),
            vec![4, 1, 2, 3]
        );
        // created_at given explicitly is not appended again.
        assert_eq!(
            q("sort_key=created_at&sort_dir=asc&sort_key=uuid", &c).sort_keys(),
            vec![("created_at", "asc"), ("uuid", "asc"), ("id", "asc")]
        );
        // Whitespace around values is stripped.
        assert_eq!(
            listed("sort_key=display_name&sort_dir= asc ", &c, &rows),
            vec![2, 4, 1, 3]
        );
    }

    #[test]
    fn sort_direction_errors() {
        let c = user(1);
        let e = err("sort_key=display_name&sort_dir=asc&sort_dir=desc", &c);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "Invalid input received: Sort direction size exceeds sort key size"
            )
        );
        for d in ["up", "ASC", "Desc", ""] {
            let e = err(&format!("sort_dir={d}"), &c);
            assert_eq!(
                (e.code, e.message.as_str()),
                (
                    400,
                    "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'"
                ),
                "{d}"
            );
        }
    }

    #[test]
    fn nulls_sort_first_ascending() {
        let rows = [
            inst(1),
            with(2, |i| i.host = None),
            with(3, |i| i.host = Some("a".into())),
        ];
        let a = admin(1);
        assert_eq!(
            listed("sort_key=host&sort_dir=asc", &a, &rows),
            vec![2, 3, 1]
        );
        assert_eq!(
            listed("sort_key=host&sort_dir=desc", &a, &rows),
            vec![1, 3, 2]
        );
    }

    #[test]
    fn ignored_and_unknown_sort_keys() {
        let rows = sort_rows();
        let query = q(
            "sort_key=deleted&sort_dir=asc&sort_key=display_name&sort_dir=desc",
            &admin(74),
        );
        assert_eq!(
            query.sort_keys(),
            vec![
                ("display_name", "desc"),
                ("created_at", "desc"),
                ("id", "desc")
            ]
        );
        // `id` is dropped with its `asc`: the default created_at desc, id desc.
        assert_eq!(
            listed("sort_key=id&sort_dir=asc", &user(1), &rows),
            vec![3, 2, 1, 4]
        );
        for k in IGNORED_SORT_KEYS.iter().filter(|k| **k != "locked") {
            assert!(parse(&format!("sort_key={k}"), &user(74)).is_ok(), "{k}");
            let e = err(&format!("sort_key={k}"), &user(75));
            assert_eq!(e.code, 400);
            assert!(
                e.message.starts_with(&format!(
                    "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of ['locked', 'access_ip_v4',"
                )),
                "{}",
                e.message
            );
        }
        // Never-known keys are 400 at every version.
        assert_eq!(err("sort_key=bogus", &user(1)).code, 400);
        assert_eq!(err("sort_key=bogus", &admin(74)).code, 400);
        // An ignored key dropped with its dir can leave too many dirs.
        assert_eq!(
            err("sort_key=deleted&sort_dir=asc&sort_dir=desc", &admin(1)).code,
            400
        );
        // Every valid key sorts.
        for k in VALID_SORT_KEYS {
            let all: Vec<&Instance> = rows.iter().collect();
            let (got, _) = q(&format!("sort_key={k}"), &admin(75)).apply(&all).unwrap();
            assert_eq!(got.len(), 4, "{k}");
        }
    }

    #[test]
    fn locked_sort_key_from_2_73() {
        let rows = [with(1, |i| i.locked_by = Some("owner".into())), inst(2)];
        assert_eq!(
            listed("sort_key=locked&sort_dir=asc", &user(73), &rows),
            vec![2, 1]
        );
        assert_eq!(
            listed("sort_key=locked&sort_dir=desc", &user(73), &rows),
            vec![1, 2]
        );
        // Ignored below 2.73 (created_at asc then).
        assert_eq!(
            listed("sort_key=locked&sort_dir=asc", &user(72), &rows),
            vec![2, 1]
        );
        assert_eq!(
            q("sort_key=locked&sort_dir=asc", &user(72)).sort_keys(),
            vec![("created_at", "desc"), ("id", "desc")]
        );
    }

    #[test]
    fn host_and_node_sort_are_admin_only() {
        for k in ["host", "node"] {
            let e = err(&format!("sort_key={k}"), &user(1));
            assert_eq!(e.code, 403);
            assert_eq!(
                e.message,
                format!("Only administrators can sort servers by {k}")
            );
            assert!(parse(&format!("sort_key={k}"), &admin(1)).is_ok());
        }
    }

    // -- paging ----------------------------------------------------------------

    #[test]
    fn limit_validation() {
        let c = user(1);
        assert_eq!(
            err("limit=abc", &c).message,
            "Invalid input for query parameters limit. Value: abc. 'abc' does not match '^[0-9]*$'"
        );
        assert_eq!(
            err("limit=-1", &c).message,
            "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'"
        );
        assert_eq!(
            err("limit=", &c).message,
            "Invalid input for query parameters limit. Value: . '' should be non-empty"
        );
        assert_eq!(err("limit=1.5", &c).code, 400);
        // Every value is checked even though the last one counts.
        assert_eq!(err("limit=abc&limit=2", &c).code, 400);
        assert_eq!(q("limit=5&limit=2", &c).limit(), 2);
        assert_eq!(q("", &c).limit(), 1000);
        assert_eq!(q("limit=5000", &c).limit(), 1000);
        assert_eq!(q("limit=99999999999999999999999999", &c).limit(), 1000);
        assert_eq!(q("limit=007", &c).limit(), 7);
        let small = ListContext {
            max_limit: 3,
            ..user(1)
        };
        assert_eq!(q("limit=10", &small).limit(), 3);
        assert_eq!(q("", &small).limit(), 3);
    }

    #[test]
    fn marker_and_limit_paging() {
        let rows: Vec<Instance> = (1..=5).map(inst).collect();
        let c = user(1);
        assert_eq!(page("limit=2", &c, &rows).unwrap(), (vec![5, 4], true));
        let m = |n: i64, limit: u32| format!("marker={}&limit={limit}", uuid(n));
        assert_eq!(page(&m(4, 2), &c, &rows).unwrap(), (vec![3, 2], true));
        // The last page still gets a link when it is exactly full.
        assert_eq!(page(&m(3, 2), &c, &rows).unwrap(), (vec![2, 1], true));
        assert_eq!(page(&m(2, 2), &c, &rows).unwrap(), (vec![1], false));
        assert_eq!(page(&m(1, 2), &c, &rows).unwrap(), (vec![], false));
        assert_eq!(page("", &c, &rows).unwrap(), (vec![5, 4, 3, 2, 1], false));
        let small = ListContext {
            max_limit: 2,
            ..user(1)
        };
        assert_eq!(page("", &small, &rows).unwrap(), (vec![5, 4], true));
        assert_eq!(page("limit=10", &small, &rows).unwrap(), (vec![5, 4], true));
        // Ascending too.
        assert_eq!(
            page(&format!("sort_dir=asc&{}", m(2, 2)), &c, &rows).unwrap(),
            (vec![3, 4], true)
        );
    }

    #[test]
    fn marker_lookup() {
        let rows = [
            inst(1),
            inst(2),
            hard_deleted(3),
            inst(4),
            with(5, |i| i.project_id = "p2".into()),
        ];
        let c = user(1);
        let e = page("marker=nope", &c, &rows).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "marker [nope] not found")
        );
        // A deleted (hidden) marker still places the page.
        assert_eq!(
            page(&format!("marker={}", uuid(3)), &c, &rows).unwrap(),
            (vec![2, 1], false)
        );
        // So does a row of another project.
        assert_eq!(
            page(&format!("marker={}", uuid(5)), &c, &rows).unwrap(),
            (vec![4, 2, 1], false)
        );
        // limit=0: empty, no link, marker not even looked up.
        assert_eq!(
            page("limit=0&marker=nope", &c, &rows).unwrap(),
            (vec![], false)
        );
        assert_eq!(page("limit=0", &c, &rows).unwrap(), (vec![], false));
        // The paginate entry point with an explicit lookup.
        let query = q("marker=x&limit=1", &c);
        let sorted: Vec<&Instance> = rows.iter().collect();
        let lookup = |id: &str| if id == "x" { Some(&rows[1]) } else { None };
        let (got, more) = query.paginate(sorted, &lookup).unwrap();
        assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), vec![1]);
        assert!(more);
        assert_eq!(query.marker(), Some("x"));
    }

    #[test]
    fn next_link_query() {
        let c = user(1);
        assert_eq!(
            q("name=vm&limit=2&marker=abc&sort_key=display_name", &c).next_query("LAST"),
            "limit=2&marker=LAST&name=vm&sort_key=display_name"
        );
        // No marker yet: appended at the end.
        assert_eq!(
            q("name=vm&limit=2", &c).next_query("LAST"),
            "limit=2&name=vm&marker=LAST"
        );
        assert_eq!(q("", &c).next_query("u-1"), "marker=u-1");
        // Repeated names collapse to one value: the last after sorting.
        assert_eq!(
            q("status=SHUTOFF&status=ACTIVE&limit=1", &c).next_query("x"),
            "limit=1&status=SHUTOFF&marker=x"
        );
        assert_eq!(
            q(
                "sort_key=uuid&sort_key=display_name&sort_dir=asc&sort_dir=desc",
                &c
            )
            .next_query("x"),
            "sort_dir=desc&sort_key=uuid&marker=x"
        );
        // Form encoding.
        assert_eq!(
            q("name=a b/c&limit=1", &c).next_query("x y"),
            "limit=1&name=a+b%2Fc&marker=x+y"
        );
        assert_eq!(
            q("changes-since=2024-01-02T10:00:00+02:00", &c).next_query("m"),
            "changes-since=2024-01-02T10%3A00%3A00%2B02%3A00&marker=m"
        );
        // Filters a non-admin may not use stay in the link; unknown names
        // the schema stripped (below 2.75) do not.
        assert_eq!(
            q("host=h&limit=1", &c).next_query("x"),
            "host=h&limit=1&marker=x"
        );
        assert_eq!(
            q("foo=1&limit=1&_x=2", &c).next_query("x"),
            "_x=2&limit=1&marker=x"
        );
        assert_eq!(
            q("tags=a&limit=1", &user(25)).next_query("x"),
            "limit=1&marker=x"
        );
        assert_eq!(
            q("tags=a&limit=1", &user(26)).next_query("x"),
            "limit=1&tags=a&marker=x"
        );
    }

    #[test]
    fn full_walk_with_next_links() {
        let rows: Vec<Instance> = (1..=5)
            .map(|n| with(n, |i| i.display_name = format!("web-{n}")))
            .chain([with(6, |i| i.display_name = "db".into())])
            .collect();
        let all: Vec<&Instance> = rows.iter().collect();
        let c = user(1);
        let mut qs = "name=web&limit=2&sort_key=display_name&sort_dir=asc".to_string();
        let mut seen = Vec::new();
        loop {
            let query = q(&qs, &c);
            let (got, more) = query.apply(&all).unwrap();
            seen.extend(got.iter().map(|i| i.id));
            if !more {
                break;
            }
            let last = got.last().map(|i| i.uuid.clone()).unwrap();
            qs = query.next_query(&last);
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    }

    // -- helpers ---------------------------------------------------------------

    #[test]
    fn iso8601_parsing() {
        let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        let cases = [
            ("2024-01-02T10:00:00Z", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T10:00:00", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02 10:00:00", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T10:00", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T10", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T1030", at(2024, 1, 2, 10, 30, 0)),
            ("2024-01-02", at(2024, 1, 2, 0, 0, 0)),
            ("2024-1-2", at(2024, 1, 2, 0, 0, 0)),
            ("2024-01", at(2024, 1, 1, 0, 0, 0)),
            ("2024", at(2024, 1, 1, 0, 0, 0)),
            ("20240102", at(2024, 1, 2, 0, 0, 0)),
            ("20240102T103005", at(2024, 1, 2, 10, 30, 5)),
            ("2024-01-02T12:00:00+02:00", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T05:00:00-0500", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T12:00:00+02", at(2024, 1, 2, 10, 0, 0)),
            ("2024-01-02T00:30:00+01:00", at(2024, 1, 1, 23, 30, 0)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_iso8601(s), Some(want), "{s}");
        }
        let frac = parse_iso8601("2024-01-02T10:00:00.5Z").unwrap();
        assert_eq!(
            frac,
            at(2024, 1, 2, 10, 0, 0) + Duration::microseconds(500_000)
        );
        let frac = parse_iso8601("2024-01-02T10:00:00,1234567").unwrap();
        assert_eq!(
            frac,
            at(2024, 1, 2, 10, 0, 0) + Duration::microseconds(123_456)
        );
        for bad in [
            "",
            "yesterday",
            "202401",
            "24-01-02",
            "2024-13-01",
            "2024-02-30",
            "2024-01-02T25:00:00",
            "2024-01-02T10:00:60",
            "2024-01-02T10:00:00+24:00",
            "0000-01-01",
            "2024-01-02T10:00:00 Z",
            "2024-01-02X10",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn python_repr_and_quoting() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\\b\n"), "'a\\\\b\\n'");
        assert_eq!(quote_plus("a b&c=d/é~_.-"), "a+b%26c%3Dd%2F%C3%A9~_.-");
    }

    #[test]
    fn sorting_is_total_and_stable_across_calls() {
        // Identical sort values everywhere but uuid: still a total order.
        let rows: Vec<Instance> = (1..=4)
            .map(|n| {
                with(n, |i| {
                    i.id = 7;
                    i.created_at = t0();
                })
            })
            .collect();
        let query = q("", &user(1));
        let mut a: Vec<&Instance> = rows.iter().collect();
        let mut b: Vec<&Instance> = rows.iter().rev().collect();
        query.sort(&mut a);
        query.sort(&mut b);
        let ua: Vec<&str> = a.iter().map(|i| i.uuid.as_str()).collect();
        let ub: Vec<&str> = b.iter().map(|i| i.uuid.as_str()).collect();
        assert_eq!(ua, ub);
        assert_eq!(ua, vec![uuid(4), uuid(3), uuid(2), uuid(1)]);
    }
}
