//! The project's other resources: key pairs (list, create, import,
//! delete), networks, floating IPs, quotas with their
//! usage as bars, and API access (endpoints, the session's token).

use super::client::{enc, Call};
use super::html::{self, esc, t};
use super::session::{Dash, Session};
use super::Out;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;

/// The last microversion that generates a key pair when no public key
/// is given (2.92 made `public_key` required).
const KEYGEN_VERSION: &str = "2.91";

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

async fn keypairs_page(dash: &Dash, s: &Session, message: &str) -> Out {
    let v = dash.get(s, "/compute/v2.1/os-keypairs").await?;
    let rows: String = items(&v, "keypairs")
        .map(|k| {
            let k = &k["keypair"];
            let name = html::text(&k["name"]);
            html::row(&[
                esc(&name),
                t(&k["type"]),
                t(&k["fingerprint"]),
                html::button_form(
                    s,
                    &format!("/dashboard/keypairs/{}/delete", enc(&name)),
                    "Delete",
                    &[],
                    None,
                ),
            ])
        })
        .collect();
    let body = format!(
        r#"<h1>Key pairs</h1>{message}{table}
<h2>Create or import</h2>
<form method="post" action="/dashboard/keypairs" class="stack">{csrf}
<label for="kp-name">Name</label><input id="kp-name" name="name" required>
<label for="kp-public">Public key (leave empty to have one generated)</label><textarea id="kp-public" name="public_key" rows="3"></textarea>
<button type="submit">Save key pair</button></form>"#,
        table = html::table("Key pairs", &["Name", "Type", "Fingerprint", ""], &rows, ""),
        csrf = html::csrf_field(s),
    );
    Ok(html::page(Some(s), "Key pairs", &body))
}

pub async fn keypairs(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    keypairs_page(&dash, &s, "").await
}

pub async fn keypair_create(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    body: Bytes,
) -> Out {
    let (s, f) = dash.posted(&headers, &body)?;
    let mut kp = json!({"name": f.get("name")});
    if !f.get("public_key").is_empty() {
        kp["public_key"] = json!(f.get("public_key"));
    }
    let r = dash
        .call(
            &s,
            Call::new(Method::POST, "/compute/v2.1/os-keypairs", None)
                .microversion(KEYGEN_VERSION)
                .json(json!({ "keypair": kp })),
        )
        .await;
    if r.status == 401 {
        return Err(dash.failure(&s, &r));
    }
    let message = if !r.ok() {
        html::alert(&r.message())
    } else if let Some(private) = r.body["keypair"]["private_key"].as_str() {
        format!(
            r#"{}<pre class="secret" tabindex="0">{}</pre>"#,
            html::note("Key pair created. Save its private key now: it is shown only once."),
            esc(private)
        )
    } else {
        html::note("Key pair imported.")
    };
    keypairs_page(&dash, &s, &message).await
}

pub async fn keypair_delete(
    Extension(dash): Extension<Arc<Dash>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Out {
    let path = format!("/compute/v2.1/os-keypairs/{}", enc(&name));
    super::delete_then(&dash, &headers, &body, path, "/dashboard/keypairs").await
}

/// A read-only list page of one Neutron collection.
async fn list_page(
    dash: &Dash,
    headers: &HeaderMap,
    title: &str,
    path: &str,
    key: &str,
    cols: &[(&str, &str)],
) -> Out {
    let s = dash.require(headers)?;
    let r = dash
        .call(&s, Call::new(Method::GET, path.to_string(), None))
        .await;
    if r.status == 404 {
        // the collection itself is missing: this API does not have it
        let body = format!(
            "<h1>{t}</h1>{}",
            html::note(&format!(
                "This cloud's network API does not offer {title} yet."
            )),
            t = esc(title),
        );
        return Ok(html::page(Some(&s), title, &body));
    }
    if !r.ok() {
        return Err(dash.failure(&s, &r));
    }
    let v = r.body;
    let rows: String = items(&v, key)
        .map(|it| {
            let cells: Vec<String> = cols
                .iter()
                .map(|(_, field)| match &it[*field] {
                    Value::Array(a) => esc(&a
                        .iter()
                        .map(|x| match x {
                            Value::Object(o) => o
                                .get("cidr")
                                .or(o.get("ip_address"))
                                .map(html::text)
                                .unwrap_or_else(|| x.to_string()),
                            other => html::text(other),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")),
                    other => t(other),
                })
                .collect();
            html::row(&cells)
        })
        .collect();
    let heads: Vec<&str> = cols.iter().map(|(h, _)| *h).collect();
    let body = format!(
        "<h1>{}</h1>{}",
        esc(title),
        html::table(title, &heads, &rows, "")
    );
    Ok(html::page(Some(&s), title, &body))
}

pub async fn networks(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    list_page(
        &dash,
        &headers,
        "Networks",
        "/network/v2.0/networks",
        "networks",
        &[
            ("Name", "name"),
            ("Status", "status"),
            ("Shared", "shared"),
            ("External", "router:external"),
            ("Subnets", "subnets"),
        ],
    )
    .await
}

pub async fn floating_ips(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    list_page(
        &dash,
        &headers,
        "Floating IPs",
        "/network/v2.0/floatingips",
        "floatingips",
        &[
            ("Address", "floating_ip_address"),
            ("Fixed address", "fixed_ip_address"),
            ("Port", "port_id"),
            ("Status", "status"),
        ],
    )
    .await
}

pub async fn quotas(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let v = dash.get(&s, "/compute/v2.1/limits").await?;
    let a = &v["limits"]["absolute"];
    let n = |k: &str| a[k].as_f64().unwrap_or(0.0);
    let body = format!(
        r#"<h1>Quotas and usage</h1><div class="card">{}{}{}{}</div>"#,
        html::bar(
            "Instances",
            n("totalInstancesUsed"),
            n("maxTotalInstances"),
            ""
        ),
        html::bar("vCPUs", n("totalCoresUsed"), n("maxTotalCores"), ""),
        html::bar("RAM", n("totalRAMUsed"), n("maxTotalRAMSize"), "MB"),
        html::bar(
            "Server groups",
            n("totalServerGroupsUsed"),
            n("maxServerGroups"),
            ""
        ),
    );
    Ok(html::page(Some(&s), "Quotas", &body))
}

/// API access: the endpoints and this session's token, for the CLI
/// (`openstack --os-auth-type token --os-token ...`).
pub async fn api_access(Extension(dash): Extension<Arc<Dash>>, headers: HeaderMap) -> Out {
    let s = dash.require(&headers)?;
    let base = super::client::public_base(&headers);
    let body = format!(
        r#"<h1>API access</h1>
<dl class="fields"><dt>Identity</dt><dd>{base}/identity/v3</dd><dt>Compute</dt><dd>{base}/compute/v2.1</dd>
<dt>Image</dt><dd>{base}/image</dd><dt>Network</dt><dd>{base}/network</dd>
<dt>User</dt><dd>{user}</dd><dt>Project</dt><dd>{project} ({pid})</dd><dt>Token expires</dt><dd>{exp}</dd></dl>
<details><summary>This session's token</summary><pre id="session-token" tabindex="0">{token}</pre>
<p>It is revoked when you log out.</p></details>"#,
        base = esc(&base),
        user = esc(&s.user_name),
        project = esc(&s.project_name),
        pid = esc(&s.project_id),
        exp = esc(&s.expires_at),
        token = esc(&s.token),
    );
    Ok(html::page(Some(&s), "API access", &body))
}
