//! `rova agent`: the process on a hypervisor host. It holds no database
//! credentials. On first start it enrolls with a control replica using
//! its one-time token (trusting only the CA the token pins) and keeps the
//! certificate it gets in its state directory; every start it serves its
//! own agent listener (mutual TLS: only control replicas may call it),
//! registers its host with the control plane (compute node inventory and
//! the listener's address), and sends a heartbeat every `report_interval`
//! seconds. Control replicas send it driver calls, which it runs through
//! its virt driver; a call it has already seen (same request id) gets the
//! first call's outcome again instead of running twice — after a restart
//! of the agent too (`calls.jsonl` in the state directory).
//!
//! The guests it runs are listed in `guests.json` in the state directory:
//! a simulated hypervisor's guests outlive the agent process, as QEMU's
//! outlive it. When it registers again it reports that list, and the
//! control plane re-adopts the guests it still runs and stops (SHUTOFF)
//! servers whose guests are gone.

use crate::agent_api::pki::{self, CONTROL_NAME};
use crate::agent_api::types::*;
use crate::agent_api::wire::{self, CallError, Peer};
use crate::agent_api::{tls, types};
use crate::compute::driver::{Driver, FakeDriver};
use crate::config::file::AgentSettings;
use crate::config::QemuConfig;
use crate::http::{ApiError, ApiResult};
use crate::metrics::Counters;
use crate::virt::qemu::QemuDriver;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use parking_lot::Mutex;
use rova_core::model::Instance;
use rova_core::Fault;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

mod console;
mod files;
pub mod remote_env;

/// What `rova agent` is told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    /// Control replicas' agent listeners (`IP:PORT`), tried in turn.
    pub controls: Vec<String>,
    /// Needed only until the agent has its certificate.
    pub enroll_token: Option<String>,
    pub listen: SocketAddr,
    /// `fake` (simulated guests) or `qemu` (real ones).
    pub driver: String,
    /// The QEMU driver's settings (`--driver qemu`).
    pub qemu: QemuConfig,
    /// Where instance disks live (Nova's `instances_path`): shared by the
    /// agents between which guests live-migrate on shared storage.
    /// Default `<state-dir>/instances`.
    pub instances_path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub sim_latency_ms: u64,
    pub inventory: Inventory,
    pub availability_zone: Option<String>,
    /// Seconds between heartbeats (`None`: what the control plane asks).
    pub report_interval: Option<u64>,
    /// Where plain-HTTP `GET /metrics` is served (`None`: nowhere).
    pub metrics_listen: Option<SocketAddr>,
}

impl AgentConfig {
    /// The configuration from `[agent]` settings (flags, environment and
    /// file already merged) and the enrollment token; errors name the
    /// key and the flag.
    pub fn resolve(s: AgentSettings, enroll_token: Option<String>) -> Result<Self, String> {
        let missing = |key: &str| {
            format!(
                "agent.{key}: missing (give --{} or the key {key} in the [agent] table)",
                key.replace('_', "-")
            )
        };
        if s.report_interval == Some(0) {
            return Err("agent.report_interval: must be at least 1 second".into());
        }
        Ok(AgentConfig {
            host: s.host.ok_or_else(|| missing("host"))?,
            controls: if s.control.is_empty() {
                return Err(missing("control"));
            } else {
                s.control
            },
            enroll_token,
            listen: s.listen.ok_or_else(|| missing("listen"))?,
            driver: s.driver.unwrap_or_else(|| "fake".into()),
            qemu: {
                let mut q = QemuConfig::default();
                if let Some(a) = s.qemu_accel {
                    q.accel = a;
                }
                if let Some(b) = s.qemu_binary {
                    q.binary = b;
                }
                if let Some(n) = s.live_migration_bandwidth {
                    q.live_migration_bandwidth_mib = n;
                }
                q
            },
            instances_path: s.instances_path,
            state_dir: s.state_dir.ok_or_else(|| missing("state_dir"))?,
            sim_latency_ms: s.sim_latency_ms.unwrap_or(5),
            inventory: Inventory {
                vcpus: s.vcpus.unwrap_or(16),
                memory_mb: s.ram_mb.unwrap_or(65536),
                disk_gb: s.disk_gb.unwrap_or(1000),
            },
            availability_zone: s.availability_zone,
            report_interval: s.report_interval,
            metrics_listen: s.metrics_listen,
        })
    }
}

