//! The control plane's side of the agents: the `agent_endpoints` rows
//! (where each registered agent serves, written at registration, so every
//! replica can reach every agent) and a virt driver per agent host
//! ([`RemoteDriver`]) that carries each call over the agent API. The
//! compute service asks [`Agents::driver`] for the driver of a server's
//! host; hosts with no endpoint row are this process's own.

use super::types::{AgentEndpoint, DriverCall, DriverReply, DriverRequest, PeerAgent, DRIVER};
use super::wire::{CallError, Client};
use crate::compute::driver::{
    BoxFut, ConsoleKind, ConsoleStream, Driver, DriverFault, DriverOp, LiveRequest, LiveStats,
};
use crate::store::{Store, Table};
use rova_core::model::Instance;
use std::sync::Arc;
use std::time::Duration;

/// How long one driver call may take (a real guest's build or migration
/// included).
const CALL_DEADLINE: Duration = Duration::from_secs(900);
/// Tries of a call that got no answer (same request id each time).
const TRIES: u32 = 6;
/// Pause between them.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

struct Shared {
    client: Client,
    endpoints: Table<AgentEndpoint>,
}

/// The registered agents and a driver for each.
pub struct Agents {
    shared: Arc<Shared>,
    step_delay: Duration,
}

impl Agents {
    /// The endpoint rows, and `client` (this replica's certificate) to
    /// call agents with; `step_delay` is the simulated step pause the
    /// control plane keeps between the steps it plays itself.
    pub fn load(store: &Arc<Store>, client: Client, step_delay: Duration) -> Result<Self, String> {
        Ok(Agents {
            shared: Arc::new(Shared {
                client,
                endpoints: Table::load("agent_endpoint", store)?,
            }),
            step_delay,
        })
    }

    /// Where `host`'s agent serves, if an agent registered it.
    pub fn endpoint(&self, host: &str) -> Option<Arc<AgentEndpoint>> {
        self.shared.endpoints.get(host)
    }

    /// Records an agent's endpoint (written only when it changed).
    pub async fn record(&self, ep: AgentEndpoint) -> Result<(), rova_core::Fault> {
        let same = self.endpoint(&ep.host).is_some_and(|cur| {
            cur.address == ep.address && cur.driver == ep.driver && cur.storage == ep.storage
        });
        if !same {
            let host = ep.host.clone();
            self.shared.endpoints.put(&host, ep).await?;
        }
        Ok(())
    }

    /// The driver of `host` when an agent serves it (made from its
    /// endpoint row each time: cheap, and never older than the row).
    pub fn driver(&self, host: &str) -> Option<Arc<dyn Driver>> {
        let ep = self.endpoint(host)?;
        Some(Arc::new(RemoteDriver {
            host: host.to_string(),
            shared: self.shared.clone(),
            step_delay: self.step_delay,
            simulated: ep.driver == "fake",
        }))
    }
}

/// A virt driver whose guests run on an agent.
pub struct RemoteDriver {
    host: String,
    shared: Arc<Shared>,
    step_delay: Duration,
    simulated: bool,
}

impl RemoteDriver {
    /// Sends one call, retried with the same request id while there is no
    /// answer; an agent that cannot be reached fails the call.
    async fn call(&self, inst: &Instance, call: DriverCall) -> Result<DriverReply, DriverFault> {
        let req = DriverRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            instance: inst.clone(),
            call,
        };
        let mut last = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            let Some(ep) = self.shared.endpoints.get(&self.host) else {
                last = "no agent is registered for it".into();
                break;
            };
            match self
                .shared
                .client
                .post(&ep.address, &self.host, DRIVER, &req, CALL_DEADLINE)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(CallError::Refused(f)) => {
                    return Err(DriverFault {
                        code: f.code,
                        message: f.message,
                        details: format!("agent of {} refused the call", self.host),
                    })
                }
                Err(e @ CallError::Unreachable(_)) => last = e.message(),
            }
        }
        Err(DriverFault::new(
            format!("Compute host {} could not be reached.", self.host),
            last,
        ))
    }

    /// After this host's driver moved a guest to `dest` (`op`: the cold
    /// move, if it was one): `dest`'s agent (when an agent serves it) is
    /// told the guest is its own now, and starts a real guest that a cold
    /// move left stopped. For a simulated guest a failure is only logged
    /// (that agent then stops the server when it next registers, as it
    /// would a guest it lost); a real guest's failure fails the move.
    async fn adopted_by(
        &self,
        dest: &str,
        inst: &Instance,
        op: Option<&DriverOp>,
    ) -> Result<(), DriverFault> {
        if dest == self.host {
            return Ok(());
        }
        let Some(there) = self.on(dest) else {
            return Ok(());
        };
        let call = DriverCall::Adopt {
            op: op.cloned(),
            from: self.peer(),
        };
        match there.done(inst, call).await {
            Err(f) if self.simulated => {
                tracing::warn!(server = %inst.uuid, host = dest, "adopting a moved guest: {}", f.message);
                Ok(())
            }
            other => other,
        }
    }

    /// This host's agent as another agent reaches it.
    fn peer(&self) -> Option<PeerAgent> {
        let ep = self.shared.endpoints.get(&self.host)?;
        Some(PeerAgent {
            host: self.host.clone(),
            address: ep.address.clone(),
        })
    }

    /// The driver of another agent host (`None`: no agent serves it).
    fn on(&self, host: &str) -> Option<RemoteDriver> {
        let ep = self.shared.endpoints.get(host)?;
        Some(RemoteDriver {
            host: host.to_string(),
            shared: self.shared.clone(),
            step_delay: self.step_delay,
            simulated: ep.driver == "fake",
        })
    }

    async fn done(&self, inst: &Instance, call: DriverCall) -> Result<(), DriverFault> {
        match self.call(inst, call).await? {
            DriverReply::Failed { fault } => Err(fault),
            _ => Ok(()),
        }
    }
}

