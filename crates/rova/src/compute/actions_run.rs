//! Server actions (`POST /servers/{id}/action`): the typed command, its
//! parsing per microversion, and how each runs. Admission (lock, vm_state,
//! task_state, launched_at, host) is checked inside the same compare-and-
//! swap that writes the new task_state, so two concurrent actions cannot
//! both be admitted. The work then runs in the background through the
//! driver, and the final state is written when it finishes.

use super::actions::{self, Logged};
pub use super::actions_parse::{parse, ServerAction};
use super::driver::DriverOp;
use super::servers;
use crate::app::App;
use crate::compute::views::Links;
use crate::http::Ctx;
use rova_core::admission::{admit, Action, Subject};
use rova_core::model::Instance;
use rova_core::states::{PowerState, TaskState, VmState};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) fn subject(i: &Instance) -> Subject<'_> {
    Subject {
        uuid: &i.uuid,
        vm_state: i.vm_state,
        task_state: i.task_state,
        launched: i.launched_at.is_some(),
        locked: i.locked(),
        has_host: i.host.is_some(),
    }
}

/// A simple state transition: task set at once, intermediate task states,
/// then a final vm/power state.
struct Transition {
    action: Action,
    /// The driver operation; its name is the instance-action name.
    op: DriverOp,
    event: &'static str,
    policy: &'static str,
    first_task: TaskState,
    then: &'static [TaskState],
    final_vm: Option<VmState>,
    final_power: PowerState,
}

/// Admits the action and writes its first task_state in one CAS, with the
/// instance action `log` records (if any) in the same transaction.
pub(crate) async fn begin(
    app: &App,
    ctx: &Ctx,
    id: &str,
    action: Action,
    task: Option<TaskState>,
    log: Option<Logged>,
) -> Result<Arc<Instance>, Fault> {
    begin_with(app, ctx, id, action, task, log, |_, _| Ok(())).await
}

/// Like [`begin`], also applying `mutate` in the same compare-and-swap.
pub(crate) async fn begin_with(
    app: &App,
    ctx: &Ctx,
    id: &str,
    action: Action,
    task: Option<TaskState>,
    log: Option<Logged>,
    mutate: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>) -> Result<(), Fault>,
) -> Result<Arc<Instance>, Fault> {
    if let Some(log) = log {
        return begin_guarded(app, ctx, id, (action, task), (log, None), mutate).await;
    }
    servers::visible(app, ctx, id)?;
    let now = app.clock.now();
    let change = admitting(app, ctx, id, (action, task), mutate, now);
    let (inst, _) = app.compute.update_instance(id, now, change).await?;
    Ok(inst)
}

/// Like [`begin_with`], with `guard` checked on the instance row in the
/// admitting transaction (a resize's quota).
pub(crate) async fn begin_guarded(
    app: &App,
    ctx: &Ctx,
    id: &str,
    (action, task): (Action, Option<TaskState>),
    (log, guard): (Logged, Option<crate::store::Guard>),
    mutate: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>) -> Result<(), Fault>,
) -> Result<Arc<Instance>, Fault> {
    let along = super::Along { guard, ports: None };
    begin_along(app, ctx, id, (action, task), (log, along), mutate).await
}

/// Like [`begin_guarded`], with what `along` carries (a guard, port rows)
/// written in the admitting transaction.
pub(crate) async fn begin_along(
    app: &App,
    ctx: &Ctx,
    id: &str,
    (action, task): (Action, Option<TaskState>),
    (log, along): (Logged, super::Along<'_>),
    mutate: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>) -> Result<(), Fault>,
) -> Result<Arc<Instance>, Fault> {
    servers::visible(app, ctx, id)?;
    let now = app.clock.now();
    let change = admitting(app, ctx, id, (action, task), mutate, now);
    let (inst, _) = app
        .compute
        .update_instance_along(id, ctx, now, log, along, change)
        .await?;
    Ok(inst)
}

