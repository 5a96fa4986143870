//! The request side of scheduling: [`RequestSpec`] (one instance to
//! place, with its scheduler hints) and the server group it belongs to
//! ([`GroupSpec`], [`GroupPolicy`]).

use serde_json::Value;
use std::collections::BTreeSet;

use super::Resources;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names() {
        for p in GroupPolicy::ALL {
            assert_eq!(GroupPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(GroupPolicy::parse("legacy"), None);
    }
}
