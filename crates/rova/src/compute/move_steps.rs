//! The compute-side steps of a cold move (resize and `migrate`) after the
//! destination is chosen — prep_resize on the destination, resize_instance
//! on the source, finish_resize on the destination — and where a failure at
//! each leaves the server, its claims, quota and migration, after Nova's
//! compute manager (nova/compute/manager.py). Also the failure ends of
//! confirm and revert, shared with `ops::resize`.
//!
//! Each step is a fault point of the driver (`driver::STEPS`), so the
//! simulator can fail any one of them.

use super::actions;
use super::driver::{DriverFault, DriverOp};
use super::fleet::{flavor_resources, Claim};
use super::migrate::{fail_move, unclaim_move, update_migration, Migration};
use crate::app::App;
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::{TaskState as T, VmState};
use rova_core::Fault;
use std::sync::Arc;

/// The fault-injection operation name of a move: `resize` or `migrate`.
pub fn move_op(migration_type: &str) -> &'static str {
    if migration_type == "resize" {
        "resize"
    } else {
        "migrate"
    }
}

/// Moves the server from task `expect` to `next` (applying `also`) unless
/// it was deleted or changed meanwhile; false when the move must stop.
async fn set_task(
    app: &App,
    id: &str,
    expect: T,
    next: Option<T>,
    also: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>),
) -> bool {
    let now = app.clock.now();
    app.compute
        .update_instance(id, now, |i| {
            if i.deleted || i.task_state != Some(expect) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = next;
            also(i, now);
            Ok(())
        })
        .await
        .is_ok()
}

/// Nova's `_error_out_instance_on_exception` with `reverts_task_state` and
/// `wrap_instance_fault`: the server goes ERROR with its task cleared and
/// the driver's fault recorded; `also` applies what the step put back.
pub(crate) async fn error_out(
    app: &App,
    id: &str,
    f: &DriverFault,
    also: impl FnOnce(&mut Instance),
) {
    let now = app.clock.now();
    let _ = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted {
                return Err(Fault::conflict("deleted"));
            }
            i.vm_state = VmState::Error;
            i.task_state = None;
            i.fault = Some(f.instance_fault(now));
            also(i);
            Ok(())
        })
        .await;
}

/// Forgets the flavor and state a move kept to go back to.
pub(crate) fn drop_stash(i: &mut Instance) {
    i.system_metadata.remove("old_flavor");
    i.system_metadata.remove("old_vm_state");
    i.system_metadata.remove("resize_finished_at");
}

/// The instance's claim on its host is re-sized to `flavor`.
fn reclaim_as(app: &App, id: &str, flavor: &FlavorSnapshot, volume_backed: bool) {
    let resources = flavor_resources(flavor, volume_backed);
    app.compute.fleet.with_claims(|_, tx| {
        if let Some(c) = tx.remove(id) {
            tx.insert(id.to_string(), Claim { resources, ..c });
        }
    });
}

/// What a cold move carries from the conductor to the compute steps.
pub(crate) struct ColdMove<'a> {
    pub id: &'a str,
    pub req: &'a str,
    pub mig: &'a Migration,
    /// The server as the conductor saw it (its old flavor, its source).
    pub inst: &'a Instance,
    pub dest: String,
    pub new: FlavorSnapshot,
}

impl ColdMove<'_> {
    async fn fail_migration(&self, app: &App) {
        update_migration(app, self.mig.id, |m| m.status = "error".into()).await;
    }

    /// The server was deleted or changed meanwhile: everything the move
    /// took is given back.
    async fn abandon(&self, app: &App, event: &str) {
        unclaim_move(app, self.id, &self.mig.uuid);
        actions::event_finish(app, self.id, self.req, event, Some(("superseded", ""))).await;
        self.fail_migration(app).await;
    }

    /// The step's event fails, then the migration: a client that sees the
    /// migration end also sees the failed event.
    async fn step_failed(&self, app: &App, event: &str, f: &DriverFault) {
        let pair = (f.message.as_str(), f.details.as_str());
        actions::event_finish(app, self.id, self.req, event, Some(pair)).await;
        self.fail_migration(app).await;
    }
}