/// The change that admits `action` on a server and sets its first task
/// state, then applies `mutate`.
fn admitting<'a>(
    app: &'a App,
    ctx: &Ctx,
    id: &'a str,
    (action, task): (Action, Option<TaskState>),
    mutate: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>) -> Result<(), Fault> + 'a,
    now: chrono::DateTime<chrono::Utc>,
) -> impl FnOnce(&mut Instance) -> Result<(), Fault> + 'a {
    let is_admin = ctx.is_admin();
    move |i: &mut Instance| {
        if i.deleted {
            return Err(Fault::instance_not_found(id));
        }
        admit(action, &subject(i), is_admin)?;
        super::driver::require(app.compute.driver.as_ref(), action)?;
        if task.is_some() {
            i.task_state = task;
        }
        mutate(i, now)
    }
}

/// Why an operation stopped before its end.
#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    pub details: String,
}

impl StepError {
    pub fn superseded() -> Self {
        StepError {
            message: "superseded".into(),
            details: "the server was deleted or changed by another operation".into(),
        }
    }
    /// (message, details) for the instance-action event.
    pub fn pair(&self) -> (&str, &str) {
        (&self.message, &self.details)
    }
}

/// Walks an admitted operation through its task states: after `first`,
/// each of `then` in turn (one driver step apart), then asks the driver to
/// carry out `op`, then applies `finish` with the task cleared. Stops if
/// the server was deleted or another writer changed the task_state
/// meanwhile. When the driver fails, the task_state is reverted to idle,
/// the vm_state is kept (Nova's `reverts_task_state`), and the fault is
/// recorded on the instance.
pub(crate) async fn advance(
    app: &App,
    id: &str,
    op: DriverOp,
    first: TaskState,
    then: &[TaskState],
    finish: impl FnOnce(&mut Instance, chrono::DateTime<chrono::Utc>),
) -> Result<(), StepError> {
    let delay = app.compute.driver.step_delay();
    let mut expect = first;
    for next in then {
        tokio::time::sleep(delay).await;
        let now = app.clock.now();
        app.compute
            .update_instance(id, now, |i| {
                if i.deleted || i.task_state != Some(expect) {
                    return Err(Fault::conflict("superseded"));
                }
                i.task_state = Some(*next);
                Ok(())
            })
            .await
            .map_err(|_| StepError::superseded())?;
        expect = *next;
    }
    tokio::time::sleep(delay).await;
    let inst = app
        .compute
        .instances
        .get(id)
        .ok_or_else(StepError::superseded)?;
    let runs_on = op.rebuilt_on().or(inst.host.as_deref());
    if let Err(f) = app.compute.driver_for(runs_on).perform(&op, &inst).await {
        record_fault(app, id, &f, Some(expect)).await;
        return Err(StepError {
            message: f.message,
            details: f.details,
        });
    }
    let now = app.clock.now();
    app.compute
        .update_instance(id, now, |i| {
            if i.deleted || i.task_state != Some(expect) {
                return Err(Fault::conflict("superseded"));
            }
            i.task_state = None;
            finish(i, now);
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|_| StepError::superseded())
}

/// Records a driver failure as the instance fault, clearing the task
/// state when it is still `task` (Nova's `reverts_task_state`).
pub(crate) async fn record_fault(
    app: &App,
    id: &str,
    f: &super::driver::DriverFault,
    task: Option<TaskState>,
) {
    let now = app.clock.now();
    let _ = app
        .compute
        .update_instance(id, now, |i| {
            if task.is_some() && i.task_state == task {
                i.task_state = None;
            }
            i.fault = Some(f.instance_fault(now));
            Ok(())
        })
        .await;
}

async fn transition(app: &Arc<App>, ctx: &Ctx, id: &str, t: Transition) -> Result<(), Fault> {
    ctx.require_member(t.policy)?;
    begin(
        app,
        ctx,
        id,
        t.action,
        Some(t.first_task),
        Some(Logged::with(t.op.name(), t.event)),
    )
    .await?;
    let app2 = app.clone();
    let id2 = id.to_string();
    let req = ctx.request_id.clone();
    tokio::spawn(async move {
        let final_vm = t.final_vm;
        let power = t.final_power;
        let res = advance(&app2, &id2, t.op, t.first_task, t.then, |i, _| {
            if let Some(vm) = final_vm {
                i.vm_state = vm;
            }
            i.power_state = power;
        })
        .await;
        let e = res.as_ref().err().map(|e| e.pair());
        actions::event_finish(&app2, &id2, &req, t.event, e).await;
    });
    Ok(())
}

/// The status of a server action's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Accepted,
    NoContent,
}

