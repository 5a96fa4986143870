//! The relational layout of the store: which table each resource kind is
//! kept in, and which of its fields are columns of their own (keys the
//! database indexes and queries on) beside the record's document.
//!
//! The tables themselves are created by the migrations under
//! `crates/rova/migrations/{sqlite,postgres}`; `every_kind_has_its_table`
//! in the storage tests checks that each column declared here exists on
//! both backends.

use serde_json::Value;

/// The SQL type of an extracted column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Int,
    Bool,
    /// An RFC 3339 time kept as nanoseconds since the epoch, so that the
    /// column orders as the times do (the text's fractional digits vary).
    Nanos,
    /// The field is an array of objects: the text of each one's member
    /// named here, joined with spaces (e.g. a server's port ids).
    Members(&'static str),
}

/// A column filled from the record: `field` is a field of the serialised
/// record, a nested one written with dots (`flavor.vcpus`).
#[derive(Debug)]
pub struct Col {
    pub name: &'static str,
    pub field: &'static str,
    pub ty: Ty,
}

/// One resource kind's table.
#[derive(Debug)]
pub struct Kind {
    /// The name the code loads the kind by (`Table::load("instance", …)`).
    pub kind: &'static str,
    pub table: &'static str,
    pub cols: &'static [Col],
}

/// A value bound to a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
}

const fn text(name: &'static str, field: &'static str) -> Col {
    Col {
        name,
        field,
        ty: Ty::Text,
    }
}
const fn int(name: &'static str, field: &'static str) -> Col {
    Col {
        name,
        field,
        ty: Ty::Int,
    }
}
const fn nanos(name: &'static str, field: &'static str) -> Col {
    Col {
        name,
        field,
        ty: Ty::Nanos,
    }
}
const fn members(name: &'static str, field: &'static str, member: &'static str) -> Col {
    Col {
        name,
        field,
        ty: Ty::Members(member),
    }
}
const fn boolean(name: &'static str, field: &'static str) -> Col {
    Col {
        name,
        field,
        ty: Ty::Bool,
    }
}

