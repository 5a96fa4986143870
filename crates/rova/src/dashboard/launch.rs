//! The launch form (`/dashboard/servers/new`): image, flavor, networks,
//! key pair, security groups, user data, availability zone, server group
//! and count, posted to the compute API as one create request; the API's
//! validation message is shown on the form, with the values kept.

use super::client::Call;
use super::html::{self, esc};
use super::session::{see_other, Dash, Form, Session};
use super::Out;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Extension;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

/// (value, label) pairs of one choice.
type Options = Vec<(String, String)>;

/// `list[*]` as (value, label) pairs picked by `f`.
fn pick(v: &Value, f: impl Fn(&Value) -> (String, String)) -> Options {
    v.as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

struct Choices {
    images: Options,
    flavors: Options,
    networks: Options,
    keypairs: Options,
    secgroups: Options,
    zones: Options,
    groups: Options,
}

async fn choices(dash: &Dash, s: &Session) -> Choices {
    let get = |path: String| async move { dash.get(s, &path).await.unwrap_or(Value::Null) };
    let txt = html::text;
    let images = get("/image/v2/images?limit=1000".into()).await;
    let flavors = get("/compute/v2.1/flavors/detail".into()).await;
    let networks = get("/network/v2.0/networks".into()).await;
    let keypairs = get("/compute/v2.1/os-keypairs".into()).await;
    // the project's own groups (an admin's list has every project's)
    let secgroups = get(format!(
        "/network/v2.0/security-groups?project_id={}",
        super::client::enc(&s.project_id)
    ))
    .await;
    let zones = get("/compute/v2.1/os-availability-zone".into()).await;
    let groups = get("/compute/v2.1/os-server-groups".into()).await;
    let mut sg_names = pick(&secgroups["security_groups"], |g| {
        (txt(&g["name"]), txt(&g["name"]))
    });
    sg_names.sort();
    sg_names.dedup();
    Choices {
        images: pick(&images["images"], |i| (txt(&i["id"]), txt(&i["name"]))),
        flavors: pick(&flavors["flavors"], |f| {
            let label = format!(
                "{} ({} vCPU, {} MB, {} GB)",
                txt(&f["name"]),
                txt(&f["vcpus"]),
                txt(&f["ram"]),
                txt(&f["disk"])
            );
            (txt(&f["id"]), label)
        }),
        networks: bootable(&networks["networks"], &s.project_id),
        keypairs: pick(&keypairs["keypairs"], |k| {
            (txt(&k["keypair"]["name"]), txt(&k["keypair"]["name"]))
        }),
        secgroups: sg_names,
        zones: pick(&zones["availabilityZoneInfo"], |z| {
            (txt(&z["zoneName"]), txt(&z["zoneName"]))
        }),
        groups: pick(&groups["server_groups"], |g| {
            (txt(&g["id"]), txt(&g["name"]))
        }),
    }
}

/// The networks a project may put a server on: its own and shared ones.
/// An external network that is not shared is listed by Neutron to every
/// project (for routers and floating IPs) but only its owner may boot on
/// it, so the form leaves it out.
fn bootable(networks: &Value, project_id: &str) -> Options {
    let ok = |n: &Value| {
        let external = n["router:external"].as_bool().unwrap_or(false);
        let shared = n["shared"].as_bool().unwrap_or(false);
        !external || shared || n["project_id"].as_str() == Some(project_id)
    };
    networks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| ok(n))
        .map(|n| (html::text(&n["id"]), html::text(&n["name"])))
        .collect()
}

