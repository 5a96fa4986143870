//! Routes for remote consoles (2.6+) and admin console-token lookup.

use crate::app::App;
use crate::compute::consoles;
use crate::http::{json_status, parse_json, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use rova_core::Fault;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/servers/{id}/remote-consoles", post(remote_console))
        .route("/os-console-auth-tokens/{token}", get(token_show))
}

async fn remote_console(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if !ctx.at_least(6) {
        return Err(Fault::not_found("The resource could not be found.").into());
    }
    let v = parse_json(&headers, &body)?;
    let rc = v
        .get("remote_console")
        .and_then(Value::as_object)
        .ok_or_else(|| Fault::bad_request("Invalid input for field/attribute remote_console. 'remote_console' is a required property"))?;
    let protocol = rc.get("protocol").and_then(Value::as_str).ok_or_else(|| {
        Fault::bad_request(
            "Invalid input for field/attribute remote_console. 'protocol' is a required property",
        )
    })?;
    let console_type = rc.get("type").and_then(Value::as_str).ok_or_else(|| {
        Fault::bad_request(
            "Invalid input for field/attribute remote_console. 'type' is a required property",
        )
    })?;
    for k in rc.keys() {
        if k != "protocol" && k != "type" {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute remote_console. Additional properties are not allowed ('{k}' was unexpected)"
            ))
            .into());
        }
    }
    consoles::check_protocol(&ctx, protocol, console_type)?;
    let url = consoles::create(&app, &ctx, &id, protocol, console_type).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"remote_console": {"protocol": protocol, "type": console_type, "url": url}}),
    ))
}

async fn token_show(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    ctx.require_admin("os_compute_api:os-console-auth-tokens")?;
    let t = consoles::lookup(&app, &token)
        .await
        .ok_or_else(|| Fault::not_found("The token is invalid or has expired."))?;
    let mut c = json!({"instance_uuid": t.instance_uuid, "host": t.host, "port": t.port,
                       "internal_access_path": t.internal_access_path});
    if !ctx.at_least(31) && t.console_type != "rdp-html5" {
        return Err(
            Fault::bad_request("The console type is not supported at this microversion.").into(),
        );
    }
    if ctx.at_least(99) {
        c["tls_port"] = Value::Null;
    }
    Ok(axum::Json(json!({"console": c})).into_response())
}
