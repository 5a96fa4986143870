//! Block storage (a Cinder v3 subset): volumes as rows of `volumes`, their
//! bytes in a [`backend::BlockBackend`], and Cinder's status machine.
//!
//! Every status change is a compare-and-swap on the row: an action checks
//! the status it needs and moves the volume to its transitional status
//! (`creating`, `extending`, `deleting`) in one write; the backend then does
//! the work in a task, and a second write ends it (`available`, or `error`
//! / `error_extending` when the backend failed). The database is the
//! authority: a process that died in the middle leaves the transitional
//! status in the row, and [`Volumes::settle_at_start`] ends it as Cinder's
//! volume service does when it starts (a cut-short create or extend is an
//! error, a cut-short delete is carried out).
//!
//! Quotas (Cinder's defaults: 10 volumes, 10 snapshots, 1,000 GiB per
//! project, see [`quota`]) are counted from the rows: the counts again by
//! the database in the transaction that adds the row.
//!
//! A volume's snapshots ([`snapshot`]) are rows of `snapshots`: a volume
//! with snapshots is not deleted unless the delete cascades to them, and
//! a volume may be made from one. Whatever reads or writes both tables
//! together locks `volumes` first, then `snapshots`.

pub mod api;
pub mod attach;
pub mod backend;
pub mod quota;
pub mod reimage;
pub mod snapshot;
pub mod upload;

use crate::store::{Guard, Store, Table};
use backend::{BlockBackend, FileBackend, Source};
use chrono::{DateTime, Utc};
use quota::{
    gigabytes_exceeded, gigabytes_used, over_limit, storage_guard, volumes_exceeded, Limits,
};
pub use quota::{VolumeQuota, QUOTA_GIGABYTES, QUOTA_SNAPSHOTS, QUOTA_VOLUMES};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use snapshot::Snapshot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
/// The one volume type (Cinder's default type).
pub const DEFAULT_TYPE: &str = "__DEFAULT__";
/// Its id.
pub const DEFAULT_TYPE_ID: &str = "5c1bb5d3-2b69-4d8e-9a73-4b6f1e0e8d01";
/// The zone volumes are in (Cinder's `storage_availability_zone`).
pub const ZONE: &str = "nova";
/// The statuses a volume may be deleted from without `force`.
pub const DELETABLE: &[&str] = &[
    "available",
    "error",
    "error_restoring",
    "error_extending",
    "error_managing",
];

/// Whether an image in `disk_format` has to be converted to become a
/// raw volume (`raw` and formats QEMU cannot read are copied as bytes).
fn needs_conversion(disk_format: &str) -> bool {
    matches!(
        disk_format,
        "qcow2" | "vmdk" | "vdi" | "vhd" | "vhdx" | "qed"
    )
}

/// One volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    /// GiB.
    pub size: u64,
    pub availability_zone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub bootable: bool,
    /// The read-only flag `os-update_readonly_flag` set (Cinder's admin
    /// metadata `readonly`).
    #[serde(default)]
    pub readonly: Option<bool>,
    pub source_volid: Option<String>,
    pub snapshot_id: Option<String>,
    /// The image it was made from, with the image's properties Cinder
    /// copies (`volume_image_metadata`).
    #[serde(default)]
    pub image_metadata: BTreeMap<String, String>,
    /// `detached` or `attached`.
    pub attach_status: String,
    pub migration_status: Option<String>,
    /// `host@backend#pool`, once the backend holds it.
    pub host: Option<String>,
    /// An extend in flight: the size it grows to.
    #[serde(default)]
    pub extend_to: Option<u64>,
    /// Its attachments to servers (one at most: no volume is multiattach).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// While `uploading`: the image the upload makes ([`upload`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_image: Option<String>,
}

/// A volume's attachment to a server (Cinder's `volume_attachment`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub id: String,
    pub server_id: String,
    /// The device the server sees it as, once attached.
    pub device: Option<String>,
    pub attached_at: Option<DateTime<Utc>>,
    /// The compute host of the server.
    pub host: Option<String>,
    /// `reserved`, `attaching`, `attached` (see [`Attachment::status`]).
    #[serde(default)]
    pub status: Option<String>,
    /// The connector a caller of the attachments API gave.
    #[serde(default)]
    pub connector: Option<serde_json::Value>,
    /// The connection it was given for it.
    #[serde(default)]
    pub connection_info: Option<serde_json::Value>,
    /// `rw`, `ro` or `null` (3.54).
    #[serde(default)]
    pub attach_mode: Option<String>,
}

