//! The servers list (`/dashboard/servers`) and every project's servers for
//! admins (`/dashboard/admin/servers`): filters by name and status passed
//! to the API, and a table body the page's script refreshes every two
//! seconds from the `rows` fragment, so builds and actions show without a
//! reload.

use super::html::{self, esc, t};
use super::session::{Dash, Session};
use super::Out;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The list's filters, from the page's query string.
struct Filters {
    name: String,
    status: String,
}

impl Filters {
    fn of(query: Option<&str>) -> Filters {
        let mut f = Filters {
            name: String::new(),
            status: String::new(),
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "name" => f.name = v.trim().to_string(),
                "status" => f.status = v.trim().to_string(),
                _ => {}
            }
        }
        f
    }

    /// The same filters as a query string ("" when none).
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !self.name.is_empty() {
            q.append_pair("name", &self.name);
        }
        if !self.status.is_empty() {
            q.append_pair("status", &self.status);
        }
        q.finish()
    }
}

/// Nova's power states by number.
pub fn power_state(v: &Value) -> &'static str {
    match v.as_i64() {
        Some(1) => "Running",
        Some(3) => "Paused",
        Some(4) => "Shutdown",
        Some(6) => "Crashed",
        Some(7) => "Suspended",
        _ => "No state",
    }
}

