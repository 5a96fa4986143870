//! Which server actions Nova admits in which states: the action table of
//! `nova/compute/api.py` (`check_instance_lock`, `check_instance_state`,
//! `check_instance_host`) as data, plus the check itself. Pure; the compute
//! service calls [`admit`] before writing any intent.

use crate::error::Fault;
use crate::states::{TaskState, VmState};

/// Every server action with a state rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Delete,
    ForceDelete,
    Restore,
    Stop,
    Start,
    RebootSoft,
    RebootHard,
    Rebuild,
    Resize,
    ConfirmResize,
    RevertResize,
    Migrate,
    LiveMigrate,
    Evacuate,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Shelve,
    ShelveOffload,
    Unshelve,
    Rescue,
    Unrescue,
    ChangePassword,
    CreateImage,
    CreateBackup,
    TriggerCrashDump,
    ResetState,
    InjectNetworkInfo,
    Lock,
    Unlock,
    ConsoleOutput,
    RemoteConsole,
    UpdateMetadata,
    DeleteMetadata,
    AttachInterface,
    DetachInterface,
    AttachVolume,
    DetachVolume,
    SwapVolume,
}

/// The task_state precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRule {
    /// Must be null.
    Idle,
    /// Not checked.
    Any,
    /// Nova's ALLOW_REBOOT list.
    AllowReboot,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The name Nova uses in its 409 message.
    pub name: &'static str,
    /// Allowed vm_states (`None` = any).
    pub vm: Option<&'static [VmState]>,
    pub task: TaskRule,
    /// `launched_at` must be set.
    pub launched: bool,
    /// Blocked for non-admins while locked.
    pub lock_checked: bool,
    /// `instance.host` must be set (409 "not ready" otherwise).
    pub host: bool,
}

use VmState as V;

const ALLOW_REBOOT: &[Option<TaskState>] = &[
    None,
    Some(TaskState::Rebooting),
    Some(TaskState::RebootPending),
    Some(TaskState::RebootStarted),
    Some(TaskState::Resuming),
    Some(TaskState::RebootingHard),
    Some(TaskState::Unpausing),
    Some(TaskState::Pausing),
    Some(TaskState::Suspending),
];

