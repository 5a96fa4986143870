//! Nova's instance states (`vm_state`, `task_state`, `power_state`) and the
//! API `status` they map to, both ways. Pure tables, no I/O.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $s)] $var),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),* } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$var),)* _ => None } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// `OS-EXT-STS:vm_state`.
    VmState {
        Active => "active", Building => "building", Paused => "paused", Suspended => "suspended",
        Stopped => "stopped", Rescued => "rescued", Resized => "resized", SoftDeleted => "soft-delete",
        Deleted => "deleted", Error => "error", Shelved => "shelved", ShelvedOffloaded => "shelved_offloaded",
    }
);

string_enum!(
    /// `OS-EXT-STS:task_state` (null when idle is `Option::None`).
    TaskState {
        Scheduling => "scheduling", BlockDeviceMapping => "block_device_mapping",
        Networking => "networking", Spawning => "spawning",
        ImageSnapshot => "image_snapshot", ImageSnapshotPending => "image_snapshot_pending",
        ImagePendingUpload => "image_pending_upload", ImageUploading => "image_uploading",
        ImageBackup => "image_backup", UpdatingPassword => "updating_password",
        ResizePrep => "resize_prep", ResizeMigrating => "resize_migrating",
        ResizeMigrated => "resize_migrated", ResizeFinish => "resize_finish",
        ResizeReverting => "resize_reverting", ResizeConfirming => "resize_confirming",
        Rebooting => "rebooting", RebootPending => "reboot_pending", RebootStarted => "reboot_started",
        RebootingHard => "rebooting_hard", RebootPendingHard => "reboot_pending_hard",
        RebootStartedHard => "reboot_started_hard",
        Pausing => "pausing", Unpausing => "unpausing", Suspending => "suspending", Resuming => "resuming",
        PoweringOff => "powering-off", PoweringOn => "powering-on",
        Rescuing => "rescuing", Unrescuing => "unrescuing",
        Rebuilding => "rebuilding", RebuildBlockDeviceMapping => "rebuild_block_device_mapping",
        RebuildSpawning => "rebuild_spawning", Migrating => "migrating",
        Deleting => "deleting", SoftDeleting => "soft-deleting", Restoring => "restoring",
        Shelving => "shelving", ShelvingImagePendingUpload => "shelving_image_pending_upload",
        ShelvingImageUploading => "shelving_image_uploading", ShelvingOffloading => "shelving_offloading",
        Unshelving => "unshelving",
    }
);

/// `OS-EXT-STS:power_state`, serialised as Nova's integer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum PowerState {
    NoState,
    Running,
    Paused,
    Shutdown,
    Crashed,
    Suspended,
}

impl PowerState {
    pub fn code(self) -> u8 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => PowerState::NoState,
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            _ => return None,
        })
    }
}

impl From<PowerState> for u8 {
    fn from(p: PowerState) -> u8 {
        p.code()
    }
}

impl TryFrom<u8> for PowerState {
    type Error = String;
    fn try_from(c: u8) -> Result<Self, String> {
        PowerState::from_code(c).ok_or_else(|| format!("bad power state {c}"))
    }
}

use TaskState as T;
use VmState as V;

/// Task states that override the row default, per vm_state (nova-facts §a).
fn overrides(vm: VmState) -> &'static [(TaskState, &'static str)] {
    const REBUILD: [(TaskState, &str); 3] = [
        (T::Rebuilding, "REBUILD"),
        (T::RebuildBlockDeviceMapping, "REBUILD"),
        (T::RebuildSpawning, "REBUILD"),
    ];
    match vm {
        V::Active => &[
            (T::Rebooting, "REBOOT"),
            (T::RebootPending, "REBOOT"),
            (T::RebootStarted, "REBOOT"),
            (T::RebootingHard, "HARD_REBOOT"),
            (T::RebootPendingHard, "HARD_REBOOT"),
            (T::RebootStartedHard, "HARD_REBOOT"),
            (T::UpdatingPassword, "PASSWORD"),
            (T::Rebuilding, "REBUILD"),
            (T::RebuildBlockDeviceMapping, "REBUILD"),
            (T::RebuildSpawning, "REBUILD"),
            (T::Migrating, "MIGRATING"),
            (T::ResizePrep, "RESIZE"),
            (T::ResizeMigrating, "RESIZE"),
            (T::ResizeMigrated, "RESIZE"),
            (T::ResizeFinish, "RESIZE"),
        ],
        V::Stopped => &[
            (T::ResizePrep, "RESIZE"),
            (T::ResizeMigrating, "RESIZE"),
            (T::ResizeMigrated, "RESIZE"),
            (T::ResizeFinish, "RESIZE"),
            (T::Rebuilding, "REBUILD"),
            (T::RebuildBlockDeviceMapping, "REBUILD"),
            (T::RebuildSpawning, "REBUILD"),
        ],
        V::Resized => &[(T::ResizeReverting, "REVERT_RESIZE")],
        V::Paused => &[(T::Migrating, "MIGRATING")],
        V::Error => &REBUILD,
        _ => &[],
    }
}

