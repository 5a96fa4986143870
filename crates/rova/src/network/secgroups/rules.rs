//! One security-group rule's attributes as Neutron takes them: protocol,
//! port and ethertype conversion, the remote prefix, the checks of
//! `_validate_base_security_group_rule_attributes`, and the key Neutron's
//! duplicate-rule check compares.

use super::{SecurityGroupRule, SgError};
use crate::network::{cidr_network, parse_cidr};
use std::net::IpAddr;

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
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
}
