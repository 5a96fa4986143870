//! The decision itself: stage 1 (allocation candidates), then the filters
//! and weighers, ending in one host or [`NoValidHost`].

use super::filters::{group_hosts, host_passes};
use super::weighers::weigh;
use super::{HostState, RequestSpec, Weights};

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
    use crate::scheduler::test_support::*;

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
}
