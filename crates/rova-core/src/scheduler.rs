//! Nova's filter scheduler as pure functions: given the state of every
//! compute host and one request, decide where the instance goes or why it
//! cannot go anywhere. No I/O and no locking here; the compute service
//! snapshots host usage under its claim lock, calls [`select_host`], and
//! records the claim in the same critical section.
//!
//! The decision runs in Nova's order:
//! 1. **Candidates** (what Placement and the request filters do): the
//!    requested destination, the availability zone, disabled services, and
//!    VCPU / MEMORY_MB / DISK_GB inventory with allocation ratios, reserved
//!    memory and the `max_unit` rule. Nothing left → `No valid host was
//!    found. ` (Nova's reason is empty when Placement returns nothing).
//! 2. **Filters** (`nova/scheduler/filters/`): `ignore_hosts`, ComputeFilter,
//!    AvailabilityZoneFilter, ServerGroupAntiAffinityFilter (with
//!    `max_server_per_host`), ServerGroupAffinityFilter, SameHostFilter,
//!    DifferentHostFilter, JsonFilter (`query`), SimpleCIDRAffinityFilter
//!    (`build_near_host_ip` + `cidr`). Nothing left → `No valid host was
//!    found. There are not enough hosts available.`
//! 3. **Weighers** (`nova/scheduler/weights/`): RAMWeigher (more free RAM
//!    wins: spread), ServerGroupSoftAffinityWeigher and
//!    ServerGroupSoftAntiAffinityWeigher, each normalised to 0..1 as
//!    `nova/weights.py::normalize` does, times its multiplier. Ties go to
//!    the host whose name sorts first, so the choice is deterministic.

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What one instance asks of a host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

impl Resources {
    /// The disk an instance takes on its host: root (unless volume-backed),
    /// ephemeral, and swap (MB, rounded up to GB) as Nova's
    /// `resources_from_flavor` does.
    pub fn from_flavor(
        vcpus: u32,
        ram: u64,
        root_gb: u64,
        ephemeral_gb: u64,
        swap_mb: u64,
        volume_backed: bool,
    ) -> Self {
        let root = if volume_backed { 0 } else { root_gb };
        Resources {
            vcpus,
            memory_mb: ram,
            disk_gb: root + ephemeral_gb + swap_mb.div_ceil(1024),
        }
    }
}

/// The state of one compute host (service + node) as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// Service host name (also the node's hypervisor_hostname).
    pub host: String,
    pub availability_zone: String,
    pub host_ip: String,
    pub hypervisor_type: String,
    /// The service heartbeat is current and the service is not forced down.
    pub service_up: bool,
    /// The service is disabled (no new instances).
    pub service_disabled: bool,
    pub vcpus: u32,
    pub vcpus_used: u64,
    pub cpu_allocation_ratio: f64,
    /// Physical memory, including `reserved_memory_mb`.
    pub memory_mb: u64,
    /// Used by instances (the reserved memory is added on top by
    /// [`HostState::memory_mb_used`]).
    pub instance_memory_mb: u64,
    pub reserved_memory_mb: u64,
    pub ram_allocation_ratio: f64,
    pub local_gb: u64,
    pub local_gb_used: u64,
    pub disk_allocation_ratio: f64,
    /// Uuids of the instances holding resources here (shared: the fleet
    /// keeps one set per host up to date and hands out cheap copies).
    pub instances: std::sync::Arc<BTreeSet<String>>,
}

