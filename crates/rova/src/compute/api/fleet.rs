//! Routes for the fleet's admin APIs: `os-services` (list, enable/disable,
//! force down — the per-action URLs below 2.53, `PUT /os-services/{uuid}`
//! from 2.53; delete in `service_delete`), `os-hypervisors` (list, detail, show), `os-migrations`, and
//! a server's live migrations (`/servers/{id}/migrations`, force_complete,
//! abort).

use super::{query_pairs, Links};
use crate::app::App;
use crate::compute::fleet::{stable_uuid, HostConfig, ServiceRecord, CONTROL_HOST};
use crate::compute::live_migration;
use crate::compute::migrate::{require_manager, Migration};
use crate::http::{empty, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use rova_core::model::iso_micro;
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/os-services", get(services_index))
        .route(
            "/os-services/{id}",
            put(service_update).delete(super::service_delete::service_delete),
        )
        .route("/os-hypervisors", get(hypervisors_index))
        .route("/os-hypervisors/detail", get(hypervisors_detail))
        .route("/os-hypervisors/{id}", get(hypervisor_show))
        .route("/os-hypervisors/{id}/uptime", get(hypervisor_uptime))
        .route("/os-hypervisors/statistics", get(hypervisor_statistics))
        .route("/os-hypervisors/{pattern}/search", get(hypervisor_search))
        .route("/os-hypervisors/{pattern}/servers", get(hypervisor_servers))
        .route("/os-migrations", get(migrations_index))
        .route("/servers/{id}/migrations", get(server_migrations))
        .route(
            "/servers/{id}/migrations/{mid}",
            get(server_migration).delete(server_migration_abort),
        )
        .route(
            "/servers/{id}/migrations/{mid}/action",
            post(server_migration_action),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;
type L = Extension<Links>;

fn not_found() -> Fault {
    Fault::not_found("The resource could not be found.")
}

// ---- services ----

/// One service as the API lists it.
pub struct Svc {
    pub int_id: usize,
    pub uuid: String,
    pub zone: String,
    pub rec: ServiceRecord,
}

/// Every service shown: a nova-compute per registered host, then the
/// control services (unless deleted).
pub fn all_services(app: &App) -> Vec<Svc> {
    let fleet = &app.compute.fleet;
    let hosts = fleet.hosts();
    let n = hosts.len();
    let mut v: Vec<Svc> = hosts
        .iter()
        .map(|h| Svc {
            int_id: h.index,
            uuid: h.service_uuid(),
            zone: h.availability_zone.clone(),
            rec: fleet.service("nova-compute", &h.name),
        })
        .collect();
    for (i, binary) in ["nova-scheduler", "nova-conductor"].into_iter().enumerate() {
        if fleet.service(binary, CONTROL_HOST).deleted {
            continue;
        }
        v.push(Svc {
            int_id: n + i + 1,
            uuid: stable_uuid(&format!("service:{binary}:{CONTROL_HOST}")),
            zone: "internal".into(),
            rec: fleet.service(binary, CONTROL_HOST),
        });
    }
    v
}

fn service_view(app: &App, ctx: &Ctx, s: &Svc) -> Value {
    let fleet = &app.compute.fleet;
    let updated = fleet.heartbeat(&s.rec).map(|t| iso_micro(&t));
    let mut v = json!({
        "id": if ctx.at_least(53) { json!(s.uuid) } else { json!(s.int_id) },
        "binary": s.rec.binary,
        "host": s.rec.host,
        "zone": s.zone,
        "status": if s.rec.disabled { "disabled" } else { "enabled" },
        "state": if fleet.service_up(&s.rec) { "up" } else { "down" },
        "updated_at": updated,
        "disabled_reason": s.rec.disabled_reason,
    });
    if ctx.at_least(11) {
        v["forced_down"] = json!(s.rec.forced_down);
    }
    v
}

async fn services_index(
    State(app): A,
    Extension(ctx): C,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-services:list")?;
    let params = query_pairs(q.as_deref());
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let (host, binary) = (
        last("host").unwrap_or_default(),
        last("binary").unwrap_or_default(),
    );
    let items: Vec<Value> = all_services(&app)
        .iter()
        .filter(|s| host.is_empty() || s.rec.host == host)
        .filter(|s| binary.is_empty() || s.rec.binary == binary)
        .map(|s| service_view(&app, &ctx, s))
        .collect();
    Ok(axum::Json(json!({"services": items})).into_response())
}

fn body_err(field: &str, v: &Value, why: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {v}. {why}"
    ))
}

