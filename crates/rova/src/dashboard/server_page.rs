//! One server's page (`/dashboard/servers/{id}`): its overview (every
//! field the API's `server show` gives this user, so admin fields for
//! admins), the action buttons the admission table admits in its current
//! state (refused ones disabled with Nova's reason, the lock reason shown
//! when locked), the action log with events, the console log tail and the
//! VNC console. The parts refresh themselves from `part/{name}`.

use super::client::{enc, Call};
use super::html::{self, esc, t};
use super::servers::{addresses, image_label, image_names, power_state};
use super::session::{see_other, Dash, Session};
use super::Out;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Extension;
use rova_core::admission::{admit, Action, Subject};
use rova_core::states::{TaskState, VmState};
use serde_json::{json, Value};
use std::sync::Arc;

/// The buttons: form value, label, admission rule.
const BUTTONS: &[(&str, &str, Action)] = &[
    ("os-start", "Start", Action::Start),
    ("os-stop", "Stop", Action::Stop),
    ("reboot", "Reboot", Action::RebootSoft),
    ("pause", "Pause", Action::Pause),
    ("unpause", "Unpause", Action::Unpause),
    ("suspend", "Suspend", Action::Suspend),
    ("resume", "Resume", Action::Resume),
    ("lock", "Lock", Action::Lock),
    ("unlock", "Unlock", Action::Unlock),
    ("delete", "Delete", Action::Delete),
];

/// Why the API would refuse `action` on `sv` now, if it would.
fn refusal(sv: &Value, action: Action, is_admin: bool) -> Option<String> {
    let uuid = html::text(&sv["id"]);
    let vm = VmState::parse(sv["OS-EXT-STS:vm_state"].as_str().unwrap_or(""))?;
    let task = sv["OS-EXT-STS:task_state"]
        .as_str()
        .and_then(TaskState::parse);
    let subject = Subject {
        uuid: &uuid,
        vm_state: vm,
        task_state: task,
        launched: !sv["OS-SRV-USG:launched_at"].is_null(),
        locked: sv["locked"].as_bool().unwrap_or(false),
        has_host: sv["hostId"].as_str().is_some_and(|h| !h.is_empty()),
    };
    let locked_already = match action {
        Action::Lock => subject
            .locked
            .then(|| "The server is already locked.".to_string()),
        Action::Unlock => (!subject.locked).then(|| "The server is not locked.".to_string()),
        _ => None,
    };
    locked_already.or_else(|| admit(action, &subject, is_admin).err().map(|f| f.message))
}

async fn server(dash: &Dash, s: &Session, id: &str) -> Result<Value, axum::response::Response> {
    let v = dash
        .get(s, &format!("/compute/v2.1/servers/{}", enc(id)))
        .await?;
    Ok(v["server"].clone())
}

