//! A guest's console through its agent: a control replica's console
//! proxy asks the agent listener to switch protocols, and the connection
//! then carries the bytes of the guest's serial port or VNC server (its
//! unix socket here) both ways until either side ends.

use super::Agent;
use crate::agent_api::pki::CONTROL_NAME;
use crate::agent_api::types::CONSOLE_PROTOCOL;
use crate::agent_api::wire::Peer;
use crate::compute::driver::ConsoleKind;
use crate::http::{ApiError, ApiResult};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Extension;
use hyper_util::rt::TokioIo;
use rova_core::Fault;
use std::sync::Arc;

/// `GET /agent/v1/instances/{uuid}/console/{kind}` (`Upgrade:
/// rova-console`).
pub(super) async fn console(
    State(agent): State<Arc<Agent>>,
    Extension(peer): Extension<Peer>,
    Path((uuid, kind)): Path<(String, String)>,
    mut req: Request,
) -> ApiResult<Response> {
    if peer.host()? != CONTROL_NAME {
        return Err(ApiError(Fault::forbidden(
            "Only the control plane may open a guest's console.",
        )));
    }
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if wants != Some(CONSOLE_PROTOCOL) {
        return Err(ApiError(Fault::bad_request(format!(
            "A console is opened with Upgrade: {CONSOLE_PROTOCOL}."
        ))));
    }
    let kind = match kind.as_str() {
        "serial" => ConsoleKind::Serial,
        "vnc" => ConsoleKind::Vnc,
        other => {
            return Err(ApiError(Fault::not_found(format!(
                "No console of kind {other}."
            ))))
        }
    };
    let socket = agent
        .qemu
        .as_ref()
        .and_then(|q| q.guest_console(&agent.host, &uuid, kind))
        .ok_or_else(|| {
            ApiError(Fault::not_found(format!(
                "No guest of instance {uuid} runs on {}.",
                agent.host
            )))
        })?;
    let mut guest = tokio::net::UnixStream::connect(&socket)
        .await
        .map_err(|e| {
            ApiError(Fault::new(
                502,
                format!("Cannot reach the console of instance {uuid}: {e}"),
            ))
        })?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let mut up = TokioIo::new(up);
                let _ = tokio::io::copy_bidirectional(&mut up, &mut guest).await;
            }
            Err(e) => tracing::warn!(%uuid, "console upgrade: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, CONSOLE_PROTOCOL)
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError(Fault::internal(e.to_string())))
}
