//! The deprecated security-group proxy API in Nova's format (2.1–2.35):
//! `os-security-groups` (list, show, create, update, delete) and
//! `os-security-group-rules` (create an ingress rule, delete), with Nova's
//! request checks and its mapping of Neutron's refusals.

use super::{nova_group, nova_rule, sort_groups, POLICY};
use crate::app::App;
use crate::http::Ctx;
use crate::network::secgroups::{
    convert_protocol, group_visible, normalize_rule, SecurityGroup, SecurityGroupRule,
};
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// The proxy APIs are gone from 2.36.
pub fn proxy_available(ctx: &Ctx) -> Result<(), Fault> {
    if ctx.at_least(36) {
        Err(Fault::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn check_id(id: &str) -> Result<(), Fault> {
    if fields::is_uuid_like(id) {
        Ok(())
    } else {
        Err(Fault::bad_request("Security group id should be uuid"))
    }
}

fn visible_group(app: &App, ctx: &Ctx, id: &str) -> Result<Arc<SecurityGroup>, Fault> {
    app.networks
        .security_groups
        .get(id)
        .filter(|g| group_visible(g, &ctx.project_id, ctx.is_admin()))
        .ok_or_else(|| Fault::not_found(format!("Security group {id} does not exist")))
}

/// A non-negative integer query parameter (`limit`, `offset`).
fn query_uint(params: &[(String, String)], key: &str) -> Result<Option<usize>, Fault> {
    match params.iter().rev().find(|(k, _)| k == key) {
        None => Ok(None),
        Some((_, v)) => v.parse::<usize>().map(Some).map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input for query parameters {key}. Value: {v}. '{v}' does not match '^[0-9]*$'"
            ))
        }),
    }
}

/// GET /os-security-groups: the project's groups (every group for admins
/// with `all_tenants`), `offset`/`limit` applied, sorted by project and
/// name.
pub async fn proxy_list(app: &App, ctx: &Ctx, params: &[(String, String)]) -> Result<Value, Fault> {
    proxy_available(ctx)?;
    let limit = query_uint(params, "limit")?;
    let offset = query_uint(params, "offset")?.unwrap_or(0);
    let all = ctx.is_admin() && params.iter().any(|(k, _)| k == "all_tenants");
    if !all {
        app.networks
            .ensure_default_group(&ctx.project_id, app.clock.now())
            .await?;
    }
    let groups = app
        .networks
        .visible_groups(&ctx.project_id, ctx.is_admin())
        .into_iter()
        .filter(|g| all || g.project_id == ctx.project_id);
    let max = app.cfg.max_limit;
    let limit = limit.filter(|l| *l > 0).map_or(max, |l| l.min(max));
    let mut out: Vec<Value> = groups
        .skip(offset)
        .take(limit)
        .map(|g| nova_group(app, &g))
        .collect();
    sort_groups(&mut out);
    Ok(json!({ "security_groups": out }))
}

/// GET /os-security-groups/{id}.
pub fn proxy_show(app: &App, ctx: &Ctx, id: &str) -> Result<Value, Fault> {
    proxy_available(ctx)?;
    check_id(id)?;
    let g = visible_group(app, ctx, id)?;
    Ok(json!({ "security_group": nova_group(app, &g) }))
}

/// `{"security_group": {"name", "description"}}`, both required strings of
/// at most 255 characters.
fn group_body(body: &Value) -> Result<(String, String), Fault> {
    let sg = body
        .get("security_group")
        .ok_or_else(|| Fault::bad_request("'security_group' is a required property"))?;
    let obj = sg.as_object().ok_or_else(|| {
        fields::invalid(
            "security_group",
            sg,
            format!("{sg} is not of type 'object'"),
        )
    })?;
    let text = |key: &str| -> Result<String, Fault> {
        let v = obj.get(key).ok_or_else(|| {
            fields::invalid(
                "security_group",
                sg,
                format!("'{key}' is a required property"),
            )
        })?;
        let s = fields::string(key, v)?;
        if s.chars().count() > 255 {
            return Err(fields::invalid(key, v, format!("'{s}' is too long")));
        }
        Ok(s)
    };
    Ok((text("name")?, text("description")?))
}

