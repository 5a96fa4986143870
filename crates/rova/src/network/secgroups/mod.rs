//! Security groups, a Neutron subset: every project's `default` group
//! (created on first use, as Neutron does, with Neutron's default rules:
//! all egress, ingress from members of the group), groups users create
//! (egress rules only), their rules, and the groups each port carries.
//!
//! Rules are validated and normalised as Neutron does and stored as rows
//! of their own, written with their group's row (`store`), but
//! nothing filters traffic: Rova's hypervisor is simulated, so rules only
//! describe what a real cloud would enforce.
//!
//! Errors are [`SgError`]s carrying Neutron's exception type, so the
//! network API can render them as `NeutronError`s and compute can turn
//! them into Nova faults.
//!
//! This module owns the group records and their storage; `rules` owns
//! how one rule's attributes are checked and normalised, and `ports` the
//! groups each port carries.

mod ports;
mod rules;
pub mod store;

pub use ports::parse_group_ids;
pub use rules::{
    convert_ethertype, convert_ip_prefix, convert_port, convert_protocol, normalize_rule,
    normalized_cidr, rule_key,
};

use super::Networks;
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One rule of a security group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroupRule {
    pub id: String,
    pub security_group_id: String,
    pub project_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// A protocol name or number, `None` for any.
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A security group with its rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub project_id: String,
    pub stateful: bool,
    /// The project's `default` group.
    #[serde(default)]
    pub is_default: bool,
    /// Kept as rows of `security_group_rules` ([`store::SecurityGroups`]),
    /// not in the group's document: filled when the group is read.
    #[serde(default, skip_serializing)]
    pub rules: Vec<SecurityGroupRule>,
    #[serde(default)]
    pub revision_number: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A refusal with Neutron's HTTP status and exception type.
#[derive(Debug, Clone, PartialEq)]
pub struct SgError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl SgError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        SgError {
            status,
            kind,
            message: message.into(),
        }
    }
    /// `SecurityGroupNotFound` (404).
    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "SecurityGroupNotFound",
            format!("Security group {id} does not exist"),
        )
    }
    /// `SecurityGroupRuleNotFound` (404).
    pub fn rule_not_found(id: &str) -> Self {
        Self::new(
            404,
            "SecurityGroupRuleNotFound",
            format!("Security group rule {id} does not exist"),
        )
    }
    /// `SecurityGroupInUse` (409).
    pub fn in_use(id: &str) -> Self {
        Self::new(
            409,
            "SecurityGroupInUse",
            format!("Security Group {id} in use."),
        )
    }
    fn bad(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, kind, message)
    }
}

impl From<SgError> for Fault {
    fn from(e: SgError) -> Fault {
        Fault::new(e.status, e.message)
    }
}

impl From<Fault> for SgError {
    fn from(f: Fault) -> SgError {
        SgError::new(f.code, "HTTPInternalServerError", f.message)
    }
}

/// The outcome of looking a group up by name or id.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<SecurityGroup>),
    NotFound,
    /// Several of the project's groups have that name.
    Ambiguous,
}

/// A stable UUID-shaped id derived from a seed.
pub fn derived_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The id of a project's `default` group (stable, so racing first uses
/// agree on one group).
pub fn default_group_id(project: &str) -> String {
    derived_id(&format!("default-security-group:{project}"))
}

/// A group the caller may see: its own project's, or any for admins.
pub fn group_visible(sg: &SecurityGroup, project: &str, admin: bool) -> bool {
    admin || sg.project_id == project
}