/// The agent's certificate, key and CA, as its state directory keeps them.
struct Identity {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
}

const CERT: &str = "agent.crt";
const KEY: &str = "agent.key";
const CA: &str = "ca.crt";
const HOST: &str = "host";
const GUESTS: &str = "guests.json";

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

fn write_private(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The identity kept in the state directory, or a new one bought with the
/// enrollment token.
async fn identity(cfg: &AgentConfig) -> Result<Identity, String> {
    let dir = &cfg.state_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    crate::store::make_private(dir)?;
    if let (Some(cert_pem), Some(key_pem), Some(ca_pem)) =
        (read(dir, CERT), read(dir, KEY), read(dir, CA))
    {
        let enrolled_as = read(dir, HOST).unwrap_or_default();
        if enrolled_as.trim() != cfg.host {
            return Err(format!(
                "{} holds the certificate of host {:?}, not {:?}",
                dir.display(),
                enrolled_as.trim(),
                cfg.host
            ));
        }
        return Ok(Identity {
            cert_pem,
            key_pem,
            ca_pem,
        });
    }
    let token = cfg.enroll_token.as_deref().ok_or_else(|| {
        format!(
            "{} holds no certificate: --enroll-token is needed (rova control enroll --host {})",
            dir.display(),
            cfg.host
        )
    })?;
    let pin = pki::pinned_ca(token).ok_or("--enroll-token: not an enrollment token")?;
    let client = wire::Client::new(tls::enrollment_config(pin).map_err(|f| f.message)?);
    let (csr_pem, key_pem) = pki::agent_request(&cfg.host).map_err(|f| f.message)?;
    let req = EnrollRequest {
        token: token.to_string(),
        csr_pem,
    };
    let mut last = String::from("no control replica given");
    for control in &cfg.controls {
        let sent: Result<pki::Issued, _> = client
            .post(
                control,
                CONTROL_NAME,
                types::ENROLL,
                &req,
                Duration::from_secs(30),
            )
            .await;
        match sent {
            Ok(issued) => {
                if issued.host != cfg.host {
                    return Err(format!(
                        "the token is for host {:?}, not {:?}",
                        issued.host, cfg.host
                    ));
                }
                write_private(dir, KEY, &key_pem)?;
                write_private(dir, CERT, &issued.cert_pem)?;
                write_private(dir, CA, &issued.ca_pem)?;
                write_private(dir, HOST, &cfg.host)?;
                return Ok(Identity {
                    cert_pem: issued.cert_pem,
                    key_pem,
                    ca_pem: issued.ca_pem,
                });
            }
            Err(CallError::Refused(f)) => {
                return Err(format!("enrollment refused by {control}: {}", f.message))
            }
            Err(e) => last = e.message(),
        }
    }
    Err(format!("enrollment: no control replica answered ({last})"))
}

/// Driver calls already seen, by request id (the most recent ones), and
/// the outcomes of those that changed something, kept in the state
/// directory's `calls.jsonl` (a line per finished call), so that a call
/// retried after the agent restarted gets its first outcome too.
#[derive(Default)]
struct Calls {
    by_id: HashMap<String, Arc<OnceCell<DriverReply>>>,
    order: VecDeque<String>,
    /// The journal (`None`: not kept).
    journal: Option<PathBuf>,
    /// Lines in the journal.
    lines: usize,
}

const REMEMBERED_CALLS: usize = 4096;

/// One line of `calls.jsonl`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    request_id: String,
    reply: DriverReply,
}

