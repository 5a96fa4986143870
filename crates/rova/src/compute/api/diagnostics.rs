//! `GET /servers/{id}/diagnostics` (admin): what the simulated hypervisor
//! reports about a running server. Below 2.48 it is the free-form
//! per-device dict of Nova's fake driver (`cpu0_time`, `vda_read`,
//! `vnet0_rx`, ...); from 2.48 it is the standardized document. Devices
//! follow the server (one CPU per flavor vCPU, one NIC per port, one disk
//! per local disk, config drive and attached volume) and the counters grow
//! with the uptime. Like Nova, the server must be on a host (409 "not
//! ready") and running (409 otherwise).

use super::query_pairs;
use crate::app::App;
use crate::compute::servers as svc;
use crate::http::{ApiResult, Ctx};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::model::Instance;
use rova_core::states::PowerState;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/servers/{id}/diagnostics", get(show))
}

/// Nova's `power_state.STATE_MAP` names.
fn state_name(p: PowerState) -> &'static str {
    match p {
        PowerState::NoState => "pending",
        PowerState::Running => "running",
        PowerState::Paused => "paused",
        PowerState::Shutdown => "shutdown",
        PowerState::Crashed => "crashed",
        PowerState::Suspended => "suspended",
    }
}

/// Simulated CPU load of each vCPU, in percent.
const CPU_UTILISATION: u64 = 15;

/// Per-disk counters: (read bytes, read requests, write bytes, write
/// requests, errors).
fn disk_stats(index: u64, uptime: u64) -> [u64; 5] {
    // The root disk (index 0) sees most of the traffic.
    let weight = if index == 0 { 8 } else { 1 };
    let read_requests = 112 + uptime * weight;
    let write_requests = 488 + uptime * weight / 2;
    [
        read_requests * 2048,
        read_requests,
        write_requests * 11_840,
        write_requests,
        0,
    ]
}

/// Per-NIC counters: (rx octets, rx packets, tx octets, tx packets).
fn nic_stats(uptime: u64) -> [u64; 4] {
    let rx_packets = 26_701 + uptime * 3;
    let tx_packets = 662 + uptime;
    [rx_packets * 78, rx_packets, tx_packets * 212, tx_packets]
}

/// The guest's disks in device order: local root (image-backed only),
/// ephemeral, swap, config drive, then every attached volume.
fn disk_count(inst: &Instance) -> u64 {
    let local = [
        !inst.is_volume_backed(),
        inst.flavor.ephemeral > 0,
        inst.flavor.swap > 0,
        inst.config_drive,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let volumes = inst
        .block_device_mapping
        .iter()
        .filter(|b| b.destination_type.as_deref() == Some("volume"))
        .count();
    (local + volumes) as u64
}

/// `vda`, `vdb`, ..., `vdz`, `vdaa`, ...
fn disk_name(index: u64) -> String {
    let mut n = index;
    let mut suffix = Vec::new();
    loop {
        suffix.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    suffix.reverse();
    format!("vd{}", String::from_utf8_lossy(&suffix))
}

fn uptime(app: &App, inst: &Instance) -> u64 {
    inst.launched_at
        .map(|t| (app.clock.now() - t).num_seconds().max(0) as u64)
        .unwrap_or(0)
}

/// The pre-2.48 free-form dict.
fn legacy(inst: &Instance, up: u64) -> Value {
    let mut out = Map::new();
    for cpu in 0..u64::from(inst.flavor.vcpus) {
        out.insert(
            format!("cpu{cpu}_time"),
            json!((up + 1) * 10_000_000 * CPU_UTILISATION),
        );
    }
    out.insert("memory".into(), json!(inst.flavor.ram * 1024));
    for d in 0..disk_count(inst) {
        let [rb, rr, wb, wr, err] = disk_stats(d, up);
        let name = disk_name(d);
        out.insert(format!("{name}_read"), json!(rb));
        out.insert(format!("{name}_read_req"), json!(rr));
        out.insert(format!("{name}_write"), json!(wb));
        out.insert(format!("{name}_write_req"), json!(wr));
        out.insert(format!("{name}_errors"), json!(err));
    }
    for (i, _) in inst.vifs.iter().enumerate() {
        let [rx, rxp, tx, txp] = nic_stats(up);
        let name = format!("vnet{i}");
        out.insert(format!("{name}_rx"), json!(rx));
        out.insert(format!("{name}_rx_drop"), json!(0));
        out.insert(format!("{name}_rx_errors"), json!(0));
        out.insert(format!("{name}_rx_packets"), json!(rxp));
        out.insert(format!("{name}_tx"), json!(tx));
        out.insert(format!("{name}_tx_drop"), json!(0));
        out.insert(format!("{name}_tx_errors"), json!(0));
        out.insert(format!("{name}_tx_packets"), json!(txp));
    }
    Value::Object(out)
}

/// The standardized (2.48+) document.
fn standard(inst: &Instance, up: u64) -> Value {
    let cpus: Vec<Value> = (0..u64::from(inst.flavor.vcpus))
        .map(|id| {
            json!({"id": id, "time": (up + 1) * 10_000_000 * CPU_UTILISATION,
                   "utilisation": CPU_UTILISATION})
        })
        .collect();
    let nics: Vec<Value> = inst
        .vifs
        .iter()
        .map(|vif| {
            let [rx, rxp, tx, txp] = nic_stats(up);
            json!({"mac_address": vif.mac, "rx_octets": rx, "rx_errors": 0, "rx_drop": 0,
                   "rx_packets": rxp, "rx_rate": rx / (up + 1), "tx_octets": tx,
                   "tx_errors": 0, "tx_drop": 0, "tx_packets": txp,
                   "tx_rate": tx / (up + 1)})
        })
        .collect();
    let disks: Vec<Value> = (0..disk_count(inst))
        .map(|d| {
            let [rb, rr, wb, wr, err] = disk_stats(d, up);
            json!({"read_bytes": rb, "read_requests": rr, "write_bytes": wb,
                   "write_requests": wr, "errors_count": err})
        })
        .collect();
    let max_kib = inst.flavor.ram * 1024;
    json!({
        "state": state_name(inst.power_state),
        // What Nova's fake driver reports (the schema only allows real
        // drivers).
        "driver": "libvirt",
        "hypervisor": "kvm",
        "hypervisor_os": "ubuntu",
        "uptime": up,
        "config_drive": inst.config_drive,
        "num_cpus": cpus.len(),
        "num_nics": nics.len(),
        "num_disks": disks.len(),
        "cpu_details": cpus,
        "nic_details": nics,
        "disk_details": disks,
        "memory_details": {"maximum": max_kib, "used": max_kib / 4},
    })
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    if ctx.at_least(102) {
        if let Some((k, v)) = query_pairs(q.as_deref()).first() {
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters {k}. Value: {v}. Additional properties are not allowed ('{k}' was unexpected)"
            ))
            .into());
        }
    }
    let inst = svc::visible(&app, &ctx, &id)?;
    ctx.require_admin("os_compute_api:os-server-diagnostics")?;
    if inst.host.is_none() {
        return Err(Fault::conflict(format!("Instance {id} is not ready")).into());
    }
    if inst.power_state != PowerState::Running {
        return Err(Fault::invalid_state(
            "get_diagnostics",
            &id,
            "power state",
            state_name(inst.power_state),
        )
        .into());
    }
    let up = uptime(&app, &inst);
    let body = if ctx.at_least(48) {
        standard(&inst, up)
    } else {
        legacy(&inst, up)
    };
    Ok(axum::Json(body).into_response())
}