/// What a server action answers, as a domain value: its status, a JSON
/// body when there is one, and the `Location` Nova sends with some
/// answers. The API module renders it as HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: ReplyStatus,
    pub body: Option<Value>,
    pub location: Option<String>,
}

impl Reply {
    fn of(status: ReplyStatus, body: Option<Value>) -> Self {
        Reply {
            status,
            body,
            location: None,
        }
    }

    /// 202 without a body.
    pub fn accepted() -> Self {
        Self::of(ReplyStatus::Accepted, None)
    }

    /// 204.
    pub fn no_content() -> Self {
        Self::of(ReplyStatus::NoContent, None)
    }

    /// 200 without a body.
    pub fn ok() -> Self {
        Self::of(ReplyStatus::Ok, None)
    }

    /// 200 with a JSON body.
    pub fn json(body: Value) -> Self {
        Self::of(ReplyStatus::Ok, Some(body))
    }

    /// 202 with a JSON body.
    pub fn accepted_json(body: Value) -> Self {
        Self::of(ReplyStatus::Accepted, Some(body))
    }

    /// The same answer with a `Location`.
    pub fn at(self, location: String) -> Self {
        Reply {
            location: Some(location),
            ..self
        }
    }
}

fn accepted() -> Reply {
    Reply::accepted()
}

