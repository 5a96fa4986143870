//! The restart table: what the compute service does, when it starts, with
//! a server or a migration that a stop (or crash) left half done — Rova's
//! counterpart of Nova's `ComputeManager._init_instance`. Pure decisions
//! only; the I/O that carries them out lives in `rova::compute::settle`
//! and `rova::compute::build::resume_all`.
//!
//! Where Rova deliberately differs from Nova, the row says so:
//! - a build cut short is resumed from where it stopped (Nova sets the
//!   server to ERROR), and so is a delete (as Nova does);
//! - any other task left behind is cleared and its open action events are
//!   failed, whatever the vm_state (Nova skips ERROR and SOFT_DELETED
//!   servers, and leaves some tasks it does not know how to resume set);
//! - the image of an interrupted snapshot, backup or shelve is deleted
//!   (Nova only clears the snapshot task and leaves the image `queued`).
//!
//! Like Nova, a stop, start, unpause or taken-up reboot cut short is
//! carried out again.

use crate::model::Instance;
use crate::states::{PowerState, TaskState, VmState};

/// What to do at start with a (not deleted) server, by its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartAction {
    /// No task was in flight: the record stands.
    Nothing,
    /// A build cut short: run it again from where it stopped.
    ResumeBuild,
    /// A delete cut short: run it again.
    ResumeDelete,
    /// The action cannot be picked up where it was: clear the task state
    /// (the vm_state says what the server was) and fail its open events.
    ClearTask,
    /// As [`RestartAction::ClearTask`], for an operation that was writing
    /// an image (snapshot, backup, shelve): that image is deleted.
    ClearTaskDeleteImage,
    /// A rebuild (or evacuation) cut short: the guest is half rebuilt, so
    /// the task is cleared and the server goes to ERROR.
    ErrorState,
    /// A stop cut short (`powering-off`): it is carried out again, as
    /// Nova's `_init_instance` retries the stop request.
    RetryStop,
    /// A start cut short (`powering-on`): it is carried out again, as
    /// Nova's `_init_instance` retries the start request.
    RetryStart,
    /// An unpause cut short while the guest is still paused: it is
    /// carried out again, as Nova's `_init_instance` does.
    RetryUnpause,
    /// A reboot cut short after the compute side took it up: it is done
    /// again (Nova's `_retry_reboot`); `hard` when the guest is no longer
    /// running, which turns a soft reboot into a hard one.
    RetryReboot { hard: bool },
    /// A build already taken up [`MAX_TAKE_UPS`] times after its process
    /// died: it is not resumed again (each time, whatever it runs ended
    /// its process), the task is cleared and the server goes to ERROR with
    /// a fault saying so.
    GiveUp,
}

/// How many times an operation is taken up again after the process running
/// it died before it is given up ([`RestartAction::bounded`]).
pub const MAX_TAKE_UPS: u32 = 3;

impl RestartAction {
    /// Whether the action clears the task state (and fails open events).
    pub fn clears_task(self) -> bool {
        matches!(
            self,
            RestartAction::ClearTask
                | RestartAction::ClearTaskDeleteImage
                | RestartAction::ErrorState
                | RestartAction::GiveUp
        )
    }

    /// The action for an operation that was taken up `taken_up` times
    /// already: below [`MAX_TAKE_UPS`] as the table says; from then on a
    /// build is given up and a retried stop, start, unpause or reboot is
    /// cleared instead (a delete is always carried through, as Nova does).
    pub fn bounded(self, taken_up: u32) -> RestartAction {
        use RestartAction as A;
        if taken_up < MAX_TAKE_UPS {
            return self;
        }
        match self {
            A::ResumeBuild => A::GiveUp,
            A::RetryStop | A::RetryStart | A::RetryUnpause | A::RetryReboot { .. } => A::ClearTask,
            other => other,
        }
    }
}

