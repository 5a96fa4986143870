//! Volumes attached to a server after it was built (Nova's
//! `os-volume_attachments`): attach, detach, list and show, and what a
//! server's delete does to its volumes.
//!
//! An attach runs Nova's sequence, each step a compare-and-swap on its
//! row: the volume is reserved for the server (`available` → `reserved`,
//! Cinder's attachment), the driver plugs it in, the server's record
//! gains the block device mapping with its `attach_volume` action in one
//! transaction, and the attachment is completed (`in-use`). A step that
//! fails undoes the ones before it. A detach is the reverse (`in-use` →
//! `detaching`, unplugged, the mapping removed with `detach_volume`,
//! `available`). A server's delete detaches its volumes, deleting those
//! mapped with `delete_on_termination`.
//!
//! A process that died between the steps leaves a volume `reserved` or
//! `detaching`; [`settle_at_start`] ends it by what the server's record
//! says: the mapping is there → `in-use`, it is not → `available`.

use super::actions::{self, Logged};
use super::actions_run::{begin_with, subject};
use super::driver::{require, DriverOp};
use super::servers;
use crate::app::App;
use crate::http::Ctx;
use crate::volume::backend::Location;
use rova_core::admission::{admit, Action};
use rova_core::model::{BlockDeviceMapping, Instance};
use rova_core::states::VmState;
use rova_core::Fault;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What `POST /servers/{id}/os-volume_attachments` asks for.
#[derive(Debug, Clone, Default)]
pub struct VolumeAttach {
    pub volume_id: String,
    pub device: Option<String>,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
}

/// The mappings of server `inst` that are attached volumes.
pub fn attached(inst: &Instance) -> impl Iterator<Item = &BlockDeviceMapping> {
    inst.block_device_mapping
        .iter()
        .filter(|b| b.destination_type.as_deref() == Some("volume") && b.uuid.is_some())
}

/// Nova's "not attached" 404.
fn not_attached(server: &str, volume: &str) -> Fault {
    Fault::not_found(format!(
        "Instance {server} is not attached to volume {volume}"
    ))
}

/// Server `id`'s mapping of volume `volume` (404 when none).
pub fn attachment_of(
    app: &App,
    ctx: &Ctx,
    id: &str,
    volume: &str,
) -> Result<BlockDeviceMapping, Fault> {
    let inst = servers::visible(app, ctx, id)?;
    let found = attached(&inst)
        .find(|b| b.uuid.as_deref() == Some(volume))
        .cloned();
    found.ok_or_else(|| not_attached(id, volume))
}

/// Nova refuses to change a shelved server's volumes before 2.20.
fn check_shelved(ctx: &Ctx, inst: &Instance, method: &str) -> Result<(), Fault> {
    if matches!(inst.vm_state, VmState::Shelved | VmState::ShelvedOffloaded) && !ctx.at_least(20) {
        return Err(Fault::invalid_state(
            method,
            &inst.uuid,
            "vm_state",
            inst.vm_state.as_str(),
        ));
    }
    Ok(())
}

/// The device a new volume gets: the requested one when free (409 when a
/// mapping has it), else the first free `/dev/vdX` after the root disk.
fn device_for(inst: &Instance, asked: Option<&str>) -> Result<String, Fault> {
    let taken: Vec<&str> = inst
        .block_device_mapping
        .iter()
        .filter_map(|b| b.device_name.as_deref())
        .collect();
    if let Some(d) = asked.filter(|d| !d.is_empty()) {
        if taken.contains(&d) {
            return Err(Fault::conflict(format!(
                "The supplied device path ({d}) is in use."
            )));
        }
        return Ok(d.to_string());
    }
    (b'b'..=b'z')
        .map(|c| format!("/dev/vd{}", c as char))
        .find(|d| !taken.contains(&d.as_str()))
        .ok_or_else(|| Fault::forbidden("The maximum allowed number of disk devices (26) to attach to a single instance has been exceeded."))
}

