//! Swapping a server's volume for another (Nova's `swap_volume`, the
//! `PUT /servers/{id}/os-volume_attachments/{old}` the service role sends
//! with another `volumeId`): the guest's disk moves to the new volume,
//! its bytes copied first, and the old volume is let go.
//!
//! Nova only takes a swap that Cinder asked for: the old volume must have
//! a `migration_status` (409 otherwise). A volume whose status is
//! `migrating` would need Cinder's `migrate_volume_completion` at the end
//! (the new volume's record takes the old one's id), which this cloud's
//! block storage does not have: such a swap is refused with 501.
//!
//! The steps, each a compare-and-swap on its row and undone in reverse
//! when a later one fails: the old volume `in-use` → `detaching` (Cinder's
//! `begin_detaching`), the new one reserved for the server (`available` →
//! `reserved`), the driver's copy and pivot, the server's mapping moved to
//! the new volume (same device, tag and `delete_on_termination`) with its
//! `swap_volume` action in one transaction, the new volume's attachment
//! completed (`in-use`) and the old one's deleted (`available`). A process
//! that died between the steps is settled at start like an attach or a
//! detach: each volume by whether the server's mapping names its
//! attachment.

use super::actions::{self, Logged};
use super::actions_run::{begin_with, subject};
use super::driver::{require, DriverOp};
use super::servers;
use super::volumes::attached;
use crate::app::App;
use crate::http::Ctx;
use crate::volume::backend::Location;
use crate::volume::invalid_volume;
use rova_core::admission::{admit, Action};
use rova_core::model::Instance;
use rova_core::Fault;

/// What a swap asks for: the volume the server has and the one it is to
/// have instead.
pub struct VolumeSwap {
    pub old: String,
    pub new: String,
}

/// Nova's `VolumeBDMNotFound` (404): server has no mapping of `volume`.
pub fn no_mapping(volume: &str) -> Fault {
    Fault::not_found(format!("No volume Block Device Mapping with id {volume}."))
}

/// Nova's `_check_volume_already_attached` for the new volume: no server
/// may map it already.
fn check_not_mapped(app: &App, inst: &Instance, volume: &str) -> Result<(), Fault> {
    let maps = |i: &Instance| attached(i).any(|b| b.uuid.as_deref() == Some(volume));
    let holders = app.compute.instances.filter(|i| !i.deleted && maps(i));
    if holders.is_empty() {
        return Ok(());
    }
    if holders.iter().any(|i| i.uuid == inst.uuid) {
        return Err(invalid_volume(format!("volume {volume} already attached")));
    }
    let uuids: Vec<&str> = holders.iter().map(|i| i.uuid.as_str()).collect();
    Err(invalid_volume(format!(
        "volume {volume} is already attached to instances: {}",
        uuids.join(" ")
    )))
}

