//! Rebuild: a server rebuilt from an image (or its own) with a new name,
//! metadata, password, personality, key and user data, per microversion.
//! A volume-backed server keeps its root volume: below 2.93 only with the
//! image in that volume, from 2.93 the volume is re-imaged first (the
//! guest stopped, the volume rewritten from the image).

use super::image_for;
use crate::app::App;
use crate::compute::actions::{self, Logged};
use crate::compute::actions_run::{advance, begin_with, Reply};
use crate::compute::driver::{DriverFault, DriverOp};
use crate::compute::servers;
use crate::compute::views::{self, Links, ServerView};
use crate::http::Ctx;
use crate::image::Image;
use rova_core::admission::Action;
use rova_core::model::Instance;
use rova_core::states::{PowerState, TaskState as T, VmState};
use rova_core::Fault;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) async fn rebuild(
    app: &Arc<App>,
    ctx: &Ctx,
    links: &Links,
    id: &str,
    r: crate::compute::actions_parse::Rebuild,
) -> Result<Reply, Fault> {
    ctx.require_member("os_compute_api:servers:rebuild")?;
    let cur = servers::visible(app, ctx, id)?;
    let img = image_for(app, ctx, &r.image_ref)?;
    let volume_backed = cur.is_volume_backed();
    // A volume-backed server's image is the one in its root volume.
    let orig_image = match volume_backed {
        true => root_volume_image(app, &cur),
        false => cur.image_ref.clone(),
    };
    if volume_backed && !ctx.at_least(93) && orig_image != r.image_ref {
        return Err(Fault::bad_request(format!(
            "Image {} is unacceptable: Unable to rebuild with a different image for a volume-backed server.",
            r.image_ref
        )));
    }
    // Nova's check of a mapped root volume's size against the image
    // (one whose size the mapping gives).
    let root_gb = cur.root_volume_mapping().and_then(|b| b.volume_size);
    if let Some(gb) = root_gb.filter(|gb| volume_backed && img.min_disk > *gb) {
        return Err(Fault::bad_request(format!(
            "Volume is smaller than the minimum size specified in image metadata. \
             Volume size is {} bytes, minimum size is {} bytes.",
            gb << 30,
            img.min_disk << 30
        )));
    }
    // From 2.93 the root volume is re-imaged, whichever the image.
    let reimage = (volume_backed && ctx.at_least(93)).then(|| img.clone());
    if cur.flavor.ram < img.min_ram {
        return Err(Fault::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    let key = match &r.key_name {
        Some(Some(k)) => Some(Some(
            app.compute
                .keypairs
                .get(&crate::compute::Keypair::key(&ctx.user_id, k))
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
        .unwrap_or_else(|| crate::compute::build::generate_password(app.cfg.password_length));
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
        Some(Logged::with("rebuild", "compute_rebuild_instance")),
        move |i, _| {
            // An empty image marks a server booted from a volume: Nova
            // keeps a volume-backed server's image as it was.
            if !volume_backed {
                i.image_ref = r.image_ref.clone();
            }
            i.kernel_id = props.get("kernel_id").cloned().unwrap_or_default();
            i.ramdisk_id = props.get("ramdisk_id").cloned().unwrap_or_default();
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
    let (app2, id2, req) = (app.clone(), id.to_string(), ctx.request_id.clone());
    tokio::spawn(async move {
        if let Some(img) = reimage {
            if let Err(e) = reimage_root(&app2, &id2, &img).await {
                let e = Some((e.message.as_str(), e.details.as_str()));
                actions::event_finish(&app2, &id2, &req, "compute_rebuild_instance", e).await;
                return;
            }
        }
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
    let inst = app.compute.with_tags(inst);
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
    Ok(Reply::accepted_json(json!({"server": body}))
        .at(format!("{}/servers/{id}", links.versioned)))
}

/// The image a volume-backed server's root volume was made from (its
/// `volume_image_metadata`), or "".
fn root_volume_image(app: &App, inst: &Instance) -> String {
    inst.root_volume_mapping()
        .and_then(|b| b.uuid.as_deref())
        .and_then(|v| app.volumes.table.get(v))
        .and_then(|v| v.image_metadata.get("image_id").cloned())
        .unwrap_or_default()
}

/// Re-images a volume-backed server's root volume from `img` (Nova's
/// `_rebuild_volume_backed_instance` through Cinder's reimage), the guest
/// stopped first so that it lets go of the volume. A failure leaves the
/// server in ERROR with the fault, as Nova's aborted rebuild does.
async fn reimage_root(app: &Arc<App>, id: &str, img: &Image) -> Result<(), DriverFault> {
    let inst = app
        .compute
        .instances
        .get(id)
        .ok_or_else(|| DriverFault::new("superseded", "the server was deleted"))?;
    let res = async {
        let vol = inst
            .root_volume_mapping()
            .and_then(|b| b.uuid.clone())
            .ok_or_else(|| {
                DriverFault::new(
                    "Failed to rebuild volume backed instance.",
                    "Unable to find root block device mapping for volume-backed instance.",
                )
            })?;
        app.compute
            .driver_for(inst.host.as_deref())
            .perform(&DriverOp::Stop, &inst)
            .await?;
        let file = app.images.file_path(&img.id);
        app.volumes
            .reimage(&vol, img, file, app.clock.now())
            .await
            .map_err(|f| DriverFault::new("Failed to rebuild volume backed instance.", f.message))
    }
    .await;
    if let Err(f) = &res {
        let now = app.clock.now();
        let _ = app
            .compute
            .update_instance(id, now, |i| {
                if i.deleted || i.task_state != Some(T::Rebuilding) {
                    return Err(Fault::conflict("superseded"));
                }
                i.task_state = None;
                i.vm_state = VmState::Error;
                i.system_metadata.remove("rebuild_from_vm_state");
                i.fault = Some(f.instance_fault(now));
                Ok(())
            })
            .await;
    }
    res
}
