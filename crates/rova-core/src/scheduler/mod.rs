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
//!
//! Modules: [`host_state`] (hosts and their inventory), [`request`] (what
//! is asked), [`filters`] and [`json_filter`] (stage 2), [`weighers`]
//! (stage 3) and [`placement`] (stage 1 and the decision).

pub mod filters;
pub mod host_state;
pub mod json_filter;
pub mod placement;
pub mod request;
pub mod weighers;

#[cfg(test)]
mod test_support;

pub use filters::{
    affinity_filter, anti_affinity_filter, availability_zone_filter, cidr_affinity_filter,
    compute_filter, different_host_filter, group_hosts, host_passes, in_network, same_host_filter,
};
pub use host_state::{HostState, Resources};
pub use json_filter::json_filter;
pub use placement::{candidates, select_host, NoValidHost};
pub use request::{GroupPolicy, GroupSpec, RequestSpec};
pub use weighers::{normalize, weigh, Weights};