impl Calls {
    /// The calls the journal in `dir` remembers.
    fn load(dir: &Path) -> Calls {
        let path = dir.join("calls.jsonl");
        let mut calls = Calls::default();
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            if let Ok(rec) = serde_json::from_str::<Recorded>(line) {
                let _ = calls.cell(&rec.request_id).set(rec.reply);
                calls.lines += 1;
            }
        }
        calls.journal = Some(path);
        calls
    }

    /// Journals a finished call's outcome; the journal is rewritten with
    /// only the remembered outcomes once it has twice as many lines.
    fn record(&mut self, id: &str, reply: &DriverReply) {
        use std::io::Write;
        let Some(path) = self.journal.clone() else {
            return;
        };
        let line = |id: &str, reply: &DriverReply| {
            let rec = Recorded {
                request_id: id.to_string(),
                reply: reply.clone(),
            };
            serde_json::to_string(&rec).map(|l| l + "\n")
        };
        let written = if self.lines >= 2 * REMEMBERED_CALLS {
            let mut text = String::new();
            let mut n = 0;
            for id in &self.order {
                if let Some(reply) = self.by_id.get(id).and_then(|c| c.get()) {
                    text += &line(id, reply).unwrap_or_default();
                    n += 1;
                }
            }
            let tmp = path.with_extension("jsonl.tmp");
            let res = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path));
            self.lines = n;
            res
        } else {
            self.lines += 1;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(line(id, reply).unwrap_or_default().as_bytes()))
        };
        if let Err(e) = written {
            tracing::warn!("journaling a driver call: {e}");
        }
    }

    fn cell(&mut self, id: &str) -> Arc<OnceCell<DriverReply>> {
        if let Some(c) = self.by_id.get(id) {
            return c.clone();
        }
        let c = Arc::new(OnceCell::new());
        self.by_id.insert(id.to_string(), c.clone());
        self.order.push_back(id.to_string());
        while self.order.len() > REMEMBERED_CALLS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        c
    }
}

/// The guests this agent runs (spawned and not destroyed), kept in the
/// state directory's `guests.json` on every change.
struct Guests {
    set: Mutex<HashSet<String>>,
    path: PathBuf,
    /// Whether the list is complete: read from the file, or taken from
    /// the control plane once (an agent that never kept one, e.g. before
    /// an upgrade, does not know which guests it runs and claims none
    /// lost; the file is written only once the list is known).
    known: std::sync::atomic::AtomicBool,
}

impl Guests {
    /// The list the state directory holds (none when there is no file).
    fn load(dir: &Path) -> Result<Guests, String> {
        let path = dir.join(GUESTS);
        let (set, known) = match std::fs::read(&path) {
            Ok(bytes) => (
                serde_json::from_slice::<Vec<String>>(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .into_iter()
                    .collect(),
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (HashSet::new(), false),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Guests {
            set: Mutex::new(set),
            path,
            known: known.into(),
        })
    }

    fn is_known(&self) -> bool {
        self.known.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes the servers the control plane places on this host as guests
    /// this agent runs (when it kept no list), and from now on keeps one.
    fn adopt(&self, hosted: &[String]) {
        self.known.store(true, std::sync::atomic::Ordering::SeqCst);
        self.change(|s| {
            s.extend(hosted.iter().cloned());
            true
        });
    }

    fn change(&self, f: impl FnOnce(&mut HashSet<String>) -> bool) {
        let mut set = self.set.lock();
        if !f(&mut set) || !self.is_known() {
            return;
        }
        let mut list: Vec<&String> = set.iter().collect();
        list.sort();
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec(&list)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::error!("writing {}: {e}", self.path.display());
        }
    }

    fn insert(&self, uuid: &str) {
        self.change(|s| s.insert(uuid.to_string()));
    }

    fn remove(&self, uuid: &str) {
        self.change(|s| s.remove(uuid));
    }

    fn len(&self) -> usize {
        self.set.lock().len()
    }

    fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.set.lock().iter().cloned().collect();
        v.sort();
        v
    }
}

struct Agent {
    host: String,
    /// The address of its listener: where a live migration's stream
    /// reaches a guest waiting here.
    ip: std::net::IpAddr,
    driver: Arc<dyn Driver>,
    /// The same driver, when it is QEMU's (the calls of real guests
    /// moving between agents).
    qemu: Option<Arc<QemuDriver>>,
    /// Its driver's view of the control plane, when it is QEMU's.
    env: Option<Arc<remote_env::RemoteEnv>>,
    /// Calls to other agents (a moving guest's files).
    client: wire::Client,
    calls: Mutex<Calls>,
    guests: Guests,
    /// Driver calls run, by call and outcome.
    ran: Counters,
    /// When the control plane last took a heartbeat (or registration).
    last_beat: Mutex<Option<std::time::Instant>>,
}

impl Agent {
    /// The Prometheus text of `GET /metrics`.
    fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let host = &self.host;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP rova_agent_guests Guests this agent's driver runs."
        );
        let _ = writeln!(out, "# TYPE rova_agent_guests gauge");
        let _ = writeln!(
            out,
            "rova_agent_guests{{host=\"{host}\"}} {}",
            self.guests.len()
        );
        let _ = writeln!(
            out,
            "# HELP rova_agent_driver_calls_total Driver calls run, by call and outcome."
        );
        let _ = writeln!(out, "# TYPE rova_agent_driver_calls_total counter");
        for (labels, n) in self.ran.snapshot() {
            if let [call, outcome] = labels.as_slice() {
                let _ = writeln!(
                    out,
                    "rova_agent_driver_calls_total{{host=\"{host}\",call=\"{call}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP rova_agent_heartbeat_age_seconds Seconds since the control plane last took this agent's heartbeat (-1: never)."
        );
        let _ = writeln!(out, "# TYPE rova_agent_heartbeat_age_seconds gauge");
        let age = self
            .last_beat
            .lock()
            .map_or(-1.0, |t| t.elapsed().as_secs_f64());
        let _ = writeln!(
            out,
            "rova_agent_heartbeat_age_seconds{{host=\"{host}\"}} {age:.3}"
        );
        out
    }

    fn beat(&self) {
        *self.last_beat.lock() = Some(std::time::Instant::now());
    }
}

/// A call only an agent with real guests can carry out.
fn no_real_guests(host: &str) -> crate::compute::driver::DriverFault {
    crate::compute::driver::DriverFault::new(
        format!("Compute host {host} runs no real guests (its driver is not qemu)."),
        "a live migration of a real guest needs the QEMU driver on both hosts",
    )
}

/// The name a driver call is counted under.
fn call_name(call: &DriverCall) -> &'static str {
    use crate::compute::driver::DriverOpKind as K;
    match call {
        DriverCall::Spawn => K::Spawn.name(),
        DriverCall::Destroy => K::Destroy.name(),
        DriverCall::LiveMigrate { .. } => K::LiveMigrate.name(),
        DriverCall::Adopt { .. } => "adopt",
        DriverCall::PrepareIncoming { .. } => "prepare_incoming",
        DriverCall::DropIncoming => "drop_incoming",
        DriverCall::DropMoved => "drop_moved",
        DriverCall::ConsoleLog => "console_log",
        DriverCall::LiveRequest { .. } => "live_request",
        DriverCall::Perform { op } => op.kind().name(),
    }
}