impl HostState {
    /// `memory_mb_used` as Nova reports it: reserved plus instances.
    pub fn memory_mb_used(&self) -> u64 {
        self.reserved_memory_mb + self.instance_memory_mb
    }
    /// `free_ram_mb` (physical; negative when overcommitted).
    pub fn free_ram_mb(&self) -> i64 {
        self.memory_mb as i64 - self.memory_mb_used() as i64
    }
    /// `free_disk_mb` (physical; negative when overcommitted).
    pub fn free_disk_mb(&self) -> i64 {
        (self.local_gb as i64 - self.local_gb_used as i64) * 1024
    }
    /// Placement's check for one inventory: `used + want <= (total -
    /// reserved) * ratio` and `want <= max_unit` (the physical total).
    fn inventory_fits(total: u64, reserved: u64, ratio: f64, used: u64, want: u64) -> bool {
        if want == 0 {
            return true;
        }
        let capacity = (total.saturating_sub(reserved) as f64 * ratio).floor() as u64;
        want <= total && used + want <= capacity
    }
    /// Whether the host's inventory can take `r` on top of what it holds.
    pub fn fits(&self, r: &Resources) -> bool {
        Self::inventory_fits(
            self.vcpus as u64,
            0,
            self.cpu_allocation_ratio,
            self.vcpus_used,
            r.vcpus as u64,
        ) && Self::inventory_fits(
            self.memory_mb,
            self.reserved_memory_mb,
            self.ram_allocation_ratio,
            self.instance_memory_mb,
            r.memory_mb,
        ) && Self::inventory_fits(
            self.local_gb,
            0,
            self.disk_allocation_ratio,
            self.local_gb_used,
            r.disk_gb,
        )
    }
    /// Adds an instance's usage (a claim).
    pub fn consume(&mut self, instance_uuid: &str, r: &Resources) {
        self.vcpus_used += r.vcpus as u64;
        self.instance_memory_mb += r.memory_mb;
        self.local_gb_used += r.disk_gb;
        std::sync::Arc::make_mut(&mut self.instances).insert(instance_uuid.to_string());
    }
    /// A host attribute for JsonFilter's `$name` lookups.
    fn attribute(&self, name: &str) -> Option<Value> {
        Some(match name {
            "host" | "nodename" | "hypervisor_hostname" => Value::from(self.host.clone()),
            "host_ip" => Value::from(self.host_ip.clone()),
            "hypervisor_type" => Value::from(self.hypervisor_type.clone()),
            "free_ram_mb" => Value::from(self.free_ram_mb()),
            "free_disk_mb" => Value::from(self.free_disk_mb()),
            "total_usable_ram_mb" => Value::from(self.memory_mb),
            "total_usable_disk_gb" => Value::from(self.local_gb),
            "disk_mb_used" => Value::from(self.local_gb_used * 1024),
            "vcpus_total" => Value::from(self.vcpus),
            "vcpus_used" => Value::from(self.vcpus_used),
            "num_instances" => Value::from(self.instances.len()),
            "ram_allocation_ratio" => Value::from(self.ram_allocation_ratio),
            "cpu_allocation_ratio" => Value::from(self.cpu_allocation_ratio),
            "disk_allocation_ratio" => Value::from(self.disk_allocation_ratio),
            _ => return None,
        })
    }
}

/// A server group policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPolicy {
    Affinity,
    AntiAffinity,
    SoftAffinity,
    SoftAntiAffinity,
}

impl GroupPolicy {
    pub const ALL: [GroupPolicy; 4] = [
        GroupPolicy::AntiAffinity,
        GroupPolicy::Affinity,
        GroupPolicy::SoftAntiAffinity,
        GroupPolicy::SoftAffinity,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            GroupPolicy::Affinity => "affinity",
            GroupPolicy::AntiAffinity => "anti-affinity",
            GroupPolicy::SoftAffinity => "soft-affinity",
            GroupPolicy::SoftAntiAffinity => "soft-anti-affinity",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The server group a request belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub uuid: String,
    pub policy: GroupPolicy,
    /// `rules.max_server_per_host` (anti-affinity only; default 1).
    pub max_server_per_host: Option<u64>,
    /// Every member (may include the instance being scheduled).
    pub members: BTreeSet<String>,
}

/// Everything the scheduler is told about one instance to place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSpec {
    pub instance_uuid: String,
    pub resources: Resources,
    /// The requested availability zone, if any.
    pub availability_zone: Option<String>,
    pub group: Option<GroupSpec>,
    /// `same_host` hint: server uuids.
    pub same_host: Vec<String>,
    /// `different_host` hint: server uuids.
    pub different_host: Vec<String>,
    /// `query` hint (a JSON string or an already parsed value).
    pub query: Option<Value>,
    /// `build_near_host_ip` hint.
    pub build_near_host_ip: Option<String>,
    /// `cidr` hint (default `/24`).
    pub cidr: Option<String>,
    /// Hosts that must not be chosen (the current host on a move).
    pub ignore_hosts: Vec<String>,
    /// The requested destination (create `host`, migrate/evacuate `host`).
    pub requested_host: Option<String>,
}

