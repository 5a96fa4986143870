//! Volume snapshots (Cinder's snapshots): rows of `snapshots`, each a
//! point-in-time copy of one volume's bytes that the backend keeps apart
//! from the volume, with Cinder's status machine as compare-and-swap
//! writes: `creating` → `available` (or `error`), `deleting` → gone (or
//! `error_deleting`).
//!
//! A snapshot is added in the transaction that checks its volume (host,
//! migration, status: `available`, or `in-use` when forced) and writes
//! the volume's row unchanged, so a volume delete (which refuses a
//! volume with snapshots in the same way) and a snapshot of that volume
//! never both succeed, in one process or several. The volume's own status
//! does not change while it is snapshotted, as in Cinder. Snapshots count
//! towards the project's snapshot quota and, by their volume's size,
//! towards its gigabytes ([`super::quota`]).
//!
//! This module also makes a volume from a snapshot (its bytes copied, at
//! least its size) and settles the snapshots a stopped process left in
//! flight (a create cut short is an error, a delete cut short is carried
//! out).

use super::quota::{
    gigabytes_exceeded, gigabytes_used, over_limit, snapshots_exceeded, storage_guard, Limits,
};
use super::{
    backend, invalid_input, invalid_volume, new_row, write_row_quietly, NewVolume, Volume, Volumes,
};
use chrono::{DateTime, Utc};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The statuses a snapshot may be deleted from without `force` (and a
/// volume's snapshots may be in for a cascading delete without it).
pub const DELETABLE: &[&str] = &["available", "error"];

/// Every status Cinder knows for a snapshot (`os-reset_status` takes
/// these).
pub const STATUSES: &[&str] = &[
    "error",
    "available",
    "creating",
    "deleting",
    "deleted",
    "updating",
    "error_deleting",
    "unmanaging",
    "backing-up",
    "restoring",
];

/// One snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub id: String,
    /// The project of whoever took it (Cinder's: an admin's snapshot of
    /// another project's volume is the admin's).
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    /// GiB: the volume's size when it was taken (`volume_size`).
    pub size: u64,
    /// `0%` while it is made, `100%` once it is.
    pub progress: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The volume's `volume_image_metadata` when it was taken (Cinder
    /// copies it to the snapshot, and from there to volumes made from
    /// it).
    #[serde(default)]
    pub image_metadata: BTreeMap<String, String>,
}

impl Snapshot {
    /// When the snapshot last changed.
    pub fn last_change(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or(self.created_at)
    }
}

/// What a snapshot create asks for (checked by the API).
pub struct NewSnapshot {
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// An `in-use` volume may be snapshotted (`force`, or 3.66 on).
    pub allow_in_use: bool,
}

/// Cinder's "Snapshot X could not be found." (404).
pub fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Snapshot {id} could not be found."))
}

/// Cinder's `InvalidSnapshot` (400).
pub fn invalid_snapshot(reason: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!("Invalid snapshot: {reason}"))
}

/// Whether a volume may be made from `snap` (Cinder's create flow takes
/// only an `available` one).
pub fn usable(snap: &Snapshot) -> Result<(), Fault> {
    match snap.status.as_str() {
        "available" => Ok(()),
        _ => Err(invalid_snapshot(
            "Originating snapshot status must be one of 'available' values",
        )),
    }
}

/// The size of a volume made from `snap`: `size` if asked (at least the
/// snapshot's), else the snapshot's.
pub fn volume_size_from(snap: &Snapshot, size: Option<u64>) -> Result<u64, Fault> {
    match size {
        Some(n) if n < snap.size => Err(invalid_input(format!(
            "Volume size '{n}'GB cannot be smaller than the snapshot size {}GB. \
             They must be >= original snapshot size.",
            snap.size
        ))),
        Some(n) => Ok(n),
        None => Ok(snap.size),
    }
}

/// Cinder's checks of a volume to snapshot (`_create_snapshot_in_db_validate`
/// and the status check after it).
fn snapshottable(v: &Volume, allow_in_use: bool) -> Result<(), Fault> {
    let migrating = v
        .migration_status
        .as_deref()
        .is_some_and(|m| !["deleting", "error", "success"].contains(&m));
    let refusal = if v.host.is_none() {
        "The snapshot cannot be created because volume has not been scheduled to any host."
            .to_string()
    } else if v.status == "maintenance" {
        "The snapshot cannot be created when the volume is in maintenance mode.".to_string()
    } else if migrating {
        "Snapshot cannot be created while volume is migrating.".to_string()
    } else if v.status == "error" {
        "The snapshot cannot be created when the volume is in error status.".to_string()
    } else {
        let valid: &[&str] = match allow_in_use {
            true => &["available", "in-use"],
            false => &["available"],
        };
        if valid.contains(&v.status.as_str()) {
            return Ok(());
        }
        format!(
            "Volume {} status must be {}, but current status is: {}.",
            v.id,
            valid.join(", "),
            v.status
        )
    };
    Err(invalid_volume(refusal))
}