/// POST /os-security-groups. Neutron's conflicts (a group called
/// `default`) become Nova's 403 `SecurityGroupLimitExceeded`.
pub async fn proxy_create(app: &App, ctx: &Ctx, body: &Value) -> Result<Value, Fault> {
    proxy_available(ctx)?;
    ctx.require_member(&format!("{POLICY}:create"))?;
    let (name, description) = group_body(body)?;
    let g = app
        .networks
        .create_group(&ctx.project_id, name, description, true, app.clock.now())
        .await
        .map_err(|e| match e.status {
            409 => Fault::forbidden(e.message),
            400 => Fault::bad_request(e.message),
            _ => e.into(),
        })?;
    Ok(json!({ "security_group": nova_group(app, &g) }))
}

/// PUT /os-security-groups/{id}.
pub async fn proxy_update(app: &App, ctx: &Ctx, id: &str, body: &Value) -> Result<Value, Fault> {
    proxy_available(ctx)?;
    ctx.require_member(&format!("{POLICY}:update"))?;
    check_id(id)?;
    visible_group(app, ctx, id)?;
    let (name, description) = group_body(body)?;
    let g = app
        .networks
        .update_group(id, Some(name), Some(description), None, app.clock.now())
        .await
        .map_err(|e| match e.status {
            404 => Fault::not_found(e.message),
            _ => Fault::bad_request(e.message),
        })?;
    Ok(json!({ "security_group": nova_group(app, &g) }))
}

/// DELETE /os-security-groups/{id}: Neutron's refusals (in use, the
/// default group) are Nova's 400.
pub async fn proxy_delete(app: &App, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    proxy_available(ctx)?;
    ctx.require_member(&format!("{POLICY}:delete"))?;
    check_id(id)?;
    visible_group(app, ctx, id)?;
    let _guard = app.networks.topology_lock().await;
    app.networks
        .delete_group(id, ctx.is_admin())
        .await
        .map_err(|e| match e.status {
            404 => Fault::not_found(e.message),
            _ => Fault::bad_request(e.message),
        })
}

/// An integer port value as Nova's `int()` takes it.
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What Nova's `_new_ingress_rule` builds from a proxy rule request.
#[derive(Debug, Clone, Default, PartialEq)]
struct NovaRule {
    group_id: Option<String>,
    cidr: Option<String>,
    protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
}

fn port_range_error(from: i64, to: i64, msg: &str) -> Fault {
    Fault::bad_request(format!("Invalid port range {from}:{to}. {msg}"))
}

/// Nova's `parse_cidr`: empty means anywhere; otherwise a valid CIDR (or
/// address).
fn nova_cidr(v: Option<&Value>) -> Result<String, Fault> {
    let s = match v {
        None | Some(Value::Null) => return Ok("0.0.0.0/0".into()),
        Some(Value::String(s)) if s.is_empty() => return Ok("0.0.0.0/0".into()),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let decoded: String = form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.clone());
    let valid = match decoded.split_once('/') {
        Some((ip, len)) => ip.parse::<IpAddr>().is_ok_and(|ip| {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            len.parse::<u8>().is_ok_and(|l| l <= max)
        }),
        None => decoded.parse::<IpAddr>().is_ok(),
    };
    if valid {
        Ok(decoded)
    } else {
        Err(Fault::bad_request(format!(
            "{s} is not a valid IP network."
        )))
    }
}

