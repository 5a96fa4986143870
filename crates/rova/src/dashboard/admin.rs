//! The admin pages: hypervisors with capacity and usage bars, compute
//! services (enable/disable with a reason, force down), migrations (those
//! in progress first) and flavors. A member gets the 403 page (and never
//! sees the links: the layout shows them to admins only).

use super::client::{enc, Call, HYPERVISOR_VERSION};
use super::html::{self, esc, t};
use super::session::{see_other, Dash, Refusal, Session};
use super::Out;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;

/// The session, when it is an admin's; the 403 page otherwise.
fn admin(dash: &Dash, headers: &HeaderMap) -> Result<Session, Refusal> {
    let s = dash.require(headers)?;
    if s.is_admin {
        Ok(s)
    } else {
        Err(html::admin_only(&s).into())
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub async fn hypervisors(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = admin(&dash, &headers)?;
    let v = dash
        .get_at(
            &s,
            "/compute/v2.1/os-hypervisors/detail",
            HYPERVISOR_VERSION,
        )
        .await?;
    let cards: String = v["hypervisors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                r#"<article class="card"><h2>{name}</h2><p>{state} · {status} · {ip} · {running} running</p>{cpu}{ram}{disk}</article>"#,
                name = t(&h["hypervisor_hostname"]),
                state = t(&h["state"]),
                status = t(&h["status"]),
                ip = t(&h["host_ip"]),
                running = t(&h["running_vms"]),
                cpu = html::bar("vCPUs", num(&h["vcpus_used"]), num(&h["vcpus"]), ""),
                ram = html::bar("RAM", num(&h["memory_mb_used"]), num(&h["memory_mb"]), "MB"),
                disk = html::bar("Disk", num(&h["local_gb_used"]), num(&h["local_gb"]), "GB"),
            )
        })
        .collect();
    let body = format!(r#"<h1>Hypervisors</h1><div class="cards">{cards}</div>"#);
    Ok(html::page(Some(&s), "Hypervisors", &body))
}

pub async fn services(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = admin(&dash, &headers)?;
    let v = dash.get(&s, "/compute/v2.1/os-services").await?;
    let rows: String = v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sv| {
            let id = html::text(&sv["id"]);
            let target = format!("/dashboard/admin/services/{}", enc(&id));
            let enabled = sv["status"] == "enabled";
            let toggle = if enabled {
                format!(
                    r#"<form method="post" action="{target}" class="inline">{csrf}<input type="hidden" name="op" value="disable"><label class="sr" for="r-{id}">Reason</label><input id="r-{id}" name="reason" placeholder="reason" size="12"><button type="submit">Disable</button></form>"#,
                    target = esc(&target),
                    csrf = html::csrf_field(&s),
                    id = esc(&id),
                )
            } else {
                html::button_form(&s, &target, "Enable", &[("op", "enable")], None)
            };
            let forced = sv["forced_down"].as_bool().unwrap_or(false);
            let down = if sv["binary"] == "nova-compute" {
                let (label, op) = if forced {
                    ("Clear forced down", "up")
                } else {
                    ("Force down", "down")
                };
                html::button_form(&s, &target, label, &[("op", op)], None)
            } else {
                String::new()
            };
            html::row(&[
                t(&sv["binary"]),
                t(&sv["host"]),
                t(&sv["zone"]),
                t(&sv["status"]),
                t(&sv["state"]),
                t(&sv["disabled_reason"]),
                forced.to_string(),
                t(&sv["updated_at"]),
                format!("{toggle} {down}"),
            ])
        })
        .collect();
    let body = format!(
        "<h1>Services</h1>{}",
        html::table(
            "Compute services",
            &[
                "Binary",
                "Host",
                "Zone",
                "Status",
                "State",
                "Disabled reason",
                "Forced down",
                "Updated",
                "Change"
            ],
            &rows,
            "",
        )
    );
    Ok(html::page(Some(&s), "Services", &body))
}

pub async fn service_update(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let (s, form) = dash.posted(&headers, &body)?;
    if !s.is_admin {
        return Err(html::admin_only(&s));
    }
    let change = match form.get("op") {
        "enable" => json!({"status": "enabled"}),
        "disable" if form.get("reason").is_empty() => json!({"status": "disabled"}),
        "disable" => json!({"status": "disabled", "disabled_reason": form.get("reason")}),
        "down" => json!({"forced_down": true}),
        "up" => json!({"forced_down": false}),
        _ => {
            return Err(html::error_page(
                Some(&s),
                StatusCode::BAD_REQUEST,
                "Unknown change.",
            ))
        }
    };
    let r = dash
        .call(
            &s,
            Call::new(
                Method::PUT,
                format!("/compute/v2.1/os-services/{}", enc(&id)),
                None,
            )
            .json(change),
        )
        .await;
    if r.ok() {
        Ok(see_other("/dashboard/admin/services"))
    } else {
        Err(dash.failure(&s, &r))
    }
}

pub async fn migrations(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = admin(&dash, &headers)?;
    let v = dash.get(&s, "/compute/v2.1/os-migrations").await?;
    let all: Vec<Value> = v["migrations"].as_array().cloned().unwrap_or_default();
    let (live, done): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|m| {
        !crate::compute::migrate::OVER.contains(&m["status"].as_str().unwrap_or(""))
    });
    let render = |ms: &[&Value]| -> String {
        ms.iter()
            .map(|m| {
                html::row(&[
                    t(&m["id"]),
                    format!(
                        r#"<a href="/dashboard/servers/{0}">{0}</a>"#,
                        esc(&html::text(&m["instance_uuid"]))
                    ),
                    t(&m["migration_type"]),
                    t(&m["status"]),
                    t(&m["source_compute"]),
                    t(&m["dest_compute"]),
                    t(&m["created_at"]),
                ])
            })
            .collect()
    };
    let heads = [
        "Id",
        "Server",
        "Type",
        "Status",
        "Source",
        "Destination",
        "Created",
    ];
    let body = format!(
        "<h1>Migrations</h1>{}{}",
        html::table("In progress", &heads, &render(&live), ""),
        html::table("Finished", &heads, &render(&done), ""),
    );
    Ok(html::page(Some(&s), "Migrations", &body))
}

pub async fn flavors(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = admin(&dash, &headers)?;
    let v = dash
        .get(&s, "/compute/v2.1/flavors/detail?is_public=None")
        .await?;
    let rows: String = v["flavors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            html::row(&[
                t(&f["id"]),
                t(&f["name"]),
                t(&f["vcpus"]),
                t(&f["ram"]),
                t(&f["disk"]),
                t(&f["OS-FLV-EXT-DATA:ephemeral"]),
                t(&f["swap"]),
                t(&f["os-flavor-access:is_public"]),
            ])
        })
        .collect();
    let body = format!(
        "<h1>Flavors</h1>{}",
        html::table(
            "Flavors",
            &[
                "Id",
                "Name",
                "vCPUs",
                "RAM (MB)",
                "Disk (GB)",
                "Ephemeral",
                "Swap",
                "Public"
            ],
            &rows,
            "",
        )
    );
    Ok(html::page(Some(&s), "Flavors", &body))
}