/// Attaches a volume to server `id`; returns the new mapping.
pub async fn attach(
    app: &App,
    ctx: &Ctx,
    id: &str,
    req: VolumeAttach,
) -> Result<BlockDeviceMapping, Fault> {
    ctx.require_member("os_compute_api:os-volumes-attachments:create")?;
    let inst = servers::visible(app, ctx, id)?;
    check_shelved(ctx, &inst, "attach_volume")?;
    admit(Action::AttachVolume, &subject(&inst), ctx.is_admin())?;
    require(app.compute.driver.as_ref(), Action::AttachVolume)?;
    let vol_id = req.volume_id.clone();
    app.volumes
        .visible(&vol_id, &ctx.project_id, ctx.is_admin())?;
    if attached(&inst).any(|b| b.uuid.as_deref() == Some(vol_id.as_str())) {
        return Err(Fault::bad_request(format!(
            "Invalid volume: volume {vol_id} already attached"
        )));
    }
    let device = device_for(&inst, req.device.as_deref())?;
    let now = app.clock.now();
    let attachment = app.volumes.reserve(&vol_id, id, now).await?;
    let Location::File(path) = app.volumes.location(&vol_id);
    let connection = app.volumes.connection_info(&vol_id);
    let plug = DriverOp::AttachVolume {
        volume_id: vol_id.clone(),
        device: device.clone(),
        path,
    };
    if let Err(f) = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&plug, &inst)
        .await
    {
        app.volumes.release(&vol_id, id, false, now).await;
        return Err(if f.code == 501 {
            Fault::new(501, f.message)
        } else {
            Fault::internal(format!(
                "Failed to attach volume {vol_id} to {id}: {} ({})",
                f.message, f.details
            ))
        });
    }
    let bdm = BlockDeviceMapping {
        source_type: Some("volume".into()),
        destination_type: Some("volume".into()),
        uuid: Some(vol_id.clone()),
        device_name: Some(device.clone()),
        delete_on_termination: req.delete_on_termination,
        tag: req.tag.clone(),
        attachment_id: Some(attachment.clone()),
        bdm_uuid: Some(uuid::Uuid::new_v4().to_string()),
        connection_info: Some(connection),
        ..Default::default()
    };
    let added = bdm.clone();
    let log = Logged::with("attach_volume", "compute_attach_volume");
    let written = begin_with(
        app,
        ctx,
        id,
        Action::AttachVolume,
        None,
        Some(log),
        move |i, _| {
            i.block_device_mapping.push(added);
            Ok(())
        },
    )
    .await;
    let inst = match written {
        Ok(i) => i,
        Err(f) => {
            let unplug = DriverOp::DetachVolume {
                volume_id: vol_id.clone(),
            };
            let _ = app
                .compute
                .driver_for(inst.host.as_deref())
                .perform(&unplug, &inst)
                .await;
            app.volumes.release(&vol_id, id, false, now).await;
            return Err(f);
        }
    };
    app.volumes
        .complete(&vol_id, &attachment, &device, inst.host.clone(), now)
        .await?;
    actions::event_finish(app, id, &ctx.request_id, "compute_attach_volume", None).await;
    Ok(bdm)
}

/// Detaches volume `volume` from server `id`, as Nova does: the volume
/// is `detaching` and the action recorded when this returns (202); the
/// unplug runs in a task, which ends with the volume `available` and the
/// mapping gone, or, when the hypervisor fails (a guest that does not let
/// go), with the volume back `in-use` and the action's event in error.
pub async fn detach(app: &Arc<App>, ctx: &Ctx, id: &str, volume: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-volumes-attachments:delete")?;
    let inst = servers::visible(app, ctx, id)?;
    check_shelved(ctx, &inst, "detach_volume")?;
    app.volumes
        .visible(volume, &ctx.project_id, ctx.is_admin())?;
    let bdm = attached(&inst)
        .find(|b| b.uuid.as_deref() == Some(volume))
        .cloned()
        .ok_or_else(|| not_attached(id, volume))?;
    if bdm.boot_index == Some(0) {
        return Err(Fault::bad_request("Cannot detach a root device volume"));
    }
    admit(Action::DetachVolume, &subject(&inst), ctx.is_admin())?;
    require(app.compute.driver.as_ref(), Action::DetachVolume)?;
    let now = app.clock.now();
    app.volumes.begin_detach(volume, now).await?;
    let log = Logged::with("detach_volume", "compute_detach_volume");
    let logged = begin_with(
        app,
        ctx,
        id,
        Action::DetachVolume,
        None,
        Some(log),
        |_, _| Ok(()),
    )
    .await;
    let inst = match logged {
        Ok(i) => i,
        Err(f) => {
            app.volumes.release(volume, id, true, now).await;
            return Err(f);
        }
    };
    let app = app.clone();
    let (id, volume, request_id) = (id.to_string(), volume.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let ended = finish_detach(&app, &inst, &volume).await;
        let error = ended
            .as_ref()
            .err()
            .map(|f| (f.message.as_str(), f.details.as_str()));
        actions::event_finish(&app, &id, &request_id, "compute_detach_volume", error).await;
    });
    Ok(())
}