/// Every kind the services keep, in the order the migrations create them.
pub const KINDS: &[Kind] = &[
    Kind {
        kind: "instance",
        table: "instances",
        cols: &[
            int("instance_id", "id"),
            text("project_id", "project_id"),
            text("user_id", "user_id"),
            text("display_name", "display_name"),
            text("host", "host"),
            text("node", "node"),
            text("vm_state", "vm_state"),
            text("task_state", "task_state"),
            boolean("deleted", "deleted"),
            text("created_at", "created_at"),
            text("updated_at", "updated_at"),
            nanos("created_ns", "created_at"),
            text("op_owner", "op_owner"),
            text("image_ref", "image_ref"),
            int("vcpus", "flavor.vcpus"),
            int("memory_mb", "flavor.ram"),
            int("root_gb", "flavor.disk"),
            int("ephemeral_gb", "flavor.ephemeral"),
            int("swap_mb", "flavor.swap"),
            members("vif_ports", "vifs", "port_id"),
        ],
    },
    Kind {
        kind: "instance_action",
        table: "instance_actions",
        cols: &[
            text("instance_uuid", "instance_uuid"),
            text("request_id", "request_id"),
            text("action", "action"),
        ],
    },
    Kind {
        kind: "migration",
        table: "migrations",
        cols: &[
            int("migration_id", "id"),
            text("instance_uuid", "instance_uuid"),
            text("status", "status"),
            text("source_compute", "source_compute"),
            text("dest_compute", "dest_compute"),
            text("created_at", "created_at"),
        ],
    },
    Kind {
        kind: "flavor",
        table: "flavors",
        cols: &[
            text("name", "name"),
            boolean("is_public", "is_public"),
            boolean("disabled", "disabled"),
        ],
    },
    Kind {
        kind: "keypair",
        table: "keypairs",
        cols: &[text("user_id", "user_id"), text("name", "name")],
    },
    Kind {
        kind: "server_group",
        table: "server_groups",
        cols: &[text("project_id", "project_id"), text("name", "name")],
    },
    Kind {
        kind: "quota",
        table: "quotas",
        cols: &[text("project_id", "project_id")],
    },
    Kind {
        kind: "console_token",
        table: "console_tokens",
        cols: &[
            text("instance_uuid", "instance_uuid"),
            text("expires", "expires"),
        ],
    },
    Kind {
        kind: "compute_service",
        table: "services",
        cols: &[text("binary", "binary"), text("host", "host")],
    },
    Kind {
        kind: "cluster_ca",
        table: "cluster_cas",
        cols: &[],
    },
    Kind {
        kind: "enrollment_token",
        table: "enrollment_tokens",
        cols: &[text("host", "host"), nanos("expires_at", "expires_at")],
    },
    Kind {
        kind: "agent_endpoint",
        table: "agent_endpoints",
        cols: &[],
    },
    Kind {
        kind: "service_heartbeat",
        table: "service_heartbeats",
        cols: &[text("binary", "binary"), text("host", "host")],
    },
    Kind {
        kind: "live_migration_control",
        table: "live_migration_controls",
        cols: &[],
    },
    Kind {
        kind: "id_counter",
        table: "id_counters",
        cols: &[],
    },
    Kind {
        kind: "image",
        table: "images",
        cols: &[
            text("owner", "owner"),
            text("name", "name"),
            text("status", "status"),
            text("visibility", "visibility"),
            text("created_at", "created_at"),
        ],
    },
    Kind {
        kind: "network",
        table: "networks",
        cols: &[
            text("project_id", "project_id"),
            text("name", "name"),
            boolean("shared", "shared"),
        ],
    },
    Kind {
        kind: "subnet",
        table: "subnets",
        cols: &[
            text("network_id", "network_id"),
            text("project_id", "project_id"),
            text("cidr", "cidr"),
        ],
    },
    Kind {
        kind: "port",
        table: "ports",
        cols: &[
            text("network_id", "network_id"),
            text("project_id", "project_id"),
            text("device_id", "device_id"),
            text("mac_address", "mac_address"),
        ],
    },
    Kind {
        kind: "security_group",
        table: "security_groups",
        cols: &[text("project_id", "project_id"), text("name", "name")],
    },
    Kind {
        kind: "user",
        table: "users",
        cols: &[text("name", "name"), text("domain_id", "domain_id")],
    },
    Kind {
        kind: "project",
        table: "projects",
        cols: &[text("name", "name"), text("domain_id", "domain_id")],
    },
    Kind {
        kind: "token_revocation",
        table: "token_revocations",
        cols: &[],
    },
    Kind {
        kind: "clock_offset",
        table: "clock_offsets",
        cols: &[],
    },
    Kind {
        kind: "sim_faults",
        table: "sim_faults",
        cols: &[],
    },
    Kind {
        kind: "allocation",
        table: "allocations",
        cols: &[
            text("instance_uuid", "instance_uuid"),
            text("host", "host"),
            int("vcpus", "vcpus"),
            int("memory_mb", "memory_mb"),
            int("disk_gb", "disk_gb"),
        ],
    },
    Kind {
        kind: "dashboard_session",
        table: "dashboard_sessions",
        cols: &[text("user_id", "user_id"), text("expires_at", "expires_at")],
    },
    Kind {
        kind: "server_group_member",
        table: "server_group_members",
        cols: &[
            text("group_id", "group_id"),
            text("instance_uuid", "instance_uuid"),
            text("group_user", "group_user"),
        ],
    },
    Kind {
        kind: "operation",
        table: "operations",
        cols: &[
            text("kind", "kind"),
            text("step", "step"),
            text("owner", "owner"),
            int("attempts", "attempts"),
            text("started_at", "started_at"),
        ],
    },
    Kind {
        kind: "flavor_extra_spec",
        table: "flavor_extra_specs",
        cols: &[text("flavor_id", "flavor_id"), text("spec_key", "key")],
    },
    Kind {
        kind: "flavor_project",
        table: "flavor_projects",
        cols: &[
            text("flavor_id", "flavor_id"),
            text("project_id", "project_id"),
        ],
    },
    Kind {
        kind: "security_group_rule",
        table: "security_group_rules",
        cols: &[
            text("security_group_id", "security_group_id"),
            text("project_id", "project_id"),
            text("remote_group_id", "remote_group_id"),
        ],
    },
    Kind {
        kind: "image_member",
        table: "image_members",
        cols: &[
            text("image_id", "image_id"),
            text("member_id", "member_id"),
            text("status", "status"),
        ],
    },
    Kind {
        kind: "image_tag",
        table: "image_tags",
        cols: &[text("image_id", "image_id"), text("tag", "tag")],
    },
    Kind {
        kind: "instance_tag",
        table: "instance_tags",
        cols: &[text("instance_uuid", "instance_uuid"), text("tag", "tag")],
    },
    Kind {
        kind: "resource_provider",
        table: "resource_providers",
        cols: &[
            text("name", "name"),
            int("vcpu_capacity", "capacity.vcpus"),
            int("memory_capacity", "capacity.memory_mb"),
            int("disk_capacity", "capacity.disk_gb"),
        ],
    },
    Kind {
        kind: "volume",
        table: "volumes",
        cols: &[
            text("project_id", "project_id"),
            text("status", "status"),
            int("size_gb", "size"),
            text("display_name", "name"),
        ],
    },
    Kind {
        kind: "snapshot",
        table: "snapshots",
        cols: &[
            text("project_id", "project_id"),
            text("volume_id", "volume_id"),
            text("status", "status"),
            int("size_gb", "size"),
            text("display_name", "name"),
        ],
    },
    Kind {
        kind: "volume_quota",
        table: "volume_quotas",
        cols: &[],
    },
    Kind {
        kind: "instance_action_event",
        table: "instance_action_events",
        cols: &[
            text("action_id", "action_id"),
            text("instance_uuid", "instance_uuid"),
            text("event", "event"),
        ],
    },
    Kind {
        kind: "router",
        table: "routers",
        cols: &[
            text("project_id", "project_id"),
            text("name", "name"),
            text("gw_network_id", "gateway.network_id"),
            text("gw_port_id", "gateway.port_id"),
        ],
    },
    Kind {
        kind: "floatingip",
        table: "floatingips",
        cols: &[
            text("project_id", "project_id"),
            text("floating_network_id", "floating_network_id"),
            text("floating_ip_address", "floating_ip_address"),
            text("floating_port_id", "floating_port_id"),
            text("fixed_port_id", "port_id"),
            text("fixed_ip_address", "fixed_ip_address"),
            text("router_id", "router_id"),
            text("fixed_key", "fixed_key"),
        ],
    },
];