impl Volumes {
    /// Snapshot `id` as `project` sees it (an admin sees every project's).
    pub fn snapshot_visible(
        &self,
        id: &str,
        project: &str,
        admin: bool,
    ) -> Result<Arc<Snapshot>, Fault> {
        self.snapshots
            .get(id)
            .filter(|s| admin || s.project_id == project)
            .ok_or_else(|| not_found(id))
    }

    /// Where snapshot `id`'s bytes are (for tests and tools).
    pub fn snapshot_location(&self, id: &str) -> backend::Location {
        self.backend.locate_snapshot(id)
    }

    /// Adds a snapshot of volume `volume_id` in `creating`, for
    /// `project`, within its quotas, and starts copying the volume's
    /// bytes.
    pub async fn create_snapshot(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        project: &str,
        user: &str,
        volume_id: &str,
        req: NewSnapshot,
    ) -> Result<Arc<Snapshot>, Fault> {
        let snap = Snapshot {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.to_string(),
            user_id: user.to_string(),
            volume_id: volume_id.to_string(),
            name: req.name,
            description: req.description,
            status: "creating".into(),
            size: 0,
            progress: "0%".into(),
            created_at: now,
            updated_at: None,
            metadata: req.metadata,
            image_metadata: BTreeMap::new(),
        };
        // Another process's write to the volume's row refuses this one
        // (409) and brings the row as stored: taken again on it.
        let mut tries = 0;
        let made = loop {
            let snap = snap.clone();
            let made = self
                .add_snapshot(project, volume_id, snap, req.allow_in_use)
                .await;
            match made {
                Err(f) if f.code == 409 && tries < 4 => tries += 1,
                other => break other?,
            }
        };
        let this = self.clone();
        let (id, vid) = (made.id.clone(), volume_id.to_string());
        tokio::spawn(async move { this.finish_snapshot(&id, &vid).await });
        Ok(made)
    }

    /// Adds row `snap` (its size and image metadata taken from volume
    /// `volume_id`) if the volume may be snapshotted, within the project's
    /// quotas, together with the volume's row written unchanged.
    async fn add_snapshot(
        &self,
        project: &str,
        volume_id: &str,
        mut snap: Snapshot,
        allow_in_use: bool,
    ) -> Result<Arc<Snapshot>, Fault> {
        let id = snap.id.clone();
        let limits = self.limits(project);
        self.table
            .transact_with(&self.snapshots, |vols, snaps| {
                let v = vols
                    .get(volume_id)
                    .ok_or_else(|| super::not_found(volume_id))?;
                snapshottable(&v, allow_in_use)?;
                let count = snaps.count(|s| s.project_id == project) as u64;
                if !Limits::room(limits.snapshots, count, 1) {
                    return Err(snapshots_exceeded(limits.snapshots));
                }
                let used = gigabytes_used(vols, snaps, project);
                if !Limits::room(limits.gigabytes, used, v.size) {
                    return Err(gigabytes_exceeded(v.size, used, limits.gigabytes));
                }
                snap.size = v.size;
                snap.image_metadata = v.image_metadata.clone();
                let made = Arc::new(snap);
                // The volume's row written as it is: a delete of it, or
                // another process's change, makes this write fail.
                vols.put(volume_id, v);
                let count = Some((limits.snapshots, snapshots_exceeded(limits.snapshots)));
                let quota = storage_guard(project, count, limits.gigabytes, made.size);
                snaps.put_shared(&id, made.clone(), quota);
                Ok(made)
            })
            .await
            .map_err(|f| over_limit(f, limits))
    }