fn rule(
    sg_id: &str,
    project: &str,
    direction: &str,
    ethertype: &str,
    remote_group: Option<&str>,
    now: DateTime<Utc>,
) -> SecurityGroupRule {
    SecurityGroupRule {
        id: uuid::Uuid::new_v4().to_string(),
        security_group_id: sg_id.to_string(),
        project_id: project.to_string(),
        direction: direction.to_string(),
        ethertype: ethertype.to_string(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_group.map(str::to_string),
        description: String::new(),
        created_at: now,
        updated_at: now,
    }
}

/// A new group with Neutron's template rules: egress for both families,
/// plus (for the default group) ingress from the group's own members.
pub fn new_group(
    id: String,
    name: String,
    description: String,
    project: &str,
    stateful: bool,
    is_default: bool,
    now: DateTime<Utc>,
) -> SecurityGroup {
    let mut rules = vec![
        rule(&id, project, "egress", "IPv4", None, now),
        rule(&id, project, "egress", "IPv6", None, now),
    ];
    if is_default {
        rules.push(rule(&id, project, "ingress", "IPv4", Some(&id), now));
        rules.push(rule(&id, project, "ingress", "IPv6", Some(&id), now));
    }
    SecurityGroup {
        id,
        name,
        description,
        project_id: project.to_string(),
        stateful,
        is_default,
        rules,
        revision_number: 1,
        created_at: now,
        updated_at: now,
    }
}

/// Neutron's `name_not_default` validator: no user group may be called
/// `default`.
pub fn check_group_name(name: &str) -> Result<(), SgError> {
    if name.eq_ignore_ascii_case("default") {
        return Err(SgError::new(
            409,
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    Ok(())
}

impl Networks {
    /// The project's `default` group, created (with its rules) on first
    /// use as Neutron does.
    pub async fn ensure_default_group(
        &self,
        project: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<SecurityGroup>, Fault> {
        let id = default_group_id(project);
        if let Some(sg) = self.security_groups.get(&id) {
            return Ok(sg);
        }
        let sg = new_group(
            id.clone(),
            "default".into(),
            "Default security group".into(),
            project,
            true,
            true,
            now,
        );
        match self
            .security_groups
            .insert_new(sg, Fault::conflict("exists"))
            .await
        {
            Ok(sg) => Ok(sg),
            Err(e) if e.code == 409 => self
                .security_groups
                .get(&id)
                .ok_or_else(|| Fault::internal("default security group vanished")),
            Err(e) => Err(e),
        }
    }

    /// Groups visible to a caller, oldest first.
    pub fn visible_groups(&self, project: &str, admin: bool) -> Vec<Arc<SecurityGroup>> {
        let mut v = self
            .security_groups
            .filter(|g| group_visible(g, project, admin));
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// python-neutronclient's `find_resourceid_by_name_or_id` as Nova uses
    /// it: an id the caller can see, else a name among the project's own
    /// groups (the project's `default` group is created first).
    pub async fn find_group(
        &self,
        project: &str,
        admin: bool,
        name_or_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Lookup, Fault> {
        self.ensure_default_group(project, now).await?;
        if let Some(sg) = self
            .security_groups
            .get(name_or_id)
            .filter(|g| group_visible(g, project, admin))
        {
            return Ok(Lookup::Found(sg));
        }
        let named = self
            .security_groups
            .filter(|g| g.project_id == project && g.name == name_or_id);
        Ok(match named.len() {
            0 => Lookup::NotFound,
            1 => named
                .into_iter()
                .next()
                .map_or(Lookup::NotFound, Lookup::Found),
            _ => Lookup::Ambiguous,
        })
    }

    /// Creates a group (with the egress template rules) for a project,
    /// making sure of the project's `default` group first as Neutron does.
    pub async fn create_group(
        &self,
        project: &str,
        name: String,
        description: String,
        stateful: bool,
        now: DateTime<Utc>,
    ) -> Result<Arc<SecurityGroup>, SgError> {
        check_group_name(&name)?;
        self.ensure_default_group(project, now).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let g = new_group(id.clone(), name, description, project, stateful, false, now);
        let dup = Fault::conflict(format!("Security group {id} already exists."));
        Ok(self.security_groups.insert_new(g, dup).await?)
    }

    /// Changes a group's name, description or statefulness: the default
    /// group keeps its name, and a group in use keeps its statefulness.
    pub async fn update_group(
        &self,
        id: &str,
        name: Option<String>,
        description: Option<String>,
        stateful: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Arc<SecurityGroup>, SgError> {
        if let Some(n) = &name {
            check_group_name(n)?;
        }
        let cur = self
            .security_groups
            .get(id)
            .ok_or_else(|| SgError::not_found(id))?;
        if stateful.is_some_and(|s| s != cur.stateful) && !self.ports_with_group(id).is_empty() {
            return Err(SgError::in_use(id));
        }
        if cur.is_default && name.is_some() {
            return Err(SgError::new(
                409,
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            ));
        }
        let res = self
            .security_groups
            .update(
                id,
                || Fault::not_found("gone"),
                |g| {
                    if let Some(v) = name {
                        g.name = v;
                    }
                    if let Some(v) = description {
                        g.description = v;
                    }
                    if let Some(v) = stateful {
                        g.stateful = v;
                    }
                    g.revision_number += 1;
                    g.updated_at = now;
                    Ok(())
                },
            )
            .await;
        match res {
            Ok(g) => Ok(g),
            Err(e) if e.code == 404 => Err(SgError::not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a group that no port uses (only admins may delete a
    /// `default` group), with the rules of other groups that name it as
    /// their remote group (Neutron's cascade). The caller holds the
    /// topology lock so no port takes the group meanwhile.
    pub async fn delete_group(&self, id: &str, admin: bool) -> Result<(), SgError> {
        if !self.ports_with_group(id).is_empty() {
            return Err(SgError::in_use(id));
        }
        if !admin && self.security_groups.get(id).is_some_and(|g| g.is_default) {
            return Err(SgError::new(
                409,
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        let Some(touched) = self.security_groups.delete(id).await? else {
            return Err(SgError::not_found(id));
        };
        // The groups whose rules named it changed: their revision moves
        // on (after the delete, which already removed those rules).
        for gid in touched {
            let res = self
                .security_groups
                .update(
                    &gid,
                    || Fault::not_found("gone"),
                    |g| {
                        g.revision_number += 1;
                        Ok(())
                    },
                )
                .await;
            match res {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Adds a normalised rule to its group unless an equal rule exists
    /// (409 `SecurityGroupRuleExists`).
    pub async fn add_rule(&self, rule: SecurityGroupRule) -> Result<SecurityGroupRule, SgError> {
        let sg_id = rule.security_group_id.clone();
        let key = rule_key(&rule);
        let res = self
            .security_groups
            .add_rule(
                rule.clone(),
                |g| g.revision_number += 1,
                |r| rule_key(r) == key,
            )
            .await;
        match res {
            Ok(Err(existing)) => Err(SgError::new(
                409,
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {existing}."),
            )),
            Ok(Ok(())) => Ok(rule),
            Err(e) if e.code == 404 => Err(SgError::not_found(&sg_id)),
            Err(e) => Err(e.into()),
        }
    }

    /// A rule and its group.
    pub fn find_rule(&self, rule_id: &str) -> Option<(Arc<SecurityGroup>, SecurityGroupRule)> {
        self.security_groups.rule(rule_id)
    }

    /// Removes one rule from its group.
    pub async fn delete_rule(&self, sg_id: &str, rule_id: &str) -> Result<(), SgError> {
        let res = self
            .security_groups
            .delete_rule(sg_id, rule_id, |g| g.revision_number += 1)
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.code == 404 => Err(SgError::rule_not_found(rule_id)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_group_has_neutron_template_rules() {
        let now = Utc::now();
        let id = default_group_id("p1");
        assert_eq!(id, default_group_id("p1"));
        assert_ne!(id, default_group_id("p2"));
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        let g = new_group(
            id.clone(),
            "default".into(),
            String::new(),
            "p1",
            true,
            true,
            now,
        );
        assert_eq!(g.rules.len(), 4);
        let ingress: Vec<_> = g
            .rules
            .iter()
            .filter(|r| r.direction == "ingress")
            .collect();
        assert_eq!(ingress.len(), 2);
        assert!(ingress
            .iter()
            .all(|r| r.remote_group_id.as_deref() == Some(id.as_str())));
        let g = new_group(
            "x".into(),
            "web".into(),
            String::new(),
            "p1",
            true,
            false,
            now,
        );
        assert_eq!(g.rules.len(), 2);
        assert!(g.rules.iter().all(|r| r.direction == "egress"));
    }
}
