//! The longer server operations: rebuild, resize (confirm/revert),
//! shelve/offload/unshelve, rescue/unrescue, password change, snapshot and
//! backup (images written to the image service), consoles, security
//! groups. Each admits through the action table, records an instance
//! action, and walks Nova's task states in the background.

use super::actions;
use super::actions_run::{advance, begin, begin_with, subject, ServerAction, StepError};
use super::driver::DriverOp;
use super::servers;
use super::views::{self, Links, ServerView};
use crate::app::App;
use crate::http::{empty, json_status, set_header, Ctx};
use crate::image::Image;
use axum::http::StatusCode;
use axum::response::Response;
use rova_core::admission::{admit, Action};
use rova_core::model::{FlavorSnapshot, Instance};
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs one of the operations above; `actions_run` handles the simple ones.
pub async fn run(
    app: &Arc<App>,
    ctx: &Ctx,
    links: &Links,
    id: &str,
    act: ServerAction,
) -> Result<Response, Fault> {
    match act {
        ServerAction::Rebuild(r) => rebuild(app, ctx, links, id, *r).await,
        ServerAction::Resize {
            flavor_ref,
            auto_disk_config,
        } => {
            resize(app, ctx, id, &flavor_ref, auto_disk_config).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::ConfirmResize => {
            confirm_resize(app, ctx, id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ServerAction::RevertResize => {
            revert_resize(app, ctx, id).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::Shelve => {
            shelve(app, ctx, id).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::ShelveOffload => {
            ctx.require_admin("os_compute_api:os-shelve:shelve_offload")?;
            let inst = begin(
                app,
                ctx,
                id,
                Action::ShelveOffload,
                Some(T::ShelvingOffloading),
            )
            .await?;
            actions::record(
                app,
                ctx,
                id,
                "shelveOffload",
                Some(("compute_shelve_offload_instance", inst.host.as_deref())),
            )
            .await?;
            let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
            tokio::spawn(async move {
                let res = offload(&app2, &id2).await;
                let e = res.as_ref().err().map(|e| e.pair());
                actions::event_finish(&app2, &id2, &req, "compute_shelve_offload_instance", e)
                    .await;
            });
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::Unshelve {
            availability_zone,
            host,
        } => {
            unshelve(app, ctx, id, availability_zone, host).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::Rescue {
            admin_pass,
            image_ref,
        } => {
            let pw = rescue(app, ctx, id, admin_pass, image_ref).await?;
            Ok(json_status(StatusCode::OK, json!({"adminPass": pw})))
        }
        ServerAction::Unrescue => {
            ctx.require_member("os_compute_api:os-rescue:unrescue")?;
            simple(
                app,
                ctx,
                id,
                Action::Unrescue,
                DriverOp::Unrescue,
                "compute_unrescue_instance",
                T::Unrescuing,
                &[],
                |i| {
                    i.vm_state = VmState::Active;
                    i.power_state = PowerState::Running;
                },
            )
            .await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::ChangePassword { admin_pass } => {
            ctx.require_member("os_compute_api:os-admin-password")?;
            // The password rides on the record while the driver sets it,
            // and is dropped when the task ends.
            simple_with(
                app,
                ctx,
                id,
                (
                    Action::ChangePassword,
                    DriverOp::ChangePassword,
                    "compute_set_admin_password",
                ),
                T::UpdatingPassword,
                &[],
                move |i| i.admin_pass = Some(admin_pass),
                |_| {},
            )
            .await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::CreateImage { name, metadata } => {
            ctx.require_member("os_compute_api:servers:create_image")?;
            let img = snapshot(app, ctx, id, &name, metadata, None).await?;
            Ok(image_response(app, ctx, &img, true))
        }
        ServerAction::CreateBackup {
            name,
            backup_type,
            rotation,
            metadata,
        } => {
            ctx.require_member("os_compute_api:os-create-backup")?;
            let img =
                snapshot(app, ctx, id, &name, metadata, Some((backup_type, rotation))).await?;
            Ok(image_response(app, ctx, &img, rotation > 0))
        }
        ServerAction::InjectNetworkInfo => {
            ctx.require_admin("os_compute_api:os-admin-actions:inject_network_info")?;
            let inst = servers::visible(app, ctx, id)?;
            servers::check_lock(&inst, ctx)?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::ResetNetwork => Err(Fault::new(410, "This resource is no longer available.")),
        ServerAction::LegacyConsole {
            protocol,
            console_type,
        } => {
            match super::consoles::type_matches(ctx, protocol, &console_type) {
                Some(true) => {}
                Some(false) => {
                    return Err(Fault::bad_request(format!(
                        "Invalid console type {console_type}"
                    )))
                }
                None => return Err(super::consoles::rdp_removed()),
            }
            let url = super::consoles::create(app, ctx, id, protocol, &console_type).await?;
            Ok(json_status(
                StatusCode::OK,
                json!({"console": {"type": console_type, "url": url}}),
            ))
        }
        ServerAction::AddSecurityGroup { name } => {
            super::secgroups::add(app, ctx, id, &name).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::RemoveSecurityGroup { name } => {
            super::secgroups::remove(app, ctx, id, &name).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::Migrate { host } => {
            let cur = servers::visible(app, ctx, id)?;
            if host.is_some() {
                ctx.require_admin("os_compute_api:os-migrate-server:migrate:host")?;
            } else {
                super::migrate::require_manager(ctx, "os_compute_api:os-migrate-server:migrate")?;
            }
            super::migrate::cold_move(app, ctx, &cur, None, host, None).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::LiveMigrate(r) => {
            super::live_migration::live_migrate(app, ctx, id, r).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ServerAction::Evacuate(r) => super::migrate::evacuate(app, ctx, id, r).await,
        other => Err(Fault::internal(format!("action {other:?} has no runner"))),
    }
}

/// A simple operation: one task state, then `finish`.
#[allow(clippy::too_many_arguments)]
async fn simple(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    action: Action,
    op: DriverOp,
    event: &'static str,
    first: T,
    then: &'static [T],
    finish: impl FnOnce(&mut Instance) + Send + 'static,
) -> Result<(), Fault> {
    simple_with(
        app,
        ctx,
        id,
        (action, op, event),
        first,
        then,
        |_| {},
        finish,
    )
    .await
}

/// [`simple`], also applying `start` in the write that admits the action.
#[allow(clippy::too_many_arguments)]
async fn simple_with(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    (action, op, event): (Action, DriverOp, &'static str),
    first: T,
    then: &'static [T],
    start: impl FnOnce(&mut Instance),
    finish: impl FnOnce(&mut Instance) + Send + 'static,
) -> Result<(), Fault> {
    let inst = begin_with(app, ctx, id, action, Some(first), |i, _| {
        start(i);
        Ok(())
    })
    .await?;
    actions::record(app, ctx, id, op.name(), Some((event, inst.host.as_deref()))).await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let res = advance(&app2, &id2, op, first, then, |i, _| finish(i)).await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, event, e).await;
    });
    Ok(())
}

fn image_for(app: &App, ctx: &Ctx, image_ref: &str) -> Result<Arc<Image>, Fault> {
    let img = app
        .images
        .visible(image_ref, &ctx.project_id, ctx.is_admin())
        .ok_or_else(|| Fault::bad_request(format!("Image {image_ref} could not be found.")))?;
    if img.status != "active" {
        return Err(Fault::bad_request(format!(
            "Image {image_ref} is not active."
        )));
    }
    Ok(img)
}

async fn rebuild(
    app: &Arc<App>,
    ctx: &Ctx,
    links: &Links,
    id: &str,
    r: super::actions_parse::Rebuild,
) -> Result<Response, Fault> {
    ctx.require_member("os_compute_api:servers:rebuild")?;
    let cur = servers::visible(app, ctx, id)?;
    let img = image_for(app, ctx, &r.image_ref)?;
    if cur.is_volume_backed() && !ctx.at_least(93) && cur.image_ref != r.image_ref {
        return Err(Fault::bad_request(format!(
            "Image {} is unacceptable: Unable to rebuild with a different image for a volume-backed server.",
            r.image_ref
        )));
    }
    if cur.flavor.ram < img.min_ram {
        return Err(Fault::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    let key = match &r.key_name {
        Some(Some(k)) => Some(Some(
            app.compute
                .keypairs
                .get(&super::Keypair::key(&ctx.user_id, k))
                .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(md) = &r.metadata {
        let limit = app.compute.effective_quota(&cur.project_id).metadata_items;
        if limit >= 0 && md.len() as i64 > limit {
            return Err(Fault::forbidden(format!(
                "Maximum number of metadata items exceeds {limit}"
            )));
        }
    }
    let admin_pass = r
        .admin_pass
        .clone()
        .unwrap_or_else(|| super::build::generate_password(app.cfg.password_length));
    let props: BTreeMap<String, String> = img
        .properties
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let pw = admin_pass.clone();
    let inst = begin_with(
        app,
        ctx,
        id,
        Action::Rebuild,
        Some(T::Rebuilding),
        move |i, _| {
            i.image_ref = r.image_ref.clone();
            i.image_properties = props;
            if let Some(n) = r.name {
                i.display_name = n;
            }
            if let Some(md) = r.metadata {
                i.metadata = md;
            }
            if let Some(p) = r.personality {
                i.personality = p;
            }
            if let Some(v) = r.auto_disk_config {
                i.auto_disk_config = v;
            }
            if let Some(v) = r.access_ip_v4 {
                i.access_ip_v4 = Some(v);
            }
            if let Some(v) = r.access_ip_v6 {
                i.access_ip_v6 = Some(v);
            }
            if let Some(d) = r.description {
                i.display_description = d;
            }
            if let Some(k) = key {
                i.key_name = k.as_ref().map(|k| k.name.clone());
                i.key_data = k.as_ref().map(|k| k.public_key.clone());
            }
            if let Some(u) = r.user_data {
                i.user_data = u;
            }
            if let Some(t) = r.trusted_image_certificates {
                i.trusted_image_certificates = t;
            }
            if let Some(h) = r.hostname {
                i.hostname = h;
            }
            i.system_metadata.insert(
                "rebuild_from_vm_state".into(),
                i.vm_state.as_str().to_string(),
            );
            i.admin_pass = Some(pw);
            i.progress = 0;
            Ok(())
        },
    )
    .await?;
    actions::record(
        app,
        ctx,
        id,
        "rebuild",
        Some(("compute_rebuild_instance", inst.host.as_deref())),
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let res = advance(
            &app2,
            &id2,
            DriverOp::Rebuild,
            T::Rebuilding,
            &[T::RebuildBlockDeviceMapping, T::RebuildSpawning],
            |i, now| {
                let was = i.system_metadata.remove("rebuild_from_vm_state");
                if was.as_deref() == Some("stopped") {
                    i.vm_state = VmState::Stopped;
                    i.power_state = PowerState::Shutdown;
                } else {
                    i.vm_state = VmState::Active;
                    i.power_state = PowerState::Running;
                }
                i.launched_at = Some(now);
            },
        )
        .await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_rebuild_instance", e).await;
    });
    let view = if ctx.at_least(75) {
        ServerView::Show
    } else {
        ServerView::Reduced
    };
    let mut body = views::server(
        &inst,
        ctx,
        links,
        view,
        app.compute.fleet.host_status(inst.host.as_deref()),
    );
    // Nova's rebuild view leaves out the admin-only user_data attribute;
    // the plain `user_data` below (2.57+) carries it instead.
    if let Some(o) = body.as_object_mut() {
        o.remove("OS-EXT-SRV-ATTR:user_data");
    }
    body["adminPass"] = json!(admin_pass);
    if ctx.at_least(57) {
        body["user_data"] = json!(inst.user_data);
    }
    if ctx.at_least(54) && view == ServerView::Reduced {
        body["key_name"] = json!(inst.key_name);
    }
    let mut resp = json_status(StatusCode::ACCEPTED, json!({"server": body}));
    set_header(
        &mut resp,
        "location",
        &format!("{}/servers/{id}", links.versioned),
    );
    Ok(resp)
}

fn snapshot_of(f: &super::Flavor) -> FlavorSnapshot {
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

async fn resize(
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
    super::migrate::cold_move(app, ctx, &cur, Some(snapshot_of(&flavor)), None, disk).await
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
    super::migrate::confirmed(app, id).await;
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

async fn revert_resize(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
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
    let back = super::migrate::begin_revert(app, id).await;
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
        super::migrate::end_revert(&app2, &id2, back, res.is_ok()).await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_revert_resize", e).await;
    });
    Ok(())
}

/// Creates the image record a snapshot/backup/shelve writes into.
async fn new_snapshot_image(
    app: &App,
    inst: &Instance,
    name: &str,
    image_type: &str,
    extra: BTreeMap<String, String>,
) -> Result<Arc<Image>, Fault> {
    let now = app.clock.now();
    let base = app.images.table.get(&inst.image_ref);
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
    let Some(cur) = app.images.table.get(image_id) else {
        return;
    };
    if !app.compute.driver.is_simulated() {
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
    let mut img = (*cur).clone();
    if app.images.write_bytes(&mut img, &bytes).is_ok() {
        img.updated_at = chrono::Utc::now();
        let _ = app.images.table.put(image_id, img).await;
    }
}

/// The end of an operation that wrote an image: filled when it succeeded;
/// deleted when it failed (Nova's `delete_image_on_error`).
async fn settle_image(app: &App, image_id: &str, inst_uuid: &str, ok: bool) {
    if ok {
        finish_image(app, image_id, inst_uuid).await;
    } else {
        let _ = app.images.delete(image_id).await;
    }
}

async fn snapshot(
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
    let (action, first, then, record, event): (Action, T, &'static [T], &str, &'static str) =
        if backup.is_some() {
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
    let inst = begin(app, ctx, id, action, Some(first)).await?;
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
            return Err(e);
        }
    };
    actions::record(app, ctx, id, record, Some((event, inst.host.as_deref()))).await?;
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
    let mut backups = app.images.table.filter(|i| {
        i.properties.get("instance_uuid").and_then(Value::as_str) == Some(uuid)
            && i.properties.get("image_type").and_then(Value::as_str) == Some("backup")
            && i.properties.get("backup_type").and_then(Value::as_str) == Some(backup_type)
    });
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    for old in backups.iter().skip(rotation as usize) {
        let _ = app.images.delete(&old.id).await;
    }
}

fn image_response(app: &App, ctx: &Ctx, img: &Image, with_location: bool) -> Response {
    if ctx.at_least(45) {
        return json_status(StatusCode::ACCEPTED, json!({"image_id": img.id}));
    }
    let mut resp = empty(StatusCode::ACCEPTED);
    if with_location {
        set_header(
            &mut resp,
            "location",
            &format!("{}/image/v2/images/{}", app.public_url, img.id),
        );
    }
    resp
}

async fn shelve(app: &Arc<App>, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-shelve:shelve")?;
    let inst = begin(app, ctx, id, Action::Shelve, Some(T::Shelving)).await?;
    actions::record(
        app,
        ctx,
        id,
        "shelve",
        Some(("compute_shelve_instance", inst.host.as_deref())),
    )
    .await?;
    let image = if inst.is_volume_backed() {
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
        if res.is_ok() && app2.cfg.shelved_offload_time == 0 {
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

async fn offload(app: &Arc<App>, id: &str) -> Result<(), StepError> {
    let Some(inst) = app.compute.instances.get(id) else {
        return Err(StepError::superseded());
    };
    let _ = app.compute.driver.destroy(&inst).await;
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
        super::scheduler::release_instance(app, id);
    }
    res
}

async fn unshelve(
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
        |i, _| {
            if let Some(z) = az {
                i.pinned_availability_zone = z;
            }
            Ok(())
        },
    )
    .await?;
    actions::record(
        app,
        ctx,
        id,
        "unshelve",
        Some(("compute_unshelve_instance", inst.host.as_deref())),
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
                let mut spec = super::scheduler::request_spec(&app2, &inst, &inst.flavor);
                spec.requested_host = host;
                match super::scheduler::claim(&app2, &id2, &spec) {
                    Ok(p) => (p.host, p.availability_zone),
                    Err(nvh) => {
                        let msg = nvh.message();
                        super::migrate::fail_move(&app2, &id2, T::Unshelving, None, msg).await;
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
            super::scheduler::release_instance(&app2, &id2);
        }
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_unshelve_instance", e).await;
    });
    Ok(())
}

async fn rescue(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    admin_pass: Option<String>,
    image_ref: Option<String>,
) -> Result<String, Fault> {
    ctx.require_member("os_compute_api:os-rescue")?;
    let cur = servers::visible(app, ctx, id)?;
    if cur.is_volume_backed() && !ctx.at_least(87) {
        return Err(Fault::bad_request("Cannot rescue a volume-backed instance"));
    }
    if let Some(img) = &image_ref {
        image_for(app, ctx, img)?;
    }
    let rescue_image = image_ref.clone();
    let pw = admin_pass.unwrap_or_else(|| super::build::generate_password(app.cfg.password_length));
    let pw2 = pw.clone();
    let inst = begin_with(
        app,
        ctx,
        id,
        Action::Rescue,
        Some(T::Rescuing),
        move |i, _| {
            i.admin_pass = Some(pw2);
            Ok(())
        },
    )
    .await?;
    actions::record(
        app,
        ctx,
        id,
        "rescue",
        Some(("compute_rescue_instance", inst.host.as_deref())),
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let op = DriverOp::Rescue {
            image_id: rescue_image,
        };
        let res = advance(&app2, &id2, op, T::Rescuing, &[], |i, now| {
            i.system_metadata
                .insert("rescued_at".into(), now.to_rfc3339());
            i.vm_state = VmState::Rescued;
            i.power_state = PowerState::Running;
        })
        .await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, "compute_rescue_instance", e).await;
    });
    Ok(pw)
}
