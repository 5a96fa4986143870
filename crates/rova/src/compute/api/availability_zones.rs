//! Availability zones (`/os-availability-zone[/detail]`): the zones of the
//! compute hosts, and for admins the hosts and services in each.

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

/// One service in the detail: up (heartbeat), enabled, last updated.
fn service_state(app: &App, svc: &crate::compute::fleet::ServiceRecord) -> Value {
    let fleet = &app.compute.fleet;
    let updated = fleet
        .heartbeat(svc)
        .map(|t| rova_core::model::iso_micro(&t));
    json!({"available": fleet.service_up(svc), "active": !svc.disabled, "updated_at": updated})
}
