//! Uploading a volume to an image (Cinder's `os-volume_upload_image`).
//!
//! Steps, each one write:
//! 1. the volume goes from `available` to `uploading` in one
//!    compare-and-swap that also records the image being made
//!    ([`Volume::upload_image`]); a volume in another status is refused
//!    with Cinder's 400 and nothing is written;
//! 2. the image is added `queued`, with the name and formats asked for and
//!    the volume's image properties Cinder carries over (not Glance's core
//!    ones); if that fails, step 1 is undone;
//! 3. in a task: the image goes `saving`, the backend writes the volume's
//!    disk contents in the requested disk format beside the image store,
//!    and the image takes them and becomes `active`;
//! 4. the volume goes back to `in-use` or `available`, by its attachments
//!    (Cinder's `volume_update_status_based_on_attachment`).
//!
//! A failed step 3 deletes the image (as Cinder deletes one left queued or
//! saving) and still ends with step 4. A process that died after step 1
//! leaves `uploading` and the image id in the row: the next start ends it
//! the same way ([`settle`]).

use super::{invalid_volume, not_found, Volume, Volumes};
use crate::app::App;
use crate::image::Image;
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const GIB: u64 = 1 << 30;

/// The volume status an upload starts from (Cinder's, with
/// `enable_force_upload` off: `force` is ignored).
const UPLOADABLE: &str = "available";

/// What the new image is to be.
#[derive(Debug, Clone)]
pub struct Upload {
    pub image_name: String,
    /// One of Cinder's upload disk formats (`raw`, `qcow2`, …).
    pub disk_format: String,
    pub container_format: String,
    /// `private` unless the request (3.1+) said otherwise.
    pub visibility: String,
    pub protected: bool,
}

/// Glance's core properties (Cinder's `glance_core_properties`): an
/// uploaded image does not take these from the volume's image metadata.
const CORE_PROPERTIES: &[&str] = &[
    "checksum",
    "container_format",
    "disk_format",
    "image_name",
    "image_id",
    "min_disk",
    "min_ram",
    "name",
    "size",
];

/// The volume's image properties an uploaded image carries (Cinder's
/// `_merge_volume_image_meta`, with Glance's reserved `os_glance`
/// namespace left out).
pub fn inherited(image_metadata: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    image_metadata
        .iter()
        .filter(|(k, _)| !CORE_PROPERTIES.contains(&k.as_str()) && !k.starts_with("os_glance"))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// The status a volume goes back to after an upload: `in-use` while it
/// has attachments, else `available`.
fn after_upload(v: &Volume) -> &'static str {
    if v.attachments.is_empty() {
        "available"
    } else {
        "in-use"
    }
}