/// Runs the compute steps of a scheduled cold move (the destination is
/// claimed, the migration records it).
pub(crate) async fn run(app: &Arc<App>, mv: ColdMove<'_>) {
    let (id, req) = (mv.id, mv.req);
    let op_name = move_op(&mv.mig.migration_type);
    let ops = [op_name];
    let driver = &app.compute.driver;
    let delay = driver.step_delay();
    let dest = mv.dest.clone();

    // prep_resize (destination): the claim is checked there.
    actions::event_start(app, id, req, "compute_prep_resize", Some(&dest)).await;
    if let Err(f) = driver.fail_point(&ops, "prep_resize", Some(&dest)).await {
        // nova/compute/manager.py _do_prep_resize: _revert_allocation (the
        // destination claim is dropped, the source given back), then
        // _reschedule_resize_or_reraise; with no other host the conductor
        // (nova/conductor/manager.py _cold_migrate, MaxRetriesExceeded is a
        // NoValidHost) restores the original vm_state, clears the task and
        // records the fault; errors_out_migration_ctxt: migration `error`.
        unclaim_move(app, id, &mv.mig.uuid);
        fail_move(app, id, T::ResizePrep, None, &f.message).await;
        return mv.step_failed(app, "compute_prep_resize", &f).await;
    }
    actions::event_finish(app, id, req, "compute_prep_resize", None).await;

    // resize_instance (source): migrate the disk and power off.
    let source = mv.inst.host.clone();
    let event = "compute_resize_instance";
    actions::event_start(app, id, req, event, source.as_deref()).await;
    tokio::time::sleep(delay).await;
    if !set_task(app, id, T::ResizePrep, Some(T::ResizeMigrating), |_, _| {}).await {
        return mv.abandon(app, event).await;
    }
    tokio::time::sleep(delay).await;
    let Some(cur) = app.compute.instances.get(id) else {
        return mv.abandon(app, event).await;
    };
    let op = if op_name == "resize" {
        DriverOp::Resize {
            flavor: mv.new.clone(),
            dest: dest.clone(),
        }
    } else {
        DriverOp::Migrate {
            flavor: mv.new.clone(),
            dest: dest.clone(),
        }
    };
    if let Err(f) = app
        .compute
        .driver_for(cur.host.as_deref())
        .perform(&op, &cur)
        .await
    {
        // nova/compute/manager.py resize_instance: _revert_allocation;
        // _resize_instance's _error_out_instance_on_exception puts the
        // server in ERROR (still on the source), errors_out_migration_ctxt
        // the migration in `error`, reverts_task_state clears the task.
        unclaim_move(app, id, &mv.mig.uuid);
        error_out(app, id, &f, drop_stash).await;
        return mv.step_failed(app, event, &f).await;
    }
    // Nova points the instance at the destination here; Rova writes the
    // host with the move's last write, so a restart in between finds the
    // server on its source at its old flavor (settle.rs).
    let moved = set_task(
        app,
        id,
        T::ResizeMigrating,
        Some(T::ResizeMigrated),
        |_, _| {},
    )
    .await;
    if !moved {
        return mv.abandon(app, event).await;
    }
    update_migration(app, mv.mig.id, |m| m.status = "post-migrating".into()).await;
    actions::event_finish(app, id, req, event, None).await;

    // finish_resize (destination): the guest starts there.
    let event = "compute_finish_resize";
    actions::event_start(app, id, req, event, Some(&dest)).await;
    tokio::time::sleep(delay).await;
    if !set_task(app, id, T::ResizeMigrated, Some(T::ResizeFinish), |_, _| {}).await {
        return mv.abandon(app, event).await;
    }
    if let Err(f) = driver.fail_point(&ops, "finish_resize", Some(&dest)).await {
        // nova/compute/manager.py finish_resize: _finish_resize puts the old
        // flavor back, _error_out_instance_on_exception puts the server in
        // ERROR on the destination, _delete_allocation_after_move drops the
        // source allocation the migration held; errors_out_migration:
        // `error`. The destination keeps the server, at its old flavor.
        app.compute.fleet.release(&mv.mig.uuid);
        reclaim_as(app, id, &mv.inst.flavor, mv.inst.is_volume_backed());
        let (az, d2) = (super::migrate::zone_of(app, &dest), dest.clone());
        error_out(app, id, &f, move |i| {
            i.host = Some(d2.clone());
            i.node = Some(d2);
            i.availability_zone = Some(az);
            drop_stash(i);
        })
        .await;
        return mv.step_failed(app, event, &f).await;
    }
    tokio::time::sleep(delay).await;
    let (new, az, d2) = (
        mv.new.clone(),
        super::migrate::zone_of(app, &dest),
        dest.clone(),
    );
    // nova/compute/manager.py _finish_resize: the migration is `finished`
    // before the instance is saved RESIZED, so a client that sees
    // VERIFY_RESIZE finds the migration to confirm or revert (a restart in
    // between ends the migration in `error`: rova_core::restart).
    update_migration(app, mv.mig.id, |m| m.status = "finished".into()).await;
    let done = set_task(app, id, T::ResizeFinish, None, |i, now| {
        i.flavor = new;
        i.host = Some(d2.clone());
        i.node = Some(d2);
        i.availability_zone = Some(az);
        i.vm_state = VmState::Resized;
        i.progress = 100;
        i.system_metadata
            .insert("resize_finished_at".into(), now.to_rfc3339());
    })
    .await;
    if !done {
        return mv.abandon(app, event).await;
    }
    actions::event_finish(app, id, req, event, None).await;
}

/// Where a failed revert leaves the server. `on_source` is false when the
/// destroy on the destination failed (nova/compute/manager.py
/// revert_resize: ERROR, still on the destination at the new flavor; the
/// source allocation the migration held is dropped, as the resource
/// tracker no longer counts an errored migration), true when
/// finish_revert_resize failed on the source (_finish_revert_resize has put
/// back the old flavor, host and allocations before the driver call: ERROR
/// on the source). Either way errors_out_migration: `error` (written by
/// the caller once the event is closed, `migrate::end_revert`).
pub(crate) async fn revert_failed(
    app: &App,
    id: &str,
    plan: &super::migrate::RevertPlan,
    old: FlavorSnapshot,
    on_source: bool,
    f: &DriverFault,
) {
    if on_source {
        app.compute.fleet.transfer(&plan.migration_uuid, id);
        let p = plan.clone();
        error_out(app, id, f, move |i| {
            p.apply(i);
            i.flavor = old;
            drop_stash(i);
        })
        .await;
    } else {
        app.compute.fleet.release(&plan.migration_uuid);
        error_out(app, id, f, drop_stash).await;
    }
}
