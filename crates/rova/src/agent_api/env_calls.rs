//! A control replica's answers to the guest-environment calls of agents
//! that run real guests ([`EnvRequest`], [`IMAGE_FILE`]): the compute
//! service's own [`GuestEnv`] over the agent API, so an agent's QEMU
//! driver sees what an in-process one sees — without database
//! credentials. An agent reads only the servers placed on its own host
//! and reports only about its own host; image bytes are read from (and
//! written to) the image store here, never carried by the database.

use super::control::Ctl;
use super::types::*;
use super::wire::Peer;
use crate::compute::guest_env::ComputeGuestEnv;
use crate::http::{ApiError, ApiResult};
use crate::virt::env::{GuestEvent, Unavailable};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use base64::Engine;
use rova_core::Fault;
use std::sync::Arc;

fn unavailable(_: Unavailable) -> ApiError {
    ApiError(Fault::new(503, "The compute service is shutting down."))
}

/// `POST /agent/v1/env`.
pub(super) async fn env_call(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<EnvReply>> {
    let host = peer.host()?.to_string();
    let req: EnvRequest = super::control::parse(&body)?;
    let env = ComputeGuestEnv::of(&ctl.app);
    let reply = match req {
        EnvRequest::Image { id } => EnvReply::Image {
            image: env.image(&id).await.map_err(unavailable)?,
        },
        EnvRequest::GuestFacts { instance } => EnvReply::GuestFacts {
            facts: Box::new(env.guest_facts(&instance).await.map_err(unavailable)?),
        },
        EnvRequest::Instance { uuid } => EnvReply::Instance {
            instance: env
                .instance(&uuid)
                .await
                .map_err(unavailable)?
                .map(|i| Box::new((*i).clone())),
        },
        EnvRequest::Instances => EnvReply::Instances {
            instances: env
                .instances()
                .await
                .into_iter()
                .filter(|i| i.host.as_deref() == Some(host.as_str()))
                .map(|i| (*i).clone())
                .collect(),
        },
        EnvRequest::PostPassword { uuid, body_b64 } => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(body_b64.as_bytes())
                .map_err(|_| Fault::bad_request("body_b64 is not base64."))?;
            EnvReply::Password {
                outcome: env.post_password(&uuid, raw).await,
            }
        }
        EnvRequest::Network { network_id } => EnvReply::Network {
            network: env.network(&network_id).await.map_err(unavailable)?,
        },
        EnvRequest::DhcpPort {
            network_id,
            datapath,
        } => match env.dhcp_port(&network_id, &datapath).await {
            Ok(port) => EnvReply::DhcpPort { port },
            Err(message) => EnvReply::Failed { message },
        },
        EnvRequest::InstanceAt { network_id, ip } => EnvReply::InstanceAt {
            uuid: env
                .instance_at(&network_id, &ip)
                .await
                .map_err(unavailable)?,
        },
        EnvRequest::PortSecurity { port_ids } => EnvReply::PortSecurity {
            ports: env.port_security(&port_ids).await.map_err(unavailable)?,
        },
        EnvRequest::Routers => EnvReply::Routers {
            routers: env.routers().await.map_err(unavailable)?,
        },
        EnvRequest::MayCopy { uuid, to } => EnvReply::MayCopy {
            allowed: may_copy(&ctl, &uuid, &host, &to),
        },
        EnvRequest::Report { event } => {
            let GuestEvent::PoweredOff {
                uuid,
                host: about,
                was,
                ..
            } = event;
            if about != host {
                return Err(ApiError(Fault::forbidden(format!(
                    "An agent reports only about its own host ({host})."
                ))));
            }
            // Times are the control plane's (its clock may be virtual).
            let event = GuestEvent::PoweredOff {
                uuid,
                host: about,
                was,
                seen_at: env.now(),
            };
            EnvReply::Reported {
                changed: env.report(event).await,
            }
        }
    };
    Ok(Json(reply))
}

/// Whether agent `to` may read server `uuid`'s files from agent `from`:
/// a move of the server from `from` to `to` is in progress.
fn may_copy(ctl: &Ctl, uuid: &str, from: &str, to: &str) -> bool {
    from != to
        && !ctl
            .app
            .compute
            .migrations
            .filter(|m| {
                m.instance_uuid == uuid
                    && m.source_compute.as_deref() == Some(from)
                    && m.dest_compute.as_deref() == Some(to)
                    && !crate::compute::migrate::OVER.contains(&m.status.as_str())
            })
            .is_empty()
}

/// `GET /agent/v1/images/{id}/file`: an active image's bytes.
pub(super) async fn image_get(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> ApiResult<Bytes> {
    peer.host()?;
    let env = ComputeGuestEnv::of(&ctl.app);
    let missing = || ApiError(Fault::not_found(format!("Image {id} could not be found.")));
    let info = env
        .image(&id)
        .await
        .map_err(unavailable)?
        .filter(|i| i.active)
        .ok_or_else(missing)?;
    let bytes = tokio::fs::read(&info.file).await.map_err(|_| missing())?;
    Ok(Bytes::from(bytes))
}

#[derive(serde::Deserialize)]
pub(super) struct SaveQuery {
    virtual_size: Option<u64>,
}

/// `PUT /agent/v1/images/{id}/file`: a disk the agent exported becomes
/// the data of image `id` (a snapshot, backup or shelve image still
/// waiting for it).
pub(super) async fn image_put(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
    Query(q): Query<SaveQuery>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    peer.host()?;
    let env = ComputeGuestEnv::of(&ctl.app);
    env.save_image(&id, body.to_vec(), q.virtual_size)
        .await
        .map_err(|e| ApiError(Fault::conflict(e)))?;
    Ok(Json(serde_json::json!({})))
}
