//! Availability zones (`/os-availability-zone[/detail]`): the zones of the
//! compute hosts, and for admins the hosts and services in each; and the
//! host aggregates those zones are (`GET /os-aggregates`): in Nova a zone
//! other than the default one is an aggregate whose `availability_zone`
//! metadata names it. Rova's zones come from the hosts' configuration and
//! registration, so its aggregates are exactly those, read-only.

use crate::app::App;
use crate::http::{ApiResult, Ctx};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/os-availability-zone", get(az_index))
        .route("/os-availability-zone/detail", get(az_detail))
        .route("/os-aggregates", get(aggregates))
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// The zones of the compute hosts: available when one of their services
/// is enabled (Nova lists the available zones first).
fn zones(app: &App) -> Vec<(String, bool)> {
    let fleet = &app.compute.fleet;
    let mut z: Vec<(String, bool)> = fleet
        .zones()
        .into_iter()
        .map(|zone| {
            let enabled = fleet.hosts().iter().any(|h| {
                h.availability_zone == zone && !fleet.service("nova-compute", &h.name).disabled
            });
            (zone, enabled)
        })
        .collect();
    z.sort_by_key(|(_, enabled)| !*enabled);
    z
}

async fn az_index(State(app): A) -> ApiResult<Response> {
    let info: Vec<Value> = zones(&app)
        .into_iter()
        .map(|(zone, ok)| json!({"zoneName": zone, "zoneState": {"available": ok}, "hosts": null}))
        .collect();
    Ok(axum::Json(json!({"availabilityZoneInfo": info})).into_response())
}

async fn az_detail(State(app): A, Extension(ctx): C) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-availability-zone:detail")?;
    let fleet = &app.compute.fleet;
    let mut info: Vec<Value> = zones(&app)
        .into_iter()
        .map(|(zone, ok)| {
            let mut hosts = serde_json::Map::new();
            for h in fleet.hosts().iter().filter(|h| h.availability_zone == zone) {
                let svc = fleet.service("nova-compute", &h.name);
                hosts.insert(
                    h.name.clone(),
                    json!({"nova-compute": service_state(&app, &svc)}),
                );
            }
            json!({"zoneName": zone, "zoneState": {"available": ok}, "hosts": hosts})
        })
        .collect();
    let control = crate::compute::fleet::CONTROL_HOST;
    let state = |binary: &str| service_state(&app, &fleet.service(binary, control));
    info.push(
        json!({"zoneName": "internal", "zoneState": {"available": true},
         "hosts": {control: {"nova-conductor": state("nova-conductor"),
                             "nova-scheduler": state("nova-scheduler")}}}),
    );
    Ok(axum::Json(json!({"availabilityZoneInfo": info})).into_response())
}

/// The aggregates of the zones other than the default one (Nova's default
/// zone is no aggregate), by zone name, ids from 1.
async fn aggregates(State(app): A, Extension(ctx): C) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-aggregates:index")?;
    let fleet = &app.compute.fleet;
    let default = app.cfg.sim_host.availability_zone.clone();
    let mut zones: Vec<String> = fleet
        .zones()
        .into_iter()
        .filter(|z| *z != default)
        .collect();
    zones.sort();
    let list: Vec<Value> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let hosts: Vec<String> = fleet
                .hosts()
                .iter()
                .filter(|h| h.availability_zone == *zone)
                .map(|h| h.name.clone())
                .collect();
            let mut a = json!({
                "id": i + 1,
                "name": zone,
                "availability_zone": zone,
                "hosts": hosts,
                "metadata": {"availability_zone": zone},
                "created_at": null,
                "updated_at": null,
                "deleted_at": null,
                "deleted": false,
            });
            if ctx.at_least(41) {
                a["uuid"] = json!(crate::compute::fleet::stable_uuid(&format!(
                    "aggregate:{zone}"
                )));
            }
            a
        })
        .collect();
    Ok(axum::Json(json!({"aggregates": list})).into_response())
}

/// One service in the detail: up (heartbeat), enabled, last updated.
fn service_state(app: &App, svc: &crate::compute::fleet::ServiceRecord) -> Value {
    let fleet = &app.compute.fleet;
    let updated = fleet
        .heartbeat(svc)
        .map(|t| rova_core::model::iso_micro(&t));
    json!({"available": fleet.service_up(svc), "active": !svc.disabled, "updated_at": updated})
}