/// One overview value, rendered by kind.
fn field(
    key: &str,
    v: &Value,
    images: &std::collections::HashMap<String, String>,
    sv: &Value,
) -> String {
    match key {
        "addresses" => esc(&addresses(v)),
        "flavor" => format!(
            "{} ({} vCPU, {} MB RAM, {} GB disk)",
            t(&v["original_name"]),
            t(&v["vcpus"]),
            t(&v["ram"]),
            t(&v["disk"])
        ),
        "image" => esc(&image_label(sv, images)),
        "security_groups" => esc(&v
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|x| html::text(&x["name"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()),
        "OS-EXT-STS:power_state" => power_state(v).to_string(),
        "fault" => format!("{} {}", t(&v["code"]), t(&v["message"])),
        _ => match v {
            Value::Array(a) if a.iter().all(Value::is_string) => {
                esc(&a.iter().map(html::text).collect::<Vec<_>>().join(", "))
            }
            _ => t(v),
        },
    }
}

fn overview(sv: &Value, images: &std::collections::HashMap<String, String>) -> String {
    let Some(obj) = sv.as_object() else {
        return String::new();
    };
    let mut keys: Vec<&String> = obj.keys().filter(|k| *k != "links").collect();
    keys.sort();
    let rows: String = keys
        .iter()
        .map(|k| {
            format!(
                "<dt>{}</dt><dd>{}</dd>",
                esc(k),
                field(k, &obj[k.as_str()], images, sv)
            )
        })
        .collect();
    format!(r#"<dl class="fields">{rows}</dl>"#)
}

fn actions(s: &Session, sv: &Value) -> String {
    let id = html::text(&sv["id"]);
    let target = format!("/dashboard/servers/{}/action", enc(&id));
    let buttons: String = BUTTONS
        .iter()
        .map(|(op, label, action)| {
            let why = refusal(sv, *action, s.is_admin);
            html::button_form(s, &target, label, &[("op", op)], why.as_deref())
        })
        .collect();
    let status = html::text(&sv["status"]);
    let lock = if sv["locked"].as_bool().unwrap_or(false) {
        let reason = html::text(&sv["locked_reason"]);
        let reason = if reason.is_empty() {
            "no reason given".into()
        } else {
            reason
        };
        format!(
            r#"<p class="locked" role="status">Locked: {}</p>"#,
            esc(&reason)
        )
    } else {
        String::new()
    };
    format!(
        r#"<p>Status <span class="status s-{c}" id="server-status" data-status="{st}">{st}</span> · task {task} · power {power}</p>{lock}<div class="actions">{buttons}</div>"#,
        c = esc(&status.to_ascii_lowercase()),
        st = esc(&status),
        task = match html::text(&sv["OS-EXT-STS:task_state"]) {
            t if t.is_empty() => "none".to_string(),
            t => esc(&t),
        },
        power = power_state(&sv["OS-EXT-STS:power_state"]),
    )
}

async fn action_log(dash: &Dash, s: &Session, id: &str) -> String {
    let base = format!("/compute/v2.1/servers/{}/os-instance-actions", enc(id));
    let Ok(list) = dash.get(s, &base).await else {
        return html::alert("The action log could not be read.");
    };
    let mut rows = String::new();
    for a in list["instanceActions"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
    {
        let req = html::text(&a["request_id"]);
        let detail = dash
            .get(s, &format!("{base}/{}", enc(&req)))
            .await
            .unwrap_or(Value::Null);
        let events: String = detail["instanceAction"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "<li>{} <strong>{}</strong> {} → {}</li>",
                    t(&e["event"]),
                    t(&e["result"]),
                    t(&e["start_time"]),
                    t(&e["finish_time"])
                )
            })
            .collect();
        rows.push_str(&html::row(&[
            t(&a["action"]),
            t(&a["start_time"]),
            t(&a["message"]),
            esc(&req),
            format!(r#"<ul class="events">{events}</ul>"#),
        ]));
    }
    if rows.is_empty() {
        rows = r#"<tr><td colspan="5" class="empty">No actions yet.</td></tr>"#.into();
    }
    html::table(
        "Actions, newest first",
        &["Action", "Started", "Message", "Request", "Events"],
        &rows,
        "",
    )
}

async fn console_log(dash: &Dash, s: &Session, id: &str) -> String {
    let r = dash
        .call(
            s,
            Call::new(
                Method::POST,
                format!("/compute/v2.1/servers/{}/action", enc(id)),
                None,
            )
            .json(json!({"os-getConsoleOutput": {"length": 50}})),
        )
        .await;
    if !r.ok() {
        return format!(
            r#"<p class="muted" id="console-log-state">No console log: {}</p>"#,
            esc(&r.message())
        );
    }
    format!(
        r#"<pre id="console-log" tabindex="0">{}</pre>"#,
        t(&r.body["output"])
    )
}

fn live_section(id: &str, part: &str, title: &str, inner: &str) -> String {
    format!(
        r#"<section aria-labelledby="h-{part}"><h2 id="h-{part}">{title}</h2><div id="part-{part}" data-live="/dashboard/servers/{id}/part/{part}">{inner}</div></section>"#,
        id = esc(&enc(id)),
    )
}

pub async fn show(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Out {
    let s = dash.require(&headers)?;
    let sv = server(&dash, &s, &id).await?;
    let images = image_names(&dash, &s).await;
    let message = dash
        .take_flash(&s)
        .await
        .map(|m| html::alert(&m))
        .unwrap_or_default();
    let console_form = html::button_form(
        &s,
        &format!("/dashboard/servers/{}/console", enc(&id)),
        "Open the VNC console",
        &[],
        None,
    ) + &html::button_form(
        &s,
        &format!("/dashboard/servers/{}/serial", enc(&id)),
        "Open the serial console",
        &[],
        None,
    );
    let body = format!(
        r#"<p><a href="/dashboard/servers">← Servers</a></p><h1>Server {name}</h1>{message}
{actions}
<div class="cols">{overview}{log}</div>
{console}
<section aria-labelledby="h-vnc"><h2 id="h-vnc">Consoles</h2><div class="actions">{console_form}</div></section>"#,
        name = t(&sv["name"]),
        actions = live_section(&id, "actions", "Actions", &actions(&s, &sv)),
        overview = live_section(&id, "overview", "Overview", &overview(&sv, &images)),
        log = live_section(&id, "log", "Action log", &action_log(&dash, &s, &id).await),
        console = live_section(
            &id,
            "console",
            "Console log",
            &console_log(&dash, &s, &id).await
        ),
    );
    Ok(html::page(Some(&s), &html::text(&sv["name"]), &body))
}

pub async fn part(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path((id, part)): Path<(String, String)>,
) -> Out {
    let s = dash.require(&headers)?;
    let inner = match part.as_str() {
        "actions" => actions(&s, &server(&dash, &s, &id).await?),
        "overview" => overview(
            &server(&dash, &s, &id).await?,
            &image_names(&dash, &s).await,
        ),
        "log" => action_log(&dash, &s, &id).await,
        "console" => console_log(&dash, &s, &id).await,
        _ => {
            return Err(html::error_page(
                Some(&s),
                StatusCode::NOT_FOUND,
                "No such part.",
            ));
        }
    };
    Ok(html::live_fragment(&headers, inner))
}

pub async fn action(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let (s, form) = dash.posted(&headers, &body)?;
    let op = form.get("op");
    let path = format!("/compute/v2.1/servers/{}", enc(&id));
    let call = match op {
        "delete" => Call::new(Method::DELETE, path.clone(), None),
        "reboot" => Call::new(Method::POST, format!("{path}/action"), None)
            .json(json!({"reboot": {"type": "SOFT"}})),
        "os-start" | "os-stop" | "pause" | "unpause" | "suspend" | "resume" | "lock" | "unlock" => {
            Call::new(Method::POST, format!("{path}/action"), None).json(json!({ op: null }))
        }
        _ => {
            return Err(html::error_page(
                Some(&s),
                StatusCode::BAD_REQUEST,
                "Unknown action.",
            ));
        }
    };
    let r = dash.call(&s, call).await;
    if r.ok() {
        let to = if op == "delete" {
            "/dashboard/servers".to_string()
        } else {
            format!("/dashboard/servers/{}", enc(&id))
        };
        return Ok(see_other(&to));
    }
    if matches!(r.status, 401 | 403 | 404) {
        return Err(dash.failure(&s, &r));
    }
    dash.flash(&s, r.message()).await;
    Ok(see_other(&format!("/dashboard/servers/{}", enc(&id))))
}

/// Opens a VNC console through the API and shows noVNC (served by Rova's
/// console proxy from the installed package) in a frame, or says plainly
/// why there is none.
pub async fn console(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let (s, _) = dash.posted(&headers, &body)?;
    let sv = server(&dash, &s, &id).await?;
    let r = remote_console(&dash, &s, &id, "vnc", "novnc").await;
    let back = format!(
        r#"<p><a href="/dashboard/servers/{}">← Server {}</a></p>"#,
        esc(&enc(&id)),
        t(&sv["name"])
    );
    let body = if r.ok() {
        // Debian's vnc_auto.html is noVNC's full UI, which waits for a
        // click; the frame shows vnc_lite.html (same package, same token),
        // which connects at once.
        let url = html::text(&r.body["remote_console"]["url"]).replacen(
            "/vnc_auto.html?",
            "/vnc_lite.html?",
            1,
        );
        let sim = if dash.simulated() {
            r#"<p class="note" role="status">This is a simulated server: Rova's simulator answers the console with a blank screen of its own.</p>"#
        } else {
            ""
        };
        format!(
            r#"{back}<h1>VNC console</h1>{sim}<p>Each console link opens one session: reload this page for a new one.</p>
<iframe id="vnc" title="VNC console of {name}" src="{u}" class="console"></iframe>"#,
            u = esc(&url),
            name = t(&sv["name"]),
        )
    } else {
        let why = if dash.simulated() {
            format!("No console for simulated servers here: {}", r.message())
        } else {
            r.message()
        };
        format!(
            r#"{back}<h1>VNC console</h1><p class="alert no-console" role="alert" id="no-console">{}</p>"#,
            esc(&why)
        )
    };
    Ok(html::page(Some(&s), "VNC console", &body))
}

/// Asks the compute API for a console of server `id`.
async fn remote_console(
    dash: &Dash,
    s: &Session,
    id: &str,
    protocol: &str,
    kind: &str,
) -> super::client::ApiResp {
    dash.call(
        s,
        Call::new(
            Method::POST,
            format!("/compute/v2.1/servers/{}/remote-consoles", enc(id)),
            None,
        )
        .json(json!({"remote_console": {"protocol": protocol, "type": kind}})),
    )
    .await
}

/// The serial console: a websocket to Rova's console proxy, shown by a
/// small script; the page says when the server is simulated (its serial
/// port only echoes).
pub async fn serial(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let (s, _) = dash.posted(&headers, &body)?;
    let sv = server(&dash, &s, &id).await?;
    let back = format!(
        r#"<p><a href="/dashboard/servers/{}">← Server {}</a></p><h1>Serial console</h1>"#,
        esc(&enc(&id)),
        t(&sv["name"])
    );
    let sim = if dash.simulated() {
        r#"<p class="note" id="sim-serial">A simulated server's serial port echoes what is sent to it: no guest runs behind it. Its console log is on the server's page.</p>"#
    } else {
        ""
    };
    let r = remote_console(&dash, &s, &id, "serial", "serial").await;
    let body = if r.ok() {
        format!(
            r#"{back}{sim}<p id="serial-state" role="status">Connecting…</p>
<pre id="serial-out" class="console" tabindex="0" data-url="{u}"></pre>
<form id="serial-send" class="filters"><label for="serial-line">Send a line</label><input id="serial-line" name="line" autocomplete="off"><button type="submit">Send</button></form>
<script src="/dashboard/static/serial.js" defer></script>"#,
            u = t(&r.body["remote_console"]["url"]),
        )
    } else {
        format!(
            r#"{back}<p class="alert no-console" role="alert" id="no-console">No serial console: {}</p>"#,
            esc(&r.message())
        )
    };
    Ok(html::page(Some(&s), "Serial console", &body))
}