/// The hypervisor's part of a detach and its record: the volume unplugged,
/// the mapping removed, the volume released; on a failure the volume is
/// `in-use` again.
async fn finish_detach(
    app: &App,
    inst: &Instance,
    volume: &str,
) -> Result<(), super::driver::DriverFault> {
    let id = inst.uuid.as_str();
    let unplug = DriverOp::DetachVolume {
        volume_id: volume.to_string(),
    };
    if let Err(f) = app
        .compute
        .driver_for(inst.host.as_deref())
        .perform(&unplug, inst)
        .await
    {
        tracing::warn!(
            server = id,
            volume,
            "detach failed: {} ({})",
            f.message,
            f.details
        );
        app.volumes.release(volume, id, true, app.clock.now()).await;
        return Err(f);
    }
    let gone = volume.to_string();
    let written = app
        .compute
        .update_instance(id, app.clock.now(), move |i| {
            i.block_device_mapping
                .retain(|b| b.uuid.as_deref() != Some(gone.as_str()));
            Ok(())
        })
        .await;
    let now = app.clock.now();
    if let Err(f) = written {
        app.volumes.release(volume, id, true, now).await;
        return Err(super::driver::DriverFault::new(
            f.message.clone(),
            f.message,
        ));
    }
    app.volumes.release(volume, id, false, now).await;
    Ok(())
}

/// A deleted server's volumes: detached, and deleted when mapped with
/// `delete_on_termination`.
pub async fn release_server_volumes(app: &App, inst: &Instance) {
    let now = app.clock.now();
    for b in attached(inst) {
        let Some(vol) = b.uuid.as_deref() else {
            continue;
        };
        if b.delete_on_termination {
            app.volumes.delete_with_server(vol, &inst.uuid, now).await;
        } else {
            app.volumes.release(vol, &inst.uuid, false, now).await;
        }
    }
}

/// Since when a volume must be unchanged for start-up settling to take
/// it as a dead process's: on SQLite (one process per database) any
/// volume; on PostgreSQL, where another process may be attaching it right
/// now, one untouched for two process leases.
fn quiet_since(app: &App) -> Option<chrono::DateTime<chrono::Utc>> {
    if !matches!(app.store.database(), crate::store::Database::Postgres(_)) {
        return None;
    }
    let wait = chrono::Duration::from_std(super::owners::LEASE_TTL * 2).ok()?;
    Some(app.clock.now() - wait)
}

/// Ends what a stopped process left of its volume work: the volume
/// service's own (creates, extends, deletes cut short), then the attaches
/// and detaches it left between their steps, by the server's record: a volume whose server maps it (by its
/// attachment) is `in-use`; one whose server does not, or is gone, is
/// `available` again.
pub async fn settle_at_start(app: &Arc<App>) -> Result<(), Fault> {
    let now = app.clock.now();
    let quiet_since = quiet_since(app);
    app.volumes.settle_at_start(quiet_since).await?;
    crate::volume::upload::settle(app, quiet_since).await;
    for v in app.volumes.table.all() {
        if !["reserved", "attaching", "detaching", "in-use"].contains(&v.status.as_str()) {
            continue;
        }
        if quiet_since.is_some_and(|t| v.last_change() > t) {
            continue;
        }
        for a in &v.attachments {
            let mapped = app
                .compute
                .instances
                .get(&a.server_id)
                .filter(|i| !i.deleted)
                .and_then(|i| {
                    attached(&i)
                        .find(|b| b.attachment_id.as_deref() == Some(a.id.as_str()))
                        .map(|b| (b.device_name.clone().unwrap_or_default(), i.host.clone()))
                });
            match (v.status.as_str(), mapped) {
                ("in-use", Some(_)) => {}
                ("reserved" | "attaching", Some((device, host))) => {
                    app.volumes
                        .complete(&v.id, &a.id, &device, host, now)
                        .await?;
                }
                ("detaching", Some(_)) => app.volumes.release(&v.id, &a.server_id, true, now).await,
                _ => app.volumes.release(&v.id, &a.server_id, false, now).await,
            }
        }
    }
    Ok(())
}

