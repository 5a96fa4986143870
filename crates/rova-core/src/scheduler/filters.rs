//! Stage 2, the filters (`nova/scheduler/filters/`): ComputeFilter,
//! AvailabilityZoneFilter, the server group (anti-)affinity filters,
//! SameHostFilter, DifferentHostFilter and SimpleCIDRAffinityFilter.
//! JsonFilter lives in [`super::json_filter`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{json_filter, GroupPolicy, GroupSpec, HostState, RequestSpec};

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
pub(super) fn members_on_host(h: &HostState, g: &GroupSpec, self_uuid: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::*;
    use crate::scheduler::{select_host, NoValidHost, Weights};
    use serde_json::json;

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
}
