//! The block storage service's per-project quotas, Cinder's defaults:
//! 10 volumes, 10 snapshots and 1,000 GiB, the gigabytes shared by
//! volumes and snapshots (a snapshot counts its volume's size, as
//! Cinder's `no_snapshot_gb_quota = False` has it). Usage is counted from
//! the rows inside the transaction that adds a row, and the counts again
//! by the database as the row is written ([`Guard::Count`]); Cinder's
//! refusals are 413s with its texts.

use super::snapshot::Snapshot;
use super::{Volume, Volumes};
use crate::store::{Guard, TxView};
use rova_core::Fault;

/// Cinder's default `quota_volumes`.
pub const QUOTA_VOLUMES: i64 = 10;
/// Cinder's default `quota_snapshots`.
pub const QUOTA_SNAPSHOTS: i64 = 10;
/// Cinder's default `quota_gigabytes` (volumes and snapshots together).
pub const QUOTA_GIGABYTES: u64 = 1000;

/// The GiB project `project` holds in volumes and snapshots (pending
/// writes of the transaction applied).
pub(super) fn gigabytes_used(
    vols: &TxView<'_, Volume>,
    snaps: &TxView<'_, Snapshot>,
    project: &str,
) -> u64 {
    let v = vols.sum(|v| if v.project_id == project { v.size } else { 0 });
    let s = snaps.sum(|s| if s.project_id == project { s.size } else { 0 });
    v + s
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
            gigabytes: vols.iter().map(|v| v.size).sum::<u64>()
                + snaps.iter().map(|s| s.size).sum::<u64>(),
        }
    }
}

/// The database's re-count of a project's rows of `column` (the volumes
/// or snapshots table's `project_id`), refused with Cinder's text.
pub(super) fn count_guard(project: &str, limit: i64, refusal: Fault) -> Guard {
    Guard::Count {
        column: "project_id",
        value: project.to_string(),
        limit,
        message: refusal.message,
    }
}

pub(super) fn volumes_exceeded() -> Fault {
    Fault::new(
        413,
        format!(
            "Maximum number of volumes allowed ({QUOTA_VOLUMES}) exceeded for quota 'volumes'."
        ),
    )
}

pub(super) fn snapshots_exceeded() -> Fault {
    Fault::new(
        413,
        format!("Maximum number of snapshots allowed ({QUOTA_SNAPSHOTS}) exceeded"),
    )
}

pub(super) fn gigabytes_exceeded(requested: u64, consumed: u64) -> Fault {
    Fault::new(
        413,
        format!(
            "Requested volume or snapshot exceeds allowed \
             gigabytes quota. Requested {requested}G, quota is {QUOTA_GIGABYTES}G and \
             {consumed}G has been consumed."
        ),
    )
}

/// The database's quota refusal (a 403 from a count guard) as Cinder's
/// 413.
pub(super) fn over_limit(f: Fault) -> Fault {
    let ours = [volumes_exceeded(), snapshots_exceeded()];
    match ours
        .into_iter()
        .find(|o| f.code == 403 && f.message == o.message)
    {
        Some(o) => o,
        None => f,
    }
}