/// Swaps volume `req.old` of server `id` for `req.new`. The caller has
/// checked the policy.
pub async fn swap(app: &App, ctx: &Ctx, id: &str, req: VolumeSwap) -> Result<(), Fault> {
    let (old, new) = (req.old.as_str(), req.new.as_str());
    let inst = servers::visible(app, ctx, id)?;
    let old_v = app.volumes.visible(old, &ctx.project_id, ctx.is_admin())?;
    match old_v.migration_status.as_deref() {
        None | Some("") => {
            return Err(Fault::conflict(format!(
                "volume {old} is not migrating; this API should only be called by Cinder"
            )))
        }
        Some("migrating") => {
            return Err(Fault::new(
                501,
                "Completing a Cinder volume migration is not supported by this cloud.",
            ))
        }
        Some(_) => {}
    }
    // A volume named in the body that does not exist is the caller's
    // mistake (400), unlike the one in the path (404).
    let new_v = app
        .volumes
        .visible(new, &ctx.project_id, ctx.is_admin())
        .map_err(|f| Fault::bad_request(f.message))?;
    admit(Action::SwapVolume, &subject(&inst), ctx.is_admin())?;
    require(app.compute.driver.as_ref(), Action::SwapVolume)?;
    if !old_v.attachments.iter().any(|a| a.server_id == id) {
        return Err(invalid_volume(
            "Old volume is attached to a different instance.",
        ));
    }
    if new_v.attach_status == "attached" {
        return Err(invalid_volume(
            "New volume must be detached in order to swap.",
        ));
    }
    if new_v.size < old_v.size {
        return Err(invalid_volume(
            "New volume must be the same size or larger.",
        ));
    }
    let now = app.clock.now();
    app.volumes
        .begin_detach(old, now)
        .await
        .map_err(|f| invalid_volume(format!("Invalid input received: {} (HTTP 400)", f.message)))?;
    let undo_old = || app.volumes.release(old, id, true, now);
    let Some(bdm) = attached(&inst)
        .find(|b| b.uuid.as_deref() == Some(old))
        .cloned()
    else {
        undo_old().await;
        return Err(no_mapping(old));
    };
    if let Err(f) = check_not_mapped(app, &inst, new) {
        undo_old().await;
        return Err(f);
    }
    let attachment = match app.volumes.reserve(new, id, now).await {
        Ok(a) => a,
        Err(f) => {
            undo_old().await;
            return Err(f);
        }
    };
    let undo = || async {
        app.volumes.release(new, id, false, now).await;
        undo_old().await;
    };
    let device = bdm.device_name.clone().unwrap_or_default();
    let (Location::File(old_path), Location::File(new_path)) =
        (app.volumes.location(old), app.volumes.location(new));
    let op = DriverOp::SwapVolume {
        old: old.to_string(),
        new: new.to_string(),
        device: device.clone(),
        old_path: old_path.clone(),
        new_path: new_path.clone(),
    };
    if let Err(f) = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&op, &inst)
        .await
    {
        undo().await;
        return Err(if f.code == 501 {
            Fault::new(501, f.message)
        } else {
            Fault::internal(format!(
                "Failed to swap volume {old} for {new}: {} ({})",
                f.message, f.details
            ))
        });
    }
    let connection = app.volumes.connection_info(new);
    let grown = (new_v.size > old_v.size).then_some(new_v.size);
    let (old_id, new_id, new_att) = (old.to_string(), new.to_string(), attachment.clone());
    let log = Logged::with("swap_volume", "compute_swap_volume");
    let written = begin_with(
        app,
        ctx,
        id,
        Action::SwapVolume,
        None,
        Some(log),
        move |i, _| {
            let b = i
                .block_device_mapping
                .iter_mut()
                .find(|b| b.uuid.as_deref() == Some(old_id.as_str()))
                .ok_or_else(|| no_mapping(&old_id))?;
            b.uuid = Some(new_id);
            b.attachment_id = Some(new_att);
            b.connection_info = Some(connection);
            b.source_type = Some("volume".into());
            if let Some(size) = grown {
                b.volume_size = Some(size);
            }
            Ok(())
        },
    )
    .await;
    let inst = match written {
        Ok(i) => i,
        Err(f) => {
            let back = DriverOp::SwapVolume {
                old: new.to_string(),
                new: old.to_string(),
                device,
                old_path: new_path,
                new_path: old_path,
            };
            if let Err(e) = app
                .compute
                .driver_for(inst.host.as_deref())
                .perform(&back, &inst)
                .await
            {
                tracing::error!(server = id, old, new, "swap back failed: {}", e.message);
            }
            undo().await;
            return Err(f);
        }
    };
    app.volumes
        .complete(new, &attachment, &device, inst.host.clone(), now)
        .await?;
    match bdm.attachment_id.as_deref() {
        Some(att) => {
            if let Err(f) = app.volumes.attachment_delete(old, att, now).await {
                tracing::warn!(volume = old, "old attachment left: {}", f.message);
                app.volumes.release(old, id, false, now).await;
            }
        }
        None => app.volumes.release(old, id, false, now).await,
    }
    actions::event_finish(app, id, &ctx.request_id, "compute_swap_volume", None).await;
    Ok(())
}
