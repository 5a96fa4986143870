//! The security groups each port carries: Neutron's validation of a
//! port's `security_groups` list, the check that the groups exist, belong
//! to the port's owner and do not mix stateful with stateless, and the
//! lookups from groups to ports and from devices to groups.

use super::{group_visible, SgError};
use crate::network::{Networks, Port};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Checks a port's `security_groups` list the way Neutron's attribute
/// validation does: a list of UUIDs without duplicates. `null` is empty.
pub fn parse_group_ids(v: &serde_json::Value) -> Result<Vec<String>, SgError> {
    use serde_json::Value;
    let reason = |r: String| {
        SgError::bad(
            "HTTPBadRequest",
            format!("Invalid input for security_groups. Reason: {r}."),
        )
    };
    let items = match v {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        other => return Err(reason(format!("'{other}' is not a list"))),
    };
    let mut ids: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(s) if rova_core::validate::fields::is_uuid_like(s) => ids.push(s.to_string()),
            Some(s) => return Err(reason(format!("'{s}' is not a valid UUID"))),
            None => return Err(reason(format!("'{item}' is not a valid UUID"))),
        }
    }
    let mut seen = HashSet::new();
    let mut dups: Vec<&str> = Vec::new();
    for id in &ids {
        if !seen.insert(id.as_str()) && !dups.contains(&id.as_str()) {
            dups.push(id);
        }
    }
    if !dups.is_empty() {
        return Err(reason(format!(
            "Duplicate items in the list: '{}'",
            dups.join(", ")
        )));
    }
    Ok(ids)
}

impl Networks {
    /// Checks the groups asked for on a port owned by `owner`: each must
    /// exist and belong to the owner (any group for admins), and stateful
    /// and stateless groups may not be mixed.
    pub fn check_port_groups(
        &self,
        owner: &str,
        admin: bool,
        ids: &[String],
    ) -> Result<Vec<String>, SgError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match self
                .security_groups
                .get(id)
                .filter(|g| group_visible(g, owner, admin))
            {
                Some(g) => found.push(g),
                None => missing.push(id.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(SgError::not_found(&missing.join(", ")));
        }
        if found.iter().any(|g| g.stateful) && found.iter().any(|g| !g.stateful) {
            return Err(SgError::new(
                409,
                "SecurityGroupConflict",
                "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.",
            ));
        }
        Ok(ids.to_vec())
    }

    /// The ports that carry a group.
    pub fn ports_with_group(&self, sg_id: &str) -> Vec<Arc<Port>> {
        self.ports
            .filter(|p| p.security_groups.iter().any(|g| g == sg_id))
    }

    /// The ports bound to a device, oldest first.
    pub fn ports_of_device(&self, device_id: &str) -> Vec<Arc<Port>> {
        let mut v = self.ports.find(super::super::PORTS_BY_DEVICE, device_id);
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Group ids per device for the given devices, port by port (oldest
    /// port first), duplicates across ports kept as Nova shows them.
    pub fn groups_by_device(&self, devices: &HashSet<&str>) -> HashMap<String, Vec<String>> {
        let mut ports: Vec<Arc<Port>> = devices
            .iter()
            .flat_map(|d| self.ports.find(super::super::PORTS_BY_DEVICE, d))
            .collect();
        ports.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for p in ports {
            out.entry(p.device_id.clone())
                .or_default()
                .extend(p.security_groups.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::default_group_id;
    use super::*;
    use serde_json::json;

    #[test]
    fn port_group_lists_are_unique_uuids() {
        let id = default_group_id("p");
        assert_eq!(parse_group_ids(&json!(null)), Ok(vec![]));
        assert_eq!(parse_group_ids(&json!([id])), Ok(vec![id.clone()]));
        let e = parse_group_ids(&json!([id, id])).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            format!(
                "Invalid input for security_groups. Reason: Duplicate items in the list: '{id}'."
            )
        );
        assert!(parse_group_ids(&json!(["web"])).is_err());
        assert!(parse_group_ids(&json!("x")).is_err());
    }
}
