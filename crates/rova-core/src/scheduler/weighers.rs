//! Stage 3, the weighers (`nova/scheduler/weights/`): RAMWeigher and the
//! soft (anti-)affinity weighers, each normalised to 0..1 and scaled by
//! its multiplier ([`Weights`]).

use super::filters::members_on_host;
use super::{GroupPolicy, HostState, RequestSpec};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::select_host;
    use crate::scheduler::test_support::*;

    #[test]
    fn ram_weigher_spreads() {
        let mut hosts = three();
        let got = place_all(&mut hosts, 6, |i| spec(&format!("i{i}")));
        let names: Vec<String> = got.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(names, ["h1", "h2", "h3", "h1", "h2", "h3"]);
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
    fn normalize_like_nova() {
        assert_eq!(normalize(&[]), Vec::<f64>::new());
        assert_eq!(normalize(&[3.0, 3.0]), vec![0.0, 0.0]);
        assert_eq!(normalize(&[1.0, 3.0, 2.0]), vec![0.0, 1.0, 0.5]);
    }
}