fn only_keys(o: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), Fault> {
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(Fault::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    Ok(())
}

fn reason(o: &serde_json::Map<String, Value>) -> Result<Option<String>, Fault> {
    match o.get("disabled_reason") {
        None => Ok(None),
        Some(v) => {
            let s = fields::string("disabled_reason", v)?;
            if s.is_empty() || s.chars().count() > 255 {
                return Err(body_err(
                    "disabled_reason",
                    v,
                    "length must be between 1 and 255",
                ));
            }
            Ok(Some(s))
        }
    }
}

/// Writes a compute service's admin state; bringing a host back up first
/// does what its restarted nova-compute would (evacuations completed).
async fn write_service(
    app: &App,
    host: &str,
    change: impl FnOnce(&mut ServiceRecord),
) -> Result<ServiceRecord, Fault> {
    let before = app.compute.fleet.service("nova-compute", host);
    let mut next = before.clone();
    change(&mut next);
    if before.forced_down && !next.forced_down {
        crate::compute::migrate::source_restarted(app, host).await;
    }
    if next.forced_down != before.forced_down {
        next.updated_at = Some(app.clock.now());
    }
    let key = ServiceRecord::key("nova-compute", host);
    let stored = next.clone();
    app.compute
        .fleet
        .services
        .upsert(
            &key,
            || stored.clone(),
            |r| {
                *r = next;
                Ok(())
            },
        )
        .await?;
    Ok(app.compute.fleet.service("nova-compute", host))
}

async fn service_update(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let o = v
        .as_object()
        .ok_or_else(|| Fault::bad_request(format!("{v} is not of type 'object'")))?
        .clone();
    if ctx.at_least(53) {
        return service_update_v253(&app, &ctx, &id, &o).await;
    }
    ctx.require_admin("os_compute_api:os-services:update")?;
    let mut actions = vec!["enable", "disable", "disable-log-reason"];
    if ctx.at_least(11) {
        actions.push("force-down");
    }
    if !actions.contains(&id.as_str()) {
        return Err(Fault::not_found("Unknown action").into());
    }
    let mut allowed = vec!["host", "binary", "disabled_reason"];
    if ctx.at_least(11) {
        allowed.push("forced_down");
    }
    only_keys(&o, &allowed)?;
    let host = fields::fqdn(
        "host",
        o.get("host")
            .ok_or_else(|| Fault::bad_request("'host' is a required property"))?,
    )?;
    let binary = fields::string(
        "binary",
        o.get("binary")
            .ok_or_else(|| Fault::bad_request("'binary' is a required property"))?,
    )?;
    let disabled_reason = reason(&o)?;
    let forced_down = match (id.as_str(), o.get("forced_down")) {
        ("force-down", None) => return Err(Fault::bad_request("Missing forced_down field").into()),
        ("force-down", Some(f)) => Some(fields::boolean("forced_down", f)?),
        _ => None,
    };
    if id == "disable-log-reason" && disabled_reason.is_none() {
        return Err(Fault::bad_request("Missing disabled reason field").into());
    }
    if binary != "nova-compute" {
        return Err(Fault::bad_request(format!(
            "Updating a {binary} service is not supported. Only nova-compute services can be updated."
        ))
        .into());
    }
    if app.compute.fleet.host(&host).is_none() {
        return Err(Fault::not_found(format!(
            "Service {binary} on host {host} could not be found."
        ))
        .into());
    }
    let body = match id.as_str() {
        "enable" => {
            write_service(&app, &host, |r| {
                r.disabled = false;
                r.disabled_reason = None;
            })
            .await?;
            json!({"service": {"host": host, "binary": binary, "status": "enabled"}})
        }
        "disable" | "disable-log-reason" => {
            let why = if id == "disable-log-reason" {
                disabled_reason.clone()
            } else {
                None
            };
            let w2 = why.clone();
            write_service(&app, &host, move |r| {
                r.disabled = true;
                r.disabled_reason = w2;
            })
            .await?;
            let mut s = json!({"host": host, "binary": binary, "status": "disabled"});
            if let Some(w) = why {
                s["disabled_reason"] = json!(w);
            }
            json!({"service": s})
        }
        _ => {
            let down = forced_down.unwrap_or(false);
            write_service(&app, &host, |r| r.forced_down = down).await?;
            json!({"service": {"host": host, "binary": binary, "forced_down": down}})
        }
    };
    Ok(axum::Json(body).into_response())
}

async fn service_update_v253(
    app: &App,
    ctx: &Ctx,
    id: &str,
    o: &serde_json::Map<String, Value>,
) -> ApiResult<Response> {
    if !fields::is_uuid_like(id) {
        return Err(Fault::bad_request(format!("Invalid uuid {id}")).into());
    }
    ctx.require_admin("os_compute_api:os-services:update")?;
    only_keys(o, &["status", "disabled_reason", "forced_down"])?;
    let status = match o.get("status") {
        None => None,
        Some(v) => match v.as_str() {
            Some(s @ ("enabled" | "disabled")) => Some(s.to_string()),
            _ => {
                return Err(body_err(
                    "status",
                    v,
                    &format!("{v} is not one of ['enabled', 'disabled']"),
                )
                .into())
            }
        },
    };
    let disabled_reason = reason(o)?;
    let forced_down = match o.get("forced_down") {
        None => None,
        Some(v) => Some(fields::boolean("forced_down", v)?),
    };
    let svc = all_services(app)
        .into_iter()
        .find(|s| s.uuid == id)
        .ok_or_else(|| Fault::not_found(format!("Service {id} could not be found.")))?;
    if svc.rec.binary != "nova-compute" {
        return Err(Fault::bad_request(format!(
            "Updating a {} service is not supported. Only nova-compute services can be updated.",
            svc.rec.binary
        ))
        .into());
    }
    if status.as_deref() == Some("enabled") && disabled_reason.is_some() {
        return Err(Fault::bad_request(
            "Specifying 'disabled_reason' with status 'enabled' is invalid.",
        )
        .into());
    }
    if status.is_none() && forced_down.is_none() {
        return Err(Fault::bad_request(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        )
        .into());
    }
    let rec = write_service(app, &svc.rec.host, |r| {
        match status.as_deref() {
            Some("enabled") => {
                r.disabled = false;
                r.disabled_reason = None;
            }
            Some(_) => {
                r.disabled = true;
                r.disabled_reason = disabled_reason;
            }
            None => {}
        }
        if let Some(f) = forced_down {
            r.forced_down = f;
        }
    })
    .await?;
    let s = Svc { rec, ..svc };
    let mut v = service_view(app, ctx, &s);
    v["forced_down"] = json!(s.rec.forced_down);
    Ok(axum::Json(json!({"service": v})).into_response())
}

// ---- hypervisors ----

fn hypervisor_view(
    app: &App,
    ctx: &Ctx,
    h: &HostConfig,
    detail: bool,
    with_servers: bool,
) -> Value {
    let fleet = &app.compute.fleet;
    let svc = fleet.service("nova-compute", &h.name);
    let uuids = ctx.at_least(53);
    let mut v = json!({
        "id": if uuids { json!(h.node_uuid()) } else { json!(h.index) },
        "hypervisor_hostname": h.name,
        "state": if fleet.service_up(&svc) { "up" } else { "down" },
        "status": if svc.disabled { "disabled" } else { "enabled" },
    });
    if detail {
        let state = fleet.host_states().into_iter().find(|s| s.host == h.name);
        v["hypervisor_type"] = json!("fake");
        v["hypervisor_version"] = json!(1000);
        v["host_ip"] = json!(h.host_ip);
        v["service"] = json!({
            "host": h.name,
            "id": if uuids { json!(h.service_uuid()) } else { json!(h.index) },
            "disabled_reason": svc.disabled_reason,
        });
        if ctx.at_least(88) {
            v["uptime"] = Value::Null;
        } else if let Some(s) = state {
            let cpu = json!({"arch": "x86_64", "model": "Nehalem", "vendor": "Intel", "features": ["pge", "clflush"],
                "topology": {"cores": 1, "threads": 1, "sockets": h.vcpus}});
            v["cpu_info"] = if ctx.at_least(28) {
                cpu
            } else {
                json!(cpu.to_string())
            };
            v["current_workload"] = json!(0);
            v["disk_available_least"] = json!(s.local_gb as i64 - s.local_gb_used as i64);
            v["free_disk_gb"] = json!(s.local_gb as i64 - s.local_gb_used as i64);
            v["free_ram_mb"] = json!(s.free_ram_mb());
            v["local_gb"] = json!(s.local_gb);
            v["local_gb_used"] = json!(s.local_gb_used);
            v["memory_mb"] = json!(s.memory_mb);
            v["memory_mb_used"] = json!(s.memory_mb_used());
            v["running_vms"] = json!(s.instances.len());
            v["vcpus"] = json!(s.vcpus);
            v["vcpus_used"] = json!(s.vcpus_used);
        }
    }
    if with_servers {
        let servers: Vec<Value> = fleet
            .instances_on(&h.name)
            .into_iter()
            .filter_map(|u| app.compute.instances.get(&u))
            .filter(|i| !i.deleted && i.host.as_deref() == Some(h.name.as_str()))
            .map(|i| json!({"name": i.instance_name(), "uuid": i.uuid}))
            .collect();
        if !servers.is_empty() || ctx.at_least(75) {
            v["servers"] = json!(servers);
        }
    }
    v
}

fn hypervisor_list(
    app: &App,
    ctx: &Ctx,
    links: &Links,
    q: Option<String>,
    detail: bool,
) -> ApiResult<Response> {
    ctx.require_admin(if detail {
        "os_compute_api:os-hypervisors:detail"
    } else {
        "os_compute_api:os-hypervisors:list"
    })?;
    let params = query_pairs(q.as_deref());
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let with_servers = ctx.at_least(53)
        && last("with_servers")
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "yes" | "on"));
    let pattern = if ctx.at_least(53) {
        last("hypervisor_hostname_pattern")
    } else {
        None
    };
    let registered = app.compute.fleet.hosts();
    let mut hosts: Vec<&HostConfig> = registered
        .iter()
        .filter(|h| pattern.as_deref().is_none_or(|p| h.name.contains(p)))
        .collect();
    if pattern.is_some() && hosts.is_empty() {
        return Err(Fault::not_found(format!(
            "No hypervisor matching '{}' could be found.",
            pattern.unwrap_or_default()
        ))
        .into());
    }
    let mut more = false;
    if ctx.at_least(33) {
        let id_of = |h: &HostConfig| {
            if ctx.at_least(53) {
                h.node_uuid()
            } else {
                h.index.to_string()
            }
        };
        if let Some(m) = last("marker") {
            let pos = hosts
                .iter()
                .position(|h| id_of(h) == m)
                .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?;
            hosts = hosts.split_off(pos + 1);
        }
        if let Some(l) = last("limit") {
            let n: usize = l.parse().map_err(|_| {
                Fault::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}."
                ))
            })?;
            more = hosts.len() >= n && n > 0;
            hosts.truncate(n);
        }
    }
    let items: Vec<Value> = hosts
        .iter()
        .map(|h| hypervisor_view(app, ctx, h, detail, with_servers))
        .collect();
    let mut body = json!({"hypervisors": items});
    if more {
        if let Some(lastid) = items
            .last()
            .map(|i| i["id"].to_string().trim_matches('"').to_string())
        {
            let path = if detail {
                "os-hypervisors/detail"
            } else {
                "os-hypervisors"
            };
            let mut pairs: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "marker")
                .cloned()
                .collect();
            pairs.push(("marker".into(), lastid));
            pairs.sort();
            let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            body["hypervisors_links"] = json!([{"href": format!("{}/{path}?{}", links.versioned, qs.join("&")), "rel": "next"}]);
        }
    }
    Ok(axum::Json(body).into_response())
}

