//! A guest's files between agents whose instances paths are not shared:
//! the listener's side ([`instance_file`]: another agent, the destination
//! of a move of that guest the control plane confirms, reads them) and
//! the reading side ([`PeerFiles`], the QEMU driver's [`FileSource`]).

use super::Agent;
use crate::agent_api::pki::CONTROL_NAME;
use crate::agent_api::types::{self, PeerAgent};
use crate::agent_api::wire::{self, CallError, Peer};
use crate::compute::driver::BoxFut;
use crate::http::{ApiError, ApiResult};
use crate::virt::qemu::FileSource;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Extension;
use rova_core::Fault;
use std::sync::Arc;
use std::time::Duration;

/// How long reading one chunk may take.
const CHUNK_DEADLINE: Duration = Duration::from_secs(120);

#[derive(serde::Deserialize)]
pub(super) struct At {
    #[serde(default)]
    offset: u64,
}

/// `GET /agent/v1/instances/{uuid}/files/{name}?offset=N`.
pub(super) async fn instance_file(
    State(agent): State<Arc<Agent>>,
    Extension(peer): Extension<Peer>,
    Path((uuid, name)): Path<(String, String)>,
    Query(at): Query<At>,
) -> ApiResult<Bytes> {
    let to = peer.host()?.to_string();
    let missing = || ApiError(Fault::not_found(format!("No file {name} of {uuid} here.")));
    let (Some(q), Some(env)) = (&agent.qemu, &agent.env) else {
        return Err(missing());
    };
    if to == CONTROL_NAME || to == agent.host || !env.may_copy(&uuid, &to).await {
        return Err(ApiError(Fault::forbidden(format!(
            "Host {to} is not the destination of a move of {uuid} from {}.",
            agent.host
        ))));
    }
    match q.read_file(&uuid, &name, at.offset).await {
        Ok(Some(bytes)) => Ok(Bytes::from(bytes)),
        Ok(None) => Err(missing()),
        Err(e) => Err(ApiError(Fault::internal(e))),
    }
}

/// A guest's files on the agent of the host it moves from.
pub(super) struct PeerFiles {
    pub(super) client: wire::Client,
    pub(super) peer: PeerAgent,
    pub(super) uuid: String,
}

impl FileSource for PeerFiles {
    fn read<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
    ) -> BoxFut<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move {
            let path = types::instance_file_path(&self.uuid, name, offset);
            let got = self
                .client
                .get_bytes(&self.peer.address, &self.peer.host, &path, CHUNK_DEADLINE)
                .await;
            match got {
                Ok(bytes) => Ok(Some(bytes.to_vec())),
                Err(CallError::Refused(f)) if f.code == 404 => Ok(None),
                Err(e) => Err(format!("agent of {}: {}", self.peer.host, e.message())),
            }
        })
    }
}
