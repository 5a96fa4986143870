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
use rova_core::Fault;
use serde_json::{json, Value};
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

/// The attach body, checked against Nova's schema (`rova-core`), as the
/// service's request.
fn parse(ctx: &Ctx, body: &Value) -> Result<AttachRequest, Fault> {
    let r = rova_core::validate::parse_interface_attach(body, ctx.version)?;
    let fixed_ip = match r.fixed_ip {
        Some(text) => Some(
            text.parse()
                .map_err(|_| Fault::bad_request(format!("Invalid IP address {text} requested.")))?,
        ),
        None => None,
    };
    Ok(AttachRequest {
        net_id: r.net_id,
        port_id: r.port_id,
        fixed_ip,
        tag: r.tag,
    })
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