async fn hypervisors_index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    hypervisor_list(&app, &ctx, &links, q, false)
}

async fn hypervisors_detail(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    hypervisor_list(&app, &ctx, &links, q, true)
}

async fn hypervisor_show(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-hypervisors:show")?;
    let params = query_pairs(q.as_deref());
    let with_servers = ctx.at_least(53)
        && params
            .iter()
            .rev()
            .find(|(k, _)| k == "with_servers")
            .is_some_and(|(_, v)| matches!(v.as_str(), "1" | "true" | "True" | "yes" | "on"));
    let h = find_hypervisor(&app, &ctx, &id)?;
    Ok(
        axum::Json(json!({"hypervisor": hypervisor_view(&app, &ctx, &h, true, with_servers)}))
            .into_response(),
    )
}

/// The hypervisor `id` names: its uuid from 2.53, its integer id below.
fn find_hypervisor(app: &App, ctx: &Ctx, id: &str) -> Result<HostConfig, Fault> {
    if ctx.at_least(53) && !fields::is_uuid_like(id) {
        return Err(Fault::bad_request(format!("Invalid uuid {id}")));
    }
    app.compute
        .fleet
        .hosts()
        .into_iter()
        .find(|h| {
            if ctx.at_least(53) {
                h.node_uuid() == id
            } else {
                h.index.to_string() == id
            }
        })
        .ok_or_else(|| Fault::not_found(format!("Hypervisor with ID {id} could not be found.")))
}