/// The restart table for one server found at start (not deleted).
/// `power_state` is the guest's power state as last recorded, Rova's
/// stand-in for Nova's query of the driver.
pub fn on_restart(
    vm_state: VmState,
    task_state: Option<TaskState>,
    power_state: PowerState,
) -> RestartAction {
    use RestartAction as A;
    if task_state == Some(TaskState::Deleting) {
        return A::ResumeDelete;
    }
    if vm_state == VmState::Building {
        return A::ResumeBuild;
    }
    let Some(task) = task_state else {
        return A::Nothing;
    };
    if rebuild_task(task) && matches!(vm_state, VmState::Active | VmState::Stopped) {
        return A::ErrorState;
    }
    if writes_image(task) {
        return A::ClearTaskDeleteImage;
    }
    // Nova skips ERROR and SOFT_DELETED servers before it gets to the
    // reboot and power rows: nothing is retried on them.
    if matches!(vm_state, VmState::Error | VmState::SoftDeleted) {
        return A::ClearTask;
    }
    if let Some(hard) = retry_reboot(vm_state, task, power_state) {
        return A::RetryReboot { hard };
    }
    match task {
        TaskState::PoweringOff => A::RetryStop,
        TaskState::PoweringOn => A::RetryStart,
        TaskState::Unpausing if power_state == PowerState::Paused => A::RetryUnpause,
        _ => A::ClearTask,
    }
}

/// Nova's `_retry_reboot`: whether a reboot found at start is done again,
/// and then whether hard. A pending soft reboot of an ACTIVE server and a
/// pending hard reboot (of a server a hard reboot is allowed on) are
/// retried as they were; a started reboot whose guest is not running is
/// retried hard. A started reboot whose guest runs is over but for its
/// task state, which is cleared; a reboot not yet taken up (`rebooting`,
/// `rebooting_hard`) is not retried.
fn retry_reboot(vm: VmState, task: TaskState, power: PowerState) -> Option<bool> {
    use TaskState as T;
    use VmState as V;
    let running = power == PowerState::Running;
    match task {
        T::RebootPending if vm == V::Active => Some(!running),
        T::RebootPendingHard if matches!(vm, V::Active | V::Stopped | V::Paused | V::Suspended) => {
            Some(true)
        }
        T::RebootStarted | T::RebootStartedHard if !running => Some(true),
        _ => None,
    }
}

/// The task states of a rebuild in progress.
pub fn rebuild_task(t: TaskState) -> bool {
    use TaskState as T;
    matches!(
        t,
        T::Rebuilding | T::RebuildBlockDeviceMapping | T::RebuildSpawning
    )
}

/// Task states of an image upload (snapshot, backup, shelve).
pub fn writes_image(t: TaskState) -> bool {
    use TaskState as T;
    matches!(
        t,
        T::ImageSnapshotPending
            | T::ImageSnapshot
            | T::ImagePendingUpload
            | T::ImageUploading
            | T::ImageBackup
            | T::Shelving
            | T::ShelvingImagePendingUpload
            | T::ShelvingImageUploading
    )
}

/// Migration statuses of a move still under way.
pub const IN_FLIGHT: &[&str] = &[
    "accepted",
    "queued",
    "preparing",
    "running",
    "pre-migrating",
    "migrating",
    "post-migrating",
];

/// What the restart table looks at in a migration.
#[derive(Debug, Clone, Copy)]
pub struct MoveFound<'a> {
    /// `migration`, `resize`, `live-migration` or `evacuation`.
    pub kind: &'a str,
    pub status: &'a str,
    pub source: Option<&'a str>,
    pub dest: Option<&'a str>,
}

/// What the restart table looks at in a migration's server.
#[derive(Debug, Clone, Copy)]
pub struct ServerFound<'a> {
    pub vm_state: VmState,
    /// No task state.
    pub idle: bool,
    pub host: Option<&'a str>,
}

impl<'a> ServerFound<'a> {
    /// The server as the table sees it; None when it is deleted.
    pub fn of(i: &'a Instance) -> Option<Self> {
        (!i.deleted).then(|| ServerFound {
            vm_state: i.vm_state,
            idle: i.task_state.is_none(),
            host: i.host.as_deref(),
        })
    }
}