impl RequestSpec {
    /// Reads the scheduler hints of a create request (as stored on the
    /// instance). Unknown keys are ignored, as Nova's filters ignore them.
    pub fn apply_hints(&mut self, hints: &std::collections::BTreeMap<String, Value>) {
        fn uuids(v: Option<&Value>) -> Vec<String> {
            match v {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => vec![],
            }
        }
        self.same_host = uuids(hints.get("same_host"));
        self.different_host = uuids(hints.get("different_host"));
        self.query = hints.get("query").cloned();
        self.build_near_host_ip = hints
            .get("build_near_host_ip")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.cidr = hints
            .get("cidr")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
}

/// Why no host was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoValidHost {
    /// No allocation candidates: capacity, zone, disabled services or the
    /// requested destination ruled every host out before the filters.
    NoCandidates,
    /// The filters (or `ignore_hosts`) removed every candidate.
    Filtered,
}

impl NoValidHost {
    /// Nova's `NoValidHost` message for this case.
    pub fn message(self) -> &'static str {
        match self {
            NoValidHost::NoCandidates => "No valid host was found. ",
            NoValidHost::Filtered => {
                "No valid host was found. There are not enough hosts available."
            }
        }
    }
}

/// Weigher multipliers (`[filter_scheduler]*_weight_multiplier`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub ram: f64,
    pub soft_affinity: f64,
    pub soft_anti_affinity: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            ram: 1.0,
            soft_affinity: 1.0,
            soft_anti_affinity: 1.0,
        }
    }
}

/// Stage 1: the allocation candidates.
pub fn candidates<'a>(hosts: &'a [HostState], spec: &RequestSpec) -> Vec<&'a HostState> {
    hosts
        .iter()
        .filter(|h| spec.requested_host.as_deref().is_none_or(|r| r == h.host))
        .filter(|h| {
            spec.availability_zone
                .as_deref()
                .is_none_or(|az| az == h.availability_zone)
        })
        .filter(|h| !h.service_disabled)
        .filter(|h| h.fits(&spec.resources))
        .collect()
}

/// Stage 2: one host through every enabled filter.
pub fn host_passes(h: &HostState, spec: &RequestSpec, group_hosts: &BTreeSet<String>) -> bool {
    compute_filter(h)
        && availability_zone_filter(h, spec)
        && anti_affinity_filter(h, spec)
        && affinity_filter(h, spec, group_hosts)
        && same_host_filter(h, spec)
        && different_host_filter(h, spec)
        && json_filter(h, spec)
        && cidr_affinity_filter(h, spec)
}

/// ComputeFilter: the service is up and enabled.
pub fn compute_filter(h: &HostState) -> bool {
    h.service_up && !h.service_disabled
}

/// AvailabilityZoneFilter.
pub fn availability_zone_filter(h: &HostState, spec: &RequestSpec) -> bool {
    spec.availability_zone
        .as_deref()
        .is_none_or(|az| az == h.availability_zone)
}

/// Group members on this host other than the instance itself.
fn members_on_host(h: &HostState, g: &GroupSpec, self_uuid: &str) -> usize {
    h.instances
        .iter()
        .filter(|u| *u != self_uuid && g.members.contains(*u))
        .count()
}

/// ServerGroupAntiAffinityFilter: fewer than `max_server_per_host` (1)
/// members already here.
pub fn anti_affinity_filter(h: &HostState, spec: &RequestSpec) -> bool {
    let Some(g) = spec
        .group
        .as_ref()
        .filter(|g| g.policy == GroupPolicy::AntiAffinity)
    else {
        return true;
    };
    if h.instances.contains(&spec.instance_uuid) {
        return true;
    }
    let max = g.max_server_per_host.unwrap_or(1) as usize;
    members_on_host(h, g, &spec.instance_uuid) < max
}

