//! Cinder's attachments API (`/attachments`, 3.27+; `os-complete` 3.44+;
//! `mode` 3.54+) and the legacy attach actions of `POST
//! /volumes/{id}/action` (`os-reserve`, `os-unreserve`,
//! `os-begin_detaching`, `os-roll_detaching`, `os-attach`, `os-detach`,
//! `os-initialize_connection`, `os-terminate_connection`). The records
//! and their status rules are `volume::attach`'s.

use super::*;
use crate::volume::{invalid_volume, Attachment};

/// Below its microversion a route is not there (Cinder's 404).
fn since(r: &Req, minor: u32) -> Result<(), Fault> {
    if r.minor < minor {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

fn summary(a: &Attachment, volume: &str) -> Value {
    json!({
        "id": a.id,
        "status": a.status(),
        "instance": (!a.server_id.is_empty()).then_some(a.server_id.as_str()),
        "volume_id": volume,
    })
}

fn detail(a: &Attachment, volume: &str) -> Value {
    let mut v = summary(a, volume);
    v["attached_at"] = a
        .attached_at
        .as_ref()
        .map(|t| json!(iso_micro(t)))
        .unwrap_or(json!(""));
    v["detached_at"] = json!("");
    v["attach_mode"] = json!(a.attach_mode.as_deref().unwrap_or("null"));
    v["connection_info"] = a.connection_info.clone().unwrap_or_else(|| json!({}));
    v
}

/// A uuid field of a body (Cinder's schema text when it is not one).
fn uuid_field(o: &Map<String, Value>, key: &str) -> Result<Option<String>, Fault> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(Some(s.clone())),
        Some(other) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. {other} is not a 'uuid'"
        ))),
    }
}

pub(super) async fn list_summary(
    State(app): A,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Res {
    listing(&app, caller, q, &headers, false)
}

pub(super) async fn list_detail(
    State(app): A,
    caller: Caller,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Res {
    listing(&app, caller, q, &headers, true)
}

fn listing(app: &App, caller: Caller, q: Option<String>, headers: &HeaderMap, full: bool) -> Res {
    let r = Req::new(caller, headers)?;
    since(&r, 27)?;
    let pairs: Vec<(String, String)> = q
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let everyone = r.admin() && get("all_tenants").is_some();
    let mut out = Vec::new();
    let volumes = app.volumes.table.filter(|v| {
        (everyone || v.project_id == r.ctx.project_id)
            && !v.attachments.is_empty()
            && get("volume_id").is_none_or(|id| id == v.id)
    });
    for v in volumes {
        for a in &v.attachments {
            let status = get("status").or(get("attach_status"));
            if status.is_some_and(|s| s != a.status())
                || get("instance_id").is_some_and(|i| i != a.server_id)
            {
                continue;
            }
            out.push(if full {
                detail(a, &v.id)
            } else {
                summary(a, &v.id)
            });
        }
    }
    Ok(r.answer(StatusCode::OK, Some(json!({"attachments": out}))))
}

pub(super) async fn show(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    since(&r, 27)?;
    let (v, a) = app.volumes.attachment(&id, &r.ctx.project_id, r.admin())?;
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"attachment": detail(&a, &v.id)})),
    ))
}

pub(super) async fn create(State(app): A, caller: Caller, headers: HeaderMap, body: Bytes) -> Res {
    let r = Req::new(caller, &headers)?;
    since(&r, 27)?;
    r.member("volume:attachment_create")?;
    let body = parse_json(&headers, &body)?;
    let o = wrapped(&body, "attachment")?;
    let mut known = vec!["volume_uuid", "instance_uuid", "connector"];
    if r.minor >= 54 {
        known.push("mode");
    }
    super::only_known("attachment", o, &known)?;
    let Some(vol) = uuid_field(o, "volume_uuid")? else {
        return Err(Fault::bad_request("'volume_uuid' is a required property").into());
    };
    let instance = uuid_field(o, "instance_uuid")?;
    let connector = match o.get("connector") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => Some(c.clone()),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute connector. Value: {other}. {other} is not of \
                 type 'object', 'null'"
            ))
            .into())
        }
    };
    let mode = match o.get("mode") {
        None => None,
        Some(Value::String(m)) if m == "rw" || m == "ro" => Some(m.clone()),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute mode. Value: {other}. {other} is not one of \
                 ['rw', 'ro']"
            ))
            .into())
        }
    };
    r.volume(&app, &vol)?;
    let a = app
        .volumes
        .attachment_create(&vol, instance, connector, mode, app.clock.now())
        .await?;
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"attachment": detail(&a, &vol)})),
    ))
}

pub(super) async fn update(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    since(&r, 27)?;
    r.member("volume:attachment_update")?;
    let body = parse_json(&headers, &body)?;
    let o = wrapped(&body, "attachment")?;
    super::only_known("attachment", o, &["connector"])?;
    let connector = match o.get("connector") {
        Some(c @ Value::Object(m)) if !m.is_empty() => c.clone(),
        Some(other) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute connector. Value: {other}. {other} is not \
                 of type 'object' with at least one property"
            ))
            .into())
        }
        None => return Err(Fault::bad_request("'connector' is a required property").into()),
    };
    let (v, _) = app.volumes.attachment(&id, &r.ctx.project_id, r.admin())?;
    let a = app
        .volumes
        .attachment_update(&v.id, &id, connector, app.clock.now())
        .await?;
    Ok(r.answer(
        StatusCode::OK,
        Some(json!({"attachment": detail(&a, &v.id)})),
    ))
}

