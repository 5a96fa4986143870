//! createImage and createBackup: the image record a snapshot, backup or
//! shelve writes into, filling it (or deleting it on failure), backup
//! rotation, and the answer naming the new image.

use crate::app::App;
use crate::compute::actions::{self, Logged};
use crate::compute::actions_run::{advance, begin, Reply};
use crate::compute::driver::DriverOp;
use crate::compute::servers;
use crate::http::Ctx;
use crate::image::Image;
use rova_core::admission::Action;
use rova_core::model::Instance;
use rova_core::states::TaskState as T;
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Creates the image record a snapshot/backup/shelve writes into.
pub(super) async fn new_snapshot_image(
    app: &App,
    inst: &Instance,
    name: &str,
    image_type: &str,
    extra: BTreeMap<String, String>,
) -> Result<Arc<Image>, Fault> {
    let now = app.clock.now();
    let base = app.images.get(&inst.image_ref);
    let mut properties: BTreeMap<String, Value> = base
        .as_ref()
        .map(|b| b.properties.clone())
        .unwrap_or_default();
    properties.insert("image_type".into(), json!(image_type));
    properties.insert("instance_uuid".into(), json!(inst.uuid));
    properties.insert("base_image_ref".into(), json!(inst.image_ref));
    properties.insert("user_id".into(), json!(inst.user_id));
    properties.insert("owner_user_name".into(), json!(""));
    for (k, v) in extra {
        properties.insert(k, json!(v));
    }
    let img = Image {
        name: Some(name.to_string()),
        container_format: base
            .as_ref()
            .and_then(|b| b.container_format.clone())
            .or(Some("bare".into())),
        disk_format: base
            .as_ref()
            .and_then(|b| b.disk_format.clone())
            .or(Some("qcow2".into())),
        min_disk: inst.flavor.disk,
        min_ram: base.as_ref().map(|b| b.min_ram).unwrap_or(0),
        properties,
        ..Image::queued(&inst.project_id, "private", now)
    };
    app.images.create(img, None).await
}

/// Marks a snapshot image uploaded (the simulated disk is the base image's
/// bytes plus a marker naming the server).
pub(crate) async fn finish_image(app: &App, image_id: &str, inst_uuid: &str) {
    let Some(cur) = app.images.get(image_id) else {
        return;
    };
    let host = app
        .compute
        .instances
        .get(inst_uuid)
        .and_then(|i| i.host.clone());
    if !app.compute.driver_for(host.as_deref()).is_simulated() {
        // A real driver uploaded the disk itself; an image it could not
        // fill is useless and goes away (as Glance's would on failure).
        if cur.status != "active" {
            let _ = app.images.delete(image_id).await;
        }
        return;
    }
    let base = cur
        .properties
        .get("base_image_ref")
        .and_then(Value::as_str)
        .and_then(|b| std::fs::read(app.images.file_path(b)).ok())
        .unwrap_or_default();
    let mut bytes = base;
    bytes.extend_from_slice(format!("snapshot of {inst_uuid}\n").as_bytes());
    let mut filled = (*cur).clone();
    if app.images.write_bytes(&mut filled, &bytes).is_ok() {
        let _ = app.images.fill(image_id, &filled).await;
    }
}

/// The end of an operation that wrote an image: filled when it succeeded;
/// deleted when it failed (Nova's `delete_image_on_error`).
pub(super) async fn settle_image(app: &App, image_id: &str, inst_uuid: &str, ok: bool) {
    if ok {
        finish_image(app, image_id, inst_uuid).await;
    } else {
        let _ = app.images.delete(image_id).await;
    }
}

pub(super) async fn snapshot(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    name: &str,
    metadata: BTreeMap<String, String>,
    backup: Option<(String, u64)>,
) -> Result<Arc<Image>, Fault> {
    let cur = servers::visible(app, ctx, id)?;
    let limit = app.compute.effective_quota(&cur.project_id).metadata_items;
    if !ctx.at_least(39) && limit >= 0 && metadata.len() as i64 > limit {
        // Nova's check_img_metadata_properties_quota (below 2.39).
        return Err(Fault::forbidden("Image metadata limit exceeded"));
    }
    if backup.is_some() && cur.is_volume_backed() {
        return Err(Fault::bad_request(
            "Backup is not supported for volume-backed instances",
        ));
    }
    if backup.is_none() && cur.is_volume_backed() {
        return super::volume_snapshot::snapshot_volume_backed(app, ctx, id, name, metadata).await;
    }
    let (action, first, then, record, event): (
        Action,
        T,
        &'static [T],
        &'static str,
        &'static str,
    ) = if backup.is_some() {
        (
            Action::CreateBackup,
            T::ImageBackup,
            &[],
            "createBackup",
            "compute_backup_instance",
        )
    } else {
        (
            Action::CreateImage,
            T::ImageSnapshotPending,
            &[T::ImageSnapshot, T::ImagePendingUpload, T::ImageUploading],
            "createImage",
            "compute_snapshot_instance",
        )
    };
    let inst = begin(
        app,
        ctx,
        id,
        action,
        Some(first),
        Some(Logged::with(record, event)),
    )
    .await?;
    let mut extra = metadata;
    let image_type = match &backup {
        Some((t, _)) => {
            extra.insert("backup_type".into(), t.clone());
            "backup"
        }
        None => "snapshot",
    };
    let img = match new_snapshot_image(app, &inst, name, image_type, extra).await {
        Ok(img) => img,
        Err(e) => {
            let _ = app
                .compute
                .update_instance(id, app.clock.now(), |i| {
                    i.task_state = None;
                    Ok(())
                })
                .await;
            let why = (e.message.as_str(), "the snapshot image could not be made");
            actions::event_finish(app, id, &ctx.request_id, event, Some(why)).await;
            return Err(e);
        }
    };
    let (app2, id2, req, image_id) = (
        app.clone(),
        id.to_string(),
        ctx.request_id.clone(),
        img.id.clone(),
    );
    tokio::spawn(async move {
        let image_id2 = image_id.clone();
        let op = if backup.is_some() {
            DriverOp::CreateBackup {
                image_id: image_id2,
            }
        } else {
            DriverOp::CreateImage {
                image_id: image_id2,
            }
        };
        let res = advance(&app2, &id2, op, first, then, |_, _| {}).await;
        settle_image(&app2, &image_id, &id2, res.is_ok()).await;
        if let Some((btype, rotation)) = backup {
            rotate_backups(&app2, &id2, &btype, rotation).await;
        }
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, event, e).await;
    });
    Ok(img)
}

/// Keeps the newest `rotation` backups of one type for a server.
async fn rotate_backups(app: &App, uuid: &str, backup_type: &str, rotation: u64) {
    let mut backups = app.images.filter(|i| {
        i.properties.get("instance_uuid").and_then(Value::as_str) == Some(uuid)
            && i.properties.get("image_type").and_then(Value::as_str) == Some("backup")
            && i.properties.get("backup_type").and_then(Value::as_str) == Some(backup_type)
    });
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    for old in backups.iter().skip(rotation as usize) {
        let _ = app.images.delete(&old.id).await;
    }
}

/// The answer naming the new image: its id in the body from 2.45, before
/// that its image-service URL as `Location` (when Nova sends one).
pub(super) fn image_reply(app: &App, ctx: &Ctx, img: &Image, with_location: bool) -> Reply {
    if ctx.at_least(45) {
        return Reply::accepted_json(json!({"image_id": img.id}));
    }
    let reply = Reply::accepted();
    if with_location {
        reply.at(format!("{}/image/v2/images/{}", app.public_url, img.id))
    } else {
        reply
    }
}