/// ServerGroupAffinityFilter: once other members are placed, only the
/// hosts they are on (`group_hosts`, computed over every host).
pub fn affinity_filter(h: &HostState, spec: &RequestSpec, group_hosts: &BTreeSet<String>) -> bool {
    match &spec.group {
        Some(g) if g.policy == GroupPolicy::Affinity && !group_hosts.is_empty() => {
            group_hosts.contains(&h.host)
        }
        _ => true,
    }
}

/// The hosts holding a member of the request's group other than itself
/// (Nova's `instance_group.hosts`).
pub fn group_hosts(hosts: &[HostState], spec: &RequestSpec) -> BTreeSet<String> {
    match &spec.group {
        Some(g) => hosts
            .iter()
            .filter(|h| members_on_host(h, g, &spec.instance_uuid) > 0)
            .map(|h| h.host.clone())
            .collect(),
        None => BTreeSet::new(),
    }
}

/// SameHostFilter: only hosts running one of the `same_host` servers.
pub fn same_host_filter(h: &HostState, spec: &RequestSpec) -> bool {
    spec.same_host.is_empty() || spec.same_host.iter().any(|u| h.instances.contains(u))
}

/// DifferentHostFilter: no host running one of the `different_host` servers.
pub fn different_host_filter(h: &HostState, spec: &RequestSpec) -> bool {
    !spec.different_host.iter().any(|u| h.instances.contains(u))
}

/// SimpleCIDRAffinityFilter: the host IP is in `build_near_host_ip` +
/// `cidr` (default `/24`).
pub fn cidr_affinity_filter(h: &HostState, spec: &RequestSpec) -> bool {
    let Some(near) = &spec.build_near_host_ip else {
        return true;
    };
    let cidr = spec.cidr.as_deref().unwrap_or("/24");
    let (Ok(net), Ok(ip)) = (near.parse::<IpAddr>(), h.host_ip.parse::<IpAddr>()) else {
        return false;
    };
    let Some(prefix) = cidr.strip_prefix('/').and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    in_network(net, prefix, ip)
}

