//! JSON views of servers, flavors, keypairs and instance actions, per
//! microversion and per caller (admin-only fields hidden from others).
//! Pure functions of the stored records and the request context.

use super::{Flavor, InstanceAction, Keypair};
use crate::http::Ctx;
use rova_core::model::{iso_micro, iso_z, Instance};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};

/// Where links point: `<base>/compute/v2.1[/<project>]` and the bookmark
/// form without the version.
#[derive(Debug, Clone)]
pub struct Links {
    pub versioned: String,
    pub bookmark: String,
}

impl Links {
    pub fn new(host_url: &str, path_project: Option<&str>) -> Self {
        let suffix = path_project.map(|p| format!("/{p}")).unwrap_or_default();
        Links {
            versioned: format!("{host_url}/compute/v2.1{suffix}"),
            bookmark: format!("{host_url}/compute{suffix}"),
        }
    }
    pub fn pair(&self, collection: &str, id: &str) -> Value {
        json!([
            {"rel": "self", "href": format!("{}/{collection}/{id}", self.versioned)},
            {"rel": "bookmark", "href": format!("{}/{collection}/{id}", self.bookmark)},
        ])
    }
    pub fn bookmark(&self, collection: &str, id: &str) -> Value {
        json!([{"rel": "bookmark", "href": format!("{}/{collection}/{id}", self.bookmark)}])
    }
}

/// Nova's hostId: sha224 of project id + host, "" without a host.
pub fn host_id(project_id: &str, host: Option<&str>) -> String {
    match host {
        Some(h) if !h.is_empty() => {
            let mut d = Sha224::new();
            d.update(project_id.as_bytes());
            d.update(h.as_bytes());
            hex::encode(d.finalize())
        }
        _ => String::new(),
    }
}

/// `addresses` (extended keys optional, as in ips and reduced views).
pub fn addresses(inst: &Instance, extended: bool) -> Value {
    let mut out = Map::new();
    if inst.vm_state == rova_core::states::VmState::Building {
        return Value::Object(out);
    }
    for vif in &inst.vifs {
        let entry = out
            .entry(vif.network_label.clone())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(list) = entry {
            for ip in &vif.fixed_ips {
                let mut a = json!({"addr": ip.address, "version": ip.version});
                if extended {
                    a["OS-EXT-IPS:type"] = json!("fixed");
                    a["OS-EXT-IPS-MAC:mac_addr"] = json!(vif.mac);
                }
                list.push(a);
                // The floating addresses right after their fixed one.
                for fip in &ip.floating_ips {
                    let mut a = json!({"addr": fip, "version": 4});
                    if extended {
                        a["OS-EXT-IPS:type"] = json!("floating");
                        a["OS-EXT-IPS-MAC:mac_addr"] = json!(vif.mac);
                    }
                    list.push(a);
                }
            }
        }
    }
    Value::Object(out)
}

fn with_progress(status: &str) -> bool {
    matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    )
}

/// Which flavor view to embed.
fn flavor_view(inst: &Instance, ctx: &Ctx, links: &Links) -> Value {
    if ctx.at_least(47) {
        let f = &inst.flavor;
        json!({"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": f.ephemeral,
               "swap": f.swap, "original_name": f.name, "extra_specs": f.extra_specs})
    } else {
        json!({"id": inst.flavor.id, "links": links.bookmark("flavors", &inst.flavor.id)})
    }
}

fn image_view(inst: &Instance, ctx: &Ctx, links: &Links) -> Value {
    if inst.image_ref.is_empty() {
        return json!("");
    }
    let mut v = json!({"id": inst.image_ref, "links": links.bookmark("images", &inst.image_ref)});
    if ctx.at_least(98) {
        v["properties"] = json!(inst.image_properties);
    }
    v
}

/// The kind of server body wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerView {
    /// GET /servers/{id}: every field.
    Show,
    /// An item of /servers/detail: like show without `server_groups`.
    Detail,
    /// PUT / rebuild response below 2.75.
    Reduced,
}

fn fault_view(inst: &Instance, ctx: &Ctx) -> Option<Value> {
    let f = inst.fault.as_ref()?;
    let mut v = json!({"code": f.code, "message": f.message, "created": iso_z(&f.created)});
    if ctx.is_admin() || f.code != 500 {
        if let Some(d) = &f.details {
            v["details"] = json!(d);
        }
    }
    Some(v)
}