/// `GET /os-hypervisors/{id}/uptime` (gone from 2.88, where `show` has
/// it): the host's `uptime` line, its time up counted from the heartbeats
/// its compute service has sent.
async fn hypervisor_uptime(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-hypervisors:uptime")?;
    if ctx.at_least(88) {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let h = find_hypervisor(&app, &ctx, &id)?;
    let mut v = hypervisor_view(&app, &ctx, &h, false, false);
    let fleet = &app.compute.fleet;
    let up_secs =
        fleet.liveness.report_count("nova-compute", &h.name) * fleet.liveness.report_interval;
    v["uptime"] = json!(uptime_line(app.clock.now(), up_secs));
    Ok(axum::Json(json!({"hypervisor": v})).into_response())
}

/// `GET /os-hypervisors/statistics` (gone from 2.88): the sums of every
/// hypervisor's inventory and usage.
async fn hypervisor_statistics(State(app): A, Extension(ctx): C) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-hypervisors:statistics")?;
    if ctx.at_least(88) {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let states = app.compute.fleet.host_states();
    let (mut vcpus, mut vcpus_used, mut mem, mut mem_used) = (0u64, 0u64, 0u64, 0u64);
    let (mut disk, mut disk_used, mut vms) = (0i64, 0i64, 0usize);
    for s in &states {
        vcpus += u64::from(s.vcpus);
        vcpus_used += s.vcpus_used;
        mem += s.memory_mb;
        mem_used += s.memory_mb_used();
        disk += s.local_gb as i64;
        disk_used += s.local_gb_used as i64;
        vms += s.instances.len();
    }
    Ok(axum::Json(json!({"hypervisor_statistics": {
        "count": states.len(),
        "current_workload": 0,
        "disk_available_least": disk - disk_used,
        "free_disk_gb": disk - disk_used,
        "free_ram_mb": mem as i64 - mem_used as i64,
        "local_gb": disk,
        "local_gb_used": disk_used,
        "memory_mb": mem,
        "memory_mb_used": mem_used,
        "running_vms": vms,
        "vcpus": vcpus,
        "vcpus_used": vcpus_used,
    }}))
    .into_response())
}

/// The hypervisors whose host name contains `pattern`, as the lookups
/// below 2.53 list them (from 2.53 `hypervisor_hostname_pattern` does
/// it): with the servers on each when `with_servers`; none is 404.
fn hypervisors_matching(
    app: &App,
    ctx: &Ctx,
    pattern: &str,
    with_servers: bool,
) -> ApiResult<Response> {
    if ctx.at_least(53) {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let list: Vec<Value> = app
        .compute
        .fleet
        .hosts()
        .iter()
        .filter(|h| h.name.contains(pattern))
        .map(|h| hypervisor_view(app, ctx, h, false, with_servers))
        .collect();
    if list.is_empty() {
        return Err(Fault::not_found(format!(
            "No hypervisor matching '{pattern}' could be found."
        ))
        .into());
    }
    Ok(axum::Json(json!({ "hypervisors": list })).into_response())
}

/// `GET /os-hypervisors/{pattern}/search` (below 2.53).
async fn hypervisor_search(
    State(app): A,
    Extension(ctx): C,
    Path(pattern): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-hypervisors:search")?;
    hypervisors_matching(&app, &ctx, &pattern, false)
}

/// `GET /os-hypervisors/{pattern}/servers` (below 2.53).
async fn hypervisor_servers(
    State(app): A,
    Extension(ctx): C,
    Path(pattern): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-hypervisors:servers")?;
    hypervisors_matching(&app, &ctx, &pattern, true)
}

/// An `uptime`(1) line: the time of day, the time up, no users, no load.
fn uptime_line(now: chrono::DateTime<chrono::Utc>, up_secs: u64) -> String {
    let (days, rest) = (up_secs / 86_400, up_secs % 86_400);
    format!(
        " {} up {days} days, {:02}:{:02},  0 users,  load average: 0.00, 0.00, 0.00",
        now.format("%H:%M:%S"),
        rest / 3600,
        rest % 3600 / 60
    )
}

// ---- migrations ----

async fn migrations_index(
    State(app): A,
    Extension(ctx): C,
    Extension(links): L,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    require_manager(&ctx, "os_compute_api:os-migrations:index")?;
    let params = query_pairs(q.as_deref());
    let last = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let project = last("project_id");
    if project.as_deref() != Some(ctx.project_id.as_str()) {
        ctx.require_admin("os_compute_api:os-migrations:index:all_projects")?;
    }
    let parse_time = |k: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Fault> {
        match last(k) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M:%S%.f").map(|t| Some(t.and_utc()))
                })
                .map_err(|_| {
                    Fault::bad_request(format!(
                        "Invalid input for query parameters {k}. Value: {v}. '{v}' is not a 'date-time'"
                    ))
                }),
        }
    };
    let since = if ctx.at_least(59) {
        parse_time("changes-since")?
    } else {
        None
    };
    let before = if ctx.at_least(66) {
        parse_time("changes-before")?
    } else {
        None
    };
    if let (Some(s), Some(b)) = (since, before) {
        if b < s {
            return Err(Fault::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            )
            .into());
        }
    }
    let eq = |k: &str, v: Option<&str>| last(k).is_none_or(|want| v == Some(want.as_str()));
    let user_filter = if ctx.at_least(80) {
        last("user_id")
    } else {
        None
    };
    let mut rows: Vec<Arc<Migration>> = app.compute.migrations.filter(|m| {
        eq("status", Some(&m.status))
            && eq("instance_uuid", Some(&m.instance_uuid))
            && eq("migration_type", Some(&m.migration_type))
            && eq("source_compute", m.source_compute.as_deref())
            && last("host").is_none_or(|h| {
                m.source_compute.as_deref() == Some(h.as_str())
                    || m.dest_compute.as_deref() == Some(h.as_str())
            })
            && project.as_deref().is_none_or(|p| m.project_id == p)
            && user_filter.as_deref().is_none_or(|u| m.user_id == u)
            && since.is_none_or(|s| m.updated_at >= s)
            && before.is_none_or(|b| m.updated_at <= b)
    });
    let paged = ctx.at_least(59);
    if paged {
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    } else {
        rows.sort_by_key(|m| m.id);
    }
    let mut more = false;
    if paged {
        if let Some(m) = last("marker") {
            let pos = rows
                .iter()
                .position(|r| r.uuid == m)
                .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
            rows = rows.split_off(pos + 1);
        }
        let max = app.cfg.max_limit;
        let limit = match last("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| {
                    Fault::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {l}."
                    ))
                })?
                .min(max),
            None => max,
        };
        more = rows.len() >= limit && limit > 0;
        rows.truncate(limit);
    }
    let items: Vec<Value> = rows.iter().map(|m| m.view(&ctx, &links)).collect();
    let mut body = json!({"migrations": items});
    if more {
        if let Some(m) = rows.last() {
            body["migrations_links"] = json!([{
                "href": format!("{}/os-migrations?limit={}&marker={}", links.versioned, rows.len(), m.uuid),
                "rel": "next"}]);
        }
    }
    Ok(axum::Json(body).into_response())
}