const fn rule(
    name: &'static str,
    vm: Option<&'static [VmState]>,
    task: TaskRule,
    lock_checked: bool,
) -> Rule {
    Rule {
        name,
        vm,
        task,
        launched: true,
        lock_checked,
        host: false,
    }
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Delete,
        Action::ForceDelete,
        Action::Restore,
        Action::Stop,
        Action::Start,
        Action::RebootSoft,
        Action::RebootHard,
        Action::Rebuild,
        Action::Resize,
        Action::ConfirmResize,
        Action::RevertResize,
        Action::Migrate,
        Action::LiveMigrate,
        Action::Evacuate,
        Action::Pause,
        Action::Unpause,
        Action::Suspend,
        Action::Resume,
        Action::Shelve,
        Action::ShelveOffload,
        Action::Unshelve,
        Action::Rescue,
        Action::Unrescue,
        Action::ChangePassword,
        Action::CreateImage,
        Action::CreateBackup,
        Action::TriggerCrashDump,
        Action::ResetState,
        Action::InjectNetworkInfo,
        Action::Lock,
        Action::Unlock,
        Action::ConsoleOutput,
        Action::RemoteConsole,
        Action::UpdateMetadata,
        Action::DeleteMetadata,
        Action::AttachInterface,
        Action::DetachInterface,
        Action::AttachVolume,
        Action::DetachVolume,
        Action::SwapVolume,
    ];

    /// Nova's admission rule for this action.
    pub fn rule(self) -> Rule {
        use TaskRule::*;
        const ACTIVE: &[VmState] = &[V::Active];
        const IMAGE_STATES: &[VmState] = &[V::Active, V::Stopped, V::Paused, V::Suspended];
        const META: &[VmState] = &[V::Active, V::Paused, V::Suspended, V::Stopped];
        const INTERFACES: &[VmState] = &[V::Active, V::Paused, V::Stopped];
        const VOLUMES: &[VmState] = &[
            V::Active,
            V::Paused,
            V::Stopped,
            V::Resized,
            V::SoftDeleted,
            V::Shelved,
            V::ShelvedOffloaded,
        ];
        match self {
            Action::Delete => Rule {
                launched: false,
                ..rule("delete", None, Any, true)
            },
            Action::ForceDelete => Rule {
                launched: false,
                ..rule("forceDelete", None, Any, true)
            },
            Action::Restore => rule("restore", Some(&[V::SoftDeleted]), Idle, true),
            Action::Stop => Rule {
                host: true,
                ..rule("stop", Some(&[V::Active, V::Error]), Idle, true)
            },
            Action::Start => Rule {
                host: true,
                ..rule("start", Some(&[V::Stopped]), Idle, true)
            },
            Action::RebootSoft => rule("reboot", Some(ACTIVE), Idle, true),
            Action::RebootHard => rule(
                "reboot",
                Some(&[V::Active, V::Stopped, V::Paused, V::Suspended, V::Error]),
                AllowReboot,
                true,
            ),
            Action::Rebuild => rule(
                "rebuild",
                Some(&[V::Active, V::Stopped, V::Error]),
                Idle,
                true,
            ),
            Action::Resize => Rule {
                host: true,
                ..rule("resize", Some(&[V::Active, V::Stopped]), Idle, true)
            },
            Action::ConfirmResize => rule("confirmResize", Some(&[V::Resized]), Idle, true),
            Action::RevertResize => rule("revertResize", Some(&[V::Resized]), Idle, true),
            Action::Migrate => Rule {
                host: true,
                ..rule("migrate", Some(&[V::Active, V::Stopped]), Idle, true)
            },
            Action::LiveMigrate => {
                rule("os-migrateLive", Some(&[V::Active, V::Paused]), Idle, true)
            }
            Action::Evacuate => rule(
                "evacuate",
                Some(&[V::Active, V::Stopped, V::Error]),
                Any,
                false,
            ),
            Action::Pause => rule("pause", Some(ACTIVE), Idle, true),
            Action::Unpause => rule("unpause", Some(&[V::Paused]), Idle, true),
            Action::Suspend => rule("suspend", Some(ACTIVE), Idle, true),
            Action::Resume => rule("resume", Some(&[V::Suspended]), Idle, true),
            Action::Shelve => rule("shelve", Some(IMAGE_STATES), Idle, true),
            Action::ShelveOffload => rule("shelveOffload", Some(&[V::Shelved]), Idle, true),
            Action::Unshelve => rule(
                "unshelve",
                Some(&[V::Shelved, V::ShelvedOffloaded]),
                Idle,
                true,
            ),
            Action::Rescue => rule(
                "rescue",
                Some(&[V::Active, V::Stopped, V::Error]),
                Idle,
                true,
            ),
            Action::Unrescue => rule("unrescue", Some(&[V::Rescued]), Idle, true),
            Action::ChangePassword => rule("changePassword", Some(ACTIVE), Idle, true),
            Action::CreateImage => rule("createImage", Some(IMAGE_STATES), Idle, false),
            Action::CreateBackup => rule("createBackup", Some(IMAGE_STATES), Idle, false),
            Action::TriggerCrashDump => Rule {
                host: true,
                ..rule(
                    "trigger_crash_dump",
                    Some(&[V::Active, V::Paused, V::Rescued, V::Resized, V::Error]),
                    Idle,
                    true,
                )
            },
            Action::ResetState => Rule {
                launched: false,
                ..rule("os-resetState", None, Any, false)
            },
            Action::InjectNetworkInfo => Rule {
                launched: false,
                ..rule("injectNetworkInfo", None, Any, true)
            },
            Action::Lock => Rule {
                launched: false,
                ..rule("lock", None, Any, false)
            },
            Action::Unlock => Rule {
                launched: false,
                ..rule("unlock", None, Any, false)
            },
            Action::ConsoleOutput => Rule {
                launched: false,
                host: true,
                ..rule("get_console_output", None, Any, false)
            },
            Action::RemoteConsole => Rule {
                launched: false,
                host: true,
                ..rule("get_console", None, Any, false)
            },
            Action::UpdateMetadata => rule("update metadata", Some(META), Any, true),
            Action::DeleteMetadata => rule("delete metadata", Some(META), Any, true),
            Action::AttachInterface => Rule {
                launched: false,
                ..rule("attach_interface", Some(INTERFACES), Idle, true)
            },
            Action::DetachInterface => Rule {
                launched: false,
                ..rule("detach_interface", Some(INTERFACES), Idle, true)
            },
            Action::AttachVolume => Rule {
                launched: false,
                ..rule("attach_volume", Some(VOLUMES), Idle, true)
            },
            Action::DetachVolume => Rule {
                launched: false,
                ..rule("detach_volume", Some(VOLUMES), Idle, true)
            },
            Action::SwapVolume => rule(
                "swap_volume",
                Some(&[V::Active, V::Paused, V::Resized]),
                Idle,
                true,
            ),
        }
    }
}

