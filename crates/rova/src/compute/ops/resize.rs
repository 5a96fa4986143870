//! Resize and its end: the resize itself (a cold move with a new flavor),
//! confirm (also the auto-confirm task) and revert to the old flavor.

use crate::app::App;
use crate::compute::actions::{self, Logged};
use crate::compute::actions_run::{begin_guarded, begin_with, subject, StepError};
use crate::compute::driver::{DriverFault, DriverOp};
use crate::compute::move_steps::{self, move_op};
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
    if !cur.is_volume_backed() && flavor.disk > 0 && flavor.disk < cur.flavor.disk {
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
    if old_flavor(&cur).is_none() {
        return Err(Fault::bad_request("Instance has not been resized."));
    }
    let mig = crate::compute::migrate::latest_for(app, id, &["finished"]);
    if let Some(m) = &mig {
        // The clean-up on the source can fail (driver::STEPS confirm_resize).
        let ops = [move_op(&m.migration_type), "confirmResize"];
        let source = m.source_compute.as_deref();
        let step = app
            .compute
            .driver
            .fail_point(&ops, "confirm_resize", source);
        if let Err(f) = step.await {
            return confirm_failed(app, ctx, &cur, m, f).await;
        }
    }
    begin_with(
        app,
        ctx,
        id,
        Action::ConfirmResize,
        None,
        Some(Logged::with("confirmResize", "compute_confirm_resize")),
        |i, _| {
            let (vm, _) = restored_vm(i);
            i.vm_state = vm;
            i.system_metadata.remove("old_flavor");
            i.system_metadata.remove("old_vm_state");
            i.system_metadata.remove("resize_finished_at");
            Ok(())
        },
    )
    .await?;
    crate::compute::migrate::confirmed(app, id).await;
    actions::event_finish(app, id, &ctx.request_id, "compute_confirm_resize", None).await;
    // The source lets go of the disks the move left there (Nova's
    // confirm_resize on the source: a cast nobody waits for).
    if let (Some(m), Ok(now)) = (mig, servers::visible(app, ctx, id)) {
        let driver = app.compute.driver_for(m.source_compute.as_deref());
        tokio::spawn(async move { driver.drop_moved(&now).await });
    }
    Ok(())
}

/// The source's clean-up failed: nova/compute/manager.py confirm_resize
/// wraps _confirm_resize in _error_out_instance_on_exception (ERROR, on
/// the destination at the new flavor) and, whatever happens, deletes the
/// source allocation the migration held and the stashed old flavor;
/// errors_out_migration: `error`. The API had answered 204 (a cast).
async fn confirm_failed(
    app: &Arc<App>,
    ctx: &Ctx,
    cur: &Instance,
    m: &crate::compute::migrate::Migration,
    f: DriverFault,
) -> Result<(), Fault> {
    let id = cur.uuid.as_str();
    admit(Action::ConfirmResize, &subject(cur), ctx.is_admin())?;
    actions::record(
        app,
        ctx,
        id,
        "confirmResize",
        Some(("compute_confirm_resize", m.source_compute.as_deref())),
    )
    .await?;
    app.compute.fleet.release(&m.uuid);
    move_steps::error_out(app, id, &f, move_steps::drop_stash).await;
    crate::compute::migrate::update_migration(app, m.id, |m| m.status = "error".into()).await;
    let pair = Some((f.message.as_str(), f.details.as_str()));
    actions::event_finish(app, id, &ctx.request_id, "compute_confirm_resize", pair).await;
    Ok(())
}

pub(super) async fn revert_resize(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:servers:revert_resize")?;
    let cur = servers::visible(app, ctx, id)?;
    admit(Action::RevertResize, &subject(&cur), ctx.is_admin())?;
    let old =
        old_flavor(&cur).ok_or_else(|| Fault::bad_request("Instance has not been resized."))?;
    // Reverting a resize that shrank the server grows it back: Nova's
    // revert_resize checks that growth against the quota ("a revert might
    // go over quota"), and the server holds its old flavor from here.
    let (hold, guard) = app
        .compute
        .hold_growth(&cur.project_id, &cur.flavor, &old)?;
    begin_guarded(
        app,
        ctx,
        id,
        (Action::RevertResize, Some(T::ResizeReverting)),
        (Logged::with("revertResize", "compute_revert_resize"), guard),
        move |i, _| {
            if hold.is_some() {
                i.resize_hold = hold;
            }
            Ok(())
        },
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    let back = crate::compute::migrate::begin_revert(app, id).await;
    tokio::spawn(async move {
        let res = run_revert(&app2, &id2, back.clone(), old.clone()).await;
        let ok = res.is_ok();
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_revert_resize", e).await;
        // The migration ends last (`reverted`, or `error`).
        crate::compute::migrate::end_revert(&app2, &id2, back, ok).await;
    });
    Ok(())
}

/// The revert's two compute steps: revert_resize destroys the guest on the
/// destination, finish_revert_resize brings it back on the source (each a
/// fault point, driver::STEPS); a failure ends as Nova leaves it
/// ([`move_steps::revert_failed`]).
async fn run_revert(
    app: &Arc<App>,
    id: &str,
    back: Option<crate::compute::migrate::RevertPlan>,
    old: FlavorSnapshot,
) -> Result<(), StepError> {
    let driver = &app.compute.driver;
    let kind = crate::compute::migrate::latest_for(app, id, &["reverting"])
        .map(|m| move_op(&m.migration_type))
        .unwrap_or("resize");
    let dest = app.compute.instances.get(id).and_then(|i| i.host.clone());
    let source = back.as_ref().map(|b| b.source.clone());
    let failed = |f: DriverFault, on_source: bool| {
        let old = old.clone();
        let back = back.clone();
        async move {
            if let Some(b) = &back {
                move_steps::revert_failed(app, id, b, old, on_source, &f).await;
            } else {
                move_steps::error_out(app, id, &f, move_steps::drop_stash).await;
            }
            Err(StepError {
                message: f.message,
                details: f.details,
            })
        }
    };
    let superseded = || async { Err(StepError::superseded()) };
    tokio::time::sleep(driver.step_delay()).await;
    // revert_resize (destination): the `resize`/`migrate` fault named at
    // this step; `revertResize`'s own (step-less) fault fires in the
    // driver's revert itself.
    let own = [kind];
    let step = driver.fail_point(&own, "revert_resize", dest.as_deref());
    if let Err(f) = step.await {
        return failed(f, false).await;
    }
    let Some(inst) = app
        .compute
        .instances
        .get(id)
        .filter(|i| !i.deleted && i.task_state == Some(T::ResizeReverting))
    else {
        return superseded().await;
    };
    let op = DriverOp::RevertResize {
        dest: source.clone(),
    };
    if let Err(f) = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&op, &inst)
        .await
    {
        return failed(f, false).await;
    }
    // finish_revert_resize (source).
    tokio::time::sleep(driver.step_delay()).await;
    let ops = [kind, "revertResize"];
    let step = driver.fail_point(&ops, "finish_revert_resize", source.as_deref());
    if let Err(f) = step.await {
        return failed(f, true).await;
    }
    let back2 = back.clone();
    let now = app.clock.now();
    let done = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted || i.task_state != Some(T::ResizeReverting) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = None;
            if let Some(b) = &back2 {
                b.apply(i);
            }
            let (vm, power) = restored_vm(i);
            i.vm_state = vm;
            i.power_state = power;
            i.flavor = old;
            move_steps::drop_stash(i);
            Ok(())
        })
        .await;
    match done {
        Ok(_) => Ok(()),
        Err(_) => superseded().await,
    }
}