/// The row default status for a vm_state.
fn default_status(vm: VmState) -> &'static str {
    match vm {
        V::Active => "ACTIVE",
        V::Building => "BUILD",
        V::Stopped => "SHUTOFF",
        V::Resized => "VERIFY_RESIZE",
        V::Paused => "PAUSED",
        V::Suspended => "SUSPENDED",
        V::Rescued => "RESCUE",
        V::Error => "ERROR",
        V::Deleted => "DELETED",
        V::SoftDeleted => "SOFT_DELETED",
        V::Shelved => "SHELVED",
        V::ShelvedOffloaded => "SHELVED_OFFLOADED",
    }
}

/// The API `status` of an instance. A deleted row is always `DELETED`.
pub fn status(vm: VmState, task: Option<TaskState>, deleted: bool) -> &'static str {
    if deleted {
        return "DELETED";
    }
    if let Some(t) = task {
        if let Some((_, s)) = overrides(vm).iter().find(|(k, _)| *k == t) {
            return s;
        }
    }
    default_status(vm)
}

/// Every status string Nova can show (used to validate the `status` filter).
pub const ALL_STATUSES: &[&str] = &[
    "ACTIVE",
    "BUILD",
    "DELETED",
    "ERROR",
    "HARD_REBOOT",
    "MIGRATING",
    "PASSWORD",
    "PAUSED",
    "REBOOT",
    "REBUILD",
    "RESCUE",
    "RESIZE",
    "REVERT_RESIZE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHUTOFF",
    "SOFT_DELETED",
    "SUSPENDED",
    "UNKNOWN",
    "VERIFY_RESIZE",
];

/// What the `status` filter turns into: vm_states, plus task_states unless a
/// row default matched (then `task_states` is `None`, meaning "any").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateFilter {
    pub vm_states: Vec<VmState>,
    pub task_states: Option<Vec<TaskState>>,
}

/// Nova's reverse mapping (`task_and_vm_state_from_status`), case-insensitive,
/// union over all requested statuses. Returns `None` when no status matched.
pub fn states_for_statuses(statuses: &[&str]) -> Option<StateFilter> {
    let mut vms: Vec<VmState> = Vec::new();
    let mut tasks: Vec<TaskState> = Vec::new();
    let mut any_default = false;
    for want in statuses {
        let want = want.to_ascii_uppercase();
        for &vm in VmState::ALL {
            if default_status(vm) == want {
                if !vms.contains(&vm) {
                    vms.push(vm);
                }
                any_default = true;
            }
            for (t, s) in overrides(vm) {
                if *s == want {
                    if !vms.contains(&vm) {
                        vms.push(vm);
                    }
                    if !tasks.contains(t) {
                        tasks.push(*t);
                    }
                }
            }
        }
    }
    if vms.is_empty() {
        return None;
    }
    Some(StateFilter {
        vm_states: vms,
        task_states: if any_default { None } else { Some(tasks) },
    })
}

