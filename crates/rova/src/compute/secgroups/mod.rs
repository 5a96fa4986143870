//! Security groups seen from compute: Nova's `security_group_api` over
//! Rova's network service.
//!
//! - Server create checks the groups asked for (by name or id among the
//!   caller's project's groups; `default` always exists) and the build
//!   gives every port it creates those groups (the project's `default`
//!   when none were asked for). Ports the user brought keep their own.
//! - `addSecurityGroup` / `removeSecurityGroup` change the groups of every
//!   port of the server, with Nova's errors.
//! - A server's groups are whatever its ports carry: the server views and
//!   `GET /servers/{id}/os-security-groups` derive them from the ports,
//!   so a server without ports or groups shows none.
//! - The deprecated proxy (`os-security-groups`, `os-security-group-rules`,
//!   2.1–2.35) in Nova's format.
//!
//! Rules are stored and shown only; nothing filters traffic.
//!
//! This module owns a server's groups (create, the add/remove actions,
//! the groups its ports carry) and Nova's format of groups and rules;
//! `proxy` owns the deprecated proxy API.

mod proxy;

pub use proxy::{
    proxy_available, proxy_create, proxy_delete, proxy_list, proxy_rule_create, proxy_rule_delete,
    proxy_show, proxy_update,
};

use super::servers;
use crate::app::App;
use crate::http::Ctx;
use crate::network::secgroups::{
    group_visible, parse_group_ids, Lookup, SecurityGroup, SecurityGroupRule,
};
use crate::network::Port;
use rova_core::model::Instance;
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const POLICY: &str = "os_compute_api:os-security-groups";

/// Nova's `NoUniqueMatch` (409) with neutronclient's text.
fn not_unique(name: &str) -> Fault {
    Fault::conflict(format!(
        "Multiple security_group matches found for name '{name}', use an ID to be more specific."
    ))
}

/// Server create: every requested group (other than `default`, which
/// Neutron always provides) must be found by name or id; unknown is 400,
/// ambiguous 409, as Nova maps them.
pub async fn check_requested(app: &App, ctx: &Ctx, names: &[String]) -> Result<(), Fault> {
    let now = app.clock.now();
    for name in names.iter().filter(|n| *n != "default") {
        match app
            .networks
            .find_group(&ctx.project_id, ctx.is_admin(), name, now)
            .await?
        {
            Lookup::Found(_) => {}
            Lookup::NotFound => {
                return Err(Fault::bad_request(format!(
                    "Unable to find security_group with name or id '{name}'"
                )))
            }
            Lookup::Ambiguous => return Err(not_unique(name)),
        }
    }
    Ok(())
}