async fn server_migrations(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !ctx.at_least(23) {
        return Err(not_found().into());
    }
    let rows = live_migration::list_in_progress(&app, &ctx, &id)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|m| m.server_view(&ctx, ctx.is_admin()))
        .collect();
    Ok(axum::Json(json!({"migrations": items})).into_response())
}

async fn server_migration(
    State(app): A,
    Extension(ctx): C,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<Response> {
    if !ctx.at_least(23) {
        return Err(not_found().into());
    }
    let m = live_migration::show_in_progress(&app, &ctx, &id, &mid)?;
    Ok(axum::Json(json!({"migration": m.server_view(&ctx, true)})).into_response())
}

async fn server_migration_abort(
    State(app): A,
    Extension(ctx): C,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<Response> {
    if !ctx.at_least(24) {
        return Err(not_found().into());
    }
    live_migration::abort(&app, &ctx, &id, &mid).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

async fn server_migration_action(
    State(app): A,
    Extension(ctx): C,
    Path((id, mid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if !ctx.at_least(22) {
        return Err(not_found().into());
    }
    let v = parse_json(&headers, &body)?;
    let o = v
        .as_object()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    match o.get("force_complete") {
        Some(Value::Null) if o.len() == 1 => {}
        Some(other) if o.len() == 1 => {
            return Err(body_err(
                "force_complete",
                other,
                &format!("{other} is not of type 'null'"),
            )
            .into())
        }
        _ => {
            return Err(
                Fault::bad_request(match o.keys().find(|k| *k != "force_complete") {
                    Some(k) => {
                        format!("Additional properties are not allowed ('{k}' was unexpected)")
                    }
                    None => "'force_complete' is a required property".to_string(),
                })
                .into(),
            )
        }
    }
    live_migration::force_complete(&app, &ctx, &id, &mid).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