/// A server as Nova renders it at the caller's microversion.
/// `host_status` is the compute service state of the server's host (UP,
/// DOWN, MAINTENANCE, UNKNOWN, or "" without a host), shown to admins at
/// 2.16+.
pub fn server(
    inst: &Instance,
    ctx: &Ctx,
    links: &Links,
    view: ServerView,
    host_status: &str,
) -> Value {
    let status = inst.status();
    let mut s = Map::new();
    let mut put = |k: &str, v: Value| {
        s.insert(k.to_string(), v);
    };
    put("id", json!(inst.uuid));
    put("name", json!(inst.display_name));
    put("status", json!(status));
    put("tenant_id", json!(inst.project_id));
    put("user_id", json!(inst.user_id));
    put("created", json!(iso_z(&inst.created_at)));
    put("updated", json!(iso_z(&inst.updated_at)));
    put(
        "hostId",
        json!(host_id(&inst.project_id, inst.host.as_deref())),
    );
    put("links", links.pair("servers", &inst.uuid));
    put("image", image_view(inst, ctx, links));
    put("flavor", flavor_view(inst, ctx, links));
    put("addresses", addresses(inst, view != ServerView::Reduced));
    put(
        "accessIPv4",
        json!(inst.access_ip_v4.clone().unwrap_or_default()),
    );
    put(
        "accessIPv6",
        json!(inst.access_ip_v6.clone().unwrap_or_default()),
    );
    put("metadata", json!(inst.metadata));
    put(
        "OS-DCF:diskConfig",
        json!(if inst.auto_disk_config {
            "AUTO"
        } else {
            "MANUAL"
        }),
    );
    if with_progress(status) {
        put("progress", json!(inst.progress));
    }
    if matches!(status, "ERROR" | "DELETED") {
        if let Some(f) = fault_view(inst, ctx) {
            put("fault", f);
        }
    }
    if view != ServerView::Reduced {
        put("key_name", json!(inst.key_name));
        put(
            "config_drive",
            json!(if inst.config_drive { "True" } else { "" }),
        );
        put(
            "OS-EXT-AZ:availability_zone",
            json!(inst.availability_zone.clone().unwrap_or_default()),
        );
        put("OS-EXT-STS:task_state", json!(inst.task_state));
        put("OS-EXT-STS:vm_state", json!(inst.vm_state));
        put("OS-EXT-STS:power_state", json!(inst.power_state));
        put(
            "OS-SRV-USG:launched_at",
            json!(inst.launched_at.as_ref().map(iso_micro)),
        );
        put(
            "OS-SRV-USG:terminated_at",
            json!(inst.terminated_at.as_ref().map(iso_micro)),
        );
        let vols: Vec<Value> = super::volumes::attached(inst)
            .map(|b| {
                if ctx.at_least(3) {
                    json!({"id": b.uuid, "delete_on_termination": b.delete_on_termination})
                } else {
                    json!({"id": b.uuid})
                }
            })
            .collect();
        put("os-extended-volumes:volumes_attached", json!(vols));
        if !inst.security_groups.is_empty() {
            let sgs: Vec<Value> = inst
                .security_groups
                .iter()
                .map(|n| json!({"name": n}))
                .collect();
            put("security_groups", json!(sgs));
        }
        if ctx.is_admin() {
            put("OS-EXT-SRV-ATTR:host", json!(inst.host));
            put("OS-EXT-SRV-ATTR:instance_name", json!(inst.instance_name()));
            put("OS-EXT-SRV-ATTR:hypervisor_hostname", json!(inst.node));
            if ctx.at_least(3) {
                put("OS-EXT-SRV-ATTR:reservation_id", json!(inst.reservation_id));
                put("OS-EXT-SRV-ATTR:launch_index", json!(inst.launch_index));
                put("OS-EXT-SRV-ATTR:kernel_id", json!(inst.kernel_id));
                put("OS-EXT-SRV-ATTR:ramdisk_id", json!(inst.ramdisk_id));
                put(
                    "OS-EXT-SRV-ATTR:root_device_name",
                    json!(inst.root_device_name),
                );
                put("OS-EXT-SRV-ATTR:user_data", json!(inst.user_data));
            }
            if ctx.at_least(16) {
                put("host_status", json!(host_status));
            }
        }
    }
    if (view != ServerView::Reduced && ctx.is_admin() && ctx.at_least(3)) || ctx.at_least(90) {
        put("OS-EXT-SRV-ATTR:hostname", json!(inst.hostname));
    }
    if ctx.at_least(9) {
        put("locked", json!(inst.locked()));
    }
    if ctx.at_least(19) {
        put("description", json!(inst.display_description));
    }
    if ctx.at_least(26) {
        put("tags", json!(inst.tags));
    }
    if ctx.at_least(63) {
        put(
            "trusted_image_certificates",
            json!(inst.trusted_image_certificates),
        );
    }
    if ctx.at_least(71) && view != ServerView::Detail {
        put("server_groups", json!(inst.server_groups));
    }
    if ctx.at_least(73) {
        put("locked_reason", json!(inst.locked_reason));
    }
    if view != ServerView::Reduced {
        if ctx.at_least(96) {
            put(
                "pinned_availability_zone",
                json!(inst.pinned_availability_zone),
            );
        }
        if ctx.at_least(100) {
            let hints: Map<String, Value> = inst
                .scheduler_hints
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Array(_) => v.clone(),
                        other => json!([other]),
                    };
                    (k.clone(), v)
                })
                .collect();
            put("scheduler_hints", Value::Object(hints));
        }
    }
    Value::Object(s)
}