/// The mappings of a create that are volumes (boot from volume and the
/// volumes a server is built with).
fn volume_mappings(bdms: &[BlockDeviceMapping]) -> impl Iterator<Item = &BlockDeviceMapping> {
    bdms.iter()
        .filter(|b| b.destination_type.as_deref() == Some("volume"))
}

/// Nova's `_validate_bdm`, volume part, at `POST /servers`: a volume to
/// attach exists for the caller and is available (one server only) — and
/// bootable when it is the boot disk of a server naming no image —, an
/// image to copy exists, a snapshot to copy exists for the caller, is
/// `available` and fits the size asked for (what Cinder would refuse at
/// the build is refused here).
///
/// Returns the image properties of what the server boots from when that
/// is a volume (Nova's `_get_bdm_image_metadata`): the image a new boot
/// volume is made from, the image metadata of the snapshot it is made
/// from, or the `volume_image_metadata` of an existing one.
pub fn check_create_mappings(
    app: &App,
    ctx: &Ctx,
    bdms: &[BlockDeviceMapping],
    max_count: u64,
    no_image: bool,
) -> Result<BTreeMap<String, String>, Fault> {
    if volume_mappings(bdms).next().is_none() {
        return Ok(BTreeMap::new());
    }
    let mut boot_properties = BTreeMap::new();
    require(app.compute.driver.as_ref(), Action::AttachVolume)?;
    for b in volume_mappings(bdms) {
        let id = b.uuid.clone().unwrap_or_default();
        match b.source_type.as_deref() {
            Some("volume") => {
                if max_count > 1 {
                    return Err(Fault::bad_request(
                        "Cannot attach one or more volumes to multiple instances",
                    ));
                }
                let v = app
                    .volumes
                    .visible(&id, &ctx.project_id, ctx.is_admin())
                    .map_err(|_| {
                        Fault::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get volume {id}."
                        ))
                    })?;
                // Nova's `get_bdm_image_metadata`, for a server that
                // names no image: its boot volume must be bootable.
                if no_image && b.boot_index == Some(0) && !v.bootable {
                    return Err(Fault::bad_request(format!(
                        "Block Device {id} is not bootable."
                    )));
                }
                if v.status != "available" {
                    return Err(Fault::bad_request(format!(
                        "Invalid volume: Volume {id} status must be available or downloading \
                         to reserve, but the current status is {}.",
                        v.status
                    )));
                }
                if b.boot_index == Some(0) {
                    boot_properties = v.image_metadata.clone();
                }
            }
            Some("image") => {
                let img = app
                    .images
                    .visible(&id, &ctx.project_id, ctx.is_admin())
                    .filter(|i| i.status == "active")
                    .ok_or_else(|| {
                        Fault::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get image {id}."
                        ))
                    })?;
                if b.boot_index == Some(0) {
                    boot_properties = crate::volume::FromImage::of(&img).metadata;
                }
            }
            Some("snapshot") => {
                let snap = app
                    .volumes
                    .snapshot_visible(&id, &ctx.project_id, ctx.is_admin())
                    .map_err(|_| {
                        Fault::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get snapshot {id}."
                        ))
                    })?;
                crate::volume::snapshot::usable(&snap)?;
                crate::volume::snapshot::volume_size_from(&snap, b.volume_size)?;
                if b.boot_index == Some(0) {
                    boot_properties = snap.image_metadata.clone();
                }
            }
            _ => {}
        }
    }
    // What is left once the image's own attributes are taken out.
    for base in [
        "image_id",
        "image_name",
        "container_format",
        "disk_format",
        "checksum",
        "min_disk",
        "min_ram",
        "size",
    ] {
        boot_properties.remove(base);
    }
    Ok(boot_properties)
}

