//! The operations rows: one per server with an operation in flight (a
//! build, a delete, an action with a task state), keyed by the server's
//! uuid, saying what the operation is, the step it reached, the process
//! running it and how many times it was taken up again after its process
//! died, with the arguments from its request that resuming it needs
//! (a build's NIC plan).
//!
//! The rows follow the servers' writes ([`next`], applied by every
//! instance write through `Compute::update_instance*` and by the create):
//! a row is queued before the server's write that starts or moves its
//! operation, so a committed in-flight server always has its row
//! committed too (the writer commits in queue order), and it goes with
//! the write that ends the operation. The server's record stays the
//! authority on whether an operation is in flight; settling at start
//! removes a row whose server has none ([`stale`]). How often an
//! operation was taken up bounds its resumption
//! ([`rova_core::restart::RestartAction::bounded`]).

use super::owners::{in_flight, state_in_flight};
use chrono::{DateTime, Utc};
use rova_core::model::Instance;
use rova_core::states::{TaskState, VmState};
use serde::{Deserialize, Serialize};

/// An operation in flight on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub instance_uuid: String,
    /// This run of the operation: kept across takeovers, new for each
    /// operation the server starts.
    pub op_id: String,
    /// What the operation is: the instance action that started it
    /// (`create`, `pause`, `resize`, …), or what the server's state says
    /// when no action was named (`delete` for a delete, else the first
    /// task state).
    pub kind: String,
    /// The step reached: the server's task state (`building` for a build,
    /// whose steps are its record's task state).
    pub step: String,
    /// The process running it (the server's `op_owner`).
    pub owner: Option<String>,
    /// How many times a process took it up after its owner died.
    pub attempts: u32,
    pub started_at: DateTime<Utc>,
    /// What the operation needs from its request to be carried out, kept
    /// for a process that resumes it: a build's NIC plan (`nics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
}

/// The step a server's record says its operation reached: its task
/// state; for a build, `building` throughout (a build's own steps —
/// scheduling, networking, block device mapping, spawning — are its
/// record's task state, not written to the row again: four more row
/// writes per create cost a sixth of the create rate).
pub fn step_of(i: &Instance) -> String {
    match i.task_state {
        _ if i.vm_state == VmState::Building => "building".into(),
        Some(t) => t.as_str().to_string(),
        None => String::new(),
    }
}

/// The kind of an operation no action named, from the state it put the
/// server in.
fn kind_of(i: &Instance) -> String {
    use rova_core::states::TaskState as T;
    match (i.vm_state, i.task_state) {
        (VmState::Building, _) => "create".into(),
        (_, Some(T::Deleting)) => "delete".into(),
        (_, Some(t)) => t.as_str().to_string(),
        (_, None) => String::new(),
    }
}

/// The row for server `i` after one of its writes (pure): `row` is the row
/// as it was, `before` the server's `(task state, vm state)` before the
/// write, `kind` the action the write records, if it named one. None: no
/// row (no operation in flight). While the server stays in flight the
/// operation goes on — its step and owner follow the record, and an owner
/// replacing another (a takeover's claim) counts one more attempt —
/// unless the write is a named action that moved the server's state (a
/// hard reboot over a soft one): that, or a server that was idle, starts
/// a new operation.
pub fn next(
    row: Option<&Operation>,
    before: (Option<TaskState>, VmState),
    i: &Instance,
    kind: Option<&str>,
    now: DateTime<Utc>,
) -> Option<Operation> {
    if !in_flight(i) {
        return None;
    }
    let was_in_flight = state_in_flight(before.0, before.1);
    let moved = before != (i.task_state, i.vm_state);
    match row {
        Some(r) if was_in_flight && !(moved && kind.is_some()) => {
            let taken_over = r.owner.is_some() && i.op_owner.is_some() && r.owner != i.op_owner;
            Some(Operation {
                step: step_of(i),
                owner: i.op_owner.clone(),
                attempts: r.attempts + u32::from(taken_over),
                ..r.clone()
            })
        }
        _ => Some(start(i, kind.filter(|_| moved), now)),
    }
}

/// The row of an operation server `i` starts now.
pub fn start(i: &Instance, kind: Option<&str>, now: DateTime<Utc>) -> Operation {
    Operation {
        instance_uuid: i.uuid.clone(),
        op_id: uuid::Uuid::new_v4().to_string(),
        kind: kind.map_or_else(|| kind_of(i), str::to_string),
        step: step_of(i),
        owner: i.op_owner.clone(),
        attempts: 0,
        started_at: now,
        args: None,
    }
}