/// Whether `ip` lies in `net/prefix` (same family only).
pub fn in_network(net: IpAddr, prefix: u32, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// JsonFilter: the `query` hint evaluated against the host. A query that
/// is not valid JSON, or uses an unknown operator, rejects the host (Nova
/// raises inside the filter, which fails the scheduling request).
pub fn json_filter(h: &HostState, spec: &RequestSpec) -> bool {
    let query = match &spec.query {
        None => return true,
        Some(Value::String(s)) if s.is_empty() => return true,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(_) => return false,
        },
        Some(v) => v.clone(),
    };
    if !truthy(&query) {
        return true;
    }
    match eval_json(&query, h) {
        Some(Value::Array(items)) => items.iter().any(truthy),
        Some(v) => truthy(&v),
        None => false,
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number as Python sees it (bools are 0/1).
fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn py_eq(a: &Value, b: &Value) -> bool {
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `a <op> b` for the ordering operators; mixed types compare false.
fn py_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

/// Evaluates one query list; `None` when it cannot be evaluated.
fn eval_json(query: &Value, h: &HostState) -> Option<Value> {
    let items = query.as_array()?;
    if items.is_empty() {
        return Some(Value::Bool(true));
    }
    let cmd = items[0].as_str()?;
    let mut args: Vec<Value> = Vec::new();
    for arg in &items[1..] {
        let cooked = match arg {
            Value::Array(_) => Some(eval_json(arg, h)?),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => match s.strip_prefix('$') {
                Some(name) => {
                    let mut path = name.split('.');
                    let first = path.next().unwrap_or_default();
                    let mut v = h.attribute(first);
                    for key in path {
                        v = v.and_then(|x| x.get(key).cloned());
                    }
                    v
                }
                None => Some(arg.clone()),
            },
            other => Some(other.clone()),
        };
        if let Some(c) = cooked {
            args.push(c);
        }
    }
    use std::cmp::Ordering::*;
    let compare = |ok: &dyn Fn(&Value, &Value) -> bool| -> Value {
        Value::Bool(args.len() >= 2 && args[1..].iter().all(|b| ok(&args[0], b)))
    };
    Some(match cmd {
        "=" => compare(&py_eq),
        "<" => compare(&|a, b| py_cmp(a, b) == Some(Less)),
        ">" => compare(&|a, b| py_cmp(a, b) == Some(Greater)),
        "<=" => compare(&|a, b| matches!(py_cmp(a, b), Some(Less | Equal))),
        ">=" => compare(&|a, b| matches!(py_cmp(a, b), Some(Greater | Equal))),
        "in" => Value::Bool(args.len() >= 2 && args[1..].iter().any(|b| py_eq(&args[0], b))),
        "not" => Value::Array(args.iter().map(|a| Value::Bool(!truthy(a))).collect()),
        "or" => Value::Bool(args.iter().any(truthy)),
        "and" => Value::Bool(args.iter().all(truthy)),
        _ => return None,
    })
}

/// Nova's `normalize`: scale to 0..1; all equal → all 0.
pub fn normalize(raw: &[f64]) -> Vec<f64> {
    let (Some(min), Some(max)) = (
        raw.iter().copied().reduce(f64::min),
        raw.iter().copied().reduce(f64::max),
    ) else {
        return vec![];
    };
    if min == max {
        return vec![0.0; raw.len()];
    }
    raw.iter().map(|w| (w - min) / (max - min)).collect()
}

/// Stage 3: the total weight of each host (same order as `hosts`).
pub fn weigh(hosts: &[&HostState], spec: &RequestSpec, w: &Weights) -> Vec<f64> {
    let ram: Vec<f64> = hosts.iter().map(|h| h.free_ram_mb() as f64).collect();
    let soft = |policy: GroupPolicy, sign: f64| -> Vec<f64> {
        hosts
            .iter()
            .map(|h| match &spec.group {
                Some(g) if g.policy == policy => {
                    sign * members_on_host(h, g, &spec.instance_uuid) as f64
                }
                _ => 0.0,
            })
            .collect()
    };
    let parts = [
        (normalize(&ram), w.ram),
        (
            normalize(&soft(GroupPolicy::SoftAffinity, 1.0)),
            w.soft_affinity,
        ),
        (
            normalize(&soft(GroupPolicy::SoftAntiAffinity, -1.0)),
            w.soft_anti_affinity,
        ),
    ];
    (0..hosts.len())
        .map(|i| {
            parts
                .iter()
                .map(|(v, m)| v.get(i).copied().unwrap_or(0.0) * m)
                .sum()
        })
        .collect()
}

/// Picks the host for one instance: candidates, filters, then the best
/// weight (ties to the lowest host name).
pub fn select_host(
    hosts: &[HostState],
    spec: &RequestSpec,
    w: &Weights,
) -> Result<String, NoValidHost> {
    let cands = candidates(hosts, spec);
    if cands.is_empty() {
        return Err(NoValidHost::NoCandidates);
    }
    let gh = group_hosts(hosts, spec);
    let passing: Vec<&HostState> = cands
        .into_iter()
        .filter(|h| !spec.ignore_hosts.contains(&h.host))
        .filter(|h| host_passes(h, spec, &gh))
        .collect();
    if passing.is_empty() {
        return Err(NoValidHost::Filtered);
    }
    let weights = weigh(&passing, spec, w);
    let mut best: Option<(f64, &str)> = None;
    for (h, wt) in passing.iter().zip(weights) {
        let better = match best {
            None => true,
            Some((bw, bn)) => wt > bw || (wt == bw && h.host.as_str() < bn),
        };
        if better {
            best = Some((wt, h.host.as_str()));
        }
    }
    best.map(|(_, n)| n.to_string())
        .ok_or(NoValidHost::Filtered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(name: &str) -> HostState {
        HostState {
            host: name.into(),
            availability_zone: "nova".into(),
            host_ip: "10.1.0.1".into(),
            hypervisor_type: "fake".into(),
            service_up: true,
            service_disabled: false,
            vcpus: 16,
            vcpus_used: 0,
            cpu_allocation_ratio: 4.0,
            memory_mb: 65536,
            instance_memory_mb: 0,
            reserved_memory_mb: 512,
            ram_allocation_ratio: 1.5,
            local_gb: 1000,
            local_gb_used: 0,
            disk_allocation_ratio: 1.0,
            instances: Default::default(),
        }
    }

    fn three() -> Vec<HostState> {
        let mut v = vec![host("h1"), host("h2"), host("h3")];
        for (i, h) in v.iter_mut().enumerate() {
            h.host_ip = format!("10.1.{i}.5");
        }
        v
    }

    fn spec(uuid: &str) -> RequestSpec {
        RequestSpec {
            instance_uuid: uuid.into(),
            resources: Resources {
                vcpus: 1,
                memory_mb: 512,
                disk_gb: 1,
            },
            ..Default::default()
        }
    }

    fn group(policy: GroupPolicy, members: &[&str], max: Option<u64>) -> GroupSpec {
        GroupSpec {
            uuid: "g".into(),
            policy,
            max_server_per_host: max,
            members: members.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Places `n` instances one after the other, consuming as a claim does.
    fn place_all(
        hosts: &mut [HostState],
        n: usize,
        mk: impl Fn(usize) -> RequestSpec,
    ) -> Vec<Result<String, NoValidHost>> {
        (0..n)
            .map(|i| {
                let s = mk(i);
                let r = select_host(hosts, &s, &Weights::default());
                if let Ok(name) = &r {
                    if let Some(h) = hosts.iter_mut().find(|h| h.host == *name) {
                        h.consume(&s.instance_uuid, &s.resources);
                    }
                }
                r
            })
            .collect()
    }

    #[test]
    fn resources_from_flavor() {
        assert_eq!(
            Resources::from_flavor(2, 4096, 40, 5, 1536, false).disk_gb,
            47
        );
        assert_eq!(Resources::from_flavor(2, 4096, 40, 0, 0, true).disk_gb, 0);
    }

    #[test]
    fn capacity_with_ratios_reserved_and_max_unit() {
        let h = host("h1");
        // 16 vcpus x 4.0 = 64, but a single instance may not exceed 16.
        assert!(h.fits(&Resources {
            vcpus: 16,
            memory_mb: 1,
            disk_gb: 1
        }));
        assert!(!h.fits(&Resources {
            vcpus: 17,
            memory_mb: 1,
            disk_gb: 1
        }));
        let mut busy = host("h1");
        busy.vcpus_used = 63;
        assert!(busy.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 0
        }));
        busy.vcpus_used = 64;
        assert!(!busy.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 0
        }));
        // RAM: (65536 - 512) * 1.5 = 97536.
        let mut m = host("h1");
        m.instance_memory_mb = 97536 - 1024;
        assert!(m.fits(&Resources {
            vcpus: 1,
            memory_mb: 1024,
            disk_gb: 0
        }));
        assert!(!m.fits(&Resources {
            vcpus: 1,
            memory_mb: 1025,
            disk_gb: 0
        }));
        // Disk ratio 1.0: 1000 GB.
        let mut d = host("h1");
        d.local_gb_used = 990;
        assert!(d.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 10
        }));
        assert!(!d.fits(&Resources {
            vcpus: 1,
            memory_mb: 1,
            disk_gb: 11
        }));
        assert_eq!(host("h1").memory_mb_used(), 512);
        assert_eq!(host("h1").free_ram_mb(), 65024);
    }

    #[test]
    fn too_big_anywhere_is_no_candidates() {
        let mut s = spec("a");
        s.resources.memory_mb = 1_000_000;
        assert_eq!(
            select_host(&three(), &s, &Weights::default()),
            Err(NoValidHost::NoCandidates)
        );
        assert_eq!(
            NoValidHost::NoCandidates.message(),
            "No valid host was found. "
        );
    }

    #[test]
    fn ram_weigher_spreads() {
        let mut hosts = three();
        let got = place_all(&mut hosts, 6, |i| spec(&format!("i{i}")));
        let names: Vec<String> = got.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(names, ["h1", "h2", "h3", "h1", "h2", "h3"]);
    }

    #[test]
    fn compute_filter_and_disabled() {
        let mut hosts = three();
        hosts[0].service_up = false;
        hosts[1].service_disabled = true;
        assert_eq!(
            select_host(&hosts, &spec("a"), &Weights::default()),
            Ok("h3".into())
        );
        hosts[2].service_up = false;
        assert_eq!(
            select_host(&hosts, &spec("a"), &Weights::default()),
            Err(NoValidHost::Filtered)
        );
        hosts[2].service_disabled = true;
        hosts[0].service_disabled = true;
        assert_eq!(
            select_host(&hosts, &spec("a"), &Weights::default()),
            Err(NoValidHost::NoCandidates)
        );
    }

    #[test]
    fn availability_zone() {
        let mut hosts = three();
        hosts[2].availability_zone = "az2".into();
        let mut s = spec("a");
        s.availability_zone = Some("az2".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h3".into())
        );
        s.availability_zone = Some("nowhere".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::NoCandidates)
        );
    }

    #[test]
    fn anti_affinity_one_per_host_then_fails() {
        let mut hosts = three();
        let members = ["a0", "a1", "a2", "a3"];
        let got = place_all(&mut hosts, 4, |i| {
            let mut s = spec(members[i]);
            s.group = Some(group(GroupPolicy::AntiAffinity, &members, None));
            s
        });
        let mut placed: Vec<String> = got[..3].iter().map(|r| r.clone().unwrap()).collect();
        placed.sort();
        assert_eq!(placed, ["h1", "h2", "h3"]);
        assert_eq!(got[3], Err(NoValidHost::Filtered));
        assert_eq!(
            NoValidHost::Filtered.message(),
            "No valid host was found. There are not enough hosts available."
        );
    }

    #[test]
    fn anti_affinity_max_server_per_host() {
        let mut hosts = vec![host("h1"), host("h2")];
        let members: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let got = place_all(&mut hosts, 5, |i| {
            let mut s = spec(&members[i]);
            s.group = Some(group(GroupPolicy::AntiAffinity, &refs, Some(2)));
            s
        });
        assert!(got[..4].iter().all(|r| r.is_ok()));
        assert_eq!(got[4], Err(NoValidHost::Filtered));
        assert_eq!(hosts[0].instances.len(), 2);
        assert_eq!(hosts[1].instances.len(), 2);
    }

    #[test]
    fn anti_affinity_ignores_self_on_host() {
        let mut hosts = three();
        std::sync::Arc::make_mut(&mut hosts[0].instances).insert("me".into());
        let mut s = spec("me");
        s.group = Some(group(GroupPolicy::AntiAffinity, &["me"], None));
        assert!(anti_affinity_filter(&hosts[0], &s));
    }

    #[test]
    fn affinity_keeps_together() {
        let mut hosts = three();
        let members = ["b0", "b1", "b2", "b3"];
        let got = place_all(&mut hosts, 4, |i| {
            let mut s = spec(members[i]);
            s.group = Some(group(GroupPolicy::Affinity, &members, None));
            s
        });
        let first = got[0].clone().unwrap();
        assert!(got.iter().all(|r| r.as_ref().ok() == Some(&first)));
        // When the group's host is full, affinity fails rather than spreading.
        let h = hosts.iter_mut().find(|h| h.host == first).unwrap();
        h.vcpus_used = 64;
        let mut s = spec("b4");
        s.group = Some(group(GroupPolicy::Affinity, &["b0", "b4"], None));
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::Filtered)
        );
    }

    #[test]
    fn soft_policies_weigh() {
        let mut hosts = three();
        std::sync::Arc::make_mut(&mut hosts[1].instances).insert("s0".into());
        let mut s = spec("s1");
        s.group = Some(group(GroupPolicy::SoftAffinity, &["s0", "s1"], None));
        // RAM is equal everywhere, so soft affinity decides.
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h2".into())
        );
        s.group = Some(group(GroupPolicy::SoftAntiAffinity, &["s0", "s1"], None));
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h1".into())
        );
        // Soft policies never fail: every host already holds a member.
        for h in hosts.iter_mut() {
            std::sync::Arc::make_mut(&mut h.instances).insert("s0".into());
        }
        assert!(select_host(&hosts, &s, &Weights::default()).is_ok());
    }

    #[test]
    fn same_and_different_host() {
        let mut hosts = three();
        std::sync::Arc::make_mut(&mut hosts[1].instances).insert("x".into());
        std::sync::Arc::make_mut(&mut hosts[2].instances).insert("y".into());
        let mut s = spec("a");
        s.same_host = vec!["x".into()];
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h2".into())
        );
        let mut s = spec("a");
        s.different_host = vec!["x".into(), "y".into()];
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h1".into())
        );
        s.different_host.push("z".into());
        std::sync::Arc::make_mut(&mut hosts[0].instances).insert("z".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::Filtered)
        );
        let mut hints = std::collections::BTreeMap::new();
        hints.insert("same_host".to_string(), json!("x"));
        hints.insert("different_host".to_string(), json!(["y", "z"]));
        let mut s = spec("a");
        s.apply_hints(&hints);
        assert_eq!(s.same_host, ["x"]);
        assert_eq!(s.different_host, ["y", "z"]);
    }

    #[test]
    fn json_filter_queries() {
        let mut hosts = three();
        hosts[0].instance_memory_mb = 64000;
        let mut s = spec("a");
        s.query = Some(json!("[\">=\", \"$free_ram_mb\", 30000]"));
        assert!(!json_filter(&hosts[0], &s));
        assert!(json_filter(&hosts[1], &s));
        s.query = Some(json!([
            "and",
            ["=", "$host", "h3"],
            [">", "$vcpus_total", 8]
        ]));
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h3".into())
        );
        s.query = Some(json!(["in", "$host", "h1", "h2"]));
        assert!(json_filter(&hosts[0], &s) && !json_filter(&hosts[2], &s));
        s.query = Some(json!(["not", ["=", "$host", "h1"]]));
        assert!(!json_filter(&hosts[0], &s) && json_filter(&hosts[1], &s));
        s.query = Some(json!(["or", ["=", "$host", "h1"], ["=", "$host", "h2"]]));
        assert!(json_filter(&hosts[1], &s) && !json_filter(&hosts[2], &s));
        // Unknown attribute: dropped, so a one-argument compare is false.
        s.query = Some(json!(["=", "$nope", 1]));
        assert!(!json_filter(&hosts[0], &s));
        // Unknown operator or bad JSON rejects.
        s.query = Some(json!(["~", "$host", "h1"]));
        assert!(!json_filter(&hosts[0], &s));
        s.query = Some(json!("[not json"));
        assert!(!json_filter(&hosts[0], &s));
        // Empty query passes.
        s.query = Some(json!(""));
        assert!(json_filter(&hosts[0], &s));
        s.query = Some(json!([]));
        assert!(json_filter(&hosts[0], &s));
    }

    #[test]
    fn cidr_affinity() {
        let hosts = three();
        let mut s = spec("a");
        s.build_near_host_ip = Some("10.1.1.77".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h2".into())
        );
        s.cidr = Some("/16".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h1".into())
        );
        s.build_near_host_ip = Some("192.168.0.1".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::Filtered)
        );
        assert!(in_network(
            "fd00::".parse().unwrap(),
            64,
            "fd00::5".parse().unwrap()
        ));
        assert!(!in_network(
            "fd00::".parse().unwrap(),
            64,
            "fd01::5".parse().unwrap()
        ));
        assert!(in_network(
            "0.0.0.0".parse().unwrap(),
            0,
            "8.8.8.8".parse().unwrap()
        ));
    }

    #[test]
    fn requested_and_ignored_hosts() {
        let hosts = three();
        let mut s = spec("a");
        s.requested_host = Some("h3".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h3".into())
        );
        s.requested_host = Some("nope".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::NoCandidates)
        );
        let mut s = spec("a");
        s.ignore_hosts = vec!["h1".into(), "h2".into()];
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Ok("h3".into())
        );
        s.ignore_hosts.push("h3".into());
        assert_eq!(
            select_host(&hosts, &s, &Weights::default()),
            Err(NoValidHost::Filtered)
        );
    }

    #[test]
    fn normalize_like_nova() {
        assert_eq!(normalize(&[]), Vec::<f64>::new());
        assert_eq!(normalize(&[3.0, 3.0]), vec![0.0, 0.0]);
        assert_eq!(normalize(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
    }

    #[test]
    fn policy_names() {
        for p in GroupPolicy::ALL {
            assert_eq!(GroupPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(GroupPolicy::parse("legacy"), None);
    }
}