/// The state of a server as admission sees it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub uuid: &'a str,
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    pub launched: bool,
    pub locked: bool,
    pub has_host: bool,
}

/// Nova's checks in Nova's order: lock (non-admins), then vm_state,
/// task_state, launched_at, then host.
pub fn admit(action: Action, s: &Subject<'_>, is_admin: bool) -> Result<(), Fault> {
    let r = action.rule();
    if r.lock_checked && s.locked && !is_admin {
        return Err(Fault::conflict(format!("Instance {} is locked", s.uuid)));
    }
    if let Some(vms) = r.vm {
        if !vms.contains(&s.vm_state) {
            return Err(Fault::invalid_state(
                r.name,
                s.uuid,
                "vm_state",
                s.vm_state.as_str(),
            ));
        }
    }
    let task_ok = match r.task {
        TaskRule::Any => true,
        TaskRule::Idle => s.task_state.is_none(),
        TaskRule::AllowReboot => ALLOW_REBOOT.contains(&s.task_state),
    };
    if !task_ok {
        let t = s.task_state.map(|t| t.as_str()).unwrap_or("None");
        return Err(Fault::invalid_state(r.name, s.uuid, "task_state", t));
    }
    if r.launched && !s.launched {
        return Err(Fault::invalid_state(r.name, s.uuid, "launched_at", "None"));
    }
    if r.host && !s.has_host {
        return Err(Fault::conflict(format!("Instance {} is not ready", s.uuid)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subj(vm: VmState, task: Option<TaskState>) -> Subject<'static> {
        Subject {
            uuid: "u",
            vm_state: vm,
            task_state: task,
            launched: true,
            locked: false,
            has_host: true,
        }
    }

    /// Every action × every (vm_state, task_state) pair against the table
    /// written out independently from nova-facts §b.
    #[test]
    fn every_action_every_state() {
        let expected_vms = |a: Action| -> Option<Vec<VmState>> {
            use Action::*;
            Some(match a {
                Delete | ForceDelete | ResetState | InjectNetworkInfo | Lock | Unlock
                | ConsoleOutput | RemoteConsole => return None,
                Restore => vec![V::SoftDeleted],
                Stop => vec![V::Active, V::Error],
                Start => vec![V::Stopped],
                RebootSoft | Pause | Suspend | ChangePassword => vec![V::Active],
                RebootHard => vec![V::Active, V::Stopped, V::Paused, V::Suspended, V::Error],
                Rebuild | Rescue | Evacuate => vec![V::Active, V::Stopped, V::Error],
                Resize | Migrate => vec![V::Active, V::Stopped],
                ConfirmResize | RevertResize => vec![V::Resized],
                LiveMigrate => vec![V::Active, V::Paused],
                Unpause => vec![V::Paused],
                Resume => vec![V::Suspended],
                Shelve | CreateImage | CreateBackup => {
                    vec![V::Active, V::Stopped, V::Paused, V::Suspended]
                }
                ShelveOffload => vec![V::Shelved],
                Unshelve => vec![V::Shelved, V::ShelvedOffloaded],
                Unrescue => vec![V::Rescued],
                AttachInterface | DetachInterface => vec![V::Active, V::Paused, V::Stopped],
                AttachVolume | DetachVolume => vec![
                    V::Active,
                    V::Paused,
                    V::Stopped,
                    V::Resized,
                    V::SoftDeleted,
                    V::Shelved,
                    V::ShelvedOffloaded,
                ],
                SwapVolume => vec![V::Active, V::Paused, V::Resized],
                TriggerCrashDump => vec![V::Active, V::Paused, V::Rescued, V::Resized, V::Error],
                UpdateMetadata | DeleteMetadata => {
                    vec![V::Active, V::Paused, V::Suspended, V::Stopped]
                }
            })
        };
        let mut tasks: Vec<Option<TaskState>> = vec![None];
        tasks.extend(TaskState::ALL.iter().map(|t| Some(*t)));
        for &a in Action::ALL {
            for &vm in VmState::ALL {
                for &t in &tasks {
                    let vm_ok = expected_vms(a).map(|v| v.contains(&vm)).unwrap_or(true);
                    let task_ok = match a {
                        Action::RebootHard => ALLOW_REBOOT.contains(&t),
                        Action::Delete
                        | Action::ForceDelete
                        | Action::ResetState
                        | Action::InjectNetworkInfo
                        | Action::Lock
                        | Action::Unlock
                        | Action::ConsoleOutput
                        | Action::RemoteConsole
                        | Action::Evacuate
                        | Action::UpdateMetadata
                        | Action::DeleteMetadata => true,
                        _ => t.is_none(),
                    };
                    let got = admit(a, &subj(vm, t), false);
                    assert_eq!(got.is_ok(), vm_ok && task_ok, "{a:?} {vm:?} {t:?}: {got:?}");
                    if let Err(e) = got {
                        assert_eq!(e.code, 409);
                        let attr = if !vm_ok { "vm_state" } else { "task_state" };
                        assert!(e.message.contains(attr), "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn lock_rules() {
        let mut s = subj(V::Active, None);
        s.locked = true;
        let e = admit(Action::Pause, &s, false).unwrap_err();
        assert_eq!(e.message, "Instance u is locked");
        assert!(admit(Action::Pause, &s, true).is_ok());
        // Not lock-checked.
        assert!(admit(Action::CreateImage, &s, false).is_ok());
        assert!(admit(Action::Unlock, &s, false).is_ok());
        // Lock is checked before state.
        s.vm_state = V::Paused;
        assert!(admit(Action::Pause, &s, false)
            .unwrap_err()
            .message
            .contains("locked"));
    }

    #[test]
    fn launched_and_host() {
        let mut s = subj(V::Active, None);
        s.launched = false;
        let e = admit(Action::RebootSoft, &s, false).unwrap_err();
        assert!(e.message.ends_with("launched_at None"));
        assert!(admit(Action::Delete, &s, false).is_ok());
        s.launched = true;
        s.has_host = false;
        assert_eq!(
            admit(Action::Stop, &s, false).unwrap_err().message,
            "Instance u is not ready"
        );
        assert_eq!(
            admit(Action::Pause, &subj(V::Paused, None), false)
                .unwrap_err()
                .message,
            "Cannot 'pause' instance u while it is in vm_state paused"
        );
    }
}