impl Volume {
    /// When the volume last changed.
    pub fn last_change(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or(self.created_at)
    }
}

/// What a volume made from an image starts from.
pub struct FromImage {
    /// The image's size in whole GiB.
    pub image_gb: u64,
    /// The smallest volume it fits: its size and `min_disk`, 1 GiB at least.
    pub floor: u64,
    /// The image's properties Cinder copies (`volume_image_metadata`).
    pub metadata: BTreeMap<String, String>,
}

impl FromImage {
    pub fn of(img: &crate::image::Image) -> FromImage {
        const GIB: u64 = 1 << 30;
        let image_gb = img.size.unwrap_or(0).div_ceil(GIB);
        let mut metadata = BTreeMap::new();
        metadata.insert("image_id".to_string(), img.id.clone());
        let optional = [
            ("image_name", &img.name),
            ("container_format", &img.container_format),
            ("disk_format", &img.disk_format),
            ("checksum", &img.checksum),
        ];
        for (k, val) in optional {
            if let Some(val) = val {
                metadata.insert(k.to_string(), val.clone());
            }
        }
        metadata.insert("min_disk".to_string(), img.min_disk.to_string());
        metadata.insert("min_ram".to_string(), img.min_ram.to_string());
        // Cinder also keeps the image's own properties (`kernel_id`,
        // `ramdisk_id`, `hw_*`, …), which Nova boots a volume by.
        for (k, v) in &img.properties {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            metadata.entry(k.clone()).or_insert(text);
        }
        FromImage {
            image_gb,
            floor: image_gb.max(img.min_disk).max(1),
            metadata,
        }
    }
}

/// What a create asks for (checked by the API).
pub struct NewVolume {
    pub size: u64,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub source_volid: Option<String>,
    pub image_id: Option<String>,
}

/// The row of a new volume in `creating`.
fn new_row(
    now: DateTime<Utc>,
    project: &str,
    user: &str,
    req: NewVolume,
    image_metadata: BTreeMap<String, String>,
) -> Volume {
    Volume {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project.to_string(),
        user_id: user.to_string(),
        name: req.name,
        description: req.description,
        status: "creating".into(),
        size: req.size,
        availability_zone: ZONE.into(),
        created_at: now,
        updated_at: None,
        metadata: req.metadata,
        // From an image, or a copy of a volume that was (its image
        // metadata comes along).
        bootable: req.image_id.is_some() || image_metadata.contains_key("image_id"),
        readonly: None,
        source_volid: req.source_volid,
        snapshot_id: None,
        image_metadata,
        attach_status: "detached".into(),
        migration_status: None,
        host: None,
        extend_to: None,
        attachments: Vec::new(),
        upload_image: None,
    }
}

/// The volume service.
pub struct Volumes {
    pub table: Table<Volume>,
    /// The volumes' snapshots, indexed by volume (`volume`).
    pub snapshots: Table<Snapshot>,
    /// Projects' own quota limits (`os-quota-sets`).
    pub quotas: Table<VolumeQuota>,
    backend: Arc<dyn BlockBackend>,
    /// This host's name (`os-vol-host-attr:host`).
    host: String,
}

/// Cinder's "Volume X could not be found." (404).
pub fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Volume {id} could not be found."))
}

/// Cinder's `InvalidVolume` (400).
pub fn invalid_volume(reason: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!("Invalid volume: {reason}"))
}

/// Cinder's `InvalidInput` (400).
pub fn invalid_input(reason: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!("Invalid input received: {reason}"))
}

/// Python's `or`-joined list, as Cinder's `build_or_str` writes it.
fn or_list(items: &[&str]) -> String {
    items.join(" or ")
}

/// The message of a delete refused by the volume's state (a forced
/// delete asks nothing of the status, and says so as Cinder does).
pub fn undeletable(force: bool) -> String {
    let status = match force {
        true => String::new(),
        false => format!("status must be {} and", or_list(DELETABLE)),
    };
    format!(
        "Volume {status} must not be migrating, attached, belong to a group, \
         have snapshots, awaiting a transfer, or be disassociated from snapshots after \
         volume transfer."
    )
}

