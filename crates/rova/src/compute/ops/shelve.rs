//! Shelve, shelve-offload (right after shelve or from the periodic task;
//! at once for a volume-backed server, which has no image to make) and
//! unshelve (back onto a host chosen by the scheduler).

use super::snapshot::{new_snapshot_image, settle_image};
use crate::app::App;
use crate::compute::actions::{self, Logged};
use crate::compute::actions_run::{advance, begin, begin_with, subject, StepError};
use crate::compute::driver::DriverOp;
use crate::compute::servers;
use crate::http::Ctx;
use rova_core::admission::{admit, Action};
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) async fn shelve(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-shelve:shelve")?;
    let inst = begin(
        app,
        ctx,
        id,
        Action::Shelve,
        Some(T::Shelving),
        Some(Logged::with("shelve", "compute_shelve_instance")),
    )
    .await?;
    let volume_backed = inst.is_volume_backed();
    let image = if volume_backed {
        None
    } else {
        Some(
            new_snapshot_image(
                app,
                &inst,
                &format!("{}-shelved", inst.display_name),
                "snapshot",
                BTreeMap::new(),
            )
            .await?,
        )
    };
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let image_id = image.as_ref().map(|i| i.id.clone());
        let host = inst.host.clone();
        let op = DriverOp::Shelve {
            image_id: image_id.clone(),
        };
        let res = advance(
            &app2,
            &id2,
            op,
            T::Shelving,
            &[T::ShelvingImagePendingUpload, T::ShelvingImageUploading],
            |i, now| {
                i.vm_state = VmState::Shelved;
                i.power_state = PowerState::Shutdown;
                i.system_metadata
                    .insert("shelved_at".into(), now.to_rfc3339());
                i.system_metadata.insert(
                    "shelved_image_id".into(),
                    image_id.clone().unwrap_or_default(),
                );
                i.system_metadata
                    .insert("shelved_host".into(), host.unwrap_or_default());
            },
        )
        .await;
        if let Some(img) = &image {
            settle_image(&app2, &img.id, &id2, res.is_ok()).await;
        }
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_shelve_instance", e).await;
        // A volume-backed server keeps nothing on the host worth
        // holding on to: it is offloaded at once (as Nova does).
        if res.is_ok() && (app2.cfg.shelved_offload_time == 0 || volume_backed) {
            start_offload(&app2, &id2).await;
        }
    });
    Ok(())
}

/// Sets `shelving_offloading` on a shelved, idle server and offloads it
/// (used right after shelve and by the periodic task).
pub async fn start_offload(app: &Arc<App>, id: &str) -> bool {
    let now = app.clock.now();
    let ok = app
        .compute
        .update_instance(id, now, |i| {
            if i.deleted || i.vm_state != VmState::Shelved || i.task_state.is_some() {
                return Err(Fault::conflict("not shelved"));
            }
            i.task_state = Some(T::ShelvingOffloading);
            Ok(())
        })
        .await
        .is_ok();
    ok && offload(app, id).await.is_ok()
}

pub(super) async fn offload(app: &Arc<App>, id: &str) -> Result<(), StepError> {
    let Some(inst) = app.compute.instances.get(id) else {
        return Err(StepError::superseded());
    };
    let _ = app
        .compute
        .driver_for(inst.host.as_deref())
        .destroy(&inst)
        .await;
    let res = advance(
        app,
        id,
        DriverOp::ShelveOffload,
        T::ShelvingOffloading,
        &[],
        |i, _| {
            i.vm_state = VmState::ShelvedOffloaded;
            i.power_state = PowerState::Shutdown;
            i.host = None;
            i.node = None;
        },
    )
    .await;
    if res.is_ok() {
        // Offloaded servers hold nothing on any host.
        crate::compute::scheduler::release_instance(app, id);
    }
    res
}

pub(super) async fn unshelve(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    az: Option<Option<String>>,
    host: Option<String>,
) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-shelve:unshelve")?;
    let cur = servers::visible(app, ctx, id)?;
    admit(Action::Unshelve, &subject(&cur), ctx.is_admin())?;
    if host.is_some() {
        ctx.require_admin("os_compute_api:os-shelve:unshelve_to_host")?;
    }
    if (az.is_some() || host.is_some()) && cur.vm_state != VmState::ShelvedOffloaded {
        return Err(Fault::conflict(format!(
            "The unshelve action of instance {id} is not allowed in vm_state {}: only shelved_offloaded servers may be given an availability zone or host.",
            cur.vm_state
        )));
    }
    if let Some(Some(zone)) = &az {
        if !app.compute.fleet.has_zone(zone) {
            return Err(Fault::bad_request(
                "The requested availability zone is not available",
            ));
        }
    }
    if let Some(h) = &host {
        if app.compute.fleet.host(h).is_none() {
            return Err(Fault::bad_request(format!(
                "Compute host {h} could not be found."
            )));
        }
    }
    let inst = begin_with(
        app,
        ctx,
        id,
        Action::Unshelve,
        Some(T::Unshelving),
        Some(Logged::with("unshelve", "compute_unshelve_instance")),
        |i, _| {
            if let Some(z) = az {
                i.pinned_availability_zone = z;
            }
            Ok(())
        },
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        // An offloaded server is scheduled again (a requested host still
        // goes through the filters); a shelved one stays where it is.
        let claimed = inst.host.is_none();
        let (host, az) = match (&inst.host, &inst.availability_zone) {
            (Some(h), z) => (
                h.clone(),
                z.clone()
                    .unwrap_or_else(|| app2.compute.fleet.default_zone()),
            ),
            (None, _) => {
                let mut spec = crate::compute::scheduler::request_spec(&app2, &inst, &inst.flavor);
                spec.requested_host = host;
                match crate::compute::scheduler::claim(&app2, &id2, &spec) {
                    Ok(p) => (p.host, p.availability_zone),
                    Err(nvh) => {
                        let msg = nvh.message();
                        crate::compute::migrate::fail_move(&app2, &id2, T::Unshelving, None, msg)
                            .await;
                        actions::event_finish(
                            &app2,
                            &id2,
                            &req,
                            "compute_unshelve_instance",
                            Some((msg, msg)),
                        )
                        .await;
                        return;
                    }
                }
            }
        };
        let shelved_image = inst.system_metadata.get("shelved_image_id").cloned();
        let op = DriverOp::Unshelve { dest: host.clone() };
        let res = advance(&app2, &id2, op, T::Unshelving, &[T::Spawning], |i, _| {
            i.vm_state = VmState::Active;
            i.power_state = PowerState::Running;
            i.host = Some(host.clone());
            i.node = Some(host);
            i.availability_zone = Some(az);
            for k in ["shelved_at", "shelved_image_id", "shelved_host"] {
                i.system_metadata.remove(k);
            }
        })
        .await;
        if res.is_ok() {
            if let Some(img) = shelved_image.filter(|s| !s.is_empty()) {
                let _ = app2.images.delete(&img).await;
            }
        } else if claimed
            && app2
                .compute
                .instances
                .get(&id2)
                .is_some_and(|i| i.host.is_none())
        {
            crate::compute::scheduler::release_instance(&app2, &id2);
        }
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_unshelve_instance", e).await;
    });
    Ok(())
}