/// Runs a parsed action and says what it answers.
pub async fn run(
    app: &Arc<App>,
    ctx: &Ctx,
    links: &Links,
    id: &str,
    act: ServerAction,
) -> Result<Reply, Fault> {
    use TaskState as T;
    let simple = |action, op, event, policy, first_task, then, final_vm, final_power| Transition {
        action,
        op,
        event,
        policy,
        first_task,
        then,
        final_vm,
        final_power,
    };
    match act {
        ServerAction::Reboot { hard } => {
            let t = if hard {
                simple(
                    Action::RebootHard,
                    DriverOp::Reboot { hard: true },
                    "compute_reboot_instance",
                    "os_compute_api:servers:reboot",
                    T::RebootingHard,
                    &[T::RebootPendingHard, T::RebootStartedHard],
                    Some(VmState::Active),
                    PowerState::Running,
                )
            } else {
                simple(
                    Action::RebootSoft,
                    DriverOp::Reboot { hard: false },
                    "compute_reboot_instance",
                    "os_compute_api:servers:reboot",
                    T::Rebooting,
                    &[T::RebootPending, T::RebootStarted],
                    Some(VmState::Active),
                    PowerState::Running,
                )
            };
            transition(app, ctx, id, t).await?;
            Ok(accepted())
        }
        ServerAction::Stop => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Stop,
                    DriverOp::Stop,
                    "compute_stop_instance",
                    "os_compute_api:servers:stop",
                    T::PoweringOff,
                    &[],
                    Some(VmState::Stopped),
                    PowerState::Shutdown,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::Start => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Start,
                    DriverOp::Start,
                    "compute_start_instance",
                    "os_compute_api:servers:start",
                    T::PoweringOn,
                    &[],
                    Some(VmState::Active),
                    PowerState::Running,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::Pause => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Pause,
                    DriverOp::Pause,
                    "compute_pause_instance",
                    "os_compute_api:os-pause-server:pause",
                    T::Pausing,
                    &[],
                    Some(VmState::Paused),
                    PowerState::Paused,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::Unpause => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Unpause,
                    DriverOp::Unpause,
                    "compute_unpause_instance",
                    "os_compute_api:os-pause-server:unpause",
                    T::Unpausing,
                    &[],
                    Some(VmState::Active),
                    PowerState::Running,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::Suspend => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Suspend,
                    DriverOp::Suspend,
                    "compute_suspend_instance",
                    "os_compute_api:os-suspend-server:suspend",
                    T::Suspending,
                    &[],
                    Some(VmState::Suspended),
                    PowerState::Suspended,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::Resume => {
            transition(
                app,
                ctx,
                id,
                simple(
                    Action::Resume,
                    DriverOp::Resume,
                    "compute_resume_instance",
                    "os_compute_api:os-suspend-server:resume",
                    T::Resuming,
                    &[],
                    Some(VmState::Active),
                    PowerState::Running,
                ),
            )
            .await?;
            Ok(accepted())
        }
        ServerAction::TriggerCrashDump => {
            ctx.require_member("os_compute_api:servers:trigger_crash_dump")?;
            let inst = begin(
                app,
                ctx,
                id,
                Action::TriggerCrashDump,
                None,
                Some(Logged::bare("trigger_crash_dump")),
            )
            .await?;
            let driver = app.compute.driver_for(inst.host.as_deref());
            if !driver.is_simulated() {
                driver
                    .perform(&DriverOp::TriggerCrashDump, &inst)
                    .await
                    .map_err(|f| Fault::conflict(f.message))?;
            }
            Ok(accepted())
        }
        ServerAction::Lock { reason } => {
            lock(app, ctx, id, reason).await?;
            Ok(accepted())
        }
        ServerAction::Unlock => {
            unlock(app, ctx, id).await?;
            Ok(accepted())
        }
        ServerAction::ResetState { state } => {
            ctx.require_admin("os_compute_api:os-admin-actions:reset_state")?;
            servers::visible(app, ctx, id)?;
            let now = app.clock.now();
            app.compute
                .update_instance_logged(id, ctx, now, Logged::bare("resetState"), None, |i| {
                    i.vm_state = state;
                    i.task_state = None;
                    Ok(())
                })
                .await?;
            Ok(accepted())
        }
        ServerAction::ForceDelete => {
            ctx.require_member("os_compute_api:os-deferred-delete:force")?;
            begin(
                app,
                ctx,
                id,
                Action::ForceDelete,
                Some(T::Deleting),
                Some(Logged::with("forceDelete", "compute_terminate_instance")),
            )
            .await?;
            let app2 = app.clone();
            let id2 = id.to_string();
            let req = ctx.request_id.clone();
            tokio::spawn(async move { servers::terminate(&app2, &id2, &req).await });
            Ok(accepted())
        }
        ServerAction::Restore => {
            ctx.require_member("os_compute_api:os-deferred-delete:restore")?;
            servers::visible(app, ctx, id)?;
            let now = app.clock.now();
            let is_admin = ctx.is_admin();
            app.compute
                .update_instance_logged(id, ctx, now, Logged::bare("restore"), None, |i| {
                    admit(Action::Restore, &subject(i), is_admin).map_err(|e| {
                        if e.message.contains("is locked") {
                            Fault::conflict(format!(
                                "Instance {id} is in an invalid state for 'restore'"
                            ))
                        } else {
                            e
                        }
                    })?;
                    i.vm_state = VmState::Active;
                    i.power_state = PowerState::Running;
                    i.task_state = None;
                    i.deleted_at = None;
                    Ok(())
                })
                .await?;
            Ok(accepted())
        }
        ServerAction::ConsoleOutput { length } => {
            ctx.require_member("os_compute_api:os-console-output")?;
            let inst = servers::visible(app, ctx, id)?;
            admit(Action::ConsoleOutput, &subject(&inst), ctx.is_admin())?;
            let out = match app
                .compute
                .driver_for(inst.host.as_deref())
                .console_log(&inst)
                .await
            {
                Some(bytes) => real_console(&bytes, length),
                None => {
                    let log = simulated_console(&inst);
                    let lines: Vec<&str> = log.lines().collect();
                    match length {
                        Some(n) if n >= 0 => {
                            lines[lines.len().saturating_sub(n as usize)..].join("\n")
                        }
                        _ => lines.join("\n"),
                    }
                }
            };
            Ok(Reply::json(json!({"output": out})))
        }
        other => super::ops::run(app, ctx, links, id, other).await,
    }
}

