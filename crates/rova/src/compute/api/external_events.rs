//! `POST /os-server-external-events`: notifications from other services
//! (Neutron port events, Cinder volume extension, Ironic power updates)
//! about servers. Nova answers per event: 200 when the server exists on a
//! host, 404 for an unknown server, 422 for one without a host, 400 for a
//! missing required tag; the whole response is 200 when every event was
//! accepted and 207 otherwise. Allowed for the `service` role or admins.

use super::schema;
use crate::app::App;
use crate::compute::actions;
use crate::http::{json_status, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use rova_core::states::{PowerState, VmState};
use rova_core::validate::fields::{self, invalid};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/os-server-external-events", post(create))
}

/// Events that carry their meaning in the tag.
const TAG_REQUIRED: &[&str] = &[
    "volume-extended",
    "power-update",
    "accelerator-request-bound",
];

/// Nova's `EVENT_STATUSES`.
const STATUSES: &[&str] = &["failed", "completed", "in-progress"];

/// Event names accepted at the caller's microversion.
fn event_names(ctx: &Ctx) -> Vec<&'static str> {
    let mut names = vec![
        "network-changed",
        "network-vif-plugged",
        "network-vif-unplugged",
        "network-vif-deleted",
    ];
    for (minor, name) in [
        (51, "volume-extended"),
        (76, "power-update"),
        (82, "accelerator-request-bound"),
        (93, "volume-reimaged"),
    ] {
        if ctx.at_least(minor) {
            names.push(name);
        }
    }
    names
}

/// One validated event.
struct Event {
    name: String,
    server_uuid: String,
    tag: Option<String>,
}

/// Nova's request schema for the whole body.
fn parse(v: &Value, ctx: &Ctx) -> Result<Vec<Event>, Fault> {
    let top = schema::object(None, v)?;
    schema::required(None, v, top, &["events"])?;
    schema::no_additional(None, v, top, &["events"])?;
    let ev = top.get("events").unwrap_or(&Value::Null);
    let items = ev.as_array().ok_or_else(|| {
        invalid(
            "events",
            ev,
            format!("{} is not of type 'array'", schema::repr(ev)),
        )
    })?;
    if items.is_empty() {
        return Err(invalid("events", ev, "[] should be non-empty"));
    }
    let names = event_names(ctx);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let o = schema::object(Some(&idx), item)?;
        schema::required(Some(&idx), item, o, &["name", "server_uuid"])?;
        schema::no_additional(
            Some(&idx),
            item,
            o,
            &["name", "server_uuid", "status", "tag"],
        )?;
        let name = schema::one_of("name", o.get("name").unwrap_or(&Value::Null), &names)?;
        let server_uuid =
            fields::uuid("server_uuid", o.get("server_uuid").unwrap_or(&Value::Null))?;
        if let Some(s) = o.get("status") {
            schema::one_of("status", s, STATUSES)?;
        }
        let tag = match o.get("tag") {
            Some(t) => Some(schema::string("tag", t, 0, 255)?),
            None => None,
        };
        out.push(Event {
            name,
            server_uuid,
            tag,
        });
    }
    Ok(out)
}

/// What a host does with an accepted event: a power update moves an idle
/// server between ACTIVE and SHUTOFF; the others change nothing visible.
async fn apply(app: &App, ctx: &Ctx, e: &Event) -> Result<(), Fault> {
    match (e.name.as_str(), e.tag.as_deref()) {
        ("volume-extended", _) => {
            actions::record(app, ctx, &e.server_uuid, "extend_volume", None).await
        }
        ("power-update", Some(tag @ ("POWER_ON" | "POWER_OFF"))) => {
            let on = tag == "POWER_ON";
            let action = if on { "start" } else { "stop" };
            actions::record(app, ctx, &e.server_uuid, action, None).await?;
            let now = app.clock.now();
            let _ = app
                .compute
                .update_instance(&e.server_uuid, now, |i| {
                    let valid = i.task_state.is_none()
                        && if on {
                            i.vm_state == VmState::Stopped && i.power_state == PowerState::Shutdown
                        } else {
                            i.vm_state == VmState::Active && i.power_state == PowerState::Running
                        };
                    if !valid {
                        // A no-op in Nova too (logged only).
                        return Err(Fault::conflict("power-update is a no-op"));
                    }
                    if on {
                        i.vm_state = VmState::Active;
                        i.power_state = PowerState::Running;
                    } else {
                        i.vm_state = VmState::Stopped;
                        i.power_state = PowerState::Shutdown;
                        i.progress = 0;
                    }
                    Ok(())
                })
                .await;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let events = parse(&v, &ctx)?;
    if !(ctx.is_admin() || ctx.has_role("service")) {
        return Err(Fault::policy("os_compute_api:os-server-external-events:create").into());
    }
    let sent: Vec<Value> = v
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut all_ok = true;
    let mut response = Vec::with_capacity(events.len());
    for (e, mut body) in events.iter().zip(sent) {
        let inst = app
            .compute
            .instances
            .get(&e.server_uuid)
            .filter(|i| !i.deleted);
        let (status, code) = match inst {
            None => ("failed", 404),
            Some(_) if TAG_REQUIRED.contains(&e.name.as_str()) && e.tag.is_none() => {
                ("failed", 400)
            }
            Some(i) if i.host.is_some() => {
                apply(&app, &ctx, e).await?;
                ("completed", 200)
            }
            Some(_) => ("failed", 422),
        };
        all_ok &= code == 200;
        body["status"] = json!(status);
        body["code"] = json!(code);
        response.push(body);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok(json_status(status, json!({ "events": response })))
}