/// How a volume delete treats the volume's status and its snapshots
/// (Cinder's `force` and `cascade`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteMode {
    /// Whatever the volume's status (and its snapshots', with `cascade`).
    pub force: bool,
    /// Its snapshots are deleted first (else a volume with snapshots is
    /// refused).
    pub cascade: bool,
    /// The caller is an admin: a cascade may take other projects'
    /// snapshots of the volume.
    pub admin: bool,
}

impl Volumes {
    pub fn load(store: &Arc<Store>, data_dir: &Path) -> Result<Self, String> {
        Ok(Volumes {
            table: Table::load("volume", store)?,
            quotas: Table::load("volume_quota", store)?,
            snapshots: Table::load("snapshot", store)?
                .indexed("volume", |s: &Snapshot| Some(s.volume_id.clone())),
            backend: Arc::new(FileBackend::new(data_dir.join("volumes"))),
            host: "rova".into(),
        })
    }

    /// The backend's directory for tests and tools.
    pub fn location(&self, id: &str) -> backend::Location {
        self.backend.locate(id)
    }

    /// Volume `id` as `project` sees it (an admin sees every project's).
    pub fn visible(&self, id: &str, project: &str, admin: bool) -> Result<Arc<Volume>, Fault> {
        self.table
            .get(id)
            .filter(|v| admin || v.project_id == project)
            .ok_or_else(|| not_found(id))
    }

    /// Adds a volume in `creating` and starts making its bytes; `source`
    /// is the file it is copied from (an image's or a volume's).
    pub async fn create(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        project: &str,
        user: &str,
        req: NewVolume,
        image_metadata: BTreeMap<String, String>,
        source: Option<PathBuf>,
    ) -> Result<Arc<Volume>, Fault> {
        let vol = new_row(now, project, user, req, image_metadata);
        self.add(vol, source).await
    }

    /// Adds row `vol` (in `creating`) within the project's quotas, then
    /// makes its bytes from `source`. A volume made from a snapshot needs
    /// the snapshot `available` as the row is added.
    async fn add(
        self: &Arc<Self>,
        vol: Volume,
        source: Option<PathBuf>,
    ) -> Result<Arc<Volume>, Fault> {
        let stored = Arc::new(vol);
        let id = stored.id.clone();
        let limits = self.limits(&stored.project_id);
        self.table
            .transact_with(&self.snapshots, |tx, snaps| {
                if let Some(s) = &stored.snapshot_id {
                    let snap = snaps.get(s).ok_or_else(|| snapshot::not_found(s))?;
                    snapshot::usable(&snap)?;
                }
                let project = stored.project_id.as_str();
                let count = tx.count(|v| v.project_id == project) as u64;
                if !Limits::room(limits.volumes, count, 1) {
                    return Err(volumes_exceeded(limits.volumes));
                }
                let used = gigabytes_used(tx, snaps, project);
                if !Limits::room(limits.gigabytes, used, stored.size) {
                    return Err(gigabytes_exceeded(stored.size, used, limits.gigabytes));
                }
                // Counted again by the database as the row is written.
                let count = Some((limits.volumes, volumes_exceeded(limits.volumes)));
                let quota = storage_guard(project, count, limits.gigabytes, stored.size);
                tx.put_shared(&id, stored.clone(), quota);
                Ok(())
            })
            .await
            .map_err(|f| over_limit(f, limits))?;
        let this = self.clone();
        let size = stored.size;
        tokio::spawn(async move { this.finish_create(&id, size, source).await });
        Ok(stored)
    }

    /// Makes a creating volume's bytes, then makes it `available` (or
    /// `error`).
    async fn finish_create(&self, id: &str, size: u64, source: Option<PathBuf>) {
        let backend = self.backend.clone();
        let vid = id.to_string();
        // An image in another disk format is converted to raw; a volume's
        // bytes are raw already.
        let format = self
            .table
            .get(id)
            .filter(|v| v.source_volid.is_none() && v.snapshot_id.is_none())
            .and_then(|v| v.image_metadata.get("disk_format").cloned())
            .filter(|f| needs_conversion(f));
        let made = tokio::task::spawn_blocking(move || {
            let from = match (&source, &format) {
                (Some(p), Some(f)) => Source::Convert(p, f),
                (Some(p), None) => Source::Copy(p),
                (None, _) => Source::Blank,
            };
            backend.create(&vid, size, from)
        })
        .await;
        let ok = matches!(made, Ok(Ok(())));
        if !ok {
            tracing::error!(volume = id, "volume create failed: {made:?}");
        }
        let host = format!(
            "{}@{}#{}",
            self.host,
            self.backend.name(),
            self.backend.name()
        );
        self.end(id, "creating", |v| {
            v.status = if ok { "available" } else { "error" }.into();
            if ok {
                v.host = Some(host);
            }
        })
        .await;
    }