/// The group ids a port created for the server gets: its requested groups
/// resolved in its project (`default` when none were requested).
pub async fn group_ids_for(app: &App, inst: &Instance) -> Result<Vec<String>, Fault> {
    let now = app.clock.now();
    let wanted: Vec<&str> = if inst.security_groups.is_empty() {
        vec!["default"]
    } else {
        inst.security_groups.iter().map(String::as_str).collect()
    };
    let mut ids: Vec<String> = Vec::new();
    for name in wanted {
        let id = match app
            .networks
            .find_group(&inst.project_id, false, name, now)
            .await?
        {
            Lookup::Found(g) => g.id.clone(),
            Lookup::NotFound => {
                return Err(Fault::bad_request(format!(
                    "Security group {name} not found."
                )))
            }
            Lookup::Ambiguous => return Err(not_unique(name)),
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The group named in an add/remove action, or Nova's 404/409.
async fn action_group(app: &App, ctx: &Ctx, name: &str) -> Result<Arc<SecurityGroup>, Fault> {
    match app
        .networks
        .find_group(&ctx.project_id, ctx.is_admin(), name, app.clock.now())
        .await?
    {
        Lookup::Found(g) => Ok(g),
        Lookup::NotFound => Err(Fault::not_found(format!(
            "Security group {name} is not found for project {}",
            ctx.project_id
        ))),
        Lookup::Ambiguous => Err(not_unique(name)),
    }
}

/// The server and the group of an add/remove action (`verb`), after the
/// policy check.
async fn action_target(
    app: &App,
    ctx: &Ctx,
    id: &str,
    name: &str,
    verb: &str,
) -> Result<(Arc<Instance>, Arc<SecurityGroup>), Fault> {
    let inst = servers::visible(app, ctx, id)?;
    ctx.require_member(&format!("{POLICY}:{verb}"))?;
    let group = action_group(app, ctx, name).await?;
    Ok((inst, group))
}

/// The server's ports (the caller holds the topology lock); Nova's 404
/// when it has none.
fn server_ports(app: &App, uuid: &str) -> Result<Vec<Arc<Port>>, Fault> {
    let ports = app.networks.ports_of_device(uuid);
    if ports.is_empty() {
        return Err(Fault::not_found(format!(
            "instance_id {uuid} could not be found as device id on any ports"
        )));
    }
    Ok(ports)
}

/// `addSecurityGroup`: the group goes on every port of the server. A port
/// without addresses cannot take groups (400); a group already on a port
/// is refused by Neutron's duplicate check (400, its message), and mixing
/// stateful and stateless groups is 409.
pub async fn add(app: &App, ctx: &Ctx, id: &str, name: &str) -> Result<(), Fault> {
    let (inst, group) = action_target(app, ctx, id, name, "add").await?;
    let _guard = app.networks.topology_lock().await;
    let ports = server_ports(app, &inst.uuid)?;
    let now = app.clock.now();
    for port in ports {
        if port.fixed_ips.is_empty() {
            return Err(Fault::bad_request(
                "Network requires port_security_enabled and subnet associated in order to apply security groups.",
            ));
        }
        let mut ids = port.security_groups.clone();
        ids.push(group.id.clone());
        let ids = parse_group_ids(&json!(ids))
            .and_then(|ids| {
                app.networks
                    .check_port_groups(&port.project_id, ctx.is_admin(), &ids)
            })
            .map_err(|e| {
                if e.status == 409 {
                    Fault::conflict(e.message)
                } else {
                    Fault::bad_request(e.message)
                }
            })?;
        set_port_groups(app, &port.id, ids, now).await?;
    }
    remember_groups(app, &inst.uuid).await;
    Ok(())
}

/// `removeSecurityGroup`: the group comes off every port that has it; 404
/// when no port of the server has it.
pub async fn remove(app: &App, ctx: &Ctx, id: &str, name: &str) -> Result<(), Fault> {
    let (inst, group) = action_target(app, ctx, id, name, "remove").await?;
    let _guard = app.networks.topology_lock().await;
    let ports = server_ports(app, &inst.uuid)?;
    let now = app.clock.now();
    let mut found = false;
    for port in ports {
        let Some(pos) = port.security_groups.iter().position(|g| *g == group.id) else {
            continue;
        };
        let mut ids = port.security_groups.clone();
        ids.remove(pos);
        set_port_groups(app, &port.id, ids, now).await?;
        found = true;
    }
    if !found {
        return Err(Fault::not_found(format!(
            "Security group {name} not associated with the instance {}",
            inst.uuid
        )));
    }
    remember_groups(app, &inst.uuid).await;
    Ok(())
}

/// Writes one port's group list.
async fn set_port_groups(
    app: &App,
    port_id: &str,
    ids: Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Fault> {
    app.networks
        .update_port(port_id, &[], |p| {
            p.security_groups = ids;
            p.updated_at = now;
            Ok(())
        })
        .await?;
    Ok(())
}

/// Keeps the instance record's group names in step with its ports, for
/// views rendered without a port lookup.
async fn remember_groups(app: &App, uuid: &str) {
    let devices = HashSet::from([uuid]);
    let names = names_by_device(app, None, &devices)
        .remove(uuid)
        .unwrap_or_default();
    let _ = app
        .compute
        .update_instance(uuid, app.clock.now(), |i| {
            if i.security_groups == names {
                return Err(Fault::conflict("unchanged"));
            }
            i.security_groups = names;
            Ok(())
        })
        .await;
}

/// A group's display name: its name, or its id when unnamed (as Nova).
fn display_name(g: &SecurityGroup) -> String {
    if g.name.is_empty() {
        g.id.clone()
    } else {
        g.name.clone()
    }
}

/// The names of the groups on each device's ports, port by port, keeping
/// only groups that exist and (with a caller) that the caller can see.
fn names_by_device(
    app: &App,
    ctx: Option<&Ctx>,
    devices: &HashSet<&str>,
) -> HashMap<String, Vec<String>> {
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    app.networks
        .groups_by_device(devices)
        .into_iter()
        .map(|(dev, ids)| {
            let names = ids
                .iter()
                .filter_map(|id| {
                    known
                        .entry(id.clone())
                        .or_insert_with(|| {
                            app.networks
                                .security_groups
                                .get(id)
                                .filter(|g| {
                                    ctx.is_none_or(|c| {
                                        group_visible(g, &c.project_id, c.is_admin())
                                    })
                                })
                                .map(|g| display_name(&g))
                        })
                        .clone()
                })
                .collect();
            (dev, names)
        })
        .collect()
}

/// Servers with `security_groups` set from their ports, as Nova's views
/// show them (for GET and lists).
pub fn with_port_groups_all(app: &App, ctx: &Ctx, insts: Vec<Arc<Instance>>) -> Vec<Arc<Instance>> {
    let mut by_dev = {
        let devices: HashSet<&str> = insts.iter().map(|i| i.uuid.as_str()).collect();
        names_by_device(app, Some(ctx), &devices)
    };
    insts
        .into_iter()
        .map(|i| {
            let names = by_dev.remove(&i.uuid).unwrap_or_default();
            if names == i.security_groups {
                i
            } else {
                let mut c = (*i).clone();
                c.security_groups = names;
                Arc::new(c)
            }
        })
        .collect()
}

/// One server with `security_groups` set from its ports.
pub fn with_port_groups(app: &App, ctx: &Ctx, inst: Arc<Instance>) -> Arc<Instance> {
    let fallback = inst.clone();
    with_port_groups_all(app, ctx, vec![inst])
        .pop()
        .unwrap_or(fallback)
}

// ---- Nova's format ----

/// A Neutron rule in Nova's format, or `None` when its remote group is
/// gone (Nova skips such rules).
fn nova_rule(app: &App, r: &SecurityGroupRule) -> Option<Value> {
    let (from, to) = match (&r.protocol, r.port_range_min, r.port_range_max) {
        (Some(p), None, None) => {
            if matches!(p.to_ascii_lowercase().as_str(), "tcp" | "udp") {
                (Some(1), Some(65535))
            } else {
                (Some(-1), Some(-1))
            }
        }
        (_, min, max) => (min.map(i64::from), max.map(i64::from)),
    };
    let (group, ip_range) = match &r.remote_group_id {
        Some(gid) => {
            let g = app.networks.security_groups.get(gid)?;
            (
                json!({"name": g.name, "tenant_id": g.project_id}),
                json!({}),
            )
        }
        None => (
            json!({}),
            json!({"cidr": r.remote_ip_prefix.clone().unwrap_or_else(|| "0.0.0.0/0".into())}),
        ),
    };
    Some(json!({
        "id": r.id,
        "parent_group_id": r.security_group_id,
        "ip_protocol": r.protocol,
        "from_port": from,
        "to_port": to,
        "group": group,
        "ip_range": ip_range,
    }))
}

/// A group in Nova's format: its ingress rules only.
pub fn nova_group(app: &App, g: &SecurityGroup) -> Value {
    let rules: Vec<Value> = g
        .rules
        .iter()
        .filter(|r| r.direction == "ingress")
        .filter_map(|r| nova_rule(app, r))
        .collect();
    json!({
        "id": g.id,
        "description": g.description,
        "name": g.name,
        "tenant_id": g.project_id,
        "rules": rules,
    })
}

fn sort_groups(v: &mut [Value]) {
    let key = |g: &Value| {
        (
            g["tenant_id"].as_str().unwrap_or("").to_string(),
            g["name"].as_str().unwrap_or("").to_string(),
        )
    };
    v.sort_by_key(key);
}

/// GET /servers/{id}/os-security-groups: the groups of the server's ports
/// (once per port carrying them), sorted by project and name.
pub fn server_groups(app: &App, ctx: &Ctx, id: &str) -> Result<Value, Fault> {
    let inst = servers::visible(app, ctx, id)?;
    let devices = HashSet::from([inst.uuid.as_str()]);
    let ids = app
        .networks
        .groups_by_device(&devices)
        .remove(&inst.uuid)
        .unwrap_or_default();
    let mut out: Vec<Value> = ids
        .iter()
        .filter_map(|id| app.networks.security_groups.get(id))
        .filter(|g| group_visible(g, &ctx.project_id, ctx.is_admin()))
        .map(|g| nova_group(app, &g))
        .collect();
    sort_groups(&mut out);
    Ok(json!({ "security_groups": out }))
}