impl Volumes {
    /// Step 1: `available` → `uploading`, recording image `image_id`.
    async fn begin_upload(
        &self,
        id: &str,
        image_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Volume>, Fault> {
        let (v, ()) = self
            .table
            .update(
                id,
                || not_found(id),
                |v| {
                    if v.status != UPLOADABLE {
                        return Err(invalid_volume(format!(
                            "Volume {id} status must be {UPLOADABLE}"
                        )));
                    }
                    v.status = "uploading".into();
                    v.upload_image = Some(image_id.to_string());
                    v.updated_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        Ok(v)
    }

    /// Step 4: the upload of image `image_id` is over (or was never
    /// going to happen): the volume's status follows its attachments.
    async fn end_upload(&self, id: &str, image_id: &str, now: DateTime<Utc>) {
        self.write_quietly(id, |v| {
            if v.status == "uploading" && v.upload_image.as_deref() == Some(image_id) {
                v.status = after_upload(v).into();
                v.upload_image = None;
                v.updated_at = Some(now);
            }
        })
        .await;
    }
}

/// Starts uploading volume `vol` to a new image owned by `owner`
/// (steps 1 and 2); the bytes follow in a task. Returns the volume as
/// step 1 left it and the new image.
pub async fn upload(
    app: &Arc<App>,
    vol: &Volume,
    owner: &str,
    req: Upload,
) -> Result<(Arc<Volume>, Arc<Image>), Fault> {
    let now = app.clock.now();
    let mut img = Image::queued(owner, &req.visibility, now);
    img.name = Some(req.image_name);
    img.disk_format = Some(req.disk_format.clone());
    img.container_format = Some(req.container_format);
    img.protected = req.protected;
    img.properties = inherited(&vol.image_metadata);
    let image_id = img.id.clone();
    let v = app.volumes.begin_upload(&vol.id, &image_id, now).await?;
    let img = match app.images.put(img).await {
        Ok(img) => img,
        Err(f) => {
            app.volumes.end_upload(&vol.id, &image_id, now).await;
            return Err(f);
        }
    };
    let task = (
        app.clone(),
        vol.id.clone(),
        image_id,
        req.disk_format,
        vol.size,
    );
    tokio::spawn(async move {
        let (app, id, image, format, size) = task;
        copy_bytes(&app, &id, &image, &format, size).await;
        app.volumes.end_upload(&id, &image, app.clock.now()).await;
    });
    Ok((v, img))
}

/// Step 3: the image goes `saving`, takes the volume's bytes and becomes
/// `active`; on failure it is deleted.
async fn copy_bytes(app: &Arc<App>, id: &str, image_id: &str, format: &str, size_gb: u64) {
    let saving = app
        .images
        .update(
            image_id,
            || Fault::not_found("image"),
            |i| {
                i.status = "saving".into();
                Ok(())
            },
        )
        .await;
    let Ok((img, ())) = saving else {
        tracing::warn!(
            volume = id,
            image = image_id,
            "the image went before the upload"
        );
        return;
    };
    let part = app.images.part_path(image_id);
    let mut stored = (*img).clone();
    let (backend, vid, fmt) = (
        app.volumes.backend.clone(),
        id.to_string(),
        format.to_string(),
    );
    let app2 = app.clone();
    let made = tokio::task::spawn_blocking(move || {
        backend
            .export(&vid, &part, &fmt)
            .and_then(|()| {
                app2.images
                    .store_file(&mut stored, &part, size_gb * GIB)
                    .map(|()| stored)
            })
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&part);
            })
    })
    .await;
    let written = match made {
        Ok(Ok(done)) => {
            app.images
                .update(
                    image_id,
                    || Fault::not_found("image"),
                    |i| {
                        i.take_data(&done, app.clock.now());
                        Ok(())
                    },
                )
                .await
        }
        Ok(Err(e)) => Err(Fault::internal(format!("exporting the volume: {e}"))),
        Err(e) => Err(Fault::internal(format!("exporting the volume: {e}"))),
    };
    if let Err(f) = written {
        tracing::error!(
            volume = id,
            image = image_id,
            "upload to image failed: {}",
            f.message
        );
        drop_unfinished(app, image_id).await;
    }
}

/// Deletes image `image_id` if it is still `queued` or `saving` (an
/// upload that did not finish; Cinder's `_delete_image`).
async fn drop_unfinished(app: &App, image_id: &str) {
    let unfinished = app
        .images
        .get(image_id)
        .is_some_and(|i| i.status == "queued" || i.status == "saving");
    if unfinished {
        if let Err(f) = app.images.delete(image_id).await {
            tracing::warn!(
                image = image_id,
                "deleting an unfinished upload: {}",
                f.message
            );
        } else {
            let _ = std::fs::remove_file(app.images.part_path(image_id));
        }
    }
}

/// At start: every volume a stopped process left `uploading` (unchanged
/// since `quiet_since`, when other processes may share the database) goes
/// back to `in-use` or `available`, and its unfinished image is deleted.
pub async fn settle(app: &Arc<App>, quiet_since: Option<DateTime<Utc>>) {
    let now = app.clock.now();
    for v in app.volumes.table.filter(|v| v.status == "uploading") {
        if quiet_since.is_some_and(|t| v.last_change() > t) {
            continue;
        }
        if let Some(image) = v.upload_image.clone() {
            drop_unfinished(app, &image).await;
            app.volumes.end_upload(&v.id, &image, now).await;
        } else {
            // Put in `uploading` by a reset: nothing of ours to finish.
            app.volumes
                .write_quietly(&v.id, |v| {
                    if v.status == "uploading" {
                        v.status = after_upload(v).into();
                    }
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_carries_the_volumes_own_image_properties_only() {
        let meta: BTreeMap<String, String> = [
            ("hw_disk_bus", "scsi"),
            ("os_distro", "debian"),
            ("disk_format", "qcow2"),
            ("image_id", "x"),
            ("min_ram", "64"),
            ("os_glance_importing_to_stores", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = inherited(&meta);
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(keys, ["hw_disk_bus", "os_distro"]);
        assert_eq!(got["hw_disk_bus"], "scsi");
    }
}