    /// Ends a transitional status: `change` is applied when the volume is
    /// still in `from` (a reset or a delete may have moved it on).
    async fn end(&self, id: &str, from: &str, change: impl FnOnce(&mut Volume)) {
        self.write_quietly(id, |v| {
            if v.status == from {
                change(v);
            }
        })
        .await;
    }

    /// A background write to volume `id`: a volume gone meanwhile is
    /// fine, another failure is logged (there is no caller to tell).
    async fn write_quietly(&self, id: &str, change: impl FnOnce(&mut Volume)) {
        write_row_quietly(&self.table, id, change).await
    }

    /// Changes a volume's name, description or metadata.
    pub async fn update(
        &self,
        vol: &Volume,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Volume),
    ) -> Result<Arc<Volume>, Fault> {
        let (v, ()) = self
            .table
            .update(
                &vol.id,
                || not_found(&vol.id),
                |v| {
                    change(v);
                    v.updated_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        Ok(v)
    }

    /// Starts deleting a volume without its snapshots (a volume with
    /// snapshots is refused).
    pub async fn delete(
        self: &Arc<Self>,
        vol: &Volume,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let how = DeleteMode {
            force,
            ..DeleteMode::default()
        };
        self.delete_as(vol, how, now).await
    }

    /// Starts deleting a volume (Cinder's conditional update to
    /// `deleting`, with a cascade its snapshots' too, in one
    /// transaction), then removes its snapshots, its bytes and its row.
    pub async fn delete_as(
        self: &Arc<Self>,
        vol: &Volume,
        how: DeleteMode,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let refused = invalid_volume(undeletable(how.force));
        self.table
            .transact_with(&self.snapshots, |vols, snaps| {
                let mut v = vols.get(&vol.id).ok_or_else(|| not_found(&vol.id))?;
                let its: Vec<Snapshot> = snaps
                    .find_ids("volume", &v.id)
                    .iter()
                    .filter_map(|s| snaps.get(s))
                    .collect();
                let status_ok = how.force || DELETABLE.contains(&v.status.as_str());
                let snapshots_ok = match (how.cascade, how.force) {
                    (false, _) => its.is_empty(),
                    (true, true) => true,
                    (true, false) => its.iter().all(|s| {
                        snapshot::DELETABLE.contains(&s.status.as_str())
                            && (how.admin || s.project_id == v.project_id)
                    }),
                };
                let busy = v.attach_status == "attached" || v.migration_status.is_some();
                if !status_ok || !snapshots_ok || busy {
                    return Err(refused.clone());
                }
                v.status = "deleting".into();
                v.updated_at = Some(now);
                // The database counts the volume's snapshots again: one
                // another process took, and this one's copy does not
                // hold yet, refuses the delete.
                let known = if how.cascade { its.len() as i64 } else { 0 };
                let none_else = Guard::Rows {
                    table: "snapshots",
                    column: "volume_id",
                    value: vol.id.clone(),
                    max: known,
                    message: refused.message.clone(),
                };
                vols.put_guarded(&vol.id, v, none_else);
                if how.cascade {
                    for mut s in its {
                        s.status = "deleting".into();
                        s.updated_at = Some(now);
                        snaps.put(&s.id.clone(), s);
                    }
                }
                Ok(())
            })
            .await
            .map_err(|f| match f.code == 403 && f.message == refused.message {
                true => refused.clone(),
                false => f,
            })?;
        let this = self.clone();
        let id = vol.id.clone();
        tokio::spawn(async move { this.finish_delete(&id).await });
        Ok(())
    }

    /// Carries out a delete: the volume's snapshots being deleted (a
    /// cascade's) go first; a volume left with snapshots is
    /// `error_deleting`, else its bytes and row go.
    async fn finish_delete(&self, id: &str) {
        for s in self.snapshots.find("volume", id) {
            if s.status == "deleting" {
                self.finish_snapshot_delete(&s.id).await;
            }
        }
        if !self.snapshots.find("volume", id).is_empty() {
            tracing::error!(volume = id, "volume delete failed: it still has snapshots");
            self.end(id, "deleting", |v| v.status = "error_deleting".into())
                .await;
            return;
        }
        let backend = self.backend.clone();
        let vid = id.to_string();
        match tokio::task::spawn_blocking(move || backend.delete(&vid)).await {
            Ok(Ok(())) => {
                if let Err(f) = self.table.remove(id).await {
                    tracing::error!(volume = id, "volume row delete failed: {}", f.message);
                }
            }
            failed => {
                tracing::error!(volume = id, "volume delete failed: {failed:?}");
                self.end(id, "deleting", |v| v.status = "error_deleting".into())
                    .await;
            }
        }
    }

    /// Starts growing an available volume to `new_size` GiB.
    pub async fn extend(
        self: &Arc<Self>,
        vol: &Volume,
        new_size: u64,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        if new_size <= vol.size {
            return Err(invalid_input(format!(
                "New size for extend must be greater than current size. \
                 (current: {}, extended: {new_size}).",
                vol.size
            )));
        }
        let grow = new_size - vol.size;
        let limit = self.limits(&vol.project_id).gigabytes;
        self.table
            .transact_with(&self.snapshots, |tx, snaps| {
                let mut v = tx.get(&vol.id).ok_or_else(|| not_found(&vol.id))?;
                if v.status != "available" {
                    return Err(invalid_volume(format!(
                        "Volume {} status must be '{{'status': 'available'}}' to extend, \
                         currently {}.",
                        v.id, v.status
                    )));
                }
                let used = gigabytes_used(tx, snaps, &v.project_id);
                if !Limits::room(limit, used, grow) {
                    return Err(gigabytes_exceeded(grow, used, limit));
                }
                v.status = "extending".into();
                v.extend_to = Some(new_size);
                v.updated_at = Some(now);
                // The growth counted again by the database.
                let quota = storage_guard(&v.project_id, None, limit, grow);
                tx.put_shared(&vol.id, Arc::new(v), quota);
                Ok(())
            })
            .await
            .map_err(|f| over_limit(f, self.limits(&vol.project_id)))?;
        let this = self.clone();
        let id = vol.id.clone();
        tokio::spawn(async move { this.finish_extend(&id, new_size).await });
        Ok(())
    }

    async fn finish_extend(&self, id: &str, new_size: u64) {
        let backend = self.backend.clone();
        let vid = id.to_string();
        let done = tokio::task::spawn_blocking(move || backend.extend(&vid, new_size)).await;
        let ok = matches!(done, Ok(Ok(())));
        if !ok {
            tracing::error!(volume = id, "volume extend failed: {done:?}");
        }
        self.end(id, "extending", |v| {
            v.extend_to = None;
            if ok {
                v.size = new_size;
                v.status = "available".into();
            } else {
                v.status = "error_extending".into();
            }
        })
        .await;
    }

    /// Reserves an available volume for server `server` (Cinder's
    /// attachment create): `reserved`, with a new attachment; its id.
    pub async fn reserve(
        &self,
        id: &str,
        server: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Fault> {
        let attachment = uuid::Uuid::new_v4().to_string();
        let made = attachment.clone();
        self.table
            .update(
                id,
                || not_found(id),
                |v| {
                    if !["available", "downloading"].contains(&v.status.as_str()) {
                        return Err(invalid_volume(format!(
                            "Volume {id} status must be available or downloading to reserve, \
                             but the current status is {}.",
                            v.status
                        )));
                    }
                    v.status = "reserved".into();
                    v.updated_at = Some(now);
                    v.attachments.push(Attachment {
                        id: made,
                        server_id: server.to_string(),
                        device: None,
                        attached_at: None,
                        host: None,
                        status: Some("reserved".into()),
                        connector: None,
                        connection_info: None,
                        attach_mode: Some("rw".into()),
                    });
                    Ok(())
                },
            )
            .await?;
        Ok(attachment)
    }

    /// Completes attachment `attachment` as `device` on `host`: `in-use`.
    pub async fn complete(
        &self,
        id: &str,
        attachment: &str,
        device: &str,
        host: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        let connection = self.connection_info(id);
        self.table
            .update(
                id,
                || not_found(id),
                |v| {
                    let Some(a) = v.attachments.iter_mut().find(|a| a.id == attachment) else {
                        return Err(invalid_volume(format!("attachment {attachment} is gone")));
                    };
                    a.device = Some(device.to_string());
                    a.attached_at = Some(now);
                    a.host = host;
                    a.status = Some("attached".into());
                    a.connection_info = Some(connection.clone());
                    v.status = "in-use".into();
                    v.attach_status = "attached".into();
                    v.updated_at = Some(now);
                    Ok(())
                },
            )
            .await
            .map(drop)
    }

    /// Starts detaching volume `id` from its server: `detaching`.
    pub async fn begin_detach(&self, id: &str, now: DateTime<Utc>) -> Result<(), Fault> {
        self.table
            .update(
                id,
                || not_found(id),
                |v| {
                    if v.status != "in-use" || v.attach_status != "attached" {
                        return Err(invalid_volume(
                            "Unable to detach volume. Volume status must be 'in-use' and \
                             attach_status must be 'attached' to detach.",
                        ));
                    }
                    v.status = "detaching".into();
                    v.updated_at = Some(now);
                    Ok(())
                },
            )
            .await
            .map(drop)
    }

    /// Ends volume `id`'s attachments to `server` (a finished detach, a
    /// reservation given back): `available` once it has none; a detach
    /// given up (`keep`) puts it back `in-use` instead.
    pub async fn release(&self, id: &str, server: &str, keep: bool, now: DateTime<Utc>) {
        self.write_quietly(id, |v| {
            if keep {
                if v.status == "detaching" {
                    v.status = "in-use".into();
                }
            } else {
                v.attachments.retain(|a| a.server_id != server);
                if v.attachments.is_empty() {
                    v.status = "available".into();
                    v.attach_status = "detached".into();
                }
            }
            v.updated_at = Some(now);
        })
        .await;
    }

    /// Deletes a volume whose server went with `delete_on_termination`
    /// (detached first, whatever its status).
    pub async fn delete_with_server(self: &Arc<Self>, id: &str, server: &str, now: DateTime<Utc>) {
        self.release(id, server, false, now).await;
        if let Some(v) = self.table.get(id) {
            if let Err(f) = self.delete(&v, true, now).await {
                tracing::error!(volume = id, "volume delete failed: {}", f.message);
            }
        }
    }

    /// Ends what a stopped process left in flight, as Cinder's volume
    /// service does at start: a create or extend cut short is an error
    /// (the bytes may be partial), a delete cut short is carried out.
    /// `quiet_since`: only volumes unchanged since then are settled (with
    /// other processes on the database, a volume changed more recently may
    /// be a live one's work).
    pub async fn settle_at_start(
        self: &Arc<Self>,
        quiet_since: Option<DateTime<Utc>>,
    ) -> Result<(), Fault> {
        // Snapshots first: a cascading delete's go before their volume.
        self.settle_snapshots(quiet_since).await;
        for v in self.table.all() {
            if quiet_since.is_some_and(|t| v.last_change() > t) {
                continue;
            }
            match v.status.as_str() {
                "creating" | "downloading" => {
                    self.end(&v.id, &v.status, |v| v.status = "error".into())
                        .await
                }
                "extending" => {
                    self.end(&v.id, "extending", |v| {
                        v.status = "error_extending".into();
                        v.extend_to = None;
                    })
                    .await
                }
                "deleting" => self.finish_delete(&v.id).await,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A background write to row `id` of `table`: a row gone meanwhile is
/// fine, another failure is logged (there is no caller to tell).
async fn write_row_quietly<T>(table: &Table<T>, id: &str, change: impl FnOnce(&mut T))
where
    T: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let r = table
        .update(
            id,
            || Fault::not_found(format!("{id} is gone")),
            |row| {
                change(row);
                Ok(())
            },
        )
        .await;
    if let Err(f) = r {
        if f.code != 404 {
            tracing::error!(id, "block storage write failed: {}", f.message);
        }
    }
}
