//! The block storage service's per-project quotas: Cinder's defaults
//! (10 volumes, 10 snapshots, 1,000 GiB shared by volumes and snapshots —
//! a snapshot counts its volume's size, as Cinder's `no_snapshot_gb_quota =
//! False` has it), or a project's own limits from `os-quota-sets`, kept in
//! `volume_quotas` rows (-1 is unlimited). Usage is counted from the rows
//! inside the transaction that adds a row (or extends a volume), and again
//! by the database as the row is written ([`Guard::Storage`]: the
//! project's volumes or snapshots, and the GiB both hold, every process's
//! rows counted); Cinder's refusals are 413s with its texts.

use super::snapshot::Snapshot;
use super::{Volume, Volumes};
use crate::store::{Guard, TxView};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Cinder's default `quota_volumes`.
pub const QUOTA_VOLUMES: i64 = 10;
/// Cinder's default `quota_snapshots`.
pub const QUOTA_SNAPSHOTS: i64 = 10;
/// Cinder's default `quota_gigabytes` (volumes and snapshots together).
pub const QUOTA_GIGABYTES: u64 = 1000;

/// Every resource of Cinder's quota set and its default limit (backups
/// and groups are kept and shown; Rova has neither).
pub const DEFAULTS: &[(&str, i64)] = &[
    ("volumes", QUOTA_VOLUMES),
    ("snapshots", QUOTA_SNAPSHOTS),
    ("gigabytes", QUOTA_GIGABYTES as i64),
    ("backups", 10),
    ("backup_gigabytes", 1000),
    ("per_volume_gigabytes", -1),
    ("groups", 10),
];

/// A project's own limits (a `volume_quotas` row).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeQuota {
    pub project_id: String,
    pub limits: BTreeMap<String, i64>,
}

/// The limits that apply to one project.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub volumes: i64,
    pub snapshots: i64,
    pub gigabytes: i64,
}

impl Limits {
    /// Whether `have` of a resource limited to `limit` leaves room for
    /// `more` (-1: no limit).
    pub fn room(limit: i64, have: u64, more: u64) -> bool {
        limit < 0 || have + more <= limit as u64
    }
}

impl Volumes {
    /// Project `project`'s limit of every resource, defaults filled in.
    pub fn quota_set(&self, project: &str) -> BTreeMap<String, i64> {
        let own = self.quotas.get(project);
        DEFAULTS
            .iter()
            .map(|(k, d)| {
                let v = own.as_ref().and_then(|q| q.limits.get(*k).copied());
                (k.to_string(), v.unwrap_or(*d))
            })
            .collect()
    }

    /// The limits enforced for project `project`.
    pub fn limits(&self, project: &str) -> Limits {
        let q = self.quota_set(project);
        let get = |k: &str| q.get(k).copied().unwrap_or(-1);
        Limits {
            volumes: get("volumes"),
            snapshots: get("snapshots"),
            gigabytes: get("gigabytes"),
        }
    }

    /// Sets some of project `project`'s limits; returns them all.
    pub async fn set_quota(
        &self,
        project: &str,
        set: BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, i64>, Fault> {
        let p = project.to_string();
        let init = move || VolumeQuota {
            project_id: p,
            limits: BTreeMap::new(),
        };
        self.quotas
            .upsert(project, init, |q| {
                q.limits.extend(set);
                Ok(())
            })
            .await?;
        Ok(self.quota_set(project))
    }

    /// Project `project` back to the defaults.
    pub async fn delete_quota(&self, project: &str) -> Result<(), Fault> {
        self.quotas.remove(project).await.map(drop)
    }
}

/// The GiB project `project` holds in volumes and snapshots (pending
/// writes of the transaction applied).
pub(super) fn gigabytes_used(
    vols: &TxView<'_, Volume>,
    snaps: &TxView<'_, Snapshot>,
    project: &str,
) -> u64 {
    let v = vols.sum(|v| {
        if v.project_id == project {
            v.held_gb()
        } else {
            0
        }
    });
    let s = snaps.sum(|s| if s.project_id == project { s.size } else { 0 });
    v + s
}

impl Volume {
    /// The GiB the volume holds against its project's quota: its size, or
    /// the size an extend in progress takes it to (reserved as the extend
    /// starts, as Cinder reserves it).
    pub fn held_gb(&self) -> u64 {
        self.extend_to.map_or(self.size, |to| to.max(self.size))
    }
}

/// What a project uses, as `limits` shows it.
pub struct Usage {
    pub volumes: usize,
    pub snapshots: usize,
    pub gigabytes: u64,
}

impl Volumes {
    /// Project `project`'s usage, counted from the rows.
    pub fn usage(&self, project: &str) -> Usage {
        let vols = self.table.filter(|v| v.project_id == project);
        let snaps = self.snapshots.filter(|s| s.project_id == project);
        Usage {
            volumes: vols.len(),
            snapshots: snaps.len(),
            gigabytes: vols.iter().map(|v| v.held_gb()).sum::<u64>()
                + snaps.iter().map(|s| s.size).sum::<u64>(),
        }
    }
}

pub(super) fn volumes_exceeded(limit: i64) -> Fault {
    Fault::new(
        413,
        format!("Maximum number of volumes allowed ({limit}) exceeded for quota 'volumes'."),
    )
}

pub(super) fn snapshots_exceeded(limit: i64) -> Fault {
    Fault::new(
        413,
        format!("Maximum number of snapshots allowed ({limit}) exceeded"),
    )
}

pub(super) fn gigabytes_exceeded(requested: u64, consumed: u64, limit: i64) -> Fault {
    Fault::new(
        413,
        format!(
            "Requested volume or snapshot exceeds allowed \
             gigabytes quota. Requested {requested}G, quota is {limit}G and \
             {consumed}G has been consumed."
        ),
    )
}

/// The database's quota refusal (a 403 from a storage guard) as Cinder's
/// 413.
pub(super) fn over_limit(f: Fault, l: Limits) -> Fault {
    let ours = [volumes_exceeded(l.volumes), snapshots_exceeded(l.snapshots)];
    let gigabytes = f.code == 403
        && f.message
            .starts_with("Requested volume or snapshot exceeds allowed gigabytes quota.");
    if gigabytes {
        return Fault::new(413, f.message);
    }
    match ours
        .into_iter()
        .find(|o| f.code == 403 && f.message == o.message)
    {
        Some(o) => o,
        None => f,
    }
}

/// The database's re-count of a project's volumes or snapshots (`count`:
/// the limit on the written table's rows and Cinder's refusal, for a new
/// row) and of the GiB its volumes and snapshots hold (`requested`: the
/// written row's share), in the transaction that writes the row.
pub(super) fn storage_guard(
    project: &str,
    count: Option<(i64, Fault)>,
    gigabytes: i64,
    requested: u64,
) -> Option<Guard> {
    let count = count.filter(|(limit, _)| *limit >= 0);
    (count.is_some() || gigabytes >= 0).then(|| Guard::Storage {
        project: project.to_string(),
        count: count.map(|(limit, f)| (limit, f.message)),
        gigabytes,
        requested: requested as i64,
    })
}
