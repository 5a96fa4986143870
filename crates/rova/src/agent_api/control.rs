//! A control replica's agent listener (`--agent-listen`): mutual TLS with
//! the cloud's CA, where agents enroll (the one request a caller without
//! a certificate may make), register their host — its compute node row,
//! its endpoint, its first heartbeat — and send heartbeats; agents that
//! run real guests ask it about them (`super::env_calls`). Starting it
//! also gives this process the client identity it calls agents with
//! ([`super::remote::Agents`]).

use super::pki::{Issued, Pki, CONTROL_NAME};
use super::remote::Agents;
use super::types::*;
use super::wire::{self, Peer};
use crate::app::App;
use crate::http::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use chrono::Utc;
use rova_core::Fault;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) struct Ctl {
    pub(super) app: Arc<App>,
    pki: Pki,
    agents: Arc<Agents>,
}

/// A request body, or 400.
pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Fault> {
    serde_json::from_slice(body)
        .map_err(|e| Fault::bad_request(format!("Malformed request body: {e}")))
}

/// Starts the agent listener on `addr` (port 0 picks one) and returns the
/// address it is bound to.
pub async fn start(app: &Arc<App>, addr: SocketAddr) -> Result<SocketAddr, String> {
    let pki = Pki::load(&app.store)?;
    let now = Utc::now();
    let ca = pki.ensure_ca(now).await.map_err(|f| f.message)?;
    let mut names = vec![CONTROL_NAME.to_string()];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    let (cert, key) = pki.server_cert(&names, now).await.map_err(|f| f.message)?;
    let server = super::tls::listener_config(&ca.cert_pem, &cert, &key).map_err(|f| f.message)?;
    let client = super::tls::client_config(&ca.cert_pem, &cert, &key).map_err(|f| f.message)?;
    let agents = Arc::new(Agents::load(
        &app.store,
        wire::Client::new(client),
        app.compute.driver.step_delay(),
    )?);
    let _ = app.compute.agents.set(agents.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (agent API): {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let ctl = Arc::new(Ctl {
        app: app.clone(),
        pki,
        agents,
    });
    let router = Router::new()
        .route(ENROLL, post(enroll))
        .route(REGISTER, post(register))
        .route(HEARTBEAT, post(heartbeat))
        .route(CLEANED, post(cleaned))
        .route(ENV, post(super::env_calls::env_call))
        .route(
            IMAGE_FILE,
            axum::routing::get(super::env_calls::image_get)
                .put(super::env_calls::image_put)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .with_state(ctl);
    tokio::spawn(wire::serve(listener, server, router));
    Ok(bound)
}

async fn enroll(State(ctl): State<Arc<Ctl>>, body: Bytes) -> ApiResult<Json<Issued>> {
    let req: EnrollRequest = parse(&body)?;
    let issued = ctl.pki.enroll(&req.token, &req.csr_pem, Utc::now()).await?;
    tracing::info!(host = %issued.host, "agent enrolled");
    Ok(Json(issued))
}

async fn register(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<Registered>> {
    let host = peer.host()?.to_string();
    let req: RegisterRequest = parse(&body)?;
    req.address
        .parse::<SocketAddr>()
        .map_err(|_| Fault::bad_request(format!("Invalid agent address {:?}.", req.address)))?;
    if !matches!(req.driver.as_str(), "fake" | "qemu") {
        return Err(Fault::bad_request(format!("Unknown driver {:?}.", req.driver)).into());
    }
    let app = &ctl.app;
    let fleet = &app.compute.fleet;
    fleet
        .register_agent_host(
            &app.cfg,
            &host,
            req.inventory,
            req.availability_zone.as_deref(),
            &req.address,
        )
        .await?;
    ctl.agents
        .record(AgentEndpoint {
            host: host.clone(),
            address: req.address.clone(),
            driver: req.driver.clone(),
            registered_at: Utc::now(),
            storage: req.storage.clone(),
        })
        .await?;
    fleet.liveness.beat("nova-compute", &host).await?;
    tracing::info!(host = %host, address = %req.address, driver = %req.driver, "agent registered");
    let hosted = match &req.guests {
        Some(guests) => {
            sync_power_states(app, &host, guests).await;
            None
        }
        None => Some(
            app.compute
                .instances
                .filter(|i| !i.deleted && i.host.as_deref() == Some(host.as_str()))
                .iter()
                .map(|i| i.uuid.clone())
                .collect(),
        ),
    };
    let evacuated = crate::compute::migrate::evacuated_from(app, &host)
        .into_iter()
        .filter_map(|m| {
            let inst = app.compute.instances.get(&m.instance_uuid)?;
            Some(Evacuated {
                migration_uuid: m.uuid.clone(),
                instance: (*inst).clone(),
            })
        })
        .collect();
    Ok(Json(Registered {
        host,
        report_interval: fleet.liveness.report_interval,
        evacuated,
        hosted,
    }))
}

/// Power-state sync for a host that registers again, from the guests its
/// agent runs: a server the database has on the host as running (ACTIVE,
/// PAUSED or SUSPENDED, no task) whose guest is gone is stopped — SHUTOFF,
/// power state SHUTDOWN — as Nova's `_sync_instance_power_state` stops a
/// server whose guest is no longer running. Listed guests are re-adopted
/// as they are: nothing is started twice. Each change is one conditional
/// write (a server that started a task meanwhile is left to it).
async fn sync_power_states(app: &App, host: &str, guests: &[String]) {
    use rova_core::states::{PowerState, VmState};
    let running: std::collections::HashSet<&str> = guests.iter().map(String::as_str).collect();
    let lost = |i: &rova_core::model::Instance| {
        !i.deleted
            && i.task_state.is_none()
            && i.host.as_deref() == Some(host)
            && matches!(
                i.vm_state,
                VmState::Active | VmState::Paused | VmState::Suspended
            )
            && !running.contains(i.uuid.as_str())
    };
    for inst in app.compute.instances.filter(|i| lost(i)) {
        let stopped = app
            .compute
            .update_instance(&inst.uuid, app.clock.now(), |i| {
                if !lost(i) {
                    return Err(Fault::conflict("changed"));
                }
                i.vm_state = VmState::Stopped;
                i.power_state = PowerState::Shutdown;
                Ok(())
            })
            .await;
        if stopped.is_ok() {
            tracing::warn!(host = %host, server = %inst.uuid, "the guest is gone from its host: server stopped");
        }
    }
}

/// The agent destroyed its copies of servers evacuated away from it:
/// their evacuations are completed (only its own host's count).
async fn cleaned(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<Cleaned>> {
    let host = peer.host()?;
    let req: Cleaned = parse(&body)?;
    let mut done = Vec::new();
    for m in crate::compute::migrate::evacuated_from(&ctl.app, host) {
        if req.migrations.contains(&m.uuid) {
            crate::compute::migrate::complete_evacuation(&ctl.app, &m).await;
            done.push(m.uuid.clone());
        }
    }
    Ok(Json(Cleaned { migrations: done }))
}

async fn heartbeat(
    State(ctl): State<Arc<Ctl>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<HeartbeatReply>> {
    let host = peer.host()?;
    let _req: HeartbeatRequest = parse(&body)?;
    let fleet = &ctl.app.compute.fleet;
    if fleet.host(host).is_none() || ctl.agents.endpoint(host).is_none() {
        // Deleted, or never registered: the agent registers again.
        return Err(ApiError(Fault::not_found(format!(
            "Compute host {host} could not be found."
        ))));
    }
    let report_count = fleet.liveness.beat("nova-compute", host).await?;
    Ok(Json(HeartbeatReply { report_count }))
}
