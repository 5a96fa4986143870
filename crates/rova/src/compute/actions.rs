//! Instance-action records: every user request against a server is logged
//! with its request id, and the work it causes as events with results.
//! These back `os-instance-actions`.

use super::{ActionEvent, ActionLog, InstanceAction};
use crate::app::App;
use crate::http::Ctx;
use chrono::{DateTime, Utc};
use rova_core::Fault;

/// Records a new action (and optionally a first event already started).
pub async fn record(
    app: &App,
    ctx: &Ctx,
    uuid: &str,
    action: &str,
    first_event: Option<(&str, Option<&str>)>,
) -> Result<(), Fault> {
    let now = app.clock.now();
    let a = InstanceAction {
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
    };
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