/// The addresses of a server, "net: ip, ip; net: ip".
pub fn addresses(v: &Value) -> String {
    let Some(nets) = v.as_object() else {
        return String::new();
    };
    nets.iter()
        .map(|(net, addrs)| {
            let ips: Vec<String> = addrs
                .as_array()
                .map(|a| a.iter().map(|x| html::text(&x["addr"])).collect())
                .unwrap_or_default();
            format!("{net}: {}", ips.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Image id → name, for the image column.
pub async fn image_names(dash: &Dash, s: &Session) -> HashMap<String, String> {
    let Ok(v) = dash.get(s, "/image/v2/images?limit=1000").await else {
        return HashMap::new();
    };
    v["images"]
        .as_array()
        .map(|imgs| {
            imgs.iter()
                .map(|i| (html::text(&i["id"]), html::text(&i["name"])))
                .collect()
        })
        .unwrap_or_default()
}

/// The image of a server: its name when known, else its id.
pub fn image_label(server: &Value, names: &HashMap<String, String>) -> String {
    let id = html::text(&server["image"]["id"]);
    if id.is_empty() {
        return "(volume)".into();
    }
    names.get(&id).cloned().unwrap_or(id)
}

/// How many columns the list has (admins see project and host too).
fn columns(all: bool) -> usize {
    if all {
        10
    } else {
        8
    }
}

/// The table rows of the servers the API lists for `filters`.
async fn render_rows(dash: &Dash, s: &Session, f: &Filters, all: bool) -> Result<String, Response> {
    let mut path = "/compute/v2.1/servers/detail".to_string();
    let mut q = f.query();
    if all {
        q = if q.is_empty() {
            "all_tenants=1".into()
        } else {
            format!("{q}&all_tenants=1")
        };
    }
    if !q.is_empty() {
        path = format!("{path}?{q}");
    }
    let r = dash
        .call(
            s,
            super::client::Call::new(axum::http::Method::GET, path, None),
        )
        .await;
    if !r.ok() {
        if r.status == 400 {
            let cols = columns(all);
            return Ok(format!(
                r#"<tr><td colspan="{cols}">{}</td></tr>"#,
                html::alert(&r.message())
            ));
        }
        return Err(dash.failure(s, &r));
    }
    let names = image_names(dash, s).await;
    let servers = r.body["servers"].as_array().cloned().unwrap_or_default();
    if servers.is_empty() {
        let cols = columns(all);
        return Ok(format!(
            r#"<tr><td colspan="{cols}" class="empty">No servers.</td></tr>"#
        ));
    }
    let mut out = String::with_capacity(servers.len() * 600);
    if r.body["servers_links"].is_array() {
        let cols = columns(all);
        out.push_str(&format!(
            r#"<tr><td colspan="{cols}" class="empty">Only the first {} servers are shown: narrow the list with the filters.</td></tr>"#,
            servers.len()
        ));
    }
    for sv in &servers {
        let id = html::text(&sv["id"]);
        let status = html::text(&sv["status"]);
        let mut cells = vec![
            format!(
                r#"<a href="/dashboard/servers/{}">{}</a>"#,
                esc(&id),
                t(&sv["name"])
            ),
            format!(
                r#"<span class="status s-{cls}" data-status="{st}">{st}</span>"#,
                cls = esc(&status.to_ascii_lowercase()),
                st = esc(&status)
            ),
            t(&sv["OS-EXT-STS:task_state"]),
            power_state(&sv["OS-EXT-STS:power_state"]).to_string(),
            esc(&addresses(&sv["addresses"])),
            t(&sv["flavor"]["original_name"]),
            esc(&image_label(sv, &names)),
            esc(&html::age(&html::text(&sv["created"]))),
        ];
        if all {
            cells.push(t(&sv["tenant_id"]));
            cells.push(t(&sv["OS-EXT-SRV-ATTR:host"]));
        }
        out.push_str(&format!(r#"<tr data-id="{}">"#, esc(&id)));
        for c in cells {
            out.push_str("<td>");
            out.push_str(&c);
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    Ok(out)
}

const STATUSES: &[&str] = &[
    "ACTIVE",
    "BUILD",
    "ERROR",
    "PAUSED",
    "SUSPENDED",
    "SHUTOFF",
    "REBOOT",
    "HARD_REBOOT",
    "RESIZE",
    "VERIFY_RESIZE",
    "MIGRATING",
    "RESCUE",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "DELETED",
];

async fn page(dash: &Dash, s: &Session, query: Option<&str>, all: bool) -> Out {
    let f = Filters::of(query);
    let rows = render_rows(dash, s, &f, all).await?;
    let options: String = std::iter::once("")
        .chain(STATUSES.iter().copied())
        .map(|st| {
            let sel = if st == f.status { " selected" } else { "" };
            let label = if st.is_empty() { "any" } else { st };
            format!(r#"<option value="{st}"{sel}>{label}</option>"#)
        })
        .collect();
    let (base, title) = if all {
        ("/dashboard/admin/servers", "All servers")
    } else {
        ("/dashboard/servers", "Servers")
    };
    let q = f.query();
    let live = if q.is_empty() {
        format!("{base}/rows")
    } else {
        format!("{base}/rows?{q}")
    };
    let mut heads = vec![
        "Name",
        "Status",
        "Task",
        "Power",
        "Addresses",
        "Flavor",
        "Image",
        "Age",
    ];
    if all {
        heads.extend(["Project", "Host"]);
    }
    let body = format!(
        r#"<h1>{title}</h1>
<form method="get" action="{base}" class="filters" role="search">
<label for="f-name">Name</label><input id="f-name" name="name" value="{name}">
<label for="f-status">Status</label><select id="f-status" name="status">{options}</select>
<button type="submit">Filter</button></form>
<p><a class="button" href="/dashboard/servers/new">Launch a server</a></p>
{table}"#,
        name = esc(&f.name),
        table = html::table(
            "Servers (updated every 2 seconds)",
            &heads,
            &rows,
            &format!(r#" id="server-rows" data-live="{}""#, esc(&live)),
        ),
    );
    Ok(html::page(Some(s), title, &body))
}

pub async fn list(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Out {
    let s = dash.require(&headers)?;
    page(&dash, &s, query.as_deref(), false).await
}

pub async fn rows(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Out {
    let s = dash.require(&headers)?;
    let f = Filters::of(query.as_deref());
    Ok(html::live_fragment(
        &headers,
        render_rows(&dash, &s, &f, false).await?,
    ))
}

pub async fn admin_list(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Out {
    let s = dash.require(&headers)?;
    if !s.is_admin {
        return Err(html::admin_only(&s));
    }
    page(&dash, &s, query.as_deref(), true).await
}

pub async fn admin_rows(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Out {
    let s = dash.require(&headers)?;
    if !s.is_admin {
        return Err(html::admin_only(&s));
    }
    let f = Filters::of(query.as_deref());
    Ok(html::live_fragment(
        &headers,
        render_rows(&dash, &s, &f, true).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_round_trip() {
        let f = Filters::of(Some("name=a%20b&status=ACTIVE&x=1"));
        assert_eq!(f.name, "a b");
        assert_eq!(f.status, "ACTIVE");
        assert_eq!(f.query(), "name=a+b&status=ACTIVE");
        assert_eq!(Filters::of(None).query(), "");
    }

    #[test]
    fn addresses_and_power_states_read() {
        let a = json!({"private": [{"addr": "10.0.0.3"}, {"addr": "fd00::3"}]});
        assert_eq!(addresses(&a), "private: 10.0.0.3, fd00::3");
        assert_eq!(power_state(&json!(3)), "Paused");
        assert_eq!(power_state(&Value::Null), "No state");
    }
}