    /// Copies a creating snapshot's bytes, then makes it `available` (or
    /// `error`). A snapshot deleted meanwhile (a forced cascade) leaves
    /// no bytes behind.
    async fn finish_snapshot(&self, id: &str, volume_id: &str) {
        let backend = self.backend.clone();
        let (sid, vid) = (id.to_string(), volume_id.to_string());
        let made = tokio::task::spawn_blocking(move || backend.create_snapshot(&vid, &sid)).await;
        let ok = matches!(made, Ok(Ok(())));
        if !ok {
            tracing::error!(snapshot = id, "snapshot create failed: {made:?}");
        }
        self.end_snapshot(id, "creating", |s| {
            s.status = if ok { "available" } else { "error" }.into();
            if ok {
                s.progress = "100%".into();
            }
        })
        .await;
        let going = self
            .snapshots
            .get(id)
            .is_none_or(|s| s.status == "deleting");
        if ok && going {
            let backend = self.backend.clone();
            let sid = id.to_string();
            let _ = tokio::task::spawn_blocking(move || backend.delete_snapshot(&sid)).await;
        }
    }

    /// Ends a snapshot's transitional status: `change` is applied when it
    /// is still in `from` (a reset or a delete may have moved it on).
    async fn end_snapshot(&self, id: &str, from: &str, change: impl FnOnce(&mut Snapshot)) {
        write_row_quietly(&self.snapshots, id, |s| {
            if s.status == from {
                change(s);
            }
        })
        .await;
    }

    /// Changes a snapshot's name, description, metadata or (an admin's
    /// reset) status.
    pub async fn update_snapshot(
        &self,
        snap: &Snapshot,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Snapshot),
    ) -> Result<Arc<Snapshot>, Fault> {
        let (s, ()) = self
            .snapshots
            .update(
                &snap.id,
                || not_found(&snap.id),
                |s| {
                    change(s);
                    s.updated_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        Ok(s)
    }

    /// Starts deleting a snapshot (Cinder's conditional update to
    /// `deleting`; `force` whatever its status), then removes its bytes
    /// and its row.
    pub async fn delete_snapshot(
        self: &Arc<Self>,
        snap: &Snapshot,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<(), Fault> {
        self.snapshots
            .update(
                &snap.id,
                || not_found(&snap.id),
                |s| {
                    if !force && !DELETABLE.contains(&s.status.as_str()) {
                        return Err(invalid_snapshot(
                            "Snapshot status must be available or error and must not be \
                             part of a group.",
                        ));
                    }
                    s.status = "deleting".into();
                    s.updated_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        let this = self.clone();
        let id = snap.id.clone();
        tokio::spawn(async move { this.finish_snapshot_delete(&id).await });
        Ok(())
    }

    /// Removes a deleting snapshot's bytes, then its row (or makes it
    /// `error_deleting` when the backend fails).
    pub(super) async fn finish_snapshot_delete(&self, id: &str) {
        let backend = self.backend.clone();
        let sid = id.to_string();
        match tokio::task::spawn_blocking(move || backend.delete_snapshot(&sid)).await {
            Ok(Ok(())) => {
                if let Err(f) = self.snapshots.remove(id).await {
                    tracing::error!(snapshot = id, "snapshot row delete failed: {}", f.message);
                }
            }
            failed => {
                tracing::error!(snapshot = id, "snapshot delete failed: {failed:?}");
                self.end_snapshot(id, "deleting", |s| s.status = "error_deleting".into())
                    .await;
            }
        }
    }

    /// Adds a volume made from snapshot `snap` (`req.size` checked by
    /// [`volume_size_from`]): its bytes are the snapshot's, it is
    /// bootable when the snapshot's volume is, and it carries the image
    /// metadata the snapshot took from its volume.
    pub async fn create_from_snapshot(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        project: &str,
        user: &str,
        req: NewVolume,
        snap: &Snapshot,
    ) -> Result<Arc<Volume>, Fault> {
        let mut vol = new_row(now, project, user, req, snap.image_metadata.clone());
        vol.snapshot_id = Some(snap.id.clone());
        vol.bootable = self.table.get(&snap.volume_id).is_some_and(|v| v.bootable);
        let backend::Location::File(source) = self.backend.locate_snapshot(&snap.id);
        self.add(vol, Some(source)).await
    }

    /// Ends the snapshot work a stopped process left (before the volumes
    /// are settled): a create cut short is an error (its copy may be
    /// partial), a delete cut short is carried out. With `quiet_since`,
    /// only snapshots unchanged since then (see
    /// [`Volumes::settle_at_start`]).
    pub(super) async fn settle_snapshots(&self, quiet_since: Option<DateTime<Utc>>) {
        for s in self.snapshots.all() {
            if quiet_since.is_some_and(|t| s.last_change() > t) {
                continue;
            }
            match s.status.as_str() {
                "creating" => {
                    self.end_snapshot(&s.id, "creating", |s| s.status = "error".into())
                        .await
                }
                "deleting" => self.finish_snapshot_delete(&s.id).await,
                _ => {}
            }
        }
    }
}
