//! createImage of a volume-backed server (Nova's `snapshot_volume_backed`):
//! no disk is uploaded; each attached volume gets a forced Cinder snapshot
//! and the new image is only properties, its `block_device_mapping`
//! naming those snapshots, so that a server booted from it gets volumes
//! made from them. The simulated driver needs no quiesce.

use crate::app::App;
use crate::compute::actions::{self, Logged};
use crate::compute::actions_run::begin;
use crate::compute::volumes::{attached, made};
use crate::http::Ctx;
use crate::image::Image;
use crate::volume::snapshot::NewSnapshot;
use rova_core::admission::Action;
use rova_core::model::{BlockDeviceMapping, Instance};
use rova_core::Fault;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The action's event (Nova wraps it as an API-side event).
const EVENT: &str = "api_snapshot_instance";

/// Image properties a snapshot does not inherit from what its server
/// booted from (Nova's `NON_INHERITABLE_IMAGE_PROPERTIES` and the keys
/// `snapshot_volume_backed` sets afresh).
const NOT_INHERITED: &[&str] = &[
    "cache_in_nova",
    "bittorrent",
    "img_signature",
    "img_signature_hash_method",
    "img_signature_certificate_uuid",
    "img_signature_key_type",
    "block_device_mapping",
    "bdm_v2",
    "root_device_name",
];

/// Snapshots server `id`'s volumes into a new active image of no bytes.
pub(super) async fn snapshot_volume_backed(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    name: &str,
    metadata: BTreeMap<String, String>,
) -> Result<Arc<Image>, Fault> {
    let log = Logged::with("createImage", EVENT);
    let inst = begin(app, ctx, id, Action::CreateImage, None, Some(log)).await?;
    let made = snapshot_volumes(app, ctx, &inst, name).await;
    let img = match made {
        Ok(mapping) => write_image(app, ctx, &inst, name, metadata, mapping).await,
        Err(f) => Err(f),
    };
    let why = img
        .as_ref()
        .err()
        .map(|f| (f.message.as_str(), "the volume snapshots could not be made"));
    actions::event_finish(app, id, &ctx.request_id, EVENT, why).await;
    img
}

/// A forced snapshot of each of the server's volumes, in its mapping
/// order, waited for until available; the image's mappings naming them.
async fn snapshot_volumes(
    app: &Arc<App>,
    ctx: &Ctx,
    inst: &Instance,
    name: &str,
) -> Result<Vec<Value>, Fault> {
    let mut mapping = Vec::new();
    for b in attached(inst) {
        let vol_id = b.uuid.clone().unwrap_or_default();
        let vol = app
            .volumes
            .table
            .get(&vol_id)
            .ok_or_else(|| crate::volume::not_found(&vol_id))?;
        let req = NewSnapshot {
            name: Some(format!("snapshot for {name}")),
            description: vol.description.clone(),
            metadata: BTreeMap::new(),
            allow_in_use: true,
        };
        let snap = app
            .volumes
            .create_snapshot(app.clock.now(), &ctx.project_id, &ctx.user_id, &vol_id, req)
            .await?;
        // A server booted from the image right away needs it available
        // (Nova does not wait; the simulated backend copies a file).
        made("snapshot", &snap.id, || {
            app.volumes
                .snapshots
                .get(&snap.id)
                .map(|s| s.status.clone())
        })
        .await?;
        mapping.push(image_mapping(b, &snap.id, vol.size));
    }
    Ok(mapping)
}

/// The image's mapping for a volume mapping `b` snapshotted as
/// `snapshot_id` (Nova's `snapshot_from_bdm`, as an image mapping).
fn image_mapping(b: &BlockDeviceMapping, snapshot_id: &str, size: u64) -> Value {
    json!({
        "source_type": "snapshot",
        "destination_type": "volume",
        "snapshot_id": snapshot_id,
        "volume_id": null,
        "image_id": null,
        "boot_index": b.boot_index,
        "device_name": b.device_name,
        "delete_on_termination": b.delete_on_termination,
        "volume_size": b.volume_size.unwrap_or(size),
        "disk_bus": b.disk_bus,
        "device_type": b.device_type,
        "guest_format": null,
        "no_device": null,
        "tag": null,
        "volume_type": b.volume_type,
    })
}

/// The new image: the server's boot image properties (less those not
/// inherited), the request's metadata, the mappings, `bdm_v2` and the
/// root device; size 0, `raw`/`bare` (what Nova's zero-byte activation
/// sets once `snapshot_volume_backed` dropped the formats), active.
async fn write_image(
    app: &App,
    ctx: &Ctx,
    inst: &Instance,
    name: &str,
    metadata: BTreeMap<String, String>,
    mapping: Vec<Value>,
) -> Result<Arc<Image>, Fault> {
    let mut properties: BTreeMap<String, Value> = inst
        .image_properties
        .iter()
        .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let visibility = if ctx.project_id == inst.project_id {
        "private"
    } else {
        properties.insert("instance_owner".into(), json!(inst.project_id));
        "shared"
    };
    for (k, v) in metadata {
        properties.insert(k, json!(v));
    }
    let root = inst.root_device_name.as_deref().unwrap_or("/dev/vda");
    properties.insert("root_device_name".into(), json!(root));
    if !mapping.is_empty() {
        // Glance keeps string properties: the list as its JSON text.
        properties.insert(
            "block_device_mapping".into(),
            json!(Value::Array(mapping).to_string()),
        );
        properties.insert("bdm_v2".into(), json!("True"));
    }
    let img = Image {
        name: Some(name.to_string()),
        container_format: Some("bare".into()),
        disk_format: Some("raw".into()),
        properties,
        ..Image::queued(&ctx.project_id, visibility, app.clock.now())
    };
    app.images.create(img, Some(b"")).await
}
