//! The longer server operations: rebuild, resize (confirm/revert),
//! shelve/offload/unshelve, rescue/unrescue, password change, snapshot and
//! backup (images written to the image service), consoles, security
//! groups. Each admits through the action table, records an instance
//! action, and walks Nova's task states in the background.
//!
//! This module runs them (`run`) and owns the one-step operations
//! (unrescue, password change) and rescue; `rebuild`, `resize`,
//! `snapshot` (createImage, createBackup and the images they write) and
//! `shelve` own their families.

mod rebuild;
mod resize;
mod shelve;
mod snapshot;
mod volume_snapshot;

pub use resize::confirm_resize;
pub use shelve::start_offload;

use rebuild::rebuild;
use resize::{resize, revert_resize};
use shelve::{offload, shelve, unshelve};
pub(crate) use snapshot::finish_image;
use snapshot::{image_reply, snapshot};

use super::actions::{self, Logged};
use super::actions_run::{advance, begin, begin_with, Reply, ServerAction};
use super::driver::DriverOp;
use super::servers;
use super::views::Links;
use crate::app::App;
use crate::http::Ctx;
use crate::image::Image;
use rova_core::admission::Action;
use rova_core::model::Instance;
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use serde_json::json;
use std::sync::Arc;

/// Runs one of the operations above; `actions_run` handles the simple ones.
pub async fn run(
    app: &Arc<App>,
    ctx: &Ctx,
    links: &Links,
    id: &str,
    act: ServerAction,
) -> Result<Reply, Fault> {
    match act {
        ServerAction::Rebuild(r) => rebuild(app, ctx, links, id, *r).await,
        ServerAction::Resize {
            flavor_ref,
            auto_disk_config,
        } => {
            resize(app, ctx, id, &flavor_ref, auto_disk_config).await?;
            Ok(Reply::accepted())
        }
        ServerAction::ConfirmResize => {
            confirm_resize(app, ctx, id).await?;
            Ok(Reply::no_content())
        }
        ServerAction::RevertResize => {
            revert_resize(app, ctx, id).await?;
            Ok(Reply::accepted())
        }
        ServerAction::Shelve => {
            shelve(app, ctx, id).await?;
            Ok(Reply::accepted())
        }
        ServerAction::ShelveOffload => {
            ctx.require_admin("os_compute_api:os-shelve:shelve_offload")?;
            begin(
                app,
                ctx,
                id,
                Action::ShelveOffload,
                Some(T::ShelvingOffloading),
                Some(Logged::with(
                    "shelveOffload",
                    "compute_shelve_offload_instance",
                )),
            )
            .await?;
            let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
            tokio::spawn(async move {
                let res = offload(&app2, &id2).await;
                let e = res.as_ref().err().map(|e| e.pair());
                actions::event_finish(&app2, &id2, &req, "compute_shelve_offload_instance", e)
                    .await;
            });
            Ok(Reply::accepted())
        }
        ServerAction::Unshelve {
            availability_zone,
            host,
        } => {
            unshelve(app, ctx, id, availability_zone, host).await?;
            Ok(Reply::accepted())
        }
        ServerAction::Rescue {
            admin_pass,
            image_ref,
        } => {
            let pw = rescue(app, ctx, id, admin_pass, image_ref).await?;
            Ok(Reply::json(json!({"adminPass": pw})))
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
            Ok(Reply::accepted())
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
            Ok(Reply::accepted())
        }
        ServerAction::CreateImage { name, metadata } => {
            ctx.require_member("os_compute_api:servers:create_image")?;
            let img = snapshot(app, ctx, id, &name, metadata, None).await?;
            Ok(image_reply(app, ctx, &img, true))
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
            Ok(image_reply(app, ctx, &img, rotation > 0))
        }
        ServerAction::InjectNetworkInfo => {
            ctx.require_admin("os_compute_api:os-admin-actions:inject_network_info")?;
            let inst = servers::visible(app, ctx, id)?;
            servers::check_lock(&inst, ctx)?;
            Ok(Reply::accepted())
        }
        ServerAction::ResetNetwork => Err(Fault::new(410, "This resource is no longer available.")),
        ServerAction::LegacyConsole {
            protocol,
            console_type,
        } => {
            match crate::compute::consoles::type_matches(ctx, protocol, &console_type) {
                Some(true) => {}
                Some(false) => {
                    return Err(Fault::bad_request(format!(
                        "Invalid console type {console_type}"
                    )))
                }
                None => return Err(crate::compute::consoles::rdp_removed()),
            }
            let url =
                crate::compute::consoles::create(app, ctx, id, protocol, &console_type).await?;
            Ok(Reply::json(
                json!({"console": {"type": console_type, "url": url}}),
            ))
        }
        ServerAction::AddSecurityGroup { name } => {
            crate::compute::secgroups::add(app, ctx, id, &name).await?;
            Ok(Reply::accepted())
        }
        ServerAction::RemoveSecurityGroup { name } => {
            crate::compute::secgroups::remove(app, ctx, id, &name).await?;
            Ok(Reply::accepted())
        }
        ServerAction::Migrate { host } => {
            let cur = servers::visible(app, ctx, id)?;
            if host.is_some() {
                ctx.require_admin("os_compute_api:os-migrate-server:migrate:host")?;
            } else {
                crate::compute::migrate::require_manager(
                    ctx,
                    "os_compute_api:os-migrate-server:migrate",
                )?;
            }
            crate::compute::migrate::cold_move(app, ctx, &cur, None, host, None).await?;
            Ok(Reply::accepted())
        }
        ServerAction::LiveMigrate(r) => {
            crate::compute::live_migration::live_migrate(app, ctx, id, r).await?;
            Ok(Reply::accepted())
        }
        ServerAction::Evacuate(r) => crate::compute::migrate::evacuate(app, ctx, id, r).await,
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
    begin_with(
        app,
        ctx,
        id,
        action,
        Some(first),
        Some(Logged::with(op.name(), event)),
        |i, _| {
            start(i);
            Ok(())
        },
    )
    .await?;
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        let res = advance(&app2, &id2, op, first, then, |i, _| finish(i)).await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, event, e).await;
    });
    Ok(())
}

pub(super) fn image_for(app: &App, ctx: &Ctx, image_ref: &str) -> Result<Arc<Image>, Fault> {
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
    let pw = admin_pass
        .unwrap_or_else(|| crate::compute::build::generate_password(app.cfg.password_length));
    let pw2 = pw.clone();
    begin_with(
        app,
        ctx,
        id,
        Action::Rescue,
        Some(T::Rescuing),
        Some(Logged::with("rescue", "compute_rescue_instance")),
        move |i, _| {
            i.admin_pass = Some(pw2);
            Ok(())
        },
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