impl StateFilter {
    pub fn matches(&self, vm: VmState, task: Option<TaskState>) -> bool {
        if !self.vm_states.contains(&vm) {
            return false;
        }
        match &self.task_states {
            None => true,
            Some(ts) => task.is_some_and(|t| ts.contains(&t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_status_map() {
        let rows: &[(VmState, Option<TaskState>, &str)] = &[
            (V::Active, None, "ACTIVE"),
            (V::Active, Some(T::Rebooting), "REBOOT"),
            (V::Active, Some(T::RebootPending), "REBOOT"),
            (V::Active, Some(T::RebootStarted), "REBOOT"),
            (V::Active, Some(T::RebootingHard), "HARD_REBOOT"),
            (V::Active, Some(T::RebootPendingHard), "HARD_REBOOT"),
            (V::Active, Some(T::RebootStartedHard), "HARD_REBOOT"),
            (V::Active, Some(T::UpdatingPassword), "PASSWORD"),
            (V::Active, Some(T::Rebuilding), "REBUILD"),
            (V::Active, Some(T::RebuildBlockDeviceMapping), "REBUILD"),
            (V::Active, Some(T::RebuildSpawning), "REBUILD"),
            (V::Active, Some(T::Migrating), "MIGRATING"),
            (V::Active, Some(T::ResizePrep), "RESIZE"),
            (V::Active, Some(T::ResizeMigrating), "RESIZE"),
            (V::Active, Some(T::ResizeMigrated), "RESIZE"),
            (V::Active, Some(T::ResizeFinish), "RESIZE"),
            (V::Active, Some(T::Pausing), "ACTIVE"),
            (V::Building, None, "BUILD"),
            (V::Building, Some(T::Spawning), "BUILD"),
            (V::Stopped, None, "SHUTOFF"),
            (V::Stopped, Some(T::ResizePrep), "RESIZE"),
            (V::Stopped, Some(T::ResizeFinish), "RESIZE"),
            (V::Stopped, Some(T::Rebuilding), "REBUILD"),
            (V::Stopped, Some(T::RebuildSpawning), "REBUILD"),
            (V::Stopped, Some(T::PoweringOn), "SHUTOFF"),
            (V::Resized, None, "VERIFY_RESIZE"),
            (V::Resized, Some(T::ResizeReverting), "REVERT_RESIZE"),
            (V::Resized, Some(T::ResizeConfirming), "VERIFY_RESIZE"),
            (V::Paused, None, "PAUSED"),
            (V::Paused, Some(T::Migrating), "MIGRATING"),
            (V::Suspended, None, "SUSPENDED"),
            (V::Rescued, None, "RESCUE"),
            (V::Error, None, "ERROR"),
            (V::Error, Some(T::Rebuilding), "REBUILD"),
            (V::Error, Some(T::RebuildBlockDeviceMapping), "REBUILD"),
            (V::Error, Some(T::RebuildSpawning), "REBUILD"),
            (V::Deleted, None, "DELETED"),
            (V::SoftDeleted, None, "SOFT_DELETED"),
            (V::Shelved, None, "SHELVED"),
            (V::ShelvedOffloaded, None, "SHELVED_OFFLOADED"),
        ];
        for (vm, task, want) in rows {
            assert_eq!(status(*vm, *task, false), *want, "{vm:?} {task:?}");
        }
        assert_eq!(status(V::Active, None, true), "DELETED");
    }

    #[test]
    fn every_status_reachable_and_reverse_consistent() {
        for &vm in VmState::ALL {
            let mut tasks: Vec<Option<TaskState>> = vec![None];
            tasks.extend(TaskState::ALL.iter().map(|t| Some(*t)));
            for t in tasks {
                let s = status(vm, t, false);
                let f = states_for_statuses(&[s]).expect("reverse");
                assert!(f.matches(vm, t), "{vm:?} {t:?} -> {s}");
            }
        }
    }

    #[test]
    fn reverse_mapping_semantics() {
        let f = states_for_statuses(&["active"]).unwrap();
        assert_eq!(f.vm_states, vec![V::Active]);
        assert!(f.task_states.is_none());
        assert!(f.matches(V::Active, Some(T::Rebooting)));
        let f = states_for_statuses(&["REBOOT"]).unwrap();
        assert!(f.matches(V::Active, Some(T::RebootPending)));
        assert!(!f.matches(V::Active, None));
        let f = states_for_statuses(&["PAUSED", "SHUTOFF"]).unwrap();
        assert!(f.matches(V::Paused, None) && f.matches(V::Stopped, None));
        assert!(states_for_statuses(&["NOPE"]).is_none());
    }

    #[test]
    fn power_state_codes() {
        assert_eq!(serde_json::to_string(&PowerState::Running).unwrap(), "1");
        assert_eq!(PowerState::from_code(4), Some(PowerState::Shutdown));
        assert_eq!(PowerState::from_code(2), None);
        assert_eq!(
            serde_json::to_string(&VmState::SoftDeleted).unwrap(),
            "\"soft-delete\""
        );
    }
}