pub(super) async fn delete(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Res {
    let r = Req::new(caller, &headers)?;
    since(&r, 27)?;
    r.member("volume:attachment_delete")?;
    let (v, a) = app.volumes.attachment(&id, &r.ctx.project_id, r.admin())?;
    // Cinder's bug #2004555 guard: a connected attachment Nova holds is
    // Nova's to end (through its own detach).
    let nova_holds = a.connection_info.is_some()
        && app
            .compute
            .instances
            .get(&a.server_id)
            .filter(|i| !i.deleted)
            .is_some_and(|i| {
                i.block_device_mapping
                    .iter()
                    .any(|b| b.attachment_id.as_deref() == Some(id.as_str()))
            });
    if nova_holds {
        return Err(Fault::conflict(format!(
            "Detach volume from instance {} using the Compute API",
            a.server_id
        ))
        .into());
    }
    let left = app
        .volumes
        .attachment_delete(&v.id, &id, app.clock.now())
        .await?;
    let left: Vec<Value> = left.iter().map(|a| summary(a, &v.id)).collect();
    Ok(r.answer(StatusCode::OK, Some(json!({"attachments": left}))))
}

pub(super) async fn action(
    State(app): A,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Res {
    let r = Req::new(caller, &headers)?;
    since(&r, 44)?;
    r.member("volume:attachment_complete")?;
    let body = parse_json(&headers, &body)?;
    let o = body
        .as_object()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    if !o.contains_key("os-complete") || o.len() != 1 {
        return Err(Fault::bad_request("'os-complete' is a required property").into());
    }
    let (v, _) = app.volumes.attachment(&id, &r.ctx.project_id, r.admin())?;
    app.volumes
        .attachment_complete(&v.id, &id, app.clock.now())
        .await?;
    Ok(r.answer(StatusCode::NO_CONTENT, None))
}

/// The legacy attach actions of `POST /volumes/{id}/action`; `None` when
/// `name` is not one of them.
pub(super) async fn legacy(
    app: &App,
    r: &Req,
    v: &Volume,
    name: &str,
    body: &Value,
) -> Option<Result<Response, Fault>> {
    const LEGACY: &[&str] = &[
        "os-reserve",
        "os-unreserve",
        "os-begin_detaching",
        "os-roll_detaching",
        "os-attach",
        "os-detach",
        "os-initialize_connection",
        "os-terminate_connection",
    ];
    if !LEGACY.contains(&name) {
        return None;
    }
    if let Err(f) = r.member(&format!("volume_extension:volume_actions:{}", &name[3..])) {
        return Some(Err(f));
    }
    let now = app.clock.now();
    let id = v.id.as_str();
    let vols = &app.volumes;
    let accepted = |res: Result<(), Fault>| res.map(|()| r.answer(StatusCode::ACCEPTED, None));
    let arg = || wrapped(body, name).cloned().unwrap_or_default();
    let res = match name {
        "os-reserve" => accepted(
            vols.legacy_step(
                id,
                &["available"],
                "attaching",
                &format!(
                    "Volume {id} status must be available to reserve, but the current status \
                     is {}.",
                    v.status
                ),
                now,
            )
            .await,
        ),
        "os-unreserve" => accepted(vols.unreserve(id, now).await),
        "os-begin_detaching" => accepted(
            vols.legacy_step(
                id,
                &["in-use"],
                "detaching",
                "Unable to detach volume. Volume status must be 'in-use' and attach_status \
                 must be 'attached' to detach.",
                now,
            )
            .await,
        ),
        "os-roll_detaching" => accepted(
            vols.legacy_step(id, &["detaching"], "in-use", "", now)
                .await
                .or(Ok(())),
        ),
        "os-attach" => {
            let a = arg();
            let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
            let instance = text("instance_uuid");
            let host = text("host_name");
            if instance.is_none() == host.is_none() {
                return Some(Err(invalid_volume(
                    "Invalid request to attach volume to an invalid target",
                )));
            }
            let Some(mountpoint) = text("mountpoint") else {
                return Some(Err(Fault::bad_request("Must specify 'mountpoint'")));
            };
            let mode = text("mode").unwrap_or_else(|| "rw".into());
            if mode != "rw" && mode != "ro" {
                return Some(Err(Fault::bad_request(
                    "Invalid request to attach volume with an invalid mode. Attaching mode \
                     should be 'rw' or 'ro'",
                )));
            }
            accepted(
                vols.legacy_attach(id, instance, host, mountpoint, mode, now)
                    .await,
            )
        }
        "os-detach" => {
            let att = arg()
                .get("attachment_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            accepted(vols.legacy_detach(id, att, now).await)
        }
        "os-initialize_connection" => match arg().get("connector") {
            Some(Value::Object(_)) => Ok(r.answer(
                StatusCode::OK,
                Some(json!({"connection_info": vols.connection_info(id)})),
            )),
            _ => Err(Fault::bad_request("Must specify 'connector'")),
        },
        "os-terminate_connection" => match arg().get("connector") {
            Some(Value::Object(_)) => Ok(r.answer(StatusCode::ACCEPTED, None)),
            _ => Err(Fault::bad_request("Must specify 'connector'")),
        },
        _ => return None,
    };
    Some(res)
}
