//! Test fixtures shared by the scheduler's unit tests: a standard host,
//! three of them, a one-instance request, a group, and placing several
//! instances one after the other as claims do.

use super::*;

pub(crate) fn host(name: &str) -> HostState {
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

pub(crate) fn three() -> Vec<HostState> {
    let mut v = vec![host("h1"), host("h2"), host("h3")];
    for (i, h) in v.iter_mut().enumerate() {
        h.host_ip = format!("10.1.{i}.5");
    }
    v
}

pub(crate) fn spec(uuid: &str) -> RequestSpec {
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

pub(crate) fn group(policy: GroupPolicy, members: &[&str], max: Option<u64>) -> GroupSpec {
    GroupSpec {
        uuid: "g".into(),
        policy,
        max_server_per_host: max,
        members: members.iter().map(|s| s.to_string()).collect(),
    }
}

/// Places `n` instances one after the other, consuming as a claim does.
pub(crate) fn place_all(
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
