//! Resize and its end: the resize itself (a cold move with a new flavor),
//! confirm (also the auto-confirm task) and revert to the old flavor.

use crate::app::App;
use crate::compute::actions;
use crate::compute::actions_run::{advance, begin, begin_with, subject};
use crate::compute::driver::DriverOp;
use crate::compute::servers;
use crate::http::Ctx;
use rova_core::admission::{admit, Action};
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use std::sync::Arc;

fn snapshot_of(f: &crate::compute::Flavor) -> FlavorSnapshot {
    FlavorSnapshot {
        id: f.id.clone(),
        name: f.name.clone(),
        vcpus: f.vcpus,
        ram: f.ram,
        disk: f.disk,
        ephemeral: f.ephemeral,
        swap: f.swap,
        extra_specs: f.extra_specs.clone(),
    }
}

pub(super) async fn resize(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    flavor_ref: &str,
    disk: Option<bool>,
) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:servers:resize")?;
    let cur = servers::visible(app, ctx, id)?;
    servers::check_lock(&cur, ctx)?;
    let flavor = app
        .compute
        .flavors
        .get(flavor_ref)
        .filter(|f| !f.disabled && f.visible_to(ctx))
        .ok_or_else(|| Fault::bad_request("Unable to locate requested flavor."))?;
    if flavor.id == cur.flavor.id {
        return Err(Fault::bad_request(
            "When resizing, instances must change flavor!",
        ));
    }
    if !cur.image_ref.is_empty() && flavor.disk > 0 && flavor.disk < cur.flavor.disk {
        return Err(Fault::bad_request(
            "Resize error: Unable to resize disk down.",
        ));
    }
    // Admission, quota, scheduling, claims and the migration record are
    // shared with cold migrate.
    crate::compute::migrate::cold_move(app, ctx, &cur, Some(snapshot_of(&flavor)), None, disk).await
}

fn old_flavor(i: &Instance) -> Option<FlavorSnapshot> {
    i.system_metadata
        .get("old_flavor")
        .and_then(|s| serde_json::from_str(s).ok())
}

fn restored_vm(i: &Instance) -> (VmState, PowerState) {
    if i.system_metadata.get("old_vm_state").map(String::as_str) == Some("stopped") {
        (VmState::Stopped, PowerState::Shutdown)
    } else {
        (VmState::Active, PowerState::Running)
    }
}

/// Confirms a finished resize (also used by the auto-confirm task).
pub async fn confirm_resize(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:servers:confirm_resize")?;
    let cur = servers::visible(app, ctx, id)?;
    admit(Action::ConfirmResize, &subject(&cur), ctx.is_admin())?;
    let old =
        old_flavor(&cur).ok_or_else(|| Fault::bad_request("Instance has not been resized."))?;
    let inst = begin_with(app, ctx, id, Action::ConfirmResize, None, |i, _| {
        let (vm, _) = restored_vm(i);
        i.vm_state = vm;
        i.system_metadata.remove("old_flavor");
        i.system_metadata.remove("old_vm_state");
        i.system_metadata.remove("resize_finished_at");
        Ok(())
    })
    .await?;
    // The old flavor's resources are given back (only growth was reserved).
    let dc = old.vcpus as i64 - inst.flavor.vcpus as i64;
    let dr = old.ram as i64 - inst.flavor.ram as i64;
    app.compute
        .adjust_release(&inst.project_id, dc.max(0), dr.max(0));
    crate::compute::migrate::confirmed(app, id).await;
    actions::record(
        app,
        ctx,
        id,
        "confirmResize",
        Some(("compute_confirm_resize", inst.host.as_deref())),
    )
    .await?;
    actions::event_finish(app, id, &ctx.request_id, "compute_confirm_resize", None).await;
    Ok(())
}

pub(super) async fn revert_resize(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:servers:revert_resize")?;
    let cur = servers::visible(app, ctx, id)?;
    admit(Action::RevertResize, &subject(&cur), ctx.is_admin())?;
    let old =
        old_flavor(&cur).ok_or_else(|| Fault::bad_request("Instance has not been resized."))?;
    let inst = begin(app, ctx, id, Action::RevertResize, Some(T::ResizeReverting)).await?;
    actions::record(
        app,
        ctx,
        id,
        "revertResize",
        Some(("compute_revert_resize", inst.host.as_deref())),
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    let new = inst.flavor.clone();
    let project = inst.project_id.clone();
    let back = crate::compute::migrate::begin_revert(app, id).await;
    tokio::spawn(async move {
        let old2 = old.clone();
        let back2 = back.clone();
        let op = DriverOp::RevertResize {
            dest: back.as_ref().map(|b| b.source.clone()),
        };
        let res = advance(&app2, &id2, op, T::ResizeReverting, &[], move |i, _| {
            if let Some(b) = &back2 {
                b.apply(i);
            }
            let (vm, power) = restored_vm(i);
            i.vm_state = vm;
            i.power_state = power;
            i.flavor = old2;
            i.system_metadata.remove("old_flavor");
            i.system_metadata.remove("old_vm_state");
            i.system_metadata.remove("resize_finished_at");
        })
        .await;
        if res.is_ok() {
            let dc = new.vcpus as i64 - old.vcpus as i64;
            let dr = new.ram as i64 - old.ram as i64;
            app2.compute.adjust_release(&project, dc.max(0), dr.max(0));
        }
        crate::compute::migrate::end_revert(&app2, &id2, back, res.is_ok()).await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_revert_resize", e).await;
    });
    Ok(())
}