/// Whether the row of server `server` (None: gone) outlived its
/// operation: the server has no operation in flight.
pub fn stale(server: Option<&Instance>) -> bool {
    !server.is_some_and(in_flight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rova_core::states::TaskState as T;

    fn server(vm: VmState, task: Option<T>, owner: Option<&str>) -> Instance {
        let mut i: Instance = serde_json::from_str(
            r#"{
            "id": 1, "uuid": "s1", "display_name": "s", "display_description": null,
            "project_id": "p", "user_id": "u", "image_ref": "img",
            "flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                       "ephemeral": 0, "swap": 0, "extra_specs": {}},
            "vm_state": "active", "task_state": null, "power_state": 1, "progress": 0,
            "host": "h", "node": "h", "availability_zone": "nova", "hostname": "s",
            "key_name": null, "key_data": null, "user_data": null, "config_drive": false,
            "access_ip_v4": null, "access_ip_v6": null, "auto_disk_config": false,
            "metadata": {}, "tags": [], "locked_by": null, "locked_reason": null,
            "launch_index": 0, "reservation_id": "r", "kernel_id": "", "ramdisk_id": "",
            "root_device_name": null, "created_at": "2026-12-06T00:00:00Z",
            "updated_at": "2026-12-06T00:00:00Z", "launched_at": null, "terminated_at": null,
            "deleted_at": null, "deleted": false, "vifs": [], "security_groups": [],
            "fault": null, "scheduler_hints": {}, "block_device_mapping": [], "personality": []
        }"#,
        )
        .expect("instance");
        i.vm_state = vm;
        i.task_state = task;
        i.op_owner = owner.map(str::to_string);
        i
    }

    #[test]
    fn a_row_lives_exactly_while_an_operation_is_in_flight() {
        let now = Utc::now();
        let idle = server(VmState::Active, None, None);
        let was_idle = (None, VmState::Active);
        assert_eq!(next(None, was_idle, &idle, None, now), None);
        let pausing = server(VmState::Active, Some(T::Pausing), Some("a"));
        let row = next(None, was_idle, &pausing, Some("pause"), now).expect("started");
        assert_eq!(
            (row.kind.as_str(), row.step.as_str(), row.owner.as_deref()),
            ("pause", "pausing", Some("a"))
        );
        assert_eq!(row.attempts, 0);
        // Done: the row goes.
        let paused = server(VmState::Paused, None, None);
        let was_pausing = (Some(T::Pausing), VmState::Active);
        assert_eq!(next(Some(&row), was_pausing, &paused, None, now), None);
        // A lock recorded while it pauses does not make it another one.
        let locked = next(Some(&row), was_pausing, &pausing, Some("lock"), now);
        assert_eq!(locked.as_ref(), Some(&row));
    }

    #[test]
    fn steps_move_the_row_and_a_takeover_counts_an_attempt() {
        let now = Utc::now();
        let building = server(VmState::Building, Some(T::Scheduling), Some("a"));
        let row = next(None, (None, VmState::Active), &building, None, now).expect("build");
        assert_eq!(
            (row.kind.as_str(), row.step.as_str()),
            ("create", "building")
        );
        // A build's steps are its record's task state: the row stays.
        let spawning = server(VmState::Building, Some(T::Spawning), Some("a"));
        let was = (Some(T::Scheduling), VmState::Building);
        let moved = next(Some(&row), was, &spawning, None, now).expect("moved");
        assert_eq!(moved, row);
        // An action's steps move its row.
        let rebooting = server(VmState::Active, Some(T::RebootPending), Some("a"));
        let first = start(&rebooting, Some("reboot"), now);
        let started = server(VmState::Active, Some(T::RebootStarted), Some("a"));
        let was_pending = (Some(T::RebootPending), VmState::Active);
        let on = next(Some(&first), was_pending, &started, None, now).expect("step");
        assert_eq!(
            (on.step.as_str(), &on.op_id),
            ("reboot_started", &first.op_id)
        );
        // Another process claims it after a's death.
        let claimed = server(VmState::Building, Some(T::Spawning), Some("b"));
        let was = (Some(T::Spawning), VmState::Building);
        let taken = next(Some(&moved), was, &claimed, None, now).expect("taken");
        assert_eq!((taken.owner.as_deref(), taken.attempts), (Some("b"), 1));
        assert_eq!(taken.op_id, row.op_id, "the same operation goes on");
        // A write beside it (no owner change) counts nothing.
        let again = next(Some(&taken), was, &claimed, None, now).expect("same");
        assert_eq!(again, taken);
    }

    #[test]
    fn a_new_operation_replaces_a_row_left_behind() {
        let now = Utc::now();
        let building = server(VmState::Building, None, Some("a"));
        let old = start(&building, None, now);
        // The server went idle without its row going (a crash between the
        // two writes); the next action starts afresh.
        let stopping = server(VmState::Active, Some(T::PoweringOff), Some("b"));
        let row = next(
            Some(&old),
            (None, VmState::Active),
            &stopping,
            Some("stop"),
            now,
        )
        .expect("new");
        assert_ne!(row.op_id, old.op_id);
        assert_eq!((row.kind.as_str(), row.attempts), ("stop", 0));
        let deleting = server(VmState::Active, Some(T::Deleting), Some("b"));
        assert_eq!(start(&deleting, None, now).kind, "delete");
        // A hard reboot over a soft one is a new operation.
        let soft = server(VmState::Active, Some(T::Rebooting), Some("b"));
        let first = start(&soft, Some("reboot"), now);
        let hard = server(VmState::Active, Some(T::RebootingHard), Some("b"));
        let was = (Some(T::Rebooting), VmState::Active);
        let second = next(Some(&first), was, &hard, Some("reboot"), now).expect("hard");
        assert_ne!(second.op_id, first.op_id);
    }

    #[test]
    fn a_row_is_stale_once_its_server_has_nothing_in_flight() {
        let pausing = server(VmState::Active, Some(T::Pausing), Some("a"));
        assert!(!stale(Some(&pausing)));
        assert!(stale(Some(&server(VmState::Paused, None, None))));
        assert!(stale(None));
    }
}