/// The `(subnet_id, ip_address)` pairs of a port document's `fixed_ips`.
pub fn fixed_ips(body: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Ip {
        subnet_id: Option<String>,
        ip_address: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Port {
        #[serde(default)]
        fixed_ips: Vec<Ip>,
    }
    serde_json::from_str::<Port>(body)
        .map(|p| {
            p.fixed_ips
                .into_iter()
                .filter_map(|ip| Some((ip.subnet_id?, ip.ip_address?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a guarded instance row may be written: `own` is its
/// `(vcpus, ram)`, `used` the `(instances, vcpus, ram)` counted from the
/// rows with it included (for a capacity guard the instance count is not
/// used). Refusals carry Nova's quota message.
pub fn quota_verdict(
    guard: &super::backend::Guard,
    own: (i64, i64),
    used: (i64, i64, i64),
) -> Result<(), super::backend::Refusal> {
    use super::backend::{Guard, Refusal};
    match guard {
        Guard::Quota {
            instances,
            cores,
            ram,
            ..
        } => {
            let checks = [
                ("instances", 1, used.0, *instances),
                ("cores", own.0, used.1, *cores),
                ("ram", own.1, used.2, *ram),
            ];
            for (what, asked, total, limit) in checks {
                if limit >= 0 && asked > 0 && total > limit {
                    return Err(Refusal::Quota(format!(
                        "Quota exceeded for {what}: Requested {asked}, but already used {} of {limit} {what}",
                        total - asked
                    )));
                }
            }
            Ok(())
        }
        Guard::Count { limit, message, .. } => {
            if *limit >= 0 && used.0 > *limit {
                return Err(Refusal::Quota(message.clone()));
            }
            Ok(())
        }
        Guard::Rows { max, message, .. } => {
            if used.0 > *max {
                return Err(Refusal::Quota(message.clone()));
            }
            Ok(())
        }
        Guard::Capacity { node } => capacity_verdict(node, (used.1, used.2), None),
        Guard::Storage { .. } => storage_verdict(guard, used.0, 0),
    }
}

/// A [`Guard::Storage`]'s verdict on the project's `rows` of the written
/// table and the `gb` its volumes and snapshots hold (the written row
/// included in both).
pub fn storage_verdict(
    guard: &super::backend::Guard,
    rows: i64,
    gb: i64,
) -> Result<(), super::backend::Refusal> {
    use super::backend::{Guard, Refusal};
    let Guard::Storage {
        count,
        gigabytes,
        requested,
        ..
    } = guard
    else {
        return Ok(());
    };
    if let Some((limit, message)) = count {
        if *limit >= 0 && rows > *limit {
            return Err(Refusal::Quota(message.clone()));
        }
    }
    if *gigabytes >= 0 && *requested > 0 && gb > *gigabytes {
        return Err(Refusal::Quota(format!(
            "Requested volume or snapshot exceeds allowed \
             gigabytes quota. Requested {requested}G, quota is {gigabytes}G and {}G has been \
             consumed.",
            gb - requested
        )));
    }
    Ok(())
}

/// Whether the allocations on `node`, `used` `(vcpus, ram)` with the new
/// one included, fit the `(vcpus, ram)` capacity of its
/// `resource_providers` row (`None`: no row, no room).
pub fn capacity_verdict(
    node: &str,
    used: (i64, i64),
    capacity: Option<(i64, i64)>,
) -> Result<(), super::backend::Refusal> {
    use super::backend::Refusal;
    let Some((vcpus, ram)) = capacity else {
        return Err(Refusal::Capacity(format!(
            "Host {node} has no room: no resource provider is registered for it"
        )));
    };
    if used.0 > vcpus || used.1 > ram {
        return Err(Refusal::Capacity(format!(
            "Host {node} has no room: {} of {vcpus} vCPUs and {} of {ram} MB RAM would be used",
            used.0, used.1
        )));
    }
    Ok(())
}

/// The rows a record of the pre-relational store becomes, each with its
/// kind: itself, but for a server, whose tags become `instance_tags` rows
/// (migration 19's move), and a server's instance-action log
/// (`{"actions": [...]}`), which becomes one row per action, keyed
/// `<server>/<seq>` (migration 15's split), and one row of
/// `instance_action_events` per event the action listed, keyed
/// `<server>/<seq>/<nn>` (migration 20's move).
pub fn rows_of_record(
    kind: &'static Kind,
    id: &str,
    body: String,
) -> Vec<(&'static Kind, String, String)> {
    if kind.kind == "instance_action" {
        if let Ok(serde_json::Value::Object(mut log)) = serde_json::from_str(&body) {
            if let Some(serde_json::Value::Array(actions)) = log.remove("actions") {
                let mut out = Vec::new();
                for (seq, mut a) in actions.into_iter().enumerate() {
                    let key = format!("{id}/{seq:06}");
                    let events = a.as_object_mut().and_then(|o| {
                        o.insert("seq".into(), serde_json::json!(seq));
                        o.remove("events")
                    });
                    out.push((kind, key.clone(), a.to_string()));
                    out.extend(event_rows(&key, id, events));
                }
                return out;
            }
        }
    }
    if kind.kind == "instance" {
        if let Ok(Value::Object(mut inst)) = serde_json::from_str(&body) {
            if let Some(tags) = inst.remove("tags") {
                let mut out = vec![(kind, id.to_string(), Value::Object(inst).to_string())];
                out.extend(tag_rows(id, tags));
                return out;
            }
        }
    }
    vec![(kind, id.to_string(), body)]
}

/// The `instance_tags` rows of the tags server `server` listed, in their
/// order (migration 19's move).
fn tag_rows(server: &str, tags: Value) -> Vec<(&'static Kind, String, String)> {
    let (Some(kind), Value::Array(tags)) = (of("instance_tag"), tags) else {
        return Vec::new();
    };
    tags.into_iter()
        .enumerate()
        .filter_map(|(n, t)| {
            let tag = t.as_str()?.to_string();
            let row = serde_json::json!({"instance_uuid": server, "tag": tag, "position": n});
            Some((kind, format!("{server}/{tag}"), row.to_string()))
        })
        .collect()
}

/// The `instance_action_events` rows of the events action `action` of
/// server `server` listed, in their order.
fn event_rows(
    action: &str,
    server: &str,
    events: Option<Value>,
) -> Vec<(&'static Kind, String, String)> {
    let (Some(kind), Some(Value::Array(events))) = (of("instance_action_event"), events) else {
        return Vec::new();
    };
    events
        .into_iter()
        .enumerate()
        .filter_map(|(n, mut e)| {
            let o = e.as_object_mut()?;
            o.insert("action_id".into(), Value::from(action));
            o.insert("instance_uuid".into(), Value::from(server));
            o.insert("position".into(), Value::from(n));
            Some((kind, format!("{action}/{n:02}"), e.to_string()))
        })
        .collect()
}

/// The table of `kind`, if the schema knows it.
pub fn of(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == kind)
}

impl Kind {
    /// The columns a write fills, quoted, in order: `id`, the key columns,
    /// `body` (both backends' upserts bind their values in this order).
    pub fn write_columns(&self) -> Vec<String> {
        let mut cols = vec!["id".to_string()];
        cols.extend(self.cols.iter().map(|c| format!("\"{}\"", c.name)));
        cols.push("body".into());
        cols
    }

    /// The column values of one record, in `cols` order, read from its
    /// parsed form: the reference [`Kind::cells_of_json`] is checked against.
    #[cfg(test)]
    pub fn cells(&self, doc: &Value) -> Vec<Cell> {
        self.cols
            .iter()
            .map(|c| {
                let v = c.field.split('.').try_fold(doc, |v, part| v.get(part));
                cell(c.ty, v)
            })
            .collect()
    }

    /// The top-level field each column is read from, in `cols` order
    /// (worked out once per kind).
    fn tops(&self) -> &'static [&'static str] {
        use std::sync::OnceLock;
        static ALL: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
        let all = ALL.get_or_init(|| {
            KINDS
                .iter()
                .map(|k| {
                    k.cols
                        .iter()
                        .map(|c| c.field.split('.').next().unwrap_or(c.field))
                        .collect()
                })
                .collect()
        });
        KINDS
            .iter()
            .position(|k| k.table == self.table)
            .map_or(&[], |i| all[i].as_slice())
    }

    /// The same from the record's JSON text, reading only the top-level
    /// fields that are columns (the rest is skipped, not built).
    pub fn cells_of_json(&self, json: &str) -> Result<Vec<Cell>, serde_json::Error> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_str(json);
        Pick(self).deserialize(&mut de)
    }
}

fn cell(ty: Ty, v: Option<&Value>) -> Cell {
    match (ty, v) {
        // A key column cannot hold NUL on PostgreSQL; the document keeps
        // the exact text.
        (Ty::Text, Some(Value::String(s))) => Cell::Text(s.replace('\0', "\u{fffd}")),
        (Ty::Int, Some(Value::Number(n))) => n.as_i64().map_or(Cell::Null, Cell::Int),
        (Ty::Bool, Some(Value::Bool(b))) => Cell::Bool(*b),
        (Ty::Nanos, Some(Value::String(s))) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map_or(Cell::Null, Cell::Int),
        (Ty::Members(member), Some(Value::Array(items))) => Cell::Text(
            items
                .iter()
                .filter_map(|v| v.get(member).and_then(Value::as_str))
                .map(|s| s.replace('\0', "\u{fffd}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => Cell::Null,
    }
}

/// Reads a record's column fields out of its JSON object.
struct Pick<'k>(&'k Kind);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Vec<Cell>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Cell>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Vec<Cell>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<Cell>, A::Error> {
        let mut out = vec![Cell::Null; self.0.cols.len()];
        let tops = self.0.tops();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !tops.iter().any(|t| *t == key) {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let v: Value = map.next_value()?;
            for (i, c) in self.0.cols.iter().enumerate() {
                if tops[i] != key {
                    continue;
                }
                let inner = c
                    .field
                    .split('.')
                    .skip(1)
                    .try_fold(&v, |v, part| v.get(part));
                out[i] = cell(c.ty, inner);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_and_tables_are_unique() {
        let mut kinds: Vec<_> = KINDS.iter().map(|k| k.kind).collect();
        let mut tables: Vec<_> = KINDS.iter().map(|k| k.table).collect();
        kinds.sort_unstable();
        kinds.dedup();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(kinds.len(), KINDS.len());
        assert_eq!(tables.len(), KINDS.len());
    }

    /// The rows pre-relational record `doc` of kind `k` (id `srv`)
    /// becomes: (kind, id, parsed body).
    fn split(k: &'static Kind, doc: &Value) -> Vec<(&'static str, String, Value)> {
        rows_of_record(k, "srv", doc.to_string())
            .into_iter()
            .map(|(kind, id, body)| (kind.kind, id, serde_json::from_str(&body).expect("json")))
            .collect()
    }

    #[test]
    fn a_pre_relational_action_log_becomes_action_and_event_rows() {
        let k = of("instance_action").expect("kind");
        let ev = |name: &str| json!({"event": name, "start_time": "t", "result": null});
        let log = json!({"actions": [
            {"action": "create", "events": []},
            {"action": "stop", "events": [ev("first"), ev("second")]},
        ]});
        let rows = split(k, &log);
        let ids: Vec<(&str, &str)> = rows.iter().map(|(k, id, _)| (*k, id.as_str())).collect();
        assert_eq!(
            ids,
            [
                ("instance_action", "srv/000000"),
                ("instance_action", "srv/000001"),
                ("instance_action_event", "srv/000001/00"),
                ("instance_action_event", "srv/000001/01"),
            ]
        );
        assert!(rows[1].2.get("events").is_none(), "taken out of the action");
        assert_eq!(rows[1].2["seq"], json!(1));
        assert_eq!(
            rows[3].2,
            json!({"event": "second", "start_time": "t", "result": null,
                   "action_id": "srv/000001", "instance_uuid": "srv", "position": 1})
        );
    }

    #[test]
    fn a_pre_relational_servers_tags_become_tag_rows() {
        let k = of("instance").expect("kind");
        let doc = json!({"uuid": "srv", "display_name": "s", "tags": ["b", "a"]});
        let rows = split(k, &doc);
        let ids: Vec<(&str, &str)> = rows.iter().map(|(k, id, _)| (*k, id.as_str())).collect();
        assert_eq!(
            ids,
            [
                ("instance", "srv"),
                ("instance_tag", "srv/b"),
                ("instance_tag", "srv/a"),
            ]
        );
        assert_eq!(rows[0].2, json!({"uuid": "srv", "display_name": "s"}));
        assert_eq!(
            rows[2].2,
            json!({"instance_uuid": "srv", "tag": "a", "position": 1})
        );
    }

    #[test]
    fn cells_follow_the_declared_types() {
        let k = of("instance").expect("instance kind");
        let doc = json!({
            "id": 7, "project_id": "p", "host": null, "deleted": false,
            "vm_state": "active", "display_name": 3, "metadata": {"project_id": "not me"}
        });
        let cells = k.cells(&doc);
        assert_eq!(
            k.cells_of_json(&doc.to_string()).expect("json"),
            cells,
            "both readings agree"
        );
        assert_eq!(cells[0], Cell::Int(7));
        assert_eq!(cells[1], Cell::Text("p".into()));
        assert_eq!(cells[3], Cell::Null, "a number where text is declared");
        assert_eq!(cells[4], Cell::Null, "null host");
        assert_eq!(cells[6], Cell::Text("active".into()));
        assert_eq!(cells[8], Cell::Bool(false));
    }
}