/// A real guest's serial log as Nova returns it: the last `length` pieces
/// of the log split on newlines (all of it without `length`), with the
/// control characters other than tab and newline removed.
fn real_console(bytes: &[u8], length: Option<i64>) -> String {
    let text = String::from_utf8_lossy(bytes);
    let clean: String = text
        .chars()
        .filter(|c| !matches!(*c as u32, 0x00..=0x08 | 0x0B..=0x1F))
        .collect();
    match length {
        None => clean,
        Some(n) if n <= 0 => String::new(),
        Some(n) => {
            let pieces: Vec<&str> = clean.split('\n').collect();
            pieces[pieces.len().saturating_sub(n as usize)..].join("\n")
        }
    }
}

/// The simulated guest's serial log.
fn simulated_console(inst: &Instance) -> String {
    let mut s = String::new();
    s.push_str(&format!("rova simulated console for {}\n", inst.uuid));
    s.push_str(&format!("hostname: {}\n", inst.hostname));
    for vif in &inst.vifs {
        for ip in &vif.fixed_ips {
            s.push_str(&format!("eth: {} {}\n", vif.mac, ip.address));
        }
    }
    s.push_str(&format!("status: {}\n", inst.status()));
    s.push_str("login:\n");
    s
}

/// Lock: owner re-locking a locked server is a no-op; otherwise record who
/// locked (owner or admin) and why.
pub async fn lock(app: &App, ctx: &Ctx, id: &str, reason: Option<String>) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-lock-server:lock")?;
    let inst = servers::visible(app, ctx, id)?;
    let owner = inst.project_id == ctx.project_id;
    if inst.locked() && owner {
        return Ok(());
    }
    let by = if owner { "owner" } else { "admin" };
    let now = app.clock.now();
    app.compute
        .update_instance_logged(id, ctx, now, Logged::bare("lock"), None, |i| {
            i.locked_by = Some(by.to_string());
            i.locked_reason = reason.clone();
            Ok(())
        })
        .await
        .map(drop)
}

/// Unlock: the locker's role (owner/admin) may unlock; otherwise only an
/// admin (unlock_override).
pub async fn unlock(app: &App, ctx: &Ctx, id: &str) -> Result<(), Fault> {
    ctx.require_member("os_compute_api:os-lock-server:unlock")?;
    let inst = servers::visible(app, ctx, id)?;
    let role = if inst.project_id == ctx.project_id {
        "owner"
    } else {
        "admin"
    };
    if let Some(by) = &inst.locked_by {
        if by != role && !ctx.is_admin() {
            return Err(Fault::policy(
                "os_compute_api:os-lock-server:unlock:unlock_override",
            ));
        }
    }
    let now = app.clock.now();
    app.compute
        .update_instance_logged(id, ctx, now, Logged::bare("unlock"), None, |i| {
            i.locked_by = None;
            i.locked_reason = None;
            Ok(())
        })
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::real_console;

    #[test]
    fn real_console_follows_nova() {
        let log = b"boot\r\n\x1b[0mone\r\ntwo\r\n";
        // ESC goes, the rest of an escape sequence stays (Nova's filter).
        assert_eq!(real_console(log, None), "boot\n[0mone\ntwo\n");
        // The trailing newline leaves an empty last piece, as in Nova.
        assert_eq!(real_console(log, Some(2)), "two\n");
        assert_eq!(real_console(log, Some(3)), "[0mone\ntwo\n");
        assert_eq!(real_console(log, Some(0)), "");
        assert_eq!(real_console(log, Some(99)), "boot\n[0mone\ntwo\n");
        assert_eq!(real_console(b"a\tb", Some(1)), "a\tb");
    }
}