/// Where a migration found at start should end, if it has to change
/// (`inst` is its server, None when gone). A move in flight either
/// finished (its last write landed) or ends in `error`; an interrupted
/// revert leaves the resize to be confirmed or reverted again; a confirmed
/// resize's migration is `confirmed`.
///
/// Nova's `_init_instance` does not write migration records (it reverts a
/// cold move found in `resize_migrating` on the source and resets a live
/// migration's `migrating` task); Rova settles each record here so that no
/// migration stays in flight after a restart.
pub fn migration_on_restart(
    m: MoveFound<'_>,
    inst: Option<ServerFound<'_>>,
) -> Option<&'static str> {
    let status = m.status;
    let Some(i) = inst else {
        return (IN_FLIGHT.contains(&status) || status == "reverting").then_some("error");
    };
    let cold = matches!(m.kind, "resize" | "migration");
    if IN_FLIGHT.contains(&status) {
        // The move's last instance write landed (it names the destination
        // and no task is left): only the migration's own ending was lost.
        let at_dest = i.idle && m.dest.is_some() && i.host == m.dest;
        let moved = at_dest && i.host != m.source;
        return Some(match m.kind {
            _ if cold && at_dest && i.vm_state == VmState::Resized => "finished",
            "live-migration" if moved => "completed",
            "evacuation" if moved => "done",
            _ => "error",
        });
    }
    match status {
        // The revert did not finish: back on the source means it did in
        // all but the migration record; still resized means it can be
        // confirmed or reverted again.
        "reverting" if i.vm_state == VmState::Resized => Some("finished"),
        "reverting" if i.host == m.source => Some("reverted"),
        "reverting" => Some("error"),
        // Finished, but the finish step's write of the server (RESIZED,
        // at the destination) never landed: the move failed, the server
        // is still on its source with its task.
        "finished" if cold && i.vm_state != VmState::Resized && !i.idle => Some("error"),
        // Confirmed (the server left VERIFY_RESIZE) but the migration
        // still holds the source.
        "finished" | "confirming" if cold && i.vm_state != VmState::Resized => Some("confirmed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PowerState as P;
    use RestartAction as A;
    use TaskState as T;
    use VmState as V;

    /// Each resumable action, taken up fewer than MAX_TAKE_UPS times and
    /// then as many: a build is given up, a retried action cleared, a
    /// delete always carried through, the rest as the table says.
    #[test]
    fn resumption_is_bounded() {
        let rows: &[(A, A)] = &[
            (A::ResumeBuild, A::GiveUp),
            (A::ResumeDelete, A::ResumeDelete),
            (A::RetryStop, A::ClearTask),
            (A::RetryStart, A::ClearTask),
            (A::RetryUnpause, A::ClearTask),
            (A::RetryReboot { hard: true }, A::ClearTask),
            (A::ClearTask, A::ClearTask),
            (A::ErrorState, A::ErrorState),
            (A::Nothing, A::Nothing),
        ];
        for (act, given_up) in rows {
            for n in 0..MAX_TAKE_UPS {
                assert_eq!(act.bounded(n), *act, "{act:?} taken up {n} times");
            }
            assert_eq!(act.bounded(MAX_TAKE_UPS), *given_up, "{act:?}");
            assert_eq!(act.bounded(MAX_TAKE_UPS + 5), *given_up, "{act:?}");
        }
        assert!(A::GiveUp.clears_task());
    }

    /// One row per (vm_state, task_state) that a stop can leave behind,
    /// checked against Nova's `_init_instance` (nova/compute/manager.py).
    #[test]
    fn the_restart_table() {
        let rows: &[(V, Option<T>, A)] = &[
            // Idle servers: nothing to do (Nova only re-plugs VIFs and, with
            // resume_guests_state_on_host_boot, restarts guests).
            (V::Active, None, A::Nothing),
            (V::Stopped, None, A::Nothing),
            (V::Error, None, A::Nothing),
            (V::Resized, None, A::Nothing),
            (V::Shelved, None, A::Nothing),
            (V::ShelvedOffloaded, None, A::Nothing),
            (V::SoftDeleted, None, A::Nothing),
            // Builds cut short. Nova: ERROR ("failed to spawn correctly").
            // Rova differs on purpose: the build is resumed from its step.
            (V::Building, Some(T::Scheduling), A::ResumeBuild),
            (V::Building, Some(T::BlockDeviceMapping), A::ResumeBuild),
            (V::Building, Some(T::Networking), A::ResumeBuild),
            (V::Building, Some(T::Spawning), A::ResumeBuild),
            (V::Building, None, A::ResumeBuild),
            // Deletes cut short. Nova: the deletion is restarted, also on an
            // ERROR server (an exception to its ERROR skip) — as Rova.
            (V::Active, Some(T::Deleting), A::ResumeDelete),
            (V::Stopped, Some(T::Deleting), A::ResumeDelete),
            (V::Error, Some(T::Deleting), A::ResumeDelete),
            (V::Building, Some(T::Deleting), A::ResumeDelete),
            (V::SoftDeleted, Some(T::Deleting), A::ResumeDelete),
            // Rebuilds (and evacuations, which rebuild) cut short. Nova:
            // ERROR, for ACTIVE and STOPPED servers — as Rova.
            (V::Active, Some(T::Rebuilding), A::ErrorState),
            (V::Active, Some(T::RebuildBlockDeviceMapping), A::ErrorState),
            (V::Active, Some(T::RebuildSpawning), A::ErrorState),
            (V::Stopped, Some(T::Rebuilding), A::ErrorState),
            (V::Stopped, Some(T::RebuildSpawning), A::ErrorState),
            // A rebuild of an ERROR server. Nova skips ERROR servers and
            // leaves the task set; Rova clears it (the server stays ERROR).
            (V::Error, Some(T::Rebuilding), A::ClearTask),
            // Snapshots cut short. Nova: task cleared after the driver's
            // interrupted-snapshot cleanup, the Glance image left `queued`.
            // Rova also deletes the image, as a failed snapshot does.
            (
                V::Active,
                Some(T::ImageSnapshotPending),
                A::ClearTaskDeleteImage,
            ),
            (V::Active, Some(T::ImageSnapshot), A::ClearTaskDeleteImage),
            (
                V::Active,
                Some(T::ImagePendingUpload),
                A::ClearTaskDeleteImage,
            ),
            (V::Active, Some(T::ImageUploading), A::ClearTaskDeleteImage),
            (V::Stopped, Some(T::ImageUploading), A::ClearTaskDeleteImage),
            (V::Paused, Some(T::ImageSnapshot), A::ClearTaskDeleteImage),
            // Backups and shelves writing their image. Nova has no row for
            // them (the task stays set); Rova treats them as snapshots.
            (V::Active, Some(T::ImageBackup), A::ClearTaskDeleteImage),
            (V::Active, Some(T::Shelving), A::ClearTaskDeleteImage),
            (
                V::Active,
                Some(T::ShelvingImagePendingUpload),
                A::ClearTaskDeleteImage,
            ),
            (
                V::Stopped,
                Some(T::ShelvingImageUploading),
                A::ClearTaskDeleteImage,
            ),
            // Resize preparation. Nova: task cleared — as Rova.
            (V::Active, Some(T::ResizePrep), A::ClearTask),
            (V::Stopped, Some(T::ResizePrep), A::ClearTask),
            // A cold move cut short on the source. Nova: the driver reverts
            // the migration (finish_revert_migration) and clears the task.
            // Rova clears the task; the migration goes to `error`
            // (see `migration_on_restart`) and the server stays where its
            // record says.
            (V::Active, Some(T::ResizeMigrating), A::ClearTask),
            (V::Stopped, Some(T::ResizeMigrating), A::ClearTask),
            // Nova reverts ERROR servers in resize_migrating too; Rova clears.
            (V::Error, Some(T::ResizeMigrating), A::ClearTask),
            // Later resize steps, revert and confirm. Nova has no row (the
            // task stays set); Rova clears it, the migration is settled.
            (V::Active, Some(T::ResizeMigrated), A::ClearTask),
            (V::Active, Some(T::ResizeFinish), A::ClearTask),
            (V::Resized, Some(T::ResizeReverting), A::ClearTask),
            (V::Resized, Some(T::ResizeConfirming), A::ClearTask),
            // A live migration. Nova: task cleared (the guest is still on
            // this host) — as Rova.
            (V::Active, Some(T::Migrating), A::ClearTask),
            (V::Paused, Some(T::Migrating), A::ClearTask),
            // Reboots (see also `reboots_cut_short`). Nova retries a pending
            // reboot, and clears a started one whose guest runs — as Rova.
            // A reboot not yet taken up: Nova has no row, Rova clears.
            (V::Active, Some(T::Rebooting), A::ClearTask),
            (
                V::Active,
                Some(T::RebootPending),
                A::RetryReboot { hard: false },
            ),
            (V::Active, Some(T::RebootStarted), A::ClearTask),
            (V::Active, Some(T::RebootingHard), A::ClearTask),
            (
                V::Active,
                Some(T::RebootPendingHard),
                A::RetryReboot { hard: true },
            ),
            (V::Active, Some(T::RebootStartedHard), A::ClearTask),
            (V::Stopped, Some(T::RebootingHard), A::ClearTask),
            (
                V::Stopped,
                Some(T::RebootPendingHard),
                A::RetryReboot { hard: true },
            ),
            (
                V::Stopped,
                Some(T::RebootStartedHard),
                A::RetryReboot { hard: true },
            ),
            (V::Error, Some(T::RebootPendingHard), A::ClearTask),
            // Pause/unpause. Nova: with the guest running, task cleared and
            // the server ACTIVE (a pausing server is still ACTIVE in Rova's
            // record); a paused guest being unpaused is unpaused — as Rova.
            (V::Active, Some(T::Pausing), A::ClearTask),
            (V::Paused, Some(T::Unpausing), A::RetryUnpause),
            (V::Error, Some(T::Unpausing), A::ClearTask),
            // Power off/on. Nova retries the stop or the start — as Rova.
            (V::Active, Some(T::PoweringOff), A::RetryStop),
            (V::Rescued, Some(T::PoweringOff), A::RetryStop),
            (V::Stopped, Some(T::PoweringOn), A::RetryStart),
            // Tasks Nova has no row for (left set until a power-state sync
            // or an operator resets them); Rova clears them.
            (V::Active, Some(T::Suspending), A::ClearTask),
            (V::Suspended, Some(T::Resuming), A::ClearTask),
            (V::Active, Some(T::Rescuing), A::ClearTask),
            (V::Rescued, Some(T::Unrescuing), A::ClearTask),
            (V::Active, Some(T::UpdatingPassword), A::ClearTask),
            (V::Active, Some(T::SoftDeleting), A::ClearTask),
            (V::Shelved, Some(T::ShelvingOffloading), A::ClearTask),
            (V::ShelvedOffloaded, Some(T::Unshelving), A::ClearTask),
            // Nova skips SOFT_DELETED servers (task left set); Rova clears.
            (V::SoftDeleted, Some(T::Restoring), A::ClearTask),
            (V::SoftDeleted, Some(T::PoweringOn), A::ClearTask),
            // Nova skips ERROR servers; Rova clears their task (and does not
            // retry a stop or start there, as Nova would not).
            (V::Error, Some(T::PoweringOff), A::ClearTask),
            (V::Error, Some(T::PoweringOn), A::ClearTask),
        ];
        for &(vm, task, want) in rows {
            assert_eq!(on_restart(vm, task, usual_power(vm)), want, "{vm} {task:?}");
        }
    }

    /// The power state a server in `vm` usually has.
    fn usual_power(vm: V) -> P {
        match vm {
            V::Active | V::Rescued | V::Resized => P::Running,
            V::Paused => P::Paused,
            V::Suspended => P::Suspended,
            V::Building => P::NoState,
            _ => P::Shutdown,
        }
    }

    /// Nova's `_retry_reboot` and the rows after it, with the guest's power
    /// state: whether a reboot is retried, and whether hard; whether an
    /// unpause is.
    #[test]
    fn reboots_and_unpauses_cut_short() {
        let rows: &[(V, T, P, A)] = &[
            // Pending soft reboot: retried soft while the guest runs, hard
            // once it is down (Nova's get_reboot_type).
            (
                V::Active,
                T::RebootPending,
                P::Running,
                A::RetryReboot { hard: false },
            ),
            (
                V::Active,
                T::RebootPending,
                P::Shutdown,
                A::RetryReboot { hard: true },
            ),
            // A soft reboot is only allowed on ACTIVE servers.
            (V::Stopped, T::RebootPending, P::Shutdown, A::ClearTask),
            // Pending hard reboot: retried on the states that allow one.
            (
                V::Active,
                T::RebootPendingHard,
                P::Running,
                A::RetryReboot { hard: true },
            ),
            (
                V::Paused,
                T::RebootPendingHard,
                P::Paused,
                A::RetryReboot { hard: true },
            ),
            (
                V::Suspended,
                T::RebootPendingHard,
                P::Suspended,
                A::RetryReboot { hard: true },
            ),
            (V::Rescued, T::RebootPendingHard, P::Running, A::ClearTask),
            // Started: the guest down means retry hard; the guest running
            // means the reboot is done but for its task, which is cleared.
            (
                V::Active,
                T::RebootStarted,
                P::Shutdown,
                A::RetryReboot { hard: true },
            ),
            (V::Active, T::RebootStarted, P::Running, A::ClearTask),
            (
                V::Active,
                T::RebootStartedHard,
                P::Crashed,
                A::RetryReboot { hard: true },
            ),
            (V::Active, T::RebootStartedHard, P::Running, A::ClearTask),
            // Not yet taken up by the compute side: cleared.
            (V::Active, T::Rebooting, P::Shutdown, A::ClearTask),
            (V::Active, T::RebootingHard, P::Shutdown, A::ClearTask),
            // ERROR servers are skipped by Nova; Rova clears the task.
            (V::Error, T::RebootStartedHard, P::Shutdown, A::ClearTask),
            // An unpause whose guest already runs is over but for its task.
            (V::Paused, T::Unpausing, P::Paused, A::RetryUnpause),
            (V::Paused, T::Unpausing, P::Running, A::ClearTask),
        ];
        for &(vm, task, power, want) in rows {
            assert_eq!(
                on_restart(vm, Some(task), power),
                want,
                "{vm} {task} {power:?}"
            );
        }
    }

    /// Every state the table can be asked about has one answer, and the
    /// answers keep their invariants.
    #[test]
    fn the_table_is_total_and_consistent() {
        for &vm in V::ALL {
            let idle = if vm == V::Building {
                A::ResumeBuild
            } else {
                A::Nothing
            };
            for &p in &[P::Running, P::Shutdown] {
                assert_eq!(on_restart(vm, None, p), idle, "{vm}");
            }
            for &t in T::ALL {
                let a = on_restart(vm, Some(t), usual_power(vm));
                assert_ne!(
                    a,
                    A::Nothing,
                    "a task left behind is never ignored: {vm} {t}"
                );
                if t == T::Deleting {
                    assert_eq!(a, A::ResumeDelete, "{vm}");
                } else if vm == V::Building {
                    assert_eq!(a, A::ResumeBuild, "{t}");
                }
                assert_eq!(
                    a == A::ErrorState,
                    vm != V::Building && rebuild_task(t) && matches!(vm, V::Active | V::Stopped),
                    "{vm} {t}"
                );
                if a == A::ClearTaskDeleteImage {
                    assert!(writes_image(t), "{t}");
                }
            }
        }
    }

    fn mv<'a>(kind: &'a str, status: &'a str) -> MoveFound<'a> {
        MoveFound {
            kind,
            status,
            source: Some("src"),
            dest: Some("dst"),
        }
    }

    fn seen(vm_state: VmState, idle: bool, host: &str) -> Option<ServerFound<'_>> {
        Some(ServerFound {
            vm_state,
            idle,
            host: Some(host),
        })
    }

    #[test]
    fn migrations_cut_short_are_settled() {
        use VmState::{Active, Resized};
        let cases = [
            // Moves in flight end in error unless their last write landed.
            (
                mv("resize", "pre-migrating"),
                seen(Active, false, "src"),
                Some("error"),
            ),
            (
                mv("resize", "migrating"),
                seen(Active, false, "src"),
                Some("error"),
            ),
            (
                mv("resize", "migrating"),
                seen(Resized, true, "dst"),
                Some("finished"),
            ),
            (
                mv("live-migration", "running"),
                seen(Active, true, "dst"),
                Some("completed"),
            ),
            (
                mv("live-migration", "running"),
                seen(Active, true, "src"),
                Some("error"),
            ),
            (
                mv("evacuation", "pre-migrating"),
                seen(Active, true, "dst"),
                Some("done"),
            ),
            (mv("resize", "migrating"), None, Some("error")),
            (mv("evacuation", "accepted"), None, Some("error")),
            // Finished, but the server's finishing write was lost.
            (
                mv("resize", "finished"),
                seen(Active, false, "src"),
                Some("error"),
            ),
            // Reverts and confirms cut short.
            (
                mv("resize", "reverting"),
                seen(Resized, false, "dst"),
                Some("finished"),
            ),
            (
                mv("resize", "reverting"),
                seen(Active, true, "src"),
                Some("reverted"),
            ),
            (
                mv("migration", "finished"),
                seen(Active, true, "dst"),
                Some("confirmed"),
            ),
            // Still to be confirmed, an evacuation done, a move over: unchanged.
            (mv("resize", "finished"), seen(Resized, true, "dst"), None),
            (mv("evacuation", "done"), seen(Active, true, "dst"), None),
            (mv("resize", "confirmed"), None, None),
        ];
        for (m, i, want) in cases {
            assert_eq!(migration_on_restart(m, i), want, "{m:?} {i:?}");
        }
    }
}