impl Driver for RemoteDriver {
    fn name(&self) -> &'static str {
        "agent"
    }
    fn step_delay(&self) -> Duration {
        self.step_delay
    }
    fn is_simulated(&self) -> bool {
        self.simulated
    }
    fn instance_storage(&self) -> Option<String> {
        self.shared.endpoints.get(&self.host)?.storage.clone()
    }
    fn spawn<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(self.done(inst, DriverCall::Spawn))
    }
    fn perform<'a>(
        &'a self,
        op: &'a DriverOp,
        inst: &'a Instance,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            self.done(inst, DriverCall::Perform { op: op.clone() })
                .await?;
            if let Some(dest) = op.moves_to() {
                self.adopted_by(dest, inst, Some(op)).await?;
            }
            Ok(())
        })
    }
    fn destroy<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(self.done(inst, DriverCall::Destroy))
    }
    fn live_request<'a>(
        &'a self,
        inst: &'a Instance,
        req: LiveRequest,
    ) -> BoxFut<'a, Result<(), DriverFault>> {
        Box::pin(async move {
            if self.simulated {
                return Ok(());
            }
            self.done(inst, DriverCall::LiveRequest { request: req })
                .await
        })
    }
    fn console_stream<'a>(
        &'a self,
        inst: &'a Instance,
        kind: ConsoleKind,
    ) -> BoxFut<'a, Result<Option<ConsoleStream>, String>> {
        Box::pin(async move {
            if self.simulated {
                return Ok(None);
            }
            let ep = self
                .shared
                .endpoints
                .get(&self.host)
                .ok_or_else(|| format!("no agent is registered for {}", self.host))?;
            let kind = match kind {
                ConsoleKind::Serial => "serial",
                ConsoleKind::Vnc => "vnc",
            };
            let path = super::types::console_path(&inst.uuid, kind);
            let opened = self
                .shared
                .client
                .upgrade(
                    &ep.address,
                    &self.host,
                    &path,
                    super::types::CONSOLE_PROTOCOL,
                    Duration::from_secs(10),
                )
                .await;
            match opened {
                Ok(io) => Ok(Some(Box::new(io) as ConsoleStream)),
                Err(CallError::Refused(f)) if f.code == 404 => Ok(None),
                Err(e) => Err(format!("agent of {}: {}", self.host, e.message())),
            }
        })
    }
    fn drop_moved<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, ()> {
        Box::pin(async move {
            if self.simulated {
                return;
            }
            if let Err(f) = self.done(inst, DriverCall::DropMoved).await {
                tracing::warn!(server = %inst.uuid, host = %self.host, "dropping a moved guest's disks: {}", f.message);
            }
        })
    }
    fn console_log<'a>(&'a self, inst: &'a Instance) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            if self.simulated {
                return None;
            }
            match self.call(inst, DriverCall::ConsoleLog).await {
                Ok(DriverReply::Console { log_b64 }) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(log_b64.as_bytes())
                        .ok()
                }
                _ => None,
            }
        })
    }
    fn live_migrate<'a>(
        &'a self,
        inst: &'a Instance,
        dest: &'a str,
    ) -> BoxFut<'a, Result<LiveStats, DriverFault>> {
        Box::pin(async move {
            // A real guest's destination agent starts it waiting for the
            // migration stream first; the source then sends it there.
            let there = self.on(dest);
            let (uri, nbd) = match &there {
                Some(there) if !self.simulated && !there.simulated => {
                    let call = DriverCall::PrepareIncoming { from: self.peer() };
                    match there.call(inst, call).await? {
                        DriverReply::Incoming { uri, nbd } => (Some(uri), nbd),
                        DriverReply::Failed { fault } => return Err(fault),
                        _ => {
                            return Err(DriverFault::new(
                                format!("Compute host {dest} could not prepare the migration."),
                                "unexpected answer to prepare_incoming",
                            ))
                        }
                    }
                }
                _ => (None, None),
            };
            let sent = self
                .call(
                    inst,
                    DriverCall::LiveMigrate {
                        dest: dest.to_string(),
                        uri: uri.clone(),
                        nbd: nbd.clone(),
                    },
                )
                .await;
            if uri.is_some() && !matches!(sent, Ok(DriverReply::Migrated { .. })) {
                if let Some(there) = &there {
                    if let Err(f) = there.done(inst, DriverCall::DropIncoming).await {
                        tracing::warn!(server = %inst.uuid, host = dest, "stopping the waiting guest: {}", f.message);
                    }
                }
            }
            match sent? {
                DriverReply::Migrated { stats } => {
                    self.adopted_by(dest, inst, None).await?;
                    if nbd.is_some() {
                        // A block migration: the source's disks are
                        // copies now.
                        let mut moved = inst.clone();
                        moved.host = Some(dest.to_string());
                        if let Err(f) = self.done(&moved, DriverCall::DropMoved).await {
                            tracing::warn!(server = %inst.uuid, host = %self.host, "dropping the migrated guest's disks: {}", f.message);
                        }
                    }
                    Ok(stats)
                }
                DriverReply::Failed { fault } => Err(fault),
                _ => {
                    self.adopted_by(dest, inst, None).await?;
                    Ok(LiveStats::default())
                }
            }
        })
    }
}