impl Agent {
    /// The files of guest `inst` on the agent `from` (another host).
    fn files_of(&self, from: &Option<PeerAgent>, inst: &Instance) -> Option<files::PeerFiles> {
        let peer = from.clone().filter(|p| p.host != self.host)?;
        Some(files::PeerFiles {
            client: self.client.clone(),
            peer,
            uuid: inst.uuid.clone(),
        })
    }

    async fn run(&self, req: &DriverRequest) -> DriverReply {
        let inst = &req.instance;
        let d = &self.driver;
        let done = |r: Result<(), crate::compute::driver::DriverFault>| match r {
            Ok(()) => DriverReply::Done,
            Err(fault) => DriverReply::Failed { fault },
        };
        match &req.call {
            DriverCall::Spawn => {
                let r = d.spawn(inst).await;
                if r.is_ok() {
                    self.guests.insert(&inst.uuid);
                }
                done(r)
            }
            DriverCall::Destroy => {
                let r = d.destroy(inst).await;
                if r.is_ok() {
                    self.guests.remove(&inst.uuid);
                }
                done(r)
            }
            DriverCall::Perform { op } => {
                let r = d.perform(op, inst).await;
                if r.is_ok() {
                    let gone = matches!(op, crate::compute::driver::DriverOp::ShelveOffload)
                        || op.moves_to().is_some_and(|to| to != self.host);
                    if gone {
                        self.guests.remove(&inst.uuid);
                    } else {
                        // Any other step leaves the guest here (a start
                        // after a power-state sync defines it again).
                        self.guests.insert(&inst.uuid);
                    }
                }
                done(r)
            }
            DriverCall::LiveMigrate { dest, uri, nbd } => {
                let r = match (uri, &self.qemu) {
                    (None, _) => d.live_migrate(inst, dest).await,
                    (Some(uri), Some(q)) => {
                        q.live_migrate_to(inst, dest, uri, nbd.as_deref()).await
                    }
                    (Some(_), None) => Err(no_real_guests(&self.host)),
                };
                match r {
                    Ok(stats) => {
                        if *dest != self.host {
                            self.guests.remove(&inst.uuid);
                        }
                        tracing::info!(
                            server = %inst.uuid,
                            dest = %dest,
                            total_ms = stats.total_ms,
                            downtime_ms = stats.downtime_ms,
                            disk_bytes = stats.disk_total,
                            mirror_ms = stats.mirror_ms,
                            "live migration completed"
                        );
                        DriverReply::Migrated { stats }
                    }
                    Err(fault) => DriverReply::Failed { fault },
                }
            }
            DriverCall::PrepareIncoming { from } => match &self.qemu {
                Some(q) => {
                    let src = self.files_of(from, inst);
                    let src = src
                        .as_ref()
                        .map(|f| f as &dyn crate::virt::qemu::FileSource);
                    match q.prepare_incoming(inst, &self.host, self.ip, src).await {
                        Ok((uri, nbd)) => DriverReply::Incoming { uri, nbd },
                        Err(fault) => DriverReply::Failed { fault },
                    }
                }
                None => DriverReply::Failed {
                    fault: no_real_guests(&self.host),
                },
            },
            DriverCall::DropIncoming => {
                if let Some(q) = &self.qemu {
                    q.drop_incoming(inst, &self.host).await;
                }
                DriverReply::Done
            }
            DriverCall::LiveRequest { request } => done(d.live_request(inst, *request).await),
            DriverCall::ConsoleLog => {
                use base64::Engine;
                let log = d.console_log(inst).await.unwrap_or_default();
                DriverReply::Console {
                    log_b64: base64::engine::general_purpose::STANDARD.encode(log),
                }
            }
            DriverCall::DropMoved => {
                d.drop_moved(inst).await;
                DriverReply::Done
            }
            DriverCall::Adopt { op, from } => {
                if let Some(q) = &self.qemu {
                    let src = self.files_of(from, inst);
                    let src = src
                        .as_ref()
                        .map(|f| f as &dyn crate::virt::qemu::FileSource);
                    if let Err(fault) = q.adopt(op.as_ref(), inst, &self.host, src).await {
                        return DriverReply::Failed { fault };
                    }
                }
                self.guests.insert(&inst.uuid);
                DriverReply::Done
            }
        }
    }
}

