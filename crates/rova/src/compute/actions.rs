//! Instance-action records: every user request against a server is logged
//! with its request id, and the work it causes as events with results.
//! These back `os-instance-actions`.

use super::{ActionEvent, ActionLog, InstanceAction};
use crate::app::App;
use crate::http::Ctx;
use chrono::{DateTime, Utc};
use rova_core::model::Instance;
use rova_core::Fault;

/// The instance action a state change records in its own transaction
/// ([`super::Compute::update_instance_logged`]): the action's name and,
/// if any, its first event, started on the server's host (or on the
/// control host for the conductor's events).
#[derive(Debug, Clone, Copy)]
pub struct Logged {
    pub action: &'static str,
    pub event: Option<&'static str>,
    pub on_control: bool,
}

impl Logged {
    /// An action with no event of its own (lock, reset state, …).
    pub fn bare(action: &'static str) -> Logged {
        Logged {
            action,
            event: None,
            on_control: false,
        }
    }

    /// An action whose first event starts with it on the server's host.
    pub fn with(action: &'static str, event: &'static str) -> Logged {
        Logged {
            action,
            event: Some(event),
            on_control: false,
        }
    }

    /// The first event runs on the control host (the conductor's).
    pub fn on_control(self) -> Logged {
        Logged {
            on_control: true,
            ..self
        }
    }

    /// The action record, for the server as the state change leaves it.
    pub fn entry(&self, ctx: &Ctx, inst: &Instance, now: DateTime<Utc>) -> InstanceAction {
        let host = if self.on_control {
            Some(super::fleet::CONTROL_HOST)
        } else {
            inst.host.as_deref()
        };
        entry(
            ctx,
            &inst.uuid,
            self.action,
            self.event.map(|e| (e, host)),
            now,
        )
    }
}

/// A new action record (with its first event already started, if any).
fn entry(
    ctx: &Ctx,
    uuid: &str,
    action: &str,
    first_event: Option<(&str, Option<&str>)>,
    now: DateTime<Utc>,
) -> InstanceAction {
    InstanceAction {
        action: action.to_string(),
        instance_uuid: uuid.to_string(),
        request_id: ctx.request_id.clone(),
        user_id: ctx.user_id.clone(),
        project_id: ctx.project_id.clone(),
        start_time: now,
        updated_at: now,
        message: None,
        events: first_event
            .map(|(e, host)| vec![new_event(e, host, now)])
            .unwrap_or_default(),
    }
}

/// The action log of a server being created: its `create` action alone.
pub fn create_log(ctx: &Ctx, uuid: &str, now: DateTime<Utc>) -> ActionLog {
    ActionLog {
        actions: vec![entry(ctx, uuid, "create", None, now)],
    }
}

/// Records a new action (and optionally a first event already started)
/// on its own, for a request that changes no server state with it.
pub async fn record(
    app: &App,
    ctx: &Ctx,
    uuid: &str,
    action: &str,
    first_event: Option<(&str, Option<&str>)>,
) -> Result<(), Fault> {
    let a = entry(ctx, uuid, action, first_event, app.clock.now());
    if action == "create" {
        // A new server has no log yet: written without reading it first
        // (the insert is refused if one is there, and then added to).
        let log = ActionLog {
            actions: vec![a.clone()],
        };
        let taken = Fault::conflict("log exists");
        if app
            .compute
            .actions
            .insert_new(uuid, log, taken)
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    app.compute
        .actions
        .upsert(uuid, ActionLog::default, |log| {
            log.actions.push(a);
            Ok(())
        })
        .await
        .map(|_| ())
}

fn new_event(name: &str, host: Option<&str>, now: DateTime<Utc>) -> ActionEvent {
    ActionEvent {
        event: name.to_string(),
        start_time: now,
        finish_time: None,
        result: None,
        traceback: None,
        host: host.map(str::to_string),
        details: None,
    }
}

/// Starts an event on the action with `request_id`.
pub async fn event_start(app: &App, uuid: &str, request_id: &str, event: &str, host: Option<&str>) {
    let now = app.clock.now();
    let _ = app
        .compute
        .actions
        .update(
            uuid,
            || Fault::not_found(""),
            |log: &mut ActionLog| {
                if let Some(a) = log
                    .actions
                    .iter_mut()
                    .rev()
                    .find(|a| a.request_id == request_id)
                {
                    a.events.push(new_event(event, host, now));
                    a.updated_at = now;
                }
                Ok(())
            },
        )
        .await;
}

/// Finishes an event; an error marks the action's message "Error".
pub async fn event_finish(
    app: &App,
    uuid: &str,
    request_id: &str,
    event: &str,
    error: Option<(&str, &str)>,
) {
    let now = app.clock.now();
    let _ = app
        .compute
        .actions
        .update(
            uuid,
            || Fault::not_found(""),
            |log: &mut ActionLog| {
                if let Some(a) = log
                    .actions
                    .iter_mut()
                    .rev()
                    .find(|a| a.request_id == request_id)
                {
                    if let Some(ev) = a
                        .events
                        .iter_mut()
                        .rev()
                        .find(|e| e.event == event && e.finish_time.is_none())
                    {
                        ev.finish_time = Some(now);
                        match error {
                            None => ev.result = Some("Success".into()),
                            Some((msg, tb)) => {
                                ev.result = Some("Error".into());
                                ev.traceback = Some(tb.to_string());
                                ev.details = Some(msg.to_string());
                            }
                        }
                    }
                    if error.is_some() {
                        a.message = Some("Error".into());
                    }
                    a.updated_at = now;
                }
                Ok(())
            },
        )
        .await;
}
