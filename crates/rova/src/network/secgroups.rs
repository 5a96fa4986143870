//! Security groups, a Neutron subset: every project's `default` group
//! (created on first use, as Neutron does, with Neutron's default rules:
//! all egress, ingress from members of the group), groups users create
//! (egress rules only), their rules, and the groups each port carries.
//!
//! Rules are validated and normalised as Neutron does and stored with their
//! group (one `security_group` row holds the group and its rules), but
//! nothing filters traffic: Rova's hypervisor is simulated, so rules only
//! describe what a real cloud would enforce.
//!
//! Errors are [`SgError`]s carrying Neutron's exception type, so the
//! network API can render them as `NeutronError`s and compute can turn
//! them into Nova faults.

use super::{cidr_network, parse_cidr, Networks, Port};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
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

/// Protocol names Neutron knows, with their numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];
/// Protocols that have ports (DCCP, SCTP, TCP, UDP, UDP-Lite).
const PORT_PROTOCOLS: &[u8] = &[33, 132, 6, 17, 136];
/// Protocols only valid with IPv6.
const IPV6_ONLY: &[&str] = &[
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "icmpv6",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "41",
    "44",
    "58",
    "59",
    "60",
    "43",
];

fn supported_protocols() -> String {
    let mut names = vec!["None".to_string(), "'any'".to_string()];
    names.extend(PROTOCOLS.iter().map(|(n, _)| format!("'{n}'")));
    format!("({})", names.join(", "))
}

/// Neutron's `convert_protocol`: `None`/`any` mean any; a number 0–255 or
/// a known name (case-insensitive) is kept.
pub fn convert_protocol(v: &serde_json::Value) -> Result<Option<String>, SgError> {
    use serde_json::Value;
    let invalid = |shown: String| {
        SgError::bad(
            "SecurityGroupRuleInvalidProtocol",
            format!(
                "Security group rule protocol {shown} not supported. Only protocol values {} and integer representations [0 to 255] are supported.",
                supported_protocols()
            ),
        )
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(p) if p <= 255 => Ok(Some(p.to_string())),
            _ => Err(invalid(n.to_string())),
        },
        Value::String(s) if s == "any" => Ok(None),
        Value::String(s) => {
            if let Ok(p) = s.parse::<i64>() {
                return if (0..=255).contains(&p) {
                    Ok(Some(s.clone()))
                } else {
                    Err(invalid(s.clone()))
                };
            }
            let lower = s.to_ascii_lowercase();
            if PROTOCOLS.iter().any(|(n, _)| *n == lower) {
                Ok(Some(lower))
            } else {
                Err(invalid(s.clone()))
            }
        }
        other => Err(invalid(other.to_string())),
    }
}

/// Neutron's `convert_validate_port_value`: null, or an integer 0–65535
/// (numeric strings accepted).
pub fn convert_port(v: &serde_json::Value) -> Result<Option<u32>, SgError> {
    use serde_json::Value;
    let bad = || {
        let shown = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        SgError::bad(
            "SecurityGroupInvalidPortValue",
            format!("Invalid value for port {shown}"),
        )
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    if n > 65535 {
        return Err(bad());
    }
    Ok(Some(n as u32))
}

/// Neutron's `convert_ethertype_to_case_insensitive`.
pub fn convert_ethertype(v: &serde_json::Value) -> Result<String, SgError> {
    match v.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("ipv4") => Ok("IPv4".into()),
        Some("ipv6") => Ok("IPv6".into()),
        _ => {
            let shown = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            Err(SgError::bad(
                "SecurityGroupRuleInvalidEtherType",
                format!(
                    "Security group rule for ethertype '{shown}' not supported. Allowed values are ['IPv4', 'IPv6']."
                ),
            ))
        }
    }
}

/// Neutron's `convert_ip_prefix_to_cidr`: an address gets its host mask
/// (`10.0.0.5` → `10.0.0.5/32`); host bits of a prefix are kept.
pub fn convert_ip_prefix(s: &str) -> Result<Option<String>, SgError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || {
        SgError::bad(
            "InvalidCIDR",
            format!("Invalid CIDR {s} given as IP prefix."),
        )
    };
    if s.contains('/') {
        let (ip, len) = parse_cidr(s).ok_or_else(bad)?;
        return Ok(Some(format!("{ip}/{len}")));
    }
    let ip: IpAddr = s.parse().map_err(|_| bad())?;
    let len = if ip.is_ipv4() { 32 } else { 128 };
    Ok(Some(format!("{ip}/{len}")))
}