async fn driver_call(
    State(agent): State<Arc<Agent>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Json<DriverReply>> {
    if peer.host()? != CONTROL_NAME {
        return Err(ApiError(Fault::forbidden(
            "Only the control plane may call an agent.",
        )));
    }
    let req: DriverRequest = serde_json::from_slice(&body)
        .map_err(|e| Fault::bad_request(format!("Malformed request body: {e}")))?;
    let cell = agent.calls.lock().cell(&req.request_id);
    let reply = cell
        .get_or_init(|| async {
            let reply = agent.run(&req).await;
            let outcome = match &reply {
                DriverReply::Failed { .. } => "failed",
                _ => "done",
            };
            agent.ran.add(&[call_name(&req.call), outcome]);
            // (a console log changes nothing: it is not journaled)
            if !matches!(req.call, DriverCall::ConsoleLog) {
                agent.calls.lock().record(&req.request_id, &reply);
            }
            reply
        })
        .await
        .clone();
    Ok(Json(reply))
}

/// A started agent (tests hold it; `rova agent` waits for a signal).
pub struct RunningAgent {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Enrolls if it must, serves the agent listener, registers and keeps
/// sending heartbeats (in the background).
pub async fn start(cfg: AgentConfig) -> Result<RunningAgent, String> {
    if !pki::valid_host(&cfg.host) {
        return Err(format!("--host: invalid host name {:?}", cfg.host));
    }
    if !matches!(cfg.driver.as_str(), "fake" | "qemu") {
        return Err(format!(
            "--driver: {:?} is not a driver (fake or qemu)",
            cfg.driver
        ));
    }
    if let Err(e) = cfg.qemu.accel.parse::<crate::virt::accel::AccelChoice>() {
        return Err(format!("--qemu-accel: {e}"));
    }
    if cfg.listen.ip().is_unspecified() {
        return Err(
            "--listen: give the address control replicas reach this agent at, not a wildcard"
                .into(),
        );
    }
    let id = identity(&cfg).await?;
    let server =
        tls::server_config(&id.ca_pem, &id.cert_pem, &id.key_pem).map_err(|f| f.message)?;
    let client = wire::Client::new(
        tls::client_config(&id.ca_pem, &id.cert_pem, &id.key_pem).map_err(|f| f.message)?,
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (qemu, env) = if cfg.driver == "qemu" {
        let q = Arc::new(QemuDriver::for_agent(
            cfg.qemu.clone(),
            &cfg.state_dir,
            &cfg.host,
            cfg.instances_path.clone(),
        ));
        let env = Arc::new(remote_env::RemoteEnv::new(
            client.clone(),
            cfg.controls.clone(),
            &cfg.state_dir,
        ));
        q.set_env(env.clone());
        let how = q.init().await?;
        eprintln!("rova agent: QEMU driver: {how}");
        (Some(q), Some(env))
    } else {
        (None, None)
    };
    let driver: Arc<dyn Driver> = match &qemu {
        Some(q) => q.clone(),
        None => Arc::new(FakeDriver::new(cfg.sim_latency_ms)),
    };
    let agent = Arc::new(Agent {
        host: cfg.host.clone(),
        ip: cfg.listen.ip(),
        driver,
        qemu,
        env,
        client: client.clone(),
        calls: Mutex::new(Calls::load(&cfg.state_dir)),
        guests: Guests::load(&cfg.state_dir)?,
        ran: Counters::default(),
        last_beat: Mutex::new(None),
    });
    let router = Router::new()
        .route(types::DRIVER, post(driver_call))
        .route(
            types::INSTANCE_FILE,
            axum::routing::get(files::instance_file),
        )
        .route(types::CONSOLE, axum::routing::get(console::console))
        .with_state(agent.clone());
    let serving = tokio::spawn(wire::serve(listener, server, router));
    let register = RegisterRequest {
        address: addr.to_string(),
        driver: cfg.driver.clone(),
        inventory: cfg.inventory,
        availability_zone: cfg.availability_zone.clone(),
        guests: None,
        storage: agent.driver.instance_storage(),
    };
    let mut tasks = vec![serving];
    let mut metrics_addr = None;
    if let Some(at) = cfg.metrics_listen {
        let l = tokio::net::TcpListener::bind(at)
            .await
            .map_err(|e| format!("cannot listen on {at} (metrics): {e}"))?;
        metrics_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        let a = agent.clone();
        let router = Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let a = a.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        a.metrics(),
                    )
                }
            }),
        );
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, router).await;
        }));
    }
    tasks.push(tokio::spawn(report(cfg.clone(), client, register, agent)));
    Ok(RunningAgent {
        addr,
        metrics_addr,
        tasks,
    })
}