/// Nova's `_new_ingress_rule` (with `_rule_args_to_dict`): `None` when a
/// CIDR rule lacks a protocol or ports.
fn new_ingress_rule(
    protocol: Option<&Value>,
    from: Option<&Value>,
    to: Option<&Value>,
    cidr: Option<&Value>,
    group_id: Option<String>,
) -> Result<Option<NovaRule>, Fault> {
    let protocol: Option<String> = match protocol {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let mut rule = NovaRule::default();
    let mut from = from.filter(|v| !v.is_null()).cloned();
    let mut to = to.filter(|v| !v.is_null()).cloned();
    let upper = protocol.as_deref().map(str::to_ascii_uppercase);
    if let Some(g) = group_id {
        rule.group_id = Some(g);
        if from.is_none() && to.is_none() {
            match upper.as_deref() {
                Some("ICMP") => {
                    from = Some(json!(-1));
                    to = Some(json!(-1));
                }
                Some("TCP") | Some("UDP") => {
                    from = Some(json!(1));
                    to = Some(json!(65535));
                }
                _ => {}
            }
        }
    } else {
        rule.cidr = Some(nova_cidr(cidr)?);
    }
    let (Some(proto), Some(upper), Some(f), Some(t)) = (protocol, upper, from, to) else {
        return Ok(if rule.cidr.is_some() {
            None
        } else {
            Some(rule)
        });
    };
    let icmp = upper == "ICMP";
    let (Some(f), Some(t)) = (int_of(&f), int_of(&t)) else {
        return Err(Fault::bad_request(if icmp {
            "Invalid input received: Type and Code must be integers for ICMP protocol type"
        } else {
            "Invalid input received: To and From ports must be integers"
        }));
    };
    if !matches!(upper.as_str(), "TCP" | "UDP" | "ICMP") {
        return Err(Fault::bad_request(format!("Invalid IP protocol {proto}.")));
    }
    if !icmp && f > t {
        return Err(port_range_error(
            f,
            t,
            "Former value cannot be greater than the later",
        ));
    }
    if !icmp && (f < 1 || t > 65535) {
        return Err(port_range_error(
            f,
            t,
            &format!("Valid {upper} ports should be between 1-65535"),
        ));
    }
    if icmp && !((-1..=255).contains(&f) && (-1..=255).contains(&t)) {
        return Err(port_range_error(
            f,
            t,
            "For ICMP, the type:code must be valid",
        ));
    }
    rule.protocol = Some(proto);
    rule.from_port = Some(f);
    rule.to_port = Some(t);
    Ok(Some(rule))
}

/// The fields Nova's `_rule_exists` compares, for an existing rule.
fn existing_as_nova(r: &SecurityGroupRule) -> NovaRule {
    let (from, to) = match (&r.protocol, r.port_range_min, r.port_range_max) {
        (Some(p), None, None) if matches!(p.as_str(), "tcp" | "udp") => (Some(1), Some(65535)),
        (Some(_), None, None) => (Some(-1), Some(-1)),
        (_, min, max) => (min.map(i64::from), max.map(i64::from)),
    };
    NovaRule {
        group_id: r.remote_group_id.clone(),
        cidr: Some(
            r.remote_ip_prefix
                .clone()
                .unwrap_or_else(|| "0.0.0.0/0".into()),
        ),
        protocol: r.protocol.clone(),
        from_port: from,
        to_port: to,
    }
}

/// POST /os-security-group-rules: an ingress rule on `parent_group_id`,
/// from a CIDR or from members of `group_id`.
pub async fn proxy_rule_create(app: &App, ctx: &Ctx, body: &Value) -> Result<Value, Fault> {
    proxy_available(ctx)?;
    ctx.require_member(&format!("{POLICY}:rule:create"))?;
    let rule_v = body
        .get("security_group_rule")
        .ok_or_else(|| Fault::bad_request("'security_group_rule' is a required property"))?;
    let obj: &Map<String, Value> = rule_v.as_object().ok_or_else(|| {
        fields::invalid(
            "security_group_rule",
            rule_v,
            format!("{rule_v} is not of type 'object'"),
        )
    })?;
    let parent_v = obj.get("parent_group_id").ok_or_else(|| {
        fields::invalid(
            "security_group_rule",
            rule_v,
            "'parent_group_id' is a required property",
        )
    })?;
    let parent_id = fields::uuid("parent_group_id", parent_v)?;
    let group_id = match obj.get("group_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(fields::uuid("group_id", v)?),
    };
    let parent = visible_group(app, ctx, &parent_id)?;
    let source = match &group_id {
        Some(g) => Some(visible_group(app, ctx, g)?),
        None => None,
    };
    let new = new_ingress_rule(
        obj.get("ip_protocol"),
        obj.get("from_port"),
        obj.get("to_port"),
        obj.get("cidr"),
        group_id,
    )?
    .ok_or_else(|| Fault::bad_request("Not enough parameters to build a valid rule."))?;
    if let Some(cidr) = &new.cidr {
        let (net, len) = cidr.split_once('/').unwrap_or((cidr.as_str(), ""));
        if net != "0.0.0.0" && net != "::" && len == "0" {
            return Err(Fault::bad_request(format!(
                "Bad prefix for network in cidr {cidr}"
            )));
        }
    }
    let exists = parent
        .rules
        .iter()
        .filter(|r| r.direction == "ingress")
        .any(|r| {
            let e = existing_as_nova(r);
            e.group_id == new.group_id
                && e.cidr == new.cidr
                && e.from_port == new.from_port
                && e.to_port == new.to_port
                && e.protocol == new.protocol
        });
    if exists {
        return Err(Fault::bad_request(format!(
            "This rule already exists in group {parent_id}"
        )));
    }
    // Nova's translation to a Neutron rule, then Neutron's checks.
    let ethertype = match new.cidr.as_deref() {
        Some(c) if c.split('/').next().is_some_and(|ip| ip.contains(':')) => "IPv6",
        _ => "IPv4",
    };
    let protocol =
        convert_protocol(&json!(new.protocol)).map_err(|e| Fault::bad_request(e.message))?;
    let port = |p: Option<i64>| p.filter(|v| *v != -1).and_then(|v| u32::try_from(v).ok());
    let now = app.clock.now();
    let remote_ip_prefix = match &new.cidr {
        Some(c) => crate::network::secgroups::convert_ip_prefix(c)
            .map_err(|e| Fault::bad_request(e.message))?,
        None => None,
    };
    let mut rule = SecurityGroupRule {
        id: uuid::Uuid::new_v4().to_string(),
        security_group_id: parent.id.clone(),
        project_id: ctx.project_id.clone(),
        direction: "ingress".into(),
        ethertype: ethertype.into(),
        protocol,
        port_range_min: port(new.from_port),
        port_range_max: port(new.to_port),
        remote_ip_prefix,
        remote_group_id: new.group_id.clone(),
        description: String::new(),
        created_at: now,
        updated_at: now,
    };
    normalize_rule(&mut rule).map_err(|e| Fault::bad_request(e.message))?;
    let rule = app
        .networks
        .add_rule(rule)
        .await
        .map_err(|e| match e.status {
            404 => Fault::not_found(e.message),
            409 => Fault::forbidden(e.message),
            _ => Fault::bad_request(e.message),
        })?;
    let mut out = nova_rule(app, &rule).unwrap_or(Value::Null);
    if let Some(src) = source {
        out["group"] = json!({"name": src.name, "tenant_id": src.project_id});
    }
    Ok(json!({ "security_group_rule": out }))
}

/// DELETE /os-security-group-rules/{id}.
pub async fn proxy_rule_delete(app: &App, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    proxy_available(ctx)?;
    ctx.require_member(&format!("{POLICY}:rule:delete"))?;
    check_id(id)?;
    let not_found = || Fault::not_found(format!("Security group rule {id} does not exist"));
    let (g, r) = app.networks.find_rule(id).ok_or_else(not_found)?;
    let mine = ctx.is_admin() || r.project_id == ctx.project_id || g.project_id == ctx.project_id;
    if !mine {
        return Err(not_found());
    }
    app.networks
        .delete_rule(&g.id, id)
        .await
        .map_err(|e| Fault::new(e.status, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Option<&str>, min: Option<u32>, max: Option<u32>) -> SecurityGroupRule {
        SecurityGroupRule {
            id: "r".into(),
            security_group_id: "g".into(),
            project_id: "p".into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: protocol.map(str::to_string),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: String::new(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn new_ingress_rule(
        p: Option<Value>,
        f: Option<Value>,
        t: Option<Value>,
        cidr: Option<Value>,
        g: Option<String>,
    ) -> Result<Option<NovaRule>, Fault> {
        super::new_ingress_rule(p.as_ref(), f.as_ref(), t.as_ref(), cidr.as_ref(), g)
    }

    #[test]
    fn ingress_rules_follow_nova() {
        let v = |x: Value| Some(x);
        // A CIDR rule needs a protocol and both ports.
        assert_eq!(
            new_ingress_rule(v(json!("tcp")), None, None, None, None),
            Ok(None)
        );
        let r = new_ingress_rule(
            v(json!("tcp")),
            v(json!(22)),
            v(json!("22")),
            v(json!("10.0.0.0/8")),
            None,
        )
        .expect("ok")
        .expect("rule");
        assert_eq!(r.cidr.as_deref(), Some("10.0.0.0/8"));
        assert_eq!((r.from_port, r.to_port), (Some(22), Some(22)));
        // A group rule opens the whole range for TCP.
        let r = new_ingress_rule(v(json!("TCP")), None, None, None, Some("g".into()))
            .expect("ok")
            .expect("rule");
        assert_eq!((r.from_port, r.to_port), (Some(1), Some(65535)));
        let r = new_ingress_rule(None, None, None, None, Some("g".into()))
            .expect("ok")
            .expect("rule");
        assert_eq!(r.protocol, None);
        let msg = |p: Value, f: Value, t: Value| {
            new_ingress_rule(v(p), v(f), v(t), None, None)
                .map(|_| ())
                .unwrap_err()
                .message
        };
        assert_eq!(
            msg(json!("tcp"), json!(80), json!(22)),
            "Invalid port range 80:22. Former value cannot be greater than the later"
        );
        assert_eq!(
            msg(json!("gre"), json!(1), json!(2)),
            "Invalid IP protocol gre."
        );
        assert_eq!(
            msg(json!("icmp"), json!(300), json!(0)),
            "Invalid port range 300:0. For ICMP, the type:code must be valid"
        );
        assert_eq!(
            msg(json!("tcp"), json!("a"), json!(2)),
            "Invalid input received: To and From ports must be integers"
        );
        assert!(nova_cidr(Some(&json!("nope"))).is_err());
        assert_eq!(nova_cidr(Some(&json!(""))), Ok("0.0.0.0/0".into()));
        assert_eq!(
            nova_cidr(Some(&json!("10.0.0.0%2F8"))),
            Ok("10.0.0.0/8".into())
        );
    }

    #[test]
    fn existing_rules_read_back_as_nova_shows_them() {
        let e = existing_as_nova(&rule(Some("tcp"), None, None));
        assert_eq!((e.from_port, e.to_port), (Some(1), Some(65535)));
        assert_eq!(e.cidr.as_deref(), Some("0.0.0.0/0"));
        let e = existing_as_nova(&rule(Some("icmp"), None, None));
        assert_eq!((e.from_port, e.to_port), (Some(-1), Some(-1)));
        let e = existing_as_nova(&rule(None, None, None));
        assert_eq!((e.from_port, e.to_port), (None, None));
        let mut groups = vec![
            json!({"tenant_id": "b", "name": "a"}),
            json!({"tenant_id": "a", "name": "z"}),
            json!({"tenant_id": "a", "name": "default"}),
        ];
        sort_groups(&mut groups);
        assert_eq!(groups[0]["name"], json!("default"));
        assert_eq!(groups[2]["tenant_id"], json!("b"));
    }
}
