//! Routes for a server's interfaces (`os-interface`): list, show, attach
//! (with Nova's body schema: `net_id` or `port_id`, one fixed IP with a
//! network, a device `tag` from 2.49) and detach; `tag` shown from 2.70.

use crate::app::App;
use crate::compute::interfaces::{self, AttachRequest};
use crate::http::{empty, parse_json, ApiResult, Ctx};
use crate::network::Port;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rova_core::validate::fields;
use rova_core::Fault;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/servers/{id}/os-interface", get(index).post(create))
        .route(
            "/servers/{id}/os-interface/{port_id}",
            get(show).delete(delete),
        )
}

type A = State<Arc<App>>;
type C = Extension<Ctx>;

/// One interface as Nova shows it (from its port).
fn view(ctx: &Ctx, port: &Port, tag: Option<&str>) -> Value {
    let mut v = json!({
        "net_id": port.network_id,
        "port_id": port.id,
        "mac_addr": port.mac_address,
        "port_state": port.status,
        "fixed_ips": port.fixed_ips.iter().map(|ip| json!({
            "subnet_id": ip.subnet_id,
            "ip_address": ip.ip_address,
        })).collect::<Vec<_>>(),
    });
    if ctx.at_least(70) {
        v["tag"] = json!(tag);
    }
    v
}

async fn index(State(app): A, Extension(ctx): C, Path(id): Path<String>) -> ApiResult<Response> {
    let items: Vec<Value> = interfaces::ports_of(&app, &ctx, &id)?
        .iter()
        .map(|(port, vif)| view(&ctx, port, vif.tag.as_deref()))
        .collect();
    Ok(axum::Json(json!({"interfaceAttachments": items})).into_response())
}

fn tag_of(app: &App, id: &str, port_id: &str) -> Option<String> {
    app.compute
        .instances
        .get(id)?
        .vifs
        .iter()
        .find(|v| v.port_id == port_id)?
        .tag
        .clone()
}

async fn show(
    State(app): A,
    Extension(ctx): C,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let port = interfaces::port_of(&app, &ctx, &id, &port_id)?;
    let tag = tag_of(&app, &id, &port_id);
    Ok(
        axum::Json(json!({"interfaceAttachment": view(&ctx, &port, tag.as_deref())}))
            .into_response(),
    )
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str]) -> Result<(), Fault> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Fault::bad_request(format!(
            "Additional properties are not allowed ('{k}' was unexpected)"
        ))),
        None => Ok(()),
    }
}

/// The attach body, checked against Nova's schema.
fn parse(ctx: &Ctx, body: &Value) -> Result<AttachRequest, Fault> {
    let o = body
        .as_object()
        .ok_or_else(|| Fault::bad_request(format!("{body} is not of type 'object'")))?;
    only_keys(o, &["interfaceAttachment"])?;
    let Some(att) = o.get("interfaceAttachment") else {
        return Ok(AttachRequest::default());
    };
    let a = att
        .as_object()
        .ok_or_else(|| Fault::bad_request(format!("{att} is not of type 'object'")))?;
    let mut allowed = vec!["net_id", "port_id", "fixed_ips"];
    if ctx.at_least(49) {
        allowed.push("tag");
    }
    only_keys(a, &allowed)?;
    let mut req = AttachRequest {
        net_id: a
            .get("net_id")
            .map(|v| fields::uuid("net_id", v))
            .transpose()?,
        port_id: a
            .get("port_id")
            .map(|v| fields::uuid("port_id", v))
            .transpose()?,
        fixed_ip: None,
        tag: a.get("tag").map(|v| fields::tag("tag", v)).transpose()?,
    };
    if let Some(ips) = a.get("fixed_ips") {
        let list = ips
            .as_array()
            .ok_or_else(|| Fault::bad_request(format!("{ips} is not of type 'array'")))?;
        if list.is_empty() {
            return Err(Fault::bad_request(format!("{ips} is too short")));
        }
        if list.len() > 1 {
            return Err(Fault::bad_request(format!("{ips} is too long")));
        }
        let ip = list[0]
            .as_object()
            .ok_or_else(|| Fault::bad_request(format!("{} is not of type 'object'", list[0])))?;
        only_keys(ip, &["ip_address"])?;
        let addr = ip
            .get("ip_address")
            .ok_or_else(|| Fault::bad_request("'ip_address' is a required property"))?;
        let text = fields::ip_address("ip_address", addr)?;
        req.fixed_ip = text.parse().ok();
    }
    if req.net_id.is_some() && req.port_id.is_some() {
        return Err(Fault::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if req.fixed_ip.is_some() && req.net_id.is_none() {
        return Err(Fault::bad_request(
            "Must input network_id when request IP address",
        ));
    }
    Ok(req)
}

async fn create(
    State(app): A,
    Extension(ctx): C,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let req = if body.is_empty() {
        AttachRequest::default()
    } else {
        parse(&ctx, &parse_json(&headers, &body)?)?
    };
    let tag = req.tag.clone();
    let port = interfaces::attach(&app, &ctx, &id, req).await?;
    Ok(
        axum::Json(json!({"interfaceAttachment": view(&ctx, &port, tag.as_deref())}))
            .into_response(),
    )
}

async fn delete(
    State(app): A,
    Extension(ctx): C,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    interfaces::detach(&app, &ctx, &id, &port_id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
