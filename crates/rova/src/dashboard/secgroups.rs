//! Security groups: the project's groups with their rules, creating and
//! deleting a group, adding a rule (direction, protocol, ports, remote
//! CIDR) and deleting one, all through the network API, whose refusals
//! are shown on the page.

use super::client::{enc, Call};
use super::html::{self, esc, t};
use super::session::{see_other, Dash, Session};
use super::Out;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;

const BACK: &str = "/dashboard/security-groups";

fn rule_row(s: &Session, r: &Value) -> String {
    let ports = match (r["port_range_min"].as_i64(), r["port_range_max"].as_i64()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "any".into(),
    };
    let or_any = |v: &Value| match html::text(v) {
        x if x.is_empty() => "any".to_string(),
        x => x,
    };
    html::row(&[
        t(&r["direction"]),
        t(&r["ethertype"]),
        esc(&or_any(&r["protocol"])),
        esc(&ports),
        esc(&or_any(&r["remote_ip_prefix"])),
        html::button_form(
            s,
            &format!(
                "/dashboard/security-group-rules/{}/delete",
                enc(&html::text(&r["id"]))
            ),
            "Delete rule",
            &[],
            None,
        ),
    ])
}

fn group_section(s: &Session, g: &Value) -> String {
    let id = html::text(&g["id"]);
    let rules: String = g["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| rule_row(s, r))
        .collect();
    let fid = esc(&id);
    format!(
        r#"<section class="card"><h2>{name}</h2><p>{desc}</p>{table}
<form method="post" action="{BACK}/{eid}/rules" class="filters">{csrf}
<label for="dir-{fid}">Direction</label><select id="dir-{fid}" name="direction"><option>ingress</option><option>egress</option></select>
<label for="proto-{fid}">Protocol</label><select id="proto-{fid}" name="protocol"><option>tcp</option><option>udp</option><option>icmp</option><option value="">any</option></select>
<label for="min-{fid}">Ports from</label><input id="min-{fid}" name="port_min" size="5" inputmode="numeric">
<label for="max-{fid}">to</label><input id="max-{fid}" name="port_max" size="5" inputmode="numeric">
<label for="cidr-{fid}">Remote CIDR</label><input id="cidr-{fid}" name="remote_ip_prefix" size="14" placeholder="0.0.0.0/0">
<button type="submit">Add rule</button></form>
{delete}</section>"#,
        name = t(&g["name"]),
        desc = t(&g["description"]),
        table = html::table(
            "Rules",
            &["Direction", "Ether type", "Protocol", "Ports", "Remote", ""],
            &rules,
            ""
        ),
        eid = esc(&enc(&id)),
        csrf = html::csrf_field(s),
        delete = html::button_form(
            s,
            &format!("{BACK}/{}/delete", enc(&id)),
            "Delete group",
            &[],
            (g["name"] == "default").then_some("The default group cannot be deleted."),
        ),
    )
}

async fn page(dash: &Dash, s: &Session, message: &str) -> Out {
    let path = format!(
        "/network/v2.0/security-groups?project_id={}",
        enc(&s.project_id)
    );
    let v = dash.get(s, &path).await?;
    let groups: String = v["security_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| group_section(s, g))
        .collect();
    let body = format!(
        r#"<h1>Security groups</h1>{message}<div class="cards">{groups}</div>
<h2>New group</h2>
<form method="post" action="{BACK}" class="stack">{csrf}
<label for="sg-name">Name</label><input id="sg-name" name="name" required>
<label for="sg-desc">Description</label><input id="sg-desc" name="description">
<button type="submit">Create group</button></form>"#,
        csrf = html::csrf_field(s),
    );
    Ok(html::page(Some(s), "Security groups", &body))
}

pub async fn list(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let message = dash
        .take_flash(&s)
        .await
        .map(|m| html::alert(&m))
        .unwrap_or_default();
    page(&dash, &s, &message).await
}

/// Sends a change; back to the page, with the API's refusal if any.
async fn change(dash: &Dash, s: &Session, call: Call<'_>) -> Out {
    let r = dash.call(s, call).await;
    if r.status == 401 {
        return Err(dash.failure(s, &r));
    }
    if !r.ok() {
        dash.flash(s, r.message()).await;
    }
    Ok(see_other(BACK))
}

pub async fn create(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap, body: Bytes) -> Out {
    let (s, f) = dash.posted(&headers, &body)?;
    let group =
        json!({"security_group": {"name": f.get("name"), "description": f.get("description")}});
    let call = Call::new(Method::POST, "/network/v2.0/security-groups", None).json(group);
    change(&dash, &s, call).await
}

pub async fn delete(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let path = format!("/network/v2.0/security-groups/{}", enc(&id));
    delete_at(&dash, &headers, &body, path).await
}

/// A posted delete form for `api_path`.
async fn delete_at(dash: &Dash, headers: &HeaderMap, body: &Bytes, api_path: String) -> Out {
    let (s, _) = dash.posted(headers, body)?;
    change(dash, &s, Call::new(Method::DELETE, api_path, None)).await
}

/// A port number from the form: empty is none, digits are a number, and
/// anything else goes to the API as written, for its message.
fn port(v: &str) -> Value {
    match v {
        "" => Value::Null,
        v => v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
    }
}

pub async fn add_rule(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let (s, f) = dash.posted(&headers, &body)?;
    let mut rule = json!({"security_group_id": id, "direction": f.get("direction"),
        "ethertype": if f.get("remote_ip_prefix").contains(':') { "IPv6" } else { "IPv4" }});
    for (key, v) in [
        ("protocol", json!(f.get("protocol"))),
        ("port_range_min", port(f.get("port_min"))),
        ("port_range_max", port(f.get("port_max"))),
        ("remote_ip_prefix", json!(f.get("remote_ip_prefix"))),
    ] {
        if !(v.is_null() || v == "") {
            rule[key] = v;
        }
    }
    let call = Call::new(Method::POST, "/network/v2.0/security-group-rules", None)
        .json(json!({ "security_group_rule": rule }));
    change(&dash, &s, call).await
}

pub async fn delete_rule(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Out {
    let path = format!("/network/v2.0/security-group-rules/{}", enc(&id));
    delete_at(&dash, &headers, &body, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_pass_through_for_the_api_to_judge() {
        assert_eq!(port(""), Value::Null);
        assert_eq!(port("22"), json!(22));
        assert_eq!(port("ssh"), json!("ssh"));
    }
}