/// A `<select>` with `chosen` selected; `none` adds an empty first option.
fn select(
    id: &str,
    label: &str,
    opts: &Options,
    chosen: &[&str],
    none: Option<&str>,
    multiple: bool,
) -> String {
    let mut o = none.map_or(String::new(), |n| {
        format!(r#"<option value="">{}</option>"#, esc(n))
    });
    for (v, l) in opts {
        let sel = if chosen.contains(&v.as_str()) {
            " selected"
        } else {
            ""
        };
        o.push_str(&format!(
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(v),
            esc(l)
        ));
    }
    let multi = if multiple { " multiple" } else { "" };
    format!(r#"<label for="{id}">{label}</label><select id="{id}" name="{id}"{multi}>{o}</select>"#)
}

fn render(s: &Session, c: &Choices, f: &Form, message: Option<&str>) -> String {
    let alert = message.map(html::alert).unwrap_or_default();
    let first_net = c.networks.first().map(|(id, _)| id.as_str());
    let nets = if f.0.is_empty() {
        first_net.into_iter().collect()
    } else {
        f.all("network")
    };
    let sgs = if f.0.is_empty() {
        vec!["default"]
    } else {
        f.all("security_group")
    };
    let count = if f.get("count").is_empty() {
        "1"
    } else {
        f.get("count")
    };
    format!(
        r#"<h1>Launch a server</h1>{alert}
<form method="post" action="/dashboard/servers/new" class="stack" id="launch">{csrf}
<label for="name">Name</label><input id="name" name="name" required value="{name}">
{image}{flavor}{network}{key}{sg}
<label for="user_data">User data</label><textarea id="user_data" name="user_data" rows="4">{ud}</textarea>
{zone}{group}
<label for="count">Count</label><input id="count" name="count" inputmode="numeric" value="{count}">
<button type="submit">Launch</button></form>"#,
        csrf = html::csrf_field(s),
        name = esc(f.get("name")),
        image = select("image", "Image", &c.images, &[f.get("image")], None, false),
        flavor = select(
            "flavor",
            "Flavor",
            &c.flavors,
            &[f.get("flavor")],
            None,
            false
        ),
        network = select("network", "Networks", &c.networks, &nets, None, true),
        key = select(
            "key_name",
            "Key pair",
            &c.keypairs,
            &[f.get("key_name")],
            Some("(none)"),
            false
        ),
        sg = select(
            "security_group",
            "Security groups",
            &c.secgroups,
            &sgs,
            None,
            true
        ),
        ud = esc(f.get("user_data")),
        zone = select(
            "availability_zone",
            "Availability zone",
            &c.zones,
            &[f.get("availability_zone")],
            Some("(any)"),
            false
        ),
        group = select(
            "server_group",
            "Server group",
            &c.groups,
            &[f.get("server_group")],
            Some("(none)"),
            false
        ),
        count = esc(count),
    )
}

pub async fn form(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let c = choices(&dash, &s).await;
    Ok(html::page(
        Some(&s),
        "Launch",
        &render(&s, &c, &Form(Vec::new()), None),
    ))
}

/// The create request of a posted form.
fn request(f: &Form) -> Value {
    let count = match f.get("count") {
        "" => "1",
        c => c,
    };
    let count = count
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(count));
    let mut server = json!({
        "name": f.get("name"),
        "imageRef": f.get("image"),
        "flavorRef": f.get("flavor"),
        "min_count": count.clone(),
        "max_count": count,
    });
    let nets = f.all("network");
    server["networks"] = if nets.is_empty() {
        json!("none")
    } else {
        Value::from(nets.iter().map(|n| json!({"uuid": n})).collect::<Vec<_>>())
    };
    if !f.get("key_name").is_empty() {
        server["key_name"] = json!(f.get("key_name"));
    }
    let sgs = f.all("security_group");
    if !sgs.is_empty() {
        server["security_groups"] =
            Value::from(sgs.iter().map(|g| json!({"name": g})).collect::<Vec<_>>());
    }
    if !f.get("user_data").is_empty() {
        server["user_data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(f.get("user_data")));
    }
    if !f.get("availability_zone").is_empty() {
        server["availability_zone"] = json!(f.get("availability_zone"));
    }
    let mut body = json!({ "server": server });
    if !f.get("server_group").is_empty() {
        body["os:scheduler_hints"] = json!({"group": f.get("server_group")});
    }
    body
}

pub async fn submit(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap, body: Bytes) -> Out {
    let (s, f) = dash.posted(&headers, &body)?;
    let r = dash
        .call(
            &s,
            Call::new(Method::POST, "/compute/v2.1/servers", None).json(request(&f)),
        )
        .await;
    if r.ok() {
        return Ok(see_other("/dashboard/servers"));
    }
    if r.status == 401 {
        return Err(dash.failure(&s, &r));
    }
    let c = choices(&dash, &s).await;
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let page = html::page(Some(&s), "Launch", &render(&s, &c, &f, Some(&r.message())));
    Ok((status, page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_one_create_request() {
        let f = Form::parse(b"name=a&image=i&flavor=1&network=n1&network=n2&security_group=default&count=2&user_data=hi&server_group=g");
        let b = request(&f);
        assert_eq!(b["server"]["min_count"], 2);
        assert_eq!(
            b["server"]["networks"],
            json!([{"uuid": "n1"}, {"uuid": "n2"}])
        );
        assert_eq!(b["server"]["user_data"], "aGk=");
        assert_eq!(b["os:scheduler_hints"]["group"], "g");
        let bad = request(&Form::parse(b"name=a&count=x"));
        assert_eq!(bad["server"]["min_count"], "x");
        assert_eq!(bad["server"]["networks"], "none");
    }

    #[test]
    fn an_external_network_is_offered_only_to_its_owner_unless_shared() {
        let nets = json!([
            {"id": "pub", "name": "public", "router:external": true, "shared": false, "project_id": "admin"},
            {"id": "ext", "name": "ext-shared", "router:external": true, "shared": true, "project_id": "admin"},
            {"id": "priv", "name": "private", "router:external": false, "shared": false, "project_id": "demo"},
        ]);
        let ids = |p: &str| {
            bootable(&nets, p)
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("demo"), ["ext", "priv"]);
        assert_eq!(ids("admin"), ["pub", "ext", "priv"]);
    }
}
