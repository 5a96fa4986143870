//! `POST /servers/{id}/action`: the body names exactly one action; it is
//! parsed into a typed [`ServerAction`] and handed to the compute service,
//! whose [`Reply`] is rendered here as the HTTP answer.

use crate::app::App;
use crate::compute::actions_run::{self, Reply, ReplyStatus};
use crate::http::{empty, json_status, parse_json, set_header, ApiResult, Ctx};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use rova_core::Fault;
use std::sync::Arc;

pub async fn action(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Extension(links): Extension<super::Links>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let v = parse_json(&headers, &body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    if obj.len() != 1 {
        return Err(Fault::bad_request("Malformed request body").into());
    }
    let (name, arg) = obj
        .iter()
        .next()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let act = actions_run::parse(name, arg, &ctx)?;
    Ok(render(
        actions_run::run(&app, &ctx, &links, &id, act).await?,
    ))
}

/// A server action's answer as HTTP.
fn render(reply: Reply) -> Response {
    let status = match reply.status {
        ReplyStatus::Ok => StatusCode::OK,
        ReplyStatus::Accepted => StatusCode::ACCEPTED,
        ReplyStatus::NoContent => StatusCode::NO_CONTENT,
    };
    let mut resp = match reply.body {
        Some(body) => json_status(status, body),
        None => empty(status),
    };
    if let Some(location) = &reply.location {
        set_header(&mut resp, "location", location);
    }
    resp
}
