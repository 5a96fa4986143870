//! An instance action's events as the database keeps them: rows of their
//! own (`instance_action_events`, Nova's `instance_actions_events`), one
//! per event, keyed `<action>/<nn>` (the action row's key and the event's
//! place among its action's, two digits), with the action's row, the
//! server and the event's name as columns and the whole event as the
//! document. Every write of events is made together with its action's
//! row, all or nothing ([`write`], [`put_first`]): the action's
//! compare-and-swap refuses the events when another process changed or
//! removed the action meanwhile. Readers get an action with its events
//! from the rows ([`assemble`], [`by_action`]).

use super::{ActionEvent, InstanceAction};
use crate::app::App;
use crate::store::schema::Cell;
use crate::store::{Store, Table, TxView};
use rova_core::Fault;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One event of an instance action, as its row holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    /// The key of its action's row (`<server>/<seq>`).
    pub action_id: String,
    pub instance_uuid: String,
    /// Its place among its action's events (0: the first).
    pub position: u32,
    #[serde(flatten)]
    pub event: ActionEvent,
}

/// The index of event rows by action row.
pub const BY_ACTION: &str = "action";

/// The key of the event at `position` of action row `action`.
pub fn event_key(action: &str, position: usize) -> String {
    format!("{action}/{position:02}")
}

/// The instance-action tables: the actions, indexed by server, and their
/// events, indexed by action. With `cache` > 0 both are cached tables
/// of that many rows ([`Table::load_cached`]).
pub fn load(
    store: &Arc<Store>,
    cache: usize,
) -> Result<(Table<InstanceAction>, Table<EventRow>), String> {
    let (actions, events) = match cache {
        0 => (
            Table::load("instance_action", store)?
                .indexed(super::actions::BY_INSTANCE, |a: &InstanceAction| {
                    Some(a.instance_uuid.clone())
                }),
            Table::load("instance_action_event", store)?,
        ),
        n => (
            Table::load_cached("instance_action", store, n)?,
            Table::load_cached("instance_action_event", store, n)?,
        ),
    };
    // Kept in step with the rows a cached copy holds too (`write` reads
    // an action's events through it).
    let events = events.indexed(BY_ACTION, |e: &EventRow| Some(e.action_id.clone()));
    Ok((actions, events))
}

/// The events of action rows `keys` (all of server `uuid`'s), each
/// action's in order: from this process's copy, or for a cached table
/// read from the database in one statement.
pub fn by_action<'k>(
    table: &Table<EventRow>,
    uuid: &str,
    keys: impl Iterator<Item = &'k str>,
) -> HashMap<String, Vec<ActionEvent>> {
    let rows: Vec<Arc<EventRow>> = if table.is_cached() {
        table
            .select("instance_uuid = ?1", vec![Cell::Text(uuid.to_string())])
            .unwrap_or_else(|f| {
                tracing::error!(server = %uuid, "reading action events: {}", f.message);
                Vec::new()
            })
    } else {
        keys.flat_map(|k| table.find(BY_ACTION, k)).collect()
    };
    let mut out: HashMap<String, Vec<Arc<EventRow>>> = HashMap::new();
    for r in rows {
        out.entry(r.action_id.clone()).or_default().push(r);
    }
    out.into_iter()
        .map(|(k, mut rows)| {
            rows.sort_by_key(|r| r.position);
            (k, rows.iter().map(|r| r.event.clone()).collect())
        })
        .collect()
}

/// Action `a` (row `key`) with its events from the rows.
pub fn assemble(table: &Table<EventRow>, key: &str, a: &InstanceAction) -> InstanceAction {
    let mut found = by_action(table, &a.instance_uuid, std::iter::once(key));
    InstanceAction {
        events: found.remove(key).unwrap_or_default(),
        ..a.clone()
    }
}

/// Action row `key`'s event rows in `view`, in order.
fn rows_in(view: &TxView<'_, EventRow>, key: &str) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = view
        .find_ids(BY_ACTION, key)
        .iter()
        .filter_map(|id| view.get(id))
        .collect();
    rows.sort_by_key(|r| r.position);
    rows
}

/// Makes action row `key`'s event rows in `view` hold `events`, in their
/// order (only the rows that differ are written).
fn sync(view: &mut TxView<'_, EventRow>, key: &str, uuid: &str, events: &[ActionEvent]) {
    let before = rows_in(view, key);
    for (position, event) in events.iter().enumerate() {
        let row = EventRow {
            action_id: key.to_string(),
            instance_uuid: uuid.to_string(),
            position: position as u32,
            event: event.clone(),
        };
        if before.get(position) != Some(&row) {
            view.put(&event_key(key, position), row);
        }
    }
    for gone in before.iter().skip(events.len()) {
        view.delete(&event_key(key, gone.position as usize));
    }
}

/// Writes the events a new action of server `uuid` (row `key`) starts
/// with, in the transaction that inserts its row.
pub fn put_first(view: &mut TxView<'_, EventRow>, key: &str, uuid: &str, events: &[ActionEvent]) {
    sync(view, key, uuid, events);
}

/// Changes action row `key` (`action`) and its events (`events`, given
/// them in order) in one transaction: the action row's compare-and-swap
/// and the event rows, all or nothing. Refused because another process
/// changed the action meanwhile, it is tried again (three times at most)
/// against the action as the database has it.
pub async fn write(
    app: &App,
    key: &str,
    action: impl Fn(&mut InstanceAction),
    events: impl Fn(&mut Vec<ActionEvent>),
) -> Result<(), Fault> {
    let c = &app.compute;
    let mut tries = 0;
    loop {
        if c.action_events.is_cached() {
            // The rows into the copy, where the transaction's view sees
            // them (a row the copy gives up meanwhile is written as new,
            // which the database refuses: then a retry).
            let _ = c
                .action_events
                .select("action_id = ?1", vec![Cell::Text(key.to_string())]);
        }
        let made = c
            .actions
            .update_with(
                key,
                || Fault::not_found(format!("no action {key}")),
                |a| {
                    action(a);
                    Ok(())
                },
                &c.action_events,
                |a, view| {
                    let mut list: Vec<ActionEvent> =
                        rows_in(view, key).into_iter().map(|r| r.event).collect();
                    events(&mut list);
                    sync(view, key, &a.instance_uuid, &list);
                    Ok(())
                },
            )
            .await;
        match made {
            Err(e) if e.code == 409 && tries < 3 => tries += 1,
            other => return other.map(drop),
        }
    }
}