/// Makes a new volume for a build (from its image, its snapshot, or
/// blank) and waits until it is available.
async fn new_boot_volume(
    app: &App,
    inst: &Instance,
    b: &BlockDeviceMapping,
) -> Result<String, Fault> {
    let source_id = b.uuid.clone().unwrap_or_default();
    let vol = match b.source_type.as_deref() {
        Some("snapshot") => {
            let snap = app
                .volumes
                .snapshots
                .get(&source_id)
                .ok_or_else(|| crate::volume::snapshot::not_found(&source_id))?;
            crate::volume::snapshot::usable(&snap)?;
            let size = crate::volume::snapshot::volume_size_from(&snap, b.volume_size)?;
            let req = new_volume_request(size, None);
            app.volumes
                .create_from_snapshot(app.clock.now(), &inst.project_id, &inst.user_id, req, &snap)
                .await?
        }
        source => {
            let mut image_metadata = BTreeMap::new();
            let mut file = None;
            let mut floor = 1u64;
            let mut image_id = None;
            if source == Some("image") {
                let img = app.images.get(&source_id).ok_or_else(|| {
                    Fault::bad_request(format!("Image {source_id} could not be found."))
                })?;
                let from = crate::volume::FromImage::of(&img);
                floor = from.floor;
                image_metadata = from.metadata;
                file = Some(app.images.file_path(&source_id));
                image_id = Some(source_id);
            }
            let size = b.volume_size.unwrap_or(floor).max(floor);
            let req = new_volume_request(size, image_id);
            app.volumes
                .create(
                    app.clock.now(),
                    &inst.project_id,
                    &inst.user_id,
                    req,
                    image_metadata,
                    file,
                )
                .await?
        }
    };
    made("volume", &vol.id, || {
        app.volumes.table.get(&vol.id).map(|v| v.status.clone())
    })
    .await?;
    Ok(vol.id.clone())
}

/// Waits until `kind` `id` (a volume or a snapshot, whose status
/// `status` reads) has left `creating`: Ok when it is `available`.
pub(crate) async fn made(
    kind: &str,
    id: &str,
    status: impl Fn() -> Option<String>,
) -> Result<(), Fault> {
    for _ in 0..6000 {
        match status() {
            Some(s) if s == "available" => return Ok(()),
            Some(s) if s == "creating" => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            other => return Err(Fault::internal(format!("{kind} {id} ended {other:?}"))),
        }
    }
    Err(Fault::internal(format!(
        "{kind} {id} never became available"
    )))
}

/// A nameless volume of `size` GiB for a build.
fn new_volume_request(size: u64, image_id: Option<String>) -> crate::volume::NewVolume {
    crate::volume::NewVolume {
        size,
        name: None,
        description: None,
        metadata: Default::default(),
        source_volid: None,
        image_id,
    }
}

