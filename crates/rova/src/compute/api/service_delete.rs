//! `DELETE /os-services/{id}`: a compute service deleted takes its host
//! out of the fleet — its `resource_providers` row and its admin state
//! go, so no process schedules onto it — refused while servers or
//! unfinished migrations are on it (Nova's two 409s). The process serving
//! the host registers it again when it next starts, as a restarted
//! nova-compute recreates its service. A control service (scheduler,
//! conductor) is hidden until a process starts again.

use super::fleet::all_services;
use crate::app::App;
use crate::compute::fleet::ServiceRecord;
use crate::http::{empty, ApiResult, Ctx};
use crate::store::schema::Cell;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use rova_core::validate::fields;
use rova_core::Fault;
use std::sync::Arc;

/// Migration statuses Nova counts as finished when deleting a service.
const FINISHED: &[&str] = &[
    "confirmed",
    "reverted",
    "error",
    "failed",
    "completed",
    "cancelled",
    "done",
];

const HOSTING: &str = "Unable to delete compute service that is hosting instances. \
                       Migrate or delete the instances first.";

pub(super) async fn service_delete(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-services:delete")?;
    let new_ids = ctx.at_least(53);
    if new_ids {
        if !fields::is_uuid_like(&id) {
            return Err(Fault::bad_request(format!("Invalid uuid {id}")).into());
        }
    } else if id.trim().parse::<i64>().is_err() {
        return Err(Fault::bad_request("Invalid input received: id must be an integer").into());
    }
    let svc = all_services(&app)
        .into_iter()
        .find(|s| {
            if new_ids {
                s.uuid == id
            } else {
                id.trim().parse::<usize>().ok() == Some(s.int_id)
            }
        })
        .ok_or_else(|| Fault::not_found(format!("Service {id} not found.")))?;
    let key = ServiceRecord::key(&svc.rec.binary, &svc.rec.host);
    if svc.rec.binary != "nova-compute" {
        let gone = ServiceRecord {
            deleted: true,
            ..svc.rec.clone()
        };
        app.compute
            .fleet
            .services
            .upsert(
                &key,
                || gone.clone(),
                |r| {
                    r.deleted = true;
                    Ok(())
                },
            )
            .await?;
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    let host = svc.rec.host.clone();
    let on_host = |h: &Option<String>| h.as_deref() == Some(host.as_str());
    // Asked of the database when the copy holds only some rows.
    let hosting = app.compute.instances_where(
        "host = ?1 AND deleted = ?2",
        vec![Cell::Text(host.clone()), Cell::Bool(false)],
        |i| !i.deleted && on_host(&i.host),
    )?;
    if !hosting.is_empty() {
        return Err(Fault::conflict(HOSTING).into());
    }
    let moving = app.compute.migrations.filter(|m| {
        (on_host(&m.source_compute) || on_host(&m.dest_compute))
            && !FINISHED.contains(&m.status.as_str())
    });
    if !moving.is_empty() {
        return Err(Fault::conflict(
            "Unable to delete compute service that has in-progress migrations. \
             Complete the migrations or delete the instances first.",
        )
        .into());
    }
    app.compute
        .fleet
        .retire(&host, || Fault::conflict(HOSTING))
        .await?;
    app.compute.fleet.services.remove(&key).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