/// The number of a protocol (name or number), if known.
fn protocol_number(p: &str) -> Option<u8> {
    if let Ok(n) = p.parse::<u8>() {
        return Some(n);
    }
    PROTOCOLS.iter().find(|(n, _)| *n == p).map(|(_, v)| *v)
}

/// Normalises and checks a rule's attributes as Neutron's
/// `_validate_base_security_group_rule_attributes` does: legacy IPv6 ICMP
/// names, the whole-range port range dropped, port ranges per protocol,
/// the remote prefix against the ethertype, IPv6-only protocols, and at
/// most one remote.
pub fn normalize_rule(r: &mut SecurityGroupRule) -> Result<(), SgError> {
    if r.ethertype == "IPv6" {
        match r.protocol.as_deref() {
            Some("icmp") | Some("icmpv6") => r.protocol = Some("ipv6-icmp".into()),
            Some("1") => r.protocol = Some("58".into()),
            _ => {}
        }
    }
    if r.port_range_min == Some(1) && r.port_range_max == Some(65535) {
        r.port_range_min = None;
        r.port_range_max = None;
    }
    check_port_range(r)?;
    if let Some(prefix) = &r.remote_ip_prefix {
        let v6 = parse_cidr(prefix).is_some_and(|(ip, _)| ip.is_ipv6());
        let want = if v6 { "IPv6" } else { "IPv4" };
        if r.ethertype != want {
            return Err(SgError::bad(
                "SecurityGroupRuleParameterConflict",
                format!(
                    "Conflicting value ethertype {} for CIDR {prefix}",
                    r.ethertype
                ),
            ));
        }
    }
    if let Some(p) = r.protocol.as_deref() {
        if r.ethertype == "IPv4" && IPV6_ONLY.contains(&p) {
            return Err(SgError::bad(
                "SecurityGroupEthertypeConflictWithProtocol",
                format!("Invalid ethertype {} for protocol {p}.", r.ethertype),
            ));
        }
    }
    if r.remote_ip_prefix.is_some() && r.remote_group_id.is_some() {
        return Err(SgError::bad(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    Ok(())
}

fn check_port_range(r: &SecurityGroupRule) -> Result<(), SgError> {
    let (min, max) = (r.port_range_min, r.port_range_max);
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(proto) = r.protocol.as_deref() else {
        return Err(SgError::bad(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    };
    let num = protocol_number(proto);
    match num {
        Some(n) if PORT_PROTOCOLS.contains(&n) => {
            if min == Some(0) || max == Some(0) {
                return Err(SgError::bad(
                    "SecurityGroupInvalidPortValue",
                    "Invalid value for port 0",
                ));
            }
            match (min, max) {
                (Some(a), Some(b)) if a <= b => Ok(()),
                _ => Err(SgError::bad(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                )),
            }
        }
        Some(1) | Some(58) => {
            for (attr, field, v) in [
                ("port_range_min", "type", min),
                ("port_range_max", "code", max),
            ] {
                if let Some(v) = v.filter(|v| *v > 255) {
                    return Err(SgError::bad(
                        "SecurityGroupInvalidIcmpValue",
                        format!(
                            "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                        ),
                    ));
                }
            }
            if let (None, Some(code)) = (min, max) {
                return Err(SgError::bad(
                    "SecurityGroupMissingIcmpType",
                    format!(
                        "ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(SgError::bad(
            "SecurityGroupInvalidProtocolForPort",
            format!(
                "Ports cannot be specified for protocol {}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.",
                num.map(|n| n.to_string()).unwrap_or_else(|| proto.to_string())
            ),
        )),
    }
}

/// What makes two rules the same for Neutron's duplicate check: protocol
/// names and numbers compare equal, and "anywhere" prefixes equal none.
pub fn rule_key(r: &SecurityGroupRule) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "+".into());
    let proto = r.protocol.as_deref().map(|p| {
        let p = if r.ethertype == "IPv6" && (p == "icmp" || p == "icmpv6") {
            "ipv6-icmp"
        } else if r.ethertype == "IPv6" && p == "1" {
            "58"
        } else {
            p
        };
        match protocol_number(p) {
            Some(n) => n.to_string(),
            None => p.to_string(),
        }
    });
    let prefix = r
        .remote_ip_prefix
        .clone()
        .filter(|p| p != "0.0.0.0/0" && p != "::/0");
    [
        r.direction.clone(),
        r.ethertype.clone(),
        opt(r.port_range_max.map(|v| v.to_string())),
        opt(r.port_range_min.map(|v| v.to_string())),
        opt(proto),
        opt(r.remote_group_id.clone()),
        opt(prefix),
        r.security_group_id.clone(),
    ]
    .join("_")
}

/// The network form of a rule's remote prefix (`10.0.0.5/24` →
/// `10.0.0.0/24`), Neutron's `normalized_cidr`.
pub fn normalized_cidr(prefix: &str) -> Option<String> {
    let (_, len) = parse_cidr(prefix)?;
    Some(format!("{}/{len}", cidr_network(prefix)?))
}

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
            .insert_new(&id, sg, Fault::conflict("exists"))
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
        let mut v = self.ports.filter(|p| p.device_id == device_id);
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        v
    }

    /// Group ids per device for the given devices, port by port (oldest
    /// port first), duplicates across ports kept as Nova shows them.
    pub fn groups_by_device(&self, devices: &HashSet<&str>) -> HashMap<String, Vec<String>> {
        let mut ports = self
            .ports
            .filter(|p| devices.contains(p.device_id.as_str()));
        ports.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for p in ports {
            out.entry(p.device_id.clone())
                .or_default()
                .extend(p.security_groups.iter().cloned());
        }
        out
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
        Ok(self.security_groups.insert_new(&id, g, dup).await?)
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
            Ok((g, _)) => Ok(g),
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
        if self.security_groups.remove(id).await?.is_none() {
            return Err(SgError::not_found(id));
        }
        let referring = self.security_groups.filter(|g| {
            g.rules
                .iter()
                .any(|r| r.remote_group_id.as_deref() == Some(id))
        });
        for g in referring {
            let res = self
                .security_groups
                .update(
                    &g.id,
                    || Fault::not_found("gone"),
                    |g| {
                        g.rules.retain(|r| r.remote_group_id.as_deref() != Some(id));
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
        let mut dup: Option<String> = None;
        let res = self
            .security_groups
            .update(
                &sg_id,
                || Fault::not_found("gone"),
                |g| {
                    if let Some(r) = g.rules.iter().find(|r| rule_key(r) == key) {
                        dup = Some(r.id.clone());
                        return Err(Fault::conflict("duplicate"));
                    }
                    g.rules.push(rule.clone());
                    g.revision_number += 1;
                    Ok(())
                },
            )
            .await;
        match (res, dup) {
            (_, Some(existing)) => Err(SgError::new(
                409,
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {existing}."),
            )),
            (Ok(_), None) => Ok(rule),
            (Err(e), None) if e.code == 404 => Err(SgError::not_found(&sg_id)),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// A rule and its group.
    pub fn find_rule(&self, rule_id: &str) -> Option<(Arc<SecurityGroup>, SecurityGroupRule)> {
        self.security_groups.all().into_iter().find_map(|g| {
            let r = g.rules.iter().find(|r| r.id == rule_id).cloned()?;
            Some((g, r))
        })
    }

    /// Removes one rule from its group.
    pub async fn delete_rule(&self, sg_id: &str, rule_id: &str) -> Result<(), SgError> {
        let res = self
            .security_groups
            .update(
                sg_id,
                || Fault::not_found("gone"),
                |g| {
                    let before = g.rules.len();
                    g.rules.retain(|r| r.id != rule_id);
                    if g.rules.len() == before {
                        return Err(Fault::not_found("gone"));
                    }
                    g.revision_number += 1;
                    Ok(())
                },
            )
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Err(SgError::rule_not_found(rule_id)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(direction: &str, ethertype: &str, protocol: Option<&str>) -> SecurityGroupRule {
        SecurityGroupRule {
            id: "r".into(),
            security_group_id: "sg".into(),
            project_id: "p".into(),
            direction: direction.into(),
            ethertype: ethertype.into(),
            protocol: protocol.map(str::to_string),
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

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

    #[test]
    fn protocols_ports_and_ethertypes_convert_like_neutron() {
        assert_eq!(convert_protocol(&json!(null)), Ok(None));
        assert_eq!(convert_protocol(&json!("any")), Ok(None));
        assert_eq!(convert_protocol(&json!("TCP")), Ok(Some("tcp".into())));
        assert_eq!(convert_protocol(&json!(6)), Ok(Some("6".into())));
        assert_eq!(convert_protocol(&json!("17")), Ok(Some("17".into())));
        assert!(convert_protocol(&json!("bogus")).is_err());
        assert!(convert_protocol(&json!(256)).is_err());
        assert_eq!(convert_port(&json!("22")), Ok(Some(22)));
        assert_eq!(convert_port(&json!(null)), Ok(None));
        assert!(convert_port(&json!(70000)).is_err());
        assert!(convert_port(&json!("x")).is_err());
        assert_eq!(convert_ethertype(&json!("ipv6")), Ok("IPv6".into()));
        assert!(convert_ethertype(&json!("IPv5")).is_err());
        assert_eq!(
            convert_ip_prefix("10.0.0.5"),
            Ok(Some("10.0.0.5/32".into()))
        );
        assert_eq!(
            convert_ip_prefix("10.0.0.5/24"),
            Ok(Some("10.0.0.5/24".into()))
        );
        assert_eq!(normalized_cidr("10.0.0.5/24"), Some("10.0.0.0/24".into()));
        assert!(convert_ip_prefix("nope").is_err());
    }

    #[test]
    fn rule_checks_follow_neutron() {
        let mut x = r("ingress", "IPv4", Some("tcp"));
        x.port_range_min = Some(1);
        x.port_range_max = Some(65535);
        assert_eq!(normalize_rule(&mut x), Ok(()));
        assert_eq!((x.port_range_min, x.port_range_max), (None, None));
        let mut x = r("ingress", "IPv4", Some("tcp"));
        x.port_range_min = Some(80);
        x.port_range_max = Some(22);
        assert_eq!(
            normalize_rule(&mut x).map_err(|e| e.kind),
            Err("SecurityGroupInvalidPortRange")
        );
        let mut x = r("ingress", "IPv4", None);
        x.port_range_min = Some(22);
        assert_eq!(
            normalize_rule(&mut x).map_err(|e| e.kind),
            Err("SecurityGroupProtocolRequiredWithPorts")
        );
        let mut x = r("ingress", "IPv4", Some("gre"));
        x.port_range_min = Some(22);
        x.port_range_max = Some(22);
        assert_eq!(
            normalize_rule(&mut x).map_err(|e| e.kind),
            Err("SecurityGroupInvalidProtocolForPort")
        );
        let mut x = r("ingress", "IPv4", Some("icmp"));
        x.port_range_max = Some(0);
        assert_eq!(
            normalize_rule(&mut x).map_err(|e| e.kind),
            Err("SecurityGroupMissingIcmpType")
        );
        let mut x = r("ingress", "IPv6", Some("icmp"));
        assert_eq!(normalize_rule(&mut x), Ok(()));
        assert_eq!(x.protocol.as_deref(), Some("ipv6-icmp"));
        let mut x = r("ingress", "IPv4", Some("ipv6-icmp"));
        assert!(normalize_rule(&mut x).is_err());
        let mut x = r("ingress", "IPv6", None);
        x.remote_ip_prefix = Some("10.0.0.0/8".into());
        assert_eq!(
            normalize_rule(&mut x).map_err(|e| e.kind),
            Err("SecurityGroupRuleParameterConflict")
        );
        let mut x = r("ingress", "IPv4", None);
        x.remote_ip_prefix = Some("10.0.0.0/8".into());
        x.remote_group_id = Some("g".into());
        assert!(normalize_rule(&mut x).is_err());
    }

    #[test]
    fn duplicate_rules_compare_protocol_names_and_numbers() {
        let a = r("ingress", "IPv4", Some("tcp"));
        let mut b = r("ingress", "IPv4", Some("6"));
        assert_eq!(rule_key(&a), rule_key(&b));
        b.remote_ip_prefix = Some("0.0.0.0/0".into());
        assert_eq!(rule_key(&a), rule_key(&b));
        b.remote_ip_prefix = Some("10.0.0.0/8".into());
        assert_ne!(rule_key(&a), rule_key(&b));
        assert_ne!(
            rule_key(&r("egress", "IPv4", None)),
            rule_key(&r("ingress", "IPv4", None))
        );
    }

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