/// An item of GET /servers: id, name, links.
pub fn server_brief(inst: &Instance, links: &Links) -> Value {
    json!({"id": inst.uuid, "name": inst.display_name, "links": links.pair("servers", &inst.uuid)})
}

/// A flavor (show/detail), per microversion.
pub fn flavor(f: &Flavor, ctx: &Ctx, links: &Links, detail: bool) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "links": links.pair("flavors", &f.id)});
    if ctx.at_least(55) {
        v["description"] = json!(f.description);
    }
    if !detail {
        return v;
    }
    v["vcpus"] = json!(f.vcpus);
    v["ram"] = json!(f.ram);
    v["disk"] = json!(f.disk);
    v["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral);
    v["swap"] = if f.swap == 0 && !ctx.at_least(75) {
        json!("")
    } else {
        json!(f.swap)
    };
    v["os-flavor-access:is_public"] = json!(f.is_public);
    if !ctx.at_least(102) {
        v["rxtx_factor"] = json!(f.rxtx_factor);
        v["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
    }
    if ctx.at_least(61) {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

/// A keypair as shown by show/create.
pub fn keypair(k: &Keypair, ctx: &Ctx, private_key: Option<&str>) -> Value {
    let mut v = json!({
        "name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint,
        "user_id": k.user_id,
    });
    if ctx.at_least(2) {
        v["type"] = json!(k.key_type);
    }
    if let Some(p) = private_key {
        v["private_key"] = json!(p);
    }
    v
}

/// An instance action (without events).
pub fn instance_action(a: &InstanceAction, ctx: &Ctx) -> Value {
    let mut v = json!({
        "action": a.action, "instance_uuid": a.instance_uuid, "request_id": a.request_id,
        "user_id": a.user_id, "project_id": a.project_id, "start_time": iso_micro(&a.start_time),
        "message": a.message,
    });
    if ctx.at_least(58) {
        v["updated_at"] = json!(iso_micro(&a.updated_at));
    }
    v
}

/// An instance action with its events (visibility per microversion/role).
pub fn instance_action_detail(a: &InstanceAction, ctx: &Ctx, project_id: &str) -> Value {
    let mut v = instance_action(a, ctx);
    if ctx.is_admin() || ctx.at_least(51) {
        let events: Vec<Value> = a
            .events
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event, "start_time": iso_micro(&e.start_time),
                    "finish_time": e.finish_time.as_ref().map(iso_micro), "result": e.result,
                });
                if ctx.is_admin() {
                    ev["traceback"] = json!(e.traceback);
                }
                if ctx.at_least(62) {
                    ev["hostId"] = json!(host_id(project_id, e.host.as_deref()));
                    if ctx.is_admin() {
                        ev["host"] = json!(e.host);
                    }
                }
                if ctx.at_least(84) && ctx.is_admin() {
                    ev["details"] = json!(e.details);
                }
                ev
            })
            .collect();
        v["events"] = json!(events);
    }
    v
}