/// The build's block device mapping step for its volumes: each volume
/// mapping gets its volume (made from its image or blank, or the one it
/// names), reserved for the server and attached as its device (`/dev/vda`
/// for the boot volume). Returns the mappings as the server's record is
/// to hold them; on a failure, what was done is undone (volumes made for
/// the server deleted, others given back).
pub async fn prepare_build_volumes(
    app: &App,
    inst: &Instance,
) -> Result<Vec<BlockDeviceMapping>, Fault> {
    let mut out = inst.block_device_mapping.clone();
    let mut made: Vec<String> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    let now = app.clock.now();
    let result = async {
        for i in 0..out.len() {
            let b = out[i].clone();
            if b.destination_type.as_deref() != Some("volume") || b.attachment_id.is_some() {
                continue;
            }
            let vol = match b.source_type.as_deref() {
                Some("volume") => b.uuid.clone().unwrap_or_default(),
                _ => {
                    let v = new_boot_volume(app, inst, &b).await?;
                    made.push(v.clone());
                    v
                }
            };
            let attachment = app.volumes.reserve(&vol, &inst.uuid, now).await?;
            taken.push(vol.clone());
            let probe = Instance {
                block_device_mapping: out.clone(),
                ..inst.clone()
            };
            let device = match b.device_name.clone().filter(|d| !d.is_empty()) {
                Some(d) => d,
                None if b.boot_index == Some(0) => "/dev/vda".to_string(),
                None => device_for(&probe, None)?,
            };
            app.volumes
                .complete(&vol, &attachment, &device, inst.host.clone(), now)
                .await?;
            let connection = app.volumes.connection_info(&vol);
            let m = &mut out[i];
            m.uuid = Some(vol);
            m.source_type = Some("volume".into());
            m.attachment_id = Some(attachment);
            m.device_name = Some(device);
            m.bdm_uuid = Some(uuid::Uuid::new_v4().to_string());
            m.connection_info = Some(connection);
        }
        Ok::<(), Fault>(())
    }
    .await;
    if let Err(f) = result {
        for v in &taken {
            app.volumes.release(v, &inst.uuid, false, now).await;
        }
        for v in &made {
            app.volumes.delete_with_server(v, &inst.uuid, now).await;
        }
        return Err(f);
    }
    Ok(out)
}

/// The block device mappings image `img` defines (Nova's
/// `_get_image_defined_bdms`, block device mapping v2 only): its
/// `block_device_mapping` property (a JSON list, or its text as Glance
/// keeps it) when `bdm_v2` is true, as a create's mappings.
pub fn image_defined_mappings(img: &crate::image::Image) -> Vec<BlockDeviceMapping> {
    let v2 = match img.properties.get("bdm_v2") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => {
            ["true", "1", "yes", "on", "t", "y"].contains(&s.to_ascii_lowercase().as_str())
        }
        _ => false,
    };
    let list = match img.properties.get("block_device_mapping") {
        Some(serde_json::Value::String(s)) if v2 => serde_json::from_str(s).unwrap_or_default(),
        Some(serde_json::Value::Array(a)) if v2 => a.clone(),
        _ => Vec::new(),
    };
    let text = |m: &serde_json::Value, k: &str| m.get(k).and_then(|v| v.as_str()).map(String::from);
    list.iter()
        .map(|m| {
            let source = text(m, "source_type");
            let uuid = match source.as_deref() {
                Some("snapshot") => text(m, "snapshot_id"),
                Some("volume") => text(m, "volume_id"),
                Some("image") => text(m, "image_id"),
                _ => None,
            };
            BlockDeviceMapping {
                source_type: source,
                destination_type: text(m, "destination_type"),
                uuid,
                boot_index: m.get("boot_index").and_then(|v| v.as_i64()),
                volume_size: m.get("volume_size").and_then(|v| v.as_u64()),
                device_name: text(m, "device_name"),
                delete_on_termination: m
                    .get("delete_on_termination")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                guest_format: text(m, "guest_format"),
                device_type: text(m, "device_type"),
                disk_bus: text(m, "disk_bus"),
                volume_type: text(m, "volume_type"),
                ..Default::default()
            }
        })
        .collect()
}

/// A create's mappings with those its image defines (Nova's
/// `_merge_bdms_lists`): when the image defines the root device, a
/// requested image root mapping is dropped; a requested mapping takes
/// the place of the image's of the same device name.
pub fn merge_image_mappings(
    image: Vec<BlockDeviceMapping>,
    requested: Vec<BlockDeviceMapping>,
) -> Vec<BlockDeviceMapping> {
    let mut requested = requested;
    if image.iter().any(|b| b.boot_index == Some(0)) {
        requested
            .retain(|b| !(b.boot_index == Some(0) && b.source_type.as_deref() == Some("image")));
    }
    let names: Vec<String> = requested
        .iter()
        .filter_map(|b| b.device_name.clone())
        .collect();
    let kept = image
        .into_iter()
        .filter(|b| b.device_name.as_ref().is_none_or(|d| !names.contains(d)));
    requested.into_iter().chain(kept).collect()
}