/// Registers, then sends heartbeats every `report_interval`; registers
/// again when the control plane no longer knows the host, and moves on
/// to the next control replica when one does not answer.
async fn report(
    cfg: AgentConfig,
    client: wire::Client,
    register: RegisterRequest,
    agent: Arc<Agent>,
) {
    let deadline = Duration::from_secs(10);
    let mut at = 0usize;
    let mut every = Duration::from_secs(1);
    let mut registered = false;
    loop {
        let control = &cfg.controls[at % cfg.controls.len().max(1)];
        if !registered {
            let register = RegisterRequest {
                guests: agent.guests.is_known().then(|| agent.guests.list()),
                ..register.clone()
            };
            let sent: Result<Registered, _> = client
                .post(control, CONTROL_NAME, types::REGISTER, &register, deadline)
                .await;
            match sent {
                Ok(r) => {
                    registered = true;
                    agent.beat();
                    if let Some(hosted) = r.hosted.as_deref().filter(|_| !agent.guests.is_known()) {
                        agent.guests.adopt(hosted);
                    }
                    every = Duration::from_secs(
                        cfg.report_interval.unwrap_or(r.report_interval).max(1),
                    );
                    destroy_evacuated(&agent, &client, control, &r.evacuated).await;
                    tracing::info!(control = %control, "registered host {}", r.host);
                    eprintln!("rova agent: registered {} with {control}", r.host);
                    tokio::time::sleep(every).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(control = %control, "registering: {}", e.message());
                    at += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let beat = HeartbeatRequest {
            guests: agent.guests.len() as u64,
        };
        let sent: Result<HeartbeatReply, _> = client
            .post(control, CONTROL_NAME, types::HEARTBEAT, &beat, deadline)
            .await;
        match sent {
            Ok(_) => {
                agent.beat();
                tokio::time::sleep(every).await
            }
            Err(CallError::Refused(f)) if f.code == 404 => registered = false,
            Err(e) => {
                tracing::warn!(control = %control, "heartbeat: {}", e.message());
                at += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Destroys the guests of servers evacuated away from this host while it
/// was gone, then tells the control plane (which completes the
/// evacuations); a guest it cannot destroy is kept for the next
/// registration to try again.
async fn destroy_evacuated(
    agent: &Agent,
    client: &wire::Client,
    control: &str,
    evacuated: &[Evacuated],
) {
    let mut cleaned = Cleaned::default();
    for e in evacuated {
        let destroyed = match &agent.qemu {
            Some(q) => {
                q.destroy_evacuated(&e.instance, &agent.host).await;
                Ok(())
            }
            None => agent.driver.destroy(&e.instance).await,
        };
        match destroyed {
            Ok(()) => {
                agent.guests.remove(&e.instance.uuid);
                cleaned.migrations.push(e.migration_uuid.clone());
                tracing::info!(server = %e.instance.uuid, "destroyed the guest of an evacuated server");
            }
            Err(f) => {
                tracing::warn!(server = %e.instance.uuid, "destroying an evacuated guest: {}", f.message)
            }
        }
    }
    if cleaned.migrations.is_empty() {
        return;
    }
    let sent: Result<Cleaned, _> = client
        .post(
            control,
            CONTROL_NAME,
            types::CLEANED,
            &cleaned,
            Duration::from_secs(10),
        )
        .await;
    if let Err(e) = sent {
        tracing::warn!(control = %control, "reporting cleaned evacuations: {}", e.message());
    }
}

/// `rova agent`: starts, then runs until SIGTERM or Ctrl-C.
pub async fn run(cfg: AgentConfig) -> Result<(), String> {
    let host = cfg.host.clone();
    let running = start(cfg).await?;
    println!(
        "rova agent: host {host} serving the agent API on https://{}",
        running.addr
    );
    crate::server::shutdown_signal().await;
    drop(running);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_request_id_finds_the_first_calls_outcome() {
        let mut calls = Calls::default();
        let first = calls.cell("r1");
        first.set(DriverReply::Done).expect("first outcome");
        let again = calls.cell("r1");
        assert!(Arc::ptr_eq(&first, &again));
        assert!(matches!(again.get(), Some(DriverReply::Done)));
        assert!(calls.cell("r2").get().is_none());
    }

    /// Outcomes outlive the agent: a restarted agent answers a retried
    /// call with its first outcome; the journal keeps only the calls
    /// remembered.
    #[test]
    fn a_calls_outcome_outlives_the_agent() {
        let dir = crate::virt::stub_env::scratch_dir("agent-calls");
        let failed = DriverReply::Failed {
            fault: crate::compute::driver::DriverFault::new("boom", "details"),
        };
        {
            let mut calls = Calls::load(&dir);
            for (id, reply) in [("r1", DriverReply::Done), ("r2", failed)] {
                let _ = calls.cell(id).set(reply.clone());
                calls.record(id, &reply);
            }
        }
        let mut again = Calls::load(&dir);
        assert!(matches!(again.cell("r1").get(), Some(DriverReply::Done)));
        assert!(
            matches!(again.cell("r2").get(), Some(DriverReply::Failed { fault }) if fault.message == "boom")
        );
        assert!(again.cell("r3").get().is_none(), "never seen");
        for i in 0..2 * REMEMBERED_CALLS + 10 {
            let id = format!("x{i}");
            let _ = again.cell(&id).set(DriverReply::Done);
            again.record(&id, &DriverReply::Done);
        }
        let lines = std::fs::read_to_string(dir.join("calls.jsonl"))
            .expect("journal")
            .lines()
            .count();
        assert!(lines <= 2 * REMEMBERED_CALLS, "{lines} lines");
        let mut last = Calls::load(&dir);
        let newest = format!("x{}", 2 * REMEMBERED_CALLS + 9);
        assert!(last.cell(&newest).get().is_some());
        assert!(last.cell("r1").get().is_none(), "forgotten long since");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_most_recent_calls_are_remembered() {
        let mut calls = Calls::default();
        let oldest = calls.cell("r0");
        for i in 1..=REMEMBERED_CALLS {
            calls.cell(&format!("r{i}"));
        }
        assert_eq!(calls.by_id.len(), REMEMBERED_CALLS);
        assert!(!Arc::ptr_eq(&oldest, &calls.cell("r0")));
    }
}
