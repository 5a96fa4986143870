//! Instance-action records: every user request against a server is logged
//! with its request id, and the work it causes as events with results.
//! Each action is a row of `instance_actions` (keyed `<server>/<seq>`),
//! found by server through an index; its events are rows of
//! `instance_action_events` ([`super::action_events`]), written with it.
//! These back `os-instance-actions`.

use super::action_events;
use crate::app::App;
use crate::http::Ctx;
use crate::store::Table;
use chrono::{DateTime, Utc};
use rova_core::model::Instance;
use rova_core::Fault;
use serde::{Deserialize, Serialize};

/// One event of an instance action (a row of `instance_action_events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionEvent {
    pub event: String,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    /// `Success`, `Error` or None while running.
    pub result: Option<String>,
    pub traceback: Option<String>,
    pub host: Option<String>,
    pub details: Option<String>,
}

/// One instance action (a user request against a server).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceAction {
    pub action: String,
    pub instance_uuid: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub start_time: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub message: Option<String>,
    /// Its place among the server's actions (0: the first), also in its
    /// row's key.
    #[serde(default)]
    pub seq: u32,
    /// Kept as rows of `instance_action_events`
    /// ([`super::action_events`]), not in the action's document: filled
    /// when the action is read, and for a new action the events it
    /// starts with.
    #[serde(default, skip_serializing)]
    pub events: Vec<ActionEvent>,
}

/// All actions of one instance, in order, with their events (assembled
/// from their rows).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ActionLog {
    pub actions: Vec<InstanceAction>,
}

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
        seq: 0,
        events: first_event
            .map(|(e, host)| vec![new_event(e, host, now)])
            .unwrap_or_default(),
    }
}

/// The `create` action of a server being created: the first of its
/// actions (`seq` 0), with its row key.
pub fn create_log(ctx: &Ctx, uuid: &str, now: DateTime<Utc>) -> (String, InstanceAction) {
    (row_key(uuid, 0), entry(ctx, uuid, "create", None, now))
}

/// The key of a server's action row: `<server>/<seq>`, six digits, so a
/// server's rows sort in the order its actions were recorded.
pub fn row_key(uuid: &str, seq: u32) -> String {
    format!("{uuid}/{seq:06}")
}

/// The index of action rows by server.
pub const BY_INSTANCE: &str = "instance";

/// Server `uuid`'s actions, in the order they were recorded, with their
/// events: from this process's copy, or for cached tables read from the
/// database.
pub fn log_of(app: &App, uuid: &str) -> ActionLog {
    let mut actions: Vec<InstanceAction> = rows_of(&app.compute.actions, uuid)
        .iter()
        .map(|a| (**a).clone())
        .collect();
    actions.sort_by_key(|a| a.seq);
    let keys: Vec<String> = actions.iter().map(|a| row_key(uuid, a.seq)).collect();
    let mut events = action_events::by_action(
        &app.compute.action_events,
        uuid,
        keys.iter().map(|k| k.as_str()),
    );
    for (a, key) in actions.iter_mut().zip(&keys) {
        a.events = events.remove(key).unwrap_or_default();
    }
    ActionLog { actions }
}

/// Server `uuid`'s action rows, in no order.
fn rows_of(table: &Table<InstanceAction>, uuid: &str) -> Vec<std::sync::Arc<InstanceAction>> {
    if table.is_cached() {
        table
            .select(
                "instance_uuid = ?1",
                vec![crate::store::schema::Cell::Text(uuid.to_string())],
            )
            .unwrap_or_default()
    } else {
        table.find(BY_INSTANCE, uuid)
    }
}

/// Server `uuid`'s latest action with its events, without copying the
/// others.
pub fn latest(app: &App, uuid: &str) -> Option<InstanceAction> {
    rows_of(&app.compute.actions, uuid)
        .into_iter()
        .max_by_key(|a| a.seq)
        .map(|a| action_events::assemble(&app.compute.action_events, &row_key(uuid, a.seq), &a))
}

/// The key and `seq` the next action of server `uuid` takes.
pub fn next_row(table: &Table<InstanceAction>, uuid: &str) -> (String, u32) {
    let seq = rows_of(table, uuid)
        .iter()
        .map(|a| a.seq + 1)
        .max()
        .unwrap_or(0);
    (row_key(uuid, seq), seq)
}

/// The row key of server `uuid`'s latest action with `request_id`.
fn key_of(app: &App, uuid: &str, request_id: &str) -> Option<String> {
    rows_of(&app.compute.actions, uuid)
        .iter()
        .filter(|a| a.request_id == request_id)
        .map(|a| a.seq)
        .max()
        .map(|seq| row_key(uuid, seq))
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
    let mut a = entry(ctx, uuid, action, first_event, app.clock.now());
    // Its events are stored as rows, not in its document.
    let events = std::mem::take(&mut a.events);
    // Another process may take the same place first: then the next one.
    let mut tries = 0;
    loop {
        let (key, seq) = next_row(&app.compute.actions, uuid);
        a.seq = seq;
        let taken = Fault::conflict("action recorded meanwhile");
        let c = &app.compute;
        let made = c
            .actions
            .insert_with(&key, a.clone(), taken, None, &c.action_events, |_, v| {
                action_events::put_first(v, &key, uuid, &events);
                Ok(())
            })
            .await;
        match made {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 && tries < 3 => tries += 1,
            Err(e) => return Err(e),
        }
    }
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
    let Some(key) = key_of(app, uuid, request_id) else {
        return;
    };
    let _ = action_events::write(
        app,
        &key,
        |a| a.updated_at = now,
        |events| events.push(new_event(event, host, now)),
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
    let Some(key) = key_of(app, uuid, request_id) else {
        return;
    };
    let _ = action_events::write(
        app,
        &key,
        |a| {
            if error.is_some() {
                a.message = Some("Error".into());
            }
            a.updated_at = now;
        },
        |events| {
            if let Some(ev) = events
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
        },
    )
    .await;
}
